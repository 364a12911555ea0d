package localrun

import (
	"fmt"
	"io"
	"net"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/kinesis-events/pipeline/forwarder"
	"github.com/kinesis-events/pipeline/internal/audit"
	"github.com/kinesis-events/pipeline/internal/fleet"
	"github.com/kinesis-events/pipeline/internal/kclctl"
)

// view writes progress to a terminal (redrawing the live block in place) or to a log (one line per
// update, at most every 2 s).
type view struct {
	w           io.Writer
	interactive bool
	lastLines   int
	lastPlain   time.Time
}

func newView(w io.Writer, interactive bool) *view { return &view{w: w, interactive: interactive} }

func (v *view) printf(format string, args ...any) {
	v.lastLines = 0
	fmt.Fprintf(v.w, format, args...)
}

func (v *view) step(format string, args ...any) {
	v.printf("▸ "+format+" … ", args...)
}

func (v *view) ok(format string, args ...any) {
	if format == "" {
		v.printf("ok\n")
		return
	}
	v.printf("ok: "+format+"\n", args...)
}

func (v *view) warn(format string, args ...any) {
	v.printf("\n  ! "+format+"\n", args...)
}

func (v *view) fail(err error) error {
	v.printf("FAILED\n  %v\n", err)
	return err
}

func (v *view) kclctlHint(env []string) {
	var vars []string
	for _, e := range env {
		if strings.HasPrefix(e, "AWS_ENDPOINT_URL_") || strings.HasPrefix(e, "AWS_REGION=") ||
			strings.HasPrefix(e, "AWS_ACCESS_KEY_ID=") || strings.HasPrefix(e, "AWS_SECRET_ACCESS_KEY=") {
			vars = append(vars, e)
		}
	}
	v.printf("  inspect while it runs:  %s bin/kclctl checkpoints --watch\n\n", strings.Join(vars, " "))
}

type liveState struct {
	elapsed time.Duration
	fwd     forwarder.Stats
	snap    audit.Snapshot
	shards  []kclctl.Shard
	total   int
	readErr error
}

func (v *view) live(s liveState) {
	if !v.interactive {
		if time.Since(v.lastPlain) < 2*time.Second {
			return
		}
		v.lastPlain = time.Now()
		fmt.Fprintf(v.w, "%6s  forwarded %d/%d  quarantined %d  routed %d  late %d  dlq %d\n",
			s.elapsed.Round(time.Second), s.fwd.Forwarded, s.total, sumQ(s.snap.Quarantined), s.snap.Delivered, s.snap.Late, sumD(s.snap.DeadLetters))
		return
	}
	var b strings.Builder
	rate := 0.0
	if secs := s.elapsed.Seconds(); secs > 0 {
		rate = float64(s.snap.Delivered) / secs
	}
	fmt.Fprintf(&b, "  %s  elapsed %s\n", bar(int(s.fwd.Read), s.total, 30), s.elapsed.Round(100*time.Millisecond))
	fmt.Fprintf(&b, "  forwarded %d   quarantined %d   routed %d (%.0f/s)   late %d   gaps %d   dead letters %d\n\n",
		s.fwd.Forwarded, sumQ(s.snap.Quarantined), s.snap.Delivered, rate, s.snap.Late, s.snap.Gaps, sumD(s.snap.DeadLetters))
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  STREAM\tRECORDS")
	for _, name := range sortedKeys(s.snap.PerStream) {
		fmt.Fprintf(tw, "  %s\t%d\n", name, s.snap.PerStream[name])
	}
	tw.Flush()
	b.WriteString("\n")
	tw = tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  SHARD\tSTATE\tOWNER\tCHECKPOINT\tLAG")
	for _, sh := range s.shards {
		owner := sh.Owner
		if owner == "" {
			owner = "-"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", sh.ShardID, sh.State, owner, kclctl.ShortSeq(sh.Checkpoint), lagText(sh.Lag))
	}
	tw.Flush()
	if s.readErr != nil {
		fmt.Fprintf(&b, "\n  (last read of the output streams failed, retrying: %v)\n", s.readErr)
	}
	out := b.String()
	if v.lastLines > 0 {
		fmt.Fprintf(v.w, "\033[%dA\033[J", v.lastLines)
	}
	fmt.Fprint(v.w, out)
	v.lastLines = strings.Count(out, "\n")
}

func lagText(l kclctl.Lag) string {
	switch l.Status {
	case kclctl.LagCaughtUp:
		return "0"
	case kclctl.LagBehind:
		return kclctl.HumanDuration(time.Duration(l.AgeMS) * time.Millisecond)
	case kclctl.LagDone:
		return "-"
	}
	return "?"
}

func bar(done, total, width int) string {
	if total <= 0 {
		total = 1
	}
	filled := min(width, done*width/total)
	return "[" + strings.Repeat("█", filled) + strings.Repeat("·", width-filled) + "] " +
		strconv.Itoa(done) + "/" + strconv.Itoa(total) + " sent"
}

func sumQ[K comparable](m map[K]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

func sumD(m map[string]int) int { return sumQ(m) }

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// portFree fails fast with a clear message when a port on 127.0.0.1 is taken.
func portFree(port int) error {
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		return fmt.Errorf("port %d on 127.0.0.1 is already in use", port)
	}
	return l.Close()
}

type summary struct {
	cfg    Config
	res    *fleet.SendResult
	rep    *audit.Report
	dedupe map[string]float64
	// unknown is the workers' count of records sent in a write whose outcome was unknown (the only
	// records that may be delivered twice, byte for byte).
	unknown int
}

func (s summary) clean() bool {
	if s.rep == nil {
		return false
	}
	forwarder := 0
	if s.res != nil {
		forwarder = int(s.res.Forwarder.Unknown)
	}
	return s.rep.OKWithResent(s.unknown) && s.rep.QuarantineOK(s.unknown, forwarder)
}

func (v *view) summary(s summary) {
	v.printf("\n== Summary\n")
	tw := tabwriter.NewWriter(v.w, 0, 0, 2, ' ', 0)
	defer tw.Flush()
	if s.res != nil {
		m := s.res.Manifest
		fmt.Fprintf(tw, "sent (lines)\t%d\n", m.Lines)
		fmt.Fprintf(tw, "  unique valid events\t%d\n", m.Unique)
		fmt.Fprintf(tw, "  natural duplicates\t%d\n", m.Duplicates.Natural)
		fmt.Fprintf(tw, "  conflicting duplicates\t%d\n", m.Duplicates.Conflicting)
		fmt.Fprintf(tw, "  out of order\t%d\n", m.OutOfOrder)
		fmt.Fprintf(tw, "  malformed\t%d\n", sumBad(m.Bad))
		fmt.Fprintf(tw, "forwarder\t%d forwarded, %d quarantined, %d blank lines skipped, %d failed, %d retries\n",
			s.res.Forwarder.Forwarded, s.res.Forwarder.Quarantined, s.res.Forwarder.Blank, s.res.Forwarder.Failed, s.res.Forwarder.Retries)
	}
	if s.rep == nil {
		fmt.Fprintf(tw, "result\tINCOMPLETE: the run was stopped before every event arrived\n")
		return
	}
	r := s.rep
	for _, name := range sortedKeys(r.PerStream) {
		fmt.Fprintf(tw, "delivered to %s\t%d\n", name, r.PerStream[name])
	}
	q := stringKeys(r.Quarantined)
	for _, reason := range sortedKeys(q) {
		fmt.Fprintf(tw, "quarantined: %s\t%d\n", reason, q[reason])
	}
	fmt.Fprintf(tw, "duplicates dropped by the workers\t%.0f natural, %.0f conflicting (quarantined)\n", s.dedupe["natural"], s.dedupe["conflicting"])
	fmt.Fprintf(tw, "late / gaps\t%d / %d\n", r.Late, r.Gaps)
	fmt.Fprintf(tw, "lost\t%d\n", len(r.Lost))
	fmt.Fprintf(tw, "duplicates delivered\t%d\n", r.Duplicates)
	if r.Resent > 0 || s.unknown > 0 {
		fmt.Fprintf(tw, "  of them resent writes\t%d (records sent with an unknown outcome: %d)\n", r.Resent, s.unknown)
	}
	fmt.Fprintf(tw, "per-customer order violations\t%d\n", r.OrderViol)
	if !r.First.IsZero() && r.Last.After(r.First) {
		fmt.Fprintf(tw, "throughput\t%.0f events/s into analytics streams\n", float64(r.Delivered)/r.Last.Sub(r.First).Seconds())
	}
	if p50, p99, ok := percentiles(r.Latencies); ok {
		fmt.Fprintf(tw, "latency forwarder -> analytics\tp50 %s, p99 %s\n", p50, p99)
	}
	verdict := "OK: every event exactly once, in per-customer order"
	switch {
	case !s.clean():
		verdict = "NOT CLEAN: " + r.String()
	case r.Resent > 0:
		verdict = fmt.Sprintf("OK: every event processed once, in per-customer order; %d written twice by a resent write whose outcome was unknown (same bytes, same event_id)", r.Resent)
	}
	fmt.Fprintf(tw, "result\t%s\n", verdict)
}

func sumBad[K comparable](m map[K]int) int { return sumQ(m) }

func stringKeys[K ~string](m map[K]int) map[string]int {
	out := make(map[string]int, len(m))
	for k, v := range m {
		out[string(k)] = v
	}
	return out
}

func percentiles(d []time.Duration) (p50, p99 time.Duration, ok bool) {
	if len(d) == 0 {
		return 0, 0, false
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	at := func(q float64) time.Duration { return s[min(len(s)-1, int(q*float64(len(s))))].Round(time.Millisecond) }
	return at(0.50), at(0.99), true
}
