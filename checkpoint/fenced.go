package checkpoint

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/kinesis-events/pipeline/internal/ambiguous"
)

// Checkpoint writes shardID's checkpoint (a sequence number, or ShardEnd), fenced on this worker
// still owning the lease; the write also renews the lease. It reports whether the checkpoint was
// written: (false, nil) means the lease belongs to someone else (or is no longer held) and the
// write will never happen; the lease's contexts are cancelled then. An error is a failed call
// whose outcome the store could not settle.
func (s *Store) Checkpoint(ctx context.Context, shardID, seq string) (bool, error) {
	if seq == "" {
		return false, fmt.Errorf("shard %s: empty checkpoint", shardID)
	}
	h := s.lookup(shardID)
	if h == nil {
		s.m.checkpoints.WithLabelValues("lease_lost").Inc()
		return false, nil
	}
	h.write.Lock()
	row, sent, err := s.fencedWrite(ctx, h, "checkpoint", func(u *update, sent time.Time) {
		u.set(attrCheckpoint, sv(seq))
		u.set(attrCheckpointedAt, sv(formatTime(sent)))
		u.set(attrLeaseTimeout, sv(formatTime(sent.Add(s.cfg.LeaseDuration))))
		u.set(attrRenewedAt, sv(formatTime(sent)))
		s.setBehind(u, h)
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

// fencedWrite performs one owner write conditional on (AssignedTo = us, LeaseCounter = ours) and
// bumps the counter. The caller holds h.write. If an earlier write timed out and may have landed,
// a failed condition is checked against the row once before the lease is declared lost.
func (s *Store) fencedWrite(ctx context.Context, h *heldLease, op string, build func(u *update, sent time.Time)) (*leaseRow, time.Time, error) {
	for attempt := 0; ; attempt++ {
		s.mu.Lock()
		if h.gone {
			s.mu.Unlock()
			return nil, time.Time{}, leaseLost(h.id, "not held")
		}
		sent := s.now()
		if !sent.Before(h.validUntil) {
			fire := s.finishLocked(h, leaseLost(h.id, "expired without renewal"), "expired")
			s.mu.Unlock()
			fire()
			return nil, sent, leaseLost(h.id, "expired without renewal")
		}
		n := h.counter
		s.mu.Unlock()

		u := &update{}
		u.condEq(attrOwner, sv(s.cfg.WorkerID))
		u.condEq(attrCounter, nv(n))
		u.set(attrCounter, nv(n+1))
		build(u, sent)
		// The SDK retries an attempt whose answer was lost (a 200 cut off): if that attempt landed,
		// the retry fails our own condition. Such attempts count as writes that may have landed.
		tctx, tracker := ambiguous.Track(ctx)
		out, err := s.updateItem(tctx, h.id, u)
		if unknown := tracker.Unknown(); unknown > 0 && err != nil {
			s.mu.Lock()
			h.ambiguous += unknown
			s.mu.Unlock()
		}
		switch {
		case err == nil:
			row, derr := decodeRow(out.Attributes)
			if derr != nil {
				s.log.Warn("undecodable lease row after write", zap.String("shard", h.id), zap.Error(derr))
			}
			s.mu.Lock()
			gone := h.gone
			if !gone {
				h.counter = n + 1
				h.ambiguous = 0
			}
			s.mu.Unlock()
			if gone && op == "renew" {
				return row, sent, leaseLost(h.id, "expired without renewal")
			}
			return row, sent, nil
		case isConditionFailed(err):
			if attempt == 0 && s.adoptAmbiguous(ctx, h, n) {
				continue
			}
			s.mu.Lock()
			fire := s.finishLocked(h, leaseLost(h.id, "fenced: another owner or a newer lease counter"), "fenced")
			s.mu.Unlock()
			fire()
			return nil, sent, leaseLost(h.id, "fenced: another owner or a newer lease counter")
		case isTableMissing(err):
			s.tableLost(err)
			return nil, sent, leaseLost(h.id, "lease table missing")
		default:
			s.mu.Lock()
			h.ambiguous++
			s.mu.Unlock()
			return nil, sent, fmt.Errorf("shard %s: %s: %w", h.id, op, err)
		}
	}
}

// adoptAmbiguous checks whether writes of ours that timed out landed after all: the row still
// names us and its counter is within what those writes could have set.
func (s *Store) adoptAmbiguous(ctx context.Context, h *heldLease, n int64) bool {
	s.mu.Lock()
	amb := h.ambiguous
	s.mu.Unlock()
	if amb == 0 {
		return false
	}
	row, err := s.getRow(ctx, h.id)
	if err != nil || row == nil || row.Owner != s.cfg.WorkerID || !row.HasCounter {
		return false
	}
	if row.Counter <= n || row.Counter > n+int64(amb) {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if h.gone {
		return false
	}
	h.counter = row.Counter
	h.ambiguous = 0
	return true
}
