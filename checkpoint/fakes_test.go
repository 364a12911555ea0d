package checkpoint

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"
)

// fakeKinesis serves ListShards from a lineage the test sets (two shards per page, to exercise
// pagination). The contract suite controls lineage with it on every DynamoDB backend.
type fakeKinesis struct {
	mu     sync.Mutex
	shards []ktypes.Shard
	calls  int
}

var _ KinesisAPI = (*fakeKinesis)(nil)

// set replaces the stream's shards. Each shard: id, parent, adjacent parent, closed.
func (f *fakeKinesis) set(shards ...shardMeta) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.shards = nil
	for i, m := range shards {
		s := ktypes.Shard{
			ShardId:             aws.String(m.ID),
			HashKeyRange:        &ktypes.HashKeyRange{StartingHashKey: aws.String("0"), EndingHashKey: aws.String("1")},
			SequenceNumberRange: &ktypes.SequenceNumberRange{StartingSequenceNumber: aws.String(strconv.Itoa(1000 * (i + 1)))},
		}
		if m.Parent != "" {
			s.ParentShardId = aws.String(m.Parent)
		}
		if m.Adjacent != "" {
			s.AdjacentParentShardId = aws.String(m.Adjacent)
		}
		if m.Closed {
			s.SequenceNumberRange.EndingSequenceNumber = aws.String(strconv.Itoa(1000*(i+1) + 999))
		}
		f.shards = append(f.shards, s)
	}
}

func (f *fakeKinesis) ListShards(ctx context.Context, in *kinesis.ListShardsInput, _ ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	start := 0
	if in.NextToken != nil {
		if in.StreamName != nil {
			return nil, errors.New("InvalidArgumentException: NextToken and StreamName together")
		}
		start, _ = strconv.Atoi(*in.NextToken)
	}
	end := min(start+2, len(f.shards))
	out := &kinesis.ListShardsOutput{Shards: append([]ktypes.Shard(nil), f.shards[start:end]...)}
	if end < len(f.shards) {
		out.NextToken = aws.String(strconv.Itoa(end))
	}
	return out, nil
}

func (f *fakeKinesis) GetShardIterator(context.Context, *kinesis.GetShardIteratorInput, ...func(*kinesis.Options)) (*kinesis.GetShardIteratorOutput, error) {
	return nil, errors.New("fakeKinesis: GetShardIterator not supported")
}

func (f *fakeKinesis) GetRecords(context.Context, *kinesis.GetRecordsInput, ...func(*kinesis.Options)) (*kinesis.GetRecordsOutput, error) {
	return nil, errors.New("fakeKinesis: GetRecords not supported")
}

// gatedDDB wraps a DynamoDB client; while closed, every call hangs until its context ends, as
// calls to a stopped (SIGSTOP) DynamoDB do. It remembers the slowest call that passed the gate,
// for the test log.
type gatedDDB struct {
	inner  DynamoDBAPI
	mu     sync.Mutex
	gate   chan struct{} // nil: open
	maxDur time.Duration
	maxOp  string
}

func (g *gatedDDB) timed(op string, start time.Time) {
	d := time.Since(start)
	g.mu.Lock()
	defer g.mu.Unlock()
	if d > g.maxDur {
		g.maxDur, g.maxOp = d, op
	}
}

// slowest returns the duration and operation of the slowest call that passed the gate.
func (g *gatedDDB) slowest() (time.Duration, string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.maxDur, g.maxOp
}

func (g *gatedDDB) close() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.gate == nil {
		g.gate = make(chan struct{})
	}
}

func (g *gatedDDB) open() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.gate != nil {
		close(g.gate)
		g.gate = nil
	}
}

func (g *gatedDDB) wait(ctx context.Context) error {
	g.mu.Lock()
	gate := g.gate
	g.mu.Unlock()
	if gate == nil {
		return nil
	}
	select {
	case <-gate:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (g *gatedDDB) GetItem(ctx context.Context, in *dynamodb.GetItemInput, o ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	if err := g.wait(ctx); err != nil {
		return nil, err
	}
	defer g.timed("GetItem", time.Now())
	return g.inner.GetItem(ctx, in, o...)
}

func (g *gatedDDB) UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, o ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	if err := g.wait(ctx); err != nil {
		return nil, err
	}
	defer g.timed("UpdateItem", time.Now())
	return g.inner.UpdateItem(ctx, in, o...)
}

func (g *gatedDDB) DeleteItem(ctx context.Context, in *dynamodb.DeleteItemInput, o ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error) {
	if err := g.wait(ctx); err != nil {
		return nil, err
	}
	defer g.timed("DeleteItem", time.Now())
	return g.inner.DeleteItem(ctx, in, o...)
}

func (g *gatedDDB) Scan(ctx context.Context, in *dynamodb.ScanInput, o ...func(*dynamodb.Options)) (*dynamodb.ScanOutput, error) {
	if err := g.wait(ctx); err != nil {
		return nil, err
	}
	defer g.timed("Scan", time.Now())
	return g.inner.Scan(ctx, in, o...)
}

func (g *gatedDDB) CreateTable(ctx context.Context, in *dynamodb.CreateTableInput, o ...func(*dynamodb.Options)) (*dynamodb.CreateTableOutput, error) {
	if err := g.wait(ctx); err != nil {
		return nil, err
	}
	defer g.timed("CreateTable", time.Now())
	return g.inner.CreateTable(ctx, in, o...)
}

func (g *gatedDDB) DescribeTable(ctx context.Context, in *dynamodb.DescribeTableInput, o ...func(*dynamodb.Options)) (*dynamodb.DescribeTableOutput, error) {
	if err := g.wait(ctx); err != nil {
		return nil, err
	}
	defer g.timed("DescribeTable", time.Now())
	return g.inner.DescribeTable(ctx, in, o...)
}

// clock is a test clock: real time, optionally frozen (a worker whose process is paused and
// therefore does not notice time passing).
type clock struct {
	mu     sync.Mutex
	frozen time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.frozen.IsZero() {
		return c.frozen
	}
	return time.Now()
}

func (c *clock) freeze() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.frozen = time.Now()
}

// manualClock is real time moved forward by hand: the store's timers keep working, and the test
// says when a bench has passed.
type manualClock struct {
	mu     sync.Mutex
	offset time.Duration
}

func (c *manualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

func (c *manualClock) advance(d time.Duration) {
	c.mu.Lock()
	c.offset += d
	c.mu.Unlock()
}
