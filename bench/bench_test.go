package bench

import (
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// The Benchmark* functions run each end-to-end scenario once at CI size (Quick), so that
// `go test -run '^$' -bench . -benchtime 1x ./bench/` compiles and exercises all of them; they report
// the scenario's figures as metrics and fail only when the scenario itself fails (a process dies, an
// event is lost), never on a time. `make bench` runs the full sizes through cmd/benchrun instead.

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

// binaries builds the worker, forwarder, loadgen and put loop commands once per test binary.
func binaries(b *testing.B) string {
	b.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "bench-bin-")
		if err != nil {
			buildErr = err
			return
		}
		cmd := exec.Command("go", "build", "-o", dir+string(filepath.Separator), "../cmd/worker", "../cmd/forwarder", "../cmd/loadgen", "./cmd/putloop")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = err
			b.Logf("%s", out)
			return
		}
		binDir = dir
	})
	if buildErr != nil {
		b.Fatalf("building the commands: %v", buildErr)
	}
	return binDir
}

func runScenario(b *testing.B, scenario string) *Report {
	b.Helper()
	cfg := Quick(binaries(b))
	cfg.Only = []string{scenario}
	var rep *Report
	for b.Loop() {
		var err error
		rep, err = Run(b.Context(), cfg, nil)
		if err != nil {
			if rep != nil {
				b.Fatalf("%v: %v", err, rep.Errors)
			}
			b.Fatal(err)
		}
	}
	return rep
}

func BenchmarkIngest(b *testing.B) {
	rep := runScenario(b, ScenarioIngest)
	b.ReportMetric(rep.Ingest.Ratio, "forwarder/put")
	b.ReportMetric(forwarderRatio(rep.Ingest), "forwarder/put-cpu")
	b.ReportMetric(mean(rep.Ingest.ForwarderRates), "forwarder-events/s")
}

func BenchmarkThroughput(b *testing.B) {
	rep := runScenario(b, ScenarioThroughput)
	t := rep.Throughput
	if !t.OK {
		b.Fatalf("output not exactly once and in order: %s", t.Audit)
	}
	b.ReportMetric(t.SteadyRatio, "worker/getrecords")
	b.ReportMetric(t.CopyRatio, "worker/copy")
	b.ReportMetric(t.FirstRecord.Seconds(), "s-to-first-record")
	b.ReportMetric(float64(t.CPUPerEvent.Microseconds()), "cpu-µs/event")
	b.ReportMetric(t.CPURatio, "worker/same-calls-loop-cpu")
	b.ReportMetric(t.Mix.RoundTrips(), "dedupe-roundtrips/event")
	b.ReportMetric(t.Mix.WriteUnits, "dedupe-writeunits/event")
}

func BenchmarkNaiveDedupe(b *testing.B) {
	rep := runScenario(b, ScenarioNaiveDedupe)
	b.ReportMetric(rep.NaiveDedupe.RoundTrips, "roundtrips/event")
}

func BenchmarkLatency(b *testing.B) {
	rep := runScenario(b, ScenarioLatency)
	l := rep.Latency
	if !l.Off.OK || !l.On.OK {
		b.Fatalf("output not exactly once and in order: %s / %s", l.Off.Audit, l.On.Audit)
	}
	b.ReportMetric(float64(l.Off.P50.Milliseconds()), "p50-ms")
	b.ReportMetric(float64(l.Off.P99.Milliseconds()), "p99-ms")
	b.ReportMetric(float64(l.On.P99.Milliseconds()), "p99-ms-window30s")
}

func BenchmarkBackpressure(b *testing.B) {
	rep := runScenario(b, ScenarioBackpressure)
	bp := rep.Backpressure
	if !bp.Recovered {
		b.Fatal("the worker did not deliver again after the outage")
	}
	b.ReportMetric(float64(bp.PeakRSS)/(1<<20), "peak-rss-MiB")
	b.ReportMetric(float64(bp.Growth)/(1<<20), "rss-growth-MiB")
}

func BenchmarkHotCustomer(b *testing.B) {
	rep := runScenario(b, ScenarioHot)
	h := rep.Hot
	for _, m := range []HotMode{h.Plain, h.Agg} {
		if !m.OK {
			b.Fatalf("hot run (aggregate %v) not exactly once and in order: %s", m.Aggregate, m.Audit)
		}
	}
	b.ReportMetric(h.Plain.KeptUp, "hot-events/s-plain")
	b.ReportMetric(h.Agg.KeptUp, "hot-events/s-aggregated")
}
