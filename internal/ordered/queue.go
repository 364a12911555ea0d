package ordered

import (
	"container/heap"
	"time"

	"github.com/kinesis-events/pipeline/internal/retry"
)

// Item is what a Queue holds: the caller's own record type, which carries a Record.
type Item interface {
	Rec() *Record
}

// Policy is what happens to a record after a failed attempt.
type Policy struct {
	// Backoff spaces the attempts: after a step with failures, its failed records wait the policy's
	// next delay before they may be sent again; a step that wrote something, and had nothing
	// throttled, starts the delays over. A step that wrote some records while others were
	// throttled does not: the written ones went to shards with room, which says nothing about the
	// throttled ones' shards, so their retries keep backing off instead of coming back at the first
	// delay after every call while the shard stays full. After a step whose only failures were
	// throttles the wait is at most a second (throttleWaitMax), whatever the policy's Max.
	// Its MaxAttempts and MaxElapsed are not used (MaxAttempts below bounds a record's attempts).
	Backoff retry.Policy
	// MaxAttempts gives up on a record after this many failed attempts (CauseAttempts); 0 never.
	MaxAttempts int
	// RetryFatal retries fatal outcomes like transient ones instead of giving up at once (the
	// worker's sink: a missing destination may come back, and its breaker hold decides). A record
	// over a Kinesis limit is given up on all the same.
	RetryFatal bool
}

// throttleWaitMax bounds the wait before a throttled record is sent again when throttling was the
// only failure: Kinesis's write limits are per shard per second, so a shard that refused a record
// has room again within a second, and waiting longer only adds latency.
const throttleWaitMax = time.Second

// Queue holds records per partition key and owns the per-key rule: at most one record of a key is
// out (ready, in a call, or waiting for its retry) at a time, and a key's next record becomes
// ready only once the previous one is written. A record that fails is sent again after its backoff
// (only it: the records written with it are not); a record given up on takes the records of its
// key queued behind it, and any added later, with it (CauseEarlier).
//
// With aggregation (a Writer's WriterConfig.Aggregation), the key's one record out may be an
// aggregate: Take makes a key's head, on its first attempt, stand for itself and the records
// queued right behind it, packed into one Kinesis record, and Complete gives each of them the
// aggregate's outcome. An aggregate keeps its records through its retries, so they share every
// attempt; a key with one record waiting sends it plain.
//
// A Queue is driven by one goroutine: Add, Take, Complete, Promote and Stop must not run
// concurrently, though the calls that Take's batches go into may (at most one record per key is in
// any of them). Writer drives one synchronously; the forwarder drives one with many calls in flight.
type Queue[T Item] struct {
	p       Policy
	agg     Aggregation // SetAggregation (NewWriter sets it from its config); off by default
	backoff *retry.Backoff
	written func(T)
	failed  func(T)

	keys    map[string]*keyQueue[T]
	free    []*keyQueue[T]
	ready   fifo[T]
	delayed delayHeap[T]
	held    int // records added and not yet written or given up on
	active  int // keys with a record held
	stopped bool
}

// keyQueue is one key's records in order: items[head] is out (ready, in a call or delayed), with
// the records behind it in its aggregate if it heads one; the rest wait behind them.
type keyQueue[T Item] struct {
	items    []T
	head     int
	poisoned bool // a record of the key was given up on: later ones fail at once
}

// NewQueue returns an empty Queue. written and failed (either may be nil) are called, from the
// goroutine driving the Queue, as each record is written or given up on, in per-key order. The
// Queue reads an item it reported written no more after the Complete call that reported it has
// returned: the caller may reuse it from then on (the forwarder recycles its entries).
func NewQueue[T Item](p Policy, written, failed func(T)) *Queue[T] {
	bp := p.Backoff
	bp.MaxAttempts, bp.MaxElapsed = 0, 0
	return &Queue[T]{p: p, backoff: bp.Start(), written: written, failed: failed, keys: map[string]*keyQueue[T]{}}
}

// SetAggregation turns aggregation on (or off, with the zero value) for the records Take returns
// from now on; a Writer sets it from WriterConfig.Aggregation. A caller that drives the Queue by
// hand must then send each taken record's Wire.
func (q *Queue[T]) SetAggregation(a Aggregation) error {
	if err := a.Validate(); err != nil {
		return err
	}
	q.agg = a
	return nil
}

// Reset empties the Queue for a new set of records, keeping its memory. Nothing is reported for
// the records it held.
func (q *Queue[T]) Reset() {
	for k, kq := range q.keys {
		clear(kq.items)
		kq.items, kq.head, kq.poisoned = kq.items[:0], 0, false
		q.free = append(q.free, kq)
		delete(q.keys, k)
	}
	q.ready.reset()
	clear(q.delayed)
	q.delayed = q.delayed[:0]
	q.held, q.active, q.stopped = 0, 0, false
	q.backoff.Reset()
}

// Len returns the records held: added and neither written nor given up on.
func (q *Queue[T]) Len() int { return q.held }

// Keys returns the keys with a record held: each has one record out (ready, in a call or delayed,
// alone or heading an aggregate), and Len - Keys records wait behind their key's.
func (q *Queue[T]) Keys() int { return q.active }

// Ready returns the records that may be sent now, and their size (an aggregate Take formed counts
// once, at its size).
func (q *Queue[T]) Ready() (n, bytes int) { return q.ready.len(), q.ready.bytes }

// Held is the number of records of key held: out (ready, in a call or delayed) or waiting.
func (q *Queue[T]) Held(key string) int {
	if kq := q.keys[key]; kq != nil {
		return len(kq.items) - kq.head
	}
	return 0
}

// Add takes a record (its outcome fields are reset). It is ready at once when nothing of its key is
// held; it fails at once (reported to failed) when it is over a Kinesis limit (CauseLimit), when an
// earlier record of its key was given up on (CauseEarlier) or when the Queue is stopped.
func (q *Queue[T]) Add(it T) {
	r := it.Rec()
	r.reset()
	kq := q.keys[r.Key]
	switch {
	case q.stopped:
		q.fail(it, CauseStopped)
		return
	case kq != nil && kq.poisoned:
		q.fail(it, CauseEarlier)
		return
	}
	if err := r.Check(); err != nil {
		r.Outcome, r.LastError = Fatal, err.Error()
		q.fail(it, CauseLimit)
		q.poison(r.Key)
		return
	}
	q.held++
	if kq == nil {
		kq = q.newKey()
		q.keys[r.Key] = kq
	}
	kq.items = append(kq.items, it)
	r.kq = kq
	if len(kq.items)-kq.head == 1 {
		q.active++
		q.ready.push(it)
	}
}

// Take moves ready records into batch (appended to dst) in the order they became ready, at most
// maxN of them and, past the first, at most maxBytes of Size in all; they are in flight until
// Complete. Their Outcome is Unknown until a step sets it.
//
// With aggregation, a ready record on its first attempt whose key has records queued behind it
// becomes the head of an aggregate of them (within the Aggregation's bounds and maxBytes): the
// call must carry the aggregate in its place (wire), and counts it once, at its size.
func (q *Queue[T]) Take(maxN, maxBytes int, dst []T) []T {
	n, size := 0, 0
	for q.ready.len() > 0 && n < maxN {
		it := q.ready.peek()
		r := it.Rec()
		if q.agg.on() && r.agg == nil && r.Attempts == 0 {
			q.aggregate(r, maxBytes)
		}
		w := r.wire()
		s := w.Size()
		if n > 0 && size+s > maxBytes {
			break
		}
		q.ready.pop()
		// Until the step says otherwise, the attempt's outcome is unknown: a step that reports
		// nothing for a record gets it sent again, never taken for written.
		r.Outcome, w.Outcome = Unknown, Unknown
		dst = append(dst, it)
		n++
		size += s
	}
	return dst
}

// aggregate makes r, the ready head of its key, the head of an aggregate of itself and the
// records of its key queued right behind it, as many as the Aggregation and maxBytes allow, when
// that is at least one more than r.
func (q *Queue[T]) aggregate(r *Record, maxBytes int) {
	kq := q.keys[r.Key]
	waiting := kq.items[kq.head:]
	if len(waiting) < 2 {
		return
	}
	limit := MaxRecordBytes
	if q.agg.MaxBytes > 0 {
		limit = q.agg.MaxBytes
	}
	limit = min(limit, maxBytes)
	size := len(r.Key) + aggFixed + aggKeySize(r.Key)
	n := 0
	for _, it := range waiting[:min(len(waiting), q.agg.MaxRecords)] {
		s := aggRecordSize(len(it.Rec().Data))
		if size+s > limit {
			break
		}
		size += s
		n++
	}
	if n < 2 {
		return
	}
	parts := make([]*Record, n)
	for i, it := range waiting[:n] {
		parts[i] = it.Rec()
	}
	a, err := aggregate(r.Key, parts, size)
	if err != nil {
		return // not expected (the tests encode every shape); r goes plain, as without aggregation
	}
	q.ready.bytes += a.Size() - r.Size() // r is at the front of ready
	r.agg = a
}

// Complete applies the outcomes a step left in batch's records (taken with Take) at now: a written
// record lets its key's next one become ready; a failed one is retried after the backoff, or given
// up on by the Policy (or because the Queue is stopped) together with the records of its key
// behind it. The records of an aggregate get its outcome, each, and go together: written, retried
// (the same aggregate) or given up on with the same cause. res is the step's result: a step that
// wrote something and had nothing throttled starts the delays over (Policy.Backoff).
func (q *Queue[T]) Complete(batch []T, res Result, now time.Time) {
	if res.Progress() && res.Throttled == 0 {
		q.backoff.Reset()
	}
	var due time.Time
	for _, it := range batch {
		r := it.Rec()
		if a := r.agg; a != nil {
			for _, p := range a.parts {
				p.Outcome, p.LastError, p.ShardID, p.SequenceNumber = a.Outcome, a.LastError, a.ShardID, a.SequenceNumber
				if a.Cause == CauseLimit {
					p.Cause = CauseLimit
				}
			}
		}
		if r.Outcome == OK {
			key := r.Key // written may recycle r's item once it has been told (see NewQueue)
			kq, out := r.kq.(*keyQueue[T]), r.wire().Records()
			r.agg = nil
			for _, m := range kq.items[kq.head : kq.head+out] {
				mr := m.Rec()
				mr.State, mr.kq = Written, nil
				q.held--
				if q.written != nil {
					q.written(m)
				}
			}
			q.next(key, kq, out)
			continue
		}
		if a := r.agg; a != nil {
			a.failed(now)
			for _, p := range a.parts {
				p.failed(now)
			}
		} else {
			r.failed(now)
		}
		switch {
		case r.Cause == CauseLimit:
			q.giveUp(it, CauseLimit)
		case q.stopped:
			q.giveUp(it, CauseStopped)
		case r.Outcome == Fatal && !q.p.RetryFatal:
			q.giveUp(it, CauseFatal)
		case q.p.MaxAttempts > 0 && r.Attempts >= q.p.MaxAttempts:
			q.giveUp(it, CauseAttempts)
		default:
			if due.IsZero() {
				d, _ := q.backoff.Next() // never exhausted: its bounds are off
				if res.OnlyThrottled() {
					d = min(d, throttleWaitMax)
				}
				due = now.Add(d)
			}
			r.due = due.UnixNano()
			heap.Push(&q.delayed, it)
		}
	}
}

// NextDue returns when the earliest delayed record may be sent again; false when none waits.
func (q *Queue[T]) NextDue() (time.Time, bool) {
	if len(q.delayed) == 0 {
		return time.Time{}, false
	}
	return time.Unix(0, q.delayed[0].Rec().due), true
}

// Promote makes the delayed records whose backoff has passed at now ready again.
func (q *Queue[T]) Promote(now time.Time) {
	for len(q.delayed) > 0 && q.delayed[0].Rec().due <= now.UnixNano() {
		q.ready.push(heap.Pop(&q.delayed).(T))
	}
}

// Stop gives up on every record that is not in a call (cause, usually CauseStopped, or
// CauseDeadline), each with the records of its key behind it, ready ones first. From then on a
// record that comes back from a call unwritten is given up on (CauseStopped), the records behind a
// written one too, and Add fails every record.
func (q *Queue[T]) Stop(cause Cause) {
	q.stopped = true
	for q.ready.len() > 0 {
		q.giveUp(q.ready.pop(), cause)
	}
	for len(q.delayed) > 0 {
		q.giveUp(heap.Pop(&q.delayed).(T), cause)
	}
}

// next hands key's turn (kq, its queue) to the record after its n written ones, or forgets the key
// when none is left.
func (q *Queue[T]) next(key string, kq *keyQueue[T], n int) {
	clear(kq.items[kq.head : kq.head+n])
	kq.head += n
	if kq.head < len(kq.items) {
		if q.stopped {
			q.giveUp(kq.items[kq.head], CauseStopped)
			return
		}
		q.ready.push(kq.items[kq.head])
		return
	}
	q.active--
	if !kq.poisoned {
		q.dropKey(key, kq)
	}
}

// giveUp fails it, the head of its key, with cause (and the records of its aggregate with it),
// and the records queued behind them with CauseEarlier; the key is poisoned.
func (q *Queue[T]) giveUp(it T, cause Cause) {
	r := it.Rec()
	kq := q.keys[r.Key]
	out := r.wire().Records()
	r.agg = nil
	old := kq.items
	mine, behind := old[kq.head:kq.head+out], old[kq.head+out:]
	kq.items, kq.head, kq.poisoned = old[:0], 0, true
	q.held -= len(mine) + len(behind)
	q.active--
	for _, m := range mine {
		q.fail(m, cause)
	}
	for _, b := range behind {
		q.fail(b, CauseEarlier)
	}
	clear(old)
}

// poison marks key so that its later records fail (a record of it was given up on before it could
// enter the queue).
func (q *Queue[T]) poison(key string) {
	kq := q.keys[key]
	if kq == nil {
		kq = q.newKey()
		q.keys[key] = kq
	}
	kq.poisoned = true
}

func (q *Queue[T]) fail(it T, cause Cause) {
	r := it.Rec()
	r.State, r.Cause = Failed, cause
	if q.failed != nil {
		q.failed(it)
	}
}

func (q *Queue[T]) newKey() *keyQueue[T] {
	if n := len(q.free); n > 0 {
		kq := q.free[n-1]
		q.free = q.free[:n-1]
		return kq
	}
	return &keyQueue[T]{}
}

func (q *Queue[T]) dropKey(key string, kq *keyQueue[T]) {
	delete(q.keys, key)
	kq.items, kq.head = kq.items[:0], 0
	q.free = append(q.free, kq)
}

// fifo is a queue of records with the total size of what a call carries for them (wire).
type fifo[T Item] struct {
	items []T
	head  int
	bytes int
}

func (f *fifo[T]) len() int { return len(f.items) - f.head }
func (f *fifo[T]) peek() T  { return f.items[f.head] }

func (f *fifo[T]) push(it T) {
	f.items = append(f.items, it)
	f.bytes += it.Rec().wire().Size()
}

func (f *fifo[T]) pop() T {
	it := f.items[f.head]
	f.bytes -= it.Rec().wire().Size()
	f.items[f.head] = *new(T)
	f.head++
	switch {
	case f.head == len(f.items):
		f.items, f.head = f.items[:0], 0
	case f.head > 1024 && f.head*2 > len(f.items):
		n := copy(f.items, f.items[f.head:])
		clear(f.items[n:])
		f.items, f.head = f.items[:n], 0
	}
	return it
}

func (f *fifo[T]) reset() {
	clear(f.items)
	f.items, f.head, f.bytes = f.items[:0], 0, 0
}

// delayHeap orders records waiting for their backoff by due time.
type delayHeap[T Item] []T

func (h delayHeap[T]) Len() int           { return len(h) }
func (h delayHeap[T]) Less(i, j int) bool { return h[i].Rec().due < h[j].Rec().due }
func (h delayHeap[T]) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *delayHeap[T]) Push(x any)        { *h = append(*h, x.(T)) }
func (h *delayHeap[T]) Pop() any {
	old := *h
	it := old[len(old)-1]
	old[len(old)-1] = *new(T)
	*h = old[:len(old)-1]
	return it
}
