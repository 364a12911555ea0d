package kclctl

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
)

// KinesisReader is the part of the Kinesis API lag measurement uses. *kinesis.Client implements it.
type KinesisReader interface {
	GetShardIterator(ctx context.Context, in *kinesis.GetShardIteratorInput, optFns ...func(*kinesis.Options)) (*kinesis.GetShardIteratorOutput, error)
	GetRecords(ctx context.Context, in *kinesis.GetRecordsInput, optFns ...func(*kinesis.Options)) (*kinesis.GetRecordsOutput, error)
}

const (
	// lagReads bounds the GetRecords calls per shard: an empty read while MillisBehindLatest > 0 means
	// the iterator stands in a gap, and the next one may find the record.
	lagReads = 5
	// lagConcurrency bounds the shards measured at once.
	lagConcurrency = 8
)

// MeasureLag sets Lag on every shard (in place) as of now and returns a warning for every shard whose
// lag could not be read. Each shard costs one GetShardIterator and one to lagReads GetRecords calls
// with Limit 1; shards are measured concurrently, at most lagConcurrency at a time.
func MeasureLag(ctx context.Context, kin KinesisReader, stream string, shards []Shard, now time.Time) []Warning {
	warns := make([]*Warning, len(shards))
	sem := make(chan struct{}, lagConcurrency)
	var wg sync.WaitGroup
	for i := range shards {
		wg.Go(func() {
			select {
			case sem <- struct{}{}:
				defer func() { <-sem }()
			case <-ctx.Done():
				shards[i].Lag = Lag{Status: LagUnknown, Reason: ctx.Err().Error()}
				warns[i] = &Warning{Shard: shards[i].ShardID, Kind: WarnLagUnknown, Message: "lag not measured: " + ctx.Err().Error()}
				return
			}
			lag, err := ShardLag(ctx, kin, stream, shards[i], now)
			shards[i].Lag = lag
			if err != nil {
				warns[i] = &Warning{Shard: shards[i].ShardID, Kind: WarnLagUnknown, Message: err.Error()}
			}
		})
	}
	wg.Wait()
	var out []Warning
	for _, w := range warns {
		if w != nil {
			out = append(out, *w)
		}
	}
	return out
}

// ShardLag measures one shard's lag: the age, at now, of the first record after its checkpoint. The
// error is set (and the Lag is LagUnknown) only when reading failed; a lag that is unknown by nature
// (LATEST start, shard gone) comes with a nil error.
func ShardLag(ctx context.Context, kin KinesisReader, stream string, s Shard, now time.Time) (Lag, error) {
	in := &kinesis.GetShardIteratorInput{StreamName: aws.String(stream), ShardId: aws.String(s.ShardID)}
	switch {
	case s.Checkpoint == CheckpointShardEnd:
		return Lag{Status: LagDone}, nil
	case s.State == StateGone:
		return Lag{Status: LagUnknown, Reason: "shard is no longer in the stream"}, nil
	case s.Checkpoint == CheckpointLatest:
		return Lag{Status: LagUnknown, Reason: "starts at LATEST: no position to measure from"}, nil
	case s.Checkpoint == CheckpointAtTimestamp:
		return Lag{Status: LagUnknown, Reason: "starts AT_TIMESTAMP: no position to measure from"}, nil
	case s.Checkpoint == "" || s.Checkpoint == CheckpointTrimHorizon:
		in.ShardIteratorType = types.ShardIteratorTypeTrimHorizon
	default:
		in.ShardIteratorType = types.ShardIteratorTypeAfterSequenceNumber
		in.StartingSequenceNumber = aws.String(s.Checkpoint)
	}
	fail := func(err error) (Lag, error) {
		err = fmt.Errorf("shard %s: lag: %w", s.ShardID, err)
		return Lag{Status: LagUnknown, Reason: err.Error()}, err
	}
	it, err := kin.GetShardIterator(ctx, in)
	if err != nil {
		return fail(fmt.Errorf("get shard iterator: %w", err))
	}
	iter := it.ShardIterator
	var behind *int64
	for range lagReads {
		if iter == nil {
			// A closed shard read to its end: nothing after the checkpoint.
			return Lag{Status: LagCaughtUp, MillisBehindLatest: behind}, nil
		}
		out, err := kin.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: iter, Limit: aws.Int32(1)})
		if err != nil {
			return fail(fmt.Errorf("get records: %w", err))
		}
		behind = out.MillisBehindLatest
		if len(out.Records) > 0 {
			arrived := aws.ToTime(out.Records[0].ApproximateArrivalTimestamp)
			if arrived.IsZero() {
				return fail(fmt.Errorf("record %s has no arrival timestamp", aws.ToString(out.Records[0].SequenceNumber)))
			}
			return Lag{Status: LagBehind, AgeMS: max(now.Sub(arrived), 0).Milliseconds(), OldestUnprocessed: arrived.UTC(), MillisBehindLatest: behind}, nil
		}
		if behind == nil || *behind == 0 {
			return Lag{Status: LagCaughtUp, MillisBehindLatest: behind}, nil
		}
		iter = out.NextShardIterator
	}
	return fail(fmt.Errorf("no record found within %d reads although %d ms behind latest", lagReads, aws.ToInt64(behind)))
}
