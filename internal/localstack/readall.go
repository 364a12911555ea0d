package localstack

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
)

// ShardRecord is one record read from a stream, with the shard it came from.
type ShardRecord struct {
	ShardID string
	Record  types.Record
}

// ReadAll reads every record of stream from TRIM_HORIZON, across all shards
// including closed parents of splits and merges, until each shard is caught
// up (an empty read with MillisBehindLatest 0, or the end of a closed shard).
// Records come shard by shard in ListShards order, each shard in sequence
// order. It is a snapshot for assertions: records put while it runs may or may
// not be included. Bound it with ctx.
func (s *Stack) ReadAll(ctx context.Context, stream string) ([]ShardRecord, error) {
	c := s.Kinesis()
	var shards []types.Shard
	in := &kinesis.ListShardsInput{StreamName: aws.String(stream)}
	for {
		out, err := c.ListShards(ctx, in)
		if err != nil {
			return nil, fmt.Errorf("read all %s: list shards: %w", stream, err)
		}
		shards = append(shards, out.Shards...)
		if out.NextToken == nil {
			break
		}
		// With a NextToken the stream name must be absent.
		in = &kinesis.ListShardsInput{NextToken: out.NextToken}
	}

	var all []ShardRecord
	for _, sh := range shards {
		id := aws.ToString(sh.ShardId)
		it, err := c.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{
			StreamName:        aws.String(stream),
			ShardId:           sh.ShardId,
			ShardIteratorType: types.ShardIteratorTypeTrimHorizon,
		})
		if err != nil {
			return nil, fmt.Errorf("read all %s: shard %s: iterator: %w", stream, id, err)
		}
		iter := it.ShardIterator
		for iter != nil {
			out, err := c.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: iter, Limit: aws.Int32(10000)})
			if err != nil {
				return nil, fmt.Errorf("read all %s: shard %s: get records: %w", stream, id, err)
			}
			for _, r := range out.Records {
				all = append(all, ShardRecord{ShardID: id, Record: r})
			}
			if len(out.Records) == 0 && aws.ToInt64(out.MillisBehindLatest) == 0 {
				break
			}
			iter = out.NextShardIterator
		}
	}
	return all, nil
}
