package processors

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kinesis-events/pipeline/event"
	"github.com/kinesis-events/pipeline/internal/names"
)

// step is one call into the reorder: "add c s" or "expire", at t0 + at seconds.
type step struct {
	op   string
	c    string
	s    uint64
	at   int
	want string // released, space separated: c:s, with +gapN, +late and +dup
}

func add(c string, s uint64, at int, want string) step { return step{"add", c, s, at, want} }
func expire(at int, want string) step                  { return step{op: "expire", at: at, want: want} }

func released(out []*rec) string {
	parts := make([]string, len(out))
	for i, e := range out {
		parts[i] = fmt.Sprintf("%s:%d", e.d.CustomerID, e.d.Seq)
		if e.gap > 0 {
			parts[i] += fmt.Sprintf("+gap%d", e.gap)
		}
		if e.late {
			parts[i] += "+late"
		}
		if e.dupSeq {
			parts[i] += "+dup"
		}
	}
	return strings.Join(parts, " ")
}

// testRec is an event of customer c with seq s, on its state in st.
func testRec(st *shardState, c string, s uint64) *rec {
	return &rec{d: &event.Detail{CustomerID: c, Seq: s}, cust: st.get(custKeyOf(c)), hash: s}
}

func TestReorderDecisions(t *testing.T) {
	cases := []struct {
		name    string
		window  time.Duration
		max     int
		cursors map[string]uint64
		steps   []step
		held    int // held after the last step
	}{
		{name: "in order is released at once", window: 30 * time.Second, steps: []step{
			add("a", 1, 0, "a:1"), add("a", 2, 0, "a:2"), add("b", 1, 0, "b:1"), add("a", 3, 1, "a:3"),
		}},
		{name: "gap filled releases the held run", window: 30 * time.Second, steps: []step{
			add("a", 1, 0, "a:1"), add("a", 3, 1, ""), add("a", 4, 2, ""), add("b", 1, 2, "b:1"), add("a", 2, 3, "a:2 a:3 a:4"),
		}},
		{name: "held run with two gaps fills in two steps", window: 30 * time.Second, steps: []step{
			add("a", 2, 0, ""), add("a", 4, 0, ""), add("a", 1, 1, "a:1 a:2"), add("a", 3, 2, "a:3 a:4"),
		}},
		{name: "window passes: released in order with the gap", window: 30 * time.Second, steps: []step{
			add("a", 1, 0, "a:1"), add("a", 4, 0, ""), add("a", 5, 10, ""),
			expire(29, ""), expire(30, "a:4+gap2 a:5"), add("a", 6, 31, "a:6"),
		}},
		{name: "late event after a gap release is flagged, never dropped", window: 30 * time.Second, steps: []step{
			add("a", 1, 0, "a:1"), add("a", 3, 0, ""), expire(30, "a:3+gap1"), add("a", 2, 31, "a:2+late"), add("a", 4, 31, "a:4"),
		}},
		{name: "a late seq delivered once is no longer pending", window: 30 * time.Second, steps: []step{
			add("a", 1, 0, "a:1"), add("a", 4, 0, ""), expire(30, "a:4+gap2"), add("a", 3, 31, "a:3+late"), add("a", 3, 31, "a:3+dup"), add("a", 2, 31, "a:2+late"),
		}},
		{name: "expiry releases earlier held seqs that arrived later", window: 30 * time.Second, steps: []step{
			add("a", 5, 0, ""), add("a", 3, 20, ""), expire(30, "a:3+gap2 a:5+gap1"), expire(60, ""),
		}},
		{name: "expiry of one customer does not release another", window: 30 * time.Second, steps: []step{
			add("a", 3, 0, ""), add("b", 3, 20, ""), expire(30, "a:3+gap2"), expire(50, "b:3+gap2"),
		}},
		{name: "zero window releases gaps at once", window: 0, steps: []step{
			add("a", 1, 0, "a:1"), add("a", 3, 0, "a:3+gap1"), add("a", 2, 0, "a:2+late"), add("a", 4, 0, "a:4"),
		}},
		{name: "known cursor from the state: next seq is not held", window: 30 * time.Second, cursors: map[string]uint64{"a": 41}, steps: []step{
			add("a", 42, 0, "a:42"), add("a", 40, 0, "a:40+dup"), add("a", 44, 0, ""),
		}, held: 1},
		{name: "bound releases the oldest held with its gap", window: 30 * time.Second, max: 2, steps: []step{
			add("a", 3, 0, ""), add("b", 5, 1, ""), add("c", 2, 2, "a:3+gap2"), add("d", 9, 3, "b:5+gap4"),
		}, held: 2},
		{name: "bound release pulls the contiguous run along", window: 30 * time.Second, max: 2, steps: []step{
			add("a", 3, 0, ""), add("a", 4, 1, ""), add("b", 2, 2, "a:3+gap2 a:4"),
		}, held: 1},
		{name: "same seq twice (two event ids): the second is a duplicate", window: 30 * time.Second, steps: []step{
			add("a", 2, 0, ""), add("a", 2, 0, ""), add("a", 1, 1, "a:1 a:2 a:2+dup"),
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			max := tc.max
			if max == 0 {
				max = 100
			}
			st := newShardState(16)
			o := newReorder(tc.window, max, 0, st)
			for c, v := range tc.cursors {
				st.get(custKeyOf(c)).cursor = v
			}
			for i, step := range tc.steps {
				now := t0.Add(time.Duration(step.at) * time.Second)
				var out []*rec
				switch step.op {
				case "add":
					out = o.add(testRec(st, step.c, step.s), now, nil)
				case "expire":
					out = o.expire(now, nil)
				}
				if got := released(out); got != step.want {
					t.Fatalf("step %d (%s %s:%d at %ds): released %q, want %q", i, step.op, step.c, step.s, step.at, got, step.want)
				}
			}
			if o.held != tc.held {
				t.Fatalf("held %d, want %d", o.held, tc.held)
			}
		})
	}
}

// TestReorderHeldBytes: the bytes bound releases the oldest held event like the count bound.
func TestReorderHeldBytes(t *testing.T) {
	st := newShardState(16)
	o := newReorder(30*time.Second, 100, 250, st)
	var got []string
	for i, c := range []string{"a", "b", "c"} {
		e := testRec(st, c, 2)
		e.data = make([]byte, 100)
		got = append(got, released(o.add(e, t0.Add(time.Duration(i)*time.Second), nil)))
	}
	if !slices.Equal(got, []string{"", "", "a:2+gap1"}) || o.held != 2 || o.bytes != 200 {
		t.Fatalf("released %q, held %d (%d bytes)", got, o.held, o.bytes)
	}
}

// TestReorderStateChanges: releases move the customer's state and mark it for the next flush;
// held events change nothing until released; gap seqs become pending.
func TestReorderStateChanges(t *testing.T) {
	st := newShardState(16)
	o := newReorder(30*time.Second, 100, 0, st)
	o.add(testRec(st, "a", 1), t0, nil)
	o.add(testRec(st, "a", 2), t0, nil)
	o.add(testRec(st, "b", 3), t0, nil) // held: state unchanged
	a, b := st.get(custKeyOf("a")), st.get(custKeyOf("b"))
	if len(st.dirty) != 1 || st.dirty[0] != a || a.cursor != 2 || a.hash != 2 {
		t.Fatalf("dirty %d, a = %+v", len(st.dirty), a)
	}
	o.expire(t0.Add(time.Minute), nil)
	if len(st.dirty) != 2 || st.dirty[1] != b || b.cursor != 3 || !slices.Equal(b.pending, []seqRange{{1, 2}}) {
		t.Fatalf("after expiry: dirty %d, b = %+v", len(st.dirty), b)
	}
	if b.delivered(1) || b.delivered(2) || !b.delivered(3) || b.delivered(4) {
		t.Fatal("pending seqs count as delivered")
	}
}

// TestHugeSeqJump: a producer's jump to a seq near 2^64 is one gap: one pending range, and the gap
// counter takes a bounded amount of it.
func TestHugeSeqJump(t *testing.T) {
	h := newHarness(t, testConfig())
	s := h.open("s")
	h.process(s, h.recs(ev{id: "a1", cust: "a", seq: 1}, ev{id: "a2", cust: "a", seq: 1<<64 - 2}))
	h.clock.Advance(time.Minute)
	h.process(s, nil)
	got := seqs(analytics(t, h.kin, names.AnalyticsStream("page_view")))
	if len(got) != 2 || got[1] != fmt.Sprintf("a:%d+gap%d", uint64(1<<64-2), uint64(1<<64-4)) {
		t.Fatalf("delivered %v", got)
	}
	if n := h.counter("pipeline_reorder_gap_seqs_total"); n != maxGapCounted {
		t.Fatalf("gap seqs counted %v, want the bound %d", n, maxGapCounted)
	}
	if c := s.dedupe.st.custs[custKeyOf("a")]; len(c.pending) != 1 || c.pending[0] != (seqRange{2, 1<<64 - 3}) {
		t.Fatalf("pending %v", c.pending)
	}
}
