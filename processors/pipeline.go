package processors

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/kinesis-events/pipeline/event"
)

// ErrShardClosed is returned by Shard.Process and Shard.Drain after an earlier call on the same
// Shard failed (its lease context ended): the Shard's buffers are gone and it must be discarded.
var ErrShardClosed = errors.New("shard processor closed after an earlier failure")

// Deps are the pipeline's collaborators.
type Deps struct {
	// Kinesis writes to the analytics, late, quarantine and DLQ streams. Required.
	Kinesis Putter
	// Dedupe is the level-2 dedupe store. Required (MemoryDedupe for a single local process).
	Dedupe DedupeStore
	// Keys verifies signatures. Required.
	Keys *event.Keyring
	// Leases is the gate of each shard's lease (see LeaseGate), nil for none (single-process use,
	// tests, benchmarks). Not consulted yet: the stages call it before their output writes once
	// they are reorganised (issue 11, deliverable 3).
	Leases LeaseGate
	// Logger, default zap.NewNop().
	Logger *zap.Logger
	// Registerer for the metrics; nil registers nowhere.
	Registerer prometheus.Registerer
	// Now is the wall clock, default time.Now.
	Now func() time.Time
	// Sleep waits d or until ctx ends (returning ctx.Err()); default a timer. Tests pass one that
	// advances their fake clock, so retries and holds need no real waiting.
	Sleep func(ctx context.Context, d time.Duration) error
}

// Pipeline is shared by all shards of one worker process: config, writers, dedupe store, breakers
// and metrics. Safe for concurrent use.
type Pipeline struct {
	cfg   Config
	kin   Putter
	store DedupeStore
	keys  *event.Keyring
	pii   *event.PIIPolicy // nil: policy off
	log   *zap.Logger
	now   func() time.Time
	sleep func(ctx context.Context, d time.Duration) error
	m     *metrics
	dests map[string]*dest // every stream named in the config; read-only after New

	rndMu sync.Mutex
	rnd   *rand.Rand
}

// New validates cfg and builds a Pipeline.
func New(cfg Config, deps Deps) (*Pipeline, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	switch {
	case deps.Kinesis == nil:
		return nil, errors.New("processors: Deps.Kinesis is required")
	case deps.Dedupe == nil:
		return nil, errors.New("processors: Deps.Dedupe is required")
	case deps.Keys == nil:
		return nil, errors.New("processors: Deps.Keys is required")
	}
	p := &Pipeline{
		cfg:   cfg.withDefaults(),
		kin:   deps.Kinesis,
		store: deps.Dedupe,
		keys:  deps.Keys,
		log:   deps.Logger,
		now:   deps.Now,
		sleep: deps.Sleep,
		m:     newMetrics(deps.Registerer),
		dests: map[string]*dest{},
		rnd:   rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())),
	}
	p.pii, _ = event.NewPIIPolicy(p.cfg.PIIPaths) // validated above
	if p.log == nil {
		p.log = zap.NewNop()
	}
	if p.now == nil {
		p.now = time.Now
	}
	if p.sleep == nil {
		p.sleep = sleepCtx
	}
	names := []string{p.cfg.DefaultStream, p.cfg.QuarantineStream, p.cfg.DLQStream}
	if p.cfg.LatePolicy == LateStream {
		names = append(names, p.cfg.LateStream)
	}
	for _, s := range p.cfg.Routes {
		names = append(names, s)
	}
	for _, n := range names {
		if _, ok := p.dests[n]; n != "" && !ok {
			p.dests[n] = p.newDest(n)
		}
	}
	return p, nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func (p *Pipeline) jitter(n int64) int64 {
	if n <= 0 {
		return 0
	}
	p.rndMu.Lock()
	defer p.rndMu.Unlock()
	return p.rnd.Int64N(n)
}

// Record is one raw-stream record as read from a shard.
type Record struct {
	SequenceNumber string
	// Data is the record's payload. The pipeline keeps a reference while the event is held for
	// reordering: the caller must not reuse the buffer.
	Data         []byte
	PartitionKey string
	// ArrivedAt is the record's ApproximateArrivalTimestamp; zero means "now". The reorder window
	// is measured in arrival time, so a backlog read late is reordered as it was when written.
	ArrivedAt time.Time
}

// Shard is the pipeline state of one shard lease: reorder buffers, the level-1 dedupe cache, the
// events in flight and the watermark. Its methods must not be called concurrently.
type Shard struct {
	p  *Pipeline
	id string

	wm       watermark
	l1       *recent
	inflight map[string]uint64 // event_id -> content hash of events accepted but not yet handled
	ro       *reorder
	clock    time.Time // stream time: the latest arrival seen (or the wall clock when caught up)
	closed   error
	reported int // held count last added to the shared gauge

	scratch  []byte
	stamp    []byte // the shard id as JSON and processed_at of the records emit encodes
	lims     map[string]*limiters
	outCount map[[2]string]prometheus.Counter
	b        batch
}

// batch is the scratch state of one Process call, reused across calls.
type batch struct {
	cands    []*rec
	released []*rec
	quar     []*quarantined
	keys     []string
	planned  map[string]struct{}
	marks    map[string]uint64 // event_id -> content hash found in the level-2 store
	cursors  map[string]uint64 // customer -> cursor found in the level-2 store
	dirty    map[string]uint64
	byStream map[string][]*outRec
	arena    arena
}

// Shard returns fresh state for one shard: call it when a lease is taken, and drop it when the
// lease ends.
func (p *Pipeline) Shard(shardID string) *Shard {
	s := &Shard{
		p:        p,
		id:       shardID,
		l1:       newRecent(p.cfg.L1Size),
		inflight: map[string]uint64{},
		ro:       newReorder(p.cfg.ReorderWindow, p.cfg.MaxHeldPerShard, p.cfg.CursorCacheSize),
		scratch:  make([]byte, 0, 1024),
		lims:     map[string]*limiters{},
		outCount: map[[2]string]prometheus.Counter{},
	}
	s.b = batch{
		planned:  map[string]struct{}{},
		marks:    map[string]uint64{},
		cursors:  map[string]uint64{},
		dirty:    map[string]uint64{},
		byStream: map[string][]*outRec{},
	}
	for name := range p.dests {
		s.lims[name] = p.newLimiters()
	}
	return s
}

// Close drops the shard's buffers when its lease ends without Drain (shutdown, lease handed over):
// the held events are not lost, they are after the watermark and the next owner replays them. Later
// calls return ErrShardClosed. Closing a closed shard is a no-op.
func (s *Shard) Close() {
	if s.closed == nil {
		s.drop(ErrShardClosed)
	}
}

// Held returns the number of events held in the reorder buffers.
func (s *Shard) Held() int {
	if s.ro == nil {
		return 0
	}
	return s.ro.held
}

// NextDeadline returns when the oldest held event's reorder window passes in stream time (zero when
// nothing is held). A caller that is caught up should call Process with no records by then.
func (s *Shard) NextDeadline() time.Time {
	if s.ro == nil {
		return time.Time{}
	}
	return s.ro.nextDeadline()
}

// Process runs one batch of records, in shard order, through decode, verify, dedupe, reorder,
// route, write and mark, and returns the checkpoint watermark: the sequence number of the last
// record of the longest prefix of everything received on this shard that is handled (written and
// marked, quarantined, dropped as a natural duplicate, or dead-lettered), "" while there is none.
// An empty batch only releases held events whose window passed (the stream time moves to the wall
// clock: the caller is caught up).
//
// It blocks while a destination or the dedupe store is down, retrying with backoff; a destination
// broken for longer than BreakerHold has its records dead-lettered. When ctx ends it returns
// promptly with an error wrapping ctx.Err(), writes nothing further, and the Shard is closed.
func (s *Shard) Process(ctx context.Context, recs []Record) (string, error) {
	if s.closed != nil {
		return "", fmt.Errorf("shard %s: %w", s.id, ErrShardClosed)
	}
	if err := ctx.Err(); err != nil {
		return "", s.fail(err)
	}
	p := s.p
	now := p.now()
	b := &s.b
	if len(recs) == 0 && now.After(s.clock) {
		s.clock = now
	}
	s.ro.ensureCapacity(len(recs) + s.ro.held) // no customer of this batch can be evicted mid-batch
	p.m.recordsIn.Add(float64(len(recs)))
	for i := range recs {
		r := &recs[i]
		idx := s.wm.add(r.SequenceNumber)
		at := r.ArrivedAt
		if at.IsZero() {
			at = now
		}
		if at.After(s.clock) {
			s.clock = at
		}
		e, q := s.decode(r, idx, now)
		if q != nil {
			b.quar = append(b.quar, q)
			continue
		}
		id := e.d.EventID
		if h, ok := s.inflight[id]; ok {
			s.duplicate(e, h, "inflight")
			continue
		}
		if h, ok := s.l1.get(id); ok {
			s.duplicate(e, h, "l1")
			continue
		}
		e.heldAt = s.clock
		s.inflight[id] = e.hash
		b.cands = append(b.cands, e)
	}
	if err := s.lookup(ctx); err != nil {
		return "", s.fail(err)
	}
	for _, e := range b.cands {
		id, c := e.d.EventID, e.d.CustomerID
		if !s.ro.known(c) {
			// Before observe as well as add: a replayed duplicate of an old event (seq below the
			// durable cursor) must not become the customer's cursor on a new owner.
			s.ro.setCursor(c, b.cursors[c])
		}
		if h, ok := b.marks[id]; ok {
			delete(s.inflight, id)
			if h == e.hash {
				p.m.dedupeHits.WithLabelValues("l2", "natural").Inc()
				s.wm.done(e.idx)
				s.l1.add(id, e.hash)
				s.ro.observe(c, e.d.Seq)
			} else {
				p.m.dedupeHits.WithLabelValues("l2", "conflicting").Inc()
				b.quar = append(b.quar, conflict(e, "a different event with this event_id was already delivered"))
			}
			continue
		}
		b.released = s.ro.add(e, e.heldAt, b.released)
	}
	b.released = s.ro.expire(s.clock, b.released)
	return s.emit(ctx, now)
}

// Drain releases everything held (recording gaps), writes it and returns the final watermark. Used
// at SHARD_END, before the final checkpoint.
func (s *Shard) Drain(ctx context.Context) (string, error) {
	if s.closed != nil {
		return "", fmt.Errorf("shard %s: %w", s.id, ErrShardClosed)
	}
	if err := ctx.Err(); err != nil {
		return "", s.fail(err)
	}
	s.b.released = s.ro.drain(s.b.released)
	return s.emit(ctx, s.p.now())
}

// duplicate handles an event whose id is already in flight or in the level-1 cache with hash h.
func (s *Shard) duplicate(e *rec, h uint64, level string) {
	if h == e.hash {
		s.p.m.dedupeHits.WithLabelValues(level, "natural").Inc()
		s.wm.done(e.idx)
		return
	}
	s.p.m.dedupeHits.WithLabelValues(level, "conflicting").Inc()
	msg := "another event with this event_id was already delivered"
	if level == "inflight" {
		msg = "another event with this event_id is in flight"
	}
	q := conflict(e, msg)
	q.ev = nil // e itself never went in flight
	s.b.quar = append(s.b.quar, q)
}

func conflict(e *rec, msg string) *quarantined {
	return &quarantined{idx: e.idx, seqNum: e.seqNum, data: e.data, reason: event.ReasonConflictingDupe,
		detail: msg, eventID: e.d.EventID, customerID: e.d.CustomerID, ev: e}
}

// lookup plans and runs the level-2 reads for the batch's candidates: the mark of every candidate
// and the cursor of every customer whose cursor is not known, in one round of calls.
//
// With LookupBehindCursorOnly a mark is read only for an event at or behind its customer's cursor,
// so for a customer whose cursor is not known the cursor is read first and the marks of that
// customer's events behind it in a second round (events of a customer new to the table cost no
// mark read at all).
func (s *Shard) lookup(ctx context.Context) error {
	b := &s.b
	behindOnly := s.p.cfg.LookupBehindCursorOnly
	var later []*rec // behindOnly: events whose customer's cursor is being read
	for _, e := range b.cands {
		c := e.d.CustomerID
		cur, known := s.ro.cursor(c)
		if !known {
			if _, ok := b.planned[c]; !ok {
				b.planned[c] = struct{}{}
				b.keys = append(b.keys, CursorKey(c))
			}
		}
		switch {
		case !behindOnly:
			b.keys = append(b.keys, e.d.EventID)
		case !known:
			later = append(later, e)
		case e.d.Seq <= cur:
			b.keys = append(b.keys, e.d.EventID)
		}
	}
	if err := s.read(ctx, b.keys); err != nil {
		return err
	}
	b.keys = b.keys[:0]
	for _, e := range later {
		if cur, ok := b.cursors[e.d.CustomerID]; ok && e.d.Seq <= cur {
			b.keys = append(b.keys, e.d.EventID)
		}
	}
	return s.read(ctx, b.keys)
}

// read looks keys up in the level-2 store into the batch's cursors and marks.
func (s *Shard) read(ctx context.Context, keys []string) error {
	if len(keys) == 0 {
		return nil
	}
	b := &s.b
	return s.p.lookup(ctx, s.id, keys, func(it Item) {
		if c, ok := IsCursorKey(it.Key); ok {
			b.cursors[c] = it.LastSeq
			return
		}
		b.marks[it.Key] = it.Hash
	})
}

// emit routes and encodes the released events, writes everything, marks what was written, updates
// the caches and the watermark, and resets the batch.
func (s *Shard) emit(ctx context.Context, now time.Time) (string, error) {
	p, b := s.p, &s.b
	var shardJSON, processedAt []byte // the same for every record of the call: encoded once
	if len(b.released) > 0 {
		s.stamp = appendJSONString(s.stamp[:0], s.id)
		n := len(s.stamp)
		s.stamp = now.AppendFormat(s.stamp, time.RFC3339Nano)
		shardJSON, processedAt = s.stamp[:n], s.stamp[n:]
	}
	for _, e := range b.released {
		if e.gap > 0 {
			p.m.gaps.Inc()
			p.m.gapSeqs.Add(float64(e.gap))
		}
		if e.late {
			p.m.late.Inc()
		}
		stream := p.destination(e)
		buf := b.arena.buf(len(e.d.Properties) + len(e.seqNum) + 4*len(e.d.EventID) + 4*len(e.d.CustomerID) + 512)
		data := b.arena.commit(appendAnalyticsWith(buf, e, shardJSON, processedAt))
		if len(data)+len(e.d.CustomerID) > maxKinesisRecord {
			b.quar = append(b.quar, &quarantined{idx: e.idx, seqNum: e.seqNum, data: e.data, reason: event.ReasonTooLarge,
				detail:  "analytics record of " + strconv.Itoa(len(data)) + " bytes is over the Kinesis record limit",
				eventID: e.d.EventID, customerID: e.d.CustomerID, ev: e})
			continue
		}
		e.o = outRec{kind: outEvent, key: e.d.CustomerID, data: data, ev: e}
		e.out = &e.o
		b.byStream[stream] = append(b.byStream[stream], e.out)
	}
	if err := s.skipQuarantined(ctx); err != nil {
		return "", s.fail(err)
	}
	for _, q := range b.quar {
		p.m.quarantined.WithLabelValues(string(q.reason)).Inc()
		key := q.customerID
		if key == "" || len(key) > maxPartitionKey {
			key = q.seqNum
		}
		b.byStream[p.cfg.QuarantineStream] = append(b.byStream[p.cfg.QuarantineStream],
			&outRec{kind: outQuarantine, key: key, data: s.quarantineRecord(q, now), q: q})
	}
	dead, err := s.writeAll(ctx, b.byStream, true)
	if err != nil {
		return "", s.fail(err)
	}
	if len(dead) > 0 {
		dlq := make([]*outRec, 0, len(dead))
		for _, o := range dead {
			reason, data := s.deadLetter(o)
			p.m.deadLettered.WithLabelValues(reason).Inc()
			dlq = append(dlq, &outRec{kind: outDead, key: o.key, data: data, src: o})
		}
		if _, err := s.writeAll(ctx, map[string][]*outRec{p.cfg.DLQStream: dlq}, false); err != nil {
			return "", s.fail(err)
		}
	}
	if err := s.mark(ctx, now); err != nil {
		return "", s.fail(err)
	}
	// Everything written, marked, quarantined or dead-lettered is handled.
	for stream, outs := range b.byStream {
		for _, o := range outs {
			switch o.kind {
			case outEvent:
				id := o.ev.d.EventID
				delete(s.inflight, id)
				s.wm.done(o.ev.idx)
				if o.written {
					s.l1.add(id, o.ev.hash)
					s.countOut(stream, o.ev.raw.Type)
				}
			case outQuarantine:
				if o.q.ev != nil {
					delete(s.inflight, o.q.ev.d.EventID)
				}
				s.wm.done(o.q.idx)
			}
		}
	}
	s.reset()
	s.report()
	return s.wm.advance(), nil
}

// skipQuarantined drops from the batch's quarantine list every record whose quarantine mark is in
// the level-2 store (it was quarantined before and is read again after a lease moved), and counts it
// handled, so a replay does not quarantine a record twice.
func (s *Shard) skipQuarantined(ctx context.Context) error {
	b := &s.b
	if len(b.quar) == 0 {
		return nil
	}
	keys := make([]string, len(b.quar))
	uniq := make([]string, 0, len(b.quar))
	seen := make(map[string]bool, len(b.quar))
	for i, q := range b.quar {
		keys[i] = QuarantineKey(s.id, q.seqNum)
		if !seen[keys[i]] {
			seen[keys[i]] = true
			uniq = append(uniq, keys[i])
		}
	}
	found := map[string]bool{}
	if err := s.p.lookup(ctx, s.id, uniq, func(it Item) { found[it.Key] = true }); err != nil {
		return err
	}
	if len(found) == 0 {
		return nil
	}
	kept := b.quar[:0]
	for i, q := range b.quar {
		if !found[keys[i]] {
			kept = append(kept, q)
			continue
		}
		s.p.m.quarReplays.Inc()
		if q.ev != nil {
			delete(s.inflight, q.ev.d.EventID)
		}
		s.wm.done(q.idx)
	}
	clear(b.quar[len(kept):])
	b.quar = kept
	return nil
}

// writeAll writes each stream's records concurrently (one goroutine per stream) and returns the
// records given up on.
func (s *Shard) writeAll(ctx context.Context, byStream map[string][]*outRec, mayDeadLetter bool) ([]*outRec, error) {
	type result struct {
		dead []*outRec
		err  error
	}
	streams := make([]string, 0, len(byStream))
	for name, outs := range byStream {
		if len(outs) > 0 {
			streams = append(streams, name)
		}
	}
	slices.Sort(streams)
	results := make([]result, len(streams))
	run := func(k int) {
		name := streams[k]
		d := s.p.dests[name]
		results[k].dead, results[k].err = s.p.writeStream(ctx, s.id, d, s.lims[name], byStream[name], mayDeadLetter)
	}
	if len(streams) == 1 {
		run(0)
	} else {
		var wg sync.WaitGroup
		for k := range streams {
			wg.Go(func() { run(k) })
		}
		wg.Wait()
	}
	var dead []*outRec
	var errs []error
	for _, r := range results {
		dead = append(dead, r.dead...)
		if r.err != nil {
			errs = append(errs, r.err)
		}
	}
	if len(errs) > 0 {
		return nil, errs[0]
	}
	return dead, nil
}

// mark writes the cursors that moved, the marks of the events written and of the records
// quarantined, cursors first (with LookupBehindCursorOnly a written event's seq must not be ahead of
// its customer's durable cursor), and returns once all are durable (retrying while the store is
// down) or ctx ends.
func (s *Shard) mark(ctx context.Context, now time.Time) error {
	p, b := s.p, &s.b
	s.ro.takeDirty(b.dirty)
	items := make([]Item, 0, len(b.dirty)+len(b.released))
	cursorExp := now.Add(p.cfg.CursorTTL)
	for c, v := range b.dirty {
		items = append(items, Item{Key: CursorKey(c), LastSeq: v, ExpiresAt: cursorExp})
	}
	cursors := len(items)
	markExp := now.Add(p.cfg.DedupeTTL)
	for _, e := range b.released {
		// Written events only: a dead-lettered one is not delivered, and a quarantined one never is.
		if e.out != nil && e.out.written {
			items = append(items, Item{Key: e.d.EventID, Hash: e.hash, ExpiresAt: markExp})
		}
	}
	for _, o := range b.byStream[p.cfg.QuarantineStream] {
		if o.kind == outQuarantine && o.written {
			items = append(items, Item{Key: QuarantineKey(s.id, o.q.seqNum), ExpiresAt: markExp})
		}
	}
	// The calls that carry cursors (the last one topped up with marks, as one call of MaxPutItems
	// carries them) complete before the calls of marks alone start.
	first := min(len(items), (cursors+MaxPutItems-1)/MaxPutItems*MaxPutItems)
	if first > 0 {
		if err := p.storeItems(ctx, s.id, items[:first]); err != nil {
			return err
		}
	}
	if len(items) > first {
		return p.storeItems(ctx, s.id, items[first:])
	}
	return nil
}

func (s *Shard) countOut(stream, typ string) {
	k := [2]string{stream, typ}
	c, ok := s.outCount[k]
	if !ok {
		c = s.p.m.recordsOut.WithLabelValues(stream, typ)
		s.outCount[k] = c
	}
	c.Inc()
}

func (s *Shard) reset() {
	b := &s.b
	clear(b.cands)
	b.cands = b.cands[:0]
	clear(b.released)
	b.released = b.released[:0]
	clear(b.quar)
	b.quar = b.quar[:0]
	b.keys = b.keys[:0]
	clear(b.planned)
	clear(b.marks)
	clear(b.cursors)
	clear(b.dirty)
	for k, v := range b.byStream {
		clear(v)
		b.byStream[k] = v[:0]
	}
}

// report publishes the change of this shard's held count to the shared gauge.
func (s *Shard) report() {
	n := 0
	if s.ro != nil {
		n = s.ro.held
	}
	if n != s.reported {
		s.p.m.held.Add(float64(n - s.reported))
		s.reported = n
	}
}

// fail closes the shard after its context ended or a call failed: buffers are dropped (the next
// owner replays from the checkpoint) and every later call returns ErrShardClosed.
func (s *Shard) fail(err error) error {
	s.drop(err)
	return fmt.Errorf("shard %s: %w", s.id, err)
}

func (s *Shard) drop(err error) {
	s.closed = err
	s.ro = nil
	s.inflight = nil
	s.b = batch{}
	s.report()
}

// quarantineRecord encodes the event.Quarantine record for q. An original too large to fit a
// Kinesis record is truncated, and the detail says so.
func (s *Shard) quarantineRecord(q *quarantined, now time.Time) []byte {
	orig, detail := q.data, q.detail
	if len(orig) > maxAcceptedRecord {
		orig = orig[:maxAcceptedRecord]
		detail += " (original truncated to " + strconv.Itoa(maxAcceptedRecord) + " of " + strconv.Itoa(len(q.data)) + " bytes)"
	}
	if len(detail) > 1024 {
		detail = detail[:1024]
	}
	rec := event.Quarantine{Reason: q.reason, Detail: detail, Stage: "worker", EventID: q.eventID,
		CustomerID: q.customerID, SourceShard: s.id, SourceSeq: q.seqNum, At: now, Original: orig}
	b, err := json.Marshal(rec)
	if err != nil { // only a time outside years 0-9999 fails: drop it rather than the record
		rec.At = time.Time{}
		b, _ = json.Marshal(rec)
	}
	return b
}

// deadLetter encodes the event.DeadLetter for an output record given up on, with its metric reason.
func (s *Shard) deadLetter(o *outRec) (string, []byte) {
	dl := event.DeadLetter{Attempts: o.attempts, FirstFailure: o.first, LastFailure: o.last, SourceShard: s.id}
	lastErr := o.lastErr
	if len(lastErr) > 512 {
		lastErr = lastErr[:512]
	}
	var reason string
	switch o.kind {
	case outEvent:
		reason = "destination_unavailable"
		dl.Destination = s.p.destination(o.ev)
		dl.SourceSeq, dl.EventID, dl.CustomerID, dl.Original = o.ev.seqNum, o.ev.d.EventID, o.ev.d.CustomerID, o.ev.data
		dl.Reason = reason + ": " + lastErr
	default:
		reason = "quarantine_unavailable"
		dl.Destination = s.p.cfg.QuarantineStream
		dl.SourceSeq, dl.EventID, dl.CustomerID, dl.Original = o.q.seqNum, o.q.eventID, o.q.customerID, o.q.data
		if len(dl.Original) > maxAcceptedRecord {
			dl.Original = dl.Original[:maxAcceptedRecord]
		}
		dl.Reason = reason + " (quarantined for " + string(o.q.reason) + "): " + lastErr
	}
	b, err := json.Marshal(dl)
	if err != nil { // only a time outside years 0-9999 fails: drop the times rather than the record
		dl.FirstFailure, dl.LastFailure = time.Time{}, time.Time{}
		b, _ = json.Marshal(dl)
	}
	return reason, b
}
