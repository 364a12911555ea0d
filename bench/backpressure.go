package bench

import (
	"context"
	"fmt"
	"time"

	"github.com/kinesis-events/pipeline/internal/faultproxy"
	"github.com/kinesis-events/pipeline/internal/fleet"
)

// BackpressureResult is the worker's memory while every analytics stream refuses writes and events
// keep arriving.
type BackpressureResult struct {
	Rate float64       // events/s sent throughout
	Open time.Duration // how long every PutRecords to an analytics stream failed (503)
	// StartRSS is the resident set when the outage began; Peak the highest resident set of the whole
	// process life (VmHWM) at the outage's end; Growth the RSS at the end minus the RSS a quarter
	// into the outage (QuarterRSS; flat: close to zero).
	StartRSS, PeakRSS, EndRSS, Growth, QuarterRSS int64
	Samples                                       []RSSSample
	// Refused is the PutRecords calls the proxy failed; DeadLettered the records the worker gave up
	// on (after its breaker hold) and wrote to the DLQ; Recovered says the worker delivered again
	// once the streams were healthy.
	Refused      int64
	DeadLettered float64
	Recovered    bool
}

// RSSSample is the worker's resident set at one instant of the outage.
type RSSSample struct {
	At  time.Duration // since the outage began
	RSS int64
}

func backpressure(ctx context.Context, cfg Config) (BackpressureResult, error) {
	res := BackpressureResult{Rate: cfg.BackpressureRate, Open: cfg.BreakerOpen}
	d, err := deploy(ctx, cfg, "backpressure")
	if err != nil {
		return res, err
	}
	defer d.close()
	px, err := faultproxy.Start(ctx, faultproxy.Config{Upstream: d.st.KinesisEndpoint})
	if err != nil {
		return res, err
	}
	defer px.Close()
	w, err := d.startWorker(1, []string{"AWS_ENDPOINT_URL_KINESIS=" + px.URL()})
	if err != nil {
		return res, err
	}
	defer w.stop()
	if err := poll(ctx, 100*time.Millisecond, w.proc, "the worker to hold every shard", func() (bool, error) {
		return w.ready(ctx, d.env.Topology.RawShards), nil
	}); err != nil {
		return res, err
	}
	total := int(cfg.BackpressureRate * (2*cfg.Warmup + cfg.BreakerOpen + time.Minute).Seconds())
	send, err := d.env.Send(fleet.Load{Count: total, Customers: cfg.Customers, Rate: cfg.BackpressureRate, Seed: cfg.Seed})
	if err != nil {
		return res, err
	}
	defer send.Stop()
	// Healthy first: the worker must be delivering before the outage.
	if err := poll(ctx, 100*time.Millisecond, w.proc, "deliveries before the outage", func() (bool, error) {
		s, err := w.scrape(ctx)
		return err == nil && s.sum("pipeline_records_out_total") >= cfg.BackpressureRate*cfg.Warmup.Seconds()/2, nil
	}); err != nil {
		return res, err
	}
	streams := d.env.Topology.AnalyticsStreams()
	for _, s := range streams {
		px.Set("down-"+s, faultproxy.Rule{Operation: "PutRecords", Stream: s, Fault: faultproxy.FailCall})
	}
	start := time.Now()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		ps, err := readProcStat(w.proc.PID())
		if err != nil {
			return res, fmt.Errorf("worker memory: %w", err)
		}
		at := time.Since(start)
		res.Samples = append(res.Samples, RSSSample{At: at, RSS: ps.RSS})
		if res.StartRSS == 0 {
			res.StartRSS = ps.RSS
		}
		if at >= cfg.BreakerOpen {
			res.PeakRSS, res.EndRSS = ps.HWM, ps.RSS
			break
		}
		select {
		case <-ctx.Done():
			return res, ctx.Err()
		case <-w.proc.Done():
			return res, fmt.Errorf("worker exited during the outage: %v; log tail:\n%s", w.proc.Err(), logTail(w.proc.LogPath, 20))
		case <-tick.C:
		}
	}
	res.QuarterRSS = res.Samples[len(res.Samples)/4].RSS
	res.Growth = res.EndRSS - res.QuarterRSS
	for _, s := range streams {
		res.Refused += px.Counts("PutRecords", s).Faulted
		px.Remove("down-" + s)
	}
	before, err := w.scrape(ctx)
	if err != nil {
		return res, err
	}
	outBefore := before.sum("pipeline_records_out_total")
	rctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	err = poll(rctx, 200*time.Millisecond, w.proc, "deliveries after the outage", func() (bool, error) {
		s, err := w.scrape(rctx)
		if err != nil {
			return false, nil
		}
		res.DeadLettered = s.sum("pipeline_dead_lettered_total")
		return s.sum("pipeline_records_out_total") > outBefore, nil
	})
	res.Recovered = err == nil
	d.log.Sugar().Infof("backpressure: RSS %d MiB at the outage start, %d MiB at its end, peak %d MiB; recovered %v",
		res.StartRSS>>20, res.EndRSS>>20, res.PeakRSS>>20, res.Recovered)
	return res, nil
}
