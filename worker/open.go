package worker

import (
	"context"
	"errors"
	"fmt"
	"math/big"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"go.uber.org/zap"

	"github.com/kinesis-events/pipeline/checkpoint"
	"github.com/kinesis-events/pipeline/internal/retry"
	"github.com/kinesis-events/pipeline/processors"
)

// opener opens the pipeline of a shard whose lease this worker took.
type opener interface {
	// open loads the shard's state and, for a shard without a checkpoint whose parents finished
	// with a tail, runs the parents' tails through it. It returns the shard's pipeline and the
	// tail it inherited (the segments this shard passes on, ahead of its own records, if it finishes
	// before its own checkpoint moved).
	open(ctx context.Context, shardID, checkpoint string) (batchProcessor, []checkpoint.TailSegment, error)
}

// pipelineOpener is the pipeline's side of opening a shard; *processors.Pipeline satisfies it.
type pipelineOpener interface {
	OpenShard(ctx context.Context, shardID string, lin processors.Lineage) (*processors.Shard, error)
}

// lineageReader is the lease store's side of opening a shard; *checkpoint.Store satisfies it.
type lineageReader interface {
	Lineage(ctx context.Context, shardID string) (checkpoint.Lineage, bool, error)
	Read(ctx context.Context, shardID string) (*checkpoint.ShardLease, error)
}

// tailAPI reads a finished parent's records; *kinesis.Client satisfies it.
type tailAPI interface {
	GetShardIterator(ctx context.Context, in *kinesis.GetShardIteratorInput, optFns ...func(*kinesis.Options)) (*kinesis.GetShardIteratorOutput, error)
	GetRecords(ctx context.Context, in *kinesis.GetRecordsInput, optFns ...func(*kinesis.Options)) (*kinesis.GetRecordsOutput, error)
}

// shardOpener is the worker's opener. A child shard of a reshard starts from its parents: the
// pipeline loads their keyed state (within the child's hash key range), and the child reads their
// tails, the records each parent had not handled when it ended (events held for reordering, and
// what was read after them), before its own records; so an event waiting for a predecessor keeps
// waiting, on the child, where the predecessor arrives. A tail is read only while the child has no
// checkpoint: once it has one, everything before it, the tails included, is handled.
type shardOpener struct {
	pipeline pipelineOpener
	leases   lineageReader
	kin      tailAPI
	stream   string
	log      *zap.Logger
	retry    retry.Policy
	// pageSize is the GetRecords limit for tails; default 1,000.
	pageSize int32
}

// maxEmptyTailReads bounds consecutive empty GetRecords on a finished shard that still returns a
// next iterator (an emulator may, at the end of a closed shard).
const maxEmptyTailReads = 20

func (o *shardOpener) open(ctx context.Context, shardID, cp string) (batchProcessor, []checkpoint.TailSegment, error) {
	lin, known, err := o.leases.Lineage(ctx, shardID)
	if err != nil {
		return nil, nil, fmt.Errorf("lineage: %w", err)
	}
	if !known {
		o.log.Warn("shard not in the stream's shard list; opening it without lineage", zap.String("shard", shardID))
	}
	plin := processors.Lineage{Parents: lin.Parents}
	if lin.HashLo != "" && lin.HashHi != "" {
		if plin.HashLo, err = hashKey(lin.HashLo); err == nil {
			plin.HashHi, err = hashKey(lin.HashHi)
		}
		if err != nil {
			return nil, nil, fmt.Errorf("hash key range of %s: %w", shardID, err)
		}
	}
	shard, err := o.pipeline.OpenShard(ctx, shardID, plin)
	if err != nil {
		return nil, nil, err
	}
	var inherited []checkpoint.TailSegment
	for _, parent := range lin.Parents {
		row, err := o.leases.Read(ctx, parent)
		if err != nil {
			shard.Close()
			return nil, nil, fmt.Errorf("parent %s: %w", parent, err)
		}
		if row != nil {
			inherited = append(inherited, row.Tail...)
		}
	}
	if cp != "" || len(inherited) == 0 {
		return shard, inherited, nil
	}
	for _, seg := range inherited {
		n, err := o.readTail(ctx, seg, plin, shard)
		if err != nil {
			shard.Close()
			return nil, nil, fmt.Errorf("tail of %s: %w", seg.Shard, err)
		}
		o.log.Info("read a parent's tail", zap.String("shard", shardID), zap.String("parent", seg.Shard),
			zap.String("after", seg.After), zap.Int("records", n))
	}
	return shard, inherited, nil
}

// readTail runs the records of seg that fall in lin's hash key range through shard, page by page,
// and returns how many it ran.
func (o *shardOpener) readTail(ctx context.Context, seg checkpoint.TailSegment, lin processors.Lineage, shard batchProcessor) (int, error) {
	in := &kinesis.GetShardIteratorInput{StreamName: aws.String(o.stream), ShardId: aws.String(seg.Shard), ShardIteratorType: types.ShardIteratorTypeTrimHorizon}
	if seg.After != "" {
		in.ShardIteratorType, in.StartingSequenceNumber = types.ShardIteratorTypeAfterSequenceNumber, aws.String(seg.After)
	}
	var it *string
	err := retry.Do(ctx, o.retry, func(ctx context.Context) error {
		out, err := o.kin.GetShardIterator(ctx, in)
		if err != nil {
			return gone(err)
		}
		it = out.ShardIterator
		return nil
	}, nil)
	if errors.Is(err, errShardGone) {
		o.log.Warn("parent shard left the stream (past its retention): its tail is gone", zap.String("parent", seg.Shard), zap.Error(err))
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	size := o.pageSize
	if size == 0 {
		size = 1000
	}
	n, empty := 0, 0
	for it != nil && empty < maxEmptyTailReads {
		var page *kinesis.GetRecordsOutput
		if err := retry.Do(ctx, o.retry, func(ctx context.Context) error {
			out, err := o.kin.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: it, Limit: aws.Int32(size)})
			page = out
			return gone(err)
		}, nil); err != nil {
			if errors.Is(err, errShardGone) {
				o.log.Warn("parent shard left the stream while its tail was read", zap.String("parent", seg.Shard), zap.Error(err))
				return n, nil
			}
			return n, err
		}
		it = page.NextShardIterator
		if len(page.Records) == 0 {
			empty++
			continue
		}
		empty = 0
		// An aggregate's records share its partition key (the hash key that placed it), so the
		// lineage decides on the record as written, then it is de-aggregated as the KCL's are.
		covered := make([]types.Record, 0, len(page.Records))
		for _, r := range page.Records {
			if lin.Covers(aws.ToString(r.PartitionKey)) {
				covered = append(covered, r)
			}
		}
		recs := toRecords(deaggregate(covered), seg.Shard)
		if len(recs) == 0 {
			continue
		}
		if _, err := shard.Process(ctx, recs); err != nil {
			return n, err
		}
		n += len(recs)
	}
	return n, nil
}

var errShardGone = errors.New("shard gone")

// gone marks the errors that say the shard's records cannot be read any more (it left the stream):
// they are not retried.
func gone(err error) error {
	var notFound *types.ResourceNotFoundException
	var expired *types.ExpiredIteratorException
	switch {
	case err == nil:
		return nil
	case errors.As(err, &notFound):
		return retry.Permanent(fmt.Errorf("%w: %w", errShardGone, err))
	case errors.As(err, &expired):
		return retry.Permanent(err)
	}
	return err
}

// hashKey converts a Kinesis hash key (decimal, 0 to 2^128-1) to 16 big-endian bytes.
func hashKey(s string) ([16]byte, error) {
	var out [16]byte
	n, ok := new(big.Int).SetString(s, 10)
	if !ok || n.Sign() < 0 || n.BitLen() > 128 {
		return out, fmt.Errorf("hash key %q is not a number of 0 to 2^128-1", s)
	}
	n.FillBytes(out[:])
	return out, nil
}
