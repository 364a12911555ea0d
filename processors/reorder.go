package processors

import (
	"time"
)

// reorder restores per-customer order by seq for one shard, on the customers' keyed state (state.go).
// It is pure: every decision takes the shard's stream time ("now", the latest record arrival time
// seen, or the wall clock when the shard is caught up), so tests drive it with plain values.
//
// Rules, for an event with seq s of a customer whose last released seq (cursor) is c; the event is
// not delivered yet (dedupe dropped the delivered ones):
//   - s <= c:   pending (skipped by a gap, or dead-lettered): released at once with late set;
//   - s == c+1: released at once, then every held event that is now contiguous;
//   - s > c+1:  held until the gap fills, or until it has waited the window, then released in order
//     with the number of skipped seqs recorded as its gap (they become pending). A window of 0
//     releases at once with the gap.
//
// A second event held with a seq already held, or released behind the cursor without being pending
// (another event of the customer with the same seq was delivered), is released with dupSeq set:
// the route stage quarantines it as a conflicting duplicate.
//
// When more than max events, or maxBytes of records, are held, the oldest held event (by arrival)
// is released as if its window had passed.
type reorder struct {
	window   time.Duration
	max      int
	maxBytes int
	st       *shardState
	day      uint32 // of the current batch, for the customers' state
	held     int
	bytes    int
	// fifo lists held events in arrival order; released ones are skipped lazily.
	fifo     []*rec
	fifoHead int
}

func newReorder(window time.Duration, max, maxBytes int, st *shardState) *reorder {
	return &reorder{window: window, max: max, maxBytes: maxBytes, st: st}
}

// add takes one new event (e.cust set) at stream time now and appends what it releases to out, in
// release order.
func (o *reorder) add(e *rec, now time.Time, out []*rec) []*rec {
	c, s := e.cust, e.d.Seq
	switch {
	case s <= c.cursor:
		return o.release(e, out)
	case s == c.cursor+1:
		return o.releaseContiguous(c, o.release(e, out))
	case o.window <= 0:
		return o.releaseContiguous(c, o.release(e, out))
	}
	e.heldAt = now
	e.held = true
	i := len(c.held)
	for i > 0 && c.held[i-1].d.Seq > s {
		i--
	}
	c.held = append(c.held, nil)
	copy(c.held[i+1:], c.held[i:])
	c.held[i] = e
	o.fifo = append(o.fifo, e)
	o.held++
	o.bytes += len(e.data)
	for o.held > o.max || (o.maxBytes > 0 && o.bytes > o.maxBytes) {
		oldest := o.oldest()
		out = o.releaseThrough(oldest.cust, oldest.d.Seq, out)
	}
	return out
}

// release releases e, updating its customer's state: seqs skipped before it become pending (and
// are recorded as its gap), a pending one is late, and one neither pending nor ahead is a second
// event for a delivered seq.
func (o *reorder) release(e *rec, out []*rec) []*rec {
	c, s := e.cust, e.d.Seq
	switch {
	case s > c.cursor:
		if !c.returning || c.cursor != 0 {
			e.gap = s - c.cursor - 1
		}
	case c.delivered(s):
		e.dupSeq = true
		return append(out, e)
	default:
		e.late = true
	}
	c.released(s, e.hash)
	o.st.touch(c, o.day)
	return append(out, e)
}

// expire releases every held event that has waited the window at stream time now, with its
// customer's earlier held events, in seq order.
func (o *reorder) expire(now time.Time, out []*rec) []*rec {
	for {
		e := o.oldest()
		if e == nil || now.Sub(e.heldAt) < o.window {
			return out
		}
		out = o.releaseThrough(e.cust, e.d.Seq, out)
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

// releaseThrough releases c's held events with seq <= s in seq order, then whatever became
// contiguous.
func (o *reorder) releaseThrough(c *cust, s uint64, out []*rec) []*rec {
	n := 0
	for n < len(c.held) && c.held[n].d.Seq <= s {
		out = o.release(o.unhold(c.held[n]), out)
		n++
	}
	clear(c.held[:n])
	c.held = c.held[n:]
	return o.releaseContiguous(c, out)
}

// releaseContiguous releases c's held events that follow its cursor without a gap (and any held
// event at or below the cursor).
func (o *reorder) releaseContiguous(c *cust, out []*rec) []*rec {
	n := 0
	for n < len(c.held) && c.held[n].d.Seq <= c.cursor+1 {
		out = o.release(o.unhold(c.held[n]), out)
		n++
	}
	if n > 0 {
		clear(c.held[:n])
		c.held = c.held[n:]
	}
	if len(c.held) == 0 {
		c.held = nil
	}
	return out
}

func (o *reorder) unhold(e *rec) *rec {
	e.held = false
	o.held--
	o.bytes -= len(e.data)
	return e
}
