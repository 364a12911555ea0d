package checkpoint

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
)

// shardMeta is one shard of the stream as ListShards reports it.
type shardMeta struct {
	ID       string
	Parent   string
	Adjacent string
	Closed   bool // has an EndingSequenceNumber
	StartSeq string
	EndSeq   string
}

func (m shardMeta) parents() []string {
	var ps []string
	if m.Parent != "" {
		ps = append(ps, m.Parent)
	}
	if m.Adjacent != "" && m.Adjacent != m.Parent {
		ps = append(ps, m.Adjacent)
	}
	return ps
}

// listShards returns every shard of the stream (open and closed, within retention), following
// pagination. Each page is a separate call bounded by callTimeout.
func listShards(ctx context.Context, kin KinesisAPI, stream string, callTimeout time.Duration) (map[string]shardMeta, error) {
	out := map[string]shardMeta{}
	in := &kinesis.ListShardsInput{StreamName: aws.String(stream)}
	for pages := 0; ; pages++ {
		if pages > 10000 {
			return nil, fmt.Errorf("list shards of %s: too many pages", stream)
		}
		cctx, cancel := context.WithTimeout(ctx, callTimeout)
		page, err := kin.ListShards(cctx, in)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("list shards of %s: %w", stream, err)
		}
		for _, s := range page.Shards {
			m := shardMeta{
				ID:       aws.ToString(s.ShardId),
				Parent:   aws.ToString(s.ParentShardId),
				Adjacent: aws.ToString(s.AdjacentParentShardId),
			}
			if r := s.SequenceNumberRange; r != nil {
				m.StartSeq = aws.ToString(r.StartingSequenceNumber)
				m.EndSeq = aws.ToString(r.EndingSequenceNumber)
				m.Closed = r.EndingSequenceNumber != nil
			}
			out[m.ID] = m
		}
		if page.NextToken == nil {
			return out, nil
		}
		in = &kinesis.ListShardsInput{NextToken: page.NextToken}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
}
