package processors

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/kinesis-events/pipeline/internal/names"
)

// foreign marks recs as read from shard (a parent's tail, as the worker feeds it to a child).
func foreign(shard string, recs []Record) []Record {
	out := slices.Clone(recs)
	for i := range out {
		out[i].Shard = shard
	}
	return out
}

// halves returns the hash key ranges of a split of the whole key space at the middle of the keys
// of customers lo and hi (lo's key below hi's), with lo in the first half.
func halves(t *testing.T, lo, hi string) (Lineage, Lineage) {
	kl, kh := custKeyOf(lo), custKeyOf(hi)
	if bytes.Compare(kl[:], kh[:]) >= 0 {
		t.Fatalf("customer %s does not hash below %s", lo, hi)
	}
	cut := kh // the second half starts at hi's key
	end := cut
	for i := 15; i >= 0; i-- { // end = cut - 1
		end[i]--
		if end[i] != 0xff {
			break
		}
	}
	all := [16]byte{}
	for i := range all {
		all[i] = 0xff
	}
	return Lineage{Parents: []string{"parent"}, HashLo: [16]byte{}, HashHi: end},
		Lineage{Parents: []string{"parent"}, HashLo: cut, HashHi: all}
}

// lowHigh returns two customer ids whose keys sort in that order.
func lowHigh() (string, string) {
	a, b := "cust-a", "cust-b"
	ka, kb := custKeyOf(a), custKeyOf(b)
	if bytes.Compare(ka[:], kb[:]) > 0 {
		return b, a
	}
	return a, b
}

// TestSplitKeepsTheReorderWindow: a parent shard ends (SHARD_END) while it holds events waiting for
// their predecessors. It is not drained: each child loads the parent's state for its hash key range,
// reads the parent's tail (everything after its watermark) before its own records, and goes on
// waiting. The predecessors arrive on the children: every customer is delivered in order, once,
// with no gap and no late flag.
func TestSplitKeepsTheReorderWindow(t *testing.T) {
	h := newHarness(t, testConfig())
	a, b := lowHigh()
	parent := h.open("parent")
	precs := h.recs(
		ev{id: "a1", cust: a, seq: 1}, ev{id: "a2", cust: a, seq: 2},
		ev{id: "a4", cust: a, seq: 4}, // held, waiting for a3: pins the watermark
		ev{id: "b1", cust: b, seq: 1}, // released, but behind the pin
		ev{id: "b3", cust: b, seq: 3}, // held
	)
	wm := h.process(parent, precs)
	if wm != precs[1].SequenceNumber || parent.Held() != 2 {
		t.Fatalf("parent watermark %q held %d", wm, parent.Held())
	}
	parent.Close() // SHARD_END: nothing drained
	tail := precs[2:]

	lineA, lineB := halves(t, a, b)
	h.clock.Advance(10 * time.Second) // within the window
	childA := openShardWith(t, h.p, "child-a", lineA)
	childB := openShardWith(t, h.p, "child-b", lineB)
	if st := childA.dedupe.st; cursorOf(st, a) != 2 || st.custs[custKeyOf(b)] != nil {
		t.Fatalf("child a inherited %d customers, a's cursor %d", len(st.custs), cursorOf(st, a))
	}
	if cursorOf(childB.dedupe.st, b) != 1 || len(childB.dedupe.st.custs) != 1 {
		t.Fatalf("child b inherited b's cursor %d", cursorOf(childB.dedupe.st, b))
	}
	// Each child reads the parent's tail, its own range only (the worker filters by hash key), then
	// its own records.
	if wm := h.process(childA, foreign("parent", []Record{tail[0]})); wm != "" || childA.Held() != 1 {
		t.Fatalf("child a after the tail: watermark %q held %d", wm, childA.Held())
	}
	own := h.recs(ev{id: "a3", cust: a, seq: 3}, ev{id: "a5", cust: a, seq: 5})
	if wm := h.process(childA, own); wm != own[1].SequenceNumber || childA.Held() != 0 {
		t.Fatalf("child a: watermark %q held %d", wm, childA.Held())
	}
	h.process(childB, foreign("parent", tail[1:]))
	h.process(childB, h.recs(ev{id: "b2", cust: b, seq: 2}))

	got := perCustomer(analytics(t, h.kin, names.AnalyticsStream("page_view")))
	want := []string{a + ":1", a + ":2", a + ":3", a + ":4", a + ":5", b + ":1", b + ":2", b + ":3"}
	if a > b {
		want = append(want[5:], want[:5]...)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("delivered %v, want %v", got, want)
	}
	for _, r := range analytics(t, h.kin, names.AnalyticsStream("page_view")) {
		if r.EventID == "a4" && r.SourceShard != "parent" {
			t.Fatalf("a4 from the parent's tail has source shard %q", r.SourceShard)
		}
	}
}

// TestMergeJoinsParentStates: the child of a merge loads both parents' states and reads both tails.
func TestMergeJoinsParentStates(t *testing.T) {
	h := newHarness(t, testConfig())
	p1, p2 := h.open("p1"), h.open("p2")
	r1 := h.recs(ev{id: "a1", cust: "a", seq: 1}, ev{id: "a3", cust: "a", seq: 3})
	r2 := h.recs(ev{id: "b1", cust: "b", seq: 1}, ev{id: "b2", cust: "b", seq: 2})
	h.process(p1, r1)
	h.process(p2, r2)
	p1.Close()
	p2.Close()
	child := openShardWith(t, h.p, "child", Lineage{Parents: []string{"p1", "p2"}})
	if cursorOf(child.dedupe.st, "a") != 1 || cursorOf(child.dedupe.st, "b") != 2 {
		t.Fatal("the child did not join both parents' states")
	}
	h.process(child, foreign("p1", r1[1:]))
	h.process(child, foreign("p2", nil))
	h.process(child, h.recs(ev{id: "a2", cust: "a", seq: 2}, ev{id: "b3", cust: "b", seq: 3}))
	if got := perCustomer(analytics(t, h.kin, names.AnalyticsStream("page_view"))); !slices.Equal(got, []string{"a:1", "a:2", "a:3", "b:1", "b:2", "b:3"}) {
		t.Fatalf("delivered %v", got)
	}
	// The child's own state now stands alone: a new owner of it does not need the parents.
	h.mem.mu.Lock()
	for k := range h.mem.items {
		if bytes.HasPrefix([]byte(k), []byte(statePrefix+"p")) {
			delete(h.mem.items, k)
		}
	}
	h.mem.mu.Unlock()
	if st := h.durable("child"); cursorOf(st, "a") != 3 || cursorOf(st, "b") != 3 {
		t.Fatalf("child's durable state: a %d b %d", cursorOf(st, "a"), cursorOf(st, "b"))
	}
}

func openShardWith(t *testing.T, p *Pipeline, id string, lin Lineage) *Shard {
	t.Helper()
	s, err := p.OpenShard(context.Background(), id, lin)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestCompaction: once the log is as large as the snapshot, the state is compacted into a new
// snapshot; a new owner loads the same state; customers past the horizon are dropped.
func TestCompaction(t *testing.T) {
	cfg := testConfig()
	cfg.DedupeHorizon = 48 * time.Hour
	h := newHarness(t, cfg)
	s := h.open("s")
	for round := range 20 { // 200 customers x ~30 bytes a batch: 64 KB of log after about 11 batches
		var evs []ev
		for i := range 200 {
			evs = append(evs, ev{id: fmt.Sprint("e", round, "-", i), cust: fmt.Sprint("c", i), seq: uint64(round + 1)})
		}
		h.process(s, h.recs(evs...))
	}
	if snaps := h.counter("pipeline_state_snapshots_total"); snaps < 2 {
		t.Fatalf("%v snapshots, want the first and at least one compaction", snaps)
	}
	st := h.durable("s")
	if len(st.custs) != 200 || cursorOf(st, "c7") != 20 {
		t.Fatalf("durable state: %d customers, c7 at %d", len(st.custs), cursorOf(st, "c7"))
	}
	// Three days later one customer comes back: the others' state is past the horizon and goes at
	// the next compaction (here: the next owner's open).
	h.clock.Advance(72 * time.Hour)
	h.process(s, h.recs(ev{id: "back", cust: "c7", seq: 21}))
	s.Close()
	s2 := h.open("s")
	if len(s2.dedupe.st.custs) != 1 || cursorOf(s2.dedupe.st, "c7") != 21 {
		t.Fatalf("after the horizon: %d customers", len(s2.dedupe.st.custs))
	}
	if h.counter("pipeline_state_customers_expired_total") < 199 {
		t.Fatal("expired customers not counted")
	}
}

// TestStateTakenOver: a second owner registers in the manifest; the first one's next manifest
// write fails, and it stops instead of writing over the new owner's state.
func TestStateTakenOver(t *testing.T) {
	cfg := testConfig()
	h := newHarness(t, cfg)
	first := h.open("s")
	h.process(first, h.recs(ev{id: "e1", cust: "c", seq: 1}))
	second := h.open("s")
	h.process(second, h.recs(ev{id: "e2", cust: "c", seq: 2}))
	// Half a horizon later the first owner compacts: its manifest version is stale.
	h.clock.Advance(cfg.withDefaults().DedupeHorizon)
	_, err := first.Process(context.Background(), h.recs(ev{id: "x1", cust: "x", seq: 1}))
	if !errors.Is(err, ErrStateTakenOver) {
		t.Fatalf("stale owner: %v, want ErrStateTakenOver", err)
	}
}

// TestReturningCustomerNoFalseGap: a customer silent for longer than the horizon loses its state;
// when it comes back its next event still waits the window (a new customer's first seqs may be
// behind), but is released without a gap: the seqs before were delivered long ago. A customer that
// is really new gets its gap.
func TestReturningCustomerNoFalseGap(t *testing.T) {
	cfg := testConfig()
	cfg.DedupeHorizon = 48 * time.Hour
	h := newHarness(t, cfg)
	s := h.open("s")
	h.process(s, h.recs(ev{id: "r1", cust: "r", seq: 1}, ev{id: "r2", cust: "r", seq: 2}))
	h.clock.Advance(4 * 24 * time.Hour)
	h.process(s, h.recs(ev{id: "o1", cust: "other", seq: 1})) // a compaction: r's state expires
	if s.dedupe.st.custs[custKeyOf("r")] != nil || h.counter("pipeline_state_customers_expired_total") != 1 {
		t.Fatal("r's state did not expire")
	}
	s.Close()
	s = h.open("s") // the retired filter is durable too
	h.process(s, h.recs(ev{id: "r3", cust: "r", seq: 3}, ev{id: "n2", cust: "n", seq: 2}))
	h.clock.Advance(time.Minute)
	h.process(s, nil)
	got := seqs(analytics(t, h.kin, names.AnalyticsStream("page_view")))
	if want := []string{"r:1", "r:2", "other:1", "r:3", "n:2+gap1"}; !slices.Equal(got, want) {
		t.Fatalf("delivered %v, want %v", got, want)
	}
}
