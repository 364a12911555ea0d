package localrun

import (
	"testing"
	"time"

	"github.com/kinesis-events/pipeline/internal/autoscale"
)

func TestPlanFleet(t *testing.T) {
	p := FleetPolicy{WorkerPolicy: autoscale.WorkerPolicy{ShardsPerWorker: 4, MinWorkers: 2, MaxWorkers: 6}, ScaleInAfter: 30 * time.Second}
	t0 := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		name             string
		running, open    int
		lowSince         time.Time
		wantStart, wantS int
		wantLow          time.Time
	}{
		{"at the minimum", 2, 2, time.Time{}, 0, 0, time.Time{}},
		{"more shards: start at once", 2, 16, time.Time{}, 2, 0, time.Time{}},
		{"capped at the maximum", 2, 64, time.Time{}, 4, 0, time.Time{}},
		{"more shards cancel a pending scale-in", 4, 16, t0.Add(-20 * time.Second), 0, 0, time.Time{}},
		{"fewer shards: start the cool-down", 4, 8, time.Time{}, 0, 0, t0},
		{"fewer shards, in the cool-down", 4, 8, t0.Add(-20 * time.Second), 0, 0, t0.Add(-20 * time.Second)},
		{"fewer shards, cool-down over: stop one, wait again", 4, 4, t0.Add(-30 * time.Second), 0, 1, t0},
		{"never below the minimum", 2, 1, time.Time{}, 0, 0, time.Time{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m, low := planFleet(t0, p, tc.running, tc.open, tc.lowSince)
			if m.Start != tc.wantStart || m.Stop != tc.wantS || !low.Equal(tc.wantLow) {
				t.Fatalf("start %d stop %d lowSince %v, want %d, %d, %v (%+v)", m.Start, m.Stop, low, tc.wantStart, tc.wantS, tc.wantLow, m)
			}
			if (m.Start > 0 || m.Stop > 0) && m.Reason == "" {
				t.Fatal("a move without a reason")
			}
		})
	}
}

// TestPlanFleetScalesInOneAtATime: from 6 workers to 2 after the shards fall, one worker leaves
// per cool-down, never faster.
func TestPlanFleetScalesInOneAtATime(t *testing.T) {
	p := FleetPolicy{WorkerPolicy: autoscale.WorkerPolicy{ShardsPerWorker: 4, MinWorkers: 2, MaxWorkers: 6}, ScaleInAfter: 30 * time.Second}
	t0 := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	running, low := 6, time.Time{}
	var stops []time.Duration
	for s := 0; s <= 200; s++ {
		now := t0.Add(time.Duration(s) * time.Second)
		var m fleetMove
		m, low = planFleet(now, p, running, 4, low)
		running += m.Start - m.Stop
		if m.Stop > 0 {
			stops = append(stops, now.Sub(t0))
		}
	}
	if running != 2 || len(stops) != 4 {
		t.Fatalf("%d running after %v stops, want 2 after 4", running, stops)
	}
	for i := 1; i < len(stops); i++ {
		if stops[i]-stops[i-1] < p.ScaleInAfter {
			t.Fatalf("stops %v closer than the cool-down", stops)
		}
	}
}
