package localrun

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/kinesis-events/pipeline/checkpoint"
	"github.com/kinesis-events/pipeline/internal/audit"
	"github.com/kinesis-events/pipeline/internal/autoscale"
	"github.com/kinesis-events/pipeline/internal/faultproxy"
	"github.com/kinesis-events/pipeline/internal/fleet"
	"github.com/kinesis-events/pipeline/internal/kclctl"
	"github.com/kinesis-events/pipeline/internal/loadgen"
	"github.com/kinesis-events/pipeline/internal/localstack"
)

// SpikeConfig is what only a spike run (`make spike`, --spike) uses.
type SpikeConfig struct {
	// Profile is the load's rate over time (loadgen -profile).
	Profile string
	// HotRate is the hot customer's rate (customer 1), events/s.
	HotRate float64
	// ShardRecords and ShardBytes are the per-shard write limits the fault proxy enforces on every
	// stream (a tenth of AWS's by default).
	ShardRecords, ShardBytes float64
	// Fleet is how localrun plays ECS: the worker count follows the open raw shards.
	Fleet FleetPolicy
	// AutoscaleInterval is the autoscaler's tick.
	AutoscaleInterval time.Duration
	// LagTarget and LagWithin are the target: the lag stays under LagTarget from at most LagWithin
	// after the spike starts.
	LagTarget, LagWithin time.Duration
	// Aggregate turns AGGREGATE_KEYS on at both ends: the forwarder writes a customer's events that
	// wait behind its record in flight as one KPL aggregate on the raw stream, and the workers do the
	// same on the analytics streams. Locally the forwarder stands in for EventBridge and Lambda,
	// which write a customer's events concurrently (the worker restores their order); one record per
	// customer per round trip would cap the hot customer at the emulator's round trip instead.
	Aggregate bool
	// WorkerProfiles has every worker write a CPU profile of its run into the run directory;
	// EmulatorProfiles has the Node.js emulators write V8 CPU profiles into <dir>/emulators.
	WorkerProfiles, EmulatorProfiles bool
}

// DefaultSpikeProfile is 150 events/s for 30 s, a ramp to 1,500/s in 30 s, 3 minutes at 1,500/s,
// back to 150/s in 30 s, and 3 more minutes at 150/s for the scale-in.
const DefaultSpikeProfile = "150:30s,150-1500:30s,1500:3m,1500-150:30s,150:3m"

// SpikeDefaults are the values `make spike` uses unless flags say otherwise.
func SpikeDefaults() Config {
	c := Defaults()
	c.Shards, c.Customers, c.Duration = 2, 1000, 25*time.Minute
	c.Workers = 2
	c.Spike = &SpikeConfig{
		Profile: DefaultSpikeProfile, HotRate: 30, ShardRecords: 100, ShardBytes: 100 << 10, Aggregate: true,
		Fleet:             FleetPolicy{WorkerPolicy: autoscale.WorkerPolicy{ShardsPerWorker: 4, MinWorkers: 2, MaxWorkers: 6}, ScaleInAfter: 30 * time.Second},
		AutoscaleInterval: 5 * time.Second, LagTarget: 5 * time.Second, LagWithin: 3 * time.Minute,
	}
	return c
}

func (s *SpikeConfig) validate() error {
	var errs []error
	p, err := loadgen.ParseProfile(s.Profile)
	if err != nil {
		errs = append(errs, fmt.Errorf("--profile: %w", err))
	} else if s.HotRate >= p.RateAt(0) && s.HotRate > 0 {
		errs = append(errs, fmt.Errorf("--hot-rate %v must be below the profile's starting rate %v", s.HotRate, p.RateAt(0)))
	}
	if s.HotRate < 0 || s.ShardRecords <= 0 || s.ShardBytes <= 0 {
		errs = append(errs, errors.New("--hot-rate must not be negative, --shard-records and --shard-bytes must be positive"))
	}
	if err := s.Fleet.Validate(); err != nil {
		errs = append(errs, err)
	}
	if s.AutoscaleInterval <= 0 || s.LagTarget <= 0 || s.LagWithin <= 0 {
		errs = append(errs, errors.New("the autoscale interval and the lag target must be positive"))
	}
	return errors.Join(errs...)
}

// spikeStart is when the profile's first rise begins, from the start of the load.
func spikeStart(p loadgen.Profile) time.Duration {
	var at time.Duration
	for _, s := range p {
		if s.To > s.From {
			return at
		}
		at += s.Duration
	}
	return 0
}

// quarantineGrace is how long a spike run waits for quarantine records once every event arrived.
const quarantineGrace = time.Minute

// stopGrace is how long a worker stopped with SIGTERM may take before it is killed: its
// -shutdown-grace (60 s) and the read deadline of a call in flight (10 s), as ECS's stopTimeout
// (90 s) is.
const stopGrace = 80 * time.Second

// ErrTargetMissed is returned by Run when a spike run was exactly-once and in order but missed
// the target (dead letters, or the lag did not settle in time).
var ErrTargetMissed = errors.New("the spike missed its target (see the summary)")

// record is what a spike run observes while it runs.
type record struct {
	mu       sync.Mutex
	start    time.Time // the load's start
	shards   map[string][]shardPoint
	workers  []workerPoint
	balance  []balancePoint
	dedupe   map[string]float64 // from workers already stopped
	leaseOps map[string]float64 // the workers' AWS calls by service/operation (aws_requests_total)
	calls    []callsPoint       // the proxy's counts by operation, every 10 s
	errs     []string           // sampler errors (first few)
}

// callsPoint is what the fault proxy had seen by operation at a time.
type callsPoint struct {
	At   time.Duration
	ByOp map[string]faultproxy.Counts
}

type shardPoint struct {
	At   time.Duration
	Open int
}

type workerPoint struct {
	At      time.Duration
	Running int
	What    string // "start w3", "stop w3"
	Reason  string
}

type balancePoint struct {
	At                time.Duration
	Leasable, Unowned int
	Live              int // open shards, and closed ones not finished
	Spread            int
	Switches          int64                 // sum of OwnerSwitches over the raw stream's rows
	Shards            map[string]shardLease // every shard of the raw stream
	Workers           int                   // running workers
}

type shardLease struct {
	Switches int64 // OwnerSwitches
	Held     bool  // a live lease, or finished (SHARD_END)
}

func (r *record) since() time.Duration { return time.Since(r.start) }

func (r *record) noteErr(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.errs) < 10 {
		r.errs = append(r.errs, fmt.Sprintf("+%s ", r.since().Round(time.Second))+fmt.Sprintf(format, args...))
	}
}

// runSpike is Run for a spike: the fault proxy in front of kinesalite for every writer, enforcing
// the per-shard limits; the autoscaler as a process (kclctl autoscale run); the worker fleet
// following the raw stream's shards; the load by profile with a hot customer.
func runSpike(ctx context.Context, cfg Config) error {
	sp := cfg.Spike
	prof, _ := loadgen.ParseProfile(sp.Profile) // validated
	ui := newView(cfg.Out, false)
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return err
	}
	bin, err := filepath.Abs(cfg.Bin)
	if err != nil {
		return err
	}
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(bin, "kclctl")); err != nil {
		return fmt.Errorf("binary kclctl not built in %s (run `make build`): %w", bin, err)
	}

	nodeProfiles, stopEmulators := "", time.Duration(0)
	if sp.EmulatorProfiles {
		nodeProfiles, stopEmulators = filepath.Join(dir, "emulators"), time.Minute // time to write the profiles
	}
	ui.step("starting emulators (%s, %s) on 127.0.0.1", cfg.Kinesis, cfg.DynamoDB)
	t0 := time.Now()
	st, err := localstack.Launch(ctx, localstack.Options{
		Kinesis: cfg.Kinesis, DynamoDB: cfg.DynamoDB, KinesisPort: cfg.KinesisPort, DynamoDBPort: cfg.DynamoDBPort,
		LogDir: filepath.Join(dir, "emulators"), Logger: zap.NewNop(), NodeProfileDir: nodeProfiles, StopTimeout: stopEmulators,
	})
	if err != nil {
		return ui.fail(err)
	}
	defer func() {
		ui.step("stopping emulators")
		_ = st.Close()
		ui.ok("")
	}()
	ui.ok("Kinesis %s, DynamoDB %s (%s)", st.KinesisEndpoint, st.DynamoDBEndpoint, since(t0))

	topo := fleet.DefaultTopology()
	topo.RawShards, topo.AnalyticsShards = cfg.Shards, 1
	ui.step("creating streams (raw: %d shards, every output stream: 1) and tables", cfg.Shards)
	pctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	err = fleet.Provision(pctx, st, topo)
	cancel()
	if err != nil {
		return ui.fail(err)
	}
	ui.ok("%d streams", len(topo.AnalyticsStreams())+4)

	ui.step("starting the fault proxy in front of Kinesis: %.0f records/s and %s/s per shard", sp.ShardRecords, kclctl.HumanBytes(sp.ShardBytes))
	// kinesalite serves one request at a time: at most 8 go to it at once, and a request whose
	// client gave up waiting is never sent (it would only delay the ones still waited for).
	proxy, err := faultproxy.Start(ctx, faultproxy.Config{Upstream: st.KinesisEndpoint, Logger: zap.NewNop(), MaxUpstream: 8,
		ShardLimits: &faultproxy.ShardLimits{RecordsPerSecond: sp.ShardRecords, BytesPerSecond: sp.ShardBytes, Shards: st.Kinesis(),
			Refresh: 5 * time.Second}})
	if err != nil {
		return ui.fail(err)
	}
	defer proxy.Close()
	ui.ok("%s (every writer goes through it)", proxy.URL())
	env, err := fleet.NewEnv(fleet.KinesisEndpoint(st.Env(), proxy.URL()), bin, dir, topo)
	if err != nil {
		return ui.fail(err)
	}

	rec := &record{shards: map[string][]shardPoint{}, dedupe: map[string]float64{}, leaseOps: map[string]float64{}}
	// Fewer empty polls of the many shards a spike leaves (kinesalite serves every one of them),
	// and, as ECS gives a task 90 s after SIGTERM, a minute to finish the batch in flight: on a busy
	// emulator 10 s (the worker's default) cut batches whose outputs were written, and their next
	// owner wrote them again.
	wopts := fleet.WorkerOptions{Flags: []string{"-idle-time", "500ms", "-shutdown-grace", "60s",
		"-aggregate-keys=" + strconv.FormatBool(sp.Aggregate)}}
	if sp.WorkerProfiles {
		wopts.CPUProfileDir = dir
	}
	pool := env.NewPool(wopts)
	scrapeStopped := func(w *fleet.PoolWorker) {
		d := scrapeDedupe([]int{w.Port})
		ops := scrapeCounter([]int{w.Port}, "aws_requests_total", "service", "operation")
		rec.mu.Lock()
		for k, v := range d {
			rec.dedupe[k] += v
		}
		for k, v := range ops {
			rec.leaseOps[k] += v
		}
		rec.mu.Unlock()
	}
	defer func() {
		if pool.Size() == 0 {
			return
		}
		ui.step("stopping workers (SIGTERM: checkpoint and release leases)")
		for _, err := range pool.StopAll(stopGrace, scrapeStopped) {
			ui.warn("%v", err)
		}
		ui.ok("")
	}()
	initial := sp.Fleet.Workers(cfg.Shards)
	ui.step("starting %d workers (then as many as the live raw shards want: %d per worker, %d..%d)", initial,
		sp.Fleet.ShardsPerWorker, sp.Fleet.MinWorkers, sp.Fleet.MaxWorkers)
	for range initial {
		if _, err := pool.Start(); err != nil {
			return ui.fail(err)
		}
	}
	ui.ok("logs in %s", rel(dir))

	ui.step("starting the autoscaler (kclctl autoscale run --profile local, every %s)", sp.AutoscaleInterval)
	method := "auto" // UpdateShardCount where the emulator has it
	if cfg.Kinesis == localstack.KinesisLite {
		method = "split-merge" // kinesalite has no UpdateShardCount
	}
	asPort, err := fleet.FreePort()
	if err != nil {
		return ui.fail(err)
	}
	scaler, err := fleet.Start("autoscaler", filepath.Join(bin, "kclctl"), []string{"autoscale", "run", "--profile", "local",
		"--source", "proxy", "--proxy-url", proxy.URL(), "--interval", sp.AutoscaleInterval.String(), "--id", "localrun-autoscaler", "--history", "100", "--method", method,
		"--records-per-shard", ftoa(sp.ShardRecords), "--bytes-per-shard", ftoa(sp.ShardBytes),
		"--shards-per-worker", strconv.Itoa(sp.Fleet.ShardsPerWorker), "--min-workers", strconv.Itoa(sp.Fleet.MinWorkers),
		"--max-workers", strconv.Itoa(sp.Fleet.MaxWorkers), "--metrics-addr", "127.0.0.1:" + strconv.Itoa(asPort)},
		env.StackEnv, filepath.Join(dir, "autoscaler.log"))
	if err != nil {
		return ui.fail(err)
	}
	defer func() { _ = scaler.Stop(10 * time.Second) }()
	ui.ok("metrics on :%d; decisions: bin/kclctl autoscale status", asPort)

	hot := loadgen.DevTokenizer().Token("customer", "customer-1")
	agg := "off: one record per customer per call"
	if sp.Aggregate {
		agg = "on: a customer's waiting events go as one KPL aggregate, on the raw and analytics streams"
	}
	ui.step("sending %s through the forwarder, hot customer at %.0f events/s; aggregation %s", prof, sp.HotRate, agg)
	send, err := env.Send(fleet.Load{
		Profile: sp.Profile, HotRate: sp.HotRate, Customers: cfg.Customers, Seed: cfg.Seed, Count: 0,
		DupRatio: cfg.DupRatio, ConflictRatio: cfg.ConflictRatio, OOORatio: cfg.OOORatio, BadRatio: cfg.BadRatio,
		// Locally the forwarder stands in for EventBridge and Lambda, which retry a throttled
		// invocation for up to 24 h: it retries a throttled event until it lands.
		// Requests may wait long on an emulator this busy.
		ForwarderFlags: []string{"-max-attempts", "1000000", "-request-timeout", "30s", "-aggregate-keys=" + strconv.FormatBool(sp.Aggregate)},
	})
	if err != nil {
		return ui.fail(err)
	}
	rec.start = time.Now()
	ui.ok("%d lines over %s; the spike starts at +%s", prof.Lines(), prof.Duration(), spikeStart(prof))
	ui.kclctlHint(st.Env())

	tail := env.NewTail(st.Kinesis())
	tail.Follow(hot)
	res, rep, runErr := watchSpike(ctx, cfg, ui, send, tail, st, pool, scaler, rec, proxy, scrapeStopped)

	// The autoscaler's rows, before the stack goes.
	rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	status, serr := autoscale.Store{DDB: st.DynamoDB(), Table: fleet.LeaseTable}.Read(rctx)
	rcancel()
	if serr != nil {
		ui.warn("could not read the autoscaler's decisions: %v", serr)
	}
	for _, w := range pool.Running() {
		scrapeStopped(w) // the running workers' counts, for the summary
	}
	rec.calls = append(rec.calls, callsPoint{At: rec.since(), ByOp: proxy.ByOperation()})
	// Each period's worst delivery split at its raw record's arrival: the forwarder's part against
	// the way from the raw shard to the releasing batch.
	sctx, scancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	if err := tail.SplitAtRaw(sctx, fleet.RawStream); err != nil {
		ui.warn("could not read the raw stream's arrival times: %v", err)
	}
	scancel()
	sum := spikeSummary{summary: summary{cfg: cfg, res: res, rep: rep, dedupe: rec.dedupe}, prof: prof, rec: rec, status: status, shed: proxy.Shed(),
		load: proxy.Load(rec.start.Add(-time.Minute)), timeline: tail.Timeline(), hot: tail.Followed()}
	sum.upErrs = upstreamErrors(proxy)
	if sum.summary.unknown, err = env.UnknownOutcomes(); err != nil {
		return ui.fail(err)
	}
	sum.print(ui)
	if cfg.Keep && ctx.Err() == nil {
		ui.printf("\n--keep: the stack, the workers and the autoscaler stay up; use the kclctl line above (kclctl autoscale status). Ctrl-C to stop.\n")
		<-ctx.Done()
	}
	if runErr != nil {
		return runErr
	}
	if !sum.summary.clean() {
		return ErrNotClean
	}
	if !sum.targetMet() {
		return ErrTargetMissed
	}
	return nil
}

// watchSpike runs the spike until every event arrived, the time bound passed, or ctx ended: it
// samples the streams' shards and the leases, lets the fleet follow the raw stream, and shows
// progress every 5 s.
func watchSpike(ctx context.Context, cfg Config, ui *view, send *fleet.Send, tail *audit.Tail, st *localstack.Stack,
	pool *fleet.Pool, scaler *fleet.Proc, rec *record, proxy *faultproxy.Proxy, scrape func(*fleet.PoolWorker)) (*fleet.SendResult, *audit.Report, error) {
	sp := cfg.Spike
	deadline := time.NewTimer(cfg.Duration)
	defer deadline.Stop()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	bg, stopBG := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	defer func() { stopBG(); wg.Wait() }()
	streams := append([]string{fleet.RawStream}, cfg.outputStreams()...)
	var mu sync.Mutex
	open := map[string]int{}
	live := 0 // the raw stream's shards the fleet must read: open, and closed ones not finished
	host, _ := os.Hostname()
	wg.Add(3)
	go func() { // the output streams
		defer wg.Done()
		for bg.Err() == nil {
			pctx, cancel := context.WithTimeout(bg, 5*time.Minute) // a busy emulator answers big reads slowly; cursors keep their place
			if err := tail.Poll(pctx); err != nil && bg.Err() == nil {
				rec.noteErr("reading the output streams: %v", err)
			}
			cancel()
			sleepCtx(bg, 3*time.Second) // arrival times come from the stream, not from when it is read
		}
	}()
	go func() { // every stream's open shards
		defer wg.Done()
		for bg.Err() == nil {
			for _, s := range streams {
				pctx, cancel := context.WithTimeout(bg, 10*time.Second)
				n, err := fleet.OpenShards(pctx, st.Kinesis(), s)
				cancel()
				if err != nil {
					continue
				}
				mu.Lock()
				changed := open[s] != n
				open[s] = n
				mu.Unlock()
				if changed {
					rec.mu.Lock()
					rec.shards[s] = append(rec.shards[s], shardPoint{At: rec.since(), Open: n})
					rec.mu.Unlock()
				}
			}
			sleepCtx(bg, 2*time.Second)
		}
	}()
	go func() { // the raw stream's leases, for the balancing figures
		defer wg.Done()
		for bg.Err() == nil {
			pctx, cancel := context.WithTimeout(bg, 10*time.Second)
			snap, err := checkpoint.Inspect(pctx, st.DynamoDB(), st.Kinesis(), fleet.LeaseTable, fleet.RawStream, time.Now())
			cancel()
			if err == nil {
				var ids []string
				for _, w := range pool.Running() {
					ids = append(ids, host+"-w"+strconv.Itoa(w.N))
				}
				b := balanceOf(snap, ids)
				rec.mu.Lock()
				b.At = rec.since()
				rec.balance = append(rec.balance, b)
				rec.mu.Unlock()
				mu.Lock()
				live = b.Live
				mu.Unlock()
			}
			sleepCtx(bg, 2*time.Second)
		}
	}()

	var res *fleet.SendResult
	var runErr error
	sendDone := send.Done()
	var lowSince time.Time
	var allEventsAt time.Time // when every unique event had arrived (quarantine records may lag)
	lastView, lastCalls := time.Time{}, time.Time{}
	for {
		if time.Since(lastCalls) >= 10*time.Second {
			lastCalls = time.Now()
			byOp := proxy.ByOperation()
			rec.mu.Lock()
			rec.calls = append(rec.calls, callsPoint{At: rec.since(), ByOp: byOp})
			rec.mu.Unlock()
		}
		if r, err := awaitRun(ctx, ui, send, &sendDone, deadline.C, tick.C, cfg.Duration); err != nil {
			runErr = err
		} else if r != nil {
			res = r
		}
		if w := pool.Exited(); w != nil && runErr == nil {
			runErr = fmt.Errorf("%s exited unexpectedly: %v (see %s)", w.Name, w.Err(), rel(w.LogPath))
		}
		select {
		case <-scaler.Done():
			if runErr == nil {
				runErr = fmt.Errorf("the autoscaler exited unexpectedly: %v (see %s)", scaler.Err(), rel(scaler.LogPath))
			}
		default:
		}
		mu.Lock()
		rawLive := live
		mu.Unlock()
		if rawLive > 0 && runErr == nil {
			var m fleetMove
			m, lowSince = planFleet(time.Now(), sp.Fleet, pool.Size(), rawLive, lowSince)
			for range m.Start {
				w, err := pool.Start()
				if err != nil {
					runErr = err
					break
				}
				rec.mu.Lock()
				rec.workers = append(rec.workers, workerPoint{At: rec.since(), Running: pool.Size(), What: "start w" + strconv.Itoa(w.N), Reason: m.Reason})
				rec.mu.Unlock()
			}
			if m.Stop > 0 {
				w, err := pool.StopNewest(stopGrace, scrape)
				if err != nil {
					rec.noteErr("%v", err)
				}
				if w != nil {
					rec.mu.Lock()
					rec.workers = append(rec.workers, workerPoint{At: rec.since(), Running: pool.Size(), What: "stop w" + strconv.Itoa(w.N), Reason: m.Reason})
					rec.mu.Unlock()
				}
			}
		}
		snap := tail.Snapshot()
		if time.Since(lastView) >= 5*time.Second || runErr != nil {
			lastView = time.Now()
			mu.Lock()
			o := copyCounts(open)
			mu.Unlock()
			ui.printf("%s\n", spikeLine(rec, send.Stats(), snap, tail.Timeline(), o, pool.Size(), proxy))
		}
		if runErr != nil {
			return res, nil, runErr
		}
		if res != nil && allEventsAt.IsZero() && snap.Unique >= res.Manifest.Unique {
			allEventsAt = time.Now()
		}
		// Every event and every quarantine record arrived; or every event did and the quarantine
		// records have had a minute more: then the summary counts the ones that never came.
		if res != nil && (complete(res, snap) || !allEventsAt.IsZero() && time.Since(allEventsAt) > quarantineGrace) {
			stopBG()
			wg.Wait()
			r := tail.Check(fleet.Expected(res.Manifest))
			return res, &r, nil
		}
	}
}

func copyCounts(m map[string]int) map[string]int {
	out := make(map[string]int, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// outputStreams are the output streams of the spike's topology.
func (c Config) outputStreams() []string {
	topo := fleet.DefaultTopology()
	return append(topo.AnalyticsStreams(), fleet.QuarantineStream, fleet.DLQStream, fleet.LateStream)
}

// balanceOf measures the raw stream's leases: leasable shards (not finished, not waiting on a
// parent), those without a live lease, the spread of live leases over the running workers, and
// the ownership changes so far.
func balanceOf(snap checkpoint.Snapshot, running []string) balancePoint {
	b := balancePoint{Shards: map[string]shardLease{}, Workers: len(running)}
	held := map[string]int{}
	for _, id := range running {
		held[id] = 0
	}
	for _, s := range snap.Shards {
		b.Switches += s.OwnerSwitches
		live := s.Owner != "" && !s.LeaseExpired
		b.Shards[s.ShardID] = shardLease{Switches: s.OwnerSwitches, Held: live || s.State == checkpoint.ShardFinished}
		if s.State == checkpoint.ShardOpen || s.State == checkpoint.ShardClosed {
			b.Live++
		}
		if s.State == checkpoint.ShardFinished || s.State == checkpoint.ShardGone || len(s.WaitingOn) > 0 {
			continue
		}
		b.Leasable++
		if !live {
			b.Unowned++
			continue
		}
		if _, ok := held[s.Owner]; ok {
			held[s.Owner]++
		}
	}
	lo, hi := -1, 0
	for _, n := range held {
		if lo < 0 || n < lo {
			lo = n
		}
		hi = max(hi, n)
	}
	if lo >= 0 {
		b.Spread = hi - lo
	}
	return b
}

// upstreamErrors lists the emulator's error answers by operation and type ("" when none).
func upstreamErrors(p *faultproxy.Proxy) string {
	var parts []string
	for op := range p.ByOperation() {
		for typ, n := range p.UpstreamErrors(op, "") {
			parts = append(parts, fmt.Sprintf("%s %s %d", op, typ, n))
		}
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}
