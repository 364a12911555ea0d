package localrun

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/kinesis-events/pipeline/forwarder"
	"github.com/kinesis-events/pipeline/internal/audit"
	"github.com/kinesis-events/pipeline/internal/autoscale"
	"github.com/kinesis-events/pipeline/internal/faultproxy"
	"github.com/kinesis-events/pipeline/internal/fleet"
	"github.com/kinesis-events/pipeline/internal/loadgen"
)

func ftoa(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }

func plus(d time.Duration) string { return "+" + d.Round(100*time.Millisecond).String() }

// spikeLine is one line of progress.
func spikeLine(rec *record, fwd forwarder.Stats, snap audit.Snapshot, tl []audit.Second, open map[string]int, workers int, proxy *faultproxy.Proxy) string {
	at := rec.since()
	lag := "-"
	if n := len(tl); n > 0 {
		lag = tl[n-1].MaxDelay.Round(100 * time.Millisecond).String()
		if quiet := time.Since(time.Unix(tl[n-1].At+1, 0)); quiet > 3*time.Second {
			lag += fmt.Sprintf(" (nothing delivered for %s)", quiet.Round(time.Second))
		}
	}
	outputs := 0
	for s, n := range open {
		if s != fleet.RawStream {
			outputs += n
		}
	}
	var throttled int64
	for _, ss := range proxy.Load(time.Now().Add(-5 * time.Second)).Streams {
		for _, x := range ss {
			throttled += x.Throttled
		}
	}
	return fmt.Sprintf("%7s  forwarded %7d  delivered %7d  lag %6s  workers %d  raw shards %2d  output shards %2d  throttled %4d/s  dead letters %d",
		plus(at), fwd.Forwarded, snap.Unique, lag, workers, open[fleet.RawStream], outputs, throttled/5, sumD(snap.DeadLetters))
}

// spikeSummary is what a spike run prints at the end.
type spikeSummary struct {
	summary
	prof     loadgen.Profile
	rec      *record
	status   autoscale.Status
	load     faultproxy.LoadReport
	timeline []audit.Second
	hot      audit.Followed
	shed     int64  // Kinesis requests the proxy never sent: their client gave up waiting for the emulator
	upErrs   string // the emulator's error answers by operation and type
}

// spikeAt is when the spike started (wall clock).
func (s spikeSummary) spikeAt() time.Time { return s.rec.start.Add(spikeStart(s.prof)) }

// lag is the worst producer-to-analytics delay of any second, the worst of the last 10 s, and when
// the lag went under the target for good (zero: it never exceeded it).
func (s spikeSummary) lag() (peak time.Duration, peakAt time.Time, final time.Duration, settled time.Time) {
	target := s.cfg.Spike.LagTarget
	var last int64
	for _, x := range s.timeline {
		if x.MaxDelay > peak {
			peak, peakAt = x.MaxDelay, time.Unix(x.At, 0)
		}
		if x.MaxDelay >= target {
			settled = time.Unix(x.At+1, 0)
		}
		last = max(last, x.At)
	}
	for _, x := range s.timeline {
		if x.At > last-10 {
			final = max(final, x.MaxDelay)
		}
	}
	return peak, peakAt, final, settled
}

// settleAfterSpike is how long after the spike started the lag went under the target for good:
// lag(t) >= target while an event produced before t - target is not delivered yet, so it is under
// the target for good from the arrival of the last event that took target or longer. Only a run
// that delivered everything can tell; an incomplete one returns the time since the spike started.
func (s spikeSummary) settleAfterSpike() time.Duration {
	if s.rep == nil {
		return time.Since(s.spikeAt())
	}
	_, _, _, settled := s.lag()
	if settled.IsZero() || settled.Before(s.spikeAt()) {
		return 0
	}
	return settled.Sub(s.spikeAt())
}

func (s spikeSummary) targetMet() bool {
	return s.rep != nil && s.clean() && s.rep.Duplicates == s.rep.Resent && sumD(s.rep.DeadLetters) == 0 &&
		s.quarantineMissing() == 0 && s.settleAfterSpike() <= s.cfg.Spike.LagWithin
}

// quarantineMissing is how many expected quarantine records (conflicting duplicates and bad
// lines) never arrived (0 when more arrived: a record quarantined again after a lease moved).
func (s spikeSummary) quarantineMissing() int {
	if s.rep == nil || s.res == nil {
		return 0
	}
	return max(0, expectedQuarantine(s.res)-sumQ(s.rep.Quarantined))
}

// reshards lists the autoscaler's applied reshards of a stream, oldest first.
func (s spikeSummary) reshards(stream string) []autoscale.Decision {
	var out []autoscale.Decision
	for _, d := range s.status.Streams[stream].Decisions {
		if (d.Action == autoscale.ActionOut || d.Action == autoscale.ActionIn) && d.At.After(s.rec.start.Add(-time.Minute)) {
			out = append(out, d)
		}
	}
	return out
}

func (s spikeSummary) print(ui *view) {
	ui.summary(s.summary)
	sp := s.cfg.Spike
	rel := func(t time.Time) string { return plus(t.Sub(s.rec.start)) }
	ui.printf("\n== Spike: %s; the spike starts at %s (%s); times are from the start of the load (%s)\n",
		s.prof, plus(spikeStart(s.prof)), s.spikeAt().UTC().Format(time.RFC3339), s.rec.start.UTC().Format(time.RFC3339))

	streams := append([]string{fleet.RawStream}, s.cfg.outputStreams()...)
	ui.printf("\nreshards per stream (the autoscaler's, applied):\n")
	tw := tabwriter.NewWriter(ui.w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  STREAM\tUP\tDOWN\tSHARDS START/PEAK/END\tRESHARDS")
	for _, st := range streams {
		up, down := 0, 0
		var parts []string
		for _, d := range s.reshards(st) {
			if d.Action == autoscale.ActionOut {
				up++
			} else {
				down++
			}
			r := fmt.Sprintf("%s %d->%d", rel(d.At), d.From, d.To)
			if d.Error != "" {
				r += " FAILED"
			}
			parts = append(parts, r)
		}
		pts := s.rec.shards[st]
		first, peak, last := 0, 0, 0
		if len(pts) > 0 {
			first, last = pts[0].Open, pts[len(pts)-1].Open
			for _, p := range pts {
				peak = max(peak, p.Open)
			}
		}
		fmt.Fprintf(tw, "  %s\t%d\t%d\t%d/%d/%d\t%s\n", st, up, down, first, peak, last, orNone(strings.Join(parts, ", ")))
	}
	tw.Flush()

	ui.printf("\nautoscaler decisions (reshards, and the first of each run of refusals):\n")
	var all []autoscale.Decision
	for _, st := range streams {
		for _, d := range s.status.Streams[st].Decisions {
			if d.At.After(s.rec.start.Add(-time.Minute)) {
				all = append(all, d)
			}
		}
	}
	sort.SliceStable(all, func(i, j int) bool { return all[i].At.Before(all[j].At) })
	tw = tabwriter.NewWriter(ui.w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  AT (UTC)\tT\tSTREAM\tACTION\tFROM\tTO\tTOOK\tREASON")
	for _, d := range all {
		took := "-"
		if d.TookMS > 0 {
			took = (time.Duration(d.TookMS) * time.Millisecond).String()
		}
		reason := d.Reason
		if d.Error != "" {
			reason += " — FAILED: " + d.Error
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%d\t%d\t%s\t%s\n", d.At.UTC().Format("15:04:05.000"), rel(d.At), d.Stream, d.Action, d.From, d.To, took, reason)
	}
	tw.Flush()

	ui.printf("\nworkers over time (%d per %d live raw shards, %d..%d; scale-in after %s):\n  +0s %d",
		1, sp.Fleet.ShardsPerWorker, sp.Fleet.MinWorkers, sp.Fleet.MaxWorkers, sp.Fleet.ScaleInAfter, sp.Fleet.Workers(s.cfg.Shards))
	for _, w := range s.rec.workers {
		ui.printf(", %s %d (%s)", plus(w.At), w.Running, w.What)
	}
	ui.printf("\n")

	ui.printf("\nlease balancing after each raw reshard (every open shard leased by a running worker, no parent left unfinished, spread <= 1):\n")
	for _, d := range s.reshards(fleet.RawStream) {
		ui.printf("  %s\n", s.balanceAfter(d))
	}

	peak, peakAt, final, settled := s.lag()
	ui.printf("\nlag (producer -> analytics stream, worst per second of arrival): peak %s at %s, final %s (last 10 s)\n",
		peak.Round(100*time.Millisecond), rel(peakAt), final.Round(100*time.Millisecond))
	switch {
	case s.rep == nil:
		ui.printf("  not settled: the run stopped before every event arrived\n")
	case settled.IsZero():
		ui.printf("  under %s throughout\n", sp.LagTarget)
	default:
		ui.printf("  under %s for good from %s: %s after the spike started (target: within %s)\n", sp.LagTarget, rel(settled),
			s.settleAfterSpike().Round(time.Second), sp.LagWithin)
	}
	if tl := s.lagTimeline(10 * time.Second); tl != "" {
		ui.printf("  worst per 10 s of arrival, producer -> analytics / forwarder -> analytics (the pipeline's own part) / processed_at -> analytics (the releasing batch: dedupe and write) / the hot customer's producer -> analytics:\n%s", tl)
	}
	if tl := s.splitTimeline(10 * time.Second); tl != "" {
		ui.printf("  the worst forwarder -> analytics delivery per 10 s of arrival, split: forwarded_at -> raw arrival (the forwarder's queue and put) / raw arrival -> processed_at (the wait in the raw shard, the read, the reorder hold) / processed_at -> analytics (its batch) @ its raw shard:\n%s", tl)
	}
	bestAt, best := int64(0), 0
	for _, x := range s.timeline {
		if x.Delivered > best {
			best, bestAt = x.Delivered, x.At
		}
	}
	if best > 0 {
		ui.printf("delivery peak: %d events/s at %s\n", best, rel(time.Unix(bestAt, 0)))
	}

	ui.printf("\nthrottled writes (entries refused for throughput and retried by their writers; per stream, as CloudWatch counts WriteProvisionedThroughputExceeded):\n")
	total := int64(0)
	var parts []string
	for _, st := range streams {
		n := int64(0)
		for _, x := range s.load.Streams[st] {
			n += x.Throttled
		}
		total += n
		if n > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", st, n))
		}
	}
	ui.printf("  %s; total %d\n", orNone(strings.Join(parts, ", ")), total)
	if s.res != nil {
		f := s.res.Forwarder
		ui.printf("  forwarder: %d throttled entries, %d retries, %d failed\n", f.Throttles, f.Retries, f.Failed)
	}
	if s.rep != nil {
		ui.printf("dead letters: %d\n", sumD(s.rep.DeadLetters))
		ui.printf("quarantine records: %d expected (conflicting duplicates and bad lines), %d arrived", expectedQuarantine(s.res), sumQ(s.rep.Quarantined))
		if n := s.quarantineMissing(); n > 0 {
			ui.printf(": %d MISSING", n)
		}
		ui.printf("\n")
	}
	s.printHot(ui)
	s.printCalls(ui)
	if s.shed > 0 {
		ui.printf("emulator overload: %d Kinesis requests timed out waiting for kinesalite and were never sent (their clients retried)\n", s.shed)
	}
	if len(s.rec.errs) > 0 {
		ui.printf("\nsampling errors (first %d): %s\n", len(s.rec.errs), strings.Join(s.rec.errs, "; "))
	}
	s.printTarget(ui)
}

func (s spikeSummary) printHot(ui *view) {
	if s.res == nil {
		return
	}
	hot := s.res.Manifest.HotCustomer
	sent := 0
	for _, e := range s.res.Manifest.Events {
		if e.CustomerID == hot {
			sent++
		}
	}
	ui.printf("hot customer %s: sent %d events (%.1f/s over the load)", hot, sent, float64(sent)/s.prof.Duration().Seconds())
	if h := s.hot; h.Delivered > 1 && h.Last.After(h.First) {
		ui.printf(", delivered %d at %.1f/s (%s to %s)", h.Delivered, float64(h.Delivered-1)/h.Last.Sub(h.First).Seconds(),
			plus(h.First.Sub(s.rec.start)), plus(h.Last.Sub(s.rec.start)))
	}
	ui.printf("\n")
}

func (s spikeSummary) printTarget(ui *view) {
	check := func(ok bool) string {
		if ok {
			return "ok"
		}
		return "MISSED"
	}
	if s.rep == nil {
		ui.printf("\ntarget: not judged: the run did not complete\n")
		return
	}
	r := s.rep
	dups := r.Duplicates - r.Resent
	settle := s.settleAfterSpike()
	ui.printf("\ntarget: lost %d %s | duplicates %d beyond counted unknown outcomes %s | order violations %d %s | dead letters %d %s | quarantine records missing %d %s | lag under %s %s after the spike started, within %s %s\n",
		len(r.Lost), check(len(r.Lost) == 0), dups, check(dups == 0 && r.Resent <= s.unknown), r.OrderViol, check(r.OrderViol == 0),
		sumD(r.DeadLetters), check(sumD(r.DeadLetters) == 0), s.quarantineMissing(), check(s.quarantineMissing() == 0),
		s.cfg.Spike.LagTarget, settle.Round(time.Second), s.cfg.Spike.LagWithin, check(settle <= s.cfg.Spike.LagWithin))
	verdict := "MET"
	if !s.targetMet() {
		verdict = "MISSED"
	}
	ui.printf("spike target %s\n", verdict)
}

// balanceAfter measures how the leases settled after a raw reshard: when every leasable shard
// was held by a running worker with a spread of at most one (balanced), and when every new shard
// had been leased (its parents drained to SHARD_END first, so this includes the backlog), with the
// ownership changes (OwnerSwitches) from the reshard to then.
func (s spikeSummary) balanceAfter(d autoscale.Decision) string {
	at := d.At.Sub(s.rec.start)
	from := at + time.Duration(d.TookMS)*time.Millisecond
	head := fmt.Sprintf("%s %d->%d:", plus(at), d.From, d.To)
	var before *balancePoint
	var balanced, leased *balancePoint
	for i := range s.rec.balance {
		b := &s.rec.balance[i]
		if b.At <= at {
			before = b
			continue
		}
		if before == nil || b.At < from {
			continue
		}
		if balanced == nil && b.Unowned == 0 && b.Spread <= 1 {
			balanced = b
		}
		all := true
		for id, l := range b.Shards {
			if _, old := before.Shards[id]; !old && !l.Held {
				all = false
			}
		}
		if leased == nil && all && len(b.Shards) > len(before.Shards) {
			leased = b
		}
		if balanced != nil && leased != nil {
			break
		}
	}
	if before == nil {
		return head + " no lease sample before the reshard"
	}
	out := head
	if balanced != nil {
		out += fmt.Sprintf(" balanced (every leasable shard held, spread <= 1) after %s;", (balanced.At - from).Round(100*time.Millisecond))
	} else {
		out += " not balanced while sampled;"
	}
	end := leased
	if end == nil {
		end = &s.rec.balance[len(s.rec.balance)-1]
		out += fmt.Sprintf(" new shards not all leased by %s;", plus(end.At))
	} else {
		out += fmt.Sprintf(" every new shard leased after %s (with %d workers);", (leased.At - from).Round(100*time.Millisecond), leased.Workers)
	}
	perShard, fresh, first := int64(0), 0, int64(0)
	for id, l := range end.Shards {
		old, had := before.Shards[id]
		perShard = max(perShard, l.Switches-old.Switches)
		if !had {
			fresh++
			if l.Switches > 0 {
				first++
			}
		}
	}
	return out + fmt.Sprintf(" %d ownership changes by then (%d first leases of %d new shards), at most %d per shard",
		end.Switches-before.Switches, first, fresh, perShard)
}

// lagTimeline is the worst lag, the worst forwarder-to-analytics delay, the worst write (processed_at to analytics) and the hot customer's worst lag, of each period of
// arrivals from the start of the load, eight periods a line ("" without arrivals).
func (s spikeSummary) lagTimeline(period time.Duration) string {
	type worst struct{ delay, forward, write, hot time.Duration }
	byPeriod := map[int64]worst{}
	last := int64(-1)
	for _, x := range s.timeline {
		i := int64(time.Unix(x.At, 0).Sub(s.rec.start) / period)
		if i < 0 {
			i = 0
		}
		w := byPeriod[i]
		byPeriod[i] = worst{max(w.delay, x.MaxDelay), max(w.forward, x.MaxForward), max(w.write, x.MaxWrite), max(w.hot, x.MaxFollowed)}
		last = max(last, i)
	}
	var b strings.Builder
	for i := int64(0); i <= last; i++ {
		if i%8 == 0 {
			b.WriteString("   ")
		}
		if w, ok := byPeriod[i]; ok {
			r := func(d time.Duration) time.Duration { return d.Round(100 * time.Millisecond) }
			fmt.Fprintf(&b, " %s %s/%s/%s/%s", plus(time.Duration(i)*period), r(w.delay), r(w.forward), r(w.write), r(w.hot))
		} else {
			fmt.Fprintf(&b, " %s -", plus(time.Duration(i)*period))
		}
		if i%8 == 7 || i == last {
			b.WriteString("\n")
		}
	}
	return b.String()
}

// splitTimeline is, of each period of arrivals from the start of the load, the worst
// forwarder-to-analytics delivery split at its raw record's arrival (audit.Delivery), eight periods
// a line ("" when no delivery's raw arrival is known).
func (s spikeSummary) splitTimeline(period time.Duration) string {
	byPeriod := map[int64]audit.Delivery{}
	last, known := int64(-1), false
	for _, x := range s.timeline {
		i := max(0, int64(time.Unix(x.At, 0).Sub(s.rec.start)/period))
		w, ok := byPeriod[i]
		if !ok || x.Worst.Arrived.Sub(x.Worst.Forwarded) > w.Arrived.Sub(w.Forwarded) {
			byPeriod[i] = x.Worst
		}
		known = known || !x.Worst.RawArrived.IsZero()
		last = max(last, i)
	}
	if !known {
		return ""
	}
	var b strings.Builder
	for i := int64(0); i <= last; i++ {
		if i%8 == 0 {
			b.WriteString("   ")
		}
		r := func(d time.Duration) time.Duration { return d.Round(100 * time.Millisecond) }
		switch w, ok := byPeriod[i]; {
		case !ok:
			fmt.Fprintf(&b, " %s -", plus(time.Duration(i)*period))
		case w.RawArrived.IsZero():
			fmt.Fprintf(&b, " %s ?", plus(time.Duration(i)*period))
		default:
			fmt.Fprintf(&b, " %s %s/%s/%s@%s", plus(time.Duration(i)*period), r(w.Queued()), r(w.Held()), r(w.Arrived.Sub(w.Processed)), shortShard(w.SourceShard))
		}
		if i%8 == 7 || i == last {
			b.WriteString("\n")
		}
	}
	return b.String()
}

// shortShard is a shard id without its prefix and leading zeros ("shardId-000000000029": "29").
func shortShard(id string) string {
	n := strings.TrimLeft(strings.TrimPrefix(id, "shardId-"), "0")
	if n == "" && id != "" {
		return "0"
	}
	return n
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// holdWindow is the profile's first hold after its first rise (the spike at its peak), from the
// start of the load; zero when the profile has none.
func holdWindow(p loadgen.Profile) (from, to time.Duration) {
	var at time.Duration
	for i, seg := range p {
		if seg.To > seg.From && i+1 < len(p) && p[i+1].From == p[i+1].To {
			return at + seg.Duration, at + seg.Duration + p[i+1].Duration
		}
		at += seg.Duration
	}
	return 0, 0
}

// callsBetween is what the proxy saw by operation between the samples nearest to from and to, and
// the seconds between those samples.
func callsBetween(pts []callsPoint, from, to time.Duration) (map[string]faultproxy.Counts, float64) {
	var a, b *callsPoint
	for i := range pts {
		if a == nil || pts[i].At <= from {
			a = &pts[i]
		}
		if b == nil || pts[i].At <= to {
			b = &pts[i]
		}
	}
	if a == nil || b == nil || b.At <= a.At {
		return nil, 0
	}
	out := map[string]faultproxy.Counts{}
	for op, c := range b.ByOp {
		p := a.ByOp[op]
		out[op] = faultproxy.Counts{Requests: c.Requests - p.Requests, Forwarded: c.Forwarded - p.Forwarded, Faulted: c.Faulted - p.Faulted,
			Limited: c.Limited - p.Limited, Records: c.Records - p.Records, Got: c.Got - p.Got, Empty: c.Empty - p.Empty,
			Waited: c.Waited - p.Waited, Upstream: c.Upstream - p.Upstream}
	}
	return out, (b.At - a.At).Seconds()
}

// printCalls shows the Kinesis calls the fault proxy saw by operation, over the run and at the
// spike's peak, and the workers' lease-store calls: where the emulators' time goes beyond the
// events themselves.
func (s spikeSummary) printCalls(ui *view) {
	pts := s.rec.calls
	if len(pts) < 2 {
		return
	}
	all, secs := callsBetween(pts, 0, pts[len(pts)-1].At)
	hf, ht := holdWindow(s.prof)
	peak, psecs := callsBetween(pts, hf, ht)
	ui.printf("\nKinesis calls through the fault proxy (writers and workers; the verifier reads kinesalite directly), over the run (%s) and at the peak (%s to %s):\n",
		time.Duration(secs*float64(time.Second)).Round(time.Second), plus(hf), plus(ht))
	ops := make([]string, 0, len(all))
	for op := range all {
		ops = append(ops, op)
	}
	sort.Slice(ops, func(i, j int) bool { return all[ops[i]].Requests > all[ops[j]].Requests })
	tw := tabwriter.NewWriter(ui.w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  OPERATION	CALLS	PER S	PER S AT PEAK	DETAIL (RUN; AT PEAK)")
	rate := func(n int64, secs float64) string {
		if secs <= 0 {
			return "-"
		}
		return strconv.FormatFloat(float64(n)/secs, 'f', 1, 64)
	}
	ratio := func(n, d int64) string {
		if d == 0 {
			return "-"
		}
		return strconv.FormatFloat(float64(n)/float64(d), 'f', 1, 64)
	}
	pct := func(n, d int64) string {
		if d == 0 {
			return "-"
		}
		return strconv.FormatFloat(100*float64(n)/float64(d), 'f', 0, 64) + "%"
	}
	mean := func(d time.Duration, n int64) string {
		if n == 0 {
			return "-"
		}
		return (d / time.Duration(n)).Round(time.Millisecond).String()
	}
	for _, op := range ops {
		c, p := all[op], peak[op]
		detail := ""
		switch op {
		case "PutRecords", "PutRecord":
			detail = fmt.Sprintf("records per call %s; %s; entries refused for throughput %d (%s); %s",
				ratio(c.Records, c.Requests), ratio(p.Records, p.Requests), c.Limited, pct(c.Limited, c.Records), pct(p.Limited, p.Records))
		case "GetRecords":
			detail = fmt.Sprintf("empty answers %s; %s; records per non-empty answer %s; %s",
				pct(c.Empty, c.Requests), pct(p.Empty, p.Requests), ratio(c.Got, c.Requests-c.Empty), ratio(p.Got, p.Requests-p.Empty))
		}
		if c.Forwarded > 0 && c.Upstream > 0 {
			if detail != "" {
				detail += "; "
			}
			detail += fmt.Sprintf("waited for a slot into kinesalite %s; %s, kinesalite answered in %s; %s (mean per call)",
				mean(c.Waited, c.Forwarded), mean(p.Waited, p.Forwarded), mean(c.Upstream, c.Forwarded), mean(p.Upstream, p.Forwarded))
		}
		fmt.Fprintf(tw, "  %s\t%d\t%s\t%s\t%s\n", op, c.Requests, rate(c.Requests, secs), rate(p.Requests, psecs), detail)
	}
	tw.Flush()
	if errs := s.upErrs; len(errs) > 0 {
		ui.printf("  kinesalite's error answers: %s\n", errs)
	}
	if len(s.rec.leaseOps) > 0 {
		var parts []string
		var n float64
		for op, v := range s.rec.leaseOps {
			n += v
			parts = append(parts, fmt.Sprintf("%s %.0f (%.1f/s)", op, v, v/secs))
		}
		sort.Strings(parts)
		ui.printf("the workers' AWS calls (aws_requests_total: every HTTP attempt, summed over every worker): %.0f (%.1f/s): %s\n", n, n/secs, strings.Join(parts, ", "))
	}
}
