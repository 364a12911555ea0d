package checkpoint

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	chk "github.com/vmware/vmware-go-kcl-v2/clientlibrary/checkpoint"
	par "github.com/vmware/vmware-go-kcl-v2/clientlibrary/partition"
	"go.uber.org/zap"

	"github.com/kinesis-events/pipeline/internal/ambiguous"
)

// Store is the lease and checkpoint store of one worker. It implements the KCL's
// chk.Checkpointer; see the package comment for its guarantees.
type Store struct {
	cfg  Config
	ddb  DynamoDBAPI
	kin  KinesisAPI
	log  *zap.Logger
	m    *metrics
	base context.Context
	stop context.CancelFunc
	wg   sync.WaitGroup

	mu           sync.Mutex
	held         map[string]*heldLease
	obs          map[string]observation
	scanAt       time.Time
	rows         map[string]*leaseRow // last scan, patched by every row read or written since
	lineage      map[string]shardMeta
	lineageAt    time.Time
	lineageTry   time.Time
	claimShard   string
	claimUntil   time.Time
	lastHandOff  time.Time
	tableErr     error
	recovering   bool
	failingSince time.Time
	failingErr   error
	closed       bool
}

var _ chk.Checkpointer = (*Store)(nil)

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

// observation remembers since when this worker has seen a row's lease state unchanged.
type observation struct {
	version string
	since   time.Time
}

// New builds a Store. ctx is the base of every call the store makes (each bounded by
// cfg.CallTimeout) and of every lease context; cancel it, or call Close, to stop the store.
// Call Init (the KCL worker does) before use.
func New(ctx context.Context, cfg Config, ddb DynamoDBAPI, kin KinesisAPI) (*Store, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if ddb == nil || kin == nil {
		return nil, errors.New("checkpoint: DynamoDB and Kinesis clients are required")
	}
	base, stop := context.WithCancel(ctx)
	return &Store{
		cfg:     cfg,
		ddb:     ddb,
		kin:     kin,
		log:     cfg.Logger.With(zap.String("worker", cfg.WorkerID), zap.String("stream", cfg.Stream)),
		m:       newMetrics(cfg.Registerer),
		base:    base,
		stop:    stop,
		held:    map[string]*heldLease{},
		obs:     map[string]observation{},
		rows:    map[string]*leaseRow{},
		lineage: map[string]shardMeta{},
	}, nil
}

func (s *Store) now() time.Time { return s.cfg.Now() }

// Init creates the lease table if it is missing (on-demand billing) and waits until it is ACTIVE,
// then loads the stream's lineage (a failure there is logged and retried lazily).
func (s *Store) Init() error {
	if _, err := ensureTable(s.base, s.ddb, s.cfg.Table, s.cfg.CallTimeout, s.cfg.TableWaitTimeout, s.log); err != nil {
		return fmt.Errorf("checkpoint init: %w", err)
	}
	if err := s.refreshLineage(s.base); err != nil {
		s.log.Warn("could not list shards at init; will retry", zap.Error(err))
	}
	return nil
}

// Close drops every lease locally (their contexts are cancelled with ErrLeaseLost, nothing is
// written: call ReleaseAll first for a graceful exit) and waits for background work to stop.
func (s *Store) Close() {
	s.mu.Lock()
	s.closed = true
	var fire []func()
	for _, h := range s.held {
		fire = append(fire, s.finishLocked(h, leaseLost(h.id, "store closed"), "closed"))
	}
	s.mu.Unlock()
	for _, f := range fire {
		f()
	}
	s.stop()
	s.wg.Wait()
}

// Healthy reports why the store cannot work right now: the lease table is missing (being
// recreated, or recreation failed), or DynamoDB has failed every call for a LeaseDuration.
// nil means healthy. Meant for /readyz.
func (s *Store) Healthy() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tableErr != nil {
		return s.tableErr
	}
	if !s.failingSince.IsZero() && s.now().Sub(s.failingSince) >= s.cfg.LeaseDuration {
		return fmt.Errorf("lease store failing since %s: %w", formatTime(s.failingSince), s.failingErr)
	}
	return nil
}

// LeaseContext returns the context of the lease this worker holds on shardID. It is cancelled
// the moment the lease is known lost (cause: *LeaseLostError), handed off for rebalancing (cause
// wraps ErrLeaseHandedOff; the lease is still owned until Release) or released (ErrLeaseReleased).
// Capture it once when the shard's processor starts: a later call after a loss may return the
// context of a newer lease. If the lease is not held, the context is already cancelled.
func (s *Store) LeaseContext(shardID string) context.Context {
	s.mu.Lock()
	defer s.mu.Unlock()
	if h := s.held[shardID]; h != nil {
		return h.ctx
	}
	return s.cancelled(shardID)
}

// OwnershipContext is like LeaseContext but is not cancelled by a hand-off request: it stays
// live while the lease is still owned, so a processor can flush its in-flight writes and
// checkpoint after ErrLeaseHandedOff, and must stop when this one is done too.
func (s *Store) OwnershipContext(shardID string) context.Context {
	s.mu.Lock()
	defer s.mu.Unlock()
	if h := s.held[shardID]; h != nil {
		return h.own
	}
	return s.cancelled(shardID)
}

func (s *Store) cancelled(shardID string) context.Context {
	ctx, cancel := context.WithCancelCause(s.base)
	cancel(leaseLost(shardID, "not held"))
	return ctx
}

// Held lists the shards whose leases this worker holds, sorted.
func (s *Store) Held() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := make([]string, 0, len(s.held))
	for id := range s.held {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

func (s *Store) lookup(shardID string) *heldLease {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.held[shardID]
}

// ---- KCL Checkpointer ----

// GetLease takes the lease on shard for this worker, or renews it when the KCL already records
// this worker as the owner (the consumer's renewal loop calls GetLease that way).
//
// Taking returns a *NotAcquiredError (errors.As chk.ErrLeaseNotAcquired) when the lease is held,
// a parent has not finished, the worker holds its fair share, or the shard is claimed by another
// worker. Renewing returns a *LeaseLostError when the lease is gone. A renewal write that fails
// for another reason (timeout, throttling) is retried while the lease is still valid locally, so a
// renewal can take up to LeaseDuration; if none succeeds it returns nil, the lease's local expiry
// cancels its LeaseContext, and the next renewal returns ErrLeaseLost.
func (s *Store) GetLease(shard *par.ShardStatus, newAssignTo string) error {
	if newAssignTo != s.cfg.WorkerID {
		return fmt.Errorf("shard %s: GetLease for %q on the store of worker %q", shard.ID, newAssignTo, s.cfg.WorkerID)
	}
	if shard.GetLeaseOwner() == s.cfg.WorkerID {
		return s.renew(shard)
	}
	return s.acquire(s.base, shard)
}

// CheckpointSequence writes shard's checkpoint (shard.Checkpoint: a sequence number or
// SHARD_END), fenced on this worker still owning the lease. A *LeaseLostError means the write did
// not happen and never will: the lease belongs to someone else.
func (s *Store) CheckpointSequence(shard *par.ShardStatus) error {
	cp := shard.GetCheckpoint()
	if cp == "" {
		return fmt.Errorf("shard %s: empty checkpoint", shard.ID)
	}
	h := s.lookup(shard.ID)
	if h == nil {
		s.m.checkpoints.WithLabelValues("lease_lost").Inc()
		return leaseLost(shard.ID, "not held")
	}
	h.write.Lock()
	row, sent, err := s.fencedWrite(s.base, h, "checkpoint", func(u *update, sent time.Time) {
		u.set(attrCheckpoint, sv(cp))
		u.set(attrCheckpointedAt, sv(formatTime(sent)))
		u.set(attrLeaseTimeout, sv(formatTime(sent.Add(s.cfg.LeaseDuration))))
		u.set(attrRenewedAt, sv(formatTime(sent)))
		s.setBehind(u, h)
	})
	h.write.Unlock()
	switch {
	case errors.Is(err, ErrLeaseLost):
		s.m.checkpoints.WithLabelValues("lease_lost").Inc()
		return err
	case err != nil:
		s.m.checkpoints.WithLabelValues("error").Inc()
		return err
	}
	s.extend(h, sent, row)
	shard.SetLeaseTimeout(sent.Add(s.cfg.LeaseDuration))
	s.m.checkpoints.WithLabelValues("ok").Inc()
	return nil
}

// FetchCheckpoint loads shard's checkpoint, owner and lease timeout from the table. It returns
// chk.ErrSequenceIDNotFound (and clears shard.Checkpoint) when there is no checkpoint. A row that
// names this worker as owner without this Store holding the lease (a previous incarnation) is
// reported as unowned, so the KCL tries to take it instead of skipping it forever.
func (s *Store) FetchCheckpoint(shard *par.ShardStatus) error {
	row, err := s.getRow(s.base, shard.ID)
	if err != nil {
		return err
	}
	if row == nil {
		shard.SetCheckpoint("")
		return chk.ErrSequenceIDNotFound
	}
	owner := row.Owner
	if owner == s.cfg.WorkerID && s.lookup(shard.ID) == nil {
		owner = ""
	}
	shard.SetLeaseOwner(owner)
	shard.SetLeaseTimeout(row.LeaseTimeout)
	shard.SetCheckpoint(row.Checkpoint)
	if row.Checkpoint == "" {
		return chk.ErrSequenceIDNotFound
	}
	return nil
}

// RemoveLeaseInfo deletes the row of a shard that left the stream (the KCL calls it when
// ListShards no longer reports the shard).
func (s *Store) RemoveLeaseInfo(shardID string) error {
	ctx, cancel := context.WithTimeout(s.base, s.cfg.CallTimeout)
	defer cancel()
	_, err := s.ddb.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: aws.String(s.cfg.Table), Key: keyOf(shardID)})
	s.noteCall("DeleteItem", err)
	if err != nil {
		if isTableMissing(err) {
			s.tableLost(err)
		}
		return fmt.Errorf("shard %s: remove lease row: %w", shardID, err)
	}
	s.mu.Lock()
	delete(s.rows, shardID)
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

// RemoveLeaseOwner releases this worker's lease on shardID (the KCL consumer calls it when it
// ends). It writes only while this worker still owns the lease, so a worker that lost it never
// wipes the new owner; if the lease is not held it does nothing and returns nil.
func (s *Store) RemoveLeaseOwner(shardID string) error {
	return s.Release(s.base, shardID)
}

// GetLeaseOwner returns the shard's current owner, or chk.NoLeaseOwnerErr.
func (s *Store) GetLeaseOwner(shardID string) (string, error) {
	row, err := s.getRow(s.base, shardID)
	if err != nil {
		return "", err
	}
	if row == nil || row.Owner == "" {
		return "", chk.NoLeaseOwnerErr
	}
	return row.Owner, nil
}

// ListActiveWorkers maps owners to the unfinished shards they hold, from a fresh scan. Only the
// KCL's lease stealing calls it; keep EnableLeaseStealing off: this store balances by itself.
func (s *Store) ListActiveWorkers(shards map[string]*par.ShardStatus) (map[string][]*par.ShardStatus, error) {
	rows, err := s.scanTable(s.base)
	if err != nil {
		return nil, err
	}
	workers := map[string][]*par.ShardStatus{}
	for id, sh := range shards {
		r := rows[id]
		if r == nil {
			return nil, chk.ErrShardNotAssigned
		}
		sh.SetCheckpoint(r.Checkpoint)
		if r.finished() {
			continue
		}
		if r.Owner == "" {
			return nil, chk.ErrShardNotAssigned
		}
		sh.SetLeaseOwner(r.Owner)
		workers[r.Owner] = append(workers[r.Owner], sh)
	}
	return workers, nil
}

// ClaimShard posts a ClaimRequest for claimID (which must be this worker) on shard. Only the KCL's
// lease stealing calls it; this store posts its own claims when balancing.
func (s *Store) ClaimShard(shard *par.ShardStatus, claimID string) error {
	if claimID != s.cfg.WorkerID {
		return fmt.Errorf("shard %s: claim for %q on the store of worker %q", shard.ID, claimID, s.cfg.WorkerID)
	}
	ok, err := s.postClaim(s.base, shard.ID)
	if err != nil {
		return err
	}
	if !ok {
		return errors.New(chk.ErrShardClaimed)
	}
	return nil
}

// NoteMillisBehindLatest records the MillisBehindLatest of the shard's latest GetRecords. The
// store publishes the latest value in the lease row (MillisBehindLatest, MillisBehindLatestAt)
// with the lease's next renewal or checkpoint, so kclctl can show how far behind each shard is
// without asking the workers. It costs no extra write. Ignored for a lease this worker does not
// hold.
func (s *Store) NoteMillisBehindLatest(shardID string, ms int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if h := s.held[shardID]; h != nil && !h.gone {
		h.behind, h.behindAt, h.behindSet = ms, s.now(), true
	}
}

// setBehind adds the lease's latest MillisBehindLatest to an owner write.
func (s *Store) setBehind(u *update, h *heldLease) {
	s.mu.Lock()
	ms, at, ok := h.behind, h.behindAt, h.behindSet
	s.mu.Unlock()
	if ok {
		u.set(attrBehind, nv(ms))
		u.set(attrBehindAt, sv(formatTime(at)))
	}
}

// ---- Release ----

// Release gives up this worker's lease on shardID: a fenced write removes AssignedTo, so peers
// can take it at once, and the lease's contexts are cancelled (ErrLeaseReleased, or the hand-off
// cause). Not holding the lease is not an error. Call it after the shard's processor has
// flushed and checkpointed (after a hand-off request, or on shutdown).
func (s *Store) Release(ctx context.Context, shardID string) error {
	h := s.lookup(shardID)
	if h == nil {
		return nil
	}
	return s.release(ctx, h, "released")
}

// ReleaseAll releases every lease this worker holds and withdraws its outstanding ClaimRequest
// (graceful shutdown: call it after the KCL worker has stopped its consumers, which release their
// own leases). A claim left behind would count this worker as active, and reserve the claimed
// lease for it, until ClaimTTL: peers would hold back from the departed worker's share.
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
		if err := s.Release(ctx, id); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (s *Store) release(ctx context.Context, h *heldLease, reason string) error {
	h.write.Lock()
	defer h.write.Unlock()
	s.mu.Lock()
	if h.gone {
		s.mu.Unlock()
		return nil
	}
	cause := error(fmt.Errorf("shard %s: %w", h.id, ErrLeaseReleased))
	if h.handOff {
		cause = fmt.Errorf("shard %s: %w", h.id, ErrLeaseHandedOff)
		reason = "handed_off"
	}
	s.mu.Unlock()
	row, _, err := s.fencedWrite(ctx, h, "release", func(u *update, sent time.Time) {
		u.remove(attrOwner)
		u.set(attrLeaseTimeout, sv(formatTime(sent)))
	})
	if errors.Is(err, ErrLeaseLost) {
		return nil // already someone else's; nothing of ours to release
	}
	s.mu.Lock()
	if row != nil {
		s.rows[h.id] = row
	}
	fire := s.finishLocked(h, cause, reason)
	s.mu.Unlock()
	fire()
	if err != nil {
		return fmt.Errorf("shard %s: release (lease expires by itself): %w", h.id, err)
	}
	s.log.Info("lease released", zap.String("shard", h.id), zap.String("reason", reason))
	return nil
}

// ---- lease bookkeeping ----

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
	h.ctx, h.cancel = context.WithCancelCause(s.base)
	h.own, h.ownCancel = context.WithCancelCause(s.base)
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

// ---- renewal ----

func (s *Store) renew(shard *par.ShardStatus) error {
	h := s.lookup(shard.ID)
	if h == nil {
		s.m.renewals.WithLabelValues("failed").Inc()
		return leaseLost(shard.ID, "not held")
	}
	// A renewal that fails for a reason other than fencing (a call timeout, throttling, a server
	// error) is retried at once, with a short backoff, for as long as the lease is valid: the KCL
	// calls again only LeaseRefreshWaitTime after GetLease returns, so a lease given up after one
	// failed call would survive just two or three slow calls, far less than LeaseDuration.
	delay := 50 * time.Millisecond
	for attempt := 0; ; attempt++ {
		h.write.Lock()
		row, sent, err := s.fencedWrite(s.base, h, "renew", func(u *update, sent time.Time) {
			u.set(attrLeaseTimeout, sv(formatTime(sent.Add(s.cfg.LeaseDuration))))
			u.set(attrRenewedAt, sv(formatTime(sent)))
			s.setBehind(u, h)
		})
		h.write.Unlock()
		if err == nil {
			s.extend(h, sent, row)
			shard.SetLeaseTimeout(sent.Add(s.cfg.LeaseDuration))
			s.m.renewals.WithLabelValues("ok").Inc()
			s.maybeHandOff(s.base)
			return nil
		}
		s.m.renewals.WithLabelValues("failed").Inc()
		if errors.Is(err, ErrLeaseLost) {
			return err
		}
		s.mu.Lock()
		until := h.validUntil
		s.mu.Unlock()
		if !s.now().Add(delay).Before(until) {
			s.log.Warn("lease renewal failed; lease stays valid until its local expiry",
				zap.String("shard", shard.ID), zap.Time("valid_until", until), zap.Int("attempts", attempt+1), zap.Error(err))
			return nil
		}
		s.log.Warn("lease renewal failed; retrying while the lease is valid",
			zap.String("shard", shard.ID), zap.Time("valid_until", until), zap.Int("attempt", attempt), zap.Error(err))
		t := time.NewTimer(delay)
		select {
		case <-s.base.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		delay = min(2*delay, time.Second)
	}
}

// ---- taking a lease ----

func (s *Store) acquire(ctx context.Context, shard *par.ShardStatus) error {
	id := shard.ID
	s.mu.Lock()
	tableErr, closed, _, holding := s.tableErr, s.closed, 0, s.held[id] != nil
	s.mu.Unlock()
	switch {
	case closed:
		return fmt.Errorf("shard %s: store closed", id)
	case tableErr != nil:
		return fmt.Errorf("shard %s: %w", id, tableErr)
	case holding:
		return s.deny(id, ErrAlreadyHeld, "")
	}
	meta, known, err := s.lineageOf(ctx, id)
	if err != nil {
		return err
	}
	if !known {
		return s.deny(id, ErrUnknownShard, "")
	}
	// fullAfterTake: taking this lease brings us to our share, so a claim we posted on another
	// shard is no longer needed and is withdrawn (left in place it would keep counting us as a
	// worker wanting a lease, and reserve that lease for us, until ClaimTTL).
	fullAfterTake := true
	if !s.cfg.DisableBalancing {
		d, err := s.decide(ctx)
		fullAfterTake = d.Load+1 >= d.Target
		if err != nil {
			return fmt.Errorf("shard %s: plan leases: %w", id, err)
		}
		if d.Claim != "" {
			if _, err := s.postClaim(ctx, d.Claim); err != nil {
				s.log.Debug("claim failed", zap.String("shard", d.Claim), zap.Error(err))
			}
		}
		if !d.MayAcquire {
			return s.deny(id, ErrFairShare, fmt.Sprintf("holds %d, share %d of %d leasable among %d workers", d.Load, d.Target, d.Leasable, d.Workers))
		}
	}
	if err := s.parentsDone(ctx, meta); err != nil {
		return err
	}
	row, err := s.getRow(ctx, id)
	if err != nil {
		return err
	}
	now := s.now()
	s.mu.Lock()
	expires := s.observeLocked(row, now)
	s.mu.Unlock()
	if reason := grantCheck(now, row, expires, s.cfg.WorkerID, s.cfg.ClaimTTL); reason != nil {
		detail := ""
		if row != nil && row.Owner != "" {
			detail = "owner " + row.Owner
		}
		return s.deny(id, reason, detail)
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
	out, err := s.updateItem(ctx, id, u)
	switch {
	case isConditionFailed(err):
		return s.deny(id, ErrLeaseHeld, "lost the race")
	case err != nil:
		if isTableMissing(err) {
			s.tableLost(err)
		}
		return fmt.Errorf("shard %s: take lease: %w", id, err)
	}
	newRow, derr := decodeRow(out.Attributes)
	if derr != nil {
		s.log.Warn("undecodable lease row after take", zap.String("shard", id), zap.Error(derr))
	}
	s.mu.Lock()
	if newRow != nil {
		s.rows[id] = newRow
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
	shard.SetLeaseOwner(s.cfg.WorkerID)
	shard.SetLeaseTimeout(sent.Add(s.cfg.LeaseDuration))
	if newRow != nil {
		shard.SetCheckpoint(newRow.Checkpoint)
	}
	prev := ""
	if row != nil {
		prev = row.Owner
	}
	s.log.Info("lease taken", zap.String("shard", id), zap.String("previous_owner", prev), zap.Int64("lease_counter", counter))
	return nil
}

func (s *Store) deny(id string, reason error, detail string) error {
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
	}
	s.m.denied.WithLabelValues(label).Inc()
	return notAcquired(id, reason, detail)
}

// observeLocked returns when row's owner's lease counts as expired for this worker: one
// LeaseDuration after it first saw the row's current lease state, or one LeaseDuration after the
// row's own LeaseTimeout, whichever is earlier. Zero when nobody owns it.
func (s *Store) observeLocked(row *leaseRow, now time.Time) time.Time {
	if row == nil || row.Owner == "" {
		return time.Time{}
	}
	v := row.version()
	o, ok := s.obs[row.ShardID]
	if !ok || o.version != v {
		o = observation{version: v, since: now}
		s.obs[row.ShardID] = o
	}
	exp := o.since.Add(s.cfg.LeaseDuration)
	if !row.LeaseTimeout.IsZero() {
		if alt := row.LeaseTimeout.Add(s.cfg.LeaseDuration); alt.Before(exp) {
			exp = alt
		}
	}
	return exp
}

// ---- lineage ----

func (s *Store) refreshLineage(ctx context.Context) error {
	m, err := listShards(ctx, s.kin, s.cfg.Stream, s.cfg.CallTimeout)
	s.noteCall("ListShards", err)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.lineage = m
	s.lineageAt = s.now()
	s.mu.Unlock()
	return nil
}

// lineageOf returns the shard's lineage, listing the stream again when the id is unknown (at most
// once per CallTimeout, so a bogus id cannot hammer ListShards).
func (s *Store) lineageOf(ctx context.Context, id string) (shardMeta, bool, error) {
	s.mu.Lock()
	m, ok := s.lineage[id]
	retry := s.now().Sub(s.lineageTry) >= s.cfg.CallTimeout
	if !ok && retry {
		s.lineageTry = s.now()
	}
	s.mu.Unlock()
	if ok || !retry {
		return m, ok, nil
	}
	if err := s.refreshLineage(ctx); err != nil {
		return shardMeta{}, false, fmt.Errorf("shard %s: lineage: %w", id, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok = s.lineage[id]
	return m, ok, nil
}

// parentsDone is the lineage gate, read consistently at grant time: every parent has
// Checkpoint == SHARD_END, or has left the stream and nobody holds a live lease on it.
func (s *Store) parentsDone(ctx context.Context, meta shardMeta) error {
	for _, p := range meta.parents() {
		row, err := s.getRow(ctx, p)
		if err != nil {
			return err
		}
		if row != nil && row.finished() {
			continue
		}
		s.mu.Lock()
		stale := s.now().Sub(s.lineageAt) >= s.cfg.LineageRefresh
		s.mu.Unlock()
		if stale {
			if err := s.refreshLineage(ctx); err != nil {
				s.log.Debug("lineage refresh failed; using cached lineage", zap.Error(err))
			}
		}
		now := s.now()
		s.mu.Lock()
		_, present := s.lineage[p]
		unleased := row == nil || row.Owner == "" || !now.Before(s.observeLocked(row, now))
		s.mu.Unlock()
		if !present && unleased {
			if row != nil {
				s.log.Warn("parent left the stream unfinished; its data expired", zap.String("shard", meta.ID), zap.String("parent", p), zap.String("checkpoint", row.Checkpoint))
			}
			continue
		}
		at := "never leased"
		if row != nil {
			at = fmt.Sprintf("checkpoint %q", row.Checkpoint)
		}
		return s.deny(meta.ID, ErrWaitingOnParent, fmt.Sprintf("parent %s %s", p, at))
	}
	return nil
}

// parentsDoneLocked is the same gate on the cached scan, for planning.
func (s *Store) parentsDoneLocked(meta shardMeta, now time.Time) bool {
	for _, p := range meta.parents() {
		row := s.rows[p]
		if row != nil && row.finished() {
			continue
		}
		if _, present := s.lineage[p]; !present {
			if row == nil || row.Owner == "" || !now.Before(s.observeLocked(row, now)) {
				continue
			}
		}
		return false
	}
	return true
}

// ---- balancing ----

// decide plans on a table scan at most ScanInterval old.
func (s *Store) decide(ctx context.Context) (decision, error) {
	s.mu.Lock()
	stale := s.now().Sub(s.scanAt) >= s.cfg.ScanInterval
	lineageStale := len(s.lineage) == 0 || s.now().Sub(s.lineageAt) >= s.cfg.LineageRefresh
	s.mu.Unlock()
	if lineageStale {
		if err := s.refreshLineage(ctx); err != nil {
			s.log.Debug("lineage refresh failed; using cached lineage", zap.Error(err))
		}
	}
	if stale {
		rows, err := s.scanTable(ctx)
		if err != nil {
			return decision{}, err
		}
		s.mu.Lock()
		s.rows = rows
		s.scanAt = s.now()
		for id := range s.obs {
			if rows[id] == nil {
				delete(s.obs, id)
			}
		}
		s.mu.Unlock()
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
				ps.Expires = s.observeLocked(r, now)
			}
			if r.Claim != "" {
				ps.Claim = r.Claim
				ps.ClaimExpires = r.ClaimedAt.Add(s.cfg.ClaimTTL)
			}
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
	h.handTimer = time.AfterFunc(s.cfg.HandOffTimeout, func() {
		if err := s.release(s.base, h, "handed_off"); err != nil {
			s.log.Warn("hand-off release failed", zap.String("shard", h.id), zap.Error(err))
		}
	})
	s.mu.Unlock()
	s.m.handOffs.Inc()
	s.log.Info("handing lease off for balance", zap.String("shard", h.id),
		zap.Int("held", d.Load), zap.Int("share", d.Target), zap.Int("workers", d.Workers))
	if hook := s.cfg.OnLeaseLost; hook != nil {
		hook(h.id, cause)
	}
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
		s.rows[shardID] = row
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
		s.rows[shardID] = row
		s.mu.Unlock()
	}
	s.log.Info("claim withdrawn", zap.String("shard", shardID))
}

// ---- table loss ----

// tableLost handles a ResourceNotFoundException: every lease is dropped (the rows that fenced
// them are gone), Healthy reports the outage, and the table is recreated in the background.
func (s *Store) tableLost(cause error) {
	s.mu.Lock()
	if s.recovering || s.closed {
		s.mu.Unlock()
		return
	}
	s.recovering = true
	s.tableErr = fmt.Errorf("%w: table %s missing, recreating: %v", ErrTableUnavailable, s.cfg.Table, cause)
	var fire []func()
	for _, h := range s.held {
		fire = append(fire, s.finishLocked(h, leaseLost(h.id, "lease table missing"), "table_lost"))
	}
	s.rows = map[string]*leaseRow{}
	s.scanAt = time.Time{}
	s.mu.Unlock()
	for _, f := range fire {
		f()
	}
	s.m.tableRecreate.Inc()
	s.log.Error("LEASE TABLE MISSING: all leases dropped and checkpoints lost; recreating it, shards restart from their initial position",
		zap.String("table", s.cfg.Table), zap.Error(cause))
	s.wg.Add(1)
	go s.recreate()
}

func (s *Store) recreate() {
	defer s.wg.Done()
	delay := s.cfg.CallTimeout
	for {
		_, err := ensureTable(s.base, s.ddb, s.cfg.Table, s.cfg.CallTimeout, s.cfg.TableWaitTimeout, s.log)
		if err == nil {
			s.mu.Lock()
			s.tableErr, s.recovering = nil, false
			s.mu.Unlock()
			s.log.Warn("lease table recreated", zap.String("table", s.cfg.Table))
			return
		}
		s.mu.Lock()
		s.tableErr = fmt.Errorf("%w: table %s missing and recreation failed: %v", ErrTableUnavailable, s.cfg.Table, err)
		s.mu.Unlock()
		s.log.Error("lease table recreation failed; retrying", zap.String("table", s.cfg.Table), zap.Error(err))
		t := time.NewTimer(delay)
		select {
		case <-s.base.Done():
			t.Stop()
			return
		case <-t.C:
		}
		delay = min(2*delay, time.Minute)
	}
}

// ---- calls ----

func (s *Store) noteCall(op string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err == nil || isConditionFailed(err) {
		s.failingSince, s.failingErr = time.Time{}, nil
		return
	}
	s.m.callErrors.WithLabelValues(op).Inc()
	if s.failingSince.IsZero() {
		s.failingSince = s.now()
	}
	s.failingErr = err
}

func (s *Store) getRow(ctx context.Context, id string) (*leaseRow, error) {
	cctx, cancel := context.WithTimeout(ctx, s.cfg.CallTimeout)
	defer cancel()
	out, err := s.ddb.GetItem(cctx, &dynamodb.GetItemInput{
		TableName: aws.String(s.cfg.Table), Key: keyOf(id), ConsistentRead: aws.Bool(true),
	})
	s.noteCall("GetItem", err)
	if err != nil {
		if isTableMissing(err) {
			s.tableLost(err)
		}
		return nil, fmt.Errorf("shard %s: read lease row: %w", id, err)
	}
	row, err := decodeRow(out.Item)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	if row != nil {
		s.rows[id] = row
	} else {
		delete(s.rows, id)
	}
	s.mu.Unlock()
	return row, nil
}

func (s *Store) updateItem(ctx context.Context, id string, u *update) (*dynamodb.UpdateItemOutput, error) {
	cctx, cancel := context.WithTimeout(ctx, s.cfg.CallTimeout)
	defer cancel()
	in := &dynamodb.UpdateItemInput{
		TableName:                 aws.String(s.cfg.Table),
		Key:                       keyOf(id),
		UpdateExpression:          aws.String(u.expression()),
		ExpressionAttributeNames:  u.names,
		ExpressionAttributeValues: u.values,
		ReturnValues:              types.ReturnValueAllNew,
	}
	if c := u.condition(); c != "" {
		in.ConditionExpression = aws.String(c)
	}
	out, err := s.ddb.UpdateItem(cctx, in)
	s.noteCall("UpdateItem", err)
	return out, err
}

func (s *Store) scanTable(ctx context.Context) (map[string]*leaseRow, error) {
	rows, err := scanRows(ctx, s.ddb, s.cfg.Table, s.cfg.CallTimeout)
	s.noteCall("Scan", err)
	if err != nil && isTableMissing(err) {
		s.tableLost(err)
	}
	return rows, err
}

// scanRows reads the whole lease table with consistent reads, page by page.
func scanRows(ctx context.Context, ddb DynamoDBAPI, table string, callTimeout time.Duration) (map[string]*leaseRow, error) {
	rows := map[string]*leaseRow{}
	var start map[string]types.AttributeValue
	for {
		cctx, cancel := context.WithTimeout(ctx, callTimeout)
		out, err := ddb.Scan(cctx, &dynamodb.ScanInput{
			TableName: aws.String(table), ConsistentRead: aws.Bool(true), ExclusiveStartKey: start,
		})
		cancel()
		if err != nil {
			return nil, fmt.Errorf("scan %s: %w", table, err)
		}
		for _, item := range out.Items {
			r, err := decodeRow(item)
			if err != nil {
				return nil, err
			}
			rows[r.ShardID] = r
		}
		if len(out.LastEvaluatedKey) == 0 {
			return rows, nil
		}
		start = out.LastEvaluatedKey
	}
}
