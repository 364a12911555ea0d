package checkpoint

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"go.uber.org/zap"
)

// Store is the lease and checkpoint store of one worker; see the package comment for its
// guarantees. Every method that calls DynamoDB or Kinesis takes the caller's context.
type Store struct {
	cfg Config
	ddb DynamoDBAPI
	kin KinesisAPI
	log *zap.Logger
	m   *metrics
	// life bounds the store's own background work (table recreation, the hand-off fallback
	// release) and parents the lease contexts; no caller's call runs under it. Close ends it.
	life context.Context
	stop context.CancelFunc
	wg   sync.WaitGroup

	mu           sync.Mutex
	held         map[string]*heldLease
	benched      map[string]bench       // shards this worker abandoned (bench.go)
	obs          map[string]observation // lease states watched, by shard (observe.go)
	claimObs     map[string]observation // claims watched, by shard
	failGen      uint64                 // bumped by every failed DynamoDB call: breaks every watch
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

// New builds a Store. ctx bounds the store's background work (recreating a lost table, releasing a
// lease whose hand-off the processor ignored) and parents the lease contexts; cancel it, or call
// Close, to stop the store. Calls made for a caller take the caller's context. Call Init before
// use.
func New(ctx context.Context, cfg Config, ddb DynamoDBAPI, kin KinesisAPI) (*Store, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if ddb == nil || kin == nil {
		return nil, errors.New("checkpoint: DynamoDB and Kinesis clients are required")
	}
	life, stop := context.WithCancel(ctx)
	return &Store{
		cfg:      cfg,
		ddb:      ddb,
		kin:      kin,
		log:      cfg.Logger.With(zap.String("worker", cfg.WorkerID), zap.String("stream", cfg.Stream)),
		m:        newMetrics(cfg.Registerer),
		life:     life,
		stop:     stop,
		held:     map[string]*heldLease{},
		benched:  map[string]bench{},
		obs:      map[string]observation{},
		claimObs: map[string]observation{},
		rows:     map[string]*leaseRow{},
		lineage:  map[string]shardMeta{},
	}, nil
}

func (s *Store) now() time.Time { return s.cfg.Now() }

// Init creates the lease table if it is missing (on-demand billing) and waits until it is ACTIVE,
// then loads the stream's lineage (a failure there is logged and retried lazily).
func (s *Store) Init(ctx context.Context) error {
	if _, err := ensureTable(ctx, s.ddb, s.cfg.Table, s.cfg.CallTimeout, s.cfg.TableWaitTimeout, s.log); err != nil {
		return fmt.Errorf("checkpoint init: %w", err)
	}
	if err := s.refreshLineage(ctx); err != nil {
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
	ctx, cancel := context.WithCancelCause(s.life)
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

// Holds reports whether this worker holds the lease on shardID.
func (s *Store) Holds(shardID string) bool {
	return s.lookup(shardID) != nil
}

func (s *Store) lookup(shardID string) *heldLease {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.held[shardID]
}

// Read returns the lease row of shardID as it is now (a consistent read), or nil when the shard
// has no row. A key under ReservedPrefix is refused with ErrReservedKey.
func (s *Store) Read(ctx context.Context, shardID string) (*ShardLease, error) {
	if IsReserved(shardID) {
		return nil, fmt.Errorf("read %q: %w", shardID, ErrReservedKey)
	}
	row, err := s.getRow(ctx, shardID)
	if err != nil || row == nil {
		return nil, err
	}
	l := row.public()
	return &l, nil
}

// Peek returns shardID's lease row as the store last saw it, or nil when it saw none: from the
// table scan behind the fair-share decisions (scanned again first when older than ScanInterval),
// or from the store's own later read or write of the row. While the scan is fresh it costs no
// call, where Read costs a consistent read per shard. A finished row (SHARD_END) is final; any
// other may be up to ScanInterval old, so Peek is for decisions that are checked again before
// they take effect (Acquire reads what it grants on consistently), and Read for what must be
// current (where a shard's reading starts).
func (s *Store) Peek(ctx context.Context, shardID string) (*ShardLease, error) {
	if IsReserved(shardID) {
		return nil, fmt.Errorf("peek %q: %w", shardID, ErrReservedKey)
	}
	if err := s.freshScan(ctx); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	row := s.rows[shardID]
	if row == nil {
		return nil, nil
	}
	l := row.public()
	return &l, nil
}

// Leases returns every shard's lease row from one consistent scan (rows under ReservedPrefix
// excluded), by shard id.
func (s *Store) Leases(ctx context.Context) (map[string]ShardLease, error) {
	rows, err := s.scanTable(ctx)
	if err != nil {
		return nil, err
	}
	out := make(map[string]ShardLease, len(rows))
	for id, r := range rows {
		out[id] = r.public()
	}
	return out, nil
}

// NoteMillisBehind records the MillisBehindLatest of the shard's latest GetRecords. The store
// publishes the latest value in the lease row (MillisBehindLatest, MillisBehindLatestAt) with the
// lease's next renewal or checkpoint, so kclctl can show how far behind each shard is without
// asking the workers. It costs no extra write. Ignored for a lease this worker does not hold.
func (s *Store) NoteMillisBehind(shardID string, ms int64) {
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
