package checkpoint

import (
	"context"
	"errors"
	"time"

	"go.uber.org/zap"
)

// Renew renews this worker's lease on shardID with a fenced write. It reports whether the lease
// is still this worker's: (true, nil) renewed; (false, nil) lost (fenced, expired, the row or the
// table gone, or never held), and the lease's contexts are cancelled; (true, err) the renewal did
// not land, err says why, and the lease stays valid until its local expiry.
//
// A renewal that fails for a reason other than fencing (a call timeout, throttling, a server
// error) is retried at once, with a short backoff, for as long as the lease is valid, so a
// renewal can take up to LeaseDuration.
func (s *Store) Renew(ctx context.Context, shardID string) (bool, error) {
	h := s.lookup(shardID)
	if h == nil {
		s.m.renewals.WithLabelValues("failed").Inc()
		return false, nil
	}
	// The caller renews again only after its renewal period: a lease given up after one failed call
	// would survive just two or three slow calls, far less than LeaseDuration.
	delay := 50 * time.Millisecond
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
		if !s.now().Add(delay).Before(until) {
			s.log.Warn("lease renewal failed; lease stays valid until its local expiry",
				zap.String("shard", shardID), zap.Time("valid_until", until), zap.Int("attempts", attempt+1), zap.Error(err))
			return true, err
		}
		s.log.Warn("lease renewal failed; retrying while the lease is valid",
			zap.String("shard", shardID), zap.Time("valid_until", until), zap.Int("attempt", attempt), zap.Error(err))
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return true, context.Cause(ctx)
		case <-t.C:
		}
		delay = min(2*delay, time.Second)
	}
}
