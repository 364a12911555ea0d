package checkpoint

import (
	"context"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
)

// DynamoDBAPI is the part of the DynamoDB client the store uses. *dynamodb.Client satisfies it.
type DynamoDBAPI interface {
	GetItem(ctx context.Context, in *dynamodb.GetItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
	DeleteItem(ctx context.Context, in *dynamodb.DeleteItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error)
	Scan(ctx context.Context, in *dynamodb.ScanInput, optFns ...func(*dynamodb.Options)) (*dynamodb.ScanOutput, error)
	CreateTable(ctx context.Context, in *dynamodb.CreateTableInput, optFns ...func(*dynamodb.Options)) (*dynamodb.CreateTableOutput, error)
	DescribeTable(ctx context.Context, in *dynamodb.DescribeTableInput, optFns ...func(*dynamodb.Options)) (*dynamodb.DescribeTableOutput, error)
}

// KinesisAPI is the part of the Kinesis client the store uses: ListShards for lineage, and the two
// read calls Reset needs to resolve a timestamp or "latest" into a sequence number.
// *kinesis.Client satisfies it.
type KinesisAPI interface {
	ListShards(ctx context.Context, in *kinesis.ListShardsInput, optFns ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error)
	GetShardIterator(ctx context.Context, in *kinesis.GetShardIteratorInput, optFns ...func(*kinesis.Options)) (*kinesis.GetShardIteratorOutput, error)
	GetRecords(ctx context.Context, in *kinesis.GetRecordsInput, optFns ...func(*kinesis.Options)) (*kinesis.GetRecordsOutput, error)
}

// ReservedPrefix starts every lease-table key that is not a shard: a row whose ShardID begins with
// it belongs to another component of the fleet (the autoscaler keeps "__autoscaler#<stream>"
// there). The store never leases, scans into its plans, counts, inspects, resets or deletes such a
// row; Kinesis shard ids never begin with it.
const ReservedPrefix = "__"

// IsReserved reports whether a lease-table key is reserved for non-shard rows (ReservedPrefix).
func IsReserved(key string) bool { return strings.HasPrefix(key, ReservedPrefix) }

// Acquisition is the outcome of Store.Acquire. A refusal is an expected outcome, not an error.
type Acquisition struct {
	// Acquired is true when this worker now holds the lease.
	Acquired bool
	// Reason says why the lease was not acquired (ErrLeaseHeld, ErrWaitingOnParent, ErrFairShare,
	// ErrClaimedByOther, ErrShardFinished, ErrUnknownShard, ErrAlreadyHeld); nil when Acquired.
	Reason error
	// Detail adds what the store saw (the owner, the parent that has not finished, the shares).
	Detail string
	// Checkpoint is the shard's checkpoint when Acquired ("" none: start at the initial position).
	Checkpoint string
	// PreviousOwner is the owner the row named before the take ("" none).
	PreviousOwner string
}

// ShardLease is one lease row as the store read it.
type ShardLease struct {
	ShardID    string
	Owner      string // AssignedTo, "" when not leased
	Counter    int64  // LeaseCounter
	Checkpoint string // sequence number, ShardEnd, or "" (none)
	// LeaseTimeout is the expiry the owner wrote, on the owner's clock: for display only, never
	// compared with this machine's clock.
	LeaseTimeout time.Time
	Claim        string // ClaimRequest, "" none
	// Tail is, for a finished shard, where its records not handled yet begin (Finish): a child
	// shard processes them before its own.
	Tail []TailSegment
}

func (r *leaseRow) public() ShardLease {
	return ShardLease{ShardID: r.ShardID, Owner: r.Owner, Counter: r.Counter, Checkpoint: r.Checkpoint,
		LeaseTimeout: r.LeaseTimeout, Claim: r.Claim, Tail: r.Tail}
}
