package checkpoint

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"go.uber.org/zap"
)

// Release gives up this worker's lease on shardID: a fenced write removes AssignedTo, so peers
// can take it at once, and the lease's contexts are cancelled (ErrLeaseReleased, or the hand-off
// cause). It reports whether this worker still owned the lease and gave it up; (false, nil) when
// it did not hold it or the lease already belongs to someone else. An error means the write
// failed: the lease is dropped locally all the same and expires by itself. Call it after the
// shard's processor has flushed and checkpointed (after a hand-off request, or on shutdown).
func (s *Store) Release(ctx context.Context, shardID string) (bool, error) {
	h := s.lookup(shardID)
	if h == nil {
		return false, nil
	}
	return s.release(ctx, h, "released")
}

// ReleaseAll releases every lease this worker holds and withdraws its outstanding ClaimRequest
// (graceful shutdown: call it after the shard processors have stopped and released their own
// leases). A claim left behind would count this worker as active, and reserve the claimed lease
// for it, until ClaimTTL: peers would hold back from the departed worker's share.
func (s *Store) ReleaseAll(ctx context.Context) error {
	s.mu.Lock()
	claim := s.claimShard
	s.claimShard = ""
	s.mu.Unlock()
	if claim != "" {
		s.withdrawClaim(ctx, claim)
	}
	var errs []error
	for _, id := range s.Held() {
		if _, err := s.Release(ctx, id); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Abandon gives up this worker's lease on shardID because its processor had to stop (a failure
// that is neither a lost lease nor a shutdown): like Release it removes AssignedTo with a fenced
// write, so a peer takes the shard from its checkpoint, and it records the stop in the row
// (LastStopBy, LastStopAt, LastStopReason; kclctl shows them; they stay in the row after a peer
// takes the shard). A peer may take it even above its fair share, and this worker benches it: it
// does not take the shard again for one LeaseDuration, doubling with each further abandon of it
// here up to Config.BenchMax (bench.go). The strikes start over when a checkpoint of the shard
// lands here, or when a peer had to stop the shard too. The lease's contexts are cancelled with a
// cause wrapping ErrShardStopped.
func (s *Store) Abandon(ctx context.Context, shardID, reason string) (bool, error) {
	h := s.lookup(shardID)
	if h == nil {
		return false, nil
	}
	if len(reason) > maxStopReason {
		reason = reason[:maxStopReason]
	}
	s.mu.Lock()
	prevStopBy := ""
	if r := s.rows[shardID]; r != nil {
		prevStopBy = r.StopBy
	}
	benchedFor := s.benchLocked(shardID, s.now(), h.counter, prevStopBy)
	s.mu.Unlock()
	s.m.abandoned.Inc()
	s.log.Error("shard stopped by its processor; releasing its lease so a peer takes it", zap.String("shard", shardID),
		zap.String("reason", reason), zap.Duration("benched_for", benchedFor), zap.String("previous_stop_by", prevStopBy))
	return s.releaseWith(ctx, h, "stopped", fmt.Errorf("shard %s: %w: %s", shardID, ErrShardStopped, reason), func(u *update, sent time.Time) {
		u.set(attrStopBy, sv(s.cfg.WorkerID))
		u.set(attrStopAt, sv(formatTime(sent)))
		u.set(attrStopReason, sv(reason))
	})
}

// maxStopReason bounds the LastStopReason written into a row.
const maxStopReason = 512

func (s *Store) release(ctx context.Context, h *heldLease, reason string) (bool, error) {
	return s.releaseWith(ctx, h, reason, fmt.Errorf("shard %s: %w", h.id, ErrLeaseReleased), nil)
}

func (s *Store) releaseWith(ctx context.Context, h *heldLease, reason string, cause error, extra func(u *update, sent time.Time)) (bool, error) {
	h.write.Lock()
	defer h.write.Unlock()
	s.mu.Lock()
	if h.gone {
		s.mu.Unlock()
		return false, nil
	}
	if h.handOff && extra == nil {
		cause = fmt.Errorf("shard %s: %w", h.id, ErrLeaseHandedOff)
		reason = "handed_off"
	}
	s.mu.Unlock()
	row, _, err := s.fencedWrite(ctx, h, "release", func(u *update, sent time.Time) {
		u.remove(attrOwner)
		u.set(attrLeaseTimeout, sv(formatTime(sent)))
		if extra != nil {
			extra(u, sent)
		}
	})
	if errors.Is(err, ErrLeaseLost) {
		return false, nil // already someone else's; nothing of ours to release
	}
	s.mu.Lock()
	if row != nil {
		s.putRowLocked(h.id, row)
	}
	fire := s.finishLocked(h, cause, reason)
	s.mu.Unlock()
	fire()
	if err != nil {
		return false, fmt.Errorf("shard %s: release (lease expires by itself): %w", h.id, err)
	}
	s.log.Info("lease released", zap.String("shard", h.id), zap.String("reason", reason))
	return true, nil
}

// Forget deletes the row of a shard that left the stream, whoever owns it, and drops this
// worker's lease on it if it held one.
func (s *Store) Forget(ctx context.Context, shardID string) error {
	if IsReserved(shardID) {
		return fmt.Errorf("forget %q: %w", shardID, ErrReservedKey)
	}
	cctx, cancel := context.WithTimeout(ctx, s.cfg.CallTimeout)
	defer cancel()
	_, err := s.ddb.DeleteItem(cctx, &dynamodb.DeleteItemInput{TableName: aws.String(s.cfg.Table), Key: keyOf(shardID)})
	s.noteCall("DeleteItem", err)
	if err != nil {
		if isTableMissing(err) {
			s.tableLost(err)
		}
		return fmt.Errorf("shard %s: remove lease row: %w", shardID, err)
	}
	s.mu.Lock()
	s.putRowLocked(shardID, nil)
	var fire func()
	if h := s.held[shardID]; h != nil {
		fire = s.finishLocked(h, leaseLost(shardID, "row deleted"), "row_deleted")
	}
	s.mu.Unlock()
	if fire != nil {
		fire()
	}
	s.log.Info("removed lease row of a shard that left the stream", zap.String("shard", shardID))
	return nil
}
