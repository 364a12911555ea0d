package processors

import (
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
)

// reorder restores per-customer order by seq for one shard. It is pure: every decision takes the
// shard's stream time ("now", the latest record arrival time seen, or the wall clock when the shard
// is caught up), so tests drive it with plain values.
//
// Rules, for an event with seq s of a customer whose last released seq (cursor) is c:
//   - s == c+1: released at once, then every held event that is now contiguous;
//   - s <= c:   late (a later seq was already released): released at once with late set;
//   - s > c+1:  held until the gap fills, or until it has waited the window, then released in order
//     with the number of skipped seqs recorded as its gap. A window of 0 releases at once with the gap.
//
// When more than max events are held, the oldest held event (by arrival) is released as if its window
// had passed. The cursor of a customer must be known (setCursor) before its first add or observe.
type reorder struct {
	window time.Duration
	max    int
	held   int
	// active holds the customers with held events; their cursor lives here while they do.
	active map[string]*custHeld
	// cursors caches the cursor of customers without held events.
	cursors *simplelru.LRU[string, uint64]
	// fifo lists held events in arrival order; released ones are skipped lazily.
	fifo      []*rec
	fifoHead  int
	cursorCap int
	// dirty collects customers whose cursor moved since the last takeDirty, with the new value.
	dirty map[string]uint64
}

type custHeld struct {
	id     string
	cursor uint64
	held   []*rec // sorted by seq
}

func newReorder(window time.Duration, max, cursorCache int) *reorder {
	if cursorCache <= 0 {
		cursorCache = defaultCursorSize
	}
	lru, _ := simplelru.NewLRU[string, uint64](cursorCache, nil) // errors only for a size <= 0
	return &reorder{window: window, max: max, active: map[string]*custHeld{}, cursors: lru, cursorCap: cursorCache, dirty: map[string]uint64{}}
}

// known reports whether the cursor of customer c is known.
func (o *reorder) known(c string) bool {
	if _, ok := o.active[c]; ok {
		return true
	}
	_, ok := o.cursors.Get(c)
	return ok
}

// cursor returns the cursor of c and whether it is known.
func (o *reorder) cursor(c string) (uint64, bool) {
	if st, ok := o.active[c]; ok {
		return st.cursor, true
	}
	return o.cursors.Get(c)
}

// setCursor records the durable cursor of c, read from the dedupe store. It never moves a known
// cursor backwards.
func (o *reorder) setCursor(c string, v uint64) {
	if st, ok := o.active[c]; ok {
		if v > st.cursor {
			st.cursor = v
		}
		return
	}
	if cur, ok := o.cursors.Peek(c); ok && cur >= v {
		return
	}
	o.cursors.Add(c, v)
}

// ensureCapacity grows the cursor cache so that a batch of n customers cannot evict one of its own
// customers while it is being processed.
func (o *reorder) ensureCapacity(n int) {
	if n > o.cursorCap {
		o.cursors.Resize(n)
		o.cursorCap = n
	}
}

// observe tells the reorder that seq s of c is already delivered (a duplicate found in the dedupe
// store). A customer with nothing held moves its cursor up to s. As for add, the cursor of c must be
// known (setCursor) first: a duplicate may be far older than the customer's durable cursor.
func (o *reorder) observe(c string, s uint64) {
	if _, ok := o.active[c]; ok {
		return
	}
	if cur, ok := o.cursors.Peek(c); !ok || s > cur {
		o.cursors.Add(c, s)
	}
}

// add takes one new event at stream time now and appends what it releases to out, in release order.
func (o *reorder) add(e *rec, now time.Time, out []*rec) []*rec {
	c, s := e.d.CustomerID, e.d.Seq
	st := o.active[c]
	var cur uint64
	if st != nil {
		cur = st.cursor
	} else {
		cur, _ = o.cursors.Get(c)
	}
	switch {
	case s <= cur:
		e.late = true
		return append(out, e)
	case s == cur+1:
		out = append(out, e)
		if st == nil {
			o.cursors.Add(c, s)
			o.dirty[c] = s
			return out
		}
		st.cursor = s
		o.dirty[c] = s
		return o.releaseContiguous(st, out)
	case o.window <= 0:
		e.gap = s - cur - 1
		if st != nil { // nothing is ever held with a zero window; kept for safety
			st.cursor = s
			o.dirty[c] = s
			return o.releaseContiguous(st, append(out, e))
		}
		o.cursors.Add(c, s)
		o.dirty[c] = s
		return append(out, e)
	}
	if st == nil {
		st = &custHeld{id: c, cursor: cur}
		o.cursors.Remove(c)
		o.active[c] = st
	}
	e.heldAt = now
	e.held = true
	i := len(st.held)
	for i > 0 && st.held[i-1].d.Seq > s {
		i--
	}
	st.held = append(st.held, nil)
	copy(st.held[i+1:], st.held[i:])
	st.held[i] = e
	o.fifo = append(o.fifo, e)
	o.held++
	for o.held > o.max {
		oldest := o.oldest()
		out = o.releaseThrough(o.active[oldest.d.CustomerID], oldest.d.Seq, out)
	}
	return out
}

// expire releases every held event that has waited the window at stream time now, with its
// customer's earlier held events, in seq order.
func (o *reorder) expire(now time.Time, out []*rec) []*rec {
	for {
		e := o.oldest()
		if e == nil || now.Sub(e.heldAt) < o.window {
			return out
		}
		out = o.releaseThrough(o.active[e.d.CustomerID], e.d.Seq, out)
	}
}

// drain releases everything held, oldest arrival first, recording gaps.
func (o *reorder) drain(out []*rec) []*rec {
	for {
		e := o.oldest()
		if e == nil {
			return out
		}
		out = o.releaseThrough(o.active[e.d.CustomerID], e.d.Seq, out)
	}
}

// nextDeadline returns when the oldest held event's window passes (zero when nothing is held).
func (o *reorder) nextDeadline() time.Time {
	if e := o.oldest(); e != nil {
		return e.heldAt.Add(o.window)
	}
	return time.Time{}
}

// oldest returns the held event that arrived first, or nil.
func (o *reorder) oldest() *rec {
	for o.fifoHead < len(o.fifo) {
		if e := o.fifo[o.fifoHead]; e.held {
			return e
		}
		o.fifo[o.fifoHead] = nil
		o.fifoHead++
	}
	if o.fifoHead > 0 {
		o.fifo = o.fifo[:0]
		o.fifoHead = 0
	}
	return nil
}

// releaseThrough releases st's held events with seq <= s in seq order, recording gaps, then whatever
// became contiguous.
func (o *reorder) releaseThrough(st *custHeld, s uint64, out []*rec) []*rec {
	n := 0
	for n < len(st.held) && st.held[n].d.Seq <= s {
		e := st.held[n]
		switch {
		case e.d.Seq <= st.cursor:
			e.late = true
		default:
			e.gap = e.d.Seq - st.cursor - 1
			st.cursor = e.d.Seq
		}
		out = o.unhold(e, out)
		n++
	}
	st.held = st.held[n:]
	o.dirty[st.id] = st.cursor
	return o.releaseContiguous(st, out)
}

// releaseContiguous releases st's held events that follow its cursor without a gap (and any held
// event at or below the cursor, as late), then retires st if nothing is left held.
func (o *reorder) releaseContiguous(st *custHeld, out []*rec) []*rec {
	n := 0
	for n < len(st.held) {
		e := st.held[n]
		if e.d.Seq > st.cursor+1 {
			break
		}
		if e.d.Seq <= st.cursor {
			e.late = true
		} else {
			st.cursor = e.d.Seq
		}
		out = o.unhold(e, out)
		n++
	}
	if n > 0 {
		clear(st.held[:n])
		st.held = st.held[n:]
		o.dirty[st.id] = st.cursor
	}
	if len(st.held) == 0 {
		delete(o.active, st.id)
		o.cursors.Add(st.id, st.cursor)
	}
	return out
}

func (o *reorder) unhold(e *rec, out []*rec) []*rec {
	e.held = false
	o.held--
	return append(out, e)
}

// takeDirty returns the customers whose cursor moved, with their cursor, and forgets them.
func (o *reorder) takeDirty(dst map[string]uint64) {
	for c, v := range o.dirty {
		dst[c] = v
	}
	clear(o.dirty)
}
