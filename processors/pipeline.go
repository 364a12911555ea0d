package processors

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/kinesis-events/pipeline/event"
	"github.com/kinesis-events/pipeline/internal/retry"
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
	retry retry.Policy // between attempts of a dedupe store call
	gate  LeaseGate    // nil: no lease to check or a write
	m     *metrics
	dests map[string]*dest // every stream named in the config; read-only after New
}

// New applies cfg's defaults, validates it and builds a Pipeline.
func New(cfg Config, deps Deps) (*Pipeline, error) {
	cfg = cfg.withDefaults()
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
		cfg:   cfg,
		kin:   deps.Kinesis,
		store: deps.Dedupe,
		keys:  deps.Keys,
		log:   deps.Logger,
		now:   deps.Now,
		sleep: deps.Sleep,
		m:     newMetrics(deps.Registerer),
		dests: map[string]*dest{},
	}
	p.pii, _ = event.NewPIIPolicy(p.cfg.PIIPaths) // validated above
	if p.log == nil {
		p.log = zap.NewNop()
	}
	if p.now == nil {
		p.now = time.Now
	}
	if p.sleep == nil {
		p.sleep = retry.Sleep
	}
	p.retry = retry.Policy{Initial: p.cfg.RetryBase, Max: p.cfg.RetryMax, Now: p.now, Sleep: p.sleep}
	p.gate = deps.Leases
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

// Record is one raw-stream record as read from a shard.
type Record struct {
	SequenceNumber string
	// SubSequence numbers the records of one KPL aggregate, which share its SequenceNumber, from 0
	// in their order inside it; 0 for a plain record. The watermark passes an aggregate only once
	// every record inside it is handled, and its quarantine marks tell its records apart.
	SubSequence int
	// BadAggregate is why the record, a KPL aggregate, did not decode ("" for any other record):
	// it is quarantined whole (event.ReasonBadAggregate), Data being the aggregate as written.
	BadAggregate string
	// Data is the record's payload. The pipeline keeps a reference while the event is held for
	// reordering: the caller must not reuse the buffer.
	Data         []byte
	PartitionKey string
	// ArrivedAt is the record's ApproximateArrivalTimestamp; zero means "now". The reorder window
	// is measured in arrival time, so a backlog read late is reordered as it was when written.
	ArrivedAt time.Time
	// Shard is the shard the record was read from when it is not the shard being processed: a
	// record of a parent's tail, which a new child shard processes before its own (its lineage and
	// quarantine mark name the parent). "" for the shard's own records; those alone move the
	// watermark Process returns.
	Shard string
}

// stage is the contract of every stage: it takes the batch, settles what it can decide (moving a
// record to b.quar, b.done, b.released or b.byStream) and leaves the rest to the next stage. A
// stage that returns an error has written nothing it cannot redo: the shard is then closed and the
// next owner replays from the checkpoint.
type stage struct {
	name string
	run  func(ctx context.Context, b *batch) error
}

// processStages are the stages of a batch of records, in order:
//
//  1. verify: strict decode, signature, PII policy, routability, content hash (verify.go);
//  2. dedupe: level 1 (ids in flight or recently written), then level 2 (marks and customer
//     cursors in the DedupeStore) (dedupe.go);
//  3. reorder: per customer by seq, holding events up to the window (reorder.go);
//  4. route: destination stream and analytics encoding (route.go);
//  5. quarantine: records quarantined before are skipped, the rest encoded (quarantine.go);
//  6. write: every destination at once, in order per customer, then dead letters (sink.go);
//  7. mark: cursors, then marks of what was written and quarantined (dedupe.go);
//
// after which settle counts everything handled and moves the watermark.
func (s *Shard) processStages() []stage {
	return []stage{
		{"verify", s.verify},
		{"dedupe", s.dedupe.resolve},
		{"reorder", s.reorder},
		{"route", s.routeReleased},
		{"quarantine", s.quarantine},
		{"write", s.write},
		{"mark", s.dedupe.mark},
	}
}

// Process runs one batch of records, in shard order, through processStages and returns the
// checkpoint watermark: the sequence number of the last record of the longest prefix of everything
// received on this shard that is handled (written and marked, quarantined, dropped as a natural
// duplicate, or dead-lettered), "" while there is none. An empty batch only releases held events
// whose window passed (the stream time moves to the wall clock: the caller is caught up).
//
// It blocks while a destination or the dedupe store is down, retrying with backoff; a destination
// broken for longer than BreakerHold has its records dead-lettered. When ctx ends it returns
// promptly with an error wrapping ctx.Err(), writes nothing further, and the Shard is closed.
func (s *Shard) Process(ctx context.Context, recs []Record) (string, error) {
	if err := s.usable(ctx); err != nil {
		return "", err
	}
	s.b.in, s.b.now = recs, s.p.now()
	return s.run(ctx, s.stages)
}

func (s *Shard) run(ctx context.Context, stages []stage) (string, error) {
	begin := time.Now()
	var took [8]time.Duration
	for i, st := range stages {
		start := time.Now()
		err := st.run(ctx, &s.b)
		d := time.Since(start)
		s.p.m.stageSeconds.WithLabelValues(st.name).Observe(d.Seconds())
		if i < len(took) {
			took[i] = d
		}
		if err != nil {
			return "", s.fail(fmt.Errorf("%s: %w", st.name, err))
		}
	}
	if total := time.Since(begin); total >= slowBatch {
		s.logSlow(stages, took[:min(len(stages), len(took))], total)
	}
	s.settle()
	return s.wm.advance(), nil
}

// slowBatch is the batch time past which a batch is logged with where its time went.
var slowBatch = 2 * time.Second

// logSlow logs a batch that took total, with each stage's time and, per destination, its records
// and the most failed attempts any of them had (throttled or failed, then sent again).
func (s *Shard) logSlow(stages []stage, took []time.Duration, total time.Duration) {
	fields := []zap.Field{zapShard(s.id), zap.Duration("took", total), zap.Int("records", len(s.b.in)),
		zap.Int("released", len(s.b.released)), zap.Int("quarantined", len(s.b.quar))}
	for i, d := range took {
		fields = append(fields, zap.Duration(stages[i].name, d))
	}
	for name, outs := range s.b.byStream {
		if len(outs) == 0 {
			continue
		}
		most := 0
		for _, o := range outs {
			most = max(most, o.attempts)
		}
		fields = append(fields, zap.String("to_"+name, fmt.Sprintf("%d records, at most %d failed attempts", len(outs), most)))
	}
	s.p.log.Info("slow batch", fields...)
}

// verify registers the batch's records with the watermark, moves the stream clock, and decodes and
// verifies each: events go to b.cands, rejected records to b.quar.
func (s *Shard) verify(_ context.Context, b *batch) error {
	if len(b.in) == 0 && b.now.After(s.clock) {
		s.clock = b.now
	}
	s.p.m.recordsIn.Add(float64(len(b.in)))
	for i := range b.in {
		r := &b.in[i]
		idx := s.wm.add(r.SequenceNumber, r.Shard != "" && r.Shard != s.id)
		at := r.ArrivedAt
		if at.IsZero() {
			at = b.now
		}
		if at.After(s.clock) {
			s.clock = at
		}
		e, q := s.decode(r, idx, at)
		if q != nil {
			b.quar = append(b.quar, q)
			continue
		}
		e.heldAt = s.clock
		b.cands = append(b.cands, e)
	}
	return nil
}

// reorder adds the unique events to the reorder buffers and releases what may go: contiguous
// events at once, held ones whose window passed in stream time.
func (s *Shard) reorder(_ context.Context, b *batch) error {
	for _, e := range b.cands {
		n := len(b.released)
		b.released = s.ro.add(e, e.heldAt, b.released)
		s.observeHolds(b.released[n:], e.heldAt)
	}
	n := len(b.released)
	b.released = s.ro.expire(s.clock, b.released)
	s.observeHolds(b.released[n:], s.clock)
	return nil
}

// observeHolds counts the stream time each of released waited in the reorder buffer, released at
// stream time now (an event released as it came waited 0).
func (s *Shard) observeHolds(released []*rec, now time.Time) {
	for _, e := range released {
		s.p.m.holdSeconds.Observe(now.Sub(e.heldAt).Seconds())
	}
}

// quarantine drops the records quarantined before (read again after a lease moved) and encodes the
// quarantine record of the others.
func (s *Shard) quarantine(ctx context.Context, b *batch) error {
	p := s.p
	if err := s.dedupe.skipQuarantined(ctx, b); err != nil {
		return err
	}
	for _, q := range b.quar {
		p.m.quarantined.WithLabelValues(string(q.reason)).Inc()
		b.byStream[p.cfg.QuarantineStream] = append(b.byStream[p.cfg.QuarantineStream],
			&outRec{kind: outQuarantine, key: q.partitionKey(), data: encodeQuarantine(q, s.id, b.now), q: q})
	}
	return nil
}

// write writes every destination's records, then the dead letters of those given up on.
func (s *Shard) write(ctx context.Context, b *batch) error {
	p := s.p
	dead, err := s.writeAll(ctx, b.byStream, true)
	if err != nil || len(dead) == 0 {
		return err
	}
	dlq := make([]*outRec, 0, len(dead))
	for _, o := range dead {
		dest := ""
		if o.kind == outEvent {
			dest = p.destination(o.ev)
		}
		reason, data := encodeDeadLetter(o, s.id, dest, p.cfg.QuarantineStream)
		p.m.deadLettered.WithLabelValues(reason).Inc()
		dlq = append(dlq, &outRec{kind: outDead, key: o.key, data: data, src: o})
	}
	_, err = s.writeAll(ctx, map[string][]*outRec{p.cfg.DLQStream: dlq}, false)
	return err
}

// settle counts every record of the batch that is now handled (written, marked, quarantined,
// dead-lettered, or a duplicate), updates the caches, and resets the batch.
func (s *Shard) settle() {
	b := &s.b
	for stream, outs := range b.byStream {
		for _, o := range outs {
			switch o.kind {
			case outEvent:
				s.dedupe.settle(o.ev)
				s.wm.done(o.ev.idx)
				if o.written {
					s.countOut(stream, o.ev.raw.Type)
				}
			case outQuarantine:
				if o.q.ev != nil {
					delete(s.dedupe.inflight, o.q.ev.d.EventID)
				}
				s.wm.done(o.q.idx)
			}
		}
	}
	for _, idx := range b.done {
		s.wm.done(idx)
	}
	s.reset()
	s.report()
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
