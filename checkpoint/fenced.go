package checkpoint

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/kinesis-events/pipeline/internal/ambiguous"
	"github.com/kinesis-events/pipeline/internal/retry"
)

// checkpointRetry spaces the attempts of a checkpoint write that failed transiently.
var checkpointRetry = retry.Policy{Initial: 100 * time.Millisecond, Max: 2 * time.Second}

// Checkpoint writes shardID's checkpoint (a sequence number, or ShardEnd), fenced on this worker
// still owning the lease; the write also renews the lease (a suspended one goes on). It reports
// whether the checkpoint was written: (false, nil) means the lease belongs to someone else (or is
// no longer held) and the write will never happen; the lease's contexts are cancelled then.
//
// A write that fails transiently (a call timeout, throttling, a server error) is retried with
// backoff while the lease is this worker's, valid or suspended, for at most
// Config.CheckpointRetryBudget from the first failure: each attempt is fenced, so it can only land
// while nobody else took the lease. Checkpoint returns an error when ctx ends first, when the
// failure is not transient (the request itself is wrong, access is denied), or when the budget
// ran out (wrapping ErrCheckpointStuck: renewals may still land, so the lease alone would never
// end the retries; the caller stops the shard and abandons its lease).
func (s *Store) Checkpoint(ctx context.Context, shardID, seq string) (bool, error) {
	if seq == "" {
		return false, fmt.Errorf("shard %s: empty checkpoint", shardID)
	}
	h := s.lookup(shardID)
	if h == nil {
		s.m.checkpoints.WithLabelValues("lease_lost").Inc()
		return false, nil
	}
	b := checkpointRetry.Start()
	var failingSince time.Time
	for attempt := 1; ; attempt++ {
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
		case err == nil:
			s.extend(h, sent, row)
			s.mu.Lock()
			s.servedLocked(shardID)
			s.mu.Unlock()
			s.m.checkpoints.WithLabelValues("ok").Inc()
			return true, nil
		case errors.Is(err, ErrLeaseLost):
			s.m.checkpoints.WithLabelValues("lease_lost").Inc()
			return false, nil
		case ctx.Err() != nil || !transient(err):
			s.m.checkpoints.WithLabelValues("error").Inc()
			return false, err
		}
		now := s.now()
		if failingSince.IsZero() {
			failingSince = now
		}
		if failing := now.Sub(failingSince); failing >= s.cfg.CheckpointRetryBudget {
			s.m.checkpoints.WithLabelValues("gave_up").Inc()
			s.log.Error("checkpoint write kept failing past its retry budget; giving up", zap.String("shard", shardID),
				zap.String("seq", seq), zap.Int("attempts", attempt), zap.Duration("failing_for", failing), zap.Error(err))
			return false, fmt.Errorf("shard %s: %w (%d attempts over %v): %w", shardID, ErrCheckpointStuck, attempt, failing.Round(time.Millisecond), err)
		}
		s.m.checkpoints.WithLabelValues("retried").Inc()
		delay, _ := b.Next() // unbounded policy: CheckpointRetryBudget, the lease's end or ctx bounds the retries
		s.log.Warn("checkpoint write failed; retrying while the lease is ours", zap.String("shard", shardID),
			zap.String("seq", seq), zap.Int("attempt", attempt), zap.Duration("retry_in", delay), zap.Error(err))
		if serr := retry.Sleep(ctx, delay); serr != nil {
			s.m.checkpoints.WithLabelValues("error").Inc()
			return false, fmt.Errorf("shard %s: checkpoint not written before the caller gave up: %w", shardID, errors.Join(err, serr))
		}
	}
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
		// A suspended lease (run out locally) writes too: the condition tells whether a peer took
		// it meanwhile, and a write that lands makes it valid again.
		sent := s.now()
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
				return row, sent, leaseLost(h.id, "dropped while renewing")
			}
			return row, sent, nil
		case isConditionFailed(err):
			if attempt == 0 {
				switch row, landed := s.adoptAmbiguous(ctx, h, n, op); {
				case landed && op == "release":
					return row, sent, nil // our release landed; its resend found the owner gone
				case landed:
					continue // write again on top of the write that landed
				}
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

// adoptAmbiguous checks whether writes of ours whose outcome is unknown (timed out, or resent by
// the SDK after their answer was lost) landed after all: the row's counter is within what those
// writes could have set, and the row still names us, or, for a release, names nobody (the release
// landed). It returns the row and whether they landed.
func (s *Store) adoptAmbiguous(ctx context.Context, h *heldLease, n int64, op string) (*leaseRow, bool) {
	s.mu.Lock()
	amb := h.ambiguous
	s.mu.Unlock()
	if amb == 0 {
		return nil, false
	}
	row, err := s.getRow(ctx, h.id)
	if err != nil || row == nil || !row.HasCounter || row.Counter <= n || row.Counter > n+int64(amb) {
		return nil, false
	}
	switch {
	case row.Owner == s.cfg.WorkerID:
	case op == "release" && row.Owner == "":
	default:
		return nil, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if h.gone {
		return nil, false
	}
	h.counter = row.Counter
	h.ambiguous = 0
	s.m.adopted.WithLabelValues(op).Inc()
	return row, true
}
