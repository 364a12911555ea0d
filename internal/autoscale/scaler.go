package autoscale

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"go.uber.org/zap"

	"github.com/kinesis-events/pipeline/internal/reshard"
)

// Kinesis is the part of the Kinesis API the autoscaler uses. *kinesis.Client implements it.
type Kinesis interface {
	reshard.API
	DescribeLimits(ctx context.Context, in *kinesis.DescribeLimitsInput, optFns ...func(*kinesis.Options)) (*kinesis.DescribeLimitsOutput, error)
}

// Scaler sizes the streams of its Config. One Scaler runs per instance; any number of instances
// may run, the leader lease lets one act.
type Scaler struct {
	cfg   Config
	kin   Kinesis
	store Store
	src   Source
	ecs   ScalingAPI
	m     *metrics
	log   *zap.Logger
}

// New builds a Scaler. ecs may be nil when Config.ECS names no service.
func New(cfg Config, kin Kinesis, ddb DynamoDBAPI, src Source, ecs ScalingAPI) (*Scaler, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if kin == nil || ddb == nil || src == nil {
		return nil, errors.New("autoscale: Kinesis, DynamoDB and a metrics source are required")
	}
	if cfg.ECS.ResourceID != "" && ecs == nil {
		return nil, fmt.Errorf("autoscale: ECS service %s needs an Application Auto Scaling client", cfg.ECS.ResourceID)
	}
	return &Scaler{cfg: cfg, kin: kin, store: Store{DDB: ddb, Table: cfg.Table}, src: src, ecs: ecs,
		m: newMetrics(cfg.Registerer), log: cfg.Logger.With(zap.String("worker", cfg.ID))}, nil
}

// TickReport is what one tick saw and did.
type TickReport struct {
	At        time.Time  `json:"at"`
	Leader    bool       `json:"leader"`    // this instance led the tick
	LeaderID  string     `json:"leader_id"` // who leads
	Decisions []Decision `json:"decisions"` // one per stream, in Config.Streams order
	Fleet     *Fleet     `json:"fleet,omitempty"`
}

type plan struct {
	view    View
	d       Decision
	h       History
	version int64
	act     bool // the decision was committed and asks for a reshard
	live    int  // open shards, and closed ones the fleet has not finished (when Config.Shards says)
}

// Tick runs one round: take or renew the leader lease (a follower stops there), read the load,
// decide per stream, commit each decision to its state row, run the reshards (concurrently, one
// per stream), and size the fleet. Errors of one stream do not stop the others; Tick returns them
// joined.
func (s *Scaler) Tick(ctx context.Context) (TickReport, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.TickTimeout)
	defer cancel()
	now := s.cfg.Now()
	ok, lead, err := s.store.Acquire(ctx, s.cfg.ID, now, s.cfg.LeaderTTL)
	if err != nil {
		s.m.ticks.WithLabelValues("error").Inc()
		return TickReport{At: now}, err
	}
	rep := TickReport{At: now, Leader: ok, LeaderID: lead.ID}
	if !ok {
		s.m.leader.Set(0)
		s.m.ticks.WithLabelValues("follower").Inc()
		s.log.Debug("another instance leads", zap.String("leader", lead.ID), zap.Time("until", lead.Until))
		return rep, nil
	}
	s.m.leader.Set(1)
	stop := s.keepLease(ctx)
	defer stop()

	w, err := s.src.Load(ctx, s.cfg.Streams, now.Add(-s.cfg.Policy.InWindow), now)
	if err != nil {
		s.m.ticks.WithLabelValues("error").Inc()
		return rep, fmt.Errorf("read the write load: %w", err)
	}
	var errs []error
	var fleet *FleetView
	if s.cfg.Fleet != nil {
		f, err := s.cfg.Fleet(ctx, s.cfg.RawStream)
		if err != nil {
			errs = append(errs, fmt.Errorf("stream %s: the fleet's view: %w", s.cfg.RawStream, err))
		} else {
			fleet = &f
		}
	}
	plans := make([]*plan, 0, len(s.cfg.Streams))
	for _, stream := range s.cfg.Streams {
		p, err := s.observe(ctx, now, stream, w, fleet)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		plans = append(plans, p)
	}
	headroom := s.headroom(ctx, plans)
	for _, p := range plans {
		p.view.AccountHeadroom = headroom
		if err := s.decide(ctx, now, p); err != nil {
			errs = append(errs, err)
		}
		if p.act && p.d.Action == ActionOut && headroom >= 0 {
			headroom -= p.d.To - p.d.From
		}
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	for _, p := range plans {
		if !p.act {
			continue
		}
		wg.Go(func() {
			if err := s.apply(ctx, p); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	rawLive := -1
	for _, p := range plans {
		rep.Decisions = append(rep.Decisions, p.d)
		if p.view.Stream != s.cfg.RawStream {
			continue
		}
		rawLive = p.live
		if !p.d.Applied {
			continue
		}
		rawLive = p.d.To // open shards after the reshard; the closed parents count too, below
		if s.cfg.Fleet != nil {
			if f, err := s.cfg.Fleet(ctx, s.cfg.RawStream); err == nil {
				rawLive = f.Live
			} else {
				errs = append(errs, fmt.Errorf("stream %s: the fleet's shards after the reshard: %w", s.cfg.RawStream, err))
			}
		}
	}
	if rawLive >= 0 {
		f, err := s.fleet(ctx, now, rawLive)
		if err != nil {
			errs = append(errs, err)
		}
		rep.Fleet = &f
	}
	err = errors.Join(errs...)
	result := "leader"
	if err != nil {
		result = "error"
	}
	s.m.ticks.WithLabelValues(result).Inc()
	return rep, err
}

// keepLease renews the leader lease while a tick runs (reshards can take minutes on AWS).
func (s *Scaler) keepLease(ctx context.Context) func() {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(s.cfg.LeaderTTL / 3)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if ok, lead, err := s.store.Acquire(ctx, s.cfg.ID, s.cfg.Now(), s.cfg.LeaderTTL); err != nil || !ok {
					s.log.Warn("could not renew the leader lease during a tick", zap.String("leader", lead.ID), zap.Error(err))
				}
			}
		}
	}()
	return func() { cancel(); <-done }
}

// observe reads a stream's state row, status and shards.
func (s *Scaler) observe(ctx context.Context, now time.Time, stream string, w Window, fleet *FleetView) (*plan, error) {
	h, version, err := s.store.Load(ctx, stream)
	if err != nil {
		return nil, err
	}
	if h.Since.IsZero() {
		h.Since = now
	}
	sum, err := s.kin.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(stream)})
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", stream, err)
	}
	all, err := reshard.ListAll(ctx, s.kin, stream)
	if err != nil {
		return nil, err
	}
	d := sum.StreamDescriptionSummary
	v := View{Stream: stream, Status: string(d.StreamStatus), Open: reshard.OpenRanges(all),
		Samples: w.Samples[stream], From: w.From, To: w.To, AccountHeadroom: -1, SplitMerge: s.cfg.Method == reshard.MethodSplitMerge,
		Draining: -1}
	live := len(v.Open)
	v.FleetUnknown = s.cfg.Fleet != nil && fleet == nil
	if fleet != nil {
		v.Behind = fleet.Behind
		if stream == s.cfg.RawStream {
			live, v.Draining = fleet.Live, fleet.Draining
		}
	}
	v.OnDemand = d.StreamModeDetails != nil && d.StreamModeDetails.StreamMode == types.StreamModeOnDemand
	return &plan{view: v, h: h, version: version, live: live}, nil
}

// headroom is how many more open shards the account allows: DescribeLimits (bounded by
// Config.AccountShardLimit when set), or the configured limit less the open shards of the
// configured streams where the endpoint lacks DescribeLimits; -1 when neither is known.
func (s *Scaler) headroom(ctx context.Context, plans []*plan) int {
	out, err := s.kin.DescribeLimits(ctx, &kinesis.DescribeLimitsInput{})
	if err == nil {
		limit := int(aws.ToInt32(out.ShardLimit))
		if s.cfg.AccountShardLimit > 0 {
			limit = min(limit, s.cfg.AccountShardLimit)
		}
		return max(0, limit-int(aws.ToInt32(out.OpenShardCount)))
	}
	if s.cfg.AccountShardLimit == 0 {
		return -1
	}
	open := 0
	for _, p := range plans {
		open += len(p.view.Open)
	}
	return max(0, s.cfg.AccountShardLimit-open)
}

// decide runs Decide, records the decision, and commits it to the state row; p.act is set when a
// reshard is to run.
func (s *Scaler) decide(ctx context.Context, now time.Time, p *plan) error {
	d := Decide(now, s.cfg.Policy, p.view, p.h)
	p.d = d
	stream := p.view.Stream
	s.m.decisions.WithLabelValues(stream, d.Action).Inc()
	s.m.shards.WithLabelValues(stream).Set(float64(d.From))
	s.m.target.WithLabelValues(stream).Set(float64(d.To))
	s.m.util.WithLabelValues(stream).Set(d.Util)
	s.m.records.WithLabelValues(stream).Set(d.Load.Records)
	s.m.bytes.WithLabelValues(stream).Set(d.Load.Bytes)
	s.m.throttled.WithLabelValues(stream).Set(d.Load.Throttled)
	reshards := d.Action == ActionOut || d.Action == ActionIn
	left := d.CallsLeft
	if reshards {
		left--
	}
	s.m.callsLeft.WithLabelValues(stream).Set(float64(left))
	fields := []zap.Field{zap.String("stream", stream), zap.String("action", d.Action), zap.Int("from", d.From), zap.Int("to", d.To),
		zap.String("reason", d.Reason), zap.Float64("utilisation", d.Util), zap.Float64("records_per_s", d.Load.Records),
		zap.Float64("throttled_per_s", d.Load.Throttled), zap.Int("calls_left", left)}
	if d.Action == ActionHold {
		s.log.Debug("autoscale decision", fields...)
	} else {
		s.log.Info("autoscale decision", fields...)
	}
	p.h = record(p.h, d, s.cfg.History)
	if reshards {
		p.h.Calls = append(recent(p.h.Calls, now), now)
	}
	ok, err := s.store.Save(ctx, stream, p.h, p.version)
	if err != nil {
		return err
	}
	if !ok {
		s.log.Warn("state row changed under this tick: another instance acted; not resharding", zap.String("stream", stream))
		return nil
	}
	p.version++
	p.act = reshards
	return nil
}

// apply runs a committed reshard and records its outcome.
func (s *Scaler) apply(ctx context.Context, p *plan) error {
	stream := p.view.Stream
	began := s.cfg.Now()
	rep, err := reshard.Run(ctx, s.kin, reshard.Options{Stream: stream, Target: p.d.To, Method: s.cfg.Method, Apply: true,
		Poll: s.cfg.ReshardPoll, Now: s.cfg.Now})
	end := s.cfg.Now()
	p.d.Applied, p.d.Method, p.d.TookMS = err == nil, rep.Method, end.Sub(began).Milliseconds()
	direction, result := "out", "ok"
	if p.d.Action == ActionIn {
		direction = "in"
	}
	if err != nil {
		p.d.Error, result = err.Error(), "error"
		s.log.Error("reshard failed", zap.String("stream", stream), zap.Int("from", p.d.From), zap.Int("to", p.d.To), zap.Error(err))
	} else {
		s.log.Info("resharded", zap.String("stream", stream), zap.Int("from", p.d.From), zap.Int("to", p.d.To),
			zap.String("method", rep.Method), zap.Int("steps", len(rep.Steps)), zap.Duration("took", end.Sub(began)))
	}
	s.m.reshards.WithLabelValues(stream, direction, result).Inc()
	p.h.LastReshard = end
	if rep.Applied && rep.Method != "" {
		p.h.Method = rep.Method
	}
	p.h.Last = &p.d
	if n := len(p.h.Decisions); n > 0 && p.h.Decisions[n-1].At.Equal(p.d.At) {
		p.h.Decisions[n-1] = p.d
	}
	ok, serr := s.store.Save(ctx, stream, p.h, p.version)
	if serr == nil && !ok {
		serr = fmt.Errorf("stream %s: state row changed while resharding; the outcome is in the log only", stream)
	}
	return errors.Join(err, serr)
}

// fleet sizes the worker fleet for the raw stream's live shards and, with an ECS service, sets
// its scalable target's maximum; the fleet row is written when something changed.
func (s *Scaler) fleet(ctx context.Context, now time.Time, rawLive int) (Fleet, error) {
	f := Fleet{At: now, OpenShards: rawLive, Workers: s.cfg.Workers.Workers(rawLive)}
	s.m.maxWorkers.Set(float64(f.Workers))
	var ferr error
	if s.cfg.ECS.ResourceID != "" {
		f.ResourceID, f.MaxAfter = s.cfg.ECS.ResourceID, f.Workers
		before, err := followShards(ctx, s.ecs, s.cfg.ECS.ResourceID, s.cfg.Workers.MinWorkers, f.Workers)
		f.MaxBefore = before
		if err != nil {
			f.Error, f.MaxAfter, ferr = err.Error(), before, err
			s.log.Error("could not set the fleet's task maximum", zap.Int("workers", f.Workers), zap.Error(err))
		} else if before != f.Workers {
			s.log.Info("fleet task maximum follows the raw stream", zap.String("stream", s.cfg.RawStream), zap.Int("live_shards", rawLive),
				zap.Int("max_before", before), zap.Int("max_after", f.Workers))
		}
	}
	old, version, err := s.store.LoadFleet(ctx)
	if err != nil {
		return f, errors.Join(ferr, err)
	}
	if version > 0 && old.OpenShards == f.OpenShards && old.Workers == f.Workers && old.MaxAfter == f.MaxAfter && old.Error == f.Error {
		return old, ferr
	}
	if _, err := s.store.SaveFleet(ctx, f, version); err != nil {
		return f, errors.Join(ferr, err)
	}
	return f, ferr
}

// Run ticks every Config.Interval until ctx ends, then gives the leader lease up (so another
// instance can take over at once). A failed tick is logged and the next one tried.
func (s *Scaler) Run(ctx context.Context) error {
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := s.store.Release(rctx, s.cfg.ID, s.cfg.Now()); err != nil {
			s.log.Warn("could not release the leader lease", zap.Error(err))
		}
		s.m.leader.Set(0)
	}()
	t := time.NewTicker(s.cfg.Interval)
	defer t.Stop()
	for {
		if _, err := s.Tick(ctx); err != nil && ctx.Err() == nil {
			s.log.Error("autoscale tick failed", zap.Error(err))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// record notes d in h: always as the latest decision; in the history when it reshards, or when it
// is the first of a run of refusals (blocked) or watches (the previous decision was another).
func record(h History, d Decision, keep int) History {
	prev := h.Last
	h.Last = &d
	switch d.Action {
	case ActionOut, ActionIn:
	case ActionBlocked, ActionWatch:
		if prev != nil && prev.Action == d.Action {
			return h
		}
	default:
		return h
	}
	h.Decisions = append(h.Decisions, d)
	if len(h.Decisions) > keep {
		h.Decisions = append([]Decision(nil), h.Decisions[len(h.Decisions)-keep:]...)
	}
	return h
}

// recent keeps the calls of the last 24 h.
func recent(calls []time.Time, now time.Time) []time.Time {
	out := calls[:0:0]
	for _, c := range calls {
		if now.Sub(c) < 24*time.Hour {
			out = append(out, c)
		}
	}
	return out
}
