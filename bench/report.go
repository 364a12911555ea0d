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
	BehindCursor *BehindCursorResult
	NaiveDedupe  *NaiveDedupeResult
	Latency      *LatencyResult
	Backpressure *BackpressureResult
	ScaleInputs  *ScaleInputs
	Scale        []ScaleRow

	Errors map[string]string
}

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

// The targets.
const (
	wantPerCore        = 100_000
	wantFloorRatio     = 1.5
	wantReadRatio      = 0.9
	wantFirstRecord    = 2 * time.Second
	wantIngestRatio    = 0.9
	wantP99            = 1500 * time.Millisecond
	wantRoundTrips     = 0.05
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
		add("4", "dedupe round trips per event, batched (throughput run)", fmt.Sprintf("%.3f (%.3f get + %.3f put)", t.RoundTrips, t.Gets, t.Puts),
			fmt.Sprintf("<= %.2f", wantRoundTrips), t.RoundTrips <= wantRoundTrips)
	}
	if b := r.BehindCursor; b != nil {
		add("4", "same, worker with -dedupe-lookup=behind-cursor (same raw stream, fresh tables)", fmt.Sprintf("%.3f (%.3f get + %.3f put)", b.RoundTrips, b.Gets, b.Puts),
			fmt.Sprintf("<= %.2f", wantRoundTrips), b.RoundTrips <= wantRoundTrips && b.OK)
		add("4", "behind-cursor pass: delivered, worker / GetRecords loop, dynalite CPU per event", fmt.Sprintf("%d of %d distinct ids (%d resent writes), %.2f (%.0f rec/s), %s",
			b.Unique, b.Events, b.Resent, b.SteadyRatio, b.SteadyRate, us(b.DynamoDBCPU)), "", true)
	}
	if l := r.Latency; l != nil {
		add("4", fmt.Sprintf("dedupe round trips per event, batched at %.0f ev/s", l.Rate), fmt.Sprintf("%.3f (%.3f get + %.3f put)", l.Off.RoundTrips, l.Off.Gets, l.Off.Puts),
			fmt.Sprintf("<= %.2f", wantRoundTrips), l.Off.RoundTrips <= wantRoundTrips)
	}
	if p := r.InProcess; p != nil {
		if rt := p.median(benchPipeline, "roundtrips/event"); rt > 0 {
			add("4", "dedupe round trips per event, in-process worst case (every event a new customer in its batch)", fmt.Sprintf("%.3f", rt), fmt.Sprintf("<= %.2f", wantRoundTrips), rt <= wantRoundTrips)
		}
		if rt := p.median(benchPipelineBehind, "roundtrips/event"); rt > 0 {
			add("4", "same with LookupBehindCursorOnly", fmt.Sprintf("%.3f", rt), "", true)
		}
	}
	if n := r.NaiveDedupe; n != nil {
		add("4", "dedupe round trips per event, naive conditional PutItem", fmt.Sprintf("%.2f (%d calls, %.0f ev/s)", n.RoundTrips, n.Calls, n.Rate), "", true)
	}
	if b := r.Backpressure; b != nil {
		add("5", fmt.Sprintf("worker peak RSS, analytics streams down %s at %.0f ev/s", b.Open, b.Rate), mib(b.PeakRSS), fmt.Sprintf("< %.0f MB", wantPeakRSS/1e6), float64(b.PeakRSS) < wantPeakRSS)
		limit := max(flatMinGrowth, int64(flatGrowthFraction*float64(b.StartRSS)))
		add("5", "RSS growth over the last three quarters of the outage", fmt.Sprintf("%+.1f MiB (%s a quarter in -> %s at the end; %s at the start)", float64(b.Growth)/(1<<20), mib(b.QuarterRSS), mib(b.EndRSS), mib(b.StartRSS)),
			"flat", b.Growth <= limit)
		add("5", "recovery after the outage", fmt.Sprintf("recovered %v, %d calls refused, %.0f dead-lettered", b.Recovered, b.Refused, b.DeadLettered), "recovers", b.Recovered)
	}
	return ts
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

// Print writes the summary table.
func (r *Report) Print(w io.Writer) {
	fmt.Fprintf(w, "issue 7 benchmarks: commit %s, %d CPUs (%s), load %s -> %s, %s\n\n", r.Commit, r.Machine.NProc, r.Machine.CPU,
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
	for name, err := range r.Errors {
		fmt.Fprintf(w, "\nscenario %s FAILED: %s\n", name, err)
	}
}

func (r *Report) printScale(w io.Writer, markdown bool) {
	in := r.ScaleInputs
	head := []string{"events/s", "raw shards", "analytics shards", "worker vCPUs", fmt.Sprintf("workers (%d vCPU)", vCPUPerWorker),
		"read MiB/s per raw shard", "dedupe WCU/s", "dedupe RCU/s", "many customers: WCU/s", "RCU/s (strict / behind-cursor)", "dedupe partitions"}
	if markdown {
		fmt.Fprintf(w, "| %s |\n|%s\n", strings.Join(head, " | "), strings.Repeat("---|", len(head)))
	} else {
		fmt.Fprintf(w, "scale model: %s CPU/event, %.0f B raw, %.0f B analytics record, %.2f dedupe items written and %.2f keys read per event\n",
			in.CPUPerEvent.Round(100*time.Nanosecond), in.RawBytes, in.OutBytes, in.ItemsPerEvent, in.KeysReadPerEvent)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	if !markdown {
		fmt.Fprintln(tw, strings.Join(head, "\t"))
	}
	for _, row := range r.Scale {
		cells := []string{fmt.Sprintf("%.0f", row.Rate), fmt.Sprint(row.RawShards), fmt.Sprint(row.AnalyticsShards), fmt.Sprint(row.VCPUs),
			fmt.Sprint(row.Workers), fmt.Sprintf("%.2f", row.ReadMBps), fmt.Sprintf("%.0f", row.DedupeWCU), fmt.Sprintf("%.0f", row.DedupeRCU),
			fmt.Sprintf("%.0f", row.ManyWCU), fmt.Sprintf("%.0f / %.0f", row.ManyRCU, row.ManyRCUBehind), fmt.Sprint(row.DedupePartitions)}
		if markdown {
			fmt.Fprintf(w, "| %s |\n", strings.Join(cells, " | "))
		} else {
			fmt.Fprintln(tw, strings.Join(cells, "\t"))
		}
	}
	tw.Flush()
}

// Markdown writes the figures as the BENCHMARKS.md section: the target table and the scale model.
func (r *Report) Markdown(w io.Writer, command string) {
	fmt.Fprintf(w, "Measured %s with `%s` at commit `%s` on %d CPUs (%s), load average %s at the start and %s at the end; %s in all.\n\n",
		r.Started.UTC().Format("2006-01-02 15:04 MST"), command, r.Commit, r.Machine.NProc, r.Machine.CPU, r.Machine.LoadStart, r.Machine.LoadEnd, r.Elapsed.Round(time.Second))
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
		fmt.Fprintf(w, "\nScale model inputs (measured above): %s worker CPU per event end to end (%.0f events/s per core), %.0f B raw record, %.0f B analytics record, %.2f dedupe items written and %.2f keys read per event.\n\n",
			in.CPUPerEvent.Round(100*time.Nanosecond), 1/in.CPUPerEvent.Seconds(), in.RawBytes, in.OutBytes, in.ItemsPerEvent, in.KeysReadPerEvent)
		r.printScale(w, true)
	}
	for name, err := range r.Errors {
		fmt.Fprintf(w, "\nScenario %s failed: %s\n", name, strings.ReplaceAll(err, "\n", " "))
	}
}
