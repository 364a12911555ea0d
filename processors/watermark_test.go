package processors

import (
	"fmt"
	"testing"
)

func TestWatermark(t *testing.T) {
	cases := []struct {
		name  string
		n     int   // records added
		done  []int // indexes marked done, in this order, advance after each
		wants []string
	}{
		{"nothing handled", 3, nil, nil},
		{"in order", 3, []int{0, 1, 2}, []string{"s0", "s1", "s2"}},
		{"a held record pins", 4, []int{0, 2, 3, 1}, []string{"s0", "s0", "s0", "s3"}},
		{"first record pins everything", 3, []int{2, 1, 0}, []string{"", "", "s2"}},
		{"double done is harmless", 2, []int{0, 0, 1}, []string{"s0", "s0", "s1"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var w watermark
			for i := range tc.n {
				if idx := w.add(fmt.Sprint("s", i), false); idx != uint64(i) {
					t.Fatalf("add %d returned index %d", i, idx)
				}
			}
			if got := w.advance(); got != "" {
				t.Fatalf("watermark %q before anything is done", got)
			}
			for k, i := range tc.done {
				w.done(uint64(i))
				if got := w.advance(); got != tc.wants[k] {
					t.Fatalf("after done(%d): watermark %q, want %q", i, got, tc.wants[k])
				}
			}
		})
	}
}

// TestWatermarkCompacts checks that a long run keeps memory proportional to what is pending, and
// indexes stay valid across compaction.
func TestWatermarkCompacts(t *testing.T) {
	var w watermark
	pinned := w.add("pin", false)
	for i := range 5000 {
		w.done(w.add(fmt.Sprint("r", i), false))
	}
	if got := w.advance(); got != "" {
		t.Fatalf("watermark %q passed the pinned record", got)
	}
	w.done(pinned)
	if got := w.advance(); got != "r4999" {
		t.Fatalf("watermark %q, want r4999", got)
	}
	for i := range 5000 {
		idx := w.add(fmt.Sprint("q", i), false)
		w.done(idx)
		w.advance()
	}
	if w.pending() != 0 || len(w.entries) > 2100 {
		t.Fatalf("pending %d, entries %d: not compacted", w.pending(), len(w.entries))
	}
	if w.advance() != "q4999" {
		t.Fatalf("watermark %q", w.advance())
	}
}

// TestWatermarkSkipsForeign: a parent's records take part in the handled prefix but never become
// the watermark, which names only the shard's own records.
func TestWatermarkSkipsForeign(t *testing.T) {
	var w watermark
	p1, p2 := w.add("parent-1", true), w.add("parent-2", true)
	o1 := w.add("own-1", false)
	w.done(p1)
	if got := w.advance(); got != "" {
		t.Fatalf("watermark %q over parents only, want none", got)
	}
	w.done(o1)
	if got := w.advance(); got != "" {
		t.Fatalf("watermark %q with parent-2 pending, want none", got)
	}
	w.done(p2)
	if got := w.advance(); got != "own-1" {
		t.Fatalf("watermark %q, want own-1", got)
	}
}

// TestWatermarkAggregate: the records of one KPL aggregate share its sequence number, and the
// watermark names that number only once all of them are handled; a restart after a checkpoint at
// it would read on past the whole aggregate.
func TestWatermarkAggregate(t *testing.T) {
	var w watermark
	for _, seq := range []string{"a", "b", "b", "b", "c", "d", "d"} {
		w.add(seq, false)
	}
	steps := []struct {
		done int
		want string
	}{
		{0, "a"},
		{1, "a"}, // b's first record handled, two more inside b are not
		{3, "a"},
		{2, "b"}, // now all of b
		{5, "b"}, // d's first record, c still pending
		{4, "c"},
		{6, "d"},
	}
	for _, s := range steps {
		w.done(uint64(s.done))
		if got := w.advance(); got != s.want {
			t.Fatalf("after done(%d): watermark %q, want %q", s.done, got, s.want)
		}
	}
}
