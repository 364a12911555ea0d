package bench

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"
)

// Report is everything one Run measured. A nil part did not run; Errors says why a part that
// should have run has no figures.
type Report struct {
	Started time.Time
	Elapsed time.Duration
	Commit  string
	Machine Machine

	InProcess    InProcess
	Ingest       *IngestResult
	Throughput   *ThroughputResult
	NaiveDedupe  *NaiveDedupeResult
	Latency      *LatencyResult
	Backpressure *BackpressureResult
	Hot          *HotResult
	ScaleInputs  *ScaleInputs
	Scale        []ScaleRow
	// Cost prices a billion events through the deployed stack at each of CostRates.
	Cost []CostModel

	Errors map[string]string

	typeShare map[string]float64 // of the throughput run's load
}

// CostRates are the event rates the cost model is computed at; the label uses costRate.
var CostRates = []float64{1_000, 10_000, 100_000}

const costRate = 10_000

// Machine describes where the figures were taken.
type Machine struct {
	NProc              int
	CPU                string
	LoadStart, LoadEnd string // /proc/loadavg's 1, 5 and 15 minute averages
}

func machine() Machine {
	m := Machine{NProc: runtime.NumCPU(), LoadStart: loadavg()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	return m
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// Target is one of issue 7's targets with the figure measured for it.
type Target struct {
	Part    string
	Measure string
	Figure  string
	Want    string // "" for an informational line
	Met     bool
}

// cpuUnit is the in-process benchmarks' CPU metric.
const cpuUnit = "cpu-ns/event"

// The issue's targets.
const (
	wantPerCore        = 100_000
	wantFloorRatio     = 1.5
	wantReadRatio      = 0.9
	wantFirstRecord    = 2 * time.Second
	wantIngestRatio    = 0.9
	wantP99            = 1500 * time.Millisecond
	wantRoundTrips     = 0.05
	wantCPURatio       = 2.0
	wantForwarderRatio = 1.5
	wantUnitsMany      = 0.2
	wantUnitsFew       = 0.1
	wantCostRatio      = 0.5
	wantPeakRSS        = 300e6
	flatMinGrowth      = 16 << 20
	flatGrowthFraction = 0.10
)

// Targets lists every measured figure, each with its target when the issue sets one.
func (r *Report) Targets() []Target {
	var ts []Target
	add := func(part, measure, figure, want string, met bool) {
		ts = append(ts, Target{Part: part, Measure: measure, Figure: figure, Want: want, Met: met})
	}
	if p := r.InProcess; p != nil && p.median(benchPipeline, cpuUnit) > 0 && p.median(benchFloor, cpuUnit) > 0 {
		pipe, floor := p.median(benchPipeline, cpuUnit), p.median(benchFloor, cpuUnit)
		runs := len(p[benchPipeline][cpuUnit])
		add("1", fmt.Sprintf("pipeline CPU per event, clean (in-process, -cpu 1, median of %d runs)", runs),
			fmt.Sprintf("%.0f ns, %.0f allocs", pipe, p.median(benchPipeline, "allocs/op")), "", true)
		add("1", "floor CPU per event (encoding/json decode + HMAC)", fmt.Sprintf("%.0f ns, %.0f allocs", floor, p.median(benchFloor, "allocs/op")), "", true)
		add("1", "pipeline events/s per core", fmt.Sprintf("%.0f", 1e9/pipe), fmt.Sprintf(">= %d", wantPerCore), 1e9/pipe >= wantPerCore)
		ratio := p.ratio(benchPipeline, benchFloor, cpuUnit)
		add("1", "pipeline / floor, CPU per event (median of per-run ratios)", fmt.Sprintf("%.2fx", ratio), fmt.Sprintf("<= %.1fx", wantFloorRatio), ratio <= wantFloorRatio)
		if m := p.median(benchPipelineMixed, cpuUnit); m > 0 {
			add("1", "pipeline events/s per core, 5% dups + 10% reordered", fmt.Sprintf("%.0f (%.2fx floor)", 1e9/m, p.ratio(benchPipelineMixed, benchFloor, cpuUnit)), "", true)
		}
	}
	if t := r.Ingest; t != nil {
		add("2", "forwarder local mode / raw PutRecords, same records", fmt.Sprintf("%.3f (%s vs %s ev/s)", t.Ratio, rates(t.ForwarderRates), rates(t.PutRates)),
			fmt.Sprintf(">= %.1f", wantIngestRatio), t.Ratio >= wantIngestRatio)
		add("2", "CPU per event: forwarder process vs put loop (SDK included); kinesalite per record during each", fmt.Sprintf("%s vs %s; %s vs %s",
			us(t.ForwarderCPU), us(t.PutCPU), us(t.KinesisCPU), us(t.PutKinesisCPU)), "", true)
		if ds := t.Distinct; ds != nil {
			add("2", "same, events of 10x as many customers (the order rule almost never holds one back)", fmt.Sprintf("%.3f (%s vs %s ev/s)", ds.Ratio, rates(ds.ForwarderRates), rates(ds.PutRates)), "", true)
		}
	}
	if t := r.Throughput; t != nil {
		add("2", "worker (full pipeline) / GetRecords loop, steady", fmt.Sprintf("%.2f (%.0f vs %s rec/s)", t.SteadyRatio, t.SteadyRate, rates(t.FloorRates)),
			fmt.Sprintf(">= %.1f", wantReadRatio), t.SteadyRatio >= wantReadRatio)
		add("2", "same, from worker process start (start-up included)", fmt.Sprintf("%.2f (%.0f rec/s over %d events)", t.Ratio, t.WorkerRate, t.Events), "", true)
		add("2", "worker / copy loop (GetRecords + PutRecords of every record)", fmt.Sprintf("%.2f (%s rec/s)", t.CopyRatio, rates(t.CopyRates)), "", true)
		add("2", "worker start to first record delivered", t.FirstRecord.Round(time.Millisecond).String(), "<= "+wantFirstRecord.String(), t.FirstRecord <= wantFirstRecord)
		add("2", "worker CPU per event, end to end (SDK included)", fmt.Sprintf("%s (%.0f events/s per core)", t.CPUPerEvent.Round(100*time.Nanosecond), 1/t.CPUPerEvent.Seconds()), "", true)
		add("2", "emulator CPU per event during the worker run: kinesalite, dynalite", fmt.Sprintf("%s, %s (kinesalite per record: loop %s, copy loop %s)",
			us(t.KinesisCPU), us(t.DynamoDBCPU), us(t.FloorCPU), us(t.CopyCPU)), "", true)
		add("2", "exactly-once audit of the throughput run", t.Audit, "ok", t.OK)
	}
	if l := r.Latency; l != nil {
		for _, run := range []LatencyRun{l.Off, l.On} {
			add("3", fmt.Sprintf("put -> analytics p50 / p99 at %.0f ev/s, window %s", l.Rate, windowName(run.Window)),
				fmt.Sprintf("%s / %s (max %s)", ms(run.P50), ms(run.P99), ms(run.Max)), "p99 <= "+wantP99.String(), run.P99 <= wantP99 && run.OK)
		}
		d50, d99 := l.On.P50-l.Off.P50, l.On.P99-l.Off.P99
		add("3", "latency change, reorder window 0 -> 30 s (gap-free)", fmt.Sprintf("p50 %+dms, p99 %+dms", d50.Milliseconds(), d99.Milliseconds()),
			"unchanged", unchanged(l.Off.P50, l.On.P50, l.IdleTime) && unchanged(l.Off.P99, l.On.P99, l.IdleTime))
	}
	if t := r.Throughput; t != nil {
		add("4", "dedupe round trips per event, throughput run (1,000 customers; by operation)", fmt.Sprintf("%.4f (%.4f get + %.4f put + %.4f swap)",
			t.Mix.RoundTrips(), t.Mix.DedupeGets, t.Mix.DedupePuts, t.Mix.DedupeSwaps), "", true)
		add("4", "dedupe write units per event, throughput run (1,000 customers)", fmt.Sprintf("%.4f (read units %.4f)", t.Mix.WriteUnits, t.Mix.ReadUnits), "", true)
	}
	if l := r.Latency; l != nil {
		add("4", fmt.Sprintf("dedupe round trips per event at %.0f ev/s (batches of tens)", l.Rate), fmt.Sprintf("%.3f (%.3f get + %.3f put)", l.Off.RoundTrips, l.Off.Gets, l.Off.Puts), "", true)
	}
	if p := r.InProcess; p != nil {
		if rt := p.median(benchPipeline, roundTripsUnit); rt > 0 {
			add("4", "dedupe round trips and write units per event, in-process BenchmarkPipeline (1,000 customers, every event changes its customer)",
				fmt.Sprintf("%.4f, %.4f", rt, p.median(benchPipeline, writeUnitsUnit)), "", true)
		}
	}
	if n := r.NaiveDedupe; n != nil {
		add("4", "dedupe round trips per event, naive conditional PutItem", fmt.Sprintf("%.2f (%d calls, %.0f ev/s)", n.RoundTrips, n.Calls, n.Rate), "", true)
	}
	r.issue15(add)
	if b := r.Backpressure; b != nil {
		add("5", fmt.Sprintf("worker peak RSS, analytics streams down %s at %.0f ev/s", b.Open, b.Rate), mib(b.PeakRSS), fmt.Sprintf("< %.0f MB", wantPeakRSS/1e6), float64(b.PeakRSS) < wantPeakRSS)
		limit := max(flatMinGrowth, int64(flatGrowthFraction*float64(b.StartRSS)))
		add("5", "RSS growth over the last three quarters of the outage", fmt.Sprintf("%+.1f MiB (%s a quarter in -> %s at the end; %s at the start)", float64(b.Growth)/(1<<20), mib(b.QuarterRSS), mib(b.EndRSS), mib(b.StartRSS)),
			"flat", b.Growth <= limit)
		add("5", "recovery after the outage", fmt.Sprintf("recovered %v, %d calls refused, %.0f dead-lettered", b.Recovered, b.Refused, b.DeadLettered), "recovers", b.Recovered)
	}
	if h := r.Hot; h != nil {
		for _, m := range []HotMode{h.Plain, h.Agg} {
			if len(m.Steps) == 0 {
				continue
			}
			name, want, met := "plain", "", true
			if m.Aggregate {
				name, want, met = "AGGREGATE_KEYS", fmt.Sprintf(">= %.0f", wantHotRate), m.KeptUp >= wantHotRate
			}
			add("hot", fmt.Sprintf("hot customer: highest rate kept up, %s (PutRecords +%s, %d others at %.0f/s, lag <= %s)", name, ms(h.RTT), h.Cold, h.ColdRate, h.LagBound),
				hotFigure(m, h.RTT), want, met)
			add("hot", fmt.Sprintf("hot customer, %s: the ladder", name), hotLadder(m), "", true)
			add("hot", fmt.Sprintf("exactly-once audit of the hot run, %s", name), m.Audit, "ok", m.OK)
		}
	}
	return ts
}

// issue15 adds the rows of issue 15's targets (part "15").
func (r *Report) issue15(add func(part, measure, figure, want string, met bool)) {
	if t := r.Throughput; t != nil && t.CPURatio > 0 && len(t.WorkerCPUs) > 0 && len(t.LoopCPUs) > 0 {
		add("15", "worker CPU per event / same-calls loop CPU per event (worker, loop, loop, worker)", fmt.Sprintf("%.2f (%s, %s vs %s, %s)", t.CPURatio,
			us(t.WorkerCPUs[0]), us(t.WorkerCPUs[len(t.WorkerCPUs)-1]), us(t.LoopCPUs[0]), us(t.LoopCPUs[len(t.LoopCPUs)-1])),
			fmt.Sprintf("<= %.1f", wantCPURatio), t.CPURatio <= wantCPURatio)
		m := t.Mix
		add("15", "the worker's calls per event, which the loop makes too", fmt.Sprintf("PutRecords %.4f (%.2f records), BatchWriteItem %.4f (%.4f write units), BatchGetItem %.5f, conditional PutItem %.5f; GetRecords of %d",
			m.PutCalls, m.PutRecords, m.DedupePuts, m.WriteUnits, m.DedupeGets, m.DedupeSwaps, t.MaxRecords), "", true)
	}
	if ing := r.Ingest; ing != nil {
		if fr := forwarderRatio(ing); fr > 0 {
			cold, warm := processRatios(ing)
			add("15", fmt.Sprintf("forwarder CPU per event / put loop CPU per event, both processes of their own measured alike: the larger of whole runs of %d events and per event past a run's first %d", ing.Events, ing.Events),
				fmt.Sprintf("%.2f (whole runs %.2f: %s vs %s; past the first %d %.2f: %s vs %s)", fr, cold, us(ing.SingleCPU), us(ing.LoopProcessCPU),
					ing.Events, warm, us(ing.MarginalCPU), us(ing.LoopMarginalCPU)),
				fmt.Sprintf("<= %.1f", wantForwarderRatio), fr <= wantForwarderRatio)
		}
		if ing.PutCPU > 0 {
			figure := fmt.Sprintf("whole run %.2f (%s vs %s)", ing.ForwarderCPU.Seconds()/ing.PutCPU.Seconds(), us(ing.ForwarderCPU), us(ing.PutCPU))
			if ing.MarginalCPU > 0 {
				figure += fmt.Sprintf("; past a run's first %d %.2f (%s vs %s)", ing.Events, ing.MarginalCPU.Seconds()/ing.PutCPU.Seconds(), us(ing.MarginalCPU), us(ing.PutCPU))
			}
			add("15", "forwarder process CPU per event / the put loop inside this benchmark's process (issue 2's, warm: it is not started for the loop)", figure, "", true)
		}
		if ing.StartupCPU > 0 && ing.Events > 0 && ing.PutCPU > 0 {
			per := max(0, ing.ForwarderCPU-ing.StartupCPU/time.Duration(ing.Events))
			add("15", "of which the forwarder's start-up (a run of no events), and the rest per event / the put loop inside this process", fmt.Sprintf("%s per run (%s per event); %.2f (%s vs %s)",
				ms(ing.StartupCPU), us(ing.StartupCPU/time.Duration(ing.Events)), per.Seconds()/ing.PutCPU.Seconds(), us(per), us(ing.PutCPU)), "", true)
		}
	}
	if v := r.InProcess.median(benchStateMany, writeUnitsUnit); v > 0 {
		add("15", "dedupe write units per event, 1,000,000 customers (in-process BenchmarkDedupeState)", fmt.Sprintf("%.3f", v), fmt.Sprintf("<= %.1f", wantUnitsMany), v <= wantUnitsMany)
	}
	if v := r.InProcess.median(benchStateFew, writeUnitsUnit); v > 0 {
		add("15", "dedupe write units per event, 10,000 customers (in-process BenchmarkDedupeState)", fmt.Sprintf("%.3f", v), fmt.Sprintf("<= %.1f", wantUnitsFew), v <= wantUnitsFew)
	}
	if v, ok := r.roundTrips(); ok {
		add("15", "dedupe round trips per event (the largest of the throughput run and BenchmarkDedupeState)", fmt.Sprintf("%.4f", v), fmt.Sprintf("<= %.2f", wantRoundTrips), v <= wantRoundTrips)
	}
	if c, ok := r.costAt(costRate); ok {
		add("15", fmt.Sprintf("pipeline cost per billion events / EventBridge, at %.0f events/s", c.Inputs.Rate), fmt.Sprintf("%.2f (%s)", c.Ratio, c.summary()),
			fmt.Sprintf("<= %.1f", wantCostRatio), c.Ratio <= wantCostRatio)
	}
}

// Label is one of issue 15's figures, printed on a line of its own as "Name: Value".
type Label struct {
	Name, Value string
}

// Labels are issue 15's six figures, in the issue's order; a figure whose scenario did not run
// reads "not measured".
func (r *Report) Labels() []Label {
	v := func(ok bool, f float64, format string) string {
		if !ok {
			return "not measured"
		}
		return fmt.Sprintf(format, f)
	}
	tp, ing := r.Throughput, r.Ingest
	cpu := tp != nil && tp.CPURatio > 0
	fwd := forwarderRatio(ing) > 0
	many, few := r.InProcess.median(benchStateMany, writeUnitsUnit), r.InProcess.median(benchStateFew, writeUnitsUnit)
	rt, rtOK := r.roundTrips()
	cost, costOK := r.costAt(costRate)
	return []Label{
		{"worker CPU per event / loop CPU per event", v(cpu, ratioOf(tp, func(t *ThroughputResult) float64 { return t.CPURatio }), "%.2f")},
		{"forwarder CPU per event / put loop CPU per event", v(fwd, forwarderRatio(ing), "%.2f")},
		{"dedupe write units per event (1M customers)", v(many > 0, many, "%.3f")},
		{"dedupe write units per event (10k customers)", v(few > 0, few, "%.3f")},
		{"dedupe round trips per event", v(rtOK, rt, "%.4f")},
		{"pipeline cost per billion events / EventBridge cost", v(costOK, cost.Ratio, "%.2f")},
	}
}

func ratioOf(t *ThroughputResult, f func(*ThroughputResult) float64) float64 {
	if t == nil {
		return 0
	}
	return f(t)
}

// forwarderRatio is issue 15's forwarder figure: the forwarder against the put loop, both run as
// processes of their own and measured alike, the larger of the two ratios of processRatios; 0 when
// they were not measured.
func forwarderRatio(ing *IngestResult) float64 {
	cold, warm := processRatios(ing)
	if cold <= 0 || warm <= 0 {
		return 0
	}
	return max(cold, warm)
}

// processRatios are the forwarder's CPU per event over the put loop process's, over whole runs
// (start-up and the first touch of memory included in both) and past a run's first Events events
// (excluded from both); 0 when not measured.
func processRatios(ing *IngestResult) (cold, warm float64) {
	if ing == nil {
		return 0, 0
	}
	if ing.SingleCPU > 0 && ing.LoopProcessCPU > 0 {
		cold = ing.SingleCPU.Seconds() / ing.LoopProcessCPU.Seconds()
	}
	if ing.MarginalCPU > 0 && ing.LoopMarginalCPU > 0 {
		warm = ing.MarginalCPU.Seconds() / ing.LoopMarginalCPU.Seconds()
	}
	return cold, warm
}

// roundTrips is the largest measured dedupe round trips per event: the throughput run's worker
// (its own counters, start-up included) and the in-process runs for 10,000 and 1,000,000 customers.
func (r *Report) roundTrips() (float64, bool) {
	v, ok := 0.0, false
	for _, name := range []string{benchStateFew, benchStateMany} {
		if x := r.InProcess[name][roundTripsUnit]; len(x) > 0 {
			v, ok = max(v, medianOf(x)), true
		}
	}
	if r.Throughput != nil && r.Throughput.Mix.RecordsIn > 0 {
		v, ok = max(v, r.Throughput.Mix.RoundTrips()), true
	}
	return v, ok
}

func (r *Report) costAt(rate float64) (CostModel, bool) {
	for _, c := range r.Cost {
		if c.Inputs.Rate == rate {
			return c, true
		}
	}
	return CostModel{}, false
}

// wantHotRate is issue 13's example of a hot customer: 300 events/s.
const wantHotRate = 300.0

// hotFigure is the highest rate kept up, also per round trip of the added delay.
func hotFigure(m HotMode, rtt time.Duration) string {
	s := fmt.Sprintf("%.0f events/s", m.KeptUp)
	if rtt > 0 {
		s += fmt.Sprintf(" (%.1f per RTT)", m.KeptUp*rtt.Seconds())
	}
	if !m.Saturated {
		s += ", the ladder's top: not saturated"
	}
	return s
}

// hotLadder lists each step: rate, delivered rate, largest lag, calls per hot event.
func hotLadder(m HotMode) string {
	parts := make([]string, len(m.Steps))
	for i, st := range m.Steps {
		verdict := "ok"
		if !st.KeptUp {
			verdict = "behind"
		}
		parts[i] = fmt.Sprintf("%.0f/s: %s (delivered %.0f/s, lag %s, %.2f calls/event)", st.Rate, verdict, st.Delivered, st.MaxLag.Round(100*time.Millisecond), st.CallsPerEvent)
	}
	return strings.Join(parts, "; ")
}

// print writes the hot-customer ladders as one table, a row per step, and each mode's highest rate
// kept up and audit.
func (h *HotResult) print(w io.Writer, markdown bool) {
	fmt.Fprintf(w, "hot customer (issue 13): one worker, PutRecords to the analytics streams +%s, %d other customers at %.0f/s, %s steps, kept up: its lag <= %s\n",
		ms(h.RTT), h.Cold, h.ColdRate, h.Step, h.LagBound)
	head := []string{"AGGREGATE_KEYS", "hot events/s", "sent/s", "delivered/s", "max lag", "lag at end", "kept up", "PutRecords calls per hot event"}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	if markdown {
		fmt.Fprintf(w, "\n| %s |\n|%s\n", strings.Join(head, " | "), strings.Repeat("---|", len(head)))
	} else {
		fmt.Fprintln(tw, strings.Join(head, "\t"))
	}
	for _, m := range []HotMode{h.Plain, h.Agg} {
		for _, st := range m.Steps {
			kept := "yes"
			if !st.KeptUp {
				kept = "no"
			}
			cells := []string{onOff(m.Aggregate), fmt.Sprintf("%.0f", st.Rate), fmt.Sprintf("%.1f", st.Sent), fmt.Sprintf("%.1f", st.Delivered),
				st.MaxLag.Round(10 * time.Millisecond).String(), st.EndLag.Round(10 * time.Millisecond).String(), kept, fmt.Sprintf("%.3f", st.CallsPerEvent)}
			if markdown {
				fmt.Fprintf(w, "| %s |\n", strings.Join(cells, " | "))
			} else {
				fmt.Fprintln(tw, strings.Join(cells, "\t"))
			}
		}
	}
	tw.Flush()
	if markdown {
		fmt.Fprintln(w)
	}
	for _, m := range []HotMode{h.Plain, h.Agg} {
		if len(m.Steps) == 0 {
			continue
		}
		fmt.Fprintf(w, "AGGREGATE_KEYS %s: highest rate kept up %s; %.0f events sent inside aggregates; audit: %s\n", onOff(m.Aggregate), hotFigure(m, h.RTT), m.Aggregated, m.Audit)
		if markdown {
			fmt.Fprintln(w)
		}
	}
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

// unchanged compares two latency figures of separate runs: within 25 % or one idle time.
func unchanged(a, b, idle time.Duration) bool {
	d := b - a
	if d < 0 {
		d = -d
	}
	return d <= max(idle, time.Duration(0.25*float64(a)))
}

func windowName(w time.Duration) string {
	if w <= 0 {
		return "0 (off)"
	}
	return w.String()
}

func us(d time.Duration) string { return d.Round(100 * time.Nanosecond).String() }

func ms(d time.Duration) string { return fmt.Sprintf("%dms", d.Milliseconds()) }

func mib(b int64) string { return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20)) }

func rates(xs []float64) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = fmt.Sprintf("%.0f", x)
	}
	return strings.Join(s, "/")
}

// Print writes the summary table, the scale and cost models, and issue 15's figures, each on a
// line of its own.
func (r *Report) Print(w io.Writer) {
	fmt.Fprintf(w, "benchmarks (issues 7 and 15): commit %s, %d CPUs (%s), load %s -> %s, %s\n\n", r.Commit, r.Machine.NProc, r.Machine.CPU,
		r.Machine.LoadStart, r.Machine.LoadEnd, r.Elapsed.Round(time.Second))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "part\tmeasure\tfigure\ttarget\tresult")
	for _, t := range r.Targets() {
		res := ""
		if t.Want != "" {
			res = "MISSED"
			if t.Met {
				res = "met"
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", t.Part, t.Measure, t.Figure, t.Want, res)
	}
	tw.Flush()
	if len(r.Scale) > 0 {
		fmt.Fprintln(w)
		r.printScale(w, false)
	}
	if c, ok := r.costAt(costRate); ok {
		fmt.Fprintf(w, "\ncost model at %.0f events/s (%s list prices of %s), per billion events:\n", c.Inputs.Rate, priceRegion, priceDate)
		r.printCost(w, c, false)
	}
	if r.Hot != nil {
		fmt.Fprintln(w)
		r.Hot.print(w, false)
	}
	for name, err := range r.Errors {
		fmt.Fprintf(w, "\nscenario %s FAILED: %s\n", name, err)
	}
	fmt.Fprintln(w)
	for _, l := range r.Labels() {
		fmt.Fprintf(w, "%s: %s\n", l.Name, l.Value)
	}
}

func (r *Report) printScale(w io.Writer, markdown bool) {
	in := r.ScaleInputs
	head := []string{"events/s", "raw shards", "analytics shards", "worker vCPUs", fmt.Sprintf("workers (%d vCPU)", vCPUPerWorker),
		"read MiB/s per raw shard", "dedupe WCU/s", "dedupe WCU/s, 1M customers", "dedupe RCU/s", "dedupe partitions"}
	if markdown {
		fmt.Fprintf(w, "| %s |\n|%s\n", strings.Join(head, " | "), strings.Repeat("---|", len(head)))
	} else {
		fmt.Fprintf(w, "scale model: %s CPU/event, %.0f B raw, %.0f B analytics record, %.4f dedupe write units per event (%.4f with 1M customers), %.4f read units\n",
			in.CPUPerEvent.Round(100*time.Nanosecond), in.RawBytes, in.OutBytes, in.WriteUnits, in.WriteUnitsMany, in.ReadUnits)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	if !markdown {
		fmt.Fprintln(tw, strings.Join(head, "\t"))
	}
	for _, row := range r.Scale {
		cells := []string{fmt.Sprintf("%.0f", row.Rate), fmt.Sprint(row.RawShards), fmt.Sprint(row.AnalyticsShards), fmt.Sprint(row.VCPUs),
			fmt.Sprint(row.Workers), fmt.Sprintf("%.2f", row.ReadMBps), fmt.Sprintf("%.0f", row.DedupeWCU), fmt.Sprintf("%.0f", row.DedupeWCUMany),
			fmt.Sprintf("%.0f", row.DedupeRCU), fmt.Sprint(row.DedupePartitions)}
		if markdown {
			fmt.Fprintf(w, "| %s |\n", strings.Join(cells, " | "))
		} else {
			fmt.Fprintln(tw, strings.Join(cells, "\t"))
		}
	}
	tw.Flush()
}

// printCost writes the cost model's lines: component, $ per billion events, share of EventBridge,
// and (in markdown) how each was computed.
func (r *Report) printCost(w io.Writer, c CostModel, markdown bool) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	if markdown {
		fmt.Fprintln(w, "| component | $ per billion events | x EventBridge | how |\n|---|---|---|---|")
	} else {
		fmt.Fprintln(tw, "component\t$/billion\tx EventBridge")
	}
	for _, l := range c.Lines {
		name := l.Component
		if l.Option {
			name += " (not summed)"
		}
		if markdown {
			fmt.Fprintf(w, "| %s | %.2f | %.3f | %s |\n", name, l.PerBillion, l.PerBillion/c.EventBridge, l.How)
		} else {
			fmt.Fprintf(tw, "%s\t%.2f\t%.3f\n", name, l.PerBillion, l.PerBillion/c.EventBridge)
		}
	}
	if markdown {
		fmt.Fprintf(w, "| **everything but EventBridge** | **%.2f** | **%.3f** | |\n", c.Rest, c.Ratio)
	} else {
		fmt.Fprintf(tw, "everything but EventBridge\t%.2f\t%.3f\n", c.Rest, c.Ratio)
	}
	tw.Flush()
	if !markdown {
		fmt.Fprintf(w, "(%d raw shards, %d analytics shards, %d worker tasks, Lambda concurrency %.0f)\n", c.RawShards, c.AnalyticsShards, c.Workers, c.LambdaConcurrency)
	}
}

// Markdown writes the figures as the BENCHMARKS.md section: issue 15's figures, the target table,
// the scale model and the cost model.
func (r *Report) Markdown(w io.Writer, command string) {
	fmt.Fprintf(w, "Measured %s with `%s` at commit `%s` on %d CPUs (%s), load average %s at the start and %s at the end; %s in all.\n\n",
		r.Started.UTC().Format("2006-01-02 15:04 MST"), command, r.Commit, r.Machine.NProc, r.Machine.CPU, r.Machine.LoadStart, r.Machine.LoadEnd, r.Elapsed.Round(time.Second))
	fmt.Fprintln(w, "```")
	for _, l := range r.Labels() {
		fmt.Fprintf(w, "%s: %s\n", l.Name, l.Value)
	}
	fmt.Fprintln(w, "```")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| part | measure | figure | target | result |\n|---|---|---|---|---|")
	for _, t := range r.Targets() {
		res := ""
		if t.Want != "" {
			res = "**missed**"
			if t.Met {
				res = "met"
			}
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s |\n", t.Part, t.Measure, strings.ReplaceAll(t.Figure, "|", "/"), t.Want, res)
	}
	if len(r.Scale) > 0 {
		in := r.ScaleInputs
		fmt.Fprintf(w, "\nScale model inputs (measured above): %s worker CPU per event end to end (%.0f events/s per core), %.0f B raw record, %.0f B analytics record, %.4f dedupe write units per event (%.4f with 1,000,000 customers) and %.4f read units.\n\n",
			in.CPUPerEvent.Round(100*time.Nanosecond), 1/in.CPUPerEvent.Seconds(), in.RawBytes, in.OutBytes, in.WriteUnits, in.WriteUnitsMany, in.ReadUnits)
		r.printScale(w, true)
	}
	if c, ok := r.costAt(costRate); ok {
		fmt.Fprintf(w, "\nCost model at %.0f events/s, %s list prices of %s, per billion events (%d raw shards, %d analytics shards, %d worker tasks, Lambda concurrency %.0f):\n\n",
			c.Inputs.Rate, priceRegion, priceDate, c.RawShards, c.AnalyticsShards, c.Workers, c.LambdaConcurrency)
		r.printCost(w, c, true)
		var other []string
		for _, o := range r.Cost {
			if o.Inputs.Rate != costRate {
				other = append(other, fmt.Sprintf("%.2f at %.0f events/s", o.Ratio, o.Inputs.Rate))
			}
		}
		if len(other) > 0 {
			fmt.Fprintf(w, "\nThe same ratio at other rates (hourly charges spread over fewer or more events): %s.\n", strings.Join(other, ", "))
		}
	}
	if r.Hot != nil {
		fmt.Fprintln(w)
		r.Hot.print(w, true)
	}
	for name, err := range r.Errors {
		fmt.Fprintf(w, "\nScenario %s failed: %s\n", name, strings.ReplaceAll(err, "\n", " "))
	}
}
