package bench

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseGoBench(t *testing.T) {
	out := `goos: linux
BenchmarkPipeline/clean         	   20000	     45464 ns/op	      6080 cpu-ns/event	     21995 events/s	         0.09050 roundtrips/event	    1753 B/op	       7 allocs/op
BenchmarkPipeline/clean         	   20000	     40000 ns/op	      6000 cpu-ns/event	     21995 events/s	         0.09050 roundtrips/event	    1753 B/op	       7 allocs/op
BenchmarkPipeline/clean         	   20000	     40000 ns/op	      9000 cpu-ns/event	     21995 events/s	         0.09050 roundtrips/event	    1753 B/op	       7 allocs/op
BenchmarkFloor-2                	   20000	     21933 ns/op	      5459 cpu-ns/event	     45594 events/s	     771 B/op	      16 allocs/op
PASS
ok  	github.com/kinesis-events/pipeline/processors	2.081s
`
	got, err := ParseGoBench(strings.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, unit string
		want       float64
	}{
		{benchPipeline, cpuUnit, 6080}, // median of three
		{benchPipeline, "allocs/op", 7},
		{benchPipeline, "roundtrips/event", 0.0905},
		{benchFloor, cpuUnit, 5459}, // -2 suffix dropped
	}
	for _, c := range cases {
		if v := got.median(c.name, c.unit); math.Abs(v-c.want) > 1e-9 {
			t.Errorf("%s %s = %v, want %v", c.name, c.unit, v, c.want)
		}
	}
	// Ratios pair the i-th run of each: 6080/5459 only (the floor ran once).
	if r := got.ratio(benchPipeline, benchFloor, cpuUnit); math.Abs(r-6080.0/5459) > 1e-9 {
		t.Errorf("ratio %v", r)
	}
	if got.median("BenchmarkNone", cpuUnit) != 0 || got.ratio("BenchmarkNone", benchFloor, cpuUnit) != 0 {
		t.Error("figures for a benchmark that did not run")
	}
	if _, err := ParseGoBench(strings.NewReader("BenchmarkX 10 abc ns/op\n")); err == nil {
		t.Error("a malformed value parsed")
	}
}

func TestParseMetrics(t *testing.T) {
	text := `# HELP pipeline_dedupe_round_trips_total Round trips.
# TYPE pipeline_dedupe_round_trips_total counter
pipeline_dedupe_round_trips_total{op="get"} 12
pipeline_dedupe_round_trips_total{op="put"} 40
pipeline_records_in_total 1000
pipeline_records_out_total{stream="analytics-a",type="a"} 600
pipeline_records_out_total{stream="analytics-b",type="b"} 4e+02
`
	s, err := parseMetrics(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		match []string
		want  float64
	}{
		{"pipeline_records_in_total", nil, 1000},
		{"pipeline_records_out_total", nil, 1000},
		{"pipeline_dedupe_round_trips_total", []string{`op="get"`}, 12},
		{"pipeline_dedupe_round_trips_total", nil, 52},
		{"pipeline_missing", nil, 0},
	}
	for _, c := range cases {
		if got := s.sum(c.name, c.match...); got != c.want {
			t.Errorf("sum(%s, %v) = %v, want %v", c.name, c.match, got, c.want)
		}
	}
}

func TestPercentile(t *testing.T) {
	var lat []time.Duration
	for i := 1; i <= 100; i++ {
		lat = append(lat, time.Duration(i)*time.Millisecond)
	}
	cases := []struct {
		q    float64
		want time.Duration
	}{{0.5, 50 * time.Millisecond}, {0.99, 99 * time.Millisecond}, {1, 100 * time.Millisecond}, {0, time.Millisecond}}
	for _, c := range cases {
		if got := percentile(lat, c.q); got != c.want {
			t.Errorf("percentile(%v) = %s, want %s", c.q, got, c.want)
		}
	}
	if percentile(nil, 0.5) != 0 {
		t.Error("percentile of nothing is not zero")
	}
}

func TestScaleModel(t *testing.T) {
	in := ScaleInputs{CPUPerEvent: 70 * time.Microsecond, RawBytes: 600, OutBytes: 550, ItemsPerEvent: 1.1, KeysReadPerEvent: 1.0,
		TypeShare: map[string]float64{"a": 0.5, "b": 0.5}}
	rows := scaleModel(in, []float64{10_000, 1_000_000})
	r := rows[0]
	// 10,000 records/s at 1,000 per shard and 80 % headroom: 12.5 -> 13 shards (bytes: 5.7 MiB/s, fewer).
	if r.RawShards != 13 {
		t.Errorf("raw shards %d, want 13", r.RawShards)
	}
	// Two streams of 5,000/s each: 7 shards each.
	if r.AnalyticsShards != 14 {
		t.Errorf("analytics shards %d, want 14", r.AnalyticsShards)
	}
	// 10,000 * 70 µs = 0.7 core at 70 % = 1 vCPU.
	if r.VCPUs != 1 || r.Workers != 1 {
		t.Errorf("vCPUs %d workers %d, want 1 and 1", r.VCPUs, r.Workers)
	}
	// Many customers: 2 WCU per event (mark and cursor) sets the partitions: 20,000 / 1,000.
	if r.DedupeWCU != 11_000 || r.DedupeRCU != 10_000 || r.ManyWCU != 20_000 || r.ManyRCU != 20_000 || r.ManyRCUBehind != 10_000 || r.DedupePartitions != 20 {
		t.Errorf("dedupe %v WCU %v RCU, many customers %v WCU %v / %v RCU, %d partitions", r.DedupeWCU, r.DedupeRCU, r.ManyWCU, r.ManyRCU, r.ManyRCUBehind, r.DedupePartitions)
	}
	if big := rows[1]; big.VCPUs != 100 || big.Workers != 50 {
		t.Errorf("1M/s: %d vCPUs, %d workers; want 100 and 50", big.VCPUs, big.Workers)
	}
	// Large records make the byte limit the binding one.
	if n := shardsFor(1000, 4096); n != 5 { // 3.9 MiB/s / 0.8
		t.Errorf("shards for 1,000 x 4 KiB records: %d, want 5", n)
	}
}

func TestConfigValidate(t *testing.T) {
	bin := t.TempDir()
	for _, b := range []string{"worker", "forwarder", "loadgen"} {
		if err := os.WriteFile(filepath.Join(bin, b), nil, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"defaults", Config{Bin: bin}, true},
		{"quick", Quick(bin), true},
		{"no bin", Config{}, false},
		{"defaults applied", Config{Bin: bin}.withDefaults(), true},
		{"unknown scenario", Config{Bin: bin, Only: []string{"nope"}}, false},
		{"tiny", Config{Bin: bin, Events: 10}, false},
		{"max records", Config{Bin: bin, MaxRecords: 20000}, false},
		{"short timeout", Config{Bin: bin, Timeout: time.Second}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := c.cfg.Validate(); (err == nil) != c.ok {
				t.Fatalf("Validate() = %v, want ok %v", err, c.ok)
			}
		})
	}
}

func TestConfigValidateReportsEveryProblem(t *testing.T) {
	err := Config{Only: []string{"nope"}, Events: 10, MaxRecords: 20000, Timeout: time.Second}.Validate()
	if err == nil {
		t.Fatal("Validate() = nil for four problems")
	}
	for _, want := range []string{"bin", "unknown scenario", "events 10", "max records", "timeout"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %q, want it to mention %q", err, want)
		}
	}
}

// Missing binaries are Run's check (Validate touches no file): it fails before starting anything.
func TestRunMissingBinaries(t *testing.T) {
	_, err := Run(t.Context(), Config{Bin: t.TempDir()}, nil)
	if err == nil || !strings.Contains(err.Error(), "binary worker") || !strings.Contains(err.Error(), "binary loadgen") {
		t.Fatalf("Run with an empty bin = %v, want every missing binary named", err)
	}
}

func TestWants(t *testing.T) {
	cfg := Config{Only: []string{ScenarioNaiveDedupe}}
	if !cfg.wants(ScenarioIngest) || !cfg.wants(ScenarioNaiveDedupe) || cfg.wants(ScenarioLatency) || cfg.wants(ScenarioThroughput) {
		t.Fatal("naive-dedupe must run ingest (its events) and nothing else")
	}
	if all := (Config{}); !all.wants(ScenarioBackpressure) {
		t.Fatal("no Only: every scenario runs")
	}
}

func TestUpdateDoc(t *testing.T) {
	path := filepath.Join(t.TempDir(), "BENCHMARKS.md")
	doc := "# Benchmarks\n\nintro\n\n" + docBegin + "\nold figures\n" + docEnd + "\n\nnotes\n"
	if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	rep := &Report{Started: time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC), Commit: "abc1234", Machine: Machine{NProc: 2, CPU: "test"},
		Throughput: &ThroughputResult{Events: 100, SteadyRatio: 0.95, FloorRates: []float64{100}, FirstRecord: time.Second, RoundTrips: 0.04, OK: true}}
	if err := rep.UpdateDoc(path, "make bench"); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	got := string(b)
	for _, want := range []string{"intro", "notes", "`abc1234`", "| 2 | worker (full pipeline) / GetRecords loop, steady | 0.95", docBegin, docEnd} {
		if !strings.Contains(got, want) {
			t.Errorf("updated doc lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "old figures") {
		t.Error("old figures kept")
	}
	if err := rep.UpdateDoc(filepath.Join(t.TempDir(), "none.md"), "x"); err == nil {
		t.Error("a missing file updated")
	}
	if err := os.WriteFile(path, []byte("no markers"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := rep.UpdateDoc(path, "x"); err == nil {
		t.Error("a file without markers updated")
	}
}
