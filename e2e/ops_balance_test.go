package e2e

import (
	"testing"
	"time"

	"github.com/kinesis-events/pipeline/internal/audit"
	"github.com/kinesis-events/pipeline/internal/fleet"
)

// balanceHold is how long a converged fleet must hold still (no lease moving) to count as free of
// thrash: two lease durations.
const balanceHold = 20 * time.Second

// TestOpsBalance measures lease balancing with the real workers on 6 shards under load: one worker
// alone, two more join (1 -> 3), one leaves with SIGTERM (3 -> 2), then `kclctl scale --apply`
// reshards 6 -> 8 while the two keep running. Each phase must end with every leasable shard held by
// a live worker, loads differing by at most one, and no lease moving for balanceHold afterwards.
// It reports the convergence time and the ownership changes (OwnerSwitches) of each phase, and
// the whole run must be exactly-once and in order: the fleet followed the reshard by itself.
func TestOpsBalance(t *testing.T) {
	skipUnlessChaos(t, true) // about four minutes: part of `make chaos`, not of `make test`
	topo := fleet.DefaultTopology()
	topo.RawShards = 6
	d := deploy(t, topo)
	f := newOpsFleet(t, d)
	f.start(1)
	send, err := d.env.Send(fleet.Load{Count: 18000, Customers: 600, Rate: 150, Seed: 23})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(send.Stop)
	tail := d.env.NewTail(d.stack.Kinesis())
	f.tail = tail
	_, _, st := f.convergence("worker 1 alone", time.Now(), 0, 2*time.Minute, 0, 1)
	waitFor(t, tail, 2*time.Minute, "events flowing", func(s audit.Snapshot) bool { return s.Unique >= 300 })

	type phase struct {
		name         string
		took         time.Duration
		moves, extra int64
		maxPerShard  int64
		state        leaseState
	}
	var phases []phase
	perShardMax := func(before, after leaseState) int64 {
		var m int64
		for id, n := range after.PerShard {
			m = max(m, n-before.PerShard[id])
		}
		return m
	}

	// Join: 1 -> 3.
	before := st
	joined := time.Now()
	f.start(2)
	f.start(3)
	took, moves, st := f.convergence("join 1->3", joined, before.Switches, 3*time.Minute, balanceHold, 1, 2, 3)
	phases = append(phases, phase{"join 1->3", took, moves, 0, perShardMax(before, st), st})

	// Leave: 3 -> 2 (SIGTERM: the leaver releases its leases).
	before = st
	left := f.stop(3)
	took, moves, st = f.convergence("leave 3->2", left, before.Switches, 3*time.Minute, balanceHold, 1, 2)
	phases = append(phases, phase{"leave 3->2", took, moves, 0, perShardMax(before, st), st})

	// Reshard: 6 -> 8 open shards with both workers running.
	before = st
	resharded := time.Now()
	code, out, errOut := f.kclctl("scale", "--shards", "8", "--apply")
	if code != 0 {
		t.Fatalf("kclctl scale: exit %d\n%s\n%s", code, out, errOut)
	}
	record(t, "scale", "kclctl scale --shards 8 --apply", out)
	took, moves, st = f.convergenceWhen("reshard 6->8", resharded, before.Switches, 3*time.Minute, balanceHold,
		func(s leaseState) bool { return s.Leasable == 8 && s.Finished >= 2 }, 1, 2)
	newShards := int64(len(st.PerShard) - len(before.PerShard))
	for _, c := range [][]string{{"checkpoints"}, {"workers"}} {
		code, out, errOut := f.kclctl(c...)
		if code != 0 {
			t.Fatalf("kclctl %s after the reshard: exit %d\n%s\n%s", c[0], code, out, errOut)
		}
		record(t, c[0]+"-after-reshard", "kclctl "+c[0], out)
	}
	phases = append(phases, phase{"reshard 6->8", took, moves, newShards, perShardMax(before, st), st})

	for _, p := range phases {
		t.Logf("BALANCE %-13s converged in %7s; %d ownership changes (%d of them first leases of new shards), at most %d per shard; %s",
			p.name, p.took.Round(time.Millisecond), p.moves, p.extra, p.maxPerShard, p.state)
	}
	// Fewest possible moves: join 4 (6 shards, 6/0/0 -> 2/2/2), leave 2 (the leaver's), reshard the
	// 4 first leases plus none. Allow one extra move per phase at most; more is thrash.
	for _, p := range phases {
		need := map[string]int64{"join 1->3": 4, "leave 3->2": 2, "reshard 6->8": 4}[p.name]
		if p.moves > need+1 || p.maxPerShard > 2 {
			t.Errorf("%s: %d ownership changes (need %d), a shard moved %d times", p.name, p.moves, need, p.maxPerShard)
		}
	}

	res, rep := f.settle(send, tail, 4*time.Minute, "BALANCE")
	requireReportClean(t, f.d, rep, res.Manifest) // across join, leave and reshard
}
