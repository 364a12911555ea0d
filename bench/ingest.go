package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/kinesis-events/pipeline/bench/internal/recfile"
	"github.com/kinesis-events/pipeline/forwarder"
	"github.com/kinesis-events/pipeline/internal/fleet"
	"github.com/kinesis-events/pipeline/internal/loadgen"
	"github.com/kinesis-events/pipeline/internal/localstack"
	"github.com/kinesis-events/pipeline/internal/names"
)

// IngestResult compares the forwarder binary in local mode with a plain PutRecords loop writing the
// same records (the forwarder's own output, read back) with the same batch size and concurrency.
type IngestResult struct {
	Events int
	// ForwarderRates and PutRates are events/s of each run; they ran forwarder, put, put, forwarder.
	// A forwarder run is timed from process start to exit.
	ForwarderRates, PutRates []float64
	// Ratio is the mean forwarder rate over the mean PutRecords rate.
	Ratio float64
	// RecordBytes is the mean raw record size (data plus partition key).
	RecordBytes float64
	// ForwarderCPU is the forwarder process's CPU per event (user + system, SDK included) and PutCPU
	// the put loop's, its process's CPU over the loop; KinesisCPU and PutKinesisCPU kinesalite's CPU per
	// record during the timed forwarder and put runs. Means over the runs.
	ForwarderCPU, PutCPU, KinesisCPU, PutKinesisCPU time.Duration
	// StartupCPU is the CPU of a forwarder run on no input (process start, configuration, exit): the
	// fixed part of ForwarderCPU's runs, which a put loop inside a running process does not pay.
	StartupCPU time.Duration `json:",omitempty"`
	// The forwarder and the put loop as processes of their own (processCPU), measured alike:
	// SingleCPU and LoopProcessCPU are their CPU per event over whole runs of Events events, from
	// process start to exit; MarginalCPU and LoopMarginalCPU past such a run's first Events events
	// (runs of Events and of longRun times as many, the difference per added event), which is what a
	// long-lived process pays per event, without start-up and the first touch of its memory. The
	// put loop process writes what the forwarder run before it wrote, read from a file.
	SingleCPU, MarginalCPU          time.Duration `json:",omitempty"`
	LoopProcessCPU, LoopMarginalCPU time.Duration `json:",omitempty"`
	// EventBytes is the mean EventBridge event of the load (the forwarder's input line), EMFBytes
	// the metrics line the deployed forwarder writes per invocation (measured in process).
	EventBytes, EMFBytes float64
	// Distinct is the same comparison on events spread over ten times as many customers as events
	// (loadgen picks customers at random: about 95 % of the events are their customer's only one),
	// so the forwarder's one-record-per-customer-in-flight rule almost never holds a record back.
	Distinct *IngestResult `json:",omitempty"`
}

const (
	putBatch       = forwarder.MaxBatchRecords // the forwarder's default batch size
	putConcurrency = 4                         // and its default calls in flight
)

// ingest runs the forwarder comparison on d and leaves events-raw filled with its first forwarder
// run's records (Throughput reads them).
func ingest(ctx context.Context, d *deployment, cfg Config) (IngestResult, loadgen.Manifest, error) {
	file, m, err := d.generate(ctx, "ingest", cfg.Events, cfg.Customers, cfg.Seed)
	if err != nil {
		return IngestResult{Events: cfg.Events}, m, err
	}
	if m.Unique != cfg.Events {
		return IngestResult{Events: cfg.Events}, m, fmt.Errorf("loadgen made %d unique events of %d lines", m.Unique, m.Lines)
	}
	// A fresh emulator serves its first tens of thousands of records slower (the JIT warming up):
	// an untimed forwarder run and an untimed put of its records, into streams of their own, take
	// that, so it does not fall on the first timed run.
	if err := d.warmUp(ctx, file, cfg.Events); err != nil {
		return IngestResult{Events: cfg.Events}, m, err
	}
	res, err := d.compareIngest(ctx, file, names.RawStream, "bench", cfg.Events)
	if err != nil {
		return res, m, err
	}
	if res.StartupCPU, err = d.startupCPU(ctx); err != nil {
		return res, m, err
	}
	pc, err := d.processCPU(ctx, file, cfg)
	if err != nil {
		return res, m, err
	}
	res.SingleCPU, res.MarginalCPU, res.LoopProcessCPU, res.LoopMarginalCPU = pc.forwarder, pc.forwarderMarginal, pc.loop, pc.loopMarginal
	ll, err := measureLambdaLog(ctx, file)
	if err != nil {
		return res, m, err
	}
	res.EventBytes, res.EMFBytes = ll.EventBytes, ll.EMFBytes
	distinct, _, err := d.generate(ctx, "distinct", cfg.Events, 10*cfg.Events, cfg.Seed+1)
	if err != nil {
		return res, m, err
	}
	if err := d.st.CreateStream(ctx, "bench-distinct", d.env.Topology.RawShards); err != nil {
		return res, m, err
	}
	dr, err := d.compareIngest(ctx, distinct, "bench-distinct", "bench-distinct", cfg.Events)
	if err != nil {
		return res, m, err
	}
	res.Distinct = &dr
	return res, m, nil
}

func (d *deployment) warmUp(ctx context.Context, file string, events int) error {
	for _, s := range []string{"bench-warm-up-0", "bench-warm-up-1"} {
		if err := d.st.CreateStream(ctx, s, d.env.Topology.RawShards); err != nil {
			return err
		}
	}
	if _, err := d.forward(ctx, file, "bench-warm-up-0", events); err != nil {
		return err
	}
	recs, err := d.st.ReadAll(ctx, "bench-warm-up-0")
	if err != nil {
		return err
	}
	_, _, err = putAll(ctx, d.st.Kinesis(), "bench-warm-up-1", recs)
	return err
}

// compareIngest forwards file into first (which must exist), then runs put, put, forward into new
// streams named after prefix (a drift of the machine's speed during the run cancels out), the puts
// writing the records the first run produced.
func (d *deployment) compareIngest(ctx context.Context, file, first, prefix string, events int) (IngestResult, error) {
	res := IngestResult{Events: events}
	var fwdCPU, putCPU, fwdKin, putKin time.Duration
	// forwardTimed runs one timed forwarder run and adds its CPU and kinesalite's.
	forwardTimed := func(stream string) error {
		k0, err := d.emulatorCPU()
		if err != nil {
			return err
		}
		rate, cpu, err := d.forwardCPU(ctx, stream, events, file)
		if err != nil {
			return err
		}
		k1, err := d.emulatorCPU()
		if err != nil {
			return err
		}
		res.ForwarderRates = append(res.ForwarderRates, rate)
		fwdCPU += cpu
		fwdKin += k1.kin - k0.kin
		return nil
	}
	if err := forwardTimed(first); err != nil {
		return res, err
	}
	recs, err := d.forwarded(ctx, first, events)
	if err != nil {
		return res, err
	}
	var bytes int
	for _, r := range recs {
		bytes += len(r.Record.Data) + len(aws.ToString(r.Record.PartitionKey))
	}
	res.RecordBytes = float64(bytes) / float64(len(recs))
	for i, step := range []string{"put", "put", "forward"} {
		stream := fmt.Sprintf("%s-%s-%d", prefix, step, i)
		if err := d.st.CreateStream(ctx, stream, d.env.Topology.RawShards); err != nil {
			return res, err
		}
		if step == "forward" {
			if err := forwardTimed(stream); err != nil {
				return res, err
			}
			continue
		}
		k0, err := d.emulatorCPU()
		if err != nil {
			return res, err
		}
		c0 := selfCPU()
		n, el, err := putAll(ctx, d.st.Kinesis(), stream, recs)
		if err != nil {
			return res, err
		}
		putCPU += selfCPU() - c0
		k1, err := d.emulatorCPU()
		if err != nil {
			return res, err
		}
		putKin += k1.kin - k0.kin
		res.PutRates = append(res.PutRates, float64(n)/el.Seconds())
		d.log.Sugar().Infof("put %d records in %s", n, el.Round(time.Millisecond))
	}
	res.Ratio = mean(res.ForwarderRates) / mean(res.PutRates)
	perEvent := func(total time.Duration, runs int) time.Duration {
		return total / time.Duration(max(1, runs*events))
	}
	res.ForwarderCPU, res.KinesisCPU = perEvent(fwdCPU, len(res.ForwarderRates)), perEvent(fwdKin, len(res.ForwarderRates))
	res.PutCPU, res.PutKinesisCPU = perEvent(putCPU, len(res.PutRates)), perEvent(putKin, len(res.PutRates))
	return res, nil
}

// forwarded reads back the records a forwarder run wrote into stream, each once: a PutRecords whose
// answer was lost is sent again, so only entries the forwarder counted as sent with an unknown
// outcome may be in the stream twice, byte for byte. There must be events of them.
func (d *deployment) forwarded(ctx context.Context, stream string, events int) ([]localstack.ShardRecord, error) {
	recs, err := d.st.ReadAll(ctx, stream)
	if err != nil {
		return nil, err
	}
	sum, err := forwarderSummary(filepath.Join(d.dir, "forwarder-"+stream+".log"))
	if err != nil {
		return nil, err
	}
	seen := make(map[string]bool, len(recs))
	kept := recs[:0:0]
	for _, r := range recs {
		if !seen[string(r.Record.Data)] {
			seen[string(r.Record.Data)] = true
			kept = append(kept, r)
		}
	}
	if resent := len(recs) - len(kept); len(kept) != events || int64(resent) > sum.Unknown {
		return nil, fmt.Errorf("%s holds %d records (%d distinct) after forwarding %d events, %d of them with an unknown outcome",
			stream, len(recs), len(kept), events, sum.Unknown)
	}
	return kept, nil
}

// startupCPU is the forwarder's CPU for a run on an empty input, the least of three.
func (d *deployment) startupCPU(ctx context.Context) (time.Duration, error) {
	empty := filepath.Join(d.dir, "empty.ndjson")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		return 0, err
	}
	if err := d.st.CreateStream(ctx, "bench-empty", d.env.Topology.RawShards); err != nil {
		return 0, err
	}
	var least time.Duration
	for i := range 3 {
		_, cpu, err := d.forwardCPU(ctx, "bench-empty", 0, empty)
		if err != nil {
			return 0, err
		}
		if i == 0 || cpu < least {
			least = cpu
		}
	}
	return least, nil
}

// processCPU holds what processCPU measured: CPU per event of whole runs (process start to exit) of
// Events events, and past such a run's first Events, of the forwarder and of the put loop process.
type processCPU struct {
	forwarder, forwarderMarginal, loop, loopMarginal time.Duration
}

const (
	// longRun is how many times Events a long run of processCPU has. The marginal figures are
	// differences of two CPU times a few tens of milliseconds apart run to run: over 3 x 20,000
	// added events that spread is under a microsecond per event, over 20,000 it was several.
	longRun = 4
	// processReps is how many times processCPU runs its cycle of eight runs.
	processReps = 2
)

// processCPU runs the forwarder on file, and on file followed by longRun-1 files of as many other
// events of the same customers (other seeds), and the put loop process (bench/cmd/putloop) on what
// each kind of forwarder run wrote, each into a new stream, processReps times in the order
// F1 L1 Fn Ln Ln Fn L1 F1 (F1 and L1 of Events events, Fn and Ln of longRun times as many), so that
// a drift of the machine's speed cancels. A whole run is the mean of the singles per event; past the
// first Events, the difference of the means of the long runs and the singles per added event.
func (d *deployment) processCPU(ctx context.Context, file string, cfg Config) (processCPU, error) {
	var res processCPU
	files := []string{file}
	for i := 1; i < longRun; i++ {
		more, _, err := d.generate(ctx, fmt.Sprintf("ingest-more-%d", i), cfg.Events, cfg.Customers, cfg.Seed+1+int64(i))
		if err != nil {
			return res, err
		}
		files = append(files, more)
	}
	recFiles := map[bool]string{}
	var sums [2][2]time.Duration // [loop][long]
	i := 0
	for range processReps {
		for _, step := range []string{"F1", "L1", "Fn", "Ln", "Ln", "Fn", "L1", "F1"} {
			loop, long := step[0] == 'L', step[1] == 'n'
			n := 1
			if long {
				n = longRun
			}
			stream := fmt.Sprintf("bench-process-%d", i)
			i++
			if err := d.st.CreateStream(ctx, stream, d.env.Topology.RawShards); err != nil {
				return res, err
			}
			var cpu time.Duration
			var err error
			switch {
			case loop:
				if cpu, err = d.putLoopCPU(ctx, stream, recFiles[long], n*cfg.Events); err != nil {
					return res, err
				}
			default:
				if _, cpu, err = d.forwardCPU(ctx, stream, n*cfg.Events, files[:n]...); err != nil {
					return res, err
				}
				if recFiles[long] == "" {
					if recFiles[long], err = d.recFile(ctx, stream, n*cfg.Events); err != nil {
						return res, err
					}
				}
			}
			sums[b2i(loop)][b2i(long)] += cpu
		}
	}
	runs := time.Duration(2 * processReps)
	single := func(sum time.Duration) time.Duration { return sum / runs / time.Duration(cfg.Events) }
	added := func(long, single time.Duration) time.Duration {
		return max(0, long-single) / runs / time.Duration((longRun-1)*cfg.Events)
	}
	res.forwarder, res.forwarderMarginal = single(sums[0][0]), added(sums[0][1], sums[0][0])
	res.loop, res.loopMarginal = single(sums[1][0]), added(sums[1][1], sums[1][0])
	return res, nil
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// recFile writes the records a forwarder run wrote into stream (each once, see forwarded) to a
// recfile for the put loop process, and returns its path.
func (d *deployment) recFile(ctx context.Context, stream string, events int) (string, error) {
	recs, err := d.forwarded(ctx, stream, events)
	if err != nil {
		return "", err
	}
	path := filepath.Join(d.dir, stream+".rec")
	f, err := os.Create(path)
	if err != nil {
		return "", err
	}
	w := recfile.NewWriter(f)
	for _, r := range recs {
		if err := w.Write(aws.ToString(r.Record.PartitionKey), r.Record.Data); err != nil {
			f.Close()
			return "", err
		}
	}
	if err := errors.Join(w.Flush(), f.Close()); err != nil {
		return "", err
	}
	return path, nil
}

// putLoopCPU runs the put loop process on file into stream and returns its CPU time. It must
// write want records.
func (d *deployment) putLoopCPU(ctx context.Context, stream, file string, want int) (time.Duration, error) {
	logPath := filepath.Join(d.dir, "putloop-"+stream+".log")
	p, err := fleet.Start("putloop", filepath.Join(d.env.Bin, "putloop"), []string{"-stream", stream, file}, d.env.StackEnv, logPath)
	if err != nil {
		return 0, err
	}
	if err := p.Wait(ctx); err != nil {
		p.Kill()
		return 0, fmt.Errorf("put loop into %s: %w; log tail:\n%s", stream, err, logTail(logPath, 10))
	}
	out, err := os.ReadFile(logPath)
	if err != nil {
		return 0, err
	}
	var sum struct{ Records int }
	if err := json.Unmarshal(out, &sum); err != nil || sum.Records != want {
		return 0, fmt.Errorf("put loop into %s: wrote %d of %d records (%q)", stream, sum.Records, want, out)
	}
	d.log.Sugar().Infof("put loop process: %d records into %s, %s CPU", want, stream, p.CPU().Round(time.Millisecond))
	return p.CPU(), nil
}

// forward runs the forwarder binary on file into stream and returns events/s, timed from process
// start to exit. Every event must be forwarded.
func (d *deployment) forward(ctx context.Context, file, stream string, want int) (float64, error) {
	rate, _, err := d.forwardCPU(ctx, stream, want, file)
	return rate, err
}

// forwardCPU is forward on files, in order, that also returns the forwarder process's CPU time.
func (d *deployment) forwardCPU(ctx context.Context, stream string, want int, files ...string) (float64, time.Duration, error) {
	logPath := filepath.Join(d.dir, "forwarder-"+stream+".log")
	start := time.Now()
	args := append(d.profileArgs("--", "forwarder-"+stream), "-raw-stream", stream, "-quarantine-stream", names.QuarantineStream)
	args = append(args, files...)
	p, err := fleet.Start("forwarder", filepath.Join(d.env.Bin, "forwarder"), args, d.env.StackEnv, logPath)
	if err != nil {
		return 0, 0, err
	}
	if err := p.Wait(ctx); err != nil {
		p.Kill()
		return 0, 0, fmt.Errorf("forwarder into %s: %w; log tail:\n%s", stream, err, logTail(logPath, 10))
	}
	el := time.Since(start)
	sum, err := forwarderSummary(logPath)
	if err != nil {
		return 0, 0, err
	}
	if sum.Forwarded != int64(want) {
		return 0, 0, fmt.Errorf("forwarder into %s: forwarded %d of %d (%s)", stream, sum.Forwarded, want, sum)
	}
	d.log.Sugar().Infof("forwarder: %d events into %s in %s, %s CPU", want, stream, el.Round(time.Millisecond), p.CPU().Round(time.Millisecond))
	return float64(want) / el.Seconds(), p.CPU(), nil
}

// forwarderSummary reads the {"type":"summary",...} line the forwarder prints last.
func forwarderSummary(logPath string) (forwarder.Result, error) {
	var res forwarder.Result
	f, err := os.Open(logPath)
	if err != nil {
		return res, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	found := false
	for sc.Scan() {
		var head struct {
			Type string `json:"type"`
		}
		if json.Unmarshal(sc.Bytes(), &head) == nil && head.Type == "summary" {
			found = json.Unmarshal(sc.Bytes(), &res) == nil
		}
	}
	if !found {
		return res, fmt.Errorf("no summary line in %s", logPath)
	}
	return res, sc.Err()
}

// putAll writes recs to stream with plain PutRecords calls: batches of putBatch in order,
// putConcurrency calls in flight, failed entries sent again until none is left. It returns the
// records written and the time from the first call to the last answer. These bare calls are the
// measured baseline, deliberately not internal/ordered (the one writer everything else uses).
func putAll(ctx context.Context, kc *kinesis.Client, stream string, recs []localstack.ShardRecord) (int, time.Duration, error) {
	batches := make(chan []types.PutRecordsRequestEntry)
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		written int
		errs    []error
	)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	start := time.Now()
	for range putConcurrency {
		wg.Go(func() {
			for b := range batches {
				for len(b) > 0 {
					out, err := kc.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String(stream), Records: b})
					if err != nil {
						mu.Lock()
						errs = append(errs, fmt.Errorf("put records into %s: %w", stream, err))
						mu.Unlock()
						cancel()
						return
					}
					var failed []types.PutRecordsRequestEntry
					for i, e := range out.Records {
						if e.ErrorCode != nil {
							failed = append(failed, b[i])
						}
					}
					mu.Lock()
					written += len(b) - len(failed)
					mu.Unlock()
					b = failed
				}
			}
		})
	}
	for i := 0; i < len(recs); i += putBatch {
		b := make([]types.PutRecordsRequestEntry, 0, putBatch)
		for _, r := range recs[i:min(i+putBatch, len(recs))] {
			b = append(b, types.PutRecordsRequestEntry{Data: r.Record.Data, PartitionKey: r.Record.PartitionKey})
		}
		select {
		case batches <- b:
		case <-ctx.Done():
		}
	}
	close(batches)
	wg.Wait()
	el := time.Since(start)
	if len(errs) > 0 {
		return written, el, errors.Join(errs...)
	}
	if err := ctx.Err(); err != nil {
		return written, el, err
	}
	return written, el, nil
}

// selfCPU is this process's user and system CPU time so far.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func mean(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	var s float64
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}
