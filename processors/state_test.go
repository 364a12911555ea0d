package processors

import (
	"bytes"
	"fmt"
	"slices"
	"testing"

	"pgregory.net/rapid"
)

func TestPendingRanges(t *testing.T) {
	c := &cust{cursor: 100}
	c.addPending(10, 12)
	c.addPending(20, 20)
	c.addPending(13, 14) // touches 10..12: merged
	if !slices.Equal(c.pending, []seqRange{{10, 14}, {20, 20}}) {
		t.Fatalf("pending %v", c.pending)
	}
	c.removePending(12) // splits
	c.removePending(20)
	c.removePending(10)
	if !slices.Equal(c.pending, []seqRange{{11, 11}, {13, 14}}) {
		t.Fatalf("pending %v", c.pending)
	}
	for s, want := range map[uint64]bool{9: true, 10: true, 11: false, 12: true, 13: false, 15: true, 100: true, 101: false} {
		if got := c.delivered(s); got != want {
			t.Errorf("delivered(%d) = %v, want %v", s, got, want)
		}
	}
}

// TestPendingModel checks the pending ranges against a set of seqs, under random operations.
func TestPendingModel(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		c := &cust{cursor: 200}
		model := map[uint64]bool{}
		for range rapid.IntRange(1, 60).Draw(t, "ops") {
			lo := rapid.Uint64Range(1, 200).Draw(t, "lo")
			if rapid.Bool().Draw(t, "add") {
				hi := min(200, lo+rapid.Uint64Range(0, 8).Draw(t, "len"))
				c.addPending(lo, hi)
				for s := lo; s <= hi; s++ {
					model[s] = true
				}
			} else {
				c.removePending(lo)
				delete(model, lo)
			}
		}
		for s := uint64(1); s <= 201; s++ {
			if got, want := c.delivered(s), s <= 200 && !model[s]; got != want {
				t.Fatalf("delivered(%d) = %v, want %v (pending %v)", s, got, want, c.pending)
			}
		}
		for i := 1; i < len(c.pending); i++ {
			if c.pending[i].lo <= c.pending[i-1].hi+1 {
				t.Fatalf("ranges not disjoint and apart: %v", c.pending)
			}
		}
	})
}

func TestPendingBound(t *testing.T) {
	c := &cust{cursor: 10 * maxPending}
	for i := range maxPending + 3 {
		s := uint64(3*i + 1)
		c.addPending(s, s)
	}
	if len(c.pending) != maxPending || c.pending[0].lo != 1 {
		t.Fatalf("%d ranges, first %v: want the bound, the oldest ones merged", len(c.pending), c.pending[0])
	}
	if c.delivered(1) || c.delivered(2) {
		t.Fatal("a merged range must count as pending, never as delivered")
	}
}

// TestStateEncoding round-trips customers' state through the chunk encoding.
func TestStateEncoding(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		var want []cust
		buf := []byte{stateVersion}
		for i := range rapid.IntRange(0, 20).Draw(t, "custs") {
			c := cust{key: custKeyOf(rapid.StringN(1, 40, -1).Draw(t, "id")), cursor: rapid.Uint64().Draw(t, "cursor"),
				hash: rapid.Uint32().Draw(t, "hash"), day: rapid.Uint32().Draw(t, "day")}
			prev := uint64(0)
			for range rapid.IntRange(0, 5).Draw(t, "pending") {
				lo := prev + rapid.Uint64Range(0, 1000).Draw(t, "gap")
				hi := lo + rapid.Uint64Range(0, 1000).Draw(t, "len")
				c.pending = append(c.pending, seqRange{lo, hi})
				prev = hi + 2
			}
			_ = i
			want = append(want, c)
			buf = appendEntry(buf, &c)
		}
		var got []cust
		ids := make([]idEntry, rapid.IntRange(0, 100).Draw(t, "ids"))
		for i := range ids {
			ids[i] = idEntry{rapid.Uint64().Draw(t, "id"), rapid.Uint32().Draw(t, "idhash")}
		}
		buf = appendIDs(buf, ids)
		var gotIDs []idEntry
		if err := decodeChunk(buf, func(c *cust) {
			cc := *c
			cc.pending = slices.Clone(c.pending)
			got = append(got, cc)
		}, func(e idEntry) { gotIDs = append(gotIDs, e) }, nil); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(gotIDs, ids) {
			t.Fatalf("ids %v, want %v", gotIDs, ids)
		}
		if len(got) != len(want) {
			t.Fatalf("%d entries, want %d", len(got), len(want))
		}
		for i := range want {
			w, g := want[i], got[i]
			if w.key != g.key || w.cursor != g.cursor || w.hash != g.hash || w.day != g.day || !slices.Equal(w.pending, g.pending) {
				t.Fatalf("entry %d: %+v, want %+v", i, g, w)
			}
		}
	})
	for _, bad := range [][]byte{nil, {1}, {stateVersion, 0, 1, 2}, {stateVersion, 7}, {stateVersion, entryIDs, 3, 1, 2},
		append([]byte{stateVersion, 0}, bytes.Repeat([]byte{0xff}, 40)...)} {
		if err := decodeChunk(bad, func(*cust) {}, func(idEntry) {}, func(retiredPiece) error { return nil }); err == nil {
			t.Errorf("decodeChunk(%x) accepted", bad)
		}
	}
}

func TestInRange(t *testing.T) {
	lo, hi := custKey{0x40}, custKey{0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	for k, want := range map[custKey]bool{{0x3f, 0xff}: false, {0x40}: true, {0x55}: true, hi: true, {0x80}: false} {
		if got := inRange(k, lo, hi); got != want {
			t.Errorf("inRange(%x) = %v", k[:2], got)
		}
	}
}

// TestRetiredFilter: customers added are found, others almost never; the filter survives the chunk
// encoding; a new generation starts after a horizon and the one before is kept.
func TestRetiredFilter(t *testing.T) {
	var r retired
	for i := range 1000 {
		r.add(custKeyOf(fmt.Sprint("gone-", i)), 100, 8, 1000)
	}
	fp := 0
	for i := range 10000 {
		if r.has(custKeyOf(fmt.Sprint("new-", i))) {
			fp++
		}
	}
	if fp > 200 {
		t.Fatalf("%d false positives in 10,000", fp)
	}
	buf := []byte{stateVersion}
	for p := range r.pieces {
		buf = appendRetired(buf, p)
	}
	var back retired
	if err := decodeChunk(buf, func(*cust) {}, func(idEntry) {}, back.apply); err != nil {
		t.Fatal(err)
	}
	r.add(custKeyOf("later"), 108, 8, 1000) // a horizon later: a new generation
	back.add(custKeyOf("later"), 108, 8, 1000)
	for i := range 1000 {
		k := custKeyOf(fmt.Sprint("gone-", i))
		if !r.has(k) || !back.has(k) {
			t.Fatalf("gone-%d forgotten (after a round trip: %v)", i, r.has(k))
		}
	}
	if !back.has(custKeyOf("later")) || back.since != 108 {
		t.Fatalf("new generation: since %d", back.since)
	}
}
