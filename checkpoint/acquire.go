package checkpoint

import (
	"context"
	"errors"
	"fmt"

	"go.uber.org/zap"

	"github.com/kinesis-events/pipeline/internal/ambiguous"
)

// Acquire takes the lease on shardID for this worker when it may: the shard is in the stream and
// not finished, its parents have finished, nobody else holds a live lease on it or has claimed it,
// and (unless balancing is off) this worker holds less than its fair share. A refusal, including
// a lost race with another worker, is an Acquisition with Acquired false and its Reason, not an
// error. An error means the store could not decide (a failed call, the table being recreated,
// the store closed).
func (s *Store) Acquire(ctx context.Context, shardID string) (Acquisition, error) {
	id := shardID
	s.mu.Lock()
	tableErr, closed, holding := s.tableErr, s.closed, s.held[id] != nil
	s.mu.Unlock()
	switch {
	case closed:
		return Acquisition{}, fmt.Errorf("shard %s: %w", id, ErrStoreClosed)
	case tableErr != nil:
		return Acquisition{}, fmt.Errorf("shard %s: %w", id, tableErr)
	case holding:
		return s.deny(ErrAlreadyHeld, ""), nil
	case IsReserved(id):
		return s.deny(ErrUnknownShard, "reserved key"), nil
	}
	s.mu.Lock()
	benched := s.benchedLocked(id, s.now())
	s.mu.Unlock()
	if benched {
		return s.deny(ErrStoppedHere, ""), nil
	}
	meta, known, err := s.lineageOf(ctx, id)
	if err != nil {
		return Acquisition{}, err
	}
	if !known {
		return s.deny(ErrUnknownShard, ""), nil
	}
	// fullAfterTake: taking this lease brings us to our share, so a claim we posted on another
	// shard is no longer needed and is withdrawn (left in place it would keep counting us as a
	// worker wanting a lease, and reserve that lease for us, until ClaimTTL).
	fullAfterTake := true
	if !s.cfg.DisableBalancing {
		d, err := s.decide(ctx)
		fullAfterTake = d.Load+1 >= d.Target
		if err != nil {
			return Acquisition{}, fmt.Errorf("shard %s: plan leases: %w", id, err)
		}
		if d.Claim != "" {
			if _, err := s.postClaim(ctx, d.Claim); err != nil {
				s.log.Debug("claim failed", zap.String("shard", d.Claim), zap.Error(err))
			}
		}
		// A shard another worker stopped and released is taken even above our share (d.Rescue):
		// it needs a worker other than the one that could not serve it, and balancing evens the
		// load out afterwards without handing it back.
		if !d.MayAcquire && !d.Rescue[id] {
			return s.deny(ErrFairShare, fmt.Sprintf("holds %d, share %d of %d leasable among %d workers", d.Load, d.Target, d.Leasable, d.Workers)), nil
		}
	}
	if waiting, err := s.parentsDone(ctx, meta); err != nil || waiting != "" {
		if err != nil {
			return Acquisition{}, err
		}
		return s.deny(ErrWaitingOnParent, waiting), nil
	}
	row, err := s.getRow(ctx, id)
	if err != nil {
		return Acquisition{}, err
	}
	now := s.now()
	s.mu.Lock()
	expires, claimExpires := s.expiresLocked(row), s.claimExpiresLocked(row)
	s.mu.Unlock()
	if reason := grantCheck(now, row, expires, claimExpires, s.cfg.WorkerID); reason != nil {
		detail := ""
		if row != nil && row.Owner != "" {
			detail = "owner " + row.Owner
		}
		return s.deny(reason, detail), nil
	}

	sent := s.now()
	timeoutS := formatTime(sent.Add(s.cfg.LeaseDuration))
	u := &update{}
	u.condState(row)
	var counter, switches int64 = 1, 1
	if row != nil {
		counter, switches = row.Counter+1, row.OwnerSwitches+1
	}
	u.set(attrOwner, sv(s.cfg.WorkerID))
	u.set(attrCounter, nv(counter))
	u.set(attrOwnerSwitches, nv(switches))
	u.set(attrLeaseTimeout, sv(timeoutS))
	u.set(attrRenewedAt, sv(formatTime(sent)))
	u.set(attrAcquiredAt, sv(formatTime(sent)))
	if meta.Parent != "" {
		u.set(attrParent, sv(meta.Parent))
	}
	if meta.Adjacent != "" {
		u.set(attrAdjacent, sv(meta.Adjacent))
	}
	u.remove(attrClaim)
	u.remove(attrClaimedAt)
	// A stop recorded by Abandon stays in the row after the take: the planners keep the shard
	// away from the worker that stopped it (no claim by it, no voluntary hand-off to it), and the
	// next abandon tells its worker whether the fault followed the shard across hosts.
	tctx, tracker := ambiguous.Track(ctx)
	out, err := s.updateItem(tctx, id, u)
	var newRow *leaseRow
	if landed := s.landedTake(ctx, id, counter, err, tracker.Unknown()); landed != nil {
		newRow, err = landed, nil
	}
	switch {
	case isConditionFailed(err):
		return s.deny(ErrLeaseHeld, "lost the race"), nil
	case err != nil:
		if isTableMissing(err) {
			s.tableLost(err)
		}
		return Acquisition{}, fmt.Errorf("shard %s: take lease: %w", id, err)
	case newRow == nil:
		var derr error
		if newRow, derr = decodeRow(out.Attributes); derr != nil {
			s.log.Warn("undecodable lease row after take", zap.String("shard", id), zap.Error(derr))
		}
	}
	s.mu.Lock()
	if newRow != nil {
		s.putRowLocked(id, newRow)
	}
	stale := ""
	switch {
	case s.claimShard == id:
		s.claimShard = ""
	case s.claimShard != "" && fullAfterTake:
		stale, s.claimShard = s.claimShard, ""
	}
	s.addHeldLocked(id, counter, timeoutS, sent)
	s.mu.Unlock()
	if stale != "" {
		s.withdrawClaim(ctx, stale)
	}
	acq := Acquisition{Acquired: true}
	if newRow != nil {
		acq.Checkpoint = newRow.Checkpoint
	}
	if row != nil {
		acq.PreviousOwner = row.Owner
	}
	if row != nil && row.StopBy != "" {
		s.log.Info("taking a shard another worker's processor stopped", zap.String("shard", id),
			zap.String("stopped_by", row.StopBy), zap.String("stop_reason", row.StopReason))
	}
	s.log.Info("lease taken", zap.String("shard", id), zap.String("previous_owner", acq.PreviousOwner), zap.Int64("lease_counter", counter))
	return acq, nil
}

// landedTake settles a take whose outcome is unknown: the call failed without a definite answer
// (timed out, a 5xx), or its condition failed after an attempt whose answer was lost (the SDK
// resends such an attempt, and the resend fails the condition the first one changed). If the row
// names this worker with the counter the take wrote, the take landed: it returns that row.
// Anything else (a definite answer, another owner, a read that fails) returns nil.
func (s *Store) landedTake(ctx context.Context, id string, counter int64, err error, unknown int) *leaseRow {
	switch {
	case err == nil || isTableMissing(err):
		return nil
	case isConditionFailed(err) && unknown == 0:
		return nil // a definite answer: another worker won the race
	case !isConditionFailed(err) && (ctx.Err() != nil || !transient(err)):
		return nil
	}
	row, rerr := s.getRow(ctx, id)
	if rerr != nil || row == nil || row.Owner != s.cfg.WorkerID || !row.HasCounter || row.Counter != counter {
		return nil
	}
	s.m.adopted.WithLabelValues("take").Inc()
	s.log.Info("a take whose answer was lost had landed; lease adopted", zap.String("shard", id), zap.Int64("lease_counter", counter), zap.NamedError("answer", err))
	return row
}

// deny counts a refusal and returns it as an Acquisition.
func (s *Store) deny(reason error, detail string) Acquisition {
	label := "other"
	switch {
	case errors.Is(reason, ErrLeaseHeld):
		label = "held"
	case errors.Is(reason, ErrWaitingOnParent):
		label = "parents"
	case errors.Is(reason, ErrFairShare):
		label = "fair_share"
	case errors.Is(reason, ErrClaimedByOther):
		label = "claimed"
	case errors.Is(reason, ErrShardFinished):
		label = "finished"
	case errors.Is(reason, ErrUnknownShard):
		label = "unknown"
	case errors.Is(reason, ErrStoppedHere):
		label = "stopped_here"
	}
	s.m.denied.WithLabelValues(label).Inc()
	return Acquisition{Reason: reason, Detail: detail}
}
