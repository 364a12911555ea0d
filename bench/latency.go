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

// LatencyResult compares a gap-free stream's latency with the reorder window off and at 30 s.
type LatencyResult struct {
	Rate     float64
	IdleTime time.Duration
	Off, On  LatencyRun
}

func latency(ctx context.Context, cfg Config) (LatencyResult, error) {
	res := LatencyResult{Rate: cfg.LatencyRate, IdleTime: cfg.IdleTime}
	var err error
	if res.Off, err = latencyRun(ctx, cfg, 0); err != nil {
		return res, err
	}
	res.On, err = latencyRun(ctx, cfg, 30*time.Second)
	return res, err
}

func latencyRun(ctx context.Context, cfg Config, window time.Duration) (LatencyRun, error) {
	run := LatencyRun{Window: window}
	d, err := deploy(ctx, cfg, fmt.Sprintf("latency-window-%s", window))
	if err != nil {
		return run, err
	}
	defer d.close()
	flag := "-reorder-window=-1ms" // negative: never wait for a missing predecessor
	if window > 0 {
		flag = "-reorder-window=" + window.String()
	}
	w, err := d.startWorker(1, nil, flag, "-idle-time="+cfg.IdleTime.String())
	if err != nil {
		return run, err
	}
	defer w.stop()
	shards := d.env.Topology.RawShards
	if err := poll(ctx, 100*time.Millisecond, w.proc, "the worker to hold every shard", func() (bool, error) {
		return w.ready(ctx, shards), nil
	}); err != nil {
		return run, err
	}
	count := int(cfg.LatencyRate * cfg.LatencyDuration.Seconds())
	send, err := d.env.Send(fleet.Load{Count: count, Customers: cfg.Customers, Rate: cfg.LatencyRate, Seed: cfg.Seed})
	if err != nil {
		return run, err
	}
	defer send.Stop()
	sent, err := send.Wait(ctx)
	if err != nil {
		return run, fmt.Errorf("loadgen | forwarder: %w", err)
	}
	m := sent.Manifest
	s, err := w.waitDelivered(ctx, m.Unique)
	if err != nil {
		return run, err
	}
	in := s.sum("pipeline_records_in_total")
	run.Gets = s.sum("pipeline_dedupe_round_trips_total", `op="get"`) / in
	run.Puts = s.sum("pipeline_dedupe_round_trips_total", `op="put"`) / in
	run.RoundTrips = run.Gets + run.Puts
	if err := w.stop(); err != nil {
		return run, err
	}
	snap, rep, err := audited(ctx, d, m)
	if err != nil {
		return run, err
	}
	run.Audit, run.OK, run.Events = rep.String(), rep.OK(), len(snap.Latencies)
	lat := slices.Clone(snap.Latencies)
	slices.Sort(lat)
	run.P50, run.P90, run.P99 = percentile(lat, 0.50), percentile(lat, 0.90), percentile(lat, 0.99)
	if len(lat) > 0 {
		run.Max = lat[len(lat)-1]
	}
	d.log.Sugar().Infof("latency (window %s): p50 %s p99 %s over %d events", window, run.P50, run.P99, len(lat))
	return run, nil
}

// percentile returns the q-quantile of sorted (nearest rank).
func percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}
