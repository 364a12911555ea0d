package localrun

import (
	"fmt"
	"time"

	"github.com/kinesis-events/pipeline/internal/autoscale"
)

// FleetPolicy is how localrun plays ECS for the worker fleet in a spike run. It runs
// WorkerPolicy.Workers(live raw shards) workers, where the live shards are the open ones and the
// closed ones the fleet has not finished (a backlog in closed shards needs workers too): the task
// maximum the autoscaler sets on AWS, as if the service always ran at its maximum. Workers are started as soon as more are wanted; one
// is stopped (SIGTERM: it checkpoints and releases its leases) only after fewer have been wanted
// for ScaleInAfter, and the next one ScaleInAfter later: scale-in is slow, so a reshard's
// hand-offs settle before the next worker leaves.
type FleetPolicy struct {
	autoscale.WorkerPolicy
	ScaleInAfter time.Duration
}

// Validate reports every problem of p.
func (p FleetPolicy) Validate() error {
	if err := p.WorkerPolicy.Validate(); err != nil {
		return err
	}
	if p.ScaleInAfter <= 0 {
		return fmt.Errorf("scale-in cool-down %v must be positive", p.ScaleInAfter)
	}
	return nil
}

// fleetMove is what planFleet asks for.
type fleetMove struct {
	Want, Start, Stop int
	Reason            string
}

// planFleet decides, at now, how many workers to start or stop, given the running ones, the live
// raw shards, and since when fewer workers have been wanted (zero: not fewer). It returns the
// move and the new lowSince.
func planFleet(now time.Time, p FleetPolicy, running, liveShards int, lowSince time.Time) (fleetMove, time.Time) {
	want := p.Workers(liveShards)
	m := fleetMove{Want: want}
	switch {
	case want > running:
		m.Start = want - running
		m.Reason = fmt.Sprintf("%d live raw shards want %d workers (%d per worker)", liveShards, want, p.ShardsPerWorker)
		return m, time.Time{}
	case want == running:
		return m, time.Time{}
	case lowSince.IsZero():
		return m, now
	case now.Sub(lowSince) < p.ScaleInAfter:
		return m, lowSince
	}
	m.Stop = 1
	m.Reason = fmt.Sprintf("%d live raw shards want %d workers for %s", liveShards, want, p.ScaleInAfter)
	return m, now
}
