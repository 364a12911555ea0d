package bench

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/kinesis-events/pipeline/internal/audit"
	"github.com/kinesis-events/pipeline/internal/fleet"
	"github.com/kinesis-events/pipeline/internal/loadgen"
	"github.com/kinesis-events/pipeline/internal/names"
)

// ThroughputResult compares one worker process (the real binary, full pipeline) with a plain
// GetRecords loop over the same pre-filled raw stream.
type ThroughputResult struct {
	Events int
	// FloorRates are the loop's records/s before and after the worker run.
	FloorRates []float64
	// CopyRates are the records/s of a loop that reads the same way and writes every record once
	// to another stream (PutRecords, 500 per call): the emulator's floor for a consumer that must
	// write what it reads, as the pipeline does. Measured before and after the worker run.
	CopyRates []float64
	// CopyRatio is the steady worker rate over the mean copy rate.
	CopyRatio float64
	// WorkerRate is events / (last record's arrival in an analytics stream - worker process start):
	// start-up, lease taking and the pipeline included. SteadyRate is events / (last arrival - first
	// arrival).
	WorkerRate, SteadyRate float64
	// Ratio and SteadyRatio divide them by the mean floor rate.
	Ratio, SteadyRatio float64
	// FirstRecord is the time from worker process start to the first record's arrival in an
	// analytics stream.
	FirstRecord time.Duration
	// CPUPerEvent is the worker process's CPU time (all threads) per event while it delivers: from
	// the first delivery it reported to the last, start-up excluded. KinesisCPU and DynamoDBCPU are
	// the emulators' CPU time per event over the same interval; FloorCPU and CopyCPU kinesalite's
	// per record in the first loop and the first copy loop.
	CPUPerEvent, KinesisCPU, DynamoDBCPU time.Duration
	FloorCPU, CopyCPU                    time.Duration
	// Gets, Puts and RoundTrips are the worker's DynamoDB dedupe calls per event (its own counters);
	// ItemsPerEvent and KeysPerEvent the items written and keys read per event.
	Gets, Puts, RoundTrips      float64
	ItemsPerEvent, KeysPerEvent float64
	// OutBytes is the mean analytics record size (data plus partition key).
	OutBytes float64
	// Audit is the output check: every event exactly once, in its stream, in per-customer order;
	// a duplicate is allowed only as a byte-identical resent write the worker counted as such.
	Audit string
	OK    bool
}

func throughput(ctx context.Context, d *deployment, cfg Config, m loadgen.Manifest) (ThroughputResult, error) {
	res := ThroughputResult{Events: cfg.Events}
	kc := d.st.Kinesis()
	before, err := d.emulatorCPU()
	if err != nil {
		return res, err
	}
	n, el, err := floorLoop(ctx, kc, names.RawStream, cfg.MaxRecords)
	if err != nil {
		return res, err
	}
	after, err := d.emulatorCPU()
	if err != nil {
		return res, err
	}
	res.FloorCPU = (after.kin - before.kin) / time.Duration(max(n, 1))
	if n != cfg.Events {
		return res, fmt.Errorf("GetRecords loop read %d records, want %d", n, cfg.Events)
	}
	res.FloorRates = append(res.FloorRates, float64(n)/el.Seconds())
	d.log.Sugar().Infof("GetRecords loop: %d records in %s", n, el.Round(time.Millisecond))
	if err := copyRun(ctx, d, cfg, &res, "bench-copy-0"); err != nil {
		return res, err
	}
	if after2, err := d.emulatorCPU(); err == nil {
		res.CopyCPU = (after2.kin - after.kin) / time.Duration(cfg.Events)
	}

	w, dc, cpu, err := d.deliver(ctx, cfg.Events)
	if err != nil {
		return res, err
	}
	res.CPUPerEvent, res.KinesisCPU, res.DynamoDBCPU = cpu.Worker, cpu.Kinesis, cpu.DynamoDB
	res.Gets, res.Puts, res.RoundTrips = dc.Gets, dc.Puts, dc.Gets+dc.Puts
	res.ItemsPerEvent, res.KeysPerEvent = dc.ItemsPerEvent, dc.KeysPerEvent

	// Loop, copy, worker, copy, loop: a drift of the machine's speed during the run cancels out.
	if err := copyRun(ctx, d, cfg, &res, "bench-copy-1"); err != nil {
		return res, err
	}
	n, el, err = floorLoop(ctx, kc, names.RawStream, cfg.MaxRecords)
	if err != nil {
		return res, err
	}
	res.FloorRates = append(res.FloorRates, float64(n)/el.Seconds())
	d.log.Sugar().Infof("GetRecords loop again: %d records in %s", n, el.Round(time.Millisecond))

	snap, rep, err := audited(ctx, d, m)
	if err != nil {
		return res, err
	}
	res.Audit, res.OK = rep.String(), rep.OKWithResent(dc.Unsure)
	floor := mean(res.FloorRates)
	res.WorkerRate = float64(cfg.Events) / snap.Last.Sub(w.started).Seconds()
	res.SteadyRate = float64(cfg.Events-1) / snap.Last.Sub(snap.First).Seconds()
	res.Ratio, res.SteadyRatio = res.WorkerRate/floor, res.SteadyRate/floor
	res.CopyRatio = res.SteadyRate / mean(res.CopyRates)
	res.FirstRecord = snap.First.Sub(w.started)
	out, err := d.st.ReadAll(ctx, names.AnalyticsStream(names.StandardTypes[0]))
	if err != nil {
		return res, err
	}
	var bytes int
	for _, r := range out {
		bytes += len(r.Record.Data) + len(aws.ToString(r.Record.PartitionKey))
	}
	if len(out) > 0 {
		res.OutBytes = float64(bytes) / float64(len(out))
	}
	return res, nil
}

// copyRun measures the copy loop from the raw stream into a new stream.
func copyRun(ctx context.Context, d *deployment, cfg Config, res *ThroughputResult, to string) error {
	if err := d.st.CreateStream(ctx, to, d.env.Topology.RawShards); err != nil {
		return err
	}
	n, el, err := copyLoop(ctx, d.st.Kinesis(), names.RawStream, to, cfg.MaxRecords)
	if err != nil {
		return err
	}
	if n != cfg.Events {
		return fmt.Errorf("copy loop copied %d records, want %d", n, cfg.Events)
	}
	res.CopyRates = append(res.CopyRates, float64(n)/el.Seconds())
	d.log.Sugar().Infof("copy loop: %d records in %s", n, el.Round(time.Millisecond))
	return nil
}

// audited reads every output stream once the processes are done and checks it against m.
func audited(ctx context.Context, d *deployment, m loadgen.Manifest) (audit.Snapshot, audit.Report, error) {
	tail := d.env.NewTail(d.st.Kinesis())
	var snap audit.Snapshot
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	for {
		if err := tail.Poll(ctx); err != nil {
			return snap, audit.Report{}, fmt.Errorf("reading the output streams: %w", err)
		}
		snap = tail.Snapshot()
		if snap.Unique >= m.Unique {
			return snap, tail.Check(fleet.Expected(m)), nil
		}
		select {
		case <-ctx.Done():
			return snap, audit.Report{}, fmt.Errorf("output streams hold %d of %d events: %w", snap.Unique, m.Unique, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// copyLoop is floorLoop writing every page it reads to stream to (PutRecords of at most putBatch
// records, failed entries sent again) before reading the next. Its bare PutRecords calls are the
// measured baseline, deliberately not internal/ordered (the one writer everything else uses): no
// per-key order, no unknown-outcome tracking, no backoff.
func copyLoop(ctx context.Context, kc *kinesis.Client, from, to string, limit int32) (int, time.Duration, error) {
	return shardLoop(ctx, kc, from, limit, func(recs []types.Record) error {
		for i := 0; i < len(recs); i += putBatch {
			b := make([]types.PutRecordsRequestEntry, 0, putBatch)
			for _, r := range recs[i:min(i+putBatch, len(recs))] {
				b = append(b, types.PutRecordsRequestEntry{Data: r.Data, PartitionKey: r.PartitionKey})
			}
			for len(b) > 0 {
				out, err := kc.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String(to), Records: b})
				if err != nil {
					return err
				}
				var failed []types.PutRecordsRequestEntry
				for k, e := range out.Records {
					if e.ErrorCode != nil {
						failed = append(failed, b[k])
					}
				}
				b = failed
			}
		}
		return nil
	})
}

// floorLoop reads every shard of stream from TRIM_HORIZON with plain GetRecords calls (limit per
// call), one goroutine per shard and no pause while records come, until each shard answers empty
// and caught up. It returns the records read and the time taken.
func floorLoop(ctx context.Context, kc *kinesis.Client, stream string, limit int32) (int, time.Duration, error) {
	return shardLoop(ctx, kc, stream, limit, func([]types.Record) error { return nil })
}

// shardLoop reads every shard of stream as floorLoop describes, handing each page to fn.
func shardLoop(ctx context.Context, kc *kinesis.Client, stream string, limit int32, fn func([]types.Record) error) (int, time.Duration, error) {
	start := time.Now()
	out, err := kc.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String(stream)})
	if err != nil {
		return 0, 0, fmt.Errorf("list shards of %s: %w", stream, err)
	}
	var (
		total atomic.Int64
		wg    sync.WaitGroup
		mu    sync.Mutex
		errs  []error
	)
	for _, sh := range out.Shards {
		wg.Go(func() {
			err := func() error {
				it, err := kc.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String(stream),
					ShardId: sh.ShardId, ShardIteratorType: types.ShardIteratorTypeTrimHorizon})
				if err != nil {
					return err
				}
				for iter := it.ShardIterator; iter != nil; {
					page, err := kc.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: iter, Limit: aws.Int32(limit)})
					if err != nil {
						return err
					}
					if err := fn(page.Records); err != nil {
						return err
					}
					total.Add(int64(len(page.Records)))
					if len(page.Records) == 0 && aws.ToInt64(page.MillisBehindLatest) == 0 {
						return nil
					}
					iter = page.NextShardIterator
				}
				return nil
			}()
			if err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("shard %s: %w", aws.ToString(sh.ShardId), err))
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return int(total.Load()), time.Since(start), errors.Join(errs...)
}
