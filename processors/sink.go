package processors

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sony/gobreaker/v2"
	"go.uber.org/zap"

	"github.com/kinesis-events/pipeline/internal/ordered"
)

// Putter is the Kinesis call the sink needs (*kinesis.Client implements it).
type Putter = ordered.Putter

// LogUnknownOutcome is the message of the warning logged for the records of a write whose outcome
// was unknown; its fields are shard, stream, records (records times attempts: the most extra copies
// the call can have written), attempts and event_ids (the first 50). See ordered.LogUnknownOutcome.
const LogUnknownOutcome = ordered.LogUnknownOutcome

// errNoProgress and errThrottled tell the breaker how a PutRecords step that wrote nothing ended.
var (
	errNoProgress = errors.New("PutRecords wrote nothing")
	errThrottled  = errors.New("PutRecords throttled")
)

// dest is one destination stream, shared by all shards: its writer step, breaker and outage
// bookkeeping.
type dest struct {
	name   string
	stream *ordered.Stream
	cb     *gobreaker.CircuitBreaker[ordered.Result]
	errs   prometheus.Counter
	agg    ordered.Aggregation // Config.AggregateKeys, on the analytics streams only

	mu          sync.Mutex
	brokenSince time.Time // first failure of the current outage; zero while healthy
	lastFailure time.Time
}

func (p *Pipeline) newDest(name string) *dest {
	d := &dest{name: name, errs: p.m.putErrors.WithLabelValues(name)}
	d.stream = ordered.NewStream(p.kin, name, p.log, ordered.Metrics{
		Calls:      p.m.putCalls.WithLabelValues(name),
		Errors:     d.errs,
		Retries:    p.m.putRetries.WithLabelValues(name),
		Throttles:  p.m.putThrottles.WithLabelValues(name),
		Unknown:    p.m.putUnknown.WithLabelValues(name),
		Aggregated: p.m.putAggregated.WithLabelValues(name),
	})
	if p.cfg.AggregateKeys && name != p.cfg.QuarantineStream && name != p.cfg.DLQStream {
		d.agg = ordered.DefaultAggregation
	}
	state := p.m.breakerState.WithLabelValues(name)
	state.Set(0)
	failures := p.cfg.BreakerFailures
	d.cb = gobreaker.NewCircuitBreaker[ordered.Result](gobreaker.Settings{
		Name:        name,
		MaxRequests: 1,
		Timeout:     p.cfg.BreakerOpenTimeout,
		ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= failures },
		IsExcluded: func(err error) bool {
			return errors.Is(err, errThrottled) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
		},
		OnStateChange: func(name string, from, to gobreaker.State) {
			switch to {
			case gobreaker.StateClosed:
				state.Set(0)
			case gobreaker.StateHalfOpen:
				state.Set(1)
			case gobreaker.StateOpen:
				state.Set(2)
			}
			p.log.Info("circuit breaker state change", zapStream(name), zap.String("from", from.String()), zap.String("to", to.String()))
		},
	})
	return d
}

// guard puts d's circuit breaker around one PutRecords step. A step that writes nothing is a
// failure for the breaker, unless it was merely throttled or its context ended (those count neither
// way: a throttled destination is busy, not broken); an open breaker refuses the step, and no call
// is made.
func (d *dest) guard(next ordered.Step) ordered.Step {
	return func(ctx context.Context, recs []*ordered.Record) ordered.Result {
		var res ordered.Result
		_, err := d.cb.Execute(func() (ordered.Result, error) {
			res = next(ctx, recs)
			switch {
			case res.Progress() || res.Failed == 0:
				return res, nil
			case ctx.Err() != nil:
				return res, ctx.Err()
			case res.OnlyThrottled():
				return res, errThrottled
			}
			return res, errNoProgress
		})
		if errors.Is(err, gobreaker.ErrOpenState) || errors.Is(err, gobreaker.ErrTooManyRequests) {
			d.errs.Inc()
			return ordered.Refuse(recs, err)
		}
		return res
	}
}

// gated puts shard's lease gate before every call of next: a call is made only while this worker's
// lease is valid (WaitValid blocks while it is suspended), and once the lease is gone the write in
// progress ends with the lease's error, writing nothing more (the next owner replays from the
// checkpoint). Outside the breaker: waiting for the lease is not the destination failing.
func (p *Pipeline) gated(shard string, lim *limiters, next ordered.Step) ordered.Step {
	if p.gate == nil {
		return next
	}
	return func(ctx context.Context, recs []*ordered.Record) ordered.Result {
		if err := p.gate.WaitValid(ctx, shard); err != nil {
			lim.abort(err)
			return ordered.Refuse(recs, err)
		}
		return next(ctx, recs)
	}
}

// failed records a failed or refused call at now and returns how long the destination has been
// broken. A failure long after the previous one starts a new outage.
func (d *dest) failed(now time.Time, quiet time.Duration) time.Duration {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.brokenSince.IsZero() || now.Sub(d.lastFailure) > quiet {
		d.brokenSince = now
	}
	d.lastFailure = now
	return now.Sub(d.brokenSince)
}

func (d *dest) succeeded() {
	d.mu.Lock()
	d.brokenSince = time.Time{}
	d.mu.Unlock()
}

// outKind says what an output record is, for the bookkeeping after the write.
type outKind uint8

const (
	outEvent      outKind = iota // analytics or late stream
	outQuarantine                // quarantine stream
	outDead                      // DLQ stream
)

// outRec is one record to write to one stream.
type outRec struct {
	kind outKind
	key  string // partition key
	data []byte
	ev   *rec         // outEvent: the event
	q    *quarantined // outQuarantine: the rejected record
	src  *outRec      // outDead: the record that could not be delivered

	// What the write did, copied from the writer's record.
	written  bool
	dead     bool
	attempts int
	first    time.Time
	last     time.Time
	lastErr  string
}

// slot is the writer's record for one outRec, in scratch space reused from write to write (so the
// per-event allocation stays the outRec alone).
type slot struct {
	rec ordered.Record
	o   *outRec
}

// Rec implements ordered.Item.
func (s *slot) Rec() *ordered.Record { return &s.rec }

// limiters is one shard's writer for one destination: its queue, rate limits (OutputRatePerShard,
// OutputBytesPerShard) and scratch space. One goroutine at a time uses it.
type limiters struct {
	w             *ordered.Writer[*slot] // built on the first write
	slots         []slot
	items         []*slot
	mayDeadLetter bool                    // of the write in progress
	failures      int                     // calls of the write in progress that failed in a row
	abort         context.CancelCauseFunc // ends the write in progress (the lease is gone)
}

func (p *Pipeline) newLimiters() *limiters { return &limiters{} }

// writer returns lim's writer to d for shard, building it on first use.
func (p *Pipeline) writer(shard string, d *dest, lim *limiters) (*ordered.Writer[*slot], error) {
	if lim.w != nil {
		return lim.w, nil
	}
	step := p.gated(shard, lim, d.guard(d.stream.WithLogger(p.log.With(zapShard(shard))).Put))
	w, err := ordered.NewWriter[*slot](step, ordered.WriterConfig{
		// A fatal answer (a missing stream) is retried too: the breaker and the hold decide.
		Policy:           ordered.Policy{Backoff: p.retry, RetryFatal: true},
		Aggregation:      d.agg,
		RecordsPerSecond: p.cfg.OutputRatePerShard,
		BytesPerSecond:   p.cfg.OutputBytesPerShard,
		After:            func(res ordered.Result, now time.Time) bool { return p.afterCall(shard, d, lim, res, now) },
		Now:              p.now,
		Sleep:            p.sleep,
	})
	if err != nil {
		return nil, fmt.Errorf("writer for %s: %w", d.name, err)
	}
	lim.w = w
	return w, nil
}

// writeStream writes recs to stream d in order per partition key (ordered.Writer: each call carries
// at most one record per key, or with Config.AggregateKeys one aggregate of the key's next records,
// and only failed entries are sent again, so a partial failure can never land a later record of a
// key before an earlier one) and returns the records it gave up on, each on its own: when
// mayDeadLetter and the destination stayed broken for BreakerHold, every record not yet written. A
// merely throttled destination is retried with backoff and never given up on. Without
// mayDeadLetter it returns only when everything is written (a record it cannot write at all, over a
// Kinesis limit, is an error), or early when ctx ends, with ctx's error.
func (p *Pipeline) writeStream(ctx context.Context, shard string, d *dest, lim *limiters, recs []*outRec, mayDeadLetter bool) (dead []*outRec, err error) {
	if len(recs) == 0 {
		return nil, nil
	}
	w, err := p.writer(shard, d, lim)
	if err != nil {
		return nil, err
	}
	lim.mayDeadLetter, lim.failures = mayDeadLetter, 0
	if cap(lim.slots) < len(recs) {
		lim.slots = make([]slot, len(recs))
	}
	slots, items := lim.slots[:len(recs)], lim.items[:0]
	defer func() {
		clear(slots) // drop the references to this batch
		clear(items)
		lim.items = items[:0]
	}()
	for i, o := range recs {
		slots[i] = slot{rec: ordered.Record{Key: o.key, Data: o.data, ID: o.eventID()}, o: o}
		items = append(items, &slots[i])
	}
	wctx, abort := context.WithCancelCause(ctx)
	defer abort(nil)
	lim.abort = abort
	if err := w.Write(wctx, items); err != nil {
		if cause := context.Cause(wctx); cause != nil && ctx.Err() == nil {
			return nil, cause // the lease gate ended the write
		}
		return nil, err
	}
	for i := range slots {
		r, o := &slots[i].rec, slots[i].o
		o.attempts, o.first, o.last, o.lastErr = r.Attempts, r.FirstFailure, r.LastFailure, r.LastError
		switch r.State {
		case ordered.Written:
			o.written = true
		case ordered.Failed:
			o.dead = true
			dead = append(dead, o)
		}
	}
	if len(dead) > 0 && !mayDeadLetter {
		return nil, fmt.Errorf("stream %s: %d record(s) cannot be written (first: %s)", d.name, len(dead), dead[0].lastErr)
	}
	return dead, nil
}

// afterCall is the sink's policy after each call of shard's write to d: a call that wrote something
// ends d's outage; one that wrote nothing (failed, or refused by the breaker) extends it, unless it
// was merely throttled. Past BreakerHold, when the write may dead-letter, it stops the write: the
// records not yet written are given up on.
func (p *Pipeline) afterCall(shard string, d *dest, lim *limiters, res ordered.Result, now time.Time) (stop bool) {
	switch {
	case res.Progress():
		d.succeeded()
		lim.failures = 0
		return false
	case res.Failed == 0, res.OnlyThrottled():
		return false
	}
	broken := d.failed(now, 2*max(p.cfg.RetryMax, p.cfg.BreakerOpenTimeout))
	if lim.mayDeadLetter && broken >= p.cfg.BreakerHold {
		p.log.Error("destination unavailable past the hold, dead-lettering", zapShard(shard), zapStream(d.name),
			zap.Duration("broken_for", broken), zap.Int("records", lim.w.Pending()))
		return true
	}
	if res.Err != nil && lim.failures%10 == 0 {
		p.log.Warn("write failed, retrying", zapShard(shard), zapStream(d.name), zapErr(res.Err), zapAttempt(lim.failures), zap.Duration("broken_for", broken))
	}
	lim.failures++
	return false
}

// eventID is the event id behind an output record ("" when its input had none).
func (o *outRec) eventID() string {
	switch {
	case o.ev != nil:
		return o.ev.d.EventID
	case o.q != nil:
		return o.q.eventID
	case o.src != nil:
		return o.src.eventID()
	}
	return ""
}
