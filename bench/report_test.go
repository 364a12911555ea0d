package bench

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"
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
	in := ScaleInputs{CPUPerEvent: 70 * time.Microsecond, RawBytes: 600, OutBytes: 550, WriteUnits: 0.05, WriteUnitsMany: 0.12, ReadUnits: 0.001,
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
	// The 1M-customer figure sets the partitions: 1,200 WCU / 1,000 per partition.
	if math.Abs(r.DedupeWCU-500) > 1e-9 || math.Abs(r.DedupeWCUMany-1200) > 1e-9 || math.Abs(r.DedupeRCU-10) > 1e-9 || r.DedupePartitions != 2 {
		t.Errorf("dedupe %v WCU (%v with 1M customers) %v RCU, %d partitions", r.DedupeWCU, r.DedupeWCUMany, r.DedupeRCU, r.DedupePartitions)
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
		{"hot rates", Config{Bin: bin, HotRates: []float64{10, 100, 1000}}, true},
		{"hot rates not ascending", Config{Bin: bin, HotRates: []float64{100, 10}}, false},
		{"hot rate below 1", Config{Bin: bin, HotRates: []float64{0.5, 10}}, false},
		{"hot short step", Config{Bin: bin, HotStep: time.Second}, false},
		{"hot negative RTT", Config{Bin: bin, HotRTT: -time.Millisecond}, false},
		{"hot refine", Config{Bin: bin, HotRefine: -2}, false},
		{"hot short timeout", Config{Bin: bin, HotTimeout: time.Second}, false},
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
	if all := (Config{}); !all.wants(ScenarioBackpressure) || !all.wants(ScenarioHot) {
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
		Throughput: &ThroughputResult{Events: 100, SteadyRatio: 0.95, FloorRates: []float64{100}, FirstRecord: time.Second, OK: true,
			Mix: callMix{RecordsIn: 100, DedupePuts: 0.04}, CPURatio: 1.8, WorkerCPUs: []time.Duration{9 * time.Microsecond}, LoopCPUs: []time.Duration{5 * time.Microsecond}}}
	if err := rep.UpdateDoc(path, "make bench"); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	got := string(b)
	for _, want := range []string{"intro", "notes", "`abc1234`", "| 2 | worker (full pipeline) / GetRecords loop, steady | 0.95", docBegin, docEnd,
		"worker CPU per event / loop CPU per event: 1.80\n", "dedupe round trips per event: 0.0400\n", "pipeline cost per billion events / EventBridge cost: not measured\n"} {
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

// TestLabels: issue 15's six figures, with exactly the labels, in its order; a figure
// whose scenario did not run says so instead of printing zero.
func TestLabels(t *testing.T) {
	rep := &Report{
		InProcess: InProcess{
			benchStateFew:  {writeUnitsUnit: {0.07, 0.069, 0.071}, roundTripsUnit: {0.003}},
			benchStateMany: {writeUnitsUnit: {0.061}, roundTripsUnit: {0.0031}},
		},
		Ingest: &IngestResult{ForwarderCPU: 12 * time.Microsecond, PutCPU: 8 * time.Microsecond,
			SingleCPU: 12 * time.Microsecond, LoopProcessCPU: 10 * time.Microsecond, MarginalCPU: 9 * time.Microsecond, LoopMarginalCPU: 6 * time.Microsecond},
		Throughput: &ThroughputResult{CPURatio: 1.734, Mix: callMix{RecordsIn: 20000, DedupePuts: 0.002}},
		Cost:       []CostModel{{Inputs: CostInputs{Rate: 1000}, Ratio: 3}, {Inputs: CostInputs{Rate: costRate}, Ratio: 0.4567}},
	}
	var out strings.Builder
	rep.Print(&out)
	want := "worker CPU per event / loop CPU per event: 1.73\n" +
		"forwarder CPU per event / put loop CPU per event: 1.50\n" +
		"dedupe write units per event (1M customers): 0.061\n" +
		"dedupe write units per event (10k customers): 0.070\n" +
		"dedupe round trips per event: 0.0031\n" +
		"pipeline cost per billion events / EventBridge cost: 0.46\n"
	if !strings.HasSuffix(out.String(), want) {
		t.Errorf("printed figures end:\n%s\nwant:\n%s", out.String()[max(0, out.Len()-len(want)-200):], want)
	}
	for _, l := range (&Report{}).Labels() {
		if l.Value != "not measured" {
			t.Errorf("%s: %q without any scenario", l.Name, l.Value)
		}
	}
}

func TestCostModel(t *testing.T) {
	in := CostInputs{
		Rate: 10_000, EventBytes: 700, RawBytes: 580, OutBytes: 540, OutRecords: 1,
		TypeShare: map[string]float64{"a": 0.5, "b": 0.5}, WorkerCPU: 20 * time.Microsecond, ForwarderCPU: 10 * time.Microsecond,
		DedupeWriteUnits: 0.06, KinesisWireBytes: 2000, WorkerLogBytes: 1, EMFBytes: 500, MetricsBytes: 20 << 10,
		IdleCalls: map[string]float64{"DynamoDB.UpdateItem": 2, "DynamoDB.Scan": 1, "Kinesis.ListShards": 4, "Kinesis.GetRecords": 16}, IdleShards: 4,
		PutCallsPerBatch: 2,
	}
	m := costModel(in, DefaultStack())
	line := func(name string) CostLine {
		for _, l := range m.Lines {
			if strings.HasPrefix(l.Component, name) {
				return l
			}
		}
		t.Fatalf("no line %q", name)
		return CostLine{}
	}
	near := func(what string, got, want float64) {
		t.Helper()
		if math.Abs(got-want) > 1e-6*math.Max(1, math.Abs(want)) {
			t.Errorf("%s = %.6f, want %.6f", what, got, want)
		}
	}
	hours := 1e9 / 10_000 / 3600.0
	near("EventBridge", m.EventBridge, 1000)
	// 13 raw shards (10,000 records/s at 800 per shard), 1e9 PUT units.
	near("Kinesis raw", line("Kinesis raw").PerBillion, 13*hours*0.015+1000*0.014)
	near("DynamoDB dedupe", line("DynamoDB dedupe (on demand)").PerBillion, 1000*0.06*0.625)
	// 15 ms + 10 µs at 256/1769 of a vCPU = 15.07 ms -> 16 ms billed.
	near("Lambda", line("Lambda").PerBillion, 200+1e9*0.25*0.016*0.0000133334)
	// 10,000 x 20 µs = 0.2 vCPU: the minimum of two tasks.
	if m.Workers != 2 {
		t.Errorf("workers %d, want 2", m.Workers)
	}
	near("Fargate", line("Fargate").PerBillion, 2*hours*(0.5*0.03238+0.00356))
	// 4 ListShards/s per worker, 2 workers, over the hours.
	near("CloudTrail", line("CloudTrail management").PerBillion, 4*2*hours*3600/1e5*2)
	var rest float64
	for _, l := range m.Lines {
		if !l.Yardstick && !l.Option {
			rest += l.PerBillion
		}
	}
	near("rest", m.Rest, rest)
	near("ratio", m.Ratio, rest/1000)
	if !line("NAT").Option || !line("CloudTrail data").Option || line("EventBridge").Yardstick != true {
		t.Error("options or yardstick not marked")
	}
	// More events per hour spread the hourly charges thinner.
	in.Rate = 100_000
	if big := costModel(in, DefaultStack()); big.Ratio >= m.Ratio {
		t.Errorf("ratio at 100k/s %.3f not below 10k/s %.3f", big.Ratio, m.Ratio)
	}
}

func TestLoopHelpers(t *testing.T) {
	var o owedCalls
	got := 0
	for range 10 {
		got += o.take(&o.puts, 0.35)
	}
	if got != 3 {
		t.Errorf("10 x 0.35 owed: %d calls, want 3", got)
	}
	recs := make([]ktypes.Record, 7)
	parts := split(recs, 3)
	if len(parts) != 3 || len(parts[0])+len(parts[1])+len(parts[2]) != 7 {
		t.Errorf("split 7 in 3: %v", parts)
	}
	if len(split(recs, 20)) != 7 || len(split(nil, 2)) != 0 {
		t.Error("split into more parts than records")
	}
	if v := labelValue(`{operation="PutRecords",service="Kinesis"}`, "service"); v != "Kinesis" {
		t.Errorf("labelValue %q", v)
	}
	s := samples{"aws_requests_total": {`{operation="PutRecords",service="Kinesis"}`: 10, `{operation="Scan",service="DynamoDB"}`: 4}}
	later := samples{"aws_requests_total": {`{operation="PutRecords",service="Kinesis"}`: 10, `{operation="Scan",service="DynamoDB"}`: 9}}
	idle := idleCalls(s, later, 5*time.Second)
	if idle["DynamoDB.Scan"] != 1 || idle["Kinesis.PutRecords"] != 0 {
		t.Errorf("idle calls %v", idle)
	}
	mix := mixOf(samples{
		"pipeline_records_in_total":         {"": 1000},
		"pipeline_records_out_total":        {`{stream="a",type="a"}`: 990},
		"pipeline_quarantined_total":        {`{reason="x"}`: 10},
		"pipeline_put_calls_total":          {`{stream="a"}`: 20},
		"pipeline_dedupe_round_trips_total": {`{op="put"}`: 3, `{op="get"}`: 1, `{op="swap"}`: 2},
		"pipeline_dedupe_keys_total":        {`{op="get"}`: 5},
		"pipeline_dedupe_write_units_total": {"": 60},
	})
	if mix.PutCalls != 0.02 || mix.PutRecords != 1 || mix.RoundTrips() != 0.006 || mix.KeysPerGet != 5 || mix.WriteUnits != 0.06 {
		t.Errorf("mix %+v", mix)
	}
}

// TestForwarderRatio: issue 15's forwarder figure is the larger of the two like-for-like ratios
// (whole runs, and past a run's first Events events, of the forwarder and the put loop process),
// both printed on its line; the put loop inside the benchmark's process, which pays no start-up,
// is printed on a line of its own and is not the figure; without the process runs there is none.
func TestForwarderRatio(t *testing.T) {
	ing := &IngestResult{Events: 20000, ForwarderCPU: 14 * time.Microsecond, PutCPU: 7 * time.Microsecond,
		SingleCPU: 14 * time.Microsecond, LoopProcessCPU: 12 * time.Microsecond, MarginalCPU: 9100 * time.Nanosecond, LoopMarginalCPU: 7 * time.Microsecond}
	figure := func(ing *IngestResult) (label, value string) {
		var out strings.Builder
		(&Report{Ingest: ing}).Print(&out)
		for _, l := range (&Report{Ingest: ing}).Labels() {
			if strings.HasPrefix(l.Name, "forwarder") {
				value = l.Value
			}
		}
		const row = "both processes of their own measured alike"
		if i := strings.Index(out.String(), row); i >= 0 {
			label, _, _ = strings.Cut(out.String()[i:], "\n")
		}
		return label, value
	}
	row, v := figure(ing)
	if v != "1.30" || !strings.Contains(row, "1.30 (whole runs 1.17: 14µs vs 12µs; past the first 20000 1.30: 9.1µs vs 7µs)") {
		t.Errorf("warm ratio the larger: figure %q, row %q", v, row)
	}
	ing.LoopProcessCPU = 9 * time.Microsecond
	if row, v := figure(ing); v != "1.56" || !strings.Contains(row, "1.56 (whole runs 1.56") || !strings.HasSuffix(row, "MISSED") {
		t.Errorf("whole runs the larger: figure %q, row %q", v, row)
	}
	var out strings.Builder
	(&Report{Ingest: ing}).Print(&out)
	if !strings.Contains(out.String(), "whole run 2.00 (14µs vs 7µs); past a run's first 20000 1.30 (9.1µs vs 7µs)") {
		t.Errorf("no line against the put loop inside the benchmark's process:\n%s", out.String())
	}
	ing.LoopMarginalCPU = 0
	if row, v := figure(ing); v != "not measured" || row != "" {
		t.Errorf("without the put loop process past its first events: figure %q, row %q", v, row)
	}
}
