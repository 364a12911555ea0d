package bench

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/kinesis-events/pipeline/internal/fleet"
)

// LatencyRun is one steady-rate run: latency from the forwarder's put (forwarded_at) to the record's
// arrival in its analytics stream, over every event.
type LatencyRun struct {
	Window             time.Duration // the worker's reorder window (0: off)
	Events             int
	P50, P90, P99, Max time.Duration
	// Gets, Puts and RoundTrips are the worker's DynamoDB dedupe calls per event at this rate.
	Gets, Puts, RoundTrips float64
	Audit                  string
	OK                     bool
}

// LatencyResult compares a gap-free stream's latency with the reorder window off and at 30 s. Each
// window's figures pool two runs of half of Config.LatencyDuration.
type LatencyResult struct {
	Rate     float64
	IdleTime time.Duration
	Off, On  LatencyRun
}

// latency runs the window off, at 30 s, at 30 s, off (each for half of LatencyDuration, on a fresh
// stack), so that a drift of the machine's speed during the run cancels out, and pools each window's
// latencies.
func latency(ctx context.Context, cfg Config) (LatencyResult, error) {
	res := LatencyResult{Rate: cfg.LatencyRate, IdleTime: cfg.IdleTime}
	on := 30 * time.Second
	pooled := map[time.Duration][]time.Duration{}
	runs := map[time.Duration]*LatencyRun{0: &res.Off, on: &res.On}
	for i, window := range []time.Duration{0, on, on, 0} {
		part, lat, err := latencyRun(ctx, cfg, window, i)
		if err != nil {
			return res, err
		}
		r := runs[window]
		first := r.Audit == ""
		r.Window, r.Events = window, r.Events+part.Events
		r.Gets, r.Puts, r.RoundTrips = r.Gets+part.Gets/2, r.Puts+part.Puts/2, r.RoundTrips+part.RoundTrips/2
		r.OK = (first || r.OK) && part.OK
		if !first {
			r.Audit += "; "
		}
		r.Audit += part.Audit
		pooled[window] = append(pooled[window], lat...)
	}
	for window, lat := range pooled {
		r := runs[window]
		slices.Sort(lat)
		r.P50, r.P90, r.P99, r.Max = percentile(lat, 0.50), percentile(lat, 0.90), percentile(lat, 0.99), lat[len(lat)-1]
	}
	return res, nil
}

// latencyRun is one of latency's runs; it returns the run's counts and its latencies.
func latencyRun(ctx context.Context, cfg Config, window time.Duration, n int) (LatencyRun, []time.Duration, error) {
	run := LatencyRun{Window: window}
	d, err := deploy(ctx, cfg, fmt.Sprintf("latency-%d-window-%s", n, window))
	if err != nil {
		return run, nil, err
	}
	defer d.close()
	flag := "-reorder-window=-1ms" // negative: never wait for a missing predecessor
	if window > 0 {
		flag = "-reorder-window=" + window.String()
	}
	w, err := d.startWorker(1, nil, flag, "-idle-time="+cfg.IdleTime.String())
	if err != nil {
		return run, nil, err
	}
	defer w.stop()
	shards := d.env.Topology.RawShards
	if err := poll(ctx, 100*time.Millisecond, w.proc, "the worker to hold every shard", func() (bool, error) {
		return w.ready(ctx, shards), nil
	}); err != nil {
		return run, nil, err
	}
	count := int(cfg.LatencyRate * cfg.LatencyDuration.Seconds() / 2)
	send, err := d.env.Send(fleet.Load{Count: count, Customers: cfg.Customers, Rate: cfg.LatencyRate, Seed: cfg.Seed + int64(n)})
	if err != nil {
		return run, nil, err
	}
	defer send.Stop()
	sent, err := send.Wait(ctx)
	if err != nil {
		return run, nil, fmt.Errorf("loadgen | forwarder: %w", err)
	}
	m := sent.Manifest
	s, err := w.waitDelivered(ctx, m.Unique)
	if err != nil {
		return run, nil, err
	}
	in := s.sum("pipeline_records_in_total")
	run.Gets = s.sum("pipeline_dedupe_round_trips_total", `op="get"`) / in
	run.Puts = s.sum("pipeline_dedupe_round_trips_total", `op="put"`) / in
	run.RoundTrips = run.Gets + run.Puts
	if err := w.stop(); err != nil {
		return run, nil, err
	}
	snap, rep, err := audited(ctx, d, m)
	if err != nil {
		return run, nil, err
	}
	run.Audit, run.OK, run.Events = rep.String(), rep.OK(), len(snap.Latencies)
	lat := slices.Clone(snap.Latencies)
	slices.Sort(lat)
	d.log.Sugar().Infof("latency (window %s): p50 %s p99 %s over %d events", window, percentile(lat, 0.5), percentile(lat, 0.99), len(lat))
	return run, lat, nil
}

// percentile returns the q-quantile of sorted (nearest rank).
func percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}
