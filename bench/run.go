package bench

import (
	"context"
	"fmt"
	"os"
	"time"

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
		sctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
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
			rep.ScaleInputs = scaleInputs(tp, ing, m)
			rep.Scale = scaleModel(*rep.ScaleInputs, ScaleRates)
			// The same raw stream again, dedupe reads only behind each customer's cursor.
			bc, err := behindCursor(ctx, d, cfg, mean(tp.FloorRates))
			if err == nil {
				rep.BehindCursor = &bc
			}
			return err
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

func scaleInputs(tp ThroughputResult, ing IngestResult, m loadgen.Manifest) *ScaleInputs {
	in := &ScaleInputs{CPUPerEvent: tp.CPUPerEvent, RawBytes: ing.RecordBytes, OutBytes: tp.OutBytes,
		ItemsPerEvent: tp.ItemsPerEvent, KeysReadPerEvent: tp.KeysPerEvent, TypeShare: map[string]float64{}}
	for typ, n := range m.ByType {
		in.TypeShare[typ] = float64(n) / float64(m.Unique)
	}
	return in
}
