package bench

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"go.uber.org/zap"

	"github.com/kinesis-events/pipeline/internal/localstack"
)

// Scenario names, for Config.Only.
const (
	ScenarioIngest       = "ingest"
	ScenarioThroughput   = "throughput"
	ScenarioNaiveDedupe  = "naive-dedupe"
	ScenarioLatency      = "latency"
	ScenarioBackpressure = "backpressure"
	// ScenarioHot is the hot customer's ladder (issue 13), alone: `BENCH_ONLY=hot make bench`.
	ScenarioHot = "hot"
)

// Scenarios lists every scenario in the order Run executes them.
var Scenarios = []string{ScenarioIngest, ScenarioThroughput, ScenarioNaiveDedupe, ScenarioLatency, ScenarioBackpressure, ScenarioHot}

// Config sizes one benchmark run. Zero values take the defaults (the `make bench` sizes: eight to
// twelve minutes on a busy two-core machine, three to four of them the hot customer's ladders);
// Quick returns the sizes CI uses.
type Config struct {
	// Bin is the directory holding the worker, forwarder and loadgen binaries. Required.
	Bin string
	// Dir receives each scenario's logs and keys; default a new temporary directory, removed when
	// Run returns.
	Dir string
	// Stack chooses the emulators; the default is kinesalite + dynalite on free ports.
	Stack localstack.Options
	// Logger reports progress; default zap.NewNop().
	Logger *zap.Logger
	// Only runs these scenarios (see Scenarios); empty runs all. Throughput and NaiveDedupe use
	// Ingest's stream and events, so either runs Ingest too.
	Only []string

	// Events is the size of the pre-filled raw stream (Ingest and Throughput). Default 20,000.
	Events int
	// Customers is the number of distinct customers loadgen spreads events over. Default 1,000.
	Customers int
	// Seed makes every generated stream reproducible. Default 7.
	Seed int64
	// MaxRecords is the GetRecords limit of the baseline loop, the worker's own default. Default 2,000.
	MaxRecords int32
	// NaiveEvents is the number of conditional PutItem calls NaiveDedupe makes. Default 1,000.
	NaiveEvents int
	// LatencyRate and LatencyDuration give the steady load of each Latency run. Defaults 1,000/s, 20 s.
	LatencyRate     float64
	LatencyDuration time.Duration
	// IdleTime is the worker's wait after an empty GetRecords in Latency. Default 250 ms.
	IdleTime time.Duration
	// BackpressureRate, BreakerOpen and Warmup shape Backpressure: events/s sent throughout, how
	// long the analytics streams fail, and the healthy period before. Defaults 2,000/s, 60 s, 10 s.
	BackpressureRate float64
	BreakerOpen      time.Duration
	Warmup           time.Duration
	// Timeout bounds each scenario but Hot. Default 4 minutes.
	Timeout time.Duration
	// ProfileDir, when set, makes the measured worker and forwarder processes write pprof CPU and
	// allocation profiles there (worker -cpuprofile/-memprofile, forwarder --cpuprofile/--memprofile),
	// one pair per process, named after the scenario and run. Profiling costs a little CPU: the
	// figures of such a run are for finding where the time goes.
	ProfileDir string

	// Hot (issue 13), run once with AGGREGATE_KEYS off and once on, one worker each: HotCold
	// customers at HotColdRate events/s each, and one hot customer at each of HotRates in turn
	// (ascending) for HotStep, until a rate at which it does not keep up (its lag over the second
	// half of the step exceeds HotLagBound); then HotRefine more steps between the last rate kept up
	// and the first that was not (geometric means). Every PutRecords of the worker to an analytics
	// stream is delayed by HotRTT at a fault proxy, AWS's round trip that the emulator lacks.
	// Defaults: 1,000 customers at 1/s; 25, 50, 100, 200, 300, 500 and 1,000 events/s; 15 s steps;
	// 3 s lag; one refinement (-1: none); 25 ms (see BENCHMARKS.md, "Hot customer"). The scenario
	// is bounded by HotTimeout (default 6 minutes) instead of Timeout.
	HotCold                                  int
	HotColdRate                              float64
	HotRates                                 []float64
	HotStep, HotLagBound, HotRTT, HotTimeout time.Duration
	HotRefine                                int
}

// Quick returns a configuration small enough for CI's single run of each benchmark: the same
// scenarios, a few thousand events, a 10 s outage.
func Quick(bin string) Config {
	return Config{Bin: bin, Events: 4000, Customers: 200, NaiveEvents: 300, LatencyRate: 500, LatencyDuration: 4 * time.Second,
		BackpressureRate: 500, BreakerOpen: 10 * time.Second, Warmup: 3 * time.Second, Timeout: 3 * time.Minute,
		HotCold: 50, HotRates: []float64{20, 40, 80}, HotStep: 6 * time.Second, HotRefine: -1, HotTimeout: 3 * time.Minute}
}

// withDefaults returns c with every zero field set to its default: the one place they are defined.
func (c Config) withDefaults() Config {
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	setI := func(p *int, v int) {
		if *p == 0 {
			*p = v
		}
	}
	setD := func(p *time.Duration, v time.Duration) {
		if *p == 0 {
			*p = v
		}
	}
	setI(&c.Events, 20000)
	setI(&c.Customers, 1000)
	setI(&c.NaiveEvents, 1000)
	if c.Seed == 0 {
		c.Seed = 7
	}
	if c.MaxRecords == 0 {
		c.MaxRecords = 2000
	}
	if c.LatencyRate == 0 {
		c.LatencyRate = 1000
	}
	setD(&c.LatencyDuration, 20*time.Second)
	setD(&c.IdleTime, 250*time.Millisecond)
	if c.BackpressureRate == 0 {
		c.BackpressureRate = 2000
	}
	setD(&c.BreakerOpen, 60*time.Second)
	setD(&c.Warmup, 10*time.Second)
	setD(&c.Timeout, 4*time.Minute)
	setI(&c.HotCold, 1000)
	setF := func(p *float64, v float64) {
		if *p == 0 {
			*p = v
		}
	}
	setF(&c.HotColdRate, 1)
	if len(c.HotRates) == 0 {
		c.HotRates = []float64{25, 50, 100, 200, 300, 500, 1000}
	}
	setD(&c.HotStep, 15*time.Second)
	setD(&c.HotLagBound, 3*time.Second)
	setD(&c.HotRTT, 25*time.Millisecond)
	setD(&c.HotTimeout, 6*time.Minute)
	switch c.HotRefine {
	case 0:
		c.HotRefine = 1
	case -1: // none (Quick)
		c.HotRefine = 0
	}
	return c
}

// Validate reports every problem of c as it is, at once. It is pure: it applies no defaults (a zero
// field means its default and is valid) and touches no file; Run checks that the binaries exist.
func (c Config) Validate() error {
	var errs []error
	if c.Bin == "" {
		errs = append(errs, errors.New("bin (directory of the worker, forwarder and loadgen binaries) is required"))
	}
	for _, s := range c.Only {
		if !slices.Contains(Scenarios, s) {
			errs = append(errs, fmt.Errorf("unknown scenario %q (have %v)", s, Scenarios))
		}
	}
	if c.Events < 0 || (c.Events > 0 && c.Events < 100) {
		errs = append(errs, fmt.Errorf("events %d: want at least 100", c.Events))
	}
	if c.Customers < 0 || c.NaiveEvents < 0 {
		errs = append(errs, fmt.Errorf("customers %d and naive events %d: want at least 1", c.Customers, c.NaiveEvents))
	}
	if c.MaxRecords < 0 || c.MaxRecords > 10000 {
		errs = append(errs, fmt.Errorf("max records %d outside 1..10000", c.MaxRecords))
	}
	if c.LatencyRate < 0 || c.BackpressureRate < 0 {
		errs = append(errs, fmt.Errorf("latency rate %v and backpressure rate %v: want positive", c.LatencyRate, c.BackpressureRate))
	}
	if c.LatencyDuration < 0 || (c.LatencyDuration > 0 && c.LatencyDuration < time.Second) {
		errs = append(errs, fmt.Errorf("latency duration %s: want at least 1s", c.LatencyDuration))
	}
	if c.BreakerOpen < 0 || (c.BreakerOpen > 0 && c.BreakerOpen < time.Second) {
		errs = append(errs, fmt.Errorf("breaker open %s: want at least 1s", c.BreakerOpen))
	}
	if c.Warmup < 0 || c.IdleTime < 0 {
		errs = append(errs, fmt.Errorf("warmup %s and idle time %s: want positive", c.Warmup, c.IdleTime))
	}
	if c.Timeout < 0 || (c.Timeout > 0 && c.Timeout < 30*time.Second) {
		errs = append(errs, fmt.Errorf("timeout %s: want at least 30s", c.Timeout))
	}
	if c.HotTimeout < 0 || (c.HotTimeout > 0 && c.HotTimeout < 30*time.Second) {
		errs = append(errs, fmt.Errorf("hot timeout %s: want at least 30s", c.HotTimeout))
	}
	if c.HotCold < 0 || c.HotColdRate < 0 {
		errs = append(errs, fmt.Errorf("hot: %d other customers at %v events/s: want positive", c.HotCold, c.HotColdRate))
	}
	for i, r := range c.HotRates {
		if r < 1 || (i > 0 && r <= c.HotRates[i-1]) {
			errs = append(errs, fmt.Errorf("hot rates %v: want ascending, each at least 1 event/s", c.HotRates))
			break
		}
	}
	if c.HotRefine < -1 {
		errs = append(errs, fmt.Errorf("hot refine %d: want -1 (none), 0 (default) or more", c.HotRefine))
	}
	if c.HotStep < 0 || (c.HotStep > 0 && c.HotStep < 2*time.Second) || c.HotLagBound < 0 || c.HotRTT < 0 {
		errs = append(errs, fmt.Errorf("hot: step %s (at least 2s), lag bound %s and RTT %s (positive)", c.HotStep, c.HotLagBound, c.HotRTT))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("bench config: %w", err)
	}
	return nil
}

// checkBinaries reports every binary Run needs that bin lacks.
func checkBinaries(bin string) error {
	var errs []error
	for _, b := range []string{"worker", "forwarder", "loadgen"} {
		if _, err := os.Stat(filepath.Join(bin, b)); err != nil {
			errs = append(errs, fmt.Errorf("binary %s: %w", b, err))
		}
	}
	return errors.Join(errs...)
}

func (c Config) wants(s string) bool {
	if len(c.Only) == 0 {
		return true
	}
	for _, o := range c.Only {
		if o == s || (s == ScenarioIngest && (o == ScenarioThroughput || o == ScenarioNaiveDedupe)) {
			return true
		}
	}
	return false
}
