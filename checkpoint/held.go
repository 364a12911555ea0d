package checkpoint

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"
)

// heldLease is a lease this worker holds. Fields below write are guarded by Store.mu.
type heldLease struct {
	id    string
	write sync.Mutex // serialises this lease's DynamoDB writes, so they never race on LeaseCounter

	counter    int64
	timeoutS   string    // the LeaseTimeout we last wrote
	validUntil time.Time // send time of the last successful owner write + LeaseDuration
	ambiguous  int       // owner write attempts whose outcome is unknown (timeouts, lost answers) since the last success
	handOff    bool
	busy       int  // batches in flight (Busy): a hand-off's fallback timer never releases meanwhile
	handDue    bool // the fallback fired during a batch: it is re-armed when the batch ends
	// suspended: validUntil passed without a successful owner write. The lease is still ours unless a
	// peer took it; no output may be written (WaitValid blocks) until a fenced write lands.
	suspended bool
	gone      bool
	cause     error         // why the lease ended, once gone
	wake      chan struct{} // closed (and replaced) whenever validity or ownership changes
	ctx       context.Context
	cancel    context.CancelCauseFunc
	own       context.Context
	ownCancel context.CancelCauseFunc
	timer     *time.Timer
	handTimer *time.Timer

	// behind is the shard's latest MillisBehindLatest (NoteMillisBehind), published with the
	// lease's next renewal or checkpoint when behindSet.
	behind    int64
	behindAt  time.Time
	behindSet bool
}

// finishLocked forgets a held lease and cancels its contexts. It returns the OnLeaseLost call to
// make once s.mu is released.
func (s *Store) finishLocked(h *heldLease, cause error, reason string) func() {
	if h.gone {
		return func() {}
	}
	h.gone = true
	h.cause = cause
	if h.suspended {
		h.suspended = false
		s.m.suspended.Dec()
	}
	s.wakeLocked(h)
	delete(s.held, h.id)
	h.timer.Stop()
	if h.handTimer != nil {
		h.handTimer.Stop()
	}
	h.cancel(cause)
	h.ownCancel(cause)
	// Our own row, if it still names us (a release whose write failed), counts as expired for us
	// from the instant our own lease ran out: we know when we last wrote it.
	s.obs[h.id] = observation{
		version:  fmt.Sprintf("%s|%d|%s", s.cfg.WorkerID, h.counter, h.timeoutS),
		since:    h.validUntil.Add(-s.cfg.LeaseDuration),
		lastRead: s.now(),
		gen:      s.failGen,
		own:      true,
	}
	s.m.held.Set(float64(len(s.held)))
	s.m.lost.WithLabelValues(reason).Inc()
	if errors.Is(cause, ErrLeaseLost) {
		s.log.Warn("lease lost", zap.String("shard", h.id), zap.String("reason", reason), zap.Error(cause))
	}
	hook, id := s.cfg.OnLeaseLost, h.id
	return func() {
		if hook != nil {
			hook(id, cause)
		}
	}
}

func (s *Store) addHeldLocked(id string, counter int64, timeoutS string, sent time.Time) *heldLease {
	h := &heldLease{id: id, counter: counter, timeoutS: timeoutS, validUntil: sent.Add(s.cfg.LeaseDuration), wake: make(chan struct{})}
	h.ctx, h.cancel = context.WithCancelCause(s.life)
	h.own, h.ownCancel = context.WithCancelCause(s.life)
	h.timer = time.AfterFunc(h.validUntil.Sub(s.now()), func() { s.expire(h) })
	s.held[id] = h
	s.m.held.Set(float64(len(s.held)))
	s.m.acquired.Inc()
	return h
}

// wakeLocked wakes every WaitValid of h: its validity or ownership changed.
func (s *Store) wakeLocked(h *heldLease) {
	close(h.wake)
	h.wake = make(chan struct{})
}

// expire runs on the lease's timer: past validUntil without a successful owner write a peer may
// count the lease as expired, so the lease is suspended: it is not lost (nobody may have taken it:
// DynamoDB may be paused for everyone), but nothing may be written under it until a fenced owner
// write lands (the lease goes on) or fails its condition (the lease is lost).
func (s *Store) expire(h *heldLease) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if h.gone || h.suspended {
		return
	}
	if now := s.now(); now.Before(h.validUntil) {
		h.timer.Reset(h.validUntil.Sub(now))
		return
	}
	h.suspended = true
	s.m.suspended.Inc()
	s.m.suspensions.Inc()
	s.wakeLocked(h)
	s.log.Warn("lease suspended: it ran out locally without a renewal; no output until a fenced renewal lands (or the lease is lost to a peer)",
		zap.String("shard", h.id), zap.Time("valid_until", h.validUntil))
}

// extend records a successful owner write sent at sent: the lease is valid until sent +
// LeaseDuration, and a suspended lease goes on.
func (s *Store) extend(h *heldLease, sent time.Time, row *leaseRow) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if row != nil {
		s.putRowLocked(h.id, row)
	}
	if h.gone {
		return
	}
	h.validUntil = sent.Add(s.cfg.LeaseDuration)
	h.timeoutS = formatTime(h.validUntil)
	h.timer.Reset(h.validUntil.Sub(s.now()))
	if h.suspended {
		h.suspended = false
		s.m.suspended.Dec()
		s.log.Info("lease resumed: a fenced write landed after the lease ran out locally; nobody had taken it",
			zap.String("shard", h.id))
	}
	s.wakeLocked(h)
}

// WaitValid is the gate to call before every output write made under the lease on shardID. It
// returns nil at once while the lease is valid locally (owned, and its last successful owner write
// was sent less than LeaseDuration ago). While the lease is suspended (it ran out locally, nobody
// is known to have taken it) it blocks until a fenced renewal or checkpoint lands (then nil) or
// the lease ends. When the lease is not held, or ends while waiting, it returns a non-nil error:
// the lease's cause (a *LeaseLostError, or one wrapping ErrLeaseReleased or ErrLeaseHandedOff once
// released after a hand-off), or a *LeaseLostError "not held". When ctx ends first it returns
// ctx's cause. A lease being handed off is still valid: its in-flight batch finishes.
//
// A write that passed the gate may still be in flight when the lease runs out; the lease's
// renewal period (a third of LeaseDuration at most) leaves the rest of the duration as margin.
func (s *Store) WaitValid(ctx context.Context, shardID string) error {
	for {
		s.mu.Lock()
		h := s.held[shardID]
		if h == nil {
			s.mu.Unlock()
			return leaseLost(shardID, "not held")
		}
		if s.now().Before(h.validUntil) {
			s.mu.Unlock()
			return nil
		}
		wake := h.wake
		s.mu.Unlock()
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-wake:
		}
		s.mu.Lock()
		gone, cause := h.gone, h.cause
		s.mu.Unlock()
		if gone {
			return cause
		}
	}
}

// Suspended reports whether this worker holds the lease on shardID and it is suspended (see
// WaitValid).
func (s *Store) Suspended(shardID string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	h := s.held[shardID]
	return h != nil && !s.now().Before(h.validUntil)
}
