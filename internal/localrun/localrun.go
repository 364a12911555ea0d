// Package localrun is `make run`: it starts the local stack on loopback, provisions the streams and
// tables, starts the worker fleet as real processes, sends signed customer events through
// `loadgen | forwarder`, shows live progress, and stops everything it started when the run is
// complete, the time bound passes, or the user presses Ctrl-C. It ends with a summary that checks the
// output streams against what was sent (exactly once, in per-customer order).
package localrun

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/kinesis-events/pipeline/internal/audit"
	"github.com/kinesis-events/pipeline/internal/fleet"
	"github.com/kinesis-events/pipeline/internal/kclctl"
	"github.com/kinesis-events/pipeline/internal/localstack"
	"github.com/kinesis-events/pipeline/internal/names"
)

// Config is one local run.
type Config struct {
	Events, Customers, Workers, Shards int
	Rate                               float64
	DupRatio, ConflictRatio            float64
	OOORatio, BadRatio                 float64
	Seed                               int64
	Duration                           time.Duration // upper bound of the whole run after the stack is up
	KinesisPort, DynamoDBPort          int
	MetricsBasePort                    int // worker n serves /metrics on base+n; 0 = free ports
	Kinesis, DynamoDB                  localstack.Flavor
	Bin, Dir                           string
	Keep                               bool // leave the stack and workers up after the run until Ctrl-C
	Out                                io.Writer
	Interactive                        bool // redraw the live view in place (a terminal)
	// Spike, when set, makes the run a spike (`make spike`): see runSpike.
	Spike *SpikeConfig
}

// Defaults are the values `make run` uses unless flags say otherwise.
func Defaults() Config {
	return Config{
		Events: 20000, Customers: 500, Workers: 2, Shards: 4, Rate: 2000,
		DupRatio: 0.02, ConflictRatio: 0.005, OOORatio: 0.05, BadRatio: 0.005,
		Seed: 1, Duration: 5 * time.Minute, KinesisPort: 4567, DynamoDBPort: 4569, MetricsBasePort: 9100,
		Kinesis: localstack.KinesisLite, DynamoDB: localstack.Dynalite, Bin: "bin", Dir: ".run", Out: os.Stdout,
	}
}

// Validate reports every invalid field.
func (c Config) Validate() error {
	var errs []error
	if c.Events < 1 {
		errs = append(errs, errors.New("--events must be at least 1"))
	}
	if c.Workers < 1 || c.Workers > 16 {
		errs = append(errs, errors.New("--workers must be 1..16"))
	}
	if c.Shards < 1 || c.Shards > 64 {
		errs = append(errs, errors.New("--shards must be 1..64"))
	}
	if c.Rate < 0 {
		errs = append(errs, errors.New("--rate must not be negative"))
	}
	if c.Duration <= 0 {
		errs = append(errs, errors.New("--duration must be positive"))
	}
	for _, r := range []float64{c.DupRatio, c.ConflictRatio, c.OOORatio, c.BadRatio} {
		if r < 0 || r >= 0.5 {
			errs = append(errs, errors.New("ratios must be in [0, 0.5)"))
			break
		}
	}
	if c.Spike != nil {
		errs = append(errs, c.Spike.validate())
	}
	return errors.Join(errs...)
}

// Run executes the local run. It returns an error when the stack could not start, and ErrNotClean
// when the run finished but the output was not exactly-once and in order.
func Run(ctx context.Context, cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	if cfg.Spike != nil {
		return runSpike(ctx, cfg)
	}
	ui := newView(cfg.Out, cfg.Interactive)
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

	ui.step("starting emulators (%s, %s) on 127.0.0.1", cfg.Kinesis, cfg.DynamoDB)
	t0 := time.Now()
	st, err := localstack.Launch(ctx, localstack.Options{
		Kinesis: cfg.Kinesis, DynamoDB: cfg.DynamoDB, KinesisPort: cfg.KinesisPort, DynamoDBPort: cfg.DynamoDBPort,
		LogDir: filepath.Join(dir, "emulators"), Logger: zap.NewNop(),
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
	topo.RawShards = cfg.Shards
	ui.step("creating streams (raw: %d shards) and tables", cfg.Shards)
	t0 = time.Now()
	pctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	err = fleet.Provision(pctx, st, topo)
	cancel()
	if err != nil {
		return ui.fail(err)
	}
	env, err := fleet.NewEnv(st.Env(), bin, dir, topo)
	if err != nil {
		return ui.fail(err)
	}
	ui.ok("%d streams, table %s (%s)", len(topo.AnalyticsStreams())+4, names.DedupeTable, since(t0))

	ui.step("starting %d workers", cfg.Workers)
	workers := make([]*fleet.Proc, 0, cfg.Workers)
	ports := make([]int, 0, cfg.Workers)
	defer func() {
		if len(workers) == 0 {
			return
		}
		ui.step("stopping workers (SIGTERM: checkpoint and release leases)")
		for _, w := range workers {
			if err := w.Stop(20 * time.Second); err != nil {
				ui.warn("%s: %v", w.Name, err)
			}
		}
		ui.ok("")
	}()
	for n := 1; n <= cfg.Workers; n++ {
		port := 0
		if cfg.MetricsBasePort > 0 {
			port = cfg.MetricsBasePort + n
		} else if port, err = fleet.FreePort(); err != nil {
			return ui.fail(err)
		}
		if err := portFree(port); err != nil {
			return ui.fail(fmt.Errorf("worker %d metrics port: %w (use --metrics-port to choose another base)", n, err))
		}
		w, err := env.StartWorker(n, port)
		if err != nil {
			return ui.fail(err)
		}
		workers = append(workers, w)
		ports = append(ports, port)
	}
	ui.ok("metrics on %s; logs in %s", portList(ports), rel(dir))

	ui.step("sending %d events through the forwarder (%s)", cfg.Events, rateText(cfg.Rate))
	send, err := env.Send(fleet.Load{
		Count: cfg.Events, Customers: cfg.Customers, Rate: cfg.Rate, Seed: cfg.Seed,
		DupRatio: cfg.DupRatio, ConflictRatio: cfg.ConflictRatio, OOORatio: cfg.OOORatio, BadRatio: cfg.BadRatio,
	})
	if err != nil {
		return ui.fail(err)
	}
	ui.ok("loadgen | forwarder started")
	ui.kclctlHint(st.Env())

	clients := &kclctl.Clients{Kinesis: st.Kinesis(), DynamoDB: st.DynamoDB()}
	tail := env.NewTail(st.Kinesis())
	res, rep, runErr := watch(ctx, cfg, ui, send, tail, clients, workers)

	sum := summary{cfg: cfg, res: res, rep: rep, dedupe: scrapeDedupe(ports)}
	if sum.unknown, err = env.UnknownOutcomes(); err != nil {
		return ui.fail(err)
	}
	ui.summary(sum)
	if cfg.Keep && ctx.Err() == nil {
		ui.printf("\n--keep: the stack and workers stay up; use the kclctl line above. Ctrl-C to stop.\n")
		<-ctx.Done()
	}
	if runErr != nil {
		return runErr
	}
	if !sum.clean() {
		return ErrNotClean
	}
	return nil
}

// ErrNotClean is returned by Run when the summary found loss, duplicates or order violations.
var ErrNotClean = errors.New("the run was not exactly-once and in order (see the summary)")

func since(t time.Time) string { return time.Since(t).Round(10 * time.Millisecond).String() }

func rateText(r float64) string {
	if r == 0 {
		return "as fast as possible"
	}
	return strconv.FormatFloat(r, 'f', -1, 64) + " events/s"
}

func portList(ports []int) string {
	s := ""
	for i, p := range ports {
		if i > 0 {
			s += ", "
		}
		s += ":" + strconv.Itoa(p)
	}
	return s
}

func rel(p string) string {
	wd, err := os.Getwd()
	if err != nil {
		return p
	}
	if r, err := filepath.Rel(wd, p); err == nil {
		return r
	}
	return p
}

// watch shows live progress until every unique event and every expected quarantine record arrived,
// the time bound passed, or ctx ended.
func watch(ctx context.Context, cfg Config, ui *view, send *fleet.Send, tail *audit.Tail, clients *kclctl.Clients,
	workers []*fleet.Proc) (*fleet.SendResult, *audit.Report, error) {
	deadline := time.NewTimer(cfg.Duration)
	defer deadline.Stop()
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	start := time.Now()
	var res *fleet.SendResult
	var runErr error
	sendDone := send.Done()

	// The output streams and the lease table are read in the background so a slow emulator never
	// freezes the view.
	bg, stopBG := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	defer func() { stopBG(); wg.Wait() }()
	var mu sync.Mutex
	var shards []kclctl.Shard
	var tailErr error
	wg.Add(2)
	go func() {
		defer wg.Done()
		for bg.Err() == nil {
			pctx, cancel := context.WithTimeout(bg, 30*time.Second)
			err := tail.Poll(pctx)
			cancel()
			mu.Lock()
			tailErr = err
			mu.Unlock()
			sleepCtx(bg, 300*time.Millisecond)
		}
	}()
	go func() {
		defer wg.Done()
		for bg.Err() == nil {
			pctx, cancel := context.WithTimeout(bg, 10*time.Second)
			r, err := kclctl.InspectLive(pctx, clients, names.LeaseTable, names.RawStream, time.Now())
			cancel()
			if err == nil {
				mu.Lock()
				shards = r.Shards
				mu.Unlock()
			}
			sleepCtx(bg, time.Second)
		}
	}()

	for {
		if r, err := awaitRun(ctx, ui, send, &sendDone, deadline.C, tick.C, cfg.Duration); err != nil {
			runErr = err
		} else if r != nil {
			res = r
		}
		for _, w := range workers {
			select {
			case <-w.Done():
				if runErr == nil {
					runErr = fmt.Errorf("%s exited unexpectedly: %v (see %s)", w.Name, w.Err(), rel(w.LogPath))
				}
			default:
			}
		}
		snap := tail.Snapshot()
		mu.Lock()
		st := liveState{elapsed: time.Since(start), fwd: send.Stats(), snap: snap, shards: shards, total: cfg.Events, readErr: tailErr}
		mu.Unlock()
		ui.live(st)
		if runErr != nil {
			return res, nil, runErr
		}
		if res != nil && complete(res, snap) {
			stopBG()
			wg.Wait()
			rep := tail.Check(fleet.Expected(res.Manifest))
			return res, &rep, nil
		}
	}
}

// awaitRun waits for the next event of a run's main loop and handles it: an interrupt or the time
// bound stops the load and returns the run's error; the load's end (*sendDone, then set to nil so
// it is not waited for again) returns its result or error; a tick returns nothing.
func awaitRun(ctx context.Context, ui *view, send *fleet.Send, sendDone *<-chan struct{}, deadline, tick <-chan time.Time, bound time.Duration) (*fleet.SendResult, error) {
	select {
	case <-ctx.Done():
		ui.printf("\ninterrupted: stopping\n")
		send.Stop()
		return nil, ctx.Err()
	case <-deadline:
		ui.printf("\ntime bound %s reached: stopping\n", bound)
		send.Stop()
		return nil, fmt.Errorf("run did not complete within --duration %s", bound)
	case <-*sendDone:
		*sendDone = nil
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		return send.Wait(wctx)
	case <-tick:
		return nil, nil
	}
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// complete reports whether every unique valid event and every expected quarantine record arrived.
func complete(res *fleet.SendResult, s audit.Snapshot) bool {
	q := 0
	for _, n := range s.Quarantined {
		q += n
	}
	return s.Unique >= res.Manifest.Unique && q >= expectedQuarantine(res)
}

func expectedQuarantine(res *fleet.SendResult) int {
	n := res.Manifest.Duplicates.Conflicting
	for _, c := range res.Manifest.Bad {
		n += c
	}
	return n
}
