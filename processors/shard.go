package processors

import (
	"context"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Shard is the pipeline state of one shard lease: the state of each stage (dedupe caches, reorder
// buffers, output limiters), the watermark and the scratch batch. Its methods must not be called
// concurrently.
type Shard struct {
	p      *Pipeline
	id     string
	dedupe *dedupe
	ro     *reorder
	wm     watermark
	clock  time.Time // stream time: the latest arrival seen (or the wall clock when caught up)
	closed error
	// reported is the held count last added to the shared gauge.
	reported int

	scratch  []byte // signing input of the verify stage
	stamp    []byte // the shard id as JSON and processed_at of the records route encodes
	lims     map[string]*limiters
	outCount map[[2]string]prometheus.Counter
	b        batch
	stages   []stage // processStages
}

// batch is the working set of one Process call, handed from stage to stage and reused.
type batch struct {
	in       []Record
	now      time.Time      // the wall clock when the call started
	cands    []*rec         // decoded events not yet known unique (dedupe), then the unique ones
	released []*rec         // events the reorder released, in release order
	quar     []*quarantined // records to quarantine
	done     []uint64       // watermark indexes handled without an output (duplicates, replays)
	byStream map[string][]*outRec
	arena    arena
}

// OpenShard loads the state of one shard (its keyed state from the dedupe table, or for a new
// shard its parents' states within its hash key range) and returns the shard's pipeline: call it
// when a lease is taken, and drop the Shard (Close) when the lease ends. It returns an error
// wrapping ErrStateTakenOver when another writer owns the shard's state, and ctx's error when ctx
// ends while it reads.
func (p *Pipeline) OpenShard(ctx context.Context, shardID string, lin Lineage) (*Shard, error) {
	st, log, err := p.openState(ctx, shardID, lin)
	if err != nil {
		return nil, fmt.Errorf("shard %s: open state: %w", shardID, err)
	}
	s := &Shard{
		p:        p,
		id:       shardID,
		ro:       newReorder(max(p.cfg.ReorderWindow, 0), p.cfg.MaxHeldPerShard, p.cfg.MaxHeldBytesPerShard, st),
		scratch:  make([]byte, 0, 1024),
		lims:     map[string]*limiters{},
		outCount: map[[2]string]prometheus.Counter{},
		b:        batch{byStream: map[string][]*outRec{}},
	}
	for name := range p.dests {
		s.lims[name] = p.newLimiters()
	}
	s.dedupe = newDedupe(p, shardID, st, log, s.ro)
	s.stages = s.processStages()
	return s, nil
}

// Close drops the shard's buffers when its lease ends (shutdown, lease handed over, shard end):
// the held events are not lost, they are after the watermark and the next owner (or a child shard's
// owner, which reads the parent's tail) replays them. Later
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

func (s *Shard) usable(ctx context.Context) error {
	if s.closed != nil {
		return fmt.Errorf("shard %s: %w", s.id, ErrShardClosed)
	}
	if err := ctx.Err(); err != nil {
		return s.fail(err)
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
	b.in = nil
	clear(b.cands)
	b.cands = b.cands[:0]
	clear(b.released)
	b.released = b.released[:0]
	clear(b.quar)
	b.quar = b.quar[:0]
	b.done = b.done[:0]
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
	s.dedupe = nil
	s.b = batch{}
	s.report()
}
