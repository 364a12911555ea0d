package processors

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/sony/gobreaker/v2"
	"go.uber.org/zap"
	"golang.org/x/time/rate"

	"github.com/kinesis-events/pipeline/internal/ambiguous"
)

// Putter is the Kinesis call the sink needs (*kinesis.Client implements it).
type Putter interface {
	PutRecords(ctx context.Context, in *kinesis.PutRecordsInput, optFns ...func(*kinesis.Options)) (*kinesis.PutRecordsOutput, error)
}

const throttleCode = "ProvisionedThroughputExceededException"

// errAllFailed makes a PutRecords call in which no entry succeeded count as a breaker failure.
var errAllFailed = errors.New("every entry of the PutRecords call failed")

// dest is one destination stream, shared by all shards: its breaker and outage bookkeeping.
type dest struct {
	name string
	cb   *gobreaker.CircuitBreaker[*kinesis.PutRecordsOutput]

	mu          sync.Mutex
	brokenSince time.Time // first failure of the current outage; zero while healthy
	lastFailure time.Time

	calls, retries, throttles, errs, unknown prometheus.Counter
}

func (p *Pipeline) newDest(name string) *dest {
	d := &dest{
		name:      name,
		calls:     p.m.putCalls.WithLabelValues(name),
		retries:   p.m.putRetries.WithLabelValues(name),
		throttles: p.m.putThrottles.WithLabelValues(name),
		errs:      p.m.putErrors.WithLabelValues(name),
		unknown:   p.m.putUnknown.WithLabelValues(name),
	}
	state := p.m.breakerState.WithLabelValues(name)
	state.Set(0)
	failures := p.cfg.BreakerFailures
	d.cb = gobreaker.NewCircuitBreaker[*kinesis.PutRecordsOutput](gobreaker.Settings{
		Name:        name,
		MaxRequests: 1,
		Timeout:     p.cfg.BreakerOpenTimeout,
		ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= failures },
		IsExcluded: func(err error) bool {
			return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
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

	written  bool
	dead     bool
	attempts int
	first    time.Time
	last     time.Time
	lastErr  string
}

func (o *outRec) fail(now time.Time, msg string) {
	o.attempts++
	if o.first.IsZero() {
		o.first = now
	}
	o.last = now
	o.lastErr = msg
}

// limiters rate-limit what one shard writes to one destination, and hold the writer's scratch space
// for that destination (one goroutine at a time uses it).
type limiters struct {
	records, bytes *rate.Limiter

	last    map[string]int32
	next    []int32
	heads   []int32
	entries []types.PutRecordsRequestEntry
	inCall  []int
}

func (p *Pipeline) newLimiters() *limiters {
	l := &limiters{}
	if r := p.cfg.OutputRatePerShard; r > 0 {
		l.records = rate.NewLimiter(rate.Limit(r), max(1, int(r)))
	}
	if b := p.cfg.OutputBytesPerShard; b > 0 {
		l.bytes = rate.NewLimiter(rate.Limit(b), b)
	}
	return l
}

// wait blocks until n records of size bytes may be sent at the shard's rate.
func (p *Pipeline) waitRate(ctx context.Context, l *limiters, n, size int) error {
	now := p.now()
	var delay time.Duration
	if l.records != nil {
		delay = max(delay, l.records.ReserveN(now, min(n, l.records.Burst())).DelayFrom(now))
	}
	if l.bytes != nil {
		delay = max(delay, l.bytes.ReserveN(now, min(size, l.bytes.Burst())).DelayFrom(now))
	}
	if delay > 0 {
		return p.sleep(ctx, delay)
	}
	return nil
}

// writeStream writes recs to stream d in order per partition key and returns the records it gave up
// on (only when mayDeadLetter and the destination stayed broken for BreakerHold). Each PutRecords call
// carries at most one record per partition key, so a partial failure can never let a later record of
// a key land before an earlier one: the failed record stays at the head of its key's queue and only
// failed entries are sent again. It returns early only when ctx ends, with ctx's error.
func (p *Pipeline) writeStream(ctx context.Context, shard string, d *dest, lim *limiters, recs []*outRec, mayDeadLetter bool) (dead []*outRec, err error) {
	if len(recs) == 0 {
		return nil, nil
	}
	// Per-key queues as linked lists over recs: next[i] is the next record with recs[i]'s key.
	next := slices.Grow(lim.next[:0], len(recs))[:len(recs)]
	heads := slices.Grow(lim.heads[:0], len(recs))
	defer func() {
		lim.next, lim.heads = next[:0], heads[:0]
		clear(lim.entries[:cap(lim.entries)]) // drop references to this batch's data
		lim.entries = lim.entries[:0]
	}()
	if len(recs) == 1 {
		next[0] = -1
		heads = append(heads, 0)
	} else {
		if lim.last == nil {
			lim.last = make(map[string]int32, len(recs))
		}
		last := lim.last
		defer clear(last)
		for i, r := range recs {
			next[i] = -1
			if j, ok := last[r.key]; ok {
				next[j] = int32(i)
			} else {
				heads = append(heads, int32(i))
			}
			last[r.key] = int32(i)
		}
	}
	maxN, maxBytes := MaxPutRecords, MaxPutBytes
	if lim.records != nil {
		maxN = min(maxN, lim.records.Burst())
	}
	if lim.bytes != nil {
		maxBytes = min(maxBytes, lim.bytes.Burst())
	}
	entries := slices.Grow(lim.entries[:0], min(len(heads), maxN))
	inCall := slices.Grow(lim.inCall[:0], min(len(heads), maxN)) // positions in heads
	defer func() { lim.entries, lim.inCall = entries[:0], inCall[:0] }()
	quiet := 2 * max(p.cfg.RetryMax, p.cfg.BreakerOpenTimeout)
	attempt := 0
	for len(heads) > 0 {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		entries, inCall = entries[:0], inCall[:0]
		size := 0
		for h, i := range heads {
			r := recs[i]
			n := len(r.data) + len(r.key)
			if len(entries) == maxN || (len(entries) > 0 && size+n > maxBytes) {
				break
			}
			size += n
			entries = append(entries, types.PutRecordsRequestEntry{Data: r.data, PartitionKey: &r.key})
			inCall = append(inCall, h)
			if r.attempts > 0 {
				d.retries.Inc()
			}
		}
		if err := p.waitRate(ctx, lim, len(entries), size); err != nil {
			return nil, err
		}
		in := &kinesis.PutRecordsInput{StreamName: &d.name, Records: entries}
		cctx, tracker := ambiguous.Track(ctx)
		out, err := d.cb.Execute(func() (*kinesis.PutRecordsOutput, error) {
			d.calls.Inc()
			out, err := p.kin.PutRecords(cctx, in)
			if err != nil {
				return nil, err
			}
			if len(out.Records) != len(entries) {
				return nil, fmt.Errorf("PutRecords answered %d entries for %d", len(out.Records), len(entries))
			}
			if out.FailedRecordCount != nil && int(*out.FailedRecordCount) >= len(entries) {
				return out, errAllFailed
			}
			return out, nil
		})
		if u := tracker.Unknown(); u > 0 {
			p.unsure(shard, d, recs, heads, inCall, u, err)
		}
		now := p.now()
		if err != nil && !errors.Is(err, errAllFailed) {
			if cerr := ctx.Err(); cerr != nil {
				return nil, cerr
			}
			d.errs.Inc()
			msg := err.Error()
			refused := errors.Is(err, gobreaker.ErrOpenState) || errors.Is(err, gobreaker.ErrTooManyRequests)
			var thr *types.ProvisionedThroughputExceededException
			if errors.As(err, &thr) {
				d.throttles.Add(float64(len(entries)))
			}
			for _, h := range inCall {
				r := recs[heads[h]]
				if refused && r.lastErr != "" {
					r.fail(now, r.lastErr) // keep the destination's own error, not the breaker's refusal
					continue
				}
				r.fail(now, msg)
			}
			broken := d.failed(now, quiet)
			if mayDeadLetter && broken >= p.cfg.BreakerHold {
				return p.giveUp(recs, heads, next, shard, d, broken), nil
			}
			if attempt == 0 || attempt%10 == 0 {
				p.log.Warn("write failed, retrying", zapShard(shard), zapStream(d.name), zapErr(err), zapAttempt(attempt), zap.Duration("broken_for", broken))
			}
			if err := p.backoff(ctx, attempt); err != nil {
				return nil, err
			}
			attempt++
			continue
		}
		progressed, failed := false, false
		for k, h := range inCall {
			i := heads[h]
			r := recs[i]
			e := out.Records[k]
			if e.ErrorCode == nil || *e.ErrorCode == "" {
				r.written = true
				heads[h] = next[i]
				progressed = true
				continue
			}
			failed = true
			msg := *e.ErrorCode
			if e.ErrorMessage != nil {
				msg += ": " + *e.ErrorMessage
			}
			r.fail(now, msg)
			if *e.ErrorCode == throttleCode {
				d.throttles.Inc()
			}
		}
		// Drop the keys whose queue is empty.
		n := 0
		for _, i := range heads {
			if i >= 0 {
				heads[n] = i
				n++
			}
		}
		heads = heads[:n]
		if progressed {
			d.succeeded()
			attempt = 0
		}
		if failed {
			if !progressed {
				broken := d.failed(now, quiet)
				if mayDeadLetter && broken >= p.cfg.BreakerHold {
					return p.giveUp(recs, heads, next, shard, d, broken), nil
				}
			}
			if err := p.backoff(ctx, attempt); err != nil {
				return nil, err
			}
			attempt++
		}
	}
	return nil, nil
}

// LogUnknownOutcome is the message of the warning logged for the records of a write whose outcome
// was unknown; its fields are shard, stream, records (records times attempts: the most extra copies
// the call can have written), attempts and event_ids (the first 50).
const LogUnknownOutcome = "write outcome unknown, records sent again may appear twice"

// unsure counts the records of a call in which attempts ended with an unknown outcome, once per
// such attempt (each may have landed, and every later attempt, by the client or the sink, may add
// one more copy), and logs their event ids: the count bounds the byte-identical copies in the stream.
func (p *Pipeline) unsure(shard string, d *dest, recs []*outRec, heads []int32, inCall []int, attempts int, err error) {
	ids := make([]string, 0, min(len(inCall), 50))
	for _, h := range inCall[:min(len(inCall), 50)] {
		ids = append(ids, recs[heads[h]].eventID())
	}
	n := len(inCall) * attempts
	d.unknown.Add(float64(n))
	p.log.Warn(LogUnknownOutcome, zapShard(shard), zapStream(d.name), zap.Int("records", n),
		zap.Int("attempts", attempts), zap.Strings("event_ids", ids), zap.NamedError("final_error", err))
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

// giveUp marks every record still queued as dead and returns them in order.
func (p *Pipeline) giveUp(recs []*outRec, heads, next []int32, shard string, d *dest, broken time.Duration) []*outRec {
	var dead []*outRec
	for _, i := range heads {
		for ; i >= 0; i = next[i] {
			recs[i].dead = true
			dead = append(dead, recs[i])
		}
	}
	p.log.Error("destination unavailable past the hold, dead-lettering", zapShard(shard), zapStream(d.name),
		zap.Duration("broken_for", broken), zap.Int("records", len(dead)))
	return dead
}

// backoff waits the jittered exponential delay of attempt (0-based), bounded by RetryMax.
func (p *Pipeline) backoff(ctx context.Context, attempt int) error {
	d := p.cfg.RetryBase
	for i := 0; i < attempt && d < p.cfg.RetryMax; i++ {
		d *= 2
	}
	d = min(d, p.cfg.RetryMax)
	half := d / 2
	d = half + time.Duration(p.jitter(int64(d-half)+1))
	return p.sleep(ctx, d)
}
