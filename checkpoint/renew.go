package checkpoint

import (
	"context"
	"errors"
	"time"

	"go.uber.org/zap"

	"github.com/kinesis-events/pipeline/internal/retry"
)

// renewRetry spaces the attempts of one renewal whose writes fail for a reason other than fencing.
var renewRetry = retry.Policy{Initial: 50 * time.Millisecond, Max: time.Second}

// Renew renews this worker's lease on shardID with a fenced write (owner = this worker, counter =
// the one it last wrote). It reports whether the lease is still this worker's: (true, nil)
// renewed, valid for LeaseDuration from the write's send time (a suspended lease goes on);
// (false, nil) lost (fenced by a peer's take or a reset, the row or the table gone, or not held),
// and the lease's contexts are cancelled; (true, err) the renewal did not land, err says why: the
// lease stays valid until its local expiry and is suspended after it (see WaitValid), until a
// later renewal lands or finds it lost.
//
// A renewal that fails for a reason other than fencing (a call timeout, throttling, a server
// error) is retried at once, with a short backoff, for as long as the lease is valid, so a
// renewal can take up to LeaseDuration; a suspended lease gets one attempt per call.
func (s *Store) Renew(ctx context.Context, shardID string) (bool, error) {
	h := s.lookup(shardID)
	if h == nil {
		s.m.renewals.WithLabelValues("failed").Inc()
		return false, nil
	}
	// The caller renews again only after its renewal period: a lease given up after one failed call
	// would survive just two or three slow calls, far less than LeaseDuration.
	b := renewRetry.Start()
	for attempt := 0; ; attempt++ {
		h.write.Lock()
		row, sent, err := s.fencedWrite(ctx, h, "renew", func(u *update, sent time.Time) {
			u.set(attrLeaseTimeout, sv(formatTime(sent.Add(s.cfg.LeaseDuration))))
			u.set(attrRenewedAt, sv(formatTime(sent)))
			s.setBehind(u, h)
		})
		h.write.Unlock()
		if err == nil {
			s.extend(h, sent, row)
			s.m.renewals.WithLabelValues("ok").Inc()
			s.maybeHandOff(ctx)
			return true, nil
		}
		s.m.renewals.WithLabelValues("failed").Inc()
		if errors.Is(err, ErrLeaseLost) {
			return false, nil
		}
		s.mu.Lock()
		until := h.validUntil
		s.mu.Unlock()
		delay, _ := b.Next() // the policy is unbounded: the lease's validity bounds the retries
		if !s.now().Add(delay).Before(until) {
			s.log.Warn("lease renewal failed; lease stays valid until its local expiry",
				zap.String("shard", shardID), zap.Time("valid_until", until), zap.Int("attempts", attempt+1), zap.Error(err))
			return true, err
		}
		s.log.Warn("lease renewal failed; retrying while the lease is valid",
			zap.String("shard", shardID), zap.Time("valid_until", until), zap.Int("attempt", attempt), zap.Error(err))
		if err := retry.Sleep(ctx, delay); err != nil {
			return true, err
		}
	}
}
