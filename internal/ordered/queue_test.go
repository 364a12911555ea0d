package ordered

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"pgregory.net/rapid"
)

// TestQueueConcurrentCalls drives a Queue the way the forwarder does: records arrive over time,
// several batches are out at once and come back in any order with any outcomes, with or without
// aggregation. The per-key rule holds throughout (no key in two batches out, nor twice in one),
// each key's records are written in the order they were added, a key stops at its first record
// given up on (every later one fails with CauseEarlier, except those in its aggregate, which share
// its cause), the records of an aggregate share every outcome, every record ends written or
// failed, and Len and Keys count the records and keys held at every step.
func TestQueueConcurrentCalls(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		aggMax := rapid.IntRange(0, 5).Draw(rt, "aggregate_max_records")
		maxAttempts := rapid.IntRange(0, 4).Draw(rt, "max_attempts")
		failPct := rapid.IntRange(0, 60).Draw(rt, "fail_pct")
		fatalPct := rapid.IntRange(0, 10).Draw(rt, "fatal_pct")
		conc := rapid.IntRange(1, 5).Draw(rt, "concurrency")
		nKeys := rapid.IntRange(1, 6).Draw(rt, "keys")
		nRecs := rapid.IntRange(1, 60).Draw(rt, "records")
		rnd := &splitMix{rapid.Uint64().Draw(rt, "seed")}

		var written, failed []*rec
		q := NewQueue(Policy{Backoff: retryPolicy{Initial: 10 * time.Millisecond, Max: 80 * time.Millisecond}, MaxAttempts: maxAttempts},
			func(r *rec) { written = append(written, r) }, func(r *rec) { failed = append(failed, r) })
		q.agg = Aggregation{MaxRecords: aggMax}
		groups := map[*Record][]*Record{} // the records of each aggregate taken, by each of them
		now := time.Unix(0, 0)
		var added []*rec
		var out [][]*rec
		outKeys := map[string]bool{}
		for steps := 0; ; steps++ {
			if steps > 100000 {
				rt.Fatalf("no end after %d steps: %d held", steps, q.Len())
			}
			heldKeys, held := map[string]int{}, 0
			for _, r := range added {
				if r.r.State == Pending {
					heldKeys[r.r.Key]++
					held++
				}
			}
			if q.Len() != held || q.Keys() != len(heldKeys) {
				rt.Fatalf("Len %d, Keys %d; held: %d records of %d keys", q.Len(), q.Keys(), held, len(heldKeys))
			}
			for k := range nKeys {
				if key := fmt.Sprint("k", k); q.Held(key) != heldKeys[key] {
					rt.Fatalf("Held(%s) %d, want %d", key, q.Held(key), heldKeys[key])
				}
			}
			canAdd := len(added) < nRecs
			if !canAdd && q.Len() == 0 && len(out) == 0 {
				break
			}
			switch op := rnd.next() % 4; {
			case op == 0 && canAdd:
				key := fmt.Sprint("k", rnd.next()%uint64(nKeys))
				r := newRec(key, fmt.Sprintf("%s/%03d", key, len(added)))
				added = append(added, r)
				q.Add(r)
			case op == 1 && len(out) < conc:
				b := q.Take(int(1+rnd.next()%4), MaxCallBytes, nil)
				if len(b) == 0 {
					continue
				}
				for _, r := range b {
					if outKeys[r.r.Key] {
						rt.Fatalf("key %s taken while another of its records is out", r.r.Key)
					}
					outKeys[r.r.Key] = true
					if a := r.r.agg; a != nil {
						if aggMax < 2 || len(a.parts) < 2 || len(a.parts) > aggMax || a.parts[0] != &r.r {
							rt.Fatalf("aggregate of %d records headed by %s, bound %d", len(a.parts), r.r.Data, aggMax)
						}
						for _, p := range a.parts {
							groups[p] = a.parts
						}
					}
				}
				out = append(out, b)
			case op == 2 && len(out) > 0:
				i := int(rnd.next() % uint64(len(out)))
				b := out[i]
				out = slices.Delete(out, i, i+1)
				var res Result
				for _, r := range b {
					delete(outKeys, r.r.Key)
					w := r.r.wire()
					switch {
					case rnd.pct(fatalPct):
						w.Outcome = Fatal
					case rnd.pct(failPct):
						w.Outcome = []Outcome{Retry, Throttled, Unknown}[rnd.next()%3]
					default:
						w.Outcome = OK
						res.Written++
					}
				}
				q.Complete(b, res, now)
			default:
				now = now.Add(time.Duration(rnd.next()%50) * time.Millisecond)
				q.Promote(now)
			}
		}
		if len(written)+len(failed) != len(added) {
			rt.Fatalf("%d written + %d failed of %d added", len(written), len(failed), len(added))
		}
		for _, r := range failed {
			if r.r.State != Failed || r.r.Cause == CauseNone {
				rt.Fatalf("%s failed with %v %v", r.r.Data, r.r.State, r.r.Cause)
			}
			if r.r.Cause == CauseAttempts && r.r.Attempts != maxAttempts {
				rt.Fatalf("%s given up after %d attempts, bound %d", r.r.Data, r.r.Attempts, maxAttempts)
			}
		}
		// Per key: written in add order, and nothing written after the first failure.
		for k := range nKeys {
			key := fmt.Sprint("k", k)
			var mine []*rec
			for _, r := range added {
				if r.r.Key == key {
					mine = append(mine, r)
				}
			}
			var wrote []*rec
			for _, r := range written {
				if r.r.Key == key {
					wrote = append(wrote, r)
				}
			}
			if !slices.Equal(wrote, mine[:len(wrote)]) {
				rt.Fatalf("key %s: written out of order", key)
			}
			rest := mine[len(wrote):]
			for i, r := range rest {
				shared := i > 0 && groups[&r.r] != nil && slices.Contains(groups[&r.r], &rest[0].r)
				if r.r.State != Failed || (i > 0 && !shared && r.r.Cause != CauseEarlier) || (shared && r.r.Cause != rest[0].r.Cause) {
					rt.Fatalf("key %s: record %s after the first failure is %v %v", key, r.r.Data, r.r.State, r.r.Cause)
				}
			}
		}
		for _, g := range groups {
			for _, p := range g[1:] {
				if p.State != g[0].State || p.Cause != g[0].Cause || p.Attempts != g[0].Attempts || p.SequenceNumber != g[0].SequenceNumber {
					rt.Fatalf("records of one aggregate differ: %s %v %v %d, %s %v %v %d",
						g[0].Data, g[0].State, g[0].Cause, g[0].Attempts, p.Data, p.State, p.Cause, p.Attempts)
				}
			}
		}
	})
}

// TestQueueStop: Stop gives up on what is ready or waiting (with the records behind), not on a
// record in a call; when that call comes back written, the records behind it are given up on too.
func TestQueueStop(t *testing.T) {
	var failed []string
	q := NewQueue(Policy{}, nil, func(r *rec) { failed = append(failed, fmt.Sprintf("%s:%v", r.r.Data, r.r.Cause)) })
	a1, a2, b1, b2, c1 := newRec("a", "a1"), newRec("a", "a2"), newRec("b", "b1"), newRec("b", "b2"), newRec("c", "c1")
	for _, r := range []*rec{a1, a2, b1, b2, c1} {
		q.Add(r)
	}
	batch := q.Take(1, MaxCallBytes, nil) // a1 out
	if len(batch) != 1 || batch[0] != a1 {
		t.Fatalf("took %v", batch)
	}
	if q.Len() != 5 || q.Keys() != 3 {
		t.Fatalf("%d records of %d keys held, want 5 of 3", q.Len(), q.Keys())
	}
	q.Stop(CauseStopped)
	want := []string{"b1:stopped before it was written", "b2:an earlier record of its key was not written", "c1:stopped before it was written"}
	if !slices.Equal(failed, want) {
		t.Fatalf("failed %v, want %v", failed, want)
	}
	if q.Len() != 2 || q.Keys() != 1 {
		t.Fatalf("after Stop: %d records of %d keys held, want a1 and a2", q.Len(), q.Keys())
	}
	a1.r.Outcome = OK
	q.Complete(batch, Result{Written: 1}, time.Now())
	if a1.r.State != Written || a2.r.State != Failed || a2.r.Cause != CauseStopped || q.Len() != 0 || q.Keys() != 0 {
		t.Fatalf("a1 %v, a2 %v %v, %d held", a1.r.State, a2.r.State, a2.r.Cause, q.Len())
	}
	q.Add(newRec("d", "d1"))
	if failed[len(failed)-1] != "d1:stopped before it was written" {
		t.Fatalf("added after Stop: %v", failed)
	}
}

// TestQueueReuse: Reset forgets keys, poisoned ones included, so a Queue serves one batch after
// another.
func TestQueueReuse(t *testing.T) {
	q := NewQueue[*rec](Policy{}, nil, nil)
	r := newRec("a", "1")
	q.Add(r)
	b := q.Take(10, MaxCallBytes, nil)
	r.r.Outcome = Fatal
	q.Complete(b, Result{}, time.Now())
	later := newRec("a", "2")
	q.Add(later)
	if r.r.Cause != CauseFatal || later.r.Cause != CauseEarlier {
		t.Fatalf("causes %v %v", r.r.Cause, later.r.Cause)
	}
	q.Reset()
	again := newRec("a", "3")
	q.Add(again)
	if n, _ := q.Ready(); n != 1 || again.r.State != Pending {
		t.Fatalf("after Reset: %d ready, state %v", n, again.r.State)
	}
}

// TestQueueSilentStep: a record the step reports nothing for is not taken for written.
func TestQueueSilentStep(t *testing.T) {
	q := NewQueue[*rec](Policy{Backoff: retryPolicy{Initial: time.Millisecond}}, nil, nil)
	r := newRec("a", "1")
	q.Add(r)
	b := q.Take(10, MaxCallBytes, nil)
	q.Complete(b, Result{}, time.Now()) // a step that set no outcome
	if r.r.State != Pending || r.r.Attempts != 1 || q.Len() != 1 {
		t.Fatalf("%+v, %d held", r.r, q.Len())
	}
}

// TestThrottledBackoffGrowsDespiteProgress: a step that wrote some records while others were
// throttled does not start the delays over: the throttled records' next retry waits longer each
// time, as it does when nothing was written, instead of coming back at the first delay after
// every partly written call (a retry storm on a full shard while other shards take writes), up to
// a second (a shard's write limits are per second). A step with nothing throttled still starts
// them over.
func TestThrottledBackoffGrowsDespiteProgress(t *testing.T) {
	q := NewQueue(Policy{Backoff: retryPolicy{Initial: 100 * time.Millisecond, Max: 10 * time.Second, Jitter: -1}}, func(*rec) {}, func(*rec) {})
	now := time.Unix(0, 0)
	b := newRec("b", "b1")
	q.Add(b)
	var delays []time.Duration
	for i := range 5 {
		a := newRec("a", fmt.Sprint("a", i))
		q.Add(a)
		q.Promote(now)
		batch := q.Take(10, MaxCallBytes, nil)
		if len(batch) != 2 {
			t.Fatalf("step %d took %d records, want a and b", i, len(batch))
		}
		a.r.Outcome, b.r.Outcome = OK, Throttled
		q.Complete(batch, Result{Sent: 2, Written: 1, Failed: 1, Throttled: 1}, now)
		due, ok := q.NextDue()
		if !ok {
			t.Fatalf("step %d: b not waiting for a retry", i)
		}
		delays = append(delays, due.Sub(now))
		now = due
	}
	if want := []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond, time.Second}; !slices.Equal(delays, want) {
		t.Fatalf("throttled retry delays %v, want %v (growing although each step wrote a record, at most a second)", delays, want)
	}
	// A step that wrote and had nothing throttled starts over.
	c := newRec("c", "c1")
	q.Add(c)
	q.Promote(now)
	batch := q.Take(10, MaxCallBytes, nil)
	for _, r := range batch {
		r.r.Outcome = OK
	}
	q.Complete(batch, Result{Sent: len(batch), Written: len(batch)}, now)
	q.Add(newRec("d", "d1"))
	batch = q.Take(10, MaxCallBytes, nil)
	batch[0].r.Outcome = Throttled
	q.Complete(batch, Result{Sent: 1, Failed: 1, Throttled: 1}, now)
	if due, _ := q.NextDue(); due.Sub(now) != 100*time.Millisecond {
		t.Fatalf("after a clean step the next delay is %v, want the first delay again", due.Sub(now))
	}
}
