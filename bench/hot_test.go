package bench

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// TestNextHotRate: the ladder climbs the listed rates while the hot customer keeps up, stops at the
// first it does not, then refines between the highest kept up and the lowest not.
func TestNextHotRate(t *testing.T) {
	rates := []float64{25, 50, 100, 200}
	ok := func(r float64) HotStep { return HotStep{Rate: r, KeptUp: true} }
	behind := func(r float64) HotStep { return HotStep{Rate: r} }
	cases := []struct {
		name   string
		refine int
		steps  []HotStep
		want   float64 // 0: done
	}{
		{"first", 1, nil, 25},
		{"climbs", 1, []HotStep{ok(25), ok(50)}, 100},
		{"top kept up: done", 1, []HotStep{ok(25), ok(50), ok(100), ok(200)}, 0},
		{"refines after the first behind", 1, []HotStep{ok(25), ok(50), behind(100)}, 71},
		{"one refinement only", 1, []HotStep{ok(25), ok(50), behind(100), ok(71)}, 0},
		{"second refinement narrows", 2, []HotStep{ok(25), ok(50), behind(100), ok(71)}, 84},
		{"second refinement below a failed one", 2, []HotStep{ok(25), ok(50), behind(100), behind(71)}, 60},
		{"no refinement", 0, []HotStep{ok(25), behind(50)}, 0},
		{"not even the first: nothing to refine", 1, []HotStep{behind(25)}, 0},
		{"adjacent rates: nothing between", 3, []HotStep{ok(25), behind(26)}, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, more := nextHotRate(rates, c.refine, c.steps)
			if more != (c.want != 0) || got != c.want {
				t.Fatalf("nextHotRate = %v, %v; want %v", got, more, c.want)
			}
		})
	}
}

func TestHotBounds(t *testing.T) {
	for _, c := range []struct {
		name      string
		steps     []HotStep
		keptUp    float64
		saturated bool
	}{
		{"none", nil, 0, false},
		{"all kept up: the top, a floor", []HotStep{{Rate: 25, KeptUp: true}, {Rate: 50, KeptUp: true}}, 50, false},
		{"refined", []HotStep{{Rate: 25, KeptUp: true}, {Rate: 50}, {Rate: 35, KeptUp: true}}, 35, true},
		{"not even the first", []HotStep{{Rate: 25}}, 0, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			k, s := hotBounds(c.steps)
			if k != c.keptUp || s != c.saturated {
				t.Fatalf("hotBounds = %v, %v; want %v, %v", k, s, c.keptUp, c.saturated)
			}
		})
	}
}

// TestStepFigures: rates over the step, the largest lag among events due in its second half, and
// the lag at its end from the oldest event that had not arrived.
func TestStepFigures(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := func(d float64) time.Time { return t0.Add(time.Duration(d * float64(time.Second))) }
	// Seq 1 belongs to an earlier step; this step sends seq 2..5 due at 0, 1, 2, 3 s and ends at 4 s.
	p := &hotProducer{due: []time.Time{s(-10), s(0), s(1), s(2), s(3)}}
	cases := []struct {
		name           string
		arrivals       []time.Time
		delivered      float64
		maxLag, endLag time.Duration
	}{
		{"kept up", []time.Time{s(0.1), s(1.1), s(2.2), s(3.1)}, 1, 200 * time.Millisecond, 0},
		// Seq 2 and 3 are due in the first half (their lags not counted); seq 4 (due 2 s, arrived
		// 6 s) is the largest lag and the oldest not arrived at 4 s.
		{"behind", []time.Time{s(1), s(3), s(6), s(6.5)}, 0.5, 4 * time.Second, 2 * time.Second},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sent, delivered, maxLag, endLag := p.stepFigures(2, c.arrivals, s(0), s(4), 2*time.Second)
			if sent != 1 || delivered != c.delivered || maxLag != c.maxLag || endLag != c.endLag {
				t.Fatalf("stepFigures = %v, %v, %s, %s; want 1, %v, %s, %s", sent, delivered, maxLag, endLag, c.delivered, c.maxLag, c.endLag)
			}
		})
	}
}

// TestHotTable: every step is a row of the table, with both modes' highest rate and audit.
func TestHotTable(t *testing.T) {
	h := &HotResult{RTT: 25 * time.Millisecond, Cold: 1000, ColdRate: 1, Step: 15 * time.Second, LagBound: 3 * time.Second,
		Plain: HotMode{Steps: []HotStep{{Rate: 25, Sent: 25, Delivered: 25, MaxLag: 40 * time.Millisecond, KeptUp: true, CallsPerEvent: 1.01},
			{Rate: 50, Sent: 50, Delivered: 33.3, MaxLag: 9 * time.Second, EndLag: 9 * time.Second, CallsPerEvent: 1}},
			KeptUp: 25, Saturated: true, Audit: "plain ok", OK: true},
		Agg: HotMode{Aggregate: true, Steps: []HotStep{{Rate: 25, KeptUp: true, CallsPerEvent: 0.5}}, KeptUp: 25, Aggregated: 12, Audit: "agg ok", OK: true},
	}
	var b strings.Builder
	h.print(&b, true)
	got := b.String()
	for _, want := range []string{"| off | 25 | 25.0 | 25.0 | 40ms | 0s | yes | 1.010 |", "| off | 50 | 50.0 | 33.3 | 9s | 9s | no | 1.000 |",
		"| on | 25 |", "AGGREGATE_KEYS off: highest rate kept up 25 events/s (0.6 per RTT); 0 events sent inside aggregates; audit: plain ok",
		"AGGREGATE_KEYS on: highest rate kept up 25 events/s (0.6 per RTT), the ladder's top: not saturated; 12 events sent inside aggregates; audit: agg ok",
		"+25ms, 1000 other customers at 1/s"} {
		if !strings.Contains(got, want) {
			t.Errorf("hot table lacks %q:\n%s", want, got)
		}
	}
	rows := 0
	for l := range strings.Lines(got) {
		if strings.HasPrefix(l, "| o") {
			rows++
		}
	}
	if rows != 3 {
		t.Errorf("%d step rows, want 3:\n%s", rows, got)
	}
	if !slices.ContainsFunc((&Report{Hot: h}).Targets(), func(t Target) bool { return t.Part == "hot" && t.Want != "" && !t.Met }) {
		t.Error("AGGREGATE_KEYS below 300 events/s not reported as a missed target")
	}
}
