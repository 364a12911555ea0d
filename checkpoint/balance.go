package checkpoint

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"go.uber.org/zap"
)

// freshScan scans the table into the cached view when the last scan is ScanInterval old.
func (s *Store) freshScan(ctx context.Context) error {
	s.mu.Lock()
	stale := s.now().Sub(s.scanAt) >= s.cfg.ScanInterval
	s.mu.Unlock()
	if !stale {
		return nil
	}
	rows, err := s.scanTable(ctx)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.putScanLocked(rows)
	s.mu.Unlock()
	return nil
}

// decide plans on a table scan at most ScanInterval old.
func (s *Store) decide(ctx context.Context) (decision, error) {
	s.mu.Lock()
	lineageStale := len(s.lineage) == 0 || s.now().Sub(s.lineageAt) >= s.cfg.LineageRefresh
	s.mu.Unlock()
	if lineageStale {
		if err := s.refreshLineage(ctx); err != nil {
			s.log.Debug("lineage refresh failed; using cached lineage", zap.Error(err))
		}
	}
	if err := s.freshScan(ctx); err != nil {
		return decision{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	v := planView{Self: s.cfg.WorkerID, ClaimOutstanding: s.claimShard != "" && now.Before(s.claimUntil)}
	for id, h := range s.held {
		v.Held = append(v.Held, id)
		v.HandOffInFlight = v.HandOffInFlight || h.handOff
	}
	add := func(id string, meta *shardMeta) {
		ps := planShard{ID: id}
		if r := s.rows[id]; r != nil {
			ps.Finished = r.finished()
			if r.Owner != "" {
				ps.Owner = r.Owner
				ps.Expires = s.expiresLocked(r)
			}
			if r.Claim != "" {
				ps.Claim = r.Claim
				ps.ClaimExpires = s.claimExpiresLocked(r)
			}
			ps.StoppedBy = r.StopBy
		}
		if meta != nil {
			ps.Blocked = !s.parentsDoneLocked(*meta, now)
		}
		v.Shards = append(v.Shards, ps)
	}
	if len(s.lineage) > 0 {
		for id, meta := range s.lineage {
			add(id, &meta)
		}
	} else {
		for id := range s.rows {
			add(id, nil)
		}
	}
	sort.Slice(v.Shards, func(i, j int) bool { return v.Shards[i].ID < v.Shards[j].ID })
	return planLeases(now, v), nil
}

// maybeHandOff asks the processor of one lease to hand it off when this worker is above its
// share: one hand-off at a time, at most one per ScanInterval.
func (s *Store) maybeHandOff(ctx context.Context) {
	if s.cfg.DisableBalancing {
		return
	}
	s.mu.Lock()
	busy := s.closed || s.tableErr != nil || s.now().Sub(s.lastHandOff) < s.cfg.ScanInterval
	for _, h := range s.held {
		busy = busy || h.handOff
	}
	s.mu.Unlock()
	if busy {
		return
	}
	d, err := s.decide(ctx)
	if err != nil {
		s.log.Debug("plan leases failed", zap.Error(err))
		return
	}
	if d.HandOff == "" {
		return
	}
	s.mu.Lock()
	h := s.held[d.HandOff]
	if h == nil || h.gone || h.handOff {
		s.mu.Unlock()
		return
	}
	h.handOff = true
	s.lastHandOff = s.now()
	cause := fmt.Errorf("shard %s: %w", h.id, ErrLeaseHandedOff)
	h.cancel(cause)
	h.handTimer = time.AfterFunc(s.cfg.HandOffTimeout, func() { s.handOffFallback(h) })
	s.mu.Unlock()
	s.m.handOffs.Inc()
	s.log.Info("handing lease off for balance", zap.String("shard", h.id),
		zap.Int("held", d.Load), zap.Int("share", d.Target), zap.Int("workers", d.Workers))
	if hook := s.cfg.OnLeaseLost; hook != nil {
		hook(h.id, cause)
	}
}

// handOffFallback runs HandOffTimeout after a hand-off request the processor has not answered (or
// after the batch that was in flight ended): it releases the lease, unless a batch is in flight
// again, which it never cuts: it comes back when that batch ends.
func (s *Store) handOffFallback(h *heldLease) {
	s.mu.Lock()
	if h.gone {
		s.mu.Unlock()
		return
	}
	if h.busy > 0 {
		h.handDue = true
		s.mu.Unlock()
		s.log.Info("hand-off waits for the batch in flight", zap.String("shard", h.id))
		return
	}
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(s.life, s.cfg.CallTimeout)
	defer cancel()
	if _, err := s.release(ctx, h, "handed_off"); err != nil {
		s.log.Warn("hand-off release failed", zap.String("shard", h.id), zap.Error(err))
	}
}

// Busy marks the lease on shardID as inside a batch until the returned func is called (once; more
// calls do nothing). A hand-off never releases a busy lease by timer: the batch in flight is
// written, marked and checkpointed under the lease first, however long that takes (a destination
// can hold a batch for the breaker hold), and the processor releases the lease at its next call;
// only if it does not within HandOffTimeout after the batch does the store release it. Busy on a
// lease this worker does not hold does nothing.
func (s *Store) Busy(shardID string) (done func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	h := s.held[shardID]
	if h == nil {
		return func() {}
	}
	h.busy++
	var once sync.Once
	return func() {
		once.Do(func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			h.busy--
			if h.busy == 0 && h.handDue && !h.gone {
				h.handDue = false
				h.handTimer.Reset(s.cfg.HandOffTimeout)
			}
		})
	}
}

// Claim posts a ClaimRequest for this worker on shardID: the owner's planner hands the lease over
// when it is above its share, and the released lease is reserved for this worker for ClaimTTL. It
// reports false when another fresh claim is there. The store posts its own claims when balancing;
// Claim is for callers that steal leases themselves.
func (s *Store) Claim(ctx context.Context, shardID string) (bool, error) {
	if IsReserved(shardID) {
		return false, nil
	}
	return s.postClaim(ctx, shardID)
}

// postClaim asks the owner of shardID to hand the lease to us. A claim never touches the lease
// itself (owner, counter, timeout); it is honoured by the owner's planner and reserves the
// released lease for us for ClaimTTL. It returns false when another fresh claim is there.
func (s *Store) postClaim(ctx context.Context, shardID string) (bool, error) {
	now := s.now()
	u := &update{}
	u.exists(attrShardID)
	claim, claimedAt, cp := u.n(attrClaim), u.n(attrClaimedAt), u.n(attrCheckpoint)
	u.condRaw(fmt.Sprintf("attribute_not_exists(%s) OR %s = %s OR %s < %s", claim, claim, u.bind(sv(s.cfg.WorkerID)),
		claimedAt, u.bind(sv(formatTime(now.Add(-s.cfg.ClaimTTL))))))
	u.condRaw(fmt.Sprintf("attribute_not_exists(%s) OR %s <> %s", cp, cp, u.bind(sv(ShardEnd))))
	u.set(attrClaim, sv(s.cfg.WorkerID))
	u.set(attrClaimedAt, sv(formatTime(now)))
	out, err := s.updateItem(ctx, shardID, u)
	switch {
	case isConditionFailed(err):
		return false, nil
	case err != nil:
		if isTableMissing(err) {
			s.tableLost(err)
		}
		return false, fmt.Errorf("shard %s: claim: %w", shardID, err)
	}
	row, _ := decodeRow(out.Attributes)
	s.mu.Lock()
	s.claimShard = shardID
	s.claimUntil = now.Add(s.cfg.ClaimTTL)
	if row != nil {
		s.putRowLocked(shardID, row)
	}
	s.mu.Unlock()
	s.m.claims.Inc()
	s.log.Info("claimed a peer's lease for balance", zap.String("shard", shardID))
	return true, nil
}

// withdrawClaim removes this worker's ClaimRequest from shardID, if it is still ours. Best
// effort: a claim that cannot be withdrawn expires after ClaimTTL.
func (s *Store) withdrawClaim(ctx context.Context, shardID string) {
	u := &update{}
	u.condEq(attrClaim, sv(s.cfg.WorkerID))
	u.remove(attrClaim)
	u.remove(attrClaimedAt)
	out, err := s.updateItem(ctx, shardID, u)
	switch {
	case isConditionFailed(err):
		return // taken, withdrawn or replaced by another claim meanwhile
	case err != nil:
		if isTableMissing(err) {
			s.tableLost(err)
		}
		s.log.Debug("withdrawing a claim failed; it expires by itself", zap.String("shard", shardID), zap.Error(err))
		return
	}
	if row, _ := decodeRow(out.Attributes); row != nil {
		s.mu.Lock()
		s.putRowLocked(shardID, row)
		s.mu.Unlock()
	}
	s.log.Info("claim withdrawn", zap.String("shard", shardID))
}
