package autoscale

import (
	"fmt"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/kinesis-events/pipeline/internal/reshard"
)

var t0 = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

// even returns n open shards of even width.
func even(n int) []reshard.Range {
	out := make([]reshard.Range, n)
	w := new(big.Int).Div(reshard.HashSpace, big.NewInt(int64(n)))
	for i := range n {
		lo := new(big.Int).Mul(w, big.NewInt(int64(i)))
		hi := new(big.Int).Sub(new(big.Int).Add(lo, w), big.NewInt(1))
		if i == n-1 {
			hi = new(big.Int).Sub(reshard.HashSpace, big.NewInt(1))
		}
		out[i] = reshard.Range{ShardID: "s" + string(rune('a'+i)), Start: lo, End: hi}
	}
	return out
}

// steady is one sample per second over [to-d, to) at rec records/s of 500 bytes and thr throttled/s.
func steady(to time.Time, d time.Duration, rec, thr float64) []Sample {
	var out []Sample
	for at := to.Add(-d); at.Before(to); at = at.Add(time.Second) {
		out = append(out, Sample{At: at, Period: time.Second, Records: rec, Bytes: 500 * rec, Throttled: thr})
	}
	return out
}

func TestDecide(t *testing.T) {
	p := LocalPolicy() // 100 records/s per shard; out window 10 s, in window 60 s
	p.OutCooldown, p.InCooldown = 10*time.Second, 60*time.Second
	long := History{Since: t0.Add(-time.Hour), LastReshard: t0.Add(-time.Hour)}
	view := func(open []reshard.Range, samples []Sample) View {
		return View{Stream: "s", Status: "ACTIVE", Open: open, Samples: samples, From: t0.Add(-p.InWindow), To: t0, AccountHeadroom: -1}
	}
	calls := func(n int, at time.Time) History {
		h := long
		for range n {
			h.Calls = append(h.Calls, at)
		}
		return h
	}
	cases := []struct {
		name       string
		view       View
		hist       History
		wantAction string
		wantTo     int
		wantReason string
	}{
		{"within the band", view(even(2), steady(t0, time.Minute, 100, 0)), long, ActionHold, 2, "within"},
		{"above the bar: sized for the target", view(even(2), steady(t0, time.Minute, 180, 0)), long, ActionOut, 4, "utilisation 0.90 > 0.80"},
		{"far above: at most double", view(even(2), steady(t0, time.Minute, 1500, 0)), long, ActionOut, 4, "2 -> 4"},
		{"throttled demand counts, at most as much again as written", view(even(4), steady(t0, time.Minute, 250, 500)), long, ActionOut, 8, "utilisation 1.25"},
		{"throttled with no write through: one more", view(even(1), steady(t0, time.Minute, 0, 50)), long, ActionOut, 2, "100% of writes throttled"},
		{"throttled far above what the load needs: a hot key", view(even(4), steady(t0, time.Minute, 10, 5)), long, ActionBlocked, 4, "hot key"},
		{"split/merge configured: sized by the even layouts", func() View { v := view(even(4), steady(t0, time.Minute, 330, 0)); v.SplitMerge = true; return v }(), long, ActionOut, 8, "4 -> 8"},
		{"uniform: the count the load needs", view(even(4), steady(t0, time.Minute, 330, 0)), long, ActionOut, 7, "4 -> 7"},
		{"throttled below the bar: one more", view(even(4), steady(t0, time.Minute, 200, 10)), long, ActionOut, 5, "throttled"},
		{"throttled below the bar, split/merge: to the next even layout", view(even(4), steady(t0, time.Minute, 200, 10)),
			History{Since: long.Since, LastReshard: long.LastReshard, Method: reshard.MethodSplitMerge}, ActionOut, 8, "4 -> 8"},
		{"split/merge sizes by the widest shard", view(even(2), steady(t0, time.Minute, 170, 0)),
			History{Since: long.Since, LastReshard: long.LastReshard, Method: reshard.MethodSplitMerge}, ActionOut, 4, "2 -> 4"},
		{"throttled at the size a scale-in sizes for: bursts, not demand", view(even(4), steady(t0, time.Minute, 110, 1.3)), long, ActionBlocked, 4, "more shards do not fix"},
		{"a trickle of throttles is noise", view(even(2), steady(t0, time.Minute, 100, 0.5)), long, ActionHold, 2, "within"},
		{"out cool-down", view(even(2), steady(t0, time.Minute, 180, 0)), History{Since: long.Since, LastReshard: t0.Add(-5 * time.Second)}, ActionBlocked, 2, "cool-down 10s"},
		{"updating", func() View { v := view(even(2), steady(t0, time.Minute, 180, 0)); v.Status = "UPDATING"; return v }(), long, ActionBlocked, 2, "UPDATING"},
		{"no calls left", view(even(2), steady(t0, time.Minute, 180, 0)), calls(10, t0.Add(-23*time.Hour)), ActionBlocked, 2, "no reshard calls left"},
		{"calls older than 24 h are back", view(even(2), steady(t0, time.Minute, 180, 0)), calls(10, t0.Add(-25*time.Hour)), ActionOut, 4, ""},
		{"stream maximum", view(even(64), steady(t0, time.Minute, 6000, 0)), long, ActionBlocked, 64, "at the limit"},
		{"account headroom", func() View { v := view(even(2), steady(t0, time.Minute, 1500, 0)); v.AccountHeadroom = 1; return v }(), long, ActionOut, 3, "2 -> 3"},
		{"no account headroom", func() View { v := view(even(2), steady(t0, time.Minute, 1500, 0)); v.AccountHeadroom = 0; return v }(), long, ActionBlocked, 2, "account headroom 0"},
		{"quiet: scale in, at most halving", view(even(8), steady(t0, time.Minute, 20, 0)), long, ActionIn, 4, "8 -> 4"},
		{"quiet: scale in to what the peak needs", view(even(8), steady(t0, time.Minute, 180, 0)), long, ActionIn, 4, "peak utilisation 0.23"},
		{"quiet but a burst within the in window", view(even(8), append(steady(t0.Add(-30*time.Second), 10*time.Second, 400, 0), steady(t0, 20*time.Second, 20, 0)...)), long, ActionHold, 8, "within"},
		{"quiet, in cool-down", view(even(8), steady(t0, time.Minute, 20, 0)), History{Since: long.Since, LastReshard: t0.Add(-30 * time.Second)}, ActionHold, 8, "cool-down 1m0s"},
		{"quiet, not seen for a window yet", view(even(8), steady(t0, time.Minute, 20, 0)), History{Since: t0.Add(-20 * time.Second)}, ActionHold, 8, "only 20s of load seen"},
		{"quiet, calls kept for scale-out", view(even(8), steady(t0, time.Minute, 20, 0)), calls(8, t0.Add(-time.Hour)), ActionBlocked, 8, "2 kept for scale-out"},
		{"quiet at the minimum", view(even(1), nil), long, ActionHold, 1, "within"},
		{"quiet, but the fleet is still draining closed shards", func() View { v := view(even(8), steady(t0, time.Minute, 20, 0)); v.Draining = 3; return v }(), long, ActionHold, 8, "not finished 3 closed"},
		{"quiet, but the fleet is behind", func() View { v := view(even(8), steady(t0, time.Minute, 20, 0)); v.Behind = time.Minute; return v }(), long, ActionHold, 8, "1m0s behind on the raw stream"},
		{"quiet, but the fleet's view could not be read", func() View { v := view(even(8), steady(t0, time.Minute, 20, 0)); v.FleetUnknown = true; return v }(), long, ActionHold, 8, "could not be read"},
		{"quiet, the fleet a little behind", func() View { v := view(even(8), steady(t0, time.Minute, 20, 0)); v.Behind = 5 * time.Second; return v }(), long, ActionIn, 4, "8 -> 4"},
		{"quiet, split/merge: to an even layout that holds the peak", view(even(4), steady(t0, time.Minute, 90, 0)),
			History{Since: long.Since, LastReshard: long.LastReshard, Method: reshard.MethodSplitMerge}, ActionIn, 2, "4 -> 2"},
		{"quiet, split/merge from an uneven layout", view(func() []reshard.Range { rs, _ := reshard.SplitMergeResult(even(4), 6); return rs }(), steady(t0, time.Minute, 90, 0)),
			History{Since: long.Since, LastReshard: long.LastReshard, Method: reshard.MethodSplitMerge}, ActionIn, 3, "6 -> 3"},
		{"on demand: watch", func() View { v := view(even(4), steady(t0, time.Minute, 1000, 0)); v.OnDemand = true; return v }(), long, ActionWatch, 20, "on-demand"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := Decide(t0, p, tc.view, tc.hist)
			if d.Action != tc.wantAction || d.To != tc.wantTo || !strings.Contains(d.Reason, tc.wantReason) {
				t.Fatalf("got %s to %d (%s), want %s to %d (%q)", d.Action, d.To, d.Reason, tc.wantAction, tc.wantTo, tc.wantReason)
			}
			if d.From != len(tc.view.Open) || d.Stream != "s" || !d.At.Equal(t0) {
				t.Fatalf("decision header %+v", d)
			}
		})
	}
}

// TestDecideThrottledAfterReshard: throttles counted partly before the last reshard were refused
// by the old layout; the throttle rule waits until its window lies after the reshard, though the
// out cool-down is shorter.
func TestDecideThrottledAfterReshard(t *testing.T) {
	p := LocalPolicy() // out window 10 s, out cool-down 5 s
	for _, tc := range []struct {
		since      time.Duration
		wantAction string
		wantReason string
	}{
		{7 * time.Second, ActionBlocked, "partly before the last reshard 7s ago"},
		{11 * time.Second, ActionOut, "4 -> 5"},
	} {
		v := View{Stream: "s", Status: "ACTIVE", Open: even(4), Samples: steady(t0, time.Minute, 200, 10), From: t0.Add(-p.InWindow), To: t0, AccountHeadroom: -1}
		d := Decide(t0, p, v, History{Since: t0.Add(-time.Hour), LastReshard: t0.Add(-tc.since)})
		if d.Action != tc.wantAction || !strings.Contains(d.Reason, tc.wantReason) {
			t.Errorf("%s after the reshard: got %s to %d (%s), want %s (%q)", tc.since, d.Action, d.To, d.Reason, tc.wantAction, tc.wantReason)
		}
	}
	// Within the window the throttled extra is not demand: 250 written and 500 throttled per second
	// on 4 shards is 1.25 an hour after a reshard, and 0.62 (what was written) 7 s after one.
	v := View{Stream: "s", Status: "ACTIVE", Open: even(4), Samples: steady(t0, time.Minute, 250, 500), From: t0.Add(-p.InWindow), To: t0, AccountHeadroom: -1}
	for _, tc := range []struct {
		since      time.Duration
		wantAction string
		wantUtil   float64
	}{{time.Hour, ActionOut, 1.25}, {7 * time.Second, ActionBlocked, 0.625}, {11 * time.Second, ActionOut, 1.25}} {
		d := Decide(t0, p, v, History{Since: t0.Add(-2 * time.Hour), LastReshard: t0.Add(-tc.since)})
		if d.Action != tc.wantAction || d.Util < tc.wantUtil-1e-9 || d.Util > tc.wantUtil+1e-9 {
			t.Errorf("%s after the reshard: got %s at utilisation %.3f (%s), want %s at %.3f", tc.since, d.Action, d.Util, d.Reason, tc.wantAction, tc.wantUtil)
		}
	}
	// Above the bar, utilisation is demand whatever the layout: the cool-down alone applies.
	v = View{Stream: "s", Status: "ACTIVE", Open: even(2), Samples: steady(t0, time.Minute, 180, 10), From: t0.Add(-p.InWindow), To: t0, AccountHeadroom: -1}
	if d := Decide(t0, p, v, History{Since: t0.Add(-time.Hour), LastReshard: t0.Add(-7 * time.Second)}); d.Action != ActionOut {
		t.Errorf("above the bar 7s after a reshard: got %s (%s), want scale-out", d.Action, d.Reason)
	}
}

// TestDecideNoThrash: a load that stays put never flips between scale-out and scale-in. From any
// count, after the reshard the rule asks for, the next decision at the same load is a hold.
func TestDecideNoThrash(t *testing.T) {
	p := LocalPolicy()
	type run struct {
		rate, share float64 // share: of the writes throttled (bursts the writers retry), part of a steady load too
		method      string
		start       int
	}
	var runs []run
	for _, share := range []float64{0, 0.02} {
		for _, rate := range []float64{30, 90, 110, 150, 400, 777, 1500, 3000} {
			for _, method := range []string{reshard.MethodUniform, reshard.MethodSplitMerge} {
				for _, start := range []int{2, 16} {
					runs = append(runs, run{rate, share, method, start})
				}
			}
		}
	}
	for _, r := range runs {
		name := fmt.Sprintf("%v/s (%.0f%% throttled) %s from %d shards", r.rate, 100*r.share, r.method, r.start)
		open := even(r.start)
		h := History{Since: t0.Add(-time.Hour), LastReshard: t0.Add(-time.Hour), Method: r.method}
		now := t0
		for step := 0; step < 12; step++ {
			v := View{Stream: "s", Status: "ACTIVE", Open: open, Samples: steady(now, 2*time.Minute, r.rate, r.share*r.rate), From: now.Add(-p.InWindow), To: now, AccountHeadroom: -1}
			d := Decide(now, p, v, h)
			if d.Action == ActionBlocked && strings.Contains(d.Reason, "more shards do not fix") {
				break // settled: throttles below the target utilisation are bursts
			}
			if d.Action == ActionHold {
				if d.Util > p.ScaleOutAbove || (d.PeakUtil < p.ScaleInBelow && len(open) > p.MinShards && !strings.Contains(d.Reason, "no smaller")) {
					t.Fatalf("%s: settled at %d shards with utilisation %.2f: %s", name, len(open), d.Util, d.Reason)
				}
				break
			}
			if d.Action != ActionOut && d.Action != ActionIn {
				t.Fatalf("%s: %s", name, d.Reason)
			}
			if step > 0 && d.Action != h.Last.Action {
				t.Fatalf("%s: %s after %s at the same load (%s)", name, d.Action, h.Last.Action, d.Reason)
			}
			if r.method == reshard.MethodUniform {
				open = even(d.To)
			} else {
				rs, err := reshard.SplitMergeResult(open, d.To)
				if err != nil {
					t.Fatal(err)
				}
				open = rs
			}
			h.Last, h.LastReshard, h.Calls = &d, now, nil
			now = now.Add(2 * time.Hour)
		}
	}
}

// TestDecideScaleInThenBursts: after the scale-ins a load asks for, the same load with a small
// share of throttled writes (bursts its writers retry) does not scale out again: the throttle rule
// stops where a scale-in sizes for, so the two never undo each other.
func TestDecideScaleInThenBursts(t *testing.T) {
	p := LocalPolicy()
	for _, rate := range []float64{30, 90, 110, 150, 400, 777} {
		for _, method := range []string{reshard.MethodUniform, reshard.MethodSplitMerge} {
			open := even(32)
			h := History{Since: t0.Add(-time.Hour), LastReshard: t0.Add(-time.Hour), Method: method}
			now := t0
			for step := 0; ; step++ {
				if step == 12 {
					t.Fatalf("%v/s %s: no settled count after 12 steps", rate, method)
				}
				v := View{Stream: "s", Status: "ACTIVE", Open: open, Samples: steady(now, 2*time.Minute, rate, 0), From: now.Add(-p.InWindow), To: now, AccountHeadroom: -1}
				d := Decide(now, p, v, h)
				if d.Action != ActionIn {
					break
				}
				rs, err := reshard.SplitMergeResult(open, d.To)
				if err != nil {
					t.Fatal(err)
				}
				if method == reshard.MethodUniform {
					rs = even(d.To)
				}
				open, h.LastReshard = rs, now
				now = now.Add(2 * time.Hour)
			}
			v := View{Stream: "s", Status: "ACTIVE", Open: open, Samples: steady(now, 2*time.Minute, rate, 0.02*rate), From: now.Add(-p.InWindow), To: now, AccountHeadroom: -1}
			if d := Decide(now, p, v, h); d.Action == ActionOut {
				t.Errorf("%v/s %s: scaled in to %d, then out at 2%% throttled: %s", rate, method, len(open), d.Reason)
			}
		}
	}
}
