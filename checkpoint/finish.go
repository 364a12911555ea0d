package checkpoint

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// TailSegment is where a finished shard's records not handled yet begin: the records of Shard
// after sequence number After (From its first record when After is ""). A shard whose processor
// holds events at SHARD_END (waiting, within the reorder window, for a predecessor that will arrive
// on a child) does not drain them: it finishes with its tail, and each child reads the tail before
// its own records, so the wait goes on where the events are.
type TailSegment struct {
	Shard string
	After string // sequence number; "" for the shard's first record
}

func (t TailSegment) String() string { return strings.TrimSpace(t.Shard + " " + t.After) }

func parseSegment(s string) TailSegment {
	shard, after, _ := strings.Cut(s, " ")
	return TailSegment{Shard: shard, After: after}
}

// Finish writes shardID's final checkpoint, ShardEnd, with its tail (nil: every record handled),
// fenced like Checkpoint; the children may be leased from then on. It reports whether it was
// written: (false, nil) means the lease belongs to someone else, who will finish the shard.
func (s *Store) Finish(ctx context.Context, shardID string, tail []TailSegment) (bool, error) {
	h := s.lookup(shardID)
	if h == nil {
		s.m.checkpoints.WithLabelValues("lease_lost").Inc()
		return false, nil
	}
	h.write.Lock()
	row, sent, err := s.fencedWrite(ctx, h, "checkpoint", func(u *update, sent time.Time) {
		u.set(attrCheckpoint, sv(ShardEnd))
		u.set(attrCheckpointedAt, sv(formatTime(sent)))
		u.set(attrLeaseTimeout, sv(formatTime(sent.Add(s.cfg.LeaseDuration))))
		u.set(attrRenewedAt, sv(formatTime(sent)))
		if len(tail) == 0 {
			u.remove(attrTail)
			return
		}
		l := make([]types.AttributeValue, len(tail))
		for i, t := range tail {
			l[i] = sv(t.String())
		}
		u.set(attrTail, &types.AttributeValueMemberL{Value: l})
	})
	h.write.Unlock()
	switch {
	case errors.Is(err, ErrLeaseLost):
		s.m.checkpoints.WithLabelValues("lease_lost").Inc()
		return false, nil
	case err != nil:
		s.m.checkpoints.WithLabelValues("error").Inc()
		return false, err
	}
	s.extend(h, sent, row)
	s.m.checkpoints.WithLabelValues("ok").Inc()
	return true, nil
}
