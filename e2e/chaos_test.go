package e2e

// Binary-level chaos scenarios (issue 3, "Done when"): the real worker, forwarder and loadgen
// binaries on kinesalite + dynalite, with one failure injected mid-run. Each scenario logs
// "sent / delivered / lost / duplicated / order violations" and asserts what the issue asks.
//
// `make test` runs the bounded subset (kill -9, DynamoDB pause, dirty input); the long ones
// (reshard under a slow processor, destination outage, a worker with a skewed clock) run with
// E2E_CHAOS=1. All of them:
//
//	E2E_CHAOS=1 go test -race -count=1 -timeout 40m -run '^TestChaos' -v ./e2e/
//
// Order violations are judged on first deliveries (see outcome); E2E_KEEP_LOGS=dir keeps the
// worker logs of every chaos run.

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/awslabs/kinesis-aggregation/go/v2/deaggregator"

	"github.com/kinesis-events/pipeline/checkpoint"
	"github.com/kinesis-events/pipeline/event"
	"github.com/kinesis-events/pipeline/internal/audit"
	"github.com/kinesis-events/pipeline/internal/faultproxy"
	"github.com/kinesis-events/pipeline/internal/fleet"
	"github.com/kinesis-events/pipeline/internal/names"
	"github.com/kinesis-events/pipeline/internal/poll"
)

// TestChaosKillWorker: kill -9 of one of two workers mid-run. Nothing is lost and first deliveries
// stay in per-customer order. Duplicates are allowed, but no more than the records the killed
// worker can have processed since its last checkpoint.
//
// The bound: just before the kill the test reads the lease table (checkpoint.Inspect) and notes,
// for every shard the victim holds, its checkpoint C. After the run it reads the raw stream and
// counts, on those shards, the records after C that had arrived by the moment of the kill (+1 s for
// the emulator's timestamp resolution). Only those can have been written by the victim and not
// covered by a checkpoint, so only those can be replayed into the output by the new owner. A later
// checkpoint written between the read and the kill only makes the true number smaller.
func TestChaosKillWorker(t *testing.T) {
	skipUnlessChaos(t, false)
	killWorker(t, fleet.Load{Count: 20000, Customers: 500, Rate: 1000, Seed: 31})
}

// TestChaosKillWorkerAggregated is TestChaosKillWorker with the raw stream holding KPL aggregates
// (the forwarder's -aggregate-keys, 50 customers so that their events wait and get packed): the
// killed worker's checkpoints never pass an aggregate with an event inside not yet handled, so
// nothing is lost; the bound on duplicates counts the events inside the records past them.
func TestChaosKillWorkerAggregated(t *testing.T) {
	skipUnlessChaos(t, true)
	send := killWorker(t, fleet.Load{Count: 20000, Customers: 50, Rate: 1000, Seed: 37, ForwarderFlags: []string{"-aggregate-keys"}})
	if n := send.Stats().Aggregated; n == 0 {
		t.Fatal("the forwarder sent no event inside an aggregate: the scenario did not test aggregates")
	} else {
		t.Logf("kill -9: %d events sent inside aggregates", n)
	}
}

func killWorker(t *testing.T, load fleet.Load) *fleet.Send {
	d := deploy(t, fleet.DefaultTopology())
	w1 := d.chaosWorker(1, nil)
	w2 := d.chaosWorker(2, nil)

	count := load.Count
	send, tail := d.startLoad(load)
	waitForwarded(t, send, tail, count/3)

	before := d.inspect(t.Context())
	victim := map[string]string{} // shard -> checkpoint just before the kill
	for _, s := range before.Shards {
		if s.Owner == w1.id {
			victim[s.ShardID] = s.Checkpoint
		}
	}
	if len(victim) == 0 {
		t.Fatalf("worker 1 (%s) holds no lease just before the kill: %+v", w1.id, before.Shards)
	}
	requireRunning(t, w1, w2)
	killedAt := time.Now()
	w1.Kill()
	requireMidRun(t, send, count, "kill -9")
	t.Logf("killed worker 1 (SIGKILL) holding %v", sortedKeys(victim))

	// Failover: the survivor takes the victim's leases once they expire (LeaseDuration, 10 s).
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	var failover time.Duration
	for failover == 0 {
		snap := d.inspect(ctx)
		taken := 0
		for _, s := range snap.Shards {
			if _, ok := victim[s.ShardID]; ok && s.Owner != "" && s.Owner != w1.id {
				taken++
			}
		}
		if taken == len(victim) {
			failover = time.Since(killedAt)
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the survivor did not take the killed worker's shards: %+v", snap.Shards)
		case <-time.After(500 * time.Millisecond):
		}
	}
	t.Logf("failover: every shard of the killed worker leased again %s after the kill", failover.Round(100*time.Millisecond))

	s := d.settle(send, tail, 6*time.Minute)
	o := s.report(t, "kill -9")
	requireRunning(t, w2)
	requireDelivered(t, o)
	// The replay after the kill re-delivers (bounded below), but flags nothing, quarantines nothing
	// twice (the input has nothing to quarantine) and dead-letters nothing.
	requireNoFlags(t, o)
	requireQuarantinedOnce(t, o, s.res.Manifest)
	requireNoDeadLetters(t, o)

	bound := 0
	for shard, cp := range victim {
		n := 0
		for _, r := range s.raw[shard] {
			if seqAfter(aws.ToString(r.Record.SequenceNumber), cp) && !aws.ToTime(r.Record.ApproximateArrivalTimestamp).After(killedAt.Add(time.Second)) {
				evs, err := deaggregator.DeaggregateRecords([]types.Record{r.Record}) // an aggregate replays every event inside
				if err != nil {
					t.Fatalf("raw record %s does not de-aggregate: %v", aws.ToString(r.Record.SequenceNumber), err)
				}
				n += len(evs)
			}
		}
		t.Logf("kill -9: %s: checkpoint before the kill %q; %d records after it had arrived by the kill", shard, cp, n)
		bound += n
	}
	// Resent writes the workers counted (an SDK retry of a PutRecords whose answer was lost) come on
	// top of the replay.
	resent := min(o.Resent, o.Unsure)
	t.Logf("kill -9: duplicated %d, bound (records of the killed worker's shards past their checkpoints at the kill) %d, plus %d counted resent writes", o.Duplicates, bound, resent)
	if o.Duplicates > bound+resent {
		t.Errorf("%d duplicates, more than the %d records processed since the killed worker's last checkpoints and %d counted resent writes", o.Duplicates, bound, resent)
	}
	return send
}

// TestChaosDynamoDBPause: the DynamoDB emulator is frozen (SIGSTOP) for 10 s (longer than a
// lease) mid-run and then resumed. Leases, checkpoints and dedupe calls all hang; nothing may be
// lost, nothing may be delivered twice (beyond writes the workers counted with an unknown outcome),
// and processing must resume without any restart.
func TestChaosDynamoDBPause(t *testing.T) {
	skipUnlessChaos(t, false)
	d := deploy(t, fleet.DefaultTopology())
	w1 := d.chaosWorker(1, nil)
	w2 := d.chaosWorker(2, nil)

	const count = 20000
	send, tail := d.startLoad(fleet.Load{Count: count, Customers: 500, Rate: 1000, Seed: 41})
	waitForwarded(t, send, tail, count/4)

	const pause = 10 * time.Second
	if err := d.stack.PauseDynamoDB(); err != nil {
		t.Fatal(err)
	}
	pausedAt := time.Now()
	requireMidRun(t, send, count, "DynamoDB pause")
	t.Cleanup(func() { _ = d.stack.ResumeDynamoDB() }) // no-op once resumed; Close resumes too
	atPause := tail.Snapshot().Unique
	// The fault lasts `pause`; meanwhile keep reading the outputs.
	pollUntil(t, tail, pausedAt.Add(pause))
	if err := d.stack.ResumeDynamoDB(); err != nil {
		t.Fatal(err)
	}
	resumedAt := time.Now()
	atResume := tail.Snapshot().Unique
	t.Logf("DynamoDB paused for %s: the tail read %d events before, %d during the pause (it lags the streams)", resumedAt.Sub(pausedAt).Round(100*time.Millisecond), atPause, atResume-atPause)

	waitTail(t, tail, 3*time.Minute, "deliveries to resume after DynamoDB is back", func(s audit.Snapshot) bool {
		return s.Unique > atResume || s.Unique >= count // count bounds the unique valid events
	})
	t.Logf("first new delivery %s after the resume", time.Since(resumedAt).Round(100*time.Millisecond))

	s := d.settle(send, tail, 6*time.Minute)
	t.Logf("every raw shard checkpointed to its end %s after the resume", time.Since(resumedAt).Round(100*time.Millisecond))
	s.report(t, "DynamoDB pause")
	for _, w := range []*chaosWorker{w1, w2} {
		fams, err := scrape(t.Context(), w.metrics)
		if err != nil {
			t.Errorf("%s: metrics: %v", w.Name, err)
			continue
		}
		stops, _ := metricValue(fams, "worker_shard_stops_total", nil)
		derr, _ := metricValue(fams, "pipeline_dedupe_errors_total", nil)
		susp, _ := metricValue(fams, "checkpoint_lease_suspensions_total", nil)
		fenced, _ := metricValue(fams, "checkpoint_leases_lost_total", map[string]string{"reason": "fenced"})
		t.Logf("DynamoDB pause: %s: shard stops (lease lost) %v, leases suspended %v, fenced %v, dedupe store errors (retried) %v",
			w.Name, stops, susp, fenced, derr)
	}
	// The pause outlasts a lease, but every lease is suspended, not lost: nobody takes it (each
	// observer's watch restarts after its failed reads, and the holder renews within its renewal
	// period), so nothing is processed twice.
	requireExactlyOnce(t, s, w1, w2)
}

// TestChaosClockSkew: worker 2's clock is 5 minutes behind (the -test-lease-clock-skew hook offsets
// every timestamp it writes into the lease table). Lease expiry is observed on each worker's own
// clock, never computed from a timestamp another machine wrote, so: the fleet balances 2/2 and
// then holds still for three lease durations (no lease changes hands; each worker believes it
// holds exactly the leases the table gives it, so no double ownership), and every event arrives
// exactly once, in order. Before, worker 1 counted every lease of worker 2 as expired at once and
// took it while worker 2 still believed it held it.
func TestChaosClockSkew(t *testing.T) {
	skipUnlessChaos(t, true)
	d := deploy(t, fleet.DefaultTopology())
	w1 := d.chaosWorker(1, nil)
	w2 := d.chaosWorker(2, nil, "-test-lease-clock-skew=-5m")
	ws := []*chaosWorker{w1, w2}

	const count = 20000
	send, tail := d.startLoad(fleet.Load{Count: count, Customers: 500, Rate: 500, Seed: 81})
	waitForwarded(t, send, tail, count/10)

	owned := func(snap checkpoint.Snapshot) map[string]int {
		n := map[string]int{}
		for _, s := range snap.Shards {
			if s.State == checkpoint.ShardOpen && s.Owner != "" {
				n[s.Owner]++
			}
		}
		return n
	}
	var snap checkpoint.Snapshot
	pollUntilCond(t, tail, 2*time.Minute, "the fleet balanced 2/2", func() bool {
		snap = d.inspect(t.Context())
		n := owned(snap)
		return n[w1.id] == 2 && n[w2.id] == 2
	})
	behind := 0
	for _, s := range snap.Shards {
		if s.Owner == w2.id && time.Until(s.LeaseExpiresAt) < -4*time.Minute {
			behind++
		}
	}
	if behind == 0 {
		t.Fatalf("no lease row of worker 2 carries a timestamp 5 minutes behind: the clock-skew hook is not in effect (%+v)", snap.Shards)
	}
	switches := func(snap checkpoint.Snapshot) (n int64) {
		for _, s := range snap.Shards {
			n += s.OwnerSwitches
		}
		return n
	}
	base := switches(snap)
	const hold = 30 * time.Second // three lease durations
	holdFrom := time.Now()
	samples := 0
	for time.Since(holdFrom) < hold {
		snap := d.inspect(t.Context())
		if moved := switches(snap) - base; moved != 0 {
			t.Fatalf("%d ownership changes after the fleet balanced (churn): owners %v", moved, owned(snap))
		}
		held := map[string]float64{}
		for _, w := range ws {
			fams, err := scrape(t.Context(), w.metrics)
			if err != nil {
				t.Fatalf("%s: metrics: %v", w.Name, err)
			}
			held[w.id], _ = metricValue(fams, "checkpoint_leases_held", nil)
		}
		if n := owned(snap); held[w1.id] != float64(n[w1.id]) || held[w2.id] != float64(n[w2.id]) {
			t.Fatalf("the workers believe they hold %v leases, the table gives them %v", held, n)
		}
		samples++
		pollUntil(t, tail, time.Now().Add(500*time.Millisecond))
	}
	requireMidRun(t, send, count, "the end of the hold")
	t.Logf("clock skew: balanced 2/2 and held still for %s (%d samples, %d of worker 2's rows 5 minutes behind)", hold, samples, behind)

	s := d.settle(send, tail, 6*time.Minute)
	s.report(t, "clock skew")
	for _, w := range ws {
		if fams, err := scrape(t.Context(), w.metrics); err == nil {
			lost, _ := metricValue(fams, "checkpoint_leases_lost_total", map[string]string{"reason": "fenced"})
			taken, _ := metricValue(fams, "checkpoint_leases_taken_total", nil)
			t.Logf("clock skew: %s: leases taken %v, fenced %v", w.Name, taken, lost)
		}
	}
	requireExactlyOnce(t, s, ws...)
}

// TestChaosDirtyInput: 5% duplicates (3% natural, 2% conflicting) and 10% of the events displaced
// behind a later event of their customer by up to ~10 s of input. Every unique event is delivered
// once, in per-customer order, with the original's content; every conflicting duplicate is
// quarantined with reason conflicting_duplicate. The two workers use the two dedupe lookup modes
// (worker 1 strict, worker 2 -dedupe-lookup=behind-cursor), so both are held to all of this on the
// shards they own, and a fleet mixing them shares one dedupe table.
func TestChaosDirtyInput(t *testing.T) {
	skipUnlessChaos(t, false)
	d := deploy(t, fleet.DefaultTopology())
	w1 := d.chaosWorker(1, nil)
	w2 := d.chaosWorker(2, nil, "-dedupe-lookup=behind-cursor")

	const rate = 1000
	send, tail := d.startLoad(fleet.Load{Count: 20000, Customers: 500, Rate: rate, Seed: 51,
		DupRatio: 0.03, ConflictRatio: 0.02, OOORatio: 0.1,
		// Displaced by up to 10 s of input at the nominal rate: well inside the 30 s reorder window.
		Extra: []string{"-ooo-max-distance", fmt.Sprint(10 * rate)}})
	s := d.settle(send, tail, 6*time.Minute)
	m := s.res.Manifest
	s.report(t, "dirty input")
	t.Logf("dirty input: manifest: %d lines, %d unique, %d natural + %d conflicting duplicates (%d ids), %d displaced (max %d lines)",
		m.Lines, m.Unique, m.Duplicates.Natural, m.Duplicates.Conflicting, len(m.ConflictingIDs), m.OutOfOrder, m.MaxDisplacement)
	var natural float64
	for i, w := range []*chaosWorker{w1, w2} {
		fams, err := scrape(t.Context(), w.metrics)
		if err != nil {
			t.Errorf("worker %d metrics: %v", i+1, err)
			continue
		}
		n, _ := metricValue(fams, "pipeline_dedupe_hits_total", map[string]string{"kind": "natural"})
		natural += n
		in, _ := metricValue(fams, "pipeline_records_in_total", nil)
		gets, _ := metricValue(fams, "pipeline_dedupe_round_trips_total", map[string]string{"op": "get"})
		t.Logf("dirty input: worker %d read %v records, %v dedupe reads", i+1, in, gets)
		if in == 0 { // each lookup mode must have had records to judge
			t.Errorf("worker %d read no records: it owned no shard", i+1)
		}
	}
	t.Logf("dirty input: natural duplicates dropped by the workers (metrics, both workers): %v", natural)

	requireExactlyOnce(t, s, w1, w2) // displacement within the window is reordered, not flagged
	if m.Duplicates.Natural == 0 || m.Duplicates.Conflicting == 0 || m.OutOfOrder == 0 {
		t.Fatalf("the generator produced no dirt: %+v, %d displaced", m.Duplicates, m.OutOfOrder)
	}
	if got := s.audit.Quarantined[event.ReasonConflictingDupe]; got < m.Duplicates.Conflicting {
		t.Errorf("audit tail: quarantined[%s] = %d, want at least %d", event.ReasonConflictingDupe, got, m.Duplicates.Conflicting)
	}
}

// TestChaosReshard: split one shard, merge two others, then merge the split's two children, all
// while events flow, with 2 workers whose every PutRecords is slowed by a fault proxy (a slow
// processor builds a backlog, so parents close with records still unprocessed). The input is
// reordered (9% of events displaced up to 1,600 lines, 2 s at this rate) with natural and
// conflicting duplicates, so parents end while they hold events for reordering: the children take
// the wait over (the parents' tails). Nothing lost, no order violation, no duplicate, no false gap
// or late flag.
func TestChaosReshard(t *testing.T) {
	skipUnlessChaos(t, true)
	d := deploy(t, fleet.DefaultTopology())
	proxy, env := d.faultProxy()
	const delay = 200 * time.Millisecond
	proxy.Set("slow", faultproxy.Rule{Operation: "PutRecords", Delay: delay})
	ws := []*chaosWorker{d.chaosWorker(1, env), d.chaosWorker(2, env)}

	const count = 20000
	send, tail := d.startLoad(fleet.Load{Count: count, Customers: 500, Rate: 800, Seed: 61, OOORatio: 0.09, DupRatio: 0.05, ConflictRatio: 0.02, Extra: []string{"-ooo-max-distance", "1600"}})
	kc := d.stack.Kinesis()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	lag := func() int64 { return send.Stats().Forwarded - int64(tail.Snapshot().Unique) }

	waitForwarded(t, send, tail, count/4)
	kids, err := splitShard(ctx, kc, names.RawStream, "shardId-000000000000")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("split shardId-000000000000 into %v (backlog: %d events forwarded, not yet delivered)", kids, lag())
	if len(kids) != 2 {
		t.Fatalf("split made %d children", len(kids))
	}
	waitForwarded(t, send, tail, count/2)
	merged, err := mergeShards(ctx, kc, names.RawStream, "shardId-000000000002", "shardId-000000000003")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("merged shardId-000000000002 + shardId-000000000003 into %s (backlog %d)", merged, lag())
	waitForwarded(t, send, tail, count*7/10)
	grandchild, err := mergeShards(ctx, kc, names.RawStream, kids[0], kids[1])
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("merged the split's children %v into %s (backlog %d)", kids, grandchild, lag())
	requireMidRun(t, send, count, "the last merge")

	s := d.settle(send, tail, 6*time.Minute)
	o := s.report(t, "split+merge")
	for _, id := range sortedKeys(s.raw) {
		t.Logf("split+merge: raw %s: %d records", id, len(s.raw[id]))
	}
	pc := proxy.Counts("PutRecords", "")
	t.Logf("split+merge: %d PutRecords calls delayed by %s at the proxy", pc.Delayed, delay)
	for _, id := range []string{kids[0], kids[1], merged, grandchild} {
		if len(s.raw[id]) == 0 {
			t.Errorf("new shard %s received no records: the reshard did not happen mid-run", id)
		}
	}
	if o.Late != 0 || o.Gaps != 0 {
		t.Errorf("split+merge: %d late, %d gaps: the reorder window did not survive the reshard", o.Late, o.Gaps)
	}
	// Every conflicting duplicate quarantined once, across the parents' tails read again by the
	// children too.
	requireExactlyOnce(t, s, ws...)
}

// TestChaosDestinationOutage: one analytics stream (analytics-purchase) answers every PutRecords
// with 503 ServiceUnavailable for 20 s, through a fault proxy in front of kinesalite (the source and
// the other streams are untouched). The stream's breaker opens, then closes after the outage;
// nothing is lost or duplicated, nothing is dead-lettered (the outage is shorter than the 60 s
// hold), and the workers' memory stays bounded: shards pause instead of buffering.
func TestChaosDestinationOutage(t *testing.T) {
	skipUnlessChaos(t, true)
	d := deploy(t, fleet.DefaultTopology())
	proxy, env := d.faultProxy()
	ws := []*chaosWorker{d.chaosWorker(1, env), d.chaosWorker(2, env)}
	rss := sampleRSS(t.Context(), 250*time.Millisecond, ws[0].PID(), ws[1].PID())
	defer rss.Stop()

	const count, target = 30000, names.AnalyticsPrefix + "purchase"
	send, tail := d.startLoad(fleet.Load{Count: count, Customers: 500, Rate: 1000, Seed: 71})
	startedAt := time.Now()
	waitForwarded(t, send, tail, count/5)

	const outage = 20 * time.Second
	from := time.Now()
	until := from.Add(outage)
	proxy.Set("outage", faultproxy.Rule{Operation: "PutRecords", Stream: target, Fault: faultproxy.FailCall, Until: until})
	requireMidRun(t, send, count, "outage of "+target)
	atStart := tail.Snapshot()

	// During the outage: scrape both workers for the breaker state and the held events.
	var openedAt time.Time
	maxHeld := 0.0
	state := func() (open, closed int) {
		for _, w := range ws {
			fams, err := scrape(t.Context(), w.metrics)
			if err != nil {
				continue
			}
			v, _ := metricValue(fams, "pipeline_breaker_state", map[string]string{"stream": target})
			switch v {
			case 2:
				open++
			case 0:
				closed++
			}
			h, _ := metricValue(fams, "pipeline_reorder_held", nil)
			maxHeld = max(maxHeld, h)
		}
		return open, closed
	}
	for time.Now().Before(until) {
		if open, _ := state(); open > 0 && openedAt.IsZero() {
			openedAt = time.Now()
		}
		next := time.Now().Add(500 * time.Millisecond)
		if next.After(until) {
			next = until
		}
		pollUntil(t, tail, next)
	}
	atEnd := tail.Snapshot()
	if openedAt.IsZero() {
		t.Errorf("the %s breaker never opened during the %s outage", target, outage)
	} else {
		t.Logf("outage: breaker of %s open %s after the outage began", target, openedAt.Sub(from).Round(100*time.Millisecond))
	}
	t.Logf("outage: the tail read %d events during the outage (%d of %s; the tail lags the streams)", atEnd.Unique-atStart.Unique,
		atEnd.PerStream[target]-atStart.PerStream[target], target)

	var closedAt time.Time
	pollUntilCond(t, tail, 3*time.Minute, "both breakers closed after the outage", func() bool {
		_, closed := state()
		return closed == len(ws)
	})
	closedAt = time.Now()
	t.Logf("outage: both breakers closed %s after the outage ended", closedAt.Sub(until).Round(100*time.Millisecond))

	s := d.settle(send, tail, 6*time.Minute)
	drainedAt := time.Now()
	t.Logf("outage: backlog drained and checkpointed %s after the outage ended", drainedAt.Sub(until).Round(100*time.Millisecond))
	rss.Stop()
	s.report(t, "destination outage")
	pc := proxy.Counts("PutRecords", target)
	t.Logf("outage: proxy answered %d PutRecords calls (%d entries) to %s with 503", pc.Faulted, pc.Entries, target)
	t.Logf("outage: most events held for reordering at once (both workers): %v", maxHeld)

	requireExactlyOnce(t, s, ws...) // the outage is shorter than the 60 s hold: no dead letter
	if pc.Faulted == 0 {
		t.Errorf("no PutRecords call to %s was faulted: the outage did not happen", target)
	}
	// The outage really stopped writes: nothing arrived in the stream during it, except calls the
	// proxy had forwarded just before the rule was set (1 s of grace).
	during, total := d.arrivals(target, from.Add(time.Second), until)
	t.Logf("outage: %d of the %d records of %s arrived during the outage", during, total, target)
	if during > 0 {
		t.Errorf("%d records arrived in %s during its outage", during, target)
	}
	// Memory: the peak RSS from the outage until the backlog drained may exceed the peak of the
	// busy period before it by a fixed allowance, whatever the backlog (10-20k events at 1000/s).
	const allowanceKiB = 64 << 10
	for _, w := range ws {
		pre, npre := rss.peak(w.PID(), startedAt, from)
		out, _ := rss.peak(w.PID(), from, until)
		rec, _ := rss.peak(w.PID(), until, drainedAt)
		during, ndur := rss.peak(w.PID(), from, drainedAt)
		t.Logf("outage: %s RSS peak before the outage %d MiB (%d samples), during the outage %d MiB, during the recovery %d MiB (%d samples in both)",
			w.Name, pre>>10, npre, out>>10, rec>>10, ndur)
		if npre == 0 || ndur == 0 {
			t.Errorf("%s: no RSS samples (%d before, %d during)", w.Name, npre, ndur)
			continue
		}
		if during > pre+allowanceKiB {
			t.Errorf("%s: RSS grew from %d MiB to %d MiB during the outage: more than %d MiB", w.Name, pre>>10, during>>10, allowanceKiB>>10)
		}
	}
}

// waitForwarded waits until the forwarder has put n events into the raw stream: faults are timed
// by the input's progress, not by what the (lagging) tail has read, so they land mid-run.
func waitForwarded(t *testing.T, send *fleet.Send, tail *audit.Tail, n int) {
	t.Helper()
	pollUntilCond(t, tail, 3*time.Minute, fmt.Sprintf("%d events forwarded", n), func() bool { return send.Stats().Forwarded >= int64(n) })
}

// requireMidRun fails the test when the fault came after the whole input was sent.
func requireMidRun(t *testing.T, send *fleet.Send, count int, fault string) {
	t.Helper()
	f := send.Stats().Forwarded
	t.Logf("%s with %d of %d events forwarded", fault, f, count)
	if f >= int64(count) {
		t.Fatalf("%s came after the whole input was sent: not mid-run", fault)
	}
}

// pollUntil keeps reading the output streams until the instant at (a fault's scheduled end).
func pollUntil(t *testing.T, tail *audit.Tail, at time.Time) {
	t.Helper()
	for {
		d := time.Until(at)
		if d <= 0 {
			return
		}
		ctx, cancel := context.WithTimeout(t.Context(), d)
		err := tail.Poll(ctx)
		cancel()
		if err != nil && ctx.Err() == nil {
			t.Fatalf("reading output streams: %v", err)
		}
		select {
		case <-t.Context().Done():
			return
		case <-time.After(min(chaosPollInterval, max(time.Until(at), 0))):
		}
	}
}

// pollUntilCond keeps reading the output streams until cond holds, failing after timeout.
func pollUntilCond(t *testing.T, tail *audit.Tail, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	// The interval is spent reading the output streams (pollUntil), so the poll itself needs none.
	poll.True(t, timeout, time.Nanosecond, what, func() bool {
		if cond() {
			return true
		}
		pollUntil(t, tail, time.Now().Add(chaosPollInterval))
		return false
	})
}

// arrivals counts the records of stream whose ApproximateArrivalTimestamp is in [from, to), and
// all its records.
func (d *deployment) arrivals(stream string, from, to time.Time) (in, total int) {
	d.t.Helper()
	ctx, cancel := context.WithTimeout(d.t.Context(), time.Minute)
	defer cancel()
	recs, err := d.stack.ReadAll(ctx, stream)
	if err != nil {
		d.t.Fatalf("read %s: %v", stream, err)
	}
	for _, r := range recs {
		at := aws.ToTime(r.Record.ApproximateArrivalTimestamp)
		if !at.Before(from) && at.Before(to) {
			in++
		}
	}
	return in, len(recs)
}
