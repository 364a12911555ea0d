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
	gone       bool
	ctx        context.Context
	cancel     context.CancelCauseFunc
	own        context.Context
	ownCancel  context.CancelCauseFunc
	timer      *time.Timer
	handTimer  *time.Timer

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
	delete(s.held, h.id)
	h.timer.Stop()
	if h.handTimer != nil {
		h.handTimer.Stop()
	}
	h.cancel(cause)
	h.ownCancel(cause)
	// Our own row counts as expired for us from the instant it expires for everyone else.
	s.obs[h.id] = observation{
		version: fmt.Sprintf("%s|%d|%s", s.cfg.WorkerID, h.counter, h.timeoutS),
		since:   h.validUntil.Add(-s.cfg.LeaseDuration),
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
	h := &heldLease{id: id, counter: counter, timeoutS: timeoutS, validUntil: sent.Add(s.cfg.LeaseDuration)}
	h.ctx, h.cancel = context.WithCancelCause(s.life)
	h.own, h.ownCancel = context.WithCancelCause(s.life)
	h.timer = time.AfterFunc(h.validUntil.Sub(s.now()), func() { s.expire(h) })
	s.held[id] = h
	s.m.held.Set(float64(len(s.held)))
	s.m.acquired.Inc()
	return h
}

// expire runs on the lease's timer: past validUntil without a successful owner write, the lease
// may already belong to someone else.
func (s *Store) expire(h *heldLease) {
	s.mu.Lock()
	if h.gone {
		s.mu.Unlock()
		return
	}
	if now := s.now(); now.Before(h.validUntil) {
		h.timer.Reset(h.validUntil.Sub(now))
		s.mu.Unlock()
		return
	}
	fire := s.finishLocked(h, leaseLost(h.id, "expired without renewal"), "expired")
	s.mu.Unlock()
	fire()
}

// extend records a successful owner write sent at sent.
func (s *Store) extend(h *heldLease, sent time.Time, row *leaseRow) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if row != nil {
		s.rows[h.id] = row
	}
	if h.gone {
		return
	}
	h.validUntil = sent.Add(s.cfg.LeaseDuration)
	h.timeoutS = formatTime(h.validUntil)
	h.timer.Reset(h.validUntil.Sub(s.now()))
}
