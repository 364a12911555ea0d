package bench

import (
	"context"
	"errors"
	"fmt"
	"strings"
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
// GetRecords loop over the same pre-filled raw stream, and with a loop that makes the same calls.
type ThroughputResult struct {
	Events int
	// MaxRecords is the GetRecords limit of the loops (the worker's own).
	MaxRecords int32
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
	// CPUPerEvent is the first worker process's CPU time (all threads) per event while it
	// delivers: from the first delivery it reported to the last, start-up excluded. KinesisCPU and
	// DynamoDBCPU are the emulators' CPU time per event over the same interval; FloorCPU and
	// CopyCPU kinesalite's per record in the first loop and the first copy loop.
	CPUPerEvent, KinesisCPU, DynamoDBCPU time.Duration
	FloorCPU, CopyCPU                    time.Duration
	// Mix is what the first worker asked of Kinesis and DynamoDB per event (its own counters), the
	// calls the same-calls loop makes.
	Mix callMix
	// WorkerCPUs are the CPU per event of the two worker runs (the first, and a second one over the
	// same raw stream with its own application, lease and dedupe tables), LoopCPUs the client CPU
	// per event of the two same-calls loops run between them (worker, loop, loop, worker: a drift
	// of the machine's speed cancels). CPURatio is mean(WorkerCPUs) / mean(LoopCPUs).
	WorkerCPUs, LoopCPUs []time.Duration
	Loops                []loopRun
	CPURatio             float64
	// Calls are the first worker's AWS requests per event by "Service.Operation" over its run
	// (start-up and shut-down included), SentBytes and ReceivedBytes its bytes on the wire per
	// event by service (aws_requests_total and friends). IdleCallsPerSecond are its requests per
	// second by operation while it held every shard with nothing to read (time-driven calls).
	Calls                    map[string]float64
	SentBytes, ReceivedBytes map[string]float64
	IdleCallsPerSecond       map[string]float64
	// LogBytes is the first worker's log output per event (start to stop); MetricsBytes one
	// uncompressed scrape of its /metrics.
	LogBytes, MetricsBytes float64
	// OutBytes is the mean analytics record size (data plus partition key).
	OutBytes float64
	// Audit is the output check: every event exactly once, in its stream, in per-customer order;
	// a duplicate is allowed only as a byte-identical resent write the worker counted as such.
	Audit string
	OK    bool
}

// workerIdle is how long the first worker runs on with nothing to read, to measure the calls it
// makes by the clock.
const workerIdle = 5 * time.Second

func throughput(ctx context.Context, d *deployment, cfg Config, m loadgen.Manifest) (ThroughputResult, error) {
	res := ThroughputResult{Events: cfg.Events, MaxRecords: cfg.MaxRecords}
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

	w1, err := d.deliver(ctx, cfg.Events, workerIdle)
	if err != nil {
		return res, err
	}
	res.CPUPerEvent, res.KinesisCPU, res.DynamoDBCPU = w1.cpu.Worker, w1.cpu.Kinesis, w1.cpu.DynamoDB
	res.Mix = mixOf(w1.last)
	if res.Mix.RecordsIn == 0 {
		return res, errNoMix
	}
	res.Calls, res.SentBytes, res.ReceivedBytes = awsUse(w1.last, res.Mix.RecordsIn)
	res.IdleCallsPerSecond = idleCalls(w1.last, w1.idle, w1.idleFor)
	res.LogBytes = float64(w1.LogBytes) / res.Mix.RecordsIn
	res.MetricsBytes = float64(w1.MetricsBytes)

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
	res.Audit, res.OK = rep.String(), rep.OKWithResent(w1.Unsure)
	floor := mean(res.FloorRates)
	res.WorkerRate = float64(cfg.Events) / snap.Last.Sub(w1.w.started).Seconds()
	res.SteadyRate = float64(cfg.Events-1) / snap.Last.Sub(snap.First).Seconds()
	res.Ratio, res.SteadyRatio = res.WorkerRate/floor, res.SteadyRate/floor
	res.CopyRatio = res.SteadyRate / mean(res.CopyRates)
	res.FirstRecord = snap.First.Sub(w1.w.started)
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

	// Worker, loop, loop, worker: the same-calls comparison.
	res.WorkerCPUs = append(res.WorkerCPUs, w1.cpu.Worker)
	for i := range 2 {
		l, err := sameCallsLoop(ctx, d, res.Mix, cfg.MaxRecords, fmt.Sprintf("bench-loop-out-%d", i), fmt.Sprintf("bench-loop-dedupe-%d", i))
		if err != nil {
			return res, fmt.Errorf("same-calls loop: %w", err)
		}
		if l.Records != cfg.Events {
			return res, fmt.Errorf("same-calls loop read %d records, want %d", l.Records, cfg.Events)
		}
		d.log.Sugar().Infof("same-calls loop: %d records in %s, %s CPU per record", l.Records, l.Elapsed.Round(time.Millisecond), us(l.CPUPerEvent()))
		res.Loops = append(res.Loops, l)
		res.LoopCPUs = append(res.LoopCPUs, l.CPUPerEvent())
	}
	w2, err := secondWorker(ctx, d, cfg)
	if err != nil {
		return res, err
	}
	res.WorkerCPUs = append(res.WorkerCPUs, w2)
	res.CPURatio = meanD(res.WorkerCPUs).Seconds() / meanD(res.LoopCPUs).Seconds()
	return res, nil
}

// secondApp names the second worker run's application, lease and dedupe tables.
const secondApp = "bench-second"

// secondWorker runs a worker over the same raw stream as an application of its own (lease table,
// dedupe table), so that it starts from nothing as the first did, writing to the same analytics
// streams (so it makes the same calls), and returns its CPU per event. Everything must be delivered
// and nothing quarantined or dead-lettered.
func secondWorker(ctx context.Context, d *deployment, cfg Config) (time.Duration, error) {
	table := secondApp + "-dedupe"
	if err := d.st.CreateTable(ctx, table, "event_id"); err != nil {
		return 0, err
	}
	run, err := d.deliver(ctx, cfg.Events, 0, "-application="+secondApp, "-lease-table="+secondApp+"-leases", "-dedupe-table="+table)
	if err != nil {
		return 0, fmt.Errorf("second worker: %w", err)
	}
	if q, dl := run.last.sum("pipeline_quarantined_total"), run.last.sum("pipeline_dead_lettered_total"); q+dl > 0 {
		return 0, fmt.Errorf("second worker quarantined %.0f and dead-lettered %.0f of a clean stream", q, dl)
	}
	return run.cpu.Worker, nil
}

// awsUse is a worker's AWS requests per event by "Service.Operation", and its bytes sent and
// received per event by service, from its aws_* counters.
func awsUse(s samples, events float64) (calls, sent, received map[string]float64) {
	calls, sent, received = map[string]float64{}, map[string]float64{}, map[string]float64{}
	for labels, v := range s["aws_requests_total"] {
		calls[serviceOp(labels)] += v / events
	}
	for labels, v := range s["aws_request_bytes_total"] {
		sent[labelValue(labels, "service")] += v / events
	}
	for labels, v := range s["aws_response_bytes_total"] {
		received[labelValue(labels, "service")] += v / events
	}
	return calls, sent, received
}

// idleCalls is the requests per second by "Service.Operation" between two scrapes d apart.
func idleCalls(from, to samples, d time.Duration) map[string]float64 {
	if to == nil || d <= 0 {
		return nil
	}
	out := map[string]float64{}
	for labels, v := range to["aws_requests_total"] {
		out[serviceOp(labels)] += (v - from["aws_requests_total"][labels]) / d.Seconds()
	}
	return out
}

func serviceOp(labels string) string {
	return labelValue(labels, "service") + "." + labelValue(labels, "operation")
}

// labelValue returns the value of label name in a Prometheus label set `{a="x",b="y"}`.
func labelValue(labels, name string) string {
	i := strings.Index(labels, name+`="`)
	if i < 0 {
		return ""
	}
	rest := labels[i+len(name)+2:]
	if j := strings.IndexByte(rest, '"'); j >= 0 {
		return rest[:j]
	}
	return ""
}

func meanD(xs []time.Duration) time.Duration {
	if len(xs) == 0 {
		return 0
	}
	var s time.Duration
	for _, x := range xs {
		s += x
	}
	return s / time.Duration(len(xs))
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
	return shardLoop(ctx, kc, from, limit, func(string) func([]types.Record) error {
		return func(recs []types.Record) error {
			for _, part := range split(recs, (len(recs)+putBatch-1)/putBatch) {
				if err := putPart(ctx, kc, to, part); err != nil {
					return err
				}
			}
			return nil
		}
	})
}

// floorLoop reads every shard of stream from TRIM_HORIZON with plain GetRecords calls (limit per
// call), one goroutine per shard and no pause while records come, until each shard answers empty
// and caught up. It returns the records read and the time taken.
func floorLoop(ctx context.Context, kc *kinesis.Client, stream string, limit int32) (int, time.Duration, error) {
	return shardLoop(ctx, kc, stream, limit, func(string) func([]types.Record) error {
		return func([]types.Record) error { return nil }
	})
}

// shardLoop reads every shard of stream as floorLoop describes, handing each page to the function
// perShard returned for its shard (called once per shard, on that shard's goroutine).
func shardLoop(ctx context.Context, kc *kinesis.Client, stream string, limit int32, perShard func(shard string) func([]types.Record) error) (int, time.Duration, error) {
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
				fn := perShard(aws.ToString(sh.ShardId))
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
