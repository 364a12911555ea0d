package worker

import (
	"context"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/smithy-go/middleware"
)

// shardListTTL is how long the KCL's client reuses a stream's shard list. The KCL lists the
// stream's shards on every shard sync (ShardSync, a quarter second, per worker): in a spike, 62
// shards listed four times a second by each of six workers, for a list that changes at most once
// per reshard. New shards are seen at most this much later; their parents must drain first anyway.
const shardListTTL = time.Second

// shardListCache answers a ListShards call for a whole stream (a first page, no filter) from the
// last answer for the same stream when it is younger than ttl and was complete (no NextToken).
// Calls with a token, a filter or a page size go through. Safe for concurrent use.
type shardListCache struct {
	ttl time.Duration
	now func() time.Time

	mu    sync.Mutex
	lists map[string]cachedList
}

type cachedList struct {
	at  time.Time
	out *kinesis.ListShardsOutput
}

// kclClient returns a copy of kc for the KCL: its ListShards calls go through c, and its GetRecords
// answers are de-aggregated (deaggregating).
func kclClient(kc *kinesis.Client, c *shardListCache) *kinesis.Client {
	return kinesis.New(kc.Options(), func(o *kinesis.Options) {
		o.APIOptions = append(o.APIOptions, c.middleware, deaggregating)
	})
}

func newShardListCache(ttl time.Duration, now func() time.Time) *shardListCache {
	if now == nil {
		now = time.Now
	}
	return &shardListCache{ttl: ttl, now: now, lists: map[string]cachedList{}}
}

func (c *shardListCache) middleware(stack *middleware.Stack) error {
	if stack.ID() != "ListShards" {
		return nil
	}
	return stack.Initialize.Add(middleware.InitializeMiddlewareFunc("ShardListCache",
		func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
			req, ok := in.Parameters.(*kinesis.ListShardsInput)
			if !ok || req.StreamName == nil || req.NextToken != nil || req.ExclusiveStartShardId != nil || req.ShardFilter != nil ||
				req.MaxResults != nil || req.StreamARN != nil || req.StreamCreationTimestamp != nil {
				return next.HandleInitialize(ctx, in)
			}
			stream := *req.StreamName
			now := c.now()
			c.mu.Lock()
			hit, ok := c.lists[stream]
			c.mu.Unlock()
			if ok && now.Sub(hit.at) < c.ttl {
				cp := *hit.out // the KCL reads the answer only; the shards are shared
				return middleware.InitializeOutput{Result: &cp}, middleware.Metadata{}, nil
			}
			out, md, err := next.HandleInitialize(ctx, in)
			if res, ok := out.Result.(*kinesis.ListShardsOutput); err == nil && ok && res.NextToken == nil {
				c.mu.Lock()
				c.lists[stream] = cachedList{at: now, out: res}
				c.mu.Unlock()
			}
			return out, md, err
		}), middleware.Before)
}
