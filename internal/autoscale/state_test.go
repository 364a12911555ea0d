package autoscale

import (
	"context"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/kinesis-events/pipeline/internal/localstack"
	"github.com/kinesis-events/pipeline/internal/localstack/localstacktest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// leaseTable starts the local stack with a lease table (hash key ShardID, as the lease store
// creates it) and returns a context bounding the test.
func leaseTable(t *testing.T) (context.Context, *localstack.Stack, Store) {
	t.Helper()
	if testing.Short() {
		t.Skip("needs the local emulators")
	}
	st := localstacktest.Start(t)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	t.Cleanup(cancel)
	if err := st.CreateTable(ctx, "leases", "ShardID"); err != nil {
		t.Fatal(err)
	}
	return ctx, st, Store{DDB: st.DynamoDB(), Table: "leases"}
}

// TestStoreOnDynalite: state rows are versioned (a write on a stale version is refused and changes
// nothing); the leader lease is taken, renewed, refused to others until it ends, and released.
func TestStoreOnDynalite(t *testing.T) {
	ctx, _, s := leaseTable(t)
	h, v, err := s.Load(ctx, "raw")
	if err != nil || v != 0 || !h.Since.IsZero() {
		t.Fatalf("absent row: %+v, version %d, err %v", h, v, err)
	}
	h.Since = t0
	h.Calls = []time.Time{t0}
	d := Decision{At: t0, Stream: "raw", Action: ActionOut, From: 2, To: 4, Reason: "r"}
	h = record(h, d, 3)
	if ok, err := s.Save(ctx, "raw", h, 0); !ok || err != nil {
		t.Fatalf("first save: %v %v", ok, err)
	}
	if ok, err := s.Save(ctx, "raw", History{}, 0); ok || err != nil {
		t.Fatalf("second create: ok %v err %v, want refused", ok, err)
	}
	got, v, err := s.Load(ctx, "raw")
	if err != nil || v != 1 || len(got.Decisions) != 1 || got.Decisions[0].To != 4 || got.Last == nil || !got.Since.Equal(t0) {
		t.Fatalf("loaded %+v version %d err %v", got, v, err)
	}
	if ok, _ := s.Save(ctx, "raw", got, 1); !ok {
		t.Fatal("save at the current version refused")
	}
	if ok, _ := s.Save(ctx, "raw", got, 1); ok {
		t.Fatal("save at a stale version accepted")
	}
	if ok, err := s.SaveFleet(ctx, Fleet{At: t0, OpenShards: 4, Workers: 2}, 0); !ok || err != nil {
		t.Fatalf("fleet: %v %v", ok, err)
	}

	ok, l, err := s.Acquire(ctx, "a", t0, time.Minute)
	if !ok || err != nil || l.ID != "a" || !l.Until.Equal(t0.Add(time.Minute)) {
		t.Fatalf("a takes the free lease: %v %+v %v", ok, l, err)
	}
	if ok, l, _ := s.Acquire(ctx, "b", t0.Add(30*time.Second), time.Minute); ok || l.ID != "a" {
		t.Fatalf("b took a live lease of a: %+v", l)
	}
	if ok, l, _ := s.Acquire(ctx, "a", t0.Add(40*time.Second), time.Minute); !ok || !l.Since.Equal(t0) || !l.Until.Equal(t0.Add(100*time.Second)) {
		t.Fatalf("a renews: %v %+v", ok, l)
	}
	if ok, _, _ := s.Acquire(ctx, "b", t0.Add(99*time.Second), time.Minute); ok {
		t.Fatal("b took the lease before it ended")
	}
	if ok, l, _ := s.Acquire(ctx, "b", t0.Add(101*time.Second), time.Minute); !ok || l.ID != "b" {
		t.Fatalf("b takes the ended lease: %v %+v", ok, l)
	}
	if err := s.Release(ctx, "a", t0.Add(102*time.Second)); err != nil {
		t.Fatal(err)
	}
	if ok, _, _ := s.Acquire(ctx, "a", t0.Add(103*time.Second), time.Minute); ok {
		t.Fatal("a's release of b's lease ended it")
	}
	if err := s.Release(ctx, "b", t0.Add(104*time.Second)); err != nil {
		t.Fatal(err)
	}
	if ok, _, _ := s.Acquire(ctx, "a", t0.Add(105*time.Second), time.Minute); !ok {
		t.Fatal("a could not take the released lease")
	}

	st, err := s.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Leader == nil || st.Leader.ID != "a" || st.Fleet == nil || st.Fleet.Workers != 2 || len(st.Streams) != 1 || st.Streams["raw"].Last == nil {
		t.Fatalf("status %+v", st)
	}
}

func TestRecord(t *testing.T) {
	var h History
	at := func(s int, action string) Decision {
		return Decision{At: t0.Add(time.Duration(s) * time.Second), Action: action}
	}
	for i, a := range []string{ActionHold, ActionOut, ActionBlocked, ActionBlocked, ActionHold, ActionBlocked, ActionIn, ActionWatch, ActionWatch, ActionOut} {
		h = record(h, at(i, a), 4)
	}
	var got []string
	for _, d := range h.Decisions {
		got = append(got, d.Action)
	}
	// Kept: out, blocked, blocked (a new run after a hold), in, watch, out; the last 4 of them.
	want := []string{ActionBlocked, ActionIn, ActionWatch, ActionOut}
	if len(got) != 4 || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] || got[3] != want[3] {
		t.Fatalf("history %v, want %v", got, want)
	}
	if h.Last == nil || !h.Last.At.Equal(t0.Add(9*time.Second)) {
		t.Fatalf("last %+v", h.Last)
	}
}
