package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/kinesis-events/pipeline/event"
	"github.com/kinesis-events/pipeline/internal/audit"
	"github.com/kinesis-events/pipeline/internal/faultproxy"
	"github.com/kinesis-events/pipeline/internal/fleet"
	"github.com/kinesis-events/pipeline/internal/loadgen"
	"github.com/kinesis-events/pipeline/internal/retry"
)

// HotStep is one rate of the hot-customer ladder.
type HotStep struct {
	// Rate is the hot customer's events/s asked for; Sent what the producer sent over the step
	// (events/s), Delivered what reached the analytics stream over it (first deliveries, events/s).
	Rate, Sent, Delivered float64
	// MaxLag is the hot customer's largest lag over the second half of the step: arrival in the
	// analytics stream minus when the producer made it (so a producer that falls behind the asked
	// rate on a busy machine shows in Sent, not in the lag), over the events made in that half.
	// EndLag is the lag when sending stopped: the age then of its oldest event not yet arrived.
	MaxLag, EndLag time.Duration
	// KeptUp: MaxLag stayed within Config.HotLagBound.
	KeptUp bool
	// CallsPerEvent is the worker's PutRecords calls to the hot customer's stream per hot event of
	// the step (the other customers' records of that stream ride in the same calls).
	CallsPerEvent float64
}

// HotMode is the ladder of one setting of the worker's AGGREGATE_KEYS.
type HotMode struct {
	Aggregate bool
	Steps     []HotStep
	// KeptUp is the highest rate that kept up (0: not even the first); Saturated says a higher
	// rate did not (otherwise KeptUp is the ladder's top and only a floor).
	KeptUp    float64
	Saturated bool
	// Aggregated is the worker's pipeline_put_aggregated_records_total at the end.
	Aggregated float64
	// Unsure is the worker's pipeline_put_unknown_outcome_total (the resent writes allowed).
	Unsure int
	Audit  string
	OK     bool
}

// HotResult is the hot-customer scenario (issue 13): one customer at a fixed rate among many slow
// ones, every PutRecords of the worker to an analytics stream delayed by RTT at a fault proxy (AWS's
// round trip, which the local emulator does not have), the rate raised until the customer's lag no
// longer stays bounded, without and with aggregation.
type HotResult struct {
	RTT      time.Duration
	Cold     int
	ColdRate float64
	Step     time.Duration
	LagBound time.Duration
	Plain    HotMode
	Agg      HotMode
}

// hot runs the ladder without aggregation, then with it, each on a fresh stack.
func hot(ctx context.Context, cfg Config) (HotResult, error) {
	res := HotResult{RTT: cfg.HotRTT, Cold: cfg.HotCold, ColdRate: cfg.HotColdRate, Step: cfg.HotStep, LagBound: cfg.HotLagBound}
	var err error
	if res.Plain, err = hotMode(ctx, cfg, false); err != nil {
		return res, err
	}
	res.Agg, err = hotMode(ctx, cfg, true)
	return res, err
}

// hotMode runs the ladder for one setting: HotRates in turn while the hot customer keeps up, then
// HotRefine steps between the last rate kept up and the first that was not (nextHotRate). Every step starts caught up: after it, sending pauses until the hot customer's
// events are all delivered. At the end the output is audited: exactly once, in order.
func hotMode(ctx context.Context, cfg Config, aggregate bool) (HotMode, error) {
	mode := HotMode{Aggregate: aggregate}
	name := "hot-plain"
	if aggregate {
		name = "hot-aggregated"
	}
	d, err := deploy(ctx, cfg, name)
	if err != nil {
		return mode, err
	}
	defer d.close()
	px, err := faultproxy.Start(ctx, faultproxy.Config{Upstream: d.st.KinesisEndpoint})
	if err != nil {
		return mode, err
	}
	defer px.Close()
	for _, s := range append(d.env.Topology.AnalyticsStreams(), fleet.LateStream) {
		px.Set("rtt-"+s, faultproxy.Rule{Operation: "PutRecords", Stream: s, Delay: cfg.HotRTT})
	}
	w, err := d.startWorker(1, []string{"AWS_ENDPOINT_URL_KINESIS=" + px.URL()},
		"-aggregate-keys="+strconv.FormatBool(aggregate), "-idle-time="+cfg.IdleTime.String())
	if err != nil {
		return mode, err
	}
	defer w.stop()
	if err := poll(ctx, 100*time.Millisecond, w.proc, "the worker to hold every shard", func() (bool, error) {
		return w.ready(ctx, d.env.Topology.RawShards), nil
	}); err != nil {
		return mode, err
	}
	p, err := newHotProducer(d, cfg)
	if err != nil {
		return mode, err
	}
	tail := d.env.NewTail(d.st.Kinesis())
	tail.Follow(p.hot)
	tctx, stopTail := context.WithCancel(ctx)
	tailErr := make(chan error, 1)
	go func() { tailErr <- tail.Run(tctx, 200*time.Millisecond) }()
	defer func() {
		stopTail()
		<-tailErr
	}()

	for {
		rate, ok := nextHotRate(cfg.HotRates, cfg.HotRefine, mode.Steps)
		if !ok {
			break
		}
		st, err := hotStep(ctx, cfg, d, w, p, tail, rate)
		if err != nil {
			return mode, err
		}
		mode.Steps = append(mode.Steps, st)
		d.log.Sugar().Infof("%s: %.0f events/s: sent %.0f/s, delivered %.0f/s, max lag %s, kept up %v, %.2f calls per event",
			name, rate, st.Sent, st.Delivered, st.MaxLag.Round(time.Millisecond), st.KeptUp, st.CallsPerEvent)
	}
	mode.KeptUp, mode.Saturated = hotBounds(mode.Steps)

	// Everything sent delivered, then the audit.
	want := len(p.expected)
	if err := poll(ctx, 200*time.Millisecond, w.proc, fmt.Sprintf("%d events in the analytics streams", want), func() (bool, error) {
		return tail.Snapshot().Unique >= want, nil
	}); err != nil {
		return mode, err
	}
	s, err := w.scrape(ctx)
	if err != nil {
		return mode, err
	}
	mode.Aggregated = s.sum("pipeline_put_aggregated_records_total")
	mode.Unsure = int(s.sum("pipeline_put_unknown_outcome_total"))
	if err := w.stop(); err != nil {
		return mode, err
	}
	if err := tail.Poll(ctx); err != nil {
		return mode, fmt.Errorf("reading the output streams: %w", err)
	}
	rep := tail.Check(p.expected)
	mode.Audit, mode.OK = rep.String(), rep.OKWithResent(mode.Unsure)
	return mode, nil
}

// hotBounds returns the highest rate kept up (0: none) and whether a rate was not kept up.
func hotBounds(steps []HotStep) (keptUp float64, saturated bool) {
	for _, st := range steps {
		if st.KeptUp {
			keptUp = max(keptUp, st.Rate)
		} else {
			saturated = true
		}
	}
	return keptUp, saturated
}

// nextHotRate decides the ladder's next rate from the steps so far: the next of rates (ascending)
// while every step kept up; after the first that did not, up to refine steps at the geometric mean
// of the highest rate kept up and the lowest not kept up (rounded; none when that falls on either,
// or when not even the first rate kept up). ok is false when the ladder is done.
func nextHotRate(rates []float64, refine int, steps []HotStep) (rate float64, ok bool) {
	failedAt := slices.IndexFunc(steps, func(st HotStep) bool { return !st.KeptUp })
	if failedAt < 0 {
		if len(steps) < len(rates) {
			return rates[len(steps)], true
		}
		return 0, false
	}
	lastOK, firstFail := 0.0, math.Inf(1)
	for _, st := range steps {
		if st.KeptUp {
			lastOK = max(lastOK, st.Rate)
		} else {
			firstFail = min(firstFail, st.Rate)
		}
	}
	if refined := len(steps) - failedAt - 1; lastOK == 0 || refined >= refine {
		return 0, false
	}
	rate = math.Round(math.Sqrt(lastOK * firstFail))
	if rate <= lastOK || rate >= firstFail {
		return 0, false
	}
	return rate, true
}

// hotStep sends the hot customer at rate and the others at their rate for cfg.HotStep, waits until
// the hot customer's events are all delivered, then takes the step's figures from their arrival
// times in the analytics stream (when the worker's write landed, not when the audit tail read it:
// the tail shares the machine and may lag on its own).
func hotStep(ctx context.Context, cfg Config, d *deployment, w *worker, p *hotProducer, tail *audit.Tail, rate float64) (HotStep, error) {
	st := HotStep{Rate: rate}
	before, err := w.scrape(ctx)
	if err != nil {
		return st, err
	}
	hotStream := "analytics-" + hotType
	callsBefore := before.sum("pipeline_put_calls_total", `stream="`+hotStream+`"`)
	firstSeq := p.hotSent() + 1

	start := time.Now()
	sendErr := make(chan error, 1)
	go func() {
		sendErr <- p.send(ctx, start, start.Add(cfg.HotStep), rate, float64(cfg.HotCold)*cfg.HotColdRate)
	}()
	select {
	case <-w.proc.Done():
		return st, fmt.Errorf("worker exited: %v; log tail:\n%s", w.proc.Err(), logTail(w.proc.LogPath, 20))
	case err := <-sendErr:
		if err != nil {
			return st, fmt.Errorf("sending: %w", err)
		}
	}
	end := time.Now()
	last := p.hotSent()
	if err := poll(ctx, 100*time.Millisecond, w.proc, "the hot customer's events delivered", func() (bool, error) {
		_, ok := tail.ArrivedAt(last)
		return ok && tail.LastSeq(p.hot) >= last, nil
	}); err != nil {
		return st, err
	}
	after, err := w.scrape(ctx)
	if err != nil {
		return st, err
	}
	arrivals := make([]time.Time, 0, last-firstSeq+1)
	for seq := firstSeq; seq <= last; seq++ {
		at, ok := tail.ArrivedAt(seq)
		if !ok {
			return st, fmt.Errorf("hot customer's seq %d delivered in order but its arrival not read", seq)
		}
		arrivals = append(arrivals, at)
	}
	st.Sent, st.Delivered, st.MaxLag, st.EndLag = p.stepFigures(firstSeq, arrivals, start, end, cfg.HotStep/2)
	st.KeptUp = st.MaxLag <= cfg.HotLagBound
	if n := len(arrivals); n > 0 {
		st.CallsPerEvent = (after.sum("pipeline_put_calls_total", `stream="`+hotStream+`"`) - callsBefore) / float64(n)
	}
	return st, nil
}

// stepFigures computes one step's figures from the arrival times of the hot customer's events
// firstSeq, firstSeq+1, … sent between start and end: the rates sent and delivered within the step
// (events/s), the largest lag (arrival - made) of the events made from settle after start on, and the
// lag at end (the age then of the oldest event not yet arrived; 0 when all had).
func (p *hotProducer) stepFigures(firstSeq uint64, arrivals []time.Time, start, end time.Time, settle time.Duration) (sent, delivered float64, maxLag, endLag time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	el := end.Sub(start).Seconds()
	var in int
	for i, at := range arrivals {
		due := p.due[firstSeq-1+uint64(i)]
		if !at.After(end) {
			in++
		} else if endLag == 0 {
			endLag = max(0, end.Sub(due))
		}
		if due.Sub(start) >= settle {
			maxLag = max(maxLag, at.Sub(due))
		}
	}
	return float64(len(arrivals)) / el, float64(in) / el, max(maxLag, endLag), endLag
}

// hotType is the type of every event of the hot customer (one stream, one order to follow).
const hotType = "page_view"

// hotProducer writes signed raw records straight into the raw stream, as the forwarder would: the
// forwarder's own per-customer rule (one record of a customer in flight) would cap the hot
// customer at one record per emulator round trip before the worker is reached, which is not what
// is measured here (on AWS the forwarder is a Lambda function per event).
type hotProducer struct {
	kc       *kinesis.Client
	keys     *event.Keyring
	hot      string
	cold     []string
	coldSeq  []uint64
	coldNext int
	expected []audit.Expected

	mu  sync.Mutex
	due []time.Time // due[i]: when the hot customer's seq i+1 was made (just before it was written)
}

func newHotProducer(d *deployment, cfg Config) (*hotProducer, error) {
	b, err := os.ReadFile(d.env.KeysFile)
	if err != nil {
		return nil, err
	}
	keys, err := event.ParseKeys(b)
	if err != nil {
		return nil, err
	}
	ring, err := event.NewKeyring(keys...)
	if err != nil {
		return nil, err
	}
	tok := loadgen.DevTokenizer()
	p := &hotProducer{kc: d.st.Kinesis(), keys: ring, hot: tok.Token("customer", "hot-customer")}
	for i := range cfg.HotCold {
		p.cold = append(p.cold, tok.Token("customer", "customer-"+strconv.Itoa(i+1)))
	}
	p.coldSeq = make([]uint64, cfg.HotCold)
	return p, nil
}

func (p *hotProducer) hotSent() uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return uint64(len(p.due))
}

// send writes the hot customer's events at hotRate and the others' at coldRate (in all, round robin
// over the customers) from start until until, or until ctx ends (with its error). Every event it
// made is written when it returns nil.
func (p *hotProducer) send(ctx context.Context, start, until time.Time, hotRate, coldRate float64) error {
	hotFrom := p.hotSent()
	var coldSent uint64
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		var now time.Time
		select {
		case <-ctx.Done():
			return ctx.Err()
		case now = <-tick.C:
		}
		if !now.Before(until) {
			return nil
		}
		el := now.Sub(start).Seconds()
		var batch []types.PutRecordsRequestEntry
		for n := uint64(hotRate * el); p.hotSent()-hotFrom < n; {
			due := time.Now() // made now; its time by the rate may have passed on a busy machine
			seq := p.hotSent() + 1
			e, err := p.record(p.hot, "hot-"+strconv.FormatUint(seq, 10), hotType, seq)
			if err != nil {
				return err
			}
			batch = append(batch, e)
			p.mu.Lock()
			p.due = append(p.due, due)
			p.mu.Unlock()
		}
		for n := uint64(coldRate * el); coldSent < n; coldSent++ {
			c := p.coldNext
			p.coldNext = (p.coldNext + 1) % len(p.cold)
			p.coldSeq[c]++
			seq := p.coldSeq[c]
			typ := fleet.Types[int(seq)%len(fleet.Types)]
			e, err := p.record(p.cold[c], fmt.Sprintf("c%d-%d", c+1, seq), typ, seq)
			if err != nil {
				return err
			}
			batch = append(batch, e)
		}
		for len(batch) > 0 {
			n := min(len(batch), 500)
			if err := p.put(ctx, batch[:n]); err != nil {
				return err
			}
			batch = batch[n:]
		}
	}
}

// record builds one signed raw record and notes it as expected.
func (p *hotProducer) record(customer, id, typ string, seq uint64) (types.PutRecordsRequestEntry, error) {
	now := time.Now().UTC()
	d := &event.Detail{EventID: id, CustomerID: customer, Seq: seq, OccurredAt: now.Format(time.RFC3339Nano), Properties: json.RawMessage(`{}`)}
	if err := p.keys.Sign(typ, d, fleet.DevKeyID); err != nil {
		return types.PutRecordsRequestEntry{}, err
	}
	detail, err := json.Marshal(d)
	if err != nil {
		return types.PutRecordsRequestEntry{}, err
	}
	raw, err := json.Marshal(event.Raw{V: event.RawVersion, Type: typ, Source: "bench.hot", ForwardedAt: now, Detail: detail})
	if err != nil {
		return types.PutRecordsRequestEntry{}, err
	}
	p.expected = append(p.expected, audit.Expected{EventID: id, Type: typ, CustomerID: customer, Seq: seq})
	return types.PutRecordsRequestEntry{Data: raw, PartitionKey: aws.String(customer)}, nil
}

// put writes entries to the raw stream, sending failed entries again with a bounded backoff (the
// worker's reorder window puts a customer's events back in order should a retry land one behind a
// later one).
func (p *hotProducer) put(ctx context.Context, entries []types.PutRecordsRequestEntry) error {
	b := retry.Policy{Initial: 20 * time.Millisecond, Max: time.Second, MaxAttempts: 10}.Start()
	for len(entries) > 0 {
		out, err := p.kc.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String(fleet.RawStream), Records: entries})
		if err != nil {
			return fmt.Errorf("put to %s: %w", fleet.RawStream, err)
		}
		var failed []types.PutRecordsRequestEntry
		for i, e := range out.Records {
			if e.ErrorCode != nil && *e.ErrorCode != "" {
				failed = append(failed, entries[i])
			}
		}
		if entries = failed; len(entries) > 0 {
			if err := b.Wait(ctx); err != nil {
				return fmt.Errorf("put to %s: %d records not written: %w", fleet.RawStream, len(entries), err)
			}
		}
	}
	return nil
}
