package localrun

import (
	"strings"
	"testing"
	"time"

	"github.com/kinesis-events/pipeline/internal/audit"
	"github.com/kinesis-events/pipeline/internal/autoscale"
	"github.com/kinesis-events/pipeline/internal/faultproxy"
	"github.com/kinesis-events/pipeline/internal/loadgen"
)

func TestSpikeSummaryLag(t *testing.T) {
	start := time.Unix(1_000, 0)
	prof, err := loadgen.ParseProfile("100:30s,100-1000:30s,1000:1m")
	if err != nil {
		t.Fatal(err)
	}
	cfg := SpikeDefaults()
	sec := func(at int64, delay time.Duration) audit.Second {
		return audit.Second{At: 1_000 + at, Delivered: 10, MaxDelay: delay}
	}
	s := spikeSummary{summary: summary{cfg: cfg, rep: &audit.Report{}}, prof: prof, rec: &record{start: start},
		timeline: []audit.Second{sec(10, time.Second), sec(40, 8*time.Second), sec(95, 30*time.Second), sec(120, 5*time.Second), sec(121, 2*time.Second), sec(130, time.Second)}}
	peak, peakAt, final, settled := s.lag()
	if peak != 30*time.Second || !peakAt.Equal(start.Add(95*time.Second)) || final != 2*time.Second || !settled.Equal(start.Add(121*time.Second)) {
		t.Fatalf("peak %v at %v, final %v, settled %v", peak, peakAt, final, settled)
	}
	// The spike starts at +30 s; the last event at or over 5 s arrived in second +120.
	if got := s.settleAfterSpike(); got != 91*time.Second {
		t.Fatalf("settled %v after the spike, want 1m31s", got)
	}
	s.rep = nil // an incomplete run never counts as settled
	if got := s.settleAfterSpike(); got < time.Hour {
		t.Fatalf("incomplete run settled after %v", got)
	}
}

func TestBalanceAfter(t *testing.T) {
	start := time.Unix(1_000, 0)
	lease := func(sw int64, held bool) shardLease { return shardLease{Switches: sw, Held: held} }
	rec := &record{start: start, balance: []balancePoint{
		{At: 9 * time.Second, Workers: 2, Switches: 2, Shards: map[string]shardLease{"a": lease(1, true), "b": lease(1, true)}},
		// The reshard (+10 s, took 1 s): a and b closed, children c..f waiting, one worker joined.
		{At: 12 * time.Second, Workers: 3, Unowned: 0, Spread: 2, Switches: 2, Shards: map[string]shardLease{"a": lease(1, true), "b": lease(1, true), "c": lease(0, false), "d": lease(0, false), "e": lease(0, false), "f": lease(0, false)}},
		{At: 14 * time.Second, Workers: 3, Unowned: 0, Spread: 1, Switches: 3, Shards: map[string]shardLease{"a": lease(2, true), "b": lease(1, true), "c": lease(0, false), "d": lease(0, false), "e": lease(0, false), "f": lease(0, false)}},
		{At: 20 * time.Second, Workers: 3, Unowned: 0, Spread: 1, Switches: 7, Shards: map[string]shardLease{"a": lease(2, true), "b": lease(1, true), "c": lease(1, true), "d": lease(1, true), "e": lease(1, true), "f": lease(1, true)}},
	}}
	s := spikeSummary{rec: rec}
	got := s.balanceAfter(autoscale.Decision{At: start.Add(10 * time.Second), TookMS: 1000, From: 2, To: 4})
	for _, want := range []string{"+10s 2->4:", "balanced (every leasable shard held, spread <= 1) after 3s", "every new shard leased after 9s (with 3 workers)",
		"5 ownership changes by then (4 first leases of 4 new shards), at most 1 per shard"} {
		if !strings.Contains(got, want) {
			t.Errorf("%q lacks %q", got, want)
		}
	}
}

func TestSpikeLagTimeline(t *testing.T) {
	start := time.Unix(1_000, 0)
	sec := func(at int64, delay, forward, hot time.Duration) audit.Second {
		return audit.Second{At: 1_000 + at, Delivered: 1, MaxDelay: delay, MaxForward: forward, MaxWrite: forward / 2, MaxFollowed: hot}
	}
	s := spikeSummary{rec: &record{start: start}, timeline: []audit.Second{
		sec(1, time.Second, 500*time.Millisecond, time.Second), sec(9, 3*time.Second, 2*time.Second, 0), sec(25, 7*time.Second, time.Second, 7*time.Second), sec(81, time.Second, time.Second, 0)}}
	want := "    +0s 3s/2s/1s/1s +10s - +20s 7s/1s/500ms/7s +30s - +40s - +50s - +1m0s - +1m10s -\n    +1m20s 1s/1s/500ms/0s\n"
	if got := s.lagTimeline(10 * time.Second); got != want {
		t.Fatalf("got\n%q\nwant\n%q", got, want)
	}
	if got := (spikeSummary{rec: &record{start: start}}).lagTimeline(10 * time.Second); got != "" {
		t.Fatalf("no arrivals: got %q", got)
	}
}

// The call counts are printed over the run and over the spike's hold at its peak: the profile's
// first flat segment after its first rise, taken between the samples nearest to its ends.
func TestCallsAtThePeak(t *testing.T) {
	p, err := loadgen.ParseProfile(DefaultSpikeProfile)
	if err != nil {
		t.Fatal(err)
	}
	if from, to := holdWindow(p); from != time.Minute || to != 4*time.Minute {
		t.Fatalf("holdWindow = %v..%v, want 1m0s..4m0s", from, to)
	}
	at := func(d time.Duration, calls, empty int64) callsPoint {
		return callsPoint{At: d, ByOp: map[string]faultproxy.Counts{"GetRecords": {Requests: calls, Empty: empty}}}
	}
	pts := []callsPoint{at(0, 0, 0), at(50*time.Second, 100, 90), at(time.Minute, 150, 100), at(4*time.Minute, 750, 130), at(5*time.Minute, 800, 170)}
	got, secs := callsBetween(pts, time.Minute, 4*time.Minute)
	if g := got["GetRecords"]; g.Requests != 600 || g.Empty != 30 || secs != 180 {
		t.Fatalf("callsBetween = %+v over %vs, want 600 calls, 30 empty, over 180 s", g, secs)
	}
}

// The split timeline takes each period's worst forwarder -> analytics delivery (not the worst of
// each part) and prints its three parts; a period whose worst delivery's raw record was not found
// is "?", and nothing is printed when no raw arrival is known.
func TestSpikeSplitTimeline(t *testing.T) {
	start := time.Unix(1_000, 0)
	at := func(s float64) time.Time { return start.Add(time.Duration(s * float64(time.Second))) }
	sec := func(arrived, forwarded, raw, processed float64) audit.Second {
		d := audit.Delivery{Forwarded: at(forwarded), Processed: at(processed), Arrived: at(arrived), SourceShard: "shardId-000000000012"}
		if raw > 0 {
			d.RawArrived = at(raw)
		}
		return audit.Second{At: at(arrived).Unix(), Delivered: 1, MaxForward: d.Arrived.Sub(d.Forwarded), Worst: d}
	}
	s := spikeSummary{rec: &record{start: start}, timeline: []audit.Second{
		sec(3, 1, 1.5, 2.8),    // 2 s: 0.5 / 1.3 / 0.2
		sec(9, 0.5, 7.5, 7.6),  // 8.5 s, the worst of +0s: 7 / 0.1 / 1.4
		sec(15, 14, 0, 14.5),   // raw arrival unknown
		sec(31, 20, 21, 30.5)}} // 1 / 9.5 / 0.5
	want := "    +0s 7s/100ms/1.4s@12 +10s ? +20s - +30s 1s/9.5s/500ms@12\n"
	if got := s.splitTimeline(10 * time.Second); got != want {
		t.Fatalf("got\n%q\nwant\n%q", got, want)
	}
	s.timeline[1].Worst.RawArrived, s.timeline[0].Worst.RawArrived, s.timeline[3].Worst.RawArrived = time.Time{}, time.Time{}, time.Time{}
	if got := s.splitTimeline(10 * time.Second); got != "" {
		t.Fatalf("no raw arrivals: got %q", got)
	}
}
