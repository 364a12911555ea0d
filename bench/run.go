package bench

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/kinesis-events/pipeline/internal/fleet"
	"github.com/kinesis-events/pipeline/internal/loadgen"
)

// Run executes the scenarios cfg selects, one after the other, and returns their figures. A scenario
// that fails is recorded in Report.Errors and the others still run; the error is non-nil when any
// failed. inProcess (may be nil) is the parsed output of the in-process benchmarks of the same run.
func Run(ctx context.Context, cfg Config, inProcess InProcess) (*Report, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := checkBinaries(cfg.Bin); err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	if cfg.Dir == "" {
		dir, err := os.MkdirTemp("", "bench-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
		cfg.Dir = dir
	}
	rep := &Report{Started: time.Now(), Machine: machine(), InProcess: inProcess, Errors: map[string]string{}}
	log := cfg.Logger.Sugar()
	step := func(name string, fn func(ctx context.Context) error) {
		if !cfg.wants(name) || ctx.Err() != nil {
			return
		}
		log.Infof("scenario %s", name)
		timeout := cfg.Timeout
		if name == ScenarioHot {
			timeout = cfg.HotTimeout
		}
		sctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		if err := fn(sctx); err != nil {
			rep.Errors[name] = err.Error()
			log.Errorf("scenario %s: %v", name, err)
		}
	}

	step(ScenarioIngest, func(ctx context.Context) error {
		d, err := deploy(ctx, cfg, "ingest")
		if err != nil {
			return err
		}
		defer d.close()
		ing, m, err := ingest(ctx, d, cfg)
		if err != nil {
			return err
		}
		rep.Ingest = &ing
		// Throughput reads the stream Ingest filled; both dedupe figures use its events.
		step(ScenarioThroughput, func(ctx context.Context) error {
			tp, err := throughput(ctx, d, cfg, m)
			if err != nil {
				return err
			}
			rep.Throughput = &tp
			rep.typeShare = typeShare(m)
			return nil
		})
		step(ScenarioNaiveDedupe, func(ctx context.Context) error {
			n, err := naiveDedupe(ctx, d, cfg, m)
			if err == nil {
				rep.NaiveDedupe = &n
			}
			return err
		})
		return nil
	})
	step(ScenarioLatency, func(ctx context.Context) error {
		l, err := latency(ctx, cfg)
		if err == nil {
			rep.Latency = &l
		}
		return err
	})
	step(ScenarioBackpressure, func(ctx context.Context) error {
		b, err := backpressure(ctx, cfg)
		if err == nil {
			rep.Backpressure = &b
		}
		return err
	})
	step(ScenarioHot, func(ctx context.Context) error {
		h, err := hot(ctx, cfg)
		if err == nil || len(h.Plain.Steps) > 0 {
			rep.Hot = &h // what finished, also when the rest failed
		}
		return err
	})
	rep.model()
	rep.Elapsed = time.Since(rep.Started)
	rep.Machine.LoadEnd = loadavg()
	if err := ctx.Err(); err != nil {
		return rep, err
	}
	if len(rep.Errors) > 0 {
		return rep, fmt.Errorf("%d scenario(s) failed", len(rep.Errors))
	}
	return rep, nil
}

func typeShare(m loadgen.Manifest) map[string]float64 {
	share := map[string]float64{}
	for typ, n := range m.ByType {
		share[typ] = float64(n) / float64(m.Unique)
	}
	return share
}

// model computes the scale and cost models from the run's figures, when the throughput and ingest
// scenarios both ran.
func (r *Report) model() {
	tp, ing := r.Throughput, r.Ingest
	if tp == nil || ing == nil {
		return
	}
	in := &ScaleInputs{CPUPerEvent: meanD(tp.WorkerCPUs), RawBytes: ing.RecordBytes, OutBytes: tp.OutBytes,
		WriteUnits: tp.Mix.WriteUnits, WriteUnitsMany: r.InProcess.median(benchStateMany, writeUnitsUnit),
		ReadUnits: tp.Mix.ReadUnits, TypeShare: r.typeShare}
	r.ScaleInputs = in
	r.Scale = scaleModel(*in, ScaleRates)
	for _, rate := range CostRates {
		r.Cost = append(r.Cost, costModel(r.costInputs(rate), DefaultStack()))
	}
}

// costInputs gathers the cost model's inputs at rate from the run's figures.
func (r *Report) costInputs(rate float64) CostInputs {
	tp, ing := r.Throughput, r.Ingest
	return CostInputs{
		Rate: rate, EventBytes: ing.EventBytes, RawBytes: ing.RecordBytes, OutBytes: tp.OutBytes, OutRecords: tp.Mix.PutRecords,
		TypeShare: r.typeShare, WorkerCPU: meanD(tp.WorkerCPUs), ForwarderCPU: ing.ForwarderCPU,
		DedupeWriteUnits: r.dedupeWriteUnits(), DedupeReadUnits: tp.Mix.ReadUnits,
		KinesisWireBytes: tp.SentBytes["Kinesis"] + tp.ReceivedBytes["Kinesis"],
		WorkerLogBytes:   tp.LogBytes, EMFBytes: ing.EMFBytes, MetricsBytes: tp.MetricsBytes,
		IdleCalls: tp.IdleCallsPerSecond, IdleShards: fleet.DefaultTopology().RawShards,
		PutCallsPerBatch: float64(max(1, len(r.typeShare))),
	}
}

// dedupeWriteUnits is the largest measured dedupe write units per event: the throughput run's,
// and the in-process ones for 10,000 and 1,000,000 customers.
func (r *Report) dedupeWriteUnits() float64 {
	v := r.InProcess.median(benchStateMany, writeUnitsUnit)
	v = max(v, r.InProcess.median(benchStateFew, writeUnitsUnit))
	if r.Throughput != nil {
		v = max(v, r.Throughput.Mix.WriteUnits)
	}
	return v
}
