package e2e

import (
	"bufio"
	"context"
	"fmt"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/kinesis-events/pipeline/checkpoint"
	"github.com/kinesis-events/pipeline/internal/audit"
	"github.com/kinesis-events/pipeline/internal/faultproxy"
	"github.com/kinesis-events/pipeline/internal/fleet"
	"github.com/kinesis-events/pipeline/internal/names"
	"github.com/kinesis-events/pipeline/internal/poll"
)

// chaosEnv gates the long chaos scenarios: `make test` runs the bounded subset, `make chaos`
// (E2E_CHAOS=1) runs all of them.
const chaosEnv = "E2E_CHAOS"

// skipUnlessChaos skips a long scenario unless E2E_CHAOS is set, and every scenario under -short.
func skipUnlessChaos(t *testing.T, long bool) {
	t.Helper()
	if testing.Short() {
		t.Skip("binary-level chaos scenario; not in -short")
	}
	if long && os.Getenv(chaosEnv) == "" {
		t.Skipf("long chaos scenario; set %s=1 (make chaos) to run it", chaosEnv)
	}
}

// chaosWorker is a worker process with its metrics server on a free port.
type chaosWorker struct {
	*fleet.Proc
	n       int
	id      string // the worker id the process uses: hostname-w<n>
	metrics string // http://127.0.0.1:<port>/metrics
}

// chaosWorker starts worker n with a metrics port and extra environment (e.g. a fault proxy as its
// Kinesis endpoint), stopped at the end of the test like deployment.worker.
func (d *deployment) chaosWorker(n int, env []string, flags ...string) *chaosWorker {
	d.t.Helper()
	port, err := fleet.FreePort()
	if err != nil {
		d.t.Fatal(err)
	}
	p, err := d.env.StartWorkerWith(n, fleet.WorkerOptions{MetricsPort: port, Env: env, Flags: flags})
	if err != nil {
		d.t.Fatal(err)
	}
	d.t.Cleanup(func() {
		if err := p.Stop(20 * time.Second); err != nil {
			d.t.Logf("%s: %v", p.Name, err)
		}
		switch {
		case d.t.Failed():
			d.dumpLog(p.LogPath)
		case os.Getenv("E2E_KEEP_LOGS") != "":
			// Chaos runs keep their worker logs on success too: the numbers are worth a look.
			if b, err := os.ReadFile(p.LogPath); err == nil {
				dst := filepath.Join(os.Getenv("E2E_KEEP_LOGS"), d.t.Name(), filepath.Base(p.LogPath))
				if os.MkdirAll(filepath.Dir(dst), 0o755) == nil {
					_ = os.WriteFile(dst, b, 0o644)
				}
			}
		}
	})
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "worker" // the worker's own fallback
	}
	w := &chaosWorker{Proc: p, n: n, id: host + "-w" + strconv.Itoa(n),
		metrics: "http://127.0.0.1:" + strconv.Itoa(port) + "/metrics"}
	d.workers = append(d.workers, w)
	return w
}

// faultProxy starts a fault-injecting proxy in front of the stack's Kinesis emulator, closed at the
// end of the test (after the workers using it, which are started later and so stopped first), and
// returns it with the environment that points a worker at it.
func (d *deployment) faultProxy() (*faultproxy.Proxy, []string) {
	d.t.Helper()
	p, err := faultproxy.Start(d.t.Context(), faultproxy.Config{Upstream: d.stack.KinesisEndpoint})
	if err != nil {
		d.t.Fatal(err)
	}
	d.t.Cleanup(func() { _ = p.Close() })
	return p, []string{"AWS_ENDPOINT_URL_KINESIS=" + p.URL()}
}

// scrape reads a worker's /metrics.
func scrape(ctx context.Context, url string) (map[string]*dto.MetricFamily, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	return p.TextToMetricFamilies(resp.Body)
}

// metricValue returns the value of the series of family name whose labels include want (summed
// over every matching series; counters and gauges only), and whether any matched.
func metricValue(fams map[string]*dto.MetricFamily, name string, want map[string]string) (float64, bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
	var sum float64
	found := false
next:
	for _, m := range f.GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if labels[k] != v {
				continue next
			}
		}
		found = true
		switch {
		case m.Gauge != nil:
			sum += m.GetGauge().GetValue()
		case m.Counter != nil:
			sum += m.GetCounter().GetValue()
		case m.Untyped != nil:
			sum += m.GetUntyped().GetValue()
		}
	}
	return sum, found
}

// rssKiB reads VmRSS of a process from /proc.
func rssKiB(pid int) (int64, error) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

// rssSample is one RSS reading of one process.
type rssSample struct {
	at  time.Time
	pid int
	kib int64
}

// rssSampler reads the RSS of a set of processes every interval until stopped.
type rssSampler struct {
	mu      sync.Mutex
	samples []rssSample
	stop    context.CancelFunc
	done    chan struct{}
}

func sampleRSS(ctx context.Context, interval time.Duration, pids ...int) *rssSampler {
	ctx, cancel := context.WithCancel(ctx)
	s := &rssSampler{stop: cancel, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			now := time.Now()
			for _, pid := range pids {
				if kib, err := rssKiB(pid); err == nil { // a process that exited has no RSS
					s.mu.Lock()
					s.samples = append(s.samples, rssSample{at: now, pid: pid, kib: kib})
					s.mu.Unlock()
				}
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	return s
}

// Stop ends sampling and waits for the sampler.
func (s *rssSampler) Stop() {
	s.stop()
	<-s.done
}

// peak returns the highest RSS of pid in [from, to) and how many samples that window has.
func (s *rssSampler) peak(pid int, from, to time.Time) (kib int64, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, x := range s.samples {
		if x.pid == pid && !x.at.Before(from) && x.at.Before(to) {
			kib = max(kib, x.kib)
			n++
		}
	}
	return kib, n
}

// inspect reads the lease table joined with the raw stream's shards.
func (d *deployment) inspect(ctx context.Context) checkpoint.Snapshot {
	d.t.Helper()
	snap, err := d.tryInspect(ctx)
	if err != nil {
		d.t.Fatalf("inspect the lease table: %v", err)
	}
	return snap
}

// tryInspect is inspect that returns its error, e.g. before the workers have created the table.
func (d *deployment) tryInspect(ctx context.Context) (checkpoint.Snapshot, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return checkpoint.Inspect(ctx, d.stack.DynamoDB(), d.stack.Kinesis(), names.LeaseTable, names.RawStream, time.Now())
}

// seqAfter reports whether Kinesis sequence number a is after b ("" is before everything).
func seqAfter(a, b string) bool {
	if b == "" {
		return true
	}
	x, ok1 := new(big.Int).SetString(a, 10)
	y, ok2 := new(big.Int).SetString(b, 10)
	if !ok1 || !ok2 {
		return a > b
	}
	return x.Cmp(y) > 0
}

// waitStreamActive polls until the stream is ACTIVE again after a reshard.
func waitStreamActive(ctx context.Context, kc *kinesis.Client, stream string) error {
	return poll.Wait(ctx, time.Minute, 100*time.Millisecond, "stream "+stream+" ACTIVE", func(ctx context.Context) (bool, string) {
		out, err := kc.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(stream)})
		if err != nil {
			return false, err.Error()
		}
		return out.StreamDescriptionSummary.StreamStatus == ktypes.StreamStatusActive, string(out.StreamDescriptionSummary.StreamStatus)
	})
}

// openShards lists the open shards of stream (no ending sequence number), in ListShards order.
func openShards(ctx context.Context, kc *kinesis.Client, stream string) ([]ktypes.Shard, error) {
	var out []ktypes.Shard
	in := &kinesis.ListShardsInput{StreamName: aws.String(stream)}
	for {
		page, err := kc.ListShards(ctx, in)
		if err != nil {
			return nil, fmt.Errorf("list shards of %s: %w", stream, err)
		}
		for _, s := range page.Shards {
			if s.SequenceNumberRange == nil || s.SequenceNumberRange.EndingSequenceNumber == nil {
				out = append(out, s)
			}
		}
		if page.NextToken == nil {
			return out, nil
		}
		in = &kinesis.ListShardsInput{NextToken: page.NextToken}
	}
}

// splitShard splits shard at the middle of its hash range, waits for the stream to be ACTIVE and
// returns the two children's ids.
func splitShard(ctx context.Context, kc *kinesis.Client, stream, shard string) ([]string, error) {
	before, err := openShards(ctx, kc, stream)
	if err != nil {
		return nil, err
	}
	var parent *ktypes.Shard
	for i := range before {
		if aws.ToString(before[i].ShardId) == shard {
			parent = &before[i]
		}
	}
	if parent == nil {
		return nil, fmt.Errorf("split: %s is not an open shard of %s", shard, stream)
	}
	lo, _ := new(big.Int).SetString(aws.ToString(parent.HashKeyRange.StartingHashKey), 10)
	hi, _ := new(big.Int).SetString(aws.ToString(parent.HashKeyRange.EndingHashKey), 10)
	mid := new(big.Int).Add(lo, hi)
	mid.Rsh(mid, 1)
	if _, err := kc.SplitShard(ctx, &kinesis.SplitShardInput{StreamName: aws.String(stream), ShardToSplit: aws.String(shard),
		NewStartingHashKey: aws.String(mid.String())}); err != nil {
		return nil, fmt.Errorf("split %s: %w", shard, err)
	}
	if err := waitStreamActive(ctx, kc, stream); err != nil {
		return nil, err
	}
	return childrenOf(ctx, kc, stream, shard)
}

// mergeShards merges two adjacent open shards, waits for the stream to be ACTIVE and returns the
// child's id.
func mergeShards(ctx context.Context, kc *kinesis.Client, stream, a, b string) (string, error) {
	if _, err := kc.MergeShards(ctx, &kinesis.MergeShardsInput{StreamName: aws.String(stream),
		ShardToMerge: aws.String(a), AdjacentShardToMerge: aws.String(b)}); err != nil {
		return "", fmt.Errorf("merge %s+%s: %w", a, b, err)
	}
	if err := waitStreamActive(ctx, kc, stream); err != nil {
		return "", err
	}
	kids, err := childrenOf(ctx, kc, stream, a)
	if err != nil {
		return "", err
	}
	if len(kids) != 1 {
		return "", fmt.Errorf("merge %s+%s: %d children %v", a, b, len(kids), kids)
	}
	return kids[0], nil
}

func childrenOf(ctx context.Context, kc *kinesis.Client, stream, parent string) ([]string, error) {
	open, err := openShards(ctx, kc, stream)
	if err != nil {
		return nil, err
	}
	var kids []string
	for _, s := range open {
		if aws.ToString(s.ParentShardId) == parent || aws.ToString(s.AdjacentParentShardId) == parent {
			kids = append(kids, aws.ToString(s.ShardId))
		}
	}
	return kids, nil
}

// leaseLosses sums, over the workers still running, the shards whose processing stopped early
// (worker_shard_stops_total: a lease lost, fenced or expired), for the failure messages of
// scenarios that must not duplicate: a lost lease replays from the checkpoint by design.
func leaseLosses(ctx context.Context, ws ...*chaosWorker) (total float64, detail string) {
	var parts []string
	for _, w := range ws {
		select {
		case <-w.Done():
			continue
		default:
		}
		fams, err := scrape(ctx, w.metrics)
		if err != nil {
			parts = append(parts, w.Name+": "+err.Error())
			continue
		}
		n, _ := metricValue(fams, "worker_shard_stops_total", nil)
		total += n
		parts = append(parts, fmt.Sprintf("%s: %v", w.Name, n))
	}
	return total, strings.Join(parts, ", ")
}

// requireRunning fails the test if a worker that should have run the whole scenario exited: a
// scenario run with one worker fewer than it says proves less than it claims.
func requireRunning(t *testing.T, ws ...*chaosWorker) {
	t.Helper()
	for _, w := range ws {
		select {
		case <-w.Done():
			t.Errorf("%s exited during the run: %v (log %s)", w.Name, w.Err(), w.LogPath)
		default:
		}
	}
}

// chaosPollInterval is how often the chaos scenarios read the output streams while they wait. A
// tail poll lists and reads every shard of a dozen streams; polling it back to back would load
// the emulators the scenarios are measuring.
const chaosPollInterval = time.Second

// waitTail is waitFor with chaosPollInterval between polls.
func waitTail(t *testing.T, tail *audit.Tail, timeout time.Duration, what string, cond func(audit.Snapshot) bool) audit.Snapshot {
	t.Helper()
	return waitEvery(t, tail, timeout, chaosPollInterval, what, cond)
}
