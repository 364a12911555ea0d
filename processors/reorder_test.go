package processors

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kinesis-events/pipeline/event"
)

// step is one call into the reorder: "add c s", "expire", or "drain", at t0 + at seconds.
type step struct {
	op   string
	c    string
	s    uint64
	at   int
	want string // released, space separated: c:s, with +gapN and +late
}

func add(c string, s uint64, at int, want string) step { return step{"add", c, s, at, want} }
func expire(at int, want string) step                  { return step{op: "expire", at: at, want: want} }
func drain(want string) step                           { return step{op: "drain", want: want} }

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
	}
	return strings.Join(parts, " ")
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
		{name: "expiry releases earlier held seqs that arrived later", window: 30 * time.Second, steps: []step{
			add("a", 5, 0, ""), add("a", 3, 20, ""), expire(30, "a:3+gap2 a:5+gap1"), expire(60, ""),
		}},
		{name: "expiry of one customer does not release another", window: 30 * time.Second, steps: []step{
			add("a", 3, 0, ""), add("b", 3, 20, ""), expire(30, "a:3+gap2"), expire(50, "b:3+gap2"),
		}},
		{name: "zero window releases gaps at once", window: 0, steps: []step{
			add("a", 1, 0, "a:1"), add("a", 3, 0, "a:3+gap1"), add("a", 2, 0, "a:2+late"), add("a", 4, 0, "a:4"),
		}},
		{name: "known cursor from the store: next seq is not held", window: 30 * time.Second, cursors: map[string]uint64{"a": 41}, steps: []step{
			add("a", 42, 0, "a:42"), add("a", 40, 0, "a:40+late"), add("a", 44, 0, ""),
		}, held: 1},
		{name: "bound releases the oldest held with its gap", window: 30 * time.Second, max: 2, steps: []step{
			add("a", 3, 0, ""), add("b", 5, 1, ""), add("c", 2, 2, "a:3+gap2"), add("d", 9, 3, "b:5+gap4"),
		}, held: 2},
		{name: "bound release pulls the contiguous run along", window: 30 * time.Second, max: 2, steps: []step{
			add("a", 3, 0, ""), add("a", 4, 1, ""), add("b", 2, 2, "a:3+gap2 a:4"),
		}, held: 1},
		{name: "same seq twice (two event ids): second is late", window: 30 * time.Second, steps: []step{
			add("a", 2, 0, ""), add("a", 2, 0, ""), add("a", 1, 1, "a:1 a:2 a:2+late"),
		}},
		{name: "drain releases everything with gaps, oldest first", window: 30 * time.Second, steps: []step{
			add("a", 3, 0, ""), add("b", 7, 1, ""), add("a", 5, 2, ""), drain("a:3+gap2 b:7+gap6 a:5+gap1"), add("a", 6, 3, "a:6"),
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			max := tc.max
			if max == 0 {
				max = 100
			}
			o := newReorder(tc.window, max, 16)
			for c, v := range tc.cursors {
				o.setCursor(c, v)
			}
			for i, st := range tc.steps {
				now := t0.Add(time.Duration(st.at) * time.Second)
				var out []*rec
				switch st.op {
				case "add":
					if !o.known(st.c) {
						o.setCursor(st.c, 0)
					}
					out = o.add(&rec{d: &event.Detail{CustomerID: st.c, Seq: st.s}}, now, nil)
				case "expire":
					out = o.expire(now, nil)
				case "drain":
					out = o.drain(nil)
				}
				if got := released(out); got != st.want {
					t.Fatalf("step %d (%s %s:%d at %ds): released %q, want %q", i, st.op, st.c, st.s, st.at, got, st.want)
				}
			}
			if o.held != tc.held {
				t.Fatalf("held %d, want %d", o.held, tc.held)
			}
		})
	}
}

func TestReorderDirtyCursors(t *testing.T) {
	o := newReorder(30*time.Second, 100, 16)
	for _, c := range []string{"a", "b"} {
		o.setCursor(c, 0)
	}
	o.add(&rec{d: &event.Detail{CustomerID: "a", Seq: 1}}, t0, nil)
	o.add(&rec{d: &event.Detail{CustomerID: "a", Seq: 2}}, t0, nil)
	o.add(&rec{d: &event.Detail{CustomerID: "b", Seq: 3}}, t0, nil) // held: cursor unchanged
	got := map[string]uint64{}
	o.takeDirty(got)
	if len(got) != 1 || got["a"] != 2 {
		t.Fatalf("dirty %v, want a=2 only", got)
	}
	o.expire(t0.Add(time.Minute), nil)
	clear(got)
	o.takeDirty(got)
	if len(got) != 1 || got["b"] != 3 {
		t.Fatalf("dirty after expiry %v, want b=3", got)
	}
	// A cursor read from the store never moves a known one back.
	o.setCursor("a", 1)
	if v, _ := o.cursor("a"); v != 2 {
		t.Fatalf("cursor a = %d after a stale store value, want 2", v)
	}
	// A duplicate seen in the store moves the cursor of a customer with nothing held.
	o.observe("a", 9)
	if v, _ := o.cursor("a"); v != 9 {
		t.Fatalf("cursor a = %d after observe(9)", v)
	}
}

// TestReorderEvictionKeepsHeld checks that the bounded cursor cache never forgets a customer with
// held events, and that capacity grows to a batch's size.
func TestReorderEvictionKeepsHeld(t *testing.T) {
	o := newReorder(30*time.Second, 100, 2)
	o.setCursor("a", 0)
	o.add(&rec{d: &event.Detail{CustomerID: "a", Seq: 2}}, t0, nil)
	for i := range 10 {
		c := fmt.Sprint("x", i)
		o.setCursor(c, 0)
		o.add(&rec{d: &event.Detail{CustomerID: c, Seq: 1}}, t0, nil)
	}
	if !o.known("a") {
		t.Fatal("customer with a held event was evicted")
	}
	if got := released(o.add(&rec{d: &event.Detail{CustomerID: "a", Seq: 1}}, t0, nil)); got != "a:1 a:2" {
		t.Fatalf("released %q", got)
	}
	o.ensureCapacity(50)
	for i := range 50 {
		o.setCursor(fmt.Sprint("y", i), 1)
	}
	for i := range 50 {
		if !o.known(fmt.Sprint("y", i)) {
			t.Fatalf("y%d evicted within one batch of 50", i)
		}
	}
	if !slices.Contains([]int{2, 50}, o.cursorCap) {
		t.Fatalf("cap %d", o.cursorCap)
	}
}
