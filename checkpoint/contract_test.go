package checkpoint

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/kinesis-events/pipeline/internal/names"
	"github.com/kinesis-events/pipeline/internal/poll"
)

// timing is one backend's clock for the contract suite. Lease durations are real time, so they
// must outlast what a loaded 2-core machine does to the suite (CI runs two packages' tests at once,
// several with emulators, on top of whatever else runs): an emulator call can take seconds, and
// the race-enabled test process itself can stall for a second or two. Assertions about time are
// lower bounds taken from these values (nothing happens before the lease could have expired);
// upper bounds are the generous wait, because under load they only measure the scheduler.
type timing struct {
	lease time.Duration // Config.LeaseDuration and HandOffTimeout
	call  time.Duration // Config.CallTimeout
	renew time.Duration // renewal cadence of the suite's lease holders (KCL LeaseRefreshWaitTime)
	scan  time.Duration // Config.ScanInterval
	sync  time.Duration // event-loop tick of kclDriver (KCL ShardSyncIntervalMillis), polling of the table
	wait  time.Duration // bound for whatever the suite waits for and for calls that set the scene
}

// fakeTiming: the in-memory fake answers at once, but on a loaded machine the race-enabled test
// process stalls at times (seen: a fake call returning after 3.9 s), so the lease outlasts a few
// seconds without a renewal.
var fakeTiming = timing{lease: 6 * time.Second, call: 2 * time.Second, renew: 500 * time.Millisecond,
	scan: 100 * time.Millisecond, sync: 100 * time.Millisecond, wait: time.Minute}

// emulatorTiming: a DynamoDB emulator call on a loaded machine takes seconds at times; a call gets
// five, and a lease outlives two renewals in a row that timed out.
var emulatorTiming = timing{lease: 15 * time.Second, call: 5 * time.Second, renew: time.Second,
	scan: time.Second, sync: 500 * time.Millisecond, wait: 2 * time.Minute}

// contractBackend is one DynamoDB implementation the suite runs against.
type contractBackend struct {
	ddb         DynamoDBAPI
	deleteTable func(ctx context.Context, table string) error
	tm          timing
}

var tableSeq atomic.Int64

type harness struct {
	t     *testing.T
	ctx   context.Context
	raw   DynamoDBAPI
	ddb   *gatedDDB
	kin   *fakeKinesis
	b     contractBackend
	tm    timing
	table string
}

func newHarness(t *testing.T, b contractBackend) *harness {
	h := &harness{
		t: t, ctx: t.Context(), raw: b.ddb, ddb: &gatedDDB{inner: b.ddb}, kin: &fakeKinesis{}, b: b, tm: b.tm,
		table: fmt.Sprintf("leases-%d-%d", time.Now().UnixNano()%1e6, tableSeq.Add(1)),
	}
	t.Cleanup(func() {
		if d, op := h.ddb.slowest(); d > 0 {
			t.Logf("slowest DynamoDB call through the stores: %s %v (call timeout %v)", op, d, h.tm.call)
		}
	})
	return h
}

func (h *harness) config(worker string) Config {
	return Config{
		Table: h.table, WorkerID: worker, Stream: names.RawStream,
		LeaseDuration: h.tm.lease, CallTimeout: h.tm.call, ScanInterval: h.tm.scan,
		LineageRefresh: 200 * time.Millisecond, HandOffTimeout: h.tm.lease, TableWaitTimeout: h.tm.wait,
		Registerer: prometheus.NewRegistry(),
	}
}

func (h *harness) store(worker string, mods ...func(*Config)) *Store {
	h.t.Helper()
	return h.storeOn(h.ddb, worker, mods...)
}

// storeOn is store with its own DynamoDB client (e.g. a gate of its own).
func (h *harness) storeOn(ddb DynamoDBAPI, worker string, mods ...func(*Config)) *Store {
	h.t.Helper()
	cfg := h.config(worker)
	for _, m := range mods {
		m(&cfg)
	}
	s, err := New(h.ctx, cfg, ddb, h.kin)
	if err != nil {
		h.t.Fatalf("New(%s): %v", worker, err)
	}
	if err := s.Init(h.ctx); err != nil {
		h.t.Fatalf("Init(%s): %v", worker, err)
	}
	h.t.Cleanup(s.Close)
	return s
}

func noBalance(c *Config) { c.DisableBalancing = true }

// rows reads the whole lease table in one consistent scan.
func (h *harness) rows() map[string]*leaseRow {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(h.ctx, h.tm.wait)
	defer cancel()
	rows, err := scanRows(ctx, h.raw, h.table, h.tm.wait)
	if err != nil {
		h.t.Fatalf("scan %s: %v", h.table, err)
	}
	return rows
}

func (h *harness) row(id string) *leaseRow {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(h.ctx, h.tm.wait)
	defer cancel()
	out, err := h.raw.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(h.table), Key: keyOf(id), ConsistentRead: aws.Bool(true)})
	if err != nil {
		h.t.Fatalf("read row %s: %v", id, err)
	}
	r, err := decodeRow(out.Item)
	if err != nil {
		h.t.Fatalf("decode row %s: %v", id, err)
	}
	return r
}

func shardIDs(n int) []shardMeta {
	out := make([]shardMeta, n)
	for i := range out {
		out[i] = shardMeta{ID: fmt.Sprintf("shardId-%012d", i)}
	}
	return out
}

// refusal is an Acquisition that was not granted, as an error, so that tests check its reason with
// errors.Is.
type refusal struct {
	id  string
	acq Acquisition
}

func (r *refusal) Error() string {
	return fmt.Sprintf("shard %s: not acquired: %v (%s)", r.id, r.acq.Reason, r.acq.Detail)
}
func (r *refusal) Unwrap() error { return r.acq.Reason }

func isRefused(err error) bool {
	var r *refusal
	return errors.As(err, &r)
}

// take asks s for the lease on id: nil when acquired, a *refusal (errors.Is its reason) when not,
// or the call's error.
func take(ctx context.Context, s *Store, id string) error {
	acq, err := s.Acquire(ctx, id)
	if err != nil {
		return err
	}
	if !acq.Acquired {
		return &refusal{id: id, acq: acq}
	}
	return nil
}

// renew renews s's lease on id: an error wrapping ErrLeaseLost when the lease is no longer held,
// nil otherwise (also for a renewal that did not land while the lease is still valid).
func renew(ctx context.Context, s *Store, id string) error {
	held, _ := s.Renew(ctx, id)
	if !held {
		return fmt.Errorf("shard %s: renewal: %w", id, ErrLeaseLost)
	}
	return nil
}

// takeEventually calls Read and Acquire (as the KCL's event loop does through the worker's
// adapter) until the lease is taken, as often as the store rescans the lease table (the harness
// sets ScanInterval to the backend's pace). It returns the Acquisition.
func takeEventually(t *testing.T, s *Store, id string, timeout time.Duration) Acquisition {
	t.Helper()
	var got Acquisition
	poll.Until(t, timeout, s.cfg.ScanInterval, s.cfg.WorkerID+" takes "+id, func() (bool, string) {
		if _, err := s.Read(t.Context(), id); err != nil {
			return false, err.Error()
		}
		acq, err := s.Acquire(t.Context(), id)
		switch {
		case err != nil:
			return false, err.Error()
		case !acq.Acquired:
			return false, (&refusal{id: id, acq: acq}).Error()
		}
		got = acq
		return true, ""
	})
	return got
}

// checkpoint writes seq as id's checkpoint: nil when written, an error wrapping ErrLeaseLost when
// the store refused because the lease is not this worker's, or the call's error.
func checkpoint(ctx context.Context, s *Store, id, seq string) error {
	ok, err := s.Checkpoint(ctx, id, seq)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("shard %s: checkpoint: %w", id, ErrLeaseLost)
	}
	return nil
}

// timedOut reports a call cut by its CallTimeout: its outcome is unknown, not a verdict.
func timedOut(err error) bool { return errors.Is(err, context.DeadlineExceeded) }

// releaseScene gives a lease up to set the scene for what a subtest checks. A release cut by its
// call timeout still ends the lease (the store drops it and the row expires by itself), so only
// other errors fail the test.
func releaseScene(t *testing.T, s *Store, id string) {
	t.Helper()
	if _, err := s.Release(t.Context(), id); err != nil && !timedOut(err) {
		t.Fatalf("%s releases %s: %v", s.cfg.WorkerID, id, err)
	}
}

// renewOnce renews id's lease until one renewal succeeds (Renew also reports the lease held for a
// renewal that failed, e.g. timed out, while the lease is still valid) and returns that renewal's
// send time as the row records it.
func renewOnce(t *testing.T, h *harness, s *Store, id string) time.Time {
	t.Helper()
	ok := s.m.renewals.WithLabelValues("ok")
	before := testutil.ToFloat64(ok)
	poll.Until(t, h.tm.wait, h.tm.renew, s.cfg.WorkerID+" renews "+id, func() (bool, string) {
		if err := renew(h.ctx, s, id); err != nil {
			t.Fatalf("renewal: %v", err)
		}
		return testutil.ToFloat64(ok) > before, "renewal did not succeed"
	})
	return h.row(id).RenewedAt
}

// runStoreContract is the behaviour every backend must show. newBackend is called once; each
// subtest uses its own table, lease stores and Kinesis fake, so the subtests run in parallel.
func runStoreContract(t *testing.T, newBackend func(t *testing.T) contractBackend) {
	b := newBackend(t)

	t.Run("init creates the table and is idempotent", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, b)
		h.kin.set(shardIDs(1)...)
		a := h.store("a")
		if err := a.Init(h.ctx); err != nil {
			t.Fatalf("second Init: %v", err)
		}
		if row, err := a.Read(h.ctx, "shardId-000000000000"); err != nil || row != nil {
			t.Fatalf("Read on an empty table = %+v, %v, want no row", row, err)
		}
		if err := a.Healthy(); err != nil {
			t.Fatalf("Healthy = %v", err)
		}
	})

	t.Run("two workers racing for leases: each shard gets exactly one owner", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, b)
		shards := shardIDs(6)
		h.kin.set(shards...)
		stores := []*Store{h.store("a", noBalance), h.store("b", noBalance)}
		winners := map[string]string{}
		for _, sh := range shards {
			var wg sync.WaitGroup
			errs := make([]error, len(stores))
			for i, s := range stores {
				wg.Add(1)
				go func() {
					defer wg.Done()
					errs[i] = take(h.ctx, s, sh.ID)
				}()
			}
			wg.Wait()
			won := 0
			for i, err := range errs {
				switch {
				case err == nil:
					won++
					winners[sh.ID] = stores[i].cfg.WorkerID
				case !isRefused(err):
					t.Fatalf("%s: Acquire by %s: unexpected error %v", sh.ID, stores[i].cfg.WorkerID, err)
				}
			}
			if won != 1 {
				t.Fatalf("%s: %d winners (%v), want exactly 1", sh.ID, won, errs)
			}
			r := h.row(sh.ID)
			if r.Owner != winners[sh.ID] || r.Counter != 1 || r.OwnerSwitches != 1 {
				t.Fatalf("%s: row owner %q counter %d switches %d, want %q 1 1", sh.ID, r.Owner, r.Counter, r.OwnerSwitches, winners[sh.ID])
			}
		}
		for _, s := range stores {
			for _, id := range s.Held() {
				if winners[id] != s.cfg.WorkerID {
					t.Fatalf("%s holds %s locally but the row says %s", s.cfg.WorkerID, id, winners[id])
				}
			}
		}
		if len(stores[0].Held())+len(stores[1].Held()) != len(shards) {
			t.Fatalf("held %v + %v, want %d leases in total", stores[0].Held(), stores[1].Held(), len(shards))
		}
	})

	t.Run("renewal keeps the lease past its duration; a peer cannot take it", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, b)
		h.kin.set(shardIDs(1)...)
		a, bs := h.store("a"), h.store("b")
		st := "shardId-000000000000"
		if err := take(h.ctx, a, st); err != nil {
			t.Fatalf("take: %v", err)
		}
		taken := time.Now()
		ctx := a.LeaseContext(st)
		// Renew for one and a half lease durations, and until the peer has been refused at least
		// once after the first lease duration (a peer call cut by its timeout proves nothing).
		renewals, refusedLate := 0, 0
		for time.Since(taken) < h.tm.lease+h.tm.lease/2 || refusedLate == 0 {
			if time.Since(taken) > h.tm.wait {
				t.Fatalf("the peer was never refused after the lease duration within %v", h.tm.wait)
			}
			if err := renew(h.ctx, a, st); err != nil {
				t.Fatalf("renewal %d: %v", renewals, err)
			}
			renewals++
			switch err := take(h.ctx, bs, st); {
			case errors.Is(err, ErrLeaseHeld) || errors.Is(err, ErrFairShare):
				if time.Since(taken) > h.tm.lease {
					refusedLate++
				}
			case !timedOut(err):
				t.Fatalf("peer Acquire during renewals = %v, want ErrLeaseHeld or ErrFairShare", err)
			}
			time.Sleep(h.tm.renew) // the renewal cadence under test, not synchronisation
		}
		if ctx.Err() != nil {
			t.Fatalf("lease context cancelled while renewing: %v", context.Cause(ctx))
		}
		// Every successful renewal landed and nothing else wrote; a renewal that timed out may or
		// may not have landed.
		ok := int64(testutil.ToFloat64(a.m.renewals.WithLabelValues("ok")))
		if r := h.row(st); r.Owner != "a" || r.Counter < 1+ok || r.Counter > int64(1+renewals) {
			t.Fatalf("row owner %q counter %d, want a and 1+%d..1+%d", r.Owner, r.Counter, ok, renewals)
		}
	})

	t.Run("fencing: a paused former owner cannot checkpoint, renew or release", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, b)
		h.kin.set(shardIDs(1)...)
		var clk clock
		var lostCause atomic.Value
		a := h.store("a", noBalance, func(c *Config) {
			c.Now = clk.Now
			c.OnLeaseLost = func(id string, cause error) { lostCause.Store(cause) }
		})
		bs := h.store("b", noBalance)
		id := "shardId-000000000000"
		if err := take(h.ctx, a, id); err != nil {
			t.Fatalf("a takes: %v", err)
		}
		if err := checkpoint(h.ctx, a, id, "100"); err != nil {
			t.Fatalf("a checkpoints: %v", err)
		}
		ctxA := a.LeaseContext(id)
		clk.freeze() // a stops noticing time: it still believes it holds the lease
		start := time.Now()
		acqB := takeEventually(t, bs, id, h.tm.wait)
		if waited := time.Since(start); waited < h.tm.lease-200*time.Millisecond {
			t.Fatalf("b took a's lease after %v, before one lease duration", waited)
		}
		if acqB.Checkpoint != "100" || acqB.PreviousOwner != "a" {
			t.Fatalf("b sees checkpoint %q previous owner %q, want 100 and a", acqB.Checkpoint, acqB.PreviousOwner)
		}
		if err := checkpoint(h.ctx, bs, id, "150"); err != nil {
			t.Fatalf("b checkpoints: %v", err)
		}
		before := h.row(id)

		ok, err := a.Checkpoint(h.ctx, id, "200")
		if ok || err != nil {
			t.Fatalf("stale checkpoint = %v, %v, want (false, nil): refused by the fence", ok, err)
		}
		if after := h.row(id); after.Checkpoint != "150" || after.Owner != "b" || after.Counter != before.Counter {
			t.Fatalf("stale checkpoint changed the row: %+v -> %+v", before, after)
		}
		var lost *LeaseLostError
		if ctxA.Err() == nil || !errors.As(context.Cause(ctxA), &lost) || lost.ShardID != id {
			t.Fatalf("a's lease context: err %v cause %v, want cancelled with a *LeaseLostError for %s", ctxA.Err(), context.Cause(ctxA), id)
		}
		if c, _ := lostCause.Load().(error); !errors.Is(c, ErrLeaseLost) {
			t.Fatalf("OnLeaseLost cause = %v", c)
		}
		if held, err := a.Renew(h.ctx, id); held || err != nil {
			t.Fatalf("stale renewal = %v, %v, want (false, nil): lost", held, err)
		}
		if released, err := a.Release(h.ctx, id); released || err != nil {
			t.Fatalf("stale Release = %v, %v, want (false, nil): nothing to release", released, err)
		}
		if r := h.row(id); r.Owner != "b" || r.Checkpoint != "150" {
			t.Fatalf("stale release touched the new owner's row: %+v", r)
		}
	})

	t.Run("release hands the lease over at once with its checkpoint", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, b)
		h.kin.set(shardIDs(1)...)
		a, bs := h.store("a", noBalance), h.store("b", noBalance)
		st := "shardId-000000000000"
		if err := take(h.ctx, a, st); err != nil {
			t.Fatal(err)
		}
		ctx := a.LeaseContext(st)
		if err := checkpoint(h.ctx, a, st, "42"); err != nil {
			t.Fatal(err)
		}
		if released, err := a.Release(h.ctx, st); !released || err != nil {
			t.Fatalf("release: %v, %v", released, err)
		}
		if !errors.Is(context.Cause(ctx), ErrLeaseReleased) {
			t.Fatalf("released lease context cause = %v", context.Cause(ctx))
		}
		if row, err := bs.Read(h.ctx, st); err != nil || row == nil || row.Checkpoint != "42" || row.Owner != "" {
			t.Fatalf("after release: err %v row %+v", err, row)
		}
		if err := take(h.ctx, bs, st); err != nil {
			t.Fatalf("b takes a released lease at once: %v", err)
		}
		if err := a.ReleaseAll(h.ctx); err != nil {
			t.Fatalf("ReleaseAll with nothing held: %v", err)
		}
		if r := h.row(st); r.Owner != "b" || r.OwnerSwitches != 2 {
			t.Fatalf("row %+v, want owner b after 2 switches", r)
		}
	})

	t.Run("MillisBehindLatest rides on renewals and checkpoints and shows in Inspect", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, b)
		h.kin.set(shardIDs(2)...)
		a := h.store("a", noBalance)
		st := "shardId-000000000000"
		if err := take(h.ctx, a, st); err != nil {
			t.Fatal(err)
		}
		a.NoteMillisBehind("shardId-000000000001", 99) // not held: ignored
		if r := h.row(st); r.HasBehind {
			t.Fatalf("taken lease already has MillisBehindLatest: %+v", r)
		}
		noted := time.Now()
		a.NoteMillisBehind(st, 4200)
		if err := renew(h.ctx, a, st); err != nil {
			t.Fatal(err)
		}
		if r := h.row(st); !r.HasBehind || r.Behind != 4200 || r.BehindAt.Before(noted.Add(-time.Millisecond)) {
			t.Fatalf("after renewal: behind %v %d at %v", r.HasBehind, r.Behind, r.BehindAt)
		}
		a.NoteMillisBehind(st, 0)
		if err := checkpoint(h.ctx, a, st, "77"); err != nil {
			t.Fatal(err)
		}
		if r := h.row(st); r.Behind != 0 || !r.HasBehind || r.Checkpoint != "77" {
			t.Fatalf("after checkpoint: %+v", r)
		}
		snap, err := Inspect(h.ctx, h.raw, h.kin, h.table, names.RawStream, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		byID := map[string]ShardInfo{}
		for _, s := range snap.Shards {
			byID[s.ShardID] = s
		}
		if s := byID[st]; !s.HasMillisBehind || s.MillisBehindLatest != 0 || s.MillisBehindAt.IsZero() {
			t.Fatalf("inspect %+v", s)
		}
		if s := byID["shardId-000000000001"]; s.HasMillisBehind {
			t.Fatalf("never-leased shard has MillisBehindLatest: %+v", s)
		}
	})

	t.Run("expiry: an unrenewed lease is suspended locally at its expiry, taken by a peer that watched it, and found lost by the holder's next write", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, b)
		h.kin.set(shardIDs(1)...)
		a, bs := h.store("a", noBalance), h.store("b", noBalance)
		st := "shardId-000000000000"
		sent := time.Now() // no later than the send time of the take
		if err := take(h.ctx, a, st); err != nil {
			t.Fatal(err)
		}
		ctx := a.LeaseContext(st)
		if err := a.WaitValid(h.ctx, st); err != nil {
			t.Fatalf("WaitValid right after the take = %v, want nil", err)
		}
		// The peer is refused the live lease; from here on it watches the row unchanged.
		var watched time.Time
		poll.Until(t, h.tm.wait, h.tm.renew, "peer refused", func() (bool, string) {
			watched = time.Now()
			err := take(h.ctx, bs, st)
			if !errors.Is(err, ErrLeaseHeld) && !timedOut(err) {
				t.Fatalf("peer Acquire of a live lease = %v, want ErrLeaseHeld", err)
			}
			return err != nil && !timedOut(err), fmt.Sprint(err)
		})
		poll.Until(t, h.tm.lease+h.tm.wait, 50*time.Millisecond, "holder suspended", func() (bool, string) {
			return a.Suspended(st), "valid"
		})
		if held := time.Since(sent); held < h.tm.lease-200*time.Millisecond {
			t.Fatalf("suspended %v after the take, before the lease duration %v", held, h.tm.lease)
		} else {
			t.Logf("suspended %v after the take (lease %v)", held, h.tm.lease)
		}
		if ctx.Err() != nil {
			t.Fatalf("a suspended lease's context ended: %v (suspended is not lost)", context.Cause(ctx))
		}
		wctx, cancel := context.WithTimeout(h.ctx, 100*time.Millisecond)
		err := a.WaitValid(wctx, st)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("WaitValid on a suspended lease = %v, want it to block (until the deadline)", err)
		}
		waited := make(chan error, 1)
		go func() { waited <- a.WaitValid(h.ctx, st) }()
		takeEventually(t, bs, st, h.tm.wait)
		if after := time.Since(watched); after < h.tm.lease-200*time.Millisecond {
			t.Fatalf("peer took the lease %v after it began watching, before a lease duration %v", after, h.tm.lease)
		}
		if err := renew(h.ctx, a, st); !errors.Is(err, ErrLeaseLost) {
			t.Fatalf("the former holder's renewal = %v, want ErrLeaseLost (fenced)", err)
		}
		var lost *LeaseLostError
		if !errors.As(context.Cause(ctx), &lost) || !strings.Contains(lost.Reason, "fenced") {
			t.Fatalf("cause = %v, want fenced", context.Cause(ctx))
		}
		select {
		case err := <-waited:
			if !errors.Is(err, ErrLeaseLost) {
				t.Fatalf("WaitValid blocked on the suspended lease returned %v, want ErrLeaseLost", err)
			}
		case <-time.After(h.tm.wait):
			t.Fatal("WaitValid still blocked after the lease was lost")
		}
	})

	t.Run("DynamoDB paused longer than a lease: the holder is suspended meanwhile and keeps its lease; the peer never takes it", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, b)
		h.kin.set(shardIDs(1)...)
		a, bs := h.store("a", noBalance), h.store("b", noBalance)
		st := "shardId-000000000000"
		if err := take(h.ctx, a, st); err != nil {
			t.Fatal(err)
		}
		expires := renewOnce(t, h, a, st).Add(h.tm.lease) // for everyone else: last renewal's send time + lease
		if err := take(h.ctx, bs, st); !errors.Is(err, ErrLeaseHeld) {
			t.Fatalf("peer Acquire of a live lease = %v, want ErrLeaseHeld", err)
		}
		ctx, own := a.LeaseContext(st), a.OwnershipContext(st)
		h.ddb.close()
		pausedAt := time.Now()
		// Both keep calling through the pause, as the KCL does: every call fails.
		stop := make(chan struct{})
		var wg sync.WaitGroup
		lostDuring := make(chan error, 1)
		for _, f := range []func(){
			func() {
				if held, _ := a.Renew(h.ctx, st); !held {
					select {
					case lostDuring <- errors.New("the holder's renewal reported the lease lost during the pause"):
					default:
					}
				}
			},
			func() { _ = take(h.ctx, bs, st) },
		} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					f()
				}
			}()
		}
		poll.Until(t, h.tm.lease+h.tm.wait, 50*time.Millisecond, "holder suspended", func() (bool, string) {
			return a.Suspended(st), "valid"
		})
		if early := time.Until(expires); early > 300*time.Millisecond {
			t.Fatalf("suspended %v before the lease could expire for others", early)
		}
		wctx, cancel := context.WithTimeout(h.ctx, 100*time.Millisecond)
		err := a.WaitValid(wctx, st)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("WaitValid during the pause = %v, want it to block", err)
		}
		poll.Until(t, h.tm.wait, h.tm.sync, "unhealthy during the pause", func() (bool, string) {
			err := a.Healthy()
			return err != nil, fmt.Sprint(err)
		})
		for time.Since(pausedAt) < h.tm.lease+h.tm.lease/2 {
			time.Sleep(h.tm.sync) // the pause lasts one and a half lease durations: the fault, not synchronisation
		}
		close(stop)
		wg.Wait()
		h.ddb.open()
		select {
		case err := <-lostDuring:
			t.Fatal(err)
		default:
		}
		// The peer's watch restarted at its first successful read: it is refused.
		if err := take(h.ctx, bs, st); !errors.Is(err, ErrLeaseHeld) {
			t.Fatalf("peer Acquire right after the pause = %v, want ErrLeaseHeld", err)
		}
		// The holder renews with a fenced write and goes on.
		renewOnce(t, h, a, st)
		if err := a.WaitValid(h.ctx, st); err != nil || a.Suspended(st) {
			t.Fatalf("after the renewal: WaitValid %v, suspended %v", err, a.Suspended(st))
		}
		if ctx.Err() != nil || own.Err() != nil {
			t.Fatalf("the holder's contexts ended: %v / %v", context.Cause(ctx), context.Cause(own))
		}
		if got := testutil.ToFloat64(a.m.suspensions); got != 1 {
			t.Fatalf("suspensions = %v, want 1", got)
		}
		// It keeps the lease while the peer keeps asking.
		for start := time.Now(); time.Since(start) < h.tm.lease+h.tm.lease/2; {
			if err := renew(h.ctx, a, st); err != nil {
				t.Fatalf("renewal after the pause: %v", err)
			}
			if err := take(h.ctx, bs, st); !errors.Is(err, ErrLeaseHeld) && !timedOut(err) {
				t.Fatalf("peer Acquire after the pause = %v, want ErrLeaseHeld", err)
			}
			time.Sleep(h.tm.renew) // the renewal cadence under test, not synchronisation
		}
		if r := h.row(st); r.Owner != "a" || r.OwnerSwitches != 1 {
			t.Fatalf("row after the pause %+v, want still a's first lease", r)
		}
		if err := a.Healthy(); err != nil {
			t.Fatalf("Healthy after recovery: %v", err)
		}
	})

	t.Run("lineage: merge waits for both parents, split children for their parent", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, b)
		h.kin.set(
			shardMeta{ID: "p1", Closed: true}, shardMeta{ID: "p2", Closed: true},
			shardMeta{ID: "m", Parent: "p1", Adjacent: "p2"},
			shardMeta{ID: "q", Closed: true},
			shardMeta{ID: "q1", Parent: "q"}, shardMeta{ID: "q2", Parent: "q"},
			shardMeta{ID: "gone-child", Parent: "expired-parent"},
		)
		a, bs := h.store("a"), h.store("b")
		for _, id := range []string{"m", "q1", "q2"} {
			for _, s := range []*Store{a, bs} {
				err := take(h.ctx, s, id)
				if !isRefused(err) || !errors.Is(err, ErrWaitingOnParent) {
					t.Fatalf("%s Acquire(%s) before parents = %v, want ErrWaitingOnParent", s.cfg.WorkerID, id, err)
				}
			}
			if r := h.row(id); r != nil {
				t.Fatalf("waiting child %s got a row: %+v", id, r)
			}
		}
		// A parent that left the stream (past retention) with no row does not block.
		if err := take(h.ctx, a, "gone-child"); err != nil {
			t.Fatalf("child of an expired parent: %v", err)
		}
		finish := func(id string) {
			takeEventually(t, a, id, h.tm.wait)
			if err := checkpoint(h.ctx, a, id, ShardEnd); err != nil {
				t.Fatalf("SHARD_END %s: %v", id, err)
			}
			releaseScene(t, a, id)
		}
		finish("p1")
		if err := take(h.ctx, bs, "m"); !errors.Is(err, ErrWaitingOnParent) {
			t.Fatalf("merge child with one parent finished = %v, want ErrWaitingOnParent", err)
		}
		finish("p2")
		takeEventually(t, bs, "m", h.tm.wait)
		if r := h.row("m"); r.Parent != "p1" || r.Adjacent != "p2" || r.Owner != "b" {
			t.Fatalf("merge child row %+v, want parents p1+p2, owner b", r)
		}
		finish("q")
		takeEventually(t, a, "q1", h.tm.wait)
		takeEventually(t, bs, "q2", h.tm.wait)
		if err := take(h.ctx, a, "q2"); !isRefused(err) {
			t.Fatalf("second worker on a leased split child = %v, want not acquired", err)
		}
	})

	t.Run("lineage: a parent that left the stream but is still leased blocks", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, b)
		h.kin.set(shardMeta{ID: "p", Closed: true}, shardMeta{ID: "c", Parent: "p"})
		a, bs := h.store("a", noBalance), h.store("b", noBalance)
		if err := take(h.ctx, a, "p"); err != nil {
			t.Fatal(err)
		}
		h.kin.set(shardMeta{ID: "c", Parent: "p"}) // p leaves ListShards while a still works on it
		poll.Until(t, h.tm.wait, h.tm.sync, "lineage refresh", func() (bool, string) {
			err := take(h.ctx, bs, "c")
			return errors.Is(err, ErrWaitingOnParent), fmt.Sprint(err)
		})
		releaseScene(t, a, "p")
		takeEventually(t, bs, "c", h.tm.wait)
	})

	t.Run("table deleted: leases dropped, table recreated, work resumes", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, b)
		h.kin.set(shardIDs(2)...)
		reg := prometheus.NewRegistry()
		var lost atomic.Int32
		a := h.store("a", func(c *Config) {
			c.Registerer = reg
			c.OnLeaseLost = func(string, error) { lost.Add(1) }
		})
		st := "shardId-000000000000"
		if err := take(h.ctx, a, st); err != nil {
			t.Fatal(err)
		}
		if err := checkpoint(h.ctx, a, st, "7"); err != nil {
			t.Fatal(err)
		}
		ctx := a.LeaseContext(st)
		dctx, cancel := context.WithTimeout(h.ctx, h.tm.wait)
		defer cancel()
		if err := b.deleteTable(dctx, h.table); err != nil {
			t.Fatalf("delete table: %v", err)
		}
		poll.Until(t, h.tm.wait, h.tm.sync, "lease dropped", func() (bool, string) {
			err := renew(h.ctx, a, st)
			return errors.Is(err, ErrLeaseLost), fmt.Sprint(err)
		})
		var ll *LeaseLostError
		if !errors.As(context.Cause(ctx), &ll) || !strings.Contains(ll.Reason, "table") {
			t.Fatalf("lease context cause = %v, want table loss", context.Cause(ctx))
		}
		if lost.Load() == 0 {
			t.Fatal("OnLeaseLost not called")
		}
		poll.Until(t, h.tm.wait, h.tm.sync, "table recreated", func() (bool, string) {
			err := a.Healthy()
			return err == nil, fmt.Sprint(err)
		})
		if got := testutil.ToFloat64(a.m.tableRecreate); got != 1 {
			t.Fatalf("table recreated metric = %v, want 1", got)
		}
		acq := takeEventually(t, a, st, h.tm.wait)
		if row, err := a.Read(h.ctx, st); err != nil || acq.Checkpoint != "" || row == nil || row.Checkpoint != "" {
			t.Fatalf("checkpoint after recreation: %v (taken at %q, row %+v), want none", err, acq.Checkpoint, row)
		}
	})

	t.Run("reset refuses a live lease, force fences the holder; inspect reports the table", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, b)
		h.kin.set(shardMeta{ID: "s0"}, shardMeta{ID: "s1"}, shardMeta{ID: "p", Closed: true}, shardMeta{ID: "c", Parent: "p"})
		a, bs := h.store("a", noBalance), h.store("b", noBalance)
		st := "s0"
		if err := take(h.ctx, a, st); err != nil {
			t.Fatal(err)
		}
		if err := checkpoint(h.ctx, a, st, "1500"); err != nil {
			t.Fatal(err)
		}
		leaseCtx := a.LeaseContext("s0")
		to := Position{Kind: PositionAfterSequence, Sequence: "1200"}
		now := time.Now()
		plan, err := PlanReset(h.ctx, h.raw, h.kin, h.table, names.RawStream, "s0", to, now)
		if err != nil || plan.OldCheckpoint != "1500" || plan.NewCheckpoint != "1200" || !plan.LeaseLive || plan.Owner != "a" || plan.Applied {
			t.Fatalf("PlanReset = %+v, %v", plan, err)
		}
		before := h.row("s0")
		if _, err := Reset(h.ctx, h.raw, h.kin, h.table, names.RawStream, "s0", to, false, "alice", now); !errors.Is(err, ErrShardLeased) {
			t.Fatalf("Reset of a leased shard without force = %v, want ErrShardLeased", err)
		}
		if after := h.row("s0"); after.Checkpoint != "1500" || after.Counter != before.Counter || after.Owner != "a" {
			t.Fatalf("refused reset changed the row: %+v", after)
		}
		if _, err := Reset(h.ctx, h.raw, h.kin, h.table, names.RawStream, "s0", Position{Kind: PositionAfterSequence, Sequence: "12x"}, true, "alice", now); err == nil {
			t.Fatal("Reset to a malformed sequence succeeded")
		}
		res, err := Reset(h.ctx, h.raw, h.kin, h.table, names.RawStream, "s0", to, true, "alice", now)
		if err != nil || !res.Applied {
			t.Fatalf("forced Reset = %+v, %v", res, err)
		}
		r := h.row("s0")
		if r.Checkpoint != "1200" || r.Owner != "" || r.ResetBy != "alice" || r.ResetFrom != "1500" || r.Counter != before.Counter+1 ||
			r.ResetAt.Sub(now).Abs() > time.Millisecond {
			t.Fatalf("row after forced reset: %+v", r)
		}
		if err := checkpoint(h.ctx, a, st, "1600"); !errors.Is(err, ErrLeaseLost) {
			t.Fatalf("former holder's checkpoint after a forced reset = %v, want ErrLeaseLost", err)
		}
		if leaseCtx.Err() == nil {
			t.Fatal("former holder's lease context still live after a forced reset")
		}
		if row, err := bs.Read(h.ctx, "s0"); err != nil || row == nil || row.Checkpoint != "1200" {
			t.Fatalf("checkpoint seen after reset: %+v, %v", row, err)
		}
		if err := take(h.ctx, bs, "s0"); err != nil {
			t.Fatalf("taking a reset shard: %v", err)
		}
		if res, err := Reset(h.ctx, h.raw, h.kin, h.table, names.RawStream, "s1", Position{Kind: PositionTrimHorizon}, false, "bob", now); err != nil || res.NewCheckpoint != "" {
			t.Fatalf("trim-horizon reset of a never-leased shard = %+v, %v", res, err)
		}
		if r := h.row("s1"); r == nil || r.Checkpoint != "" || r.ResetBy != "bob" {
			t.Fatalf("row after trim-horizon reset: %+v", r)
		}

		// Rows the fleet cannot produce on demand: a dead worker's expired lease on a shard that
		// left the stream, and a live lease with no checkpoint for long.
		put := func(id string, build func(u *update)) {
			u := &update{}
			build(u)
			ctx, cancel := context.WithTimeout(h.ctx, h.tm.wait)
			defer cancel()
			in := &dynamodb.UpdateItemInput{TableName: aws.String(h.table), Key: keyOf(id), UpdateExpression: aws.String(u.expression()),
				ExpressionAttributeNames: u.names, ExpressionAttributeValues: u.values}
			if _, err := h.raw.UpdateItem(ctx, in); err != nil {
				t.Fatalf("write row %s: %v", id, err)
			}
		}
		put("old", func(u *update) {
			u.set(attrOwner, sv("ghost"))
			u.set(attrLeaseTimeout, sv(formatTime(now.Add(-time.Hour))))
			u.set(attrCheckpoint, sv("5"))
		})
		put("s1", func(u *update) {
			u.set(attrOwner, sv("slow"))
			u.set(attrCounter, nv(3))
			u.set(attrLeaseTimeout, sv(formatTime(now.Add(time.Hour))))
			u.set(attrAcquiredAt, sv(formatTime(now.Add(-time.Hour))))
			u.set(attrRenewedAt, sv(formatTime(now.Add(-time.Second))))
		})
		snap, err := Inspect(h.ctx, h.raw, h.kin, h.table, names.RawStream, now)
		if err != nil {
			t.Fatalf("Inspect: %v", err)
		}
		byID := map[string]ShardInfo{}
		for _, s := range snap.Shards {
			byID[s.ShardID] = s
		}
		if got := byID["s0"]; got.State != ShardOpen || got.Owner != "b" || got.Checkpoint != "1200" || got.LastResetBy != "alice" || !got.HasRow {
			t.Fatalf("s0 = %+v", got)
		}
		if got := byID["p"]; got.State != ShardClosed || got.HasRow {
			t.Fatalf("p = %+v", got)
		}
		if got := byID["c"]; got.ParentShardID != "p" || len(got.WaitingOn) != 1 || got.WaitingOn[0] != "p" {
			t.Fatalf("c = %+v", got)
		}
		if got := byID["old"]; got.State != ShardGone || !got.LeaseExpired || got.Owner != "ghost" {
			t.Fatalf("old = %+v", got)
		}
		want := map[string]bool{"c/waiting_on_parent": true, "old/expired_lease": true, "old/orphaned_lease": true,
			"p/unleased": true, "s1/no_progress": true}
		got := map[string]bool{}
		for _, w := range snap.Warnings {
			got[w.ShardID+"/"+string(w.Kind)] = true
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("warnings = %v, want %v (%+v)", got, want, snap.Warnings)
		}
		workers := map[string]WorkerInfo{}
		for _, w := range snap.Workers {
			workers[w.WorkerID] = w
		}
		if w := workers["b"]; len(w.Shards) != 1 || w.Shards[0] != "s0" || w.Live != 1 || w.LastRenewal.IsZero() {
			t.Fatalf("worker b = %+v", w)
		}
		if w := workers["ghost"]; w.Live != 0 || len(w.Shards) != 1 {
			t.Fatalf("worker ghost = %+v", w)
		}
	})

	t.Run("abandon: a stopped shard's lease goes to a peer at once, the stop warns in Inspect until it is taken", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, b)
		h.kin.set(shardIDs(1)...)
		a, bs := h.store("a", noBalance), h.store("b", noBalance)
		st := "shardId-000000000000"
		if err := take(h.ctx, a, st); err != nil {
			t.Fatal(err)
		}
		if err := checkpoint(h.ctx, a, st, "9"); err != nil {
			t.Fatal(err)
		}
		ctx := a.LeaseContext(st)
		if released, err := a.Abandon(h.ctx, st, "checkpoint: access denied"); !released || err != nil {
			t.Fatalf("Abandon = %v, %v", released, err)
		}
		if !errors.Is(context.Cause(ctx), ErrShardStopped) {
			t.Fatalf("lease context cause %v, want ErrShardStopped", context.Cause(ctx))
		}
		if r := h.row(st); r.Owner != "" || r.StopBy != "a" || r.StopReason != "checkpoint: access denied" || r.Checkpoint != "9" {
			t.Fatalf("row after Abandon: %+v", r)
		}
		snap, err := Inspect(h.ctx, h.raw, h.kin, h.table, names.RawStream, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if len(snap.Shards) != 1 || snap.Shards[0].LastStopBy != "a" || snap.Shards[0].LastStopReason != "checkpoint: access denied" {
			t.Fatalf("Inspect after Abandon: %+v", snap.Shards)
		}
		kinds := map[WarningKind]bool{}
		for _, w := range snap.Warnings {
			kinds[w.Kind] = true
		}
		if !kinds[WarnStopped] {
			t.Fatalf("warnings %+v, want %s", snap.Warnings, WarnStopped)
		}
		if err := take(h.ctx, a, st); !errors.Is(err, ErrStoppedHere) {
			t.Fatalf("the stopping worker takes the shard again at once: %v, want ErrStoppedHere", err)
		}
		acq := takeEventually(t, bs, st, h.tm.wait) // a released lease: at once
		if acq.Checkpoint != "9" {
			t.Fatalf("the peer resumes at %q, want 9", acq.Checkpoint)
		}
		// The stop stays in the row as history (the planners keep the shard away from a); the
		// warning is for a shard waiting for a new owner only.
		if r := h.row(st); r.Owner != "b" || r.StopBy != "a" || r.StopReason != "checkpoint: access denied" {
			t.Fatalf("row after the peer took it: %+v, want owner b and a's stop kept", r)
		}
		snap, err = Inspect(h.ctx, h.raw, h.kin, h.table, names.RawStream, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range snap.Warnings {
			if w.Kind == WarnStopped {
				t.Fatalf("stopped warning after a peer took the shard: %+v", w)
			}
		}
	})

	t.Run("abandon: a peer holding its fair share still takes the stopped shard", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, b)
		h.kin.set(shardIDs(4)...)
		a, bs := h.store("a"), h.store("b") // balancing on
		ids := shardIDs(4)                  // shardMeta
		for _, sh := range ids[:2] {
			if err := take(h.ctx, a, sh.ID); err != nil {
				t.Fatal(err)
			}
		}
		for _, sh := range ids[2:] {
			takeEventually(t, bs, sh.ID, h.tm.wait)
		}
		if acq, err := bs.Acquire(h.ctx, ids[0].ID); err != nil || acq.Acquired || !errors.Is(acq.Reason, ErrLeaseHeld) && !errors.Is(acq.Reason, ErrFairShare) {
			t.Fatalf("b at its share (2 of 4) takes a's live lease: %+v, %v", acq, err)
		}
		if released, err := a.Abandon(h.ctx, ids[0].ID, "checkpoint: access denied"); !released || err != nil {
			t.Fatalf("Abandon = %v, %v", released, err)
		}
		// Without the exception b, at its share, would be refused (ErrFairShare) while a, below
		// its share, takes the shard back after its bench, and fails again, forever.
		takeEventually(t, bs, ids[0].ID, h.tm.wait)
		if r := h.row(ids[0].ID); r.Owner != "b" || r.StopBy != "a" {
			t.Fatalf("row after b took the stopped shard: %+v", r)
		}
		if len(bs.Held()) != 3 {
			t.Fatalf("b holds %v, want 3 leases (above its share until balancing moves another)", bs.Held())
		}
	})

	t.Run("reserved rows (ReservedPrefix) are no shards: not scanned, planned, inspected, leased or reset", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, b)
		h.kin.set(shardIDs(2)...)
		a := h.store("a") // balancing on: a ghost worker counted from the reserved row would halve a's share
		const key = "__autoscaler#events-raw"
		ctx, cancel := context.WithTimeout(h.ctx, h.tm.wait)
		defer cancel()
		u := &update{}
		u.set(attrOwner, sv("ghost")) // shaped like a live lease on purpose
		u.set(attrCounter, nv(7))
		u.set(attrLeaseTimeout, sv(formatTime(time.Now().Add(time.Hour))))
		u.set("DesiredShards", nv(6))
		if _, err := h.raw.UpdateItem(ctx, &dynamodb.UpdateItemInput{TableName: aws.String(h.table), Key: keyOf(key),
			UpdateExpression: aws.String(u.expression()), ExpressionAttributeNames: u.names, ExpressionAttributeValues: u.values}); err != nil {
			t.Fatalf("write the reserved row: %v", err)
		}
		for _, m := range shardIDs(2) {
			if err := take(h.ctx, a, m.ID); err != nil {
				t.Fatalf("a takes %s with a reserved row in the table: %v", m.ID, err)
			}
		}
		leases, err := a.Leases(h.ctx)
		if err != nil || len(leases) != 2 {
			t.Fatalf("Leases = %v, %v; want the two shards only", leases, err)
		}
		if err := take(h.ctx, a, key); !errors.Is(err, ErrUnknownShard) {
			t.Fatalf("Acquire(%s) = %v, want ErrUnknownShard", key, err)
		}
		if _, err := a.Read(h.ctx, key); !errors.Is(err, ErrReservedKey) {
			t.Fatalf("Read(%s) = %v, want ErrReservedKey", key, err)
		}
		if err := a.Forget(h.ctx, key); !errors.Is(err, ErrReservedKey) {
			t.Fatalf("Forget(%s) = %v, want ErrReservedKey", key, err)
		}
		if _, err := Reset(h.ctx, h.raw, h.kin, h.table, names.RawStream, key, Position{Kind: PositionTrimHorizon}, true, "alice", time.Now()); !errors.Is(err, ErrReservedKey) {
			t.Fatalf("Reset(%s) = %v, want ErrReservedKey", key, err)
		}
		snap, err := Inspect(h.ctx, h.raw, h.kin, h.table, names.RawStream, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if len(snap.Shards) != 2 || len(snap.Workers) != 1 || snap.Workers[0].WorkerID != "a" || len(snap.Warnings) != 0 {
			t.Fatalf("Inspect with a reserved row: shards %+v workers %+v warnings %+v", snap.Shards, snap.Workers, snap.Warnings)
		}
		if r := h.row(key); r == nil || r.Owner != "ghost" || r.Counter != 7 {
			t.Fatalf("the reserved row was touched: %+v", r)
		}
	})

	t.Run("balanced: 3 workers on 8 shards converge to 3/3/2 and hold still; a leaver's shards are shared", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, b)
		shards := shardIDs(8)
		h.kin.set(shards...)
		var all []string
		for _, s := range shards {
			all = append(all, s.ID)
		}
		drivers := map[string]*kclDriver{}
		start := func(id string) {
			d := newKCLDriver(h.store(id), all, h.tm)
			drivers[id] = d
			t.Cleanup(d.stop)
		}
		spread := func(ids ...string) (bool, string) {
			loads := map[string]int{}
			for _, id := range ids {
				loads[id] = 0
			}
			owned, rows := 0, h.rows()
			for _, sh := range all {
				r := rows[sh]
				if r == nil || r.Owner == "" {
					continue
				}
				if _, ok := loads[r.Owner]; !ok {
					return false, "owned by a stopped worker: " + r.Owner
				}
				loads[r.Owner]++
				owned++
			}
			var ls []int
			for _, l := range loads {
				ls = append(ls, l)
			}
			sort.Ints(ls)
			return owned == len(all) && ls[len(ls)-1]-ls[0] <= 1, fmt.Sprintf("owned %d loads %v", owned, loads)
		}
		switches := func() int64 {
			var n int64
			for _, r := range h.rows() {
				n += r.OwnerSwitches
			}
			return n
		}
		start("w1")
		poll.Until(t, h.tm.wait, h.tm.sync, "w1 alone takes all", func() (bool, string) { return spread("w1") })
		base := switches()
		joined := time.Now()
		start("w2")
		start("w3")
		poll.Until(t, 2*h.tm.wait, h.tm.sync, "join converges", func() (bool, string) { return spread("w1", "w2", "w3") })
		t.Logf("join converged in %v with %d ownership changes", time.Since(joined), switches()-base)
		settled := switches()
		// Hold still: no lease moves for one and a half lease durations once balanced; a lease
		// whose renewals stopped would have expired and moved by then.
		hold := time.Now().Add(h.tm.lease + h.tm.lease/2)
		for time.Now().Before(hold) {
			if ok, state := spread("w1", "w2", "w3"); !ok {
				t.Fatalf("balance lost after convergence: %s", state)
			}
			time.Sleep(h.tm.sync) // sampling interval
		}
		if moved := switches() - settled; moved != 0 {
			t.Fatalf("%d ownership changes after convergence (flip-flop)", moved)
		}
		if moves := settled - base; moves > 8 {
			t.Fatalf("join took %d ownership changes, want <= 8 (5 are needed)", moves)
		}
		left, before := time.Now(), switches()
		drivers["w3"].stop() // its consumers end and release their leases (RemoveLeaseOwner)
		if err := drivers["w3"].s.ReleaseAll(h.ctx); err != nil {
			t.Fatalf("w3 ReleaseAll: %v", err)
		}
		if held := drivers["w3"].s.Held(); len(held) != 0 {
			t.Fatalf("w3 still holds %v after ReleaseAll", held)
		}
		poll.Until(t, h.tm.wait, h.tm.sync, "leave converges", func() (bool, string) { return spread("w1", "w2") })
		t.Logf("leave converged in %v with %d ownership changes", time.Since(left), switches()-before)
		if moved := switches() - before; moved > 4 {
			t.Fatalf("leave took %d ownership changes, want <= 4 (w3 held at most 3)", moved)
		}
	})
}

// kclDriver drives a Store the way vmware-go-kcl-v2's worker does through the worker's adapter:
// an event loop that calls Read and Acquire on shards it does not own and starts one consumer per
// sync, and per consumer a renewal loop (Renew) and Release when it ends. The "processor" honours
// LeaseContext: on a hand-off it checkpoints and releases; on loss it drops.
type kclDriver struct {
	s    *Store
	tm   timing
	ids  []string
	quit chan struct{}
	wg   sync.WaitGroup
	once sync.Once
	mu   sync.Mutex
	own  map[string]bool // shards with a running consumer
}

func newKCLDriver(s *Store, ids []string, tm timing) *kclDriver {
	d := &kclDriver{s: s, tm: tm, ids: ids, quit: make(chan struct{}), own: map[string]bool{}}
	d.wg.Add(1)
	go d.eventLoop()
	return d
}

func (d *kclDriver) stop() {
	d.once.Do(func() { close(d.quit) })
	d.wg.Wait()
}

func (d *kclDriver) owns(id string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.own[id]
}

func (d *kclDriver) eventLoop() {
	defer d.wg.Done()
	ctx := d.s.life
	tick := time.NewTicker(d.tm.sync)
	defer tick.Stop()
	for {
		select {
		case <-d.quit:
			return
		case <-tick.C:
		}
		order := append([]string(nil), d.ids...)
		rand.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		for _, id := range order {
			if d.owns(id) {
				continue
			}
			row, err := d.s.Read(ctx, id)
			if err != nil {
				continue
			}
			if row != nil && row.Checkpoint == ShardEnd {
				continue
			}
			acq, err := d.s.Acquire(ctx, id)
			if err != nil || !acq.Acquired {
				continue
			}
			d.mu.Lock()
			d.own[id] = true
			d.mu.Unlock()
			d.wg.Add(1)
			go d.consume(id)
			break
		}
	}
}

func (d *kclDriver) consume(id string) {
	defer d.wg.Done()
	ctx := d.s.life
	leaseCtx := d.s.LeaseContext(id)
	own := d.s.OwnershipContext(id)
	defer func() {
		d.mu.Lock()
		delete(d.own, id)
		d.mu.Unlock()
		_, _ = d.s.Release(ctx, id) // the KCL ignores this error too; fenced, so harmless
	}()
	renew := time.NewTicker(d.tm.renew)
	defer renew.Stop()
	seq := 0
	for {
		select {
		case <-d.quit:
			return
		case <-leaseCtx.Done():
			if errors.Is(context.Cause(leaseCtx), ErrLeaseHandedOff) && own.Err() == nil {
				seq++
				if ok, err := d.s.Checkpoint(ctx, id, fmt.Sprint(seq)); ok && err == nil {
					_, _ = d.s.Release(own, id)
				}
			}
			return
		case <-renew.C:
			if held, _ := d.s.Renew(ctx, id); !held {
				return
			}
		}
	}
}
