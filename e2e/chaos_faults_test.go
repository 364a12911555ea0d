package e2e

// Chaos scenarios of issue 12 that inject faults through the fault proxy: GetRecords throttled on
// some shards, checkpoint writes failing transiently, and checkpoint writes of one shard that
// never succeed on its owner. Each logs "sent / delivered / lost / duplicated / order violations"
// (settled.report) and asserts what the README promises.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kinesis-events/pipeline/checkpoint"
	"github.com/kinesis-events/pipeline/internal/faultproxy"
	"github.com/kinesis-events/pipeline/internal/fleet"
	"github.com/kinesis-events/pipeline/internal/kclctl"
)

// TestChaosGetRecordsThrottled: the fault proxy answers every GetRecords call on two of the four
// raw shards with 400 ProvisionedThroughputExceededException for 30 s, mid-run (the other shards
// and every write are untouched). The SDK and then the KCL retry; past the KCL's retries its shard
// consumer ends and the lease goes back to the fleet. Once the throttle ends both shards resume
// (each is checkpointed to its end) and the run is exactly once: nothing lost or duplicated, in
// order, no false late or gap flag, quarantine once.
func TestChaosGetRecordsThrottled(t *testing.T) {
	skipUnlessChaos(t, true)
	d := deploy(t, fleet.DefaultTopology())
	proxy, env := d.faultProxy()
	ws := []*chaosWorker{d.chaosWorker(1, env), d.chaosWorker(2, env)}

	const count = 20000
	send, tail := d.startLoad(fleet.Load{Count: count, Customers: 500, Rate: 1000, Seed: 91,
		DupRatio: 0.02, ConflictRatio: 0.01, OOORatio: 0.05})
	waitForwarded(t, send, tail, count/4)

	const throttle = 30 * time.Second
	shards := []string{"shardId-000000000000", "shardId-000000000001"}
	from := time.Now()
	until := from.Add(throttle)
	for _, sh := range shards {
		proxy.Set("throttle-"+sh, faultproxy.Rule{Operation: "GetRecords", Stream: fleet.RawStream, Shard: sh,
			Fault: faultproxy.FailCall, Status: 400, ErrorType: "ProvisionedThroughputExceededException", Until: until})
	}
	requireMidRun(t, send, count, "GetRecords throttle")
	pollUntil(t, tail, until)
	atEnd := d.inspect(t.Context())
	for _, sh := range shards {
		t.Logf("GetRecords throttled: %s: %d GetRecords calls throttled; at the end of the throttle: owner %q, checkpoint %q",
			sh, proxy.Applied("throttle-"+sh), checkpointOf(atEnd, sh).Owner, checkpointOf(atEnd, sh).Checkpoint)
		if proxy.Applied("throttle-"+sh) == 0 {
			t.Errorf("no GetRecords call on %s was throttled: the fault did not happen (did the workers get their iterators through the proxy?)", sh)
		}
	}

	// The shards resume: each throttled shard's checkpoint moves past where it stood when the
	// throttle ended (every shard has a backlog by then: the load goes on at 1,000 events/s).
	resumed := map[string]time.Duration{}
	pollUntilCond(t, tail, 3*time.Minute, "both throttled shards checkpointing again", func() bool {
		snap := d.inspect(t.Context())
		for _, sh := range shards {
			if _, ok := resumed[sh]; !ok && checkpointOf(snap, sh).Checkpoint != checkpointOf(atEnd, sh).Checkpoint {
				resumed[sh] = time.Since(until)
			}
		}
		return len(resumed) == len(shards)
	})
	for _, sh := range shards {
		t.Logf("GetRecords throttled: %s checkpointed again %s after the throttle ended", sh, resumed[sh].Round(100*time.Millisecond))
	}

	s := d.settle(send, tail, 6*time.Minute)
	s.report(t, "GetRecords throttled")
	for _, w := range ws {
		fams, err := scrape(t.Context(), w.metrics)
		if err != nil {
			t.Errorf("%s: metrics: %v", w.Name, err)
			continue
		}
		taken, _ := metricValue(fams, "checkpoint_leases_taken_total", nil)
		released, _ := metricValue(fams, "checkpoint_leases_lost_total", map[string]string{"reason": "released"})
		stops, _ := metricValue(fams, "worker_shard_stops_total", nil)
		t.Logf("GetRecords throttled: %s: leases taken %v, released %v, shard stops %v", w.Name, taken, released, stops)
	}
	requireExactlyOnce(t, s, ws...)
}

// TestChaosCheckpointTransient: the DynamoDB fault proxy in front of both workers fails the
// checkpoint writes of the lease table (UpdateItem calls that set Checkpoint, on every shard) a
// few times each way: 500 InternalServerError, 400 ThrottlingException, a call held without an
// answer until the worker's call timeout, and one applied whose answer is cut off. Each checkpoint
// is retried while the lease is held: no shard stops (worker_shard_stops_total and
// worker_shard_stopped stay 0), no lease is lost, /readyz stays green all along, and the run is
// exactly once.
func TestChaosCheckpointTransient(t *testing.T) {
	skipUnlessChaos(t, false)
	d := deploy(t, fleet.DefaultTopology())
	proxy, env := d.dynamoProxy()
	ws := []*chaosWorker{d.chaosWorker(1, env), d.chaosWorker(2, env)}

	const count = 12000
	send, tail := d.startLoad(fleet.Load{Count: count, Customers: 500, Rate: 1000, Seed: 93,
		DupRatio: 0.02, ConflictRatio: 0.01, OOORatio: 0.05})
	waitForwarded(t, send, tail, count/4)
	ready := watchReady(t, 250*time.Millisecond, ws...)

	// Rules are matched in the order they were set: each takes the next checkpoint writes until it
	// has applied Times times, then the next one does. The SDK retries a 5xx, a throttle and a lost
	// answer itself (3 attempts), so a fault applied three times in a row reaches the store.
	checkpointWrite := []string{`"` + "Checkpoint" + `"`}
	faults := []struct {
		name string
		rule faultproxy.Rule
	}{
		{"5xx", faultproxy.Rule{Fault: faultproxy.FailCall, Status: 500, ErrorType: "InternalServerError", Times: 9}},
		{"throttle", faultproxy.Rule{Fault: faultproxy.FailCall, Status: 400, ErrorType: "ThrottlingException", Times: 9}},
		{"timeout", faultproxy.Rule{Fault: faultproxy.Hang, Times: 3}},
		{"lost answer", faultproxy.Rule{Fault: faultproxy.LoseAnswer, Times: 3}},
	}
	from := time.Now()
	for _, f := range faults {
		r := f.rule
		r.Operation, r.Table, r.Match = "UpdateItem", fleet.LeaseTable, checkpointWrite
		proxy.Set(f.name, r)
	}
	requireMidRun(t, send, count, "checkpoint failures")
	pollUntilCond(t, tail, 3*time.Minute, "every checkpoint fault applied", func() bool {
		for _, f := range faults {
			if proxy.Applied(f.name) < f.rule.Times {
				return false
			}
		}
		return true
	})
	t.Logf("checkpoint faults: all applied %s after the first (%d UpdateItem calls on the lease table faulted at the proxy)",
		time.Since(from).Round(100*time.Millisecond), proxy.Counts("UpdateItem", fleet.LeaseTable).Faulted)

	s := d.settle(send, tail, 6*time.Minute)
	ready.Stop()
	s.report(t, "checkpoint transient")
	var retried float64
	for _, w := range ws {
		fams, err := scrape(t.Context(), w.metrics)
		if err != nil {
			t.Errorf("%s: metrics: %v", w.Name, err)
			continue
		}
		r, _ := metricValue(fams, "checkpoint_writes_total", map[string]string{"result": "retried"})
		retried += r
		stops, _ := metricValue(fams, "worker_shard_stops_total", nil)
		stopped, _ := metricValue(fams, "worker_shard_stopped", nil)
		fenced, _ := metricValue(fams, "checkpoint_leases_lost_total", map[string]string{"reason": "fenced"})
		adopted, _ := metricValue(fams, "checkpoint_writes_adopted_total", nil)
		t.Logf("checkpoint transient: %s: checkpoint writes retried %v, shard stops %v, stopped %v, fenced %v, landed writes adopted %v",
			w.Name, r, stops, stopped, fenced, adopted)
		if stops != 0 || stopped != 0 || fenced != 0 {
			t.Errorf("%s: %v shard stops, %v shards stopped, %v leases fenced: a transient checkpoint failure must only be retried",
				w.Name, stops, stopped, fenced)
		}
	}
	if retried == 0 {
		t.Errorf("no checkpoint write was retried: the faults never reached the lease store")
	}
	samples, fails := ready.Result()
	t.Logf("checkpoint transient: /readyz sampled %d times, %d not ready", samples, len(fails))
	if len(fails) > 0 {
		t.Errorf("/readyz not ready during transient checkpoint failures: %v", first(fails, 5))
	}
	requireExactlyOnce(t, s, ws...)
}

// TestChaosCheckpointStuck: on worker 1 (through its own DynamoDB fault proxy) every checkpoint
// write of one shard it holds fails with 500 InternalServerError, and keeps failing: the write
// never recovers there (its renewals still land). The shard must not stay stuck on worker 1: it
// stops there, its lease is released (worker 1's /readyz and kclctl show it stopped) and worker 2,
// whose DynamoDB calls are healthy, takes it and goes on from the checkpoint. Nothing is lost or
// delivered twice: what worker 1 wrote past the checkpoint is a duplicate by the shard's keyed
// state when worker 2 reads it again.
func TestChaosCheckpointStuck(t *testing.T) {
	skipUnlessChaos(t, true)
	checkpointNeverLands(t, faultproxy.Rule{Fault: faultproxy.FailCall, Status: 500, ErrorType: "InternalServerError"}, 96)
}

// TestChaosCheckpointRefused: as TestChaosCheckpointStuck, but worker 1's checkpoint writes of the
// shard are refused with 400 AccessDeniedException, an error no retry fixes (a permission missing
// on one host): the processor stops the shard at once and abandons its lease, and worker 1's
// /readyz and kclctl show it stopped while it waits for a new owner.
func TestChaosCheckpointRefused(t *testing.T) {
	skipUnlessChaos(t, true)
	checkpointNeverLands(t, faultproxy.Rule{Fault: faultproxy.FailCall, Status: 400, ErrorType: "AccessDeniedException"}, 98)
}

// checkpointNeverLands runs the two scenarios above: fault answers every checkpoint write of one
// shard of worker 1 from mid-run on, for as long as it takes to see the shard stop and then
// peerWatch more (for worker 2 to take it); then the fault ends and the run must be exactly once.
func checkpointNeverLands(t *testing.T, fault faultproxy.Rule, seed int64) {
	const peerWatch = 45 * time.Second // four of worker 1's benches (a lease duration each) after a stop
	d := deploy(t, fleet.DefaultTopology())
	proxy1, env1 := d.dynamoProxy()
	w1 := d.chaosWorker(1, env1)
	w2 := d.chaosWorker(2, nil)
	ws := []*chaosWorker{w1, w2}

	const count = 20000
	send, tail := d.startLoad(fleet.Load{Count: count, Customers: 500, Rate: 250, Seed: seed,
		DupRatio: 0.02, ConflictRatio: 0.01, OOORatio: 0.05})
	var snap checkpoint.Snapshot
	pollUntilCond(t, tail, 2*time.Minute, "the fleet balanced 2/2", func() bool {
		var err error
		if snap, err = d.tryInspect(t.Context()); err != nil {
			return false // the workers have not created the lease table yet
		}
		n := map[string]int{}
		for _, s := range snap.Shards {
			if s.State == checkpoint.ShardOpen && s.Owner != "" {
				n[s.Owner]++
			}
		}
		return n[w1.id] == 2 && n[w2.id] == 2
	})
	waitForwarded(t, send, tail, count/8)
	victim := ""
	for _, s := range d.inspect(t.Context()).Shards {
		if s.Owner == w1.id && (victim == "" || s.ShardID < victim) {
			victim = s.ShardID
		}
	}
	if victim == "" {
		t.Fatalf("worker 1 holds no shard")
	}
	ready := watchReady(t, 200*time.Millisecond, w1)
	failedAt := time.Now()
	fault.Operation, fault.Table, fault.Match = "UpdateItem", fleet.LeaseTable, []string{`"Checkpoint"`, `"` + victim + `"`}
	proxy1.Set("never", fault)
	requireMidRun(t, send, count, "checkpoint writes of "+victim+" failing on worker 1")
	t.Logf("checkpoint never lands: every checkpoint write of %s by worker 1 answered %d %s from now on", victim, fault.Status, fault.ErrorType)

	// The stop: the row names worker 1 as the one that stopped the shard (kept after a peer took
	// it), and kclctl shows it: it warns "stopped" (exit 3) while the shard waits for a new owner,
	// and lists last_stop_by once a peer took it (that can be at once).
	var kclctlSaw string
	var stoppedAt, takenAt time.Duration
	watch := func() bool {
		sh := checkpointOf(d.inspect(t.Context()), victim)
		if sh.LastStopBy == w1.id && sh.Owner != w1.id {
			if stoppedAt == 0 {
				stoppedAt = time.Since(failedAt)
			}
			if kclctlSaw == "" {
				if out, ok := kclctlStopped(t, d, victim, w1.id); ok {
					kclctlSaw = out
				}
			}
		}
		if sh.Owner == w2.id && takenAt == 0 {
			takenAt = time.Since(failedAt)
		}
		return stoppedAt > 0 && kclctlSaw != ""
	}
	pollUntilCond(t, tail, 2*time.Minute, victim+" stopped on worker 1 and shown by kclctl", watch)
	t.Logf("checkpoint never lands: %s stopped on worker 1 %s after its checkpoint writes began to fail", victim, stoppedAt.Round(100*time.Millisecond))
	peerUntil := time.Now().Add(peerWatch)
	pollUntilCond(t, tail, peerWatch+time.Minute, "the end of the watch for a peer", func() bool {
		watch()
		return takenAt > 0 || time.Now().After(peerUntil)
	})
	ready.Stop()
	refused := proxy1.Applied("never")
	proxy1.Remove("never")
	if takenAt > 0 {
		t.Logf("checkpoint never lands: worker 2 took %s %s after the fault began", victim, takenAt.Round(100*time.Millisecond))
	} else {
		t.Logf("checkpoint never lands: worker 2 did not take %s within %s of its stop; the fault ends now", victim, peerWatch)
	}

	s := d.settle(send, tail, 6*time.Minute)
	s.report(t, "checkpoint never lands")
	fams, err := scrape(t.Context(), w1.metrics)
	if err != nil {
		t.Fatalf("worker 1 metrics: %v", err)
	}
	stops, _ := metricValue(fams, "worker_shard_stops_total", map[string]string{"during": "checkpoint"})
	abandoned, _ := metricValue(fams, "checkpoint_leases_abandoned_total", nil)
	t.Logf("checkpoint never lands: worker 1: shard stops at a checkpoint %v, leases abandoned %v; %d checkpoint writes of %s refused at its proxy",
		stops, abandoned, refused, victim)
	if stops == 0 || abandoned == 0 {
		t.Errorf("worker 1 did not stop %s and release it (stops at a checkpoint %v, abandoned %v)", victim, stops, abandoned)
	}
	if seen := ready.StoppedSeen(w1.Name, victim); !seen {
		t.Errorf("worker 1's /readyz never listed %s as stopped", victim)
	}
	t.Logf("checkpoint never lands: kclctl after worker 1 stopped %s:\n%s", victim, kclctlSaw)
	requireExactlyOnce(t, s, ws...)
	t.Run("a peer takes the stopped shard", func(t *testing.T) {
		if takenAt == 0 {
			t.Errorf("worker 2 did not take %s within %s of its stop on worker 1", victim, peerWatch)
		}
	})
}

// dynamoProxy starts a fault-injecting proxy in front of the stack's DynamoDB emulator, closed at
// the end of the test, and returns it with the environment that points a worker at it.
func (d *deployment) dynamoProxy() (*faultproxy.Proxy, []string) {
	d.t.Helper()
	p, err := faultproxy.Start(d.t.Context(), faultproxy.Config{Upstream: d.stack.DynamoDBEndpoint})
	if err != nil {
		d.t.Fatal(err)
	}
	d.t.Cleanup(func() { _ = p.Close() })
	return p, []string{"AWS_ENDPOINT_URL_DYNAMODB=" + p.URL()}
}

// checkpointOf returns shard's row in snap (zero when absent).
func checkpointOf(snap checkpoint.Snapshot, shard string) checkpoint.ShardInfo {
	for _, s := range snap.Shards {
		if s.ShardID == shard {
			return s
		}
	}
	return checkpoint.ShardInfo{}
}

// kclctlStopped runs `kclctl checkpoints --json` and reports whether it shows that worker
// stopped shard: the "stopped" warning (exit 3) while the shard waits for a new owner, or the
// shard's last_stop_by once a peer took it. It returns the human table for the log.
func kclctlStopped(t *testing.T, d *deployment, shard, worker string) (string, bool) {
	t.Helper()
	f := newOpsFleet(t, d)
	code, out, _ := f.kclctl("checkpoints", "--json")
	var rep kclctl.Report
	if (code != kclctl.ExitOK && code != kclctl.ExitWarnings) || json.Unmarshal([]byte(out), &rep) != nil {
		return "", false
	}
	shown := false
	for _, w := range rep.Warnings {
		shown = shown || code == kclctl.ExitWarnings && w.Kind == string(checkpoint.WarnStopped) && w.Shard == shard
	}
	for _, sh := range rep.Shards {
		shown = shown || sh.ShardID == shard && sh.LastStopBy == worker && sh.LastStopReason != ""
	}
	if !shown {
		return "", false
	}
	_, table, _ := f.kclctl("checkpoints")
	return out + "\n" + table, true
}

// readyWatch polls the workers' /readyz until stopped, keeping every answer that was not ready and
// the shards each worker listed as stopped.
type readyWatch struct {
	stop context.CancelFunc
	done chan struct{}

	mu      sync.Mutex
	samples int
	fails   []string
	stopped map[string]map[string]bool // worker name -> shard -> seen stopped
}

func watchReady(t *testing.T, every time.Duration, ws ...*chaosWorker) *readyWatch {
	ctx, cancel := context.WithCancel(t.Context())
	r := &readyWatch{stop: cancel, done: make(chan struct{}), stopped: map[string]map[string]bool{}}
	start := time.Now()
	go func() {
		defer close(r.done)
		for {
			for _, w := range ws {
				status, body, err := readyz(ctx, w)
				if ctx.Err() != nil {
					return
				}
				r.mu.Lock()
				r.samples++
				switch {
				case err != nil:
					r.fails = append(r.fails, fmt.Sprintf("%s at %s: %v", w.Name, time.Since(start).Round(time.Millisecond), err))
				case status != http.StatusOK:
					r.fails = append(r.fails, fmt.Sprintf("%s at %s: %d %s", w.Name, time.Since(start).Round(time.Millisecond), status, strings.Join(body.Problems, "; ")))
				}
				for sh := range body.Stopped {
					if r.stopped[w.Name] == nil {
						r.stopped[w.Name] = map[string]bool{}
					}
					r.stopped[w.Name][sh] = true
				}
				r.mu.Unlock()
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(every):
			}
		}
	}()
	t.Cleanup(r.Stop)
	return r
}

// Stop ends the polling and waits for it. Idempotent.
func (r *readyWatch) Stop() {
	r.stop()
	<-r.done
}

// Result returns how many answers were read and the ones that were not ready.
func (r *readyWatch) Result() (int, []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.samples, slices.Clone(r.fails)
}

// StoppedSeen reports whether worker's /readyz ever listed shard as stopped.
func (r *readyWatch) StoppedSeen(worker, shard string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stopped[worker][shard]
}

// readyBody is the part of /readyz the tests read.
type readyBody struct {
	Ready    bool                       `json:"ready"`
	Problems []string                   `json:"problems"`
	Stopped  map[string]json.RawMessage `json:"stopped"`
}

// readyz reads a worker's /readyz.
func readyz(ctx context.Context, w *chaosWorker) (int, readyBody, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	url := strings.TrimSuffix(w.metrics, "/metrics") + "/readyz"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, readyBody{}, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, readyBody{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, readyBody{}, err
	}
	var body readyBody
	if err := json.Unmarshal(b, &body); err != nil {
		return resp.StatusCode, body, fmt.Errorf("/readyz answered %d with %q: %w", resp.StatusCode, b, err)
	}
	return resp.StatusCode, body, nil
}
