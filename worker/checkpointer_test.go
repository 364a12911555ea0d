package worker

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	chk "github.com/vmware/vmware-go-kcl-v2/clientlibrary/checkpoint"
	kcl "github.com/vmware/vmware-go-kcl-v2/clientlibrary/interfaces"
	par "github.com/vmware/vmware-go-kcl-v2/clientlibrary/partition"

	"github.com/kinesis-events/pipeline/checkpoint"
)

// scriptedLeases is a hand-written kclLeases whose answers the test sets.
type scriptedLeases struct {
	acq      checkpoint.Acquisition
	acqErr   error
	held     bool  // Renew's first result
	renewErr error // Renew's second result
	cpOK     bool
	cpErr    error
	row      *checkpoint.ShardLease
	holds    bool
	calls    []string
	ctxs     []context.Context
}

func (s *scriptedLeases) note(ctx context.Context, call string) {
	s.calls = append(s.calls, call)
	s.ctxs = append(s.ctxs, ctx)
}

func (s *scriptedLeases) Init(ctx context.Context) error { s.note(ctx, "Init"); return nil }
func (s *scriptedLeases) Acquire(ctx context.Context, _ string) (checkpoint.Acquisition, error) {
	s.note(ctx, "Acquire")
	return s.acq, s.acqErr
}
func (s *scriptedLeases) Renew(ctx context.Context, _ string) (bool, error) {
	s.note(ctx, "Renew")
	return s.held, s.renewErr
}
func (s *scriptedLeases) Checkpoint(ctx context.Context, _, seq string) (bool, error) {
	s.note(ctx, "Checkpoint "+seq)
	return s.cpOK, s.cpErr
}
func (s *scriptedLeases) Release(ctx context.Context, _ string) (bool, error) {
	s.note(ctx, "Release")
	return true, nil
}
func (s *scriptedLeases) Read(ctx context.Context, _ string) (*checkpoint.ShardLease, error) {
	s.note(ctx, "Read")
	return s.row, nil
}
func (s *scriptedLeases) Peek(ctx context.Context, _ string) (*checkpoint.ShardLease, error) {
	s.note(ctx, "Peek")
	return s.row, nil
}
func (s *scriptedLeases) Leases(ctx context.Context) (map[string]checkpoint.ShardLease, error) {
	s.note(ctx, "Leases")
	if s.row == nil {
		return map[string]checkpoint.ShardLease{}, nil
	}
	return map[string]checkpoint.ShardLease{s.row.ShardID: *s.row}, nil
}
func (s *scriptedLeases) Forget(ctx context.Context, _ string) error {
	s.note(ctx, "Forget")
	return nil
}
func (s *scriptedLeases) Claim(ctx context.Context, _ string) (bool, error) {
	s.note(ctx, "Claim")
	return false, nil
}
func (s *scriptedLeases) Holds(string) bool { return s.holds }

type ctxKey struct{}

func newAdapter(s *scriptedLeases) *kclCheckpointer {
	return &kclCheckpointer{ctx: context.WithValue(context.Background(), ctxKey{}, "worker"), store: s, worker: "w1"}
}

func kclShard(id, owner string) *par.ShardStatus {
	st := &par.ShardStatus{ID: id, Mux: &sync.RWMutex{}}
	st.SetLeaseOwner(owner)
	return st
}

// The adapter maps the store's context-first answers onto the KCL's error conventions: a refusal
// satisfies chk.ErrLeaseNotAcquired (and keeps its reason), a lease found lost on renewal or
// checkpoint wraps checkpoint.ErrLeaseLost, a renewal that did not land while the lease is valid is
// no error, and every call runs under the adapter's context.
func TestKCLCheckpointerMapsOutcomes(t *testing.T) {
	s := &scriptedLeases{acq: checkpoint.Acquisition{Reason: checkpoint.ErrWaitingOnParent, Detail: "parent p"}}
	c := newAdapter(s)
	st := kclShard("s1", "")
	err := c.GetLease(st, "w1")
	if !errors.As(err, &chk.ErrLeaseNotAcquired{}) || !errors.Is(err, checkpoint.ErrWaitingOnParent) {
		t.Fatalf("refused take = %v, want chk.ErrLeaseNotAcquired wrapping ErrWaitingOnParent", err)
	}
	if st.GetLeaseOwner() != "" {
		t.Fatalf("refused take set the owner to %q", st.GetLeaseOwner())
	}

	s.acq = checkpoint.Acquisition{Acquired: true, Checkpoint: "42"}
	if err := c.GetLease(st, "w1"); err != nil {
		t.Fatalf("granted take = %v", err)
	}
	if st.GetLeaseOwner() != "w1" || st.GetCheckpoint() != "42" {
		t.Fatalf("after the take: owner %q checkpoint %q", st.GetLeaseOwner(), st.GetCheckpoint())
	}

	s.held, s.renewErr = true, context.DeadlineExceeded // owner is w1 now: a renewal
	if err := c.GetLease(st, "w1"); err != nil {
		t.Fatalf("renewal that did not land while valid = %v, want nil", err)
	}
	s.held, s.renewErr = false, nil
	if err := c.GetLease(st, "w1"); !errors.Is(err, checkpoint.ErrLeaseLost) {
		t.Fatalf("renewal of a lost lease = %v, want ErrLeaseLost", err)
	}

	st.SetCheckpoint("43")
	s.cpOK = false
	if err := c.CheckpointSequence(st); !errors.Is(err, checkpoint.ErrLeaseLost) {
		t.Fatalf("fenced checkpoint = %v, want ErrLeaseLost", err)
	}
	s.cpOK, s.cpErr = false, errors.New("throttled")
	if err := c.CheckpointSequence(st); err == nil || errors.Is(err, checkpoint.ErrLeaseLost) {
		t.Fatalf("failed checkpoint call = %v, want its error, not a lease loss", err)
	}
	s.cpOK, s.cpErr = true, nil
	if err := c.CheckpointSequence(st); err != nil {
		t.Fatalf("checkpoint = %v", err)
	}
	for i, ctx := range s.ctxs {
		if ctx.Value(ctxKey{}) != "worker" {
			t.Fatalf("call %q did not run under the adapter's context", s.calls[i])
		}
	}
}

// GetLease for another worker id is a plain error, never a quiet refusal.
func TestKCLCheckpointerRefusesAnotherWorker(t *testing.T) {
	s := &scriptedLeases{}
	c := newAdapter(s)
	err := c.GetLease(kclShard("s1", ""), "w2")
	if err == nil || errors.As(err, &chk.ErrLeaseNotAcquired{}) {
		t.Fatalf("GetLease for another worker = %v, want a plain error", err)
	}
	if len(s.calls) != 0 {
		t.Fatalf("the store was asked: %v", s.calls)
	}
}

// FetchCheckpoint reports a row that names this worker without the store holding the lease (an
// earlier incarnation that crashed) as unowned, so the KCL keeps trying to take it; a row without
// a checkpoint, or no row, is chk.ErrSequenceIDNotFound.
func TestKCLCheckpointerFetchCheckpoint(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	s := &scriptedLeases{row: &checkpoint.ShardLease{ShardID: "s1", Owner: "w1", Checkpoint: "5", LeaseTimeout: at}}
	c := newAdapter(s)
	st := kclShard("s1", "")
	if err := c.FetchCheckpoint(st); err != nil || st.GetLeaseOwner() != "" || st.GetCheckpoint() != "5" || !st.GetLeaseTimeout().Equal(at) {
		t.Fatalf("earlier incarnation's row: err %v owner %q checkpoint %q timeout %v", err, st.GetLeaseOwner(), st.GetCheckpoint(), st.GetLeaseTimeout())
	}
	s.holds = true
	if err := c.FetchCheckpoint(st); err != nil || st.GetLeaseOwner() != "w1" {
		t.Fatalf("held lease: err %v owner %q", err, st.GetLeaseOwner())
	}
	s.row = &checkpoint.ShardLease{ShardID: "s1", Owner: "w2"}
	if err := c.FetchCheckpoint(st); !errors.Is(err, chk.ErrSequenceIDNotFound) || st.GetLeaseOwner() != "w2" {
		t.Fatalf("row without checkpoint: err %v owner %q", err, st.GetLeaseOwner())
	}
	s.row = nil
	if err := c.FetchCheckpoint(st); !errors.Is(err, chk.ErrSequenceIDNotFound) || st.GetCheckpoint() != "" {
		t.Fatalf("no row: err %v checkpoint %q", err, st.GetCheckpoint())
	}
	if _, err := c.GetLeaseOwner("s1"); !errors.Is(err, chk.NoLeaseOwnerErr) {
		t.Fatalf("GetLeaseOwner without a row = %v", err)
	}
}

// FetchCheckpoint reads a shard this worker holds as it is now (where its reading starts), and
// any other from the store's cached view: the KCL asks for every shard it does not hold on every
// shard sync, and a consistent read each was most of the lease table's traffic in a spike.
func TestKCLCheckpointerFetchCheckpointCached(t *testing.T) {
	s := &scriptedLeases{row: &checkpoint.ShardLease{ShardID: "s1", Owner: "w2", Checkpoint: "5"}}
	c := newAdapter(s)
	if err := c.FetchCheckpoint(kclShard("s1", "")); err != nil {
		t.Fatal(err)
	}
	s.holds = true
	if err := c.FetchCheckpoint(kclShard("s1", "")); err != nil {
		t.Fatal(err)
	}
	if want := []string{"Peek", "Read"}; !slices.Equal(s.calls, want) {
		t.Fatalf("calls %v, want %v (not held: the cached view; held: a consistent read)", s.calls, want)
	}
}

// The KCL's consumer ends without calling Shutdown when GetRecords fails past its retries (or a
// renewal finds the lease lost): it only releases the lease (RemoveLeaseOwner). The adapter then
// finishes the shard's processor itself: its buffers are dropped (the shared held gauge goes
// down), it leaves the registry, and its context (with the hook it holds on the worker's
// hard-stop context) is cancelled, so nothing drifts or leaks per lease churn.
func TestKCLReleaseWithoutShutdownFinishesTheProcessor(t *testing.T) {
	h := newProcHarness(t)
	h.shard.held = 4
	h.batch(0, "1", "2")
	s := &scriptedLeases{}
	c := &kclCheckpointer{ctx: t.Context(), store: s, worker: "w1", released: h.env.released}
	if err := c.RemoveLeaseOwner(testShard); err != nil {
		t.Fatal(err)
	}
	if !h.shard.isClosed() || h.registered() {
		t.Fatalf("after the KCL released the lease: shard closed %v, registered %v", h.shard.isClosed(), h.registered())
	}
	if h.p.ctx.Err() == nil {
		t.Fatal("the processor's context (and its hook on the hard-stop context) is still live")
	}
	if len(s.calls) != 1 || s.calls[0] != "Release" {
		t.Fatalf("store calls %v, want the release", s.calls)
	}
	// Shutdown after that (the normal path) finds nothing left to do.
	h.p.Shutdown(&kcl.ShutdownInput{ShutdownReason: kcl.REQUESTED, Checkpointer: h.cp})
	if got := h.leases.written(); !slices.Equal(got, []string{"2"}) {
		t.Fatalf("checkpoints %v, want [2]", got)
	}
}
