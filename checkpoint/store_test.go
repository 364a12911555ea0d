package checkpoint

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"

	"github.com/kinesis-events/pipeline/internal/ambiguous"
	"github.com/kinesis-events/pipeline/internal/names"
	"github.com/kinesis-events/pipeline/internal/poll"
)

// minParallel is how many parallel tests run at once unless -test.parallel says otherwise. The
// contract suites spend their time waiting for real-time leases to expire, not on the CPU; with
// the default of GOMAXPROCS (2 here) their waits would run one after the other for minutes.
const minParallel = 8

func TestMain(m *testing.M) {
	flag.Parse()
	explicit := false
	flag.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "test.parallel" })
	if n, err := strconv.Atoi(flag.Lookup("test.parallel").Value.String()); !explicit && err == nil && n < minParallel {
		if err := flag.Set("test.parallel", strconv.Itoa(minParallel)); err != nil {
			fmt.Fprintln(os.Stderr, "checkpoint tests:", err)
			os.Exit(2)
		}
	}
	goleak.VerifyTestMain(m,
		// Idle keep-alive connections of the SDK's HTTP client to the emulators.
		goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
	)
}

func TestStoreContractFake(t *testing.T) {
	t.Parallel()
	runStoreContract(t, func(t *testing.T) contractBackend {
		f := newFakeDDB()
		return contractBackend{ddb: f, tm: fakeTiming, deleteTable: func(ctx context.Context, table string) error {
			_, err := f.DeleteTable(ctx, &dynamodb.DeleteTableInput{TableName: aws.String(table)})
			return err
		}}
	})
}

func TestConfigValidate(t *testing.T) {
	ok := Config{WorkerID: "w", Stream: "s"}
	ok = ok.withDefaults()
	tests := []struct {
		name string
		mod  func(*Config)
		want string // substring of the error, "" for valid
	}{
		{"defaults are valid", func(*Config) {}, ""},
		{"worker id required", func(c *Config) { c.WorkerID = "" }, "WorkerID"},
		{"stream required", func(c *Config) { c.Stream = "" }, "Stream"},
		{"negative duration", func(c *Config) { c.ClaimTTL = -time.Second }, "ClaimTTL"},
		{"call timeout must be shorter than the lease", func(c *Config) { c.CallTimeout = c.LeaseDuration }, "CallTimeout"},
		{"checkpoint retry budget at least a lease", func(c *Config) { c.CheckpointRetryBudget = c.LeaseDuration - time.Second }, "CheckpointRetryBudget"},
		{"bench cap at least a lease", func(c *Config) { c.BenchMax = time.Second }, "BenchMax"},
		{"budget judged against the default lease when unset", func(c *Config) { c.LeaseDuration = 0; c.CheckpointRetryBudget = 5 * time.Second }, "CheckpointRetryBudget (5s) must be at least LeaseDuration (10s)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := ok
			tc.mod(&c)
			err := c.Validate()
			if (err == nil) != (tc.want == "") || (err != nil && !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("Validate = %v, want error containing %q", err, tc.want)
			}
		})
	}
	if ok.Table != names.LeaseTable || ok.LeaseDuration != 10*time.Second || ok.CallTimeout != 3*time.Second || ok.CheckpointRetryBudget != 30*time.Second || ok.BenchMax != 10*time.Minute || ok.Logger == nil || ok.Now == nil {
		t.Fatalf("defaults: %+v", ok)
	}
	if _, err := New(t.Context(), Config{Stream: "s"}, newFakeDDB(), &fakeKinesis{}); err == nil {
		t.Fatal("New without WorkerID succeeded")
	}
}

func fakeHarness(t *testing.T) *harness {
	f := newFakeDDB()
	return newHarness(t, contractBackend{ddb: f, tm: fakeTiming, deleteTable: func(ctx context.Context, table string) error {
		_, err := f.DeleteTable(ctx, &dynamodb.DeleteTableInput{TableName: aws.String(table)})
		return err
	}})
}

// A hand-off the processor ignores is released by the store after HandOffTimeout; meanwhile the
// lease is still owned: OwnershipContext is live and checkpoints succeed.
func TestHandOffReleasedAfterTimeout(t *testing.T) {
	t.Parallel()
	h := fakeHarness(t)
	h.kin.set(shardIDs(2)...)
	var handedOff atomic.Value
	// Long enough that the checks below, made while the hand-off is pending, survive a stalled
	// test process, and shorter than the lease, which is not renewed after them; the release is
	// checked not to come earlier.
	handOffTimeout := h.tm.lease / 2
	a := h.store("a", func(c *Config) {
		c.HandOffTimeout = handOffTimeout
		c.OnLeaseLost = func(id string, cause error) {
			if errors.Is(cause, ErrLeaseHandedOff) {
				handedOff.Store(id)
			}
		}
	})
	b := h.store("b")
	var sts []string
	for _, m := range shardIDs(2) {
		sts = append(sts, m.ID)
		if err := take(h.ctx, a, m.ID); err != nil {
			t.Fatalf("a takes %s: %v", m.ID, err)
		}
	}
	// b finds nothing free and claims one of a's leases.
	if err := take(h.ctx, b, "shardId-000000000000"); !isRefused(err) {
		t.Fatalf("b Acquire = %v", err)
	}
	if testutil.ToFloat64(b.m.claims) != 1 {
		t.Fatalf("b posted %v claims, want 1", testutil.ToFloat64(b.m.claims))
	}
	// a's renewals see the claim and hand one lease off.
	var id string
	var polled time.Time // start of the renewals that signalled the hand-off: before its timer started
	poll.Until(t, h.tm.wait, 20*time.Millisecond, "hand-off signalled", func() (bool, string) {
		polled = time.Now()
		for _, st := range sts {
			if err := renew(h.ctx, a, st); err != nil {
				return false, err.Error()
			}
		}
		id, _ = handedOff.Load().(string)
		return id != "", ""
	})
	leaseCtx, own := a.LeaseContext(id), a.OwnershipContext(id)
	if !errors.Is(context.Cause(leaseCtx), ErrLeaseHandedOff) || own.Err() != nil {
		t.Fatalf("after the hand-off request: lease ctx cause %v, ownership ctx err %v", context.Cause(leaseCtx), own.Err())
	}
	if err := checkpoint(h.ctx, a, id, "77"); err != nil {
		t.Fatalf("checkpoint while handing off: %v", err)
	}
	if err := renew(h.ctx, a, id); err != nil {
		t.Fatalf("renewal while handing off: %v", err)
	}
	select {
	case <-own.Done():
	case <-time.After(handOffTimeout + h.tm.wait):
		t.Fatalf("lease not released within %v of HandOffTimeout", h.tm.wait)
	}
	if after := time.Since(polled); after < handOffTimeout {
		t.Fatalf("lease released %v after the hand-off request, before HandOffTimeout %v", after, handOffTimeout)
	}
	if got := a.Held(); len(got) != 1 || got[0] == id {
		t.Fatalf("a holds %v after handing %s off", got, id)
	}
	if r := h.row(id); r.Owner != "" || r.Checkpoint != "77" || r.Claim != "b" {
		t.Fatalf("row after the forced hand-off: %+v", r)
	}
	takeEventually(t, b, id, h.tm.wait)
	if r := h.row(id); r.Claim != "" || r.Owner != "b" {
		t.Fatalf("row after the claimer took it: %+v", r)
	}
}

// landing is a DynamoDB whose next n UpdateItem calls land but lose their answer.
type landing interface {
	DynamoDBAPI
	arm(n int)
}

func (l *landThenFail) arm(n int) { l.mu.Lock(); l.n = n; l.mu.Unlock() }

func (l *sdkRetryLanded) arm(n int) { l.mu.Lock(); l.n = n; l.mu.Unlock() }

// landThenFail applies UpdateItem calls but reports a timeout for the next n of them, like a
// response lost on the wire.
type landThenFail struct {
	DynamoDBAPI
	mu sync.Mutex
	n  int
}

func (l *landThenFail) UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, o ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	out, err := l.DynamoDBAPI.UpdateItem(ctx, in, o...)
	l.mu.Lock()
	defer l.mu.Unlock()
	if err == nil && l.n > 0 {
		l.n--
		return nil, context.DeadlineExceeded
	}
	return out, err
}

// sdkRetryLanded is a DynamoDB whose client retries an UpdateItem that landed but whose answer was
// lost, as the AWS SDK does when a 200 body read fails: the first attempt applies, is noted as an
// unknown outcome, and the retry fails its own condition.
type sdkRetryLanded struct {
	DynamoDBAPI
	mu sync.Mutex
	n  int
}

func (l *sdkRetryLanded) UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, o ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	out, err := l.DynamoDBAPI.UpdateItem(ctx, in, o...)
	l.mu.Lock()
	retry := err == nil && l.n > 0
	if retry {
		l.n--
	}
	l.mu.Unlock()
	if !retry {
		return out, err
	}
	ambiguous.Note(ctx)
	return l.DynamoDBAPI.UpdateItem(ctx, in, o...)
}

// A renewal that landed but whose answer was lost must not make the lease look fenced, whether the
// Store's own next write finds the row one counter ahead (the call timed out) or the SDK resent it
// and the resend failed the condition the first attempt changed: the row still names us, the Store
// adopts it and renews on top of it.
func TestLandedWriteIsAdopted(t *testing.T) {
	for _, tc := range []struct {
		name string
		wrap func(DynamoDBAPI) landing
	}{
		{"the call timed out", func(d DynamoDBAPI) landing { return &landThenFail{DynamoDBAPI: d} }},
		{"the SDK resent it", func(d DynamoDBAPI) landing { return &sdkRetryLanded{DynamoDBAPI: d} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := fakeHarness(t)
			h.kin.set(shardIDs(1)...)
			lf := tc.wrap(h.raw)
			h.ddb.inner = lf
			a := h.store("a")
			st := "shardId-000000000000"
			if err := take(h.ctx, a, st); err != nil {
				t.Fatal(err)
			}
			lf.arm(1)
			if err := renew(h.ctx, a, st); err != nil {
				t.Fatalf("renewal with a lost answer = %v, want nil (lease still valid)", err)
			}
			if r := h.row(st); r.Counter != 3 {
				t.Fatalf("row counter %d, want 3 (the renewal landed, then its retry adopted it and renewed)", r.Counter)
			}
			if err := checkpoint(h.ctx, a, st, "9"); err != nil {
				t.Fatalf("checkpoint after an ambiguous renewal = %v, want success", err)
			}
			if r := h.row(st); r.Counter != 4 || r.Checkpoint != "9" || r.Owner != "a" {
				t.Fatalf("row %+v", r)
			}
			if a.LeaseContext(st).Err() != nil {
				t.Fatal("lease context cancelled by an ambiguous write")
			}
		})
	}
}

// A row naming this worker that this Store does not hold (a crashed earlier incarnation with the
// same WorkerID) is not held (the worker's KCL adapter reports it as unowned, so the KCL keeps
// trying it), and it is taken once it expired.
func TestOwnRowFromEarlierIncarnation(t *testing.T) {
	t.Parallel()
	h := fakeHarness(t)
	h.kin.set(shardIDs(1)...)
	old := h.store("a")
	st := "shardId-000000000000"
	if err := take(h.ctx, old, st); err != nil {
		t.Fatal(err)
	}
	if err := checkpoint(h.ctx, old, st, "5"); err != nil {
		t.Fatal(err)
	}
	// After the send time of the earlier incarnation's last write.
	written := time.Now()
	old.Close() // crash: nothing released
	a := h.store("a")
	if row, err := a.Read(h.ctx, st); err != nil || row == nil || row.Owner != "a" || row.Checkpoint != "5" || a.Holds(st) {
		t.Fatalf("Read: err %v row %+v, held %v; want the earlier incarnation's row, not held", err, row, a.Holds(st))
	}
	if err := take(h.ctx, a, st); !errors.Is(err, ErrLeaseHeld) {
		t.Fatalf("taking our own unexpired earlier lease = %v, want ErrLeaseHeld", err)
	}
	takeEventually(t, a, st, h.tm.wait)
	if after := time.Since(written); after < h.tm.lease {
		t.Fatalf("took the earlier lease %v after its last write, before it expired (lease %v)", after, h.tm.lease)
	}
	if r := h.row(st); r.Owner != "a" || r.Counter != 3 || r.OwnerSwitches != 2 {
		t.Fatalf("row %+v", r)
	}
}

// A take whose answer was lost (the call timed out after landing, or the SDK resent it and the
// resend failed the condition the first attempt changed) is not a lost race: the Store reads the
// row and adopts it when it names this worker with the counter it wrote. It used to read as a
// lost race (or an error) and leave the shard to its own stale row for a lease duration.
func TestLandedTakeIsAdopted(t *testing.T) {
	for _, tc := range []struct {
		name string
		wrap func(DynamoDBAPI) landing
	}{
		{"the call timed out", func(d DynamoDBAPI) landing { return &landThenFail{DynamoDBAPI: d} }},
		{"the SDK resent it", func(d DynamoDBAPI) landing { return &sdkRetryLanded{DynamoDBAPI: d} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := fakeHarness(t)
			h.kin.set(shardIDs(1)...)
			lf := tc.wrap(h.raw)
			h.ddb.inner = lf
			a := h.store("a")
			st := "shardId-000000000000"
			lf.arm(1)
			acq, err := a.Acquire(h.ctx, st)
			if err != nil || !acq.Acquired {
				t.Fatalf("take with a lost answer = %+v, %v, want acquired", acq, err)
			}
			if r := h.row(st); r.Owner != "a" || r.Counter != 1 || !a.Holds(st) {
				t.Fatalf("row %+v, held %v", r, a.Holds(st))
			}
			if err := checkpoint(h.ctx, a, st, "3"); err != nil {
				t.Fatalf("checkpoint on the adopted lease: %v", err)
			}
		})
	}
}

// A release the SDK resent after it landed fails its own condition (the owner is gone); it is a
// release, not a fenced lease.
func TestResentReleaseIsNotFenced(t *testing.T) {
	h := fakeHarness(t)
	h.kin.set(shardIDs(1)...)
	lf := &sdkRetryLanded{DynamoDBAPI: h.raw}
	h.ddb.inner = lf
	a := h.store("a")
	st := "shardId-000000000000"
	if err := take(h.ctx, a, st); err != nil {
		t.Fatal(err)
	}
	ctx := a.LeaseContext(st)
	lf.arm(1)
	released, err := a.Release(h.ctx, st)
	if !released || err != nil {
		t.Fatalf("resent release = %v, %v, want (true, nil)", released, err)
	}
	if fenced := testutil.ToFloat64(a.m.lost.WithLabelValues("fenced")); fenced != 0 {
		t.Fatalf("leases counted fenced: %v, want 0", fenced)
	}
	if got := testutil.ToFloat64(a.m.lost.WithLabelValues("released")); got != 1 {
		t.Fatalf("leases counted released: %v, want 1", got)
	}
	if !errors.Is(context.Cause(ctx), ErrLeaseReleased) {
		t.Fatalf("lease context cause %v, want ErrLeaseReleased", context.Cause(ctx))
	}
	if r := h.row(st); r.Owner != "" || r.Counter != 2 {
		t.Fatalf("row %+v, want released once", r)
	}
}
