package e2e

import (
	"fmt"
	"sort"
	"syscall"
	"testing"
	"time"

	"github.com/kinesis-events/pipeline/internal/audit"
	"github.com/kinesis-events/pipeline/internal/fleet"
	"github.com/kinesis-events/pipeline/internal/poll"
)

// TestOpsHandOff measures graceful hand-off: SIGTERM one of two workers under load and time (a)
// until its peer holds every one of its shards and (b) until the peer has checkpointed new progress
// on each of them. The peer must take each shard before the stopped worker's lease on it would have
// expired (so it was released, not left to run out), and the run stays exactly-once and in order.
func TestOpsHandOff(t *testing.T) {
	if testing.Short() {
		t.Skip("binary-level operations run; not in -short")
	}
	topo := fleet.DefaultTopology()
	d := deploy(t, topo)
	f := newOpsFleet(t, d)
	f.start(1)
	f.start(2)
	send, err := d.env.Send(fleet.Load{Count: 8000, Customers: 400, Rate: 300, Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(send.Stop)
	tail := d.env.NewTail(d.stack.Kinesis())
	f.tail = tail
	waitFor(t, tail, 3*time.Minute, "a quarter of the events delivered", func(s audit.Snapshot) bool { return s.Unique >= 2000 })
	f.convergence("before the hand-off", time.Now(), 0, 2*time.Minute, 0, 1, 2)

	// The stopped worker's shards and the lease expiry it last wrote on each.
	w1, w2 := f.id(1), f.id(2)
	expiry := map[string]time.Time{}
	for _, sh := range f.snapshot().Shards {
		if sh.Owner == w1 && !sh.LeaseExpired {
			expiry[sh.ShardID] = sh.LeaseExpiresAt
		}
	}
	if len(expiry) == 0 {
		t.Fatal("worker 1 holds no lease before the hand-off")
	}
	p := f.procs[1]
	sigterm := time.Now()
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	taken, processed := map[string]time.Duration{}, map[string]time.Duration{}
	var exited time.Duration
	poll.Until(t, 2*time.Minute, 50*time.Millisecond, "hand-off complete (every shard processed by worker 2, worker 1 exited)", func() (bool, string) {
		select {
		case <-p.Done():
			if exited == 0 {
				exited = time.Since(sigterm)
				if err := p.Err(); err != nil {
					t.Fatalf("worker 1 exit: %v", err)
				}
			}
		default:
		}
		for _, sh := range f.snapshot().Shards {
			if _, ok := expiry[sh.ShardID]; !ok || sh.Owner != w2 || sh.LeaseExpired {
				continue
			}
			if _, ok := taken[sh.ShardID]; !ok {
				taken[sh.ShardID] = time.Since(sigterm)
				if !sh.LeaseAcquiredAt.Before(expiry[sh.ShardID]) {
					t.Errorf("shard %s: taken at %s, not before worker 1's lease expiry %s: it ran out instead of being released",
						sh.ShardID, sh.LeaseAcquiredAt.Format(time.RFC3339Nano), expiry[sh.ShardID].Format(time.RFC3339Nano))
				}
			}
			if _, ok := processed[sh.ShardID]; !ok && sh.CheckpointedAt.After(sigterm) {
				processed[sh.ShardID] = time.Since(sigterm)
			}
		}
		return len(processed) == len(expiry) && exited != 0, fmt.Sprintf("taken %v processed %v exited %v", taken, processed, exited)
	})
	delete(f.procs, 1)
	var maxTaken, maxProcessed time.Duration
	ids := make([]string, 0, len(expiry))
	for id := range expiry {
		ids = append(ids, id)
		maxTaken, maxProcessed = max(maxTaken, taken[id]), max(maxProcessed, processed[id])
	}
	sort.Strings(ids)
	for _, id := range ids {
		t.Logf("HANDOFF shard %s: peer holds the lease %s after SIGTERM, first peer checkpoint %s after SIGTERM",
			id, taken[id].Round(time.Millisecond), processed[id].Round(time.Millisecond))
	}
	t.Logf("HANDOFF worker 1 exited %s after SIGTERM; peer held all %d of its shards after %s and was processing all of them after %s",
		exited.Round(time.Millisecond), len(ids), maxTaken.Round(time.Millisecond), maxProcessed.Round(time.Millisecond))

	res, rep := f.settle(send, tail, 3*time.Minute, "HANDOFF")
	requireReportClean(t, f.d, rep, res.Manifest)
}

// TestOpsRollingRestart restarts each of three workers in turn (SIGTERM, wait for the exit, start
// again with the same id, wait for the fleet to rebalance) while events flow, and requires 0 lost,
// 0 duplicated and 0 out-of-order events.
func TestOpsRollingRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("binary-level operations run; not in -short")
	}
	topo := fleet.DefaultTopology()
	topo.RawShards = 6
	d := deploy(t, topo)
	f := newOpsFleet(t, d)
	for n := 1; n <= 3; n++ {
		f.start(n)
	}
	send, err := d.env.Send(fleet.Load{Count: 15000, Customers: 600, Rate: 250, Seed: 11, DupRatio: 0.02, ConflictRatio: 0.01, OOORatio: 0.05})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(send.Stop)
	tail := d.env.NewTail(d.stack.Kinesis())
	f.tail = tail
	waitFor(t, tail, 3*time.Minute, "events flowing", func(s audit.Snapshot) bool { return s.Unique >= 1000 })
	_, _, st := f.convergence("before the roll", time.Now(), 0, 2*time.Minute, 0, 1, 2, 3)
	start, base := time.Now(), st.Switches
	for n := 1; n <= 3; n++ {
		began := time.Now()
		f.stop(n)
		stopped := time.Since(began)
		before := tail.Snapshot().Unique
		f.start(n)
		took, moves, _ := f.convergence("restart of worker "+f.id(n), began, st.Switches, 3*time.Minute, 5*time.Second, 1, 2, 3)
		st = f.leases(1, 2, 3)
		if err := tail.Poll(t.Context()); err != nil {
			t.Fatal(err)
		}
		t.Logf("ROLLING worker %d: exited %s after SIGTERM, fleet balanced again %s after SIGTERM, %d ownership changes; %d events delivered meanwhile",
			n, stopped.Round(time.Millisecond), took.Round(time.Millisecond), moves, tail.Snapshot().Unique-before)
	}
	t.Logf("ROLLING whole fleet restarted in %s with %d ownership changes", time.Since(start).Round(time.Millisecond), st.Switches-base)
	if sent := send.Stats(); sent.Forwarded >= 15000*9/10 {
		t.Logf("ROLLING note: the load had mostly been sent (%d) when the roll finished", sent.Forwarded)
	}

	res, rep := f.settle(send, tail, 4*time.Minute, "ROLLING")
	// Records read again by a new owner after each hand-off include conflicting duplicates that were
	// quarantined already: each must still be quarantined exactly once. The displaced events (10
	// lines at most) are reordered, never flagged.
	var replays float64
	for n := 1; n <= 3; n++ {
		replays += f.metric(n, "pipeline_quarantine_replays_total")
	}
	t.Logf("ROLLING quarantine records not repeated after a replay (workers' counters since their last start): %v", replays)
	if res.Manifest.Duplicates.Conflicting == 0 {
		t.Errorf("the generator made no conflicting duplicate: the quarantine-once check proves nothing")
	}
	requireReportClean(t, f.d, rep, res.Manifest)
}
