package e2e

import (
	"testing"
	"time"

	"github.com/kinesis-events/pipeline/internal/audit"
	"github.com/kinesis-events/pipeline/internal/faultproxy"
	"github.com/kinesis-events/pipeline/internal/fleet"
	"github.com/kinesis-events/pipeline/internal/names"
)

// TestUnknownWriteOutcome: two PutRecords calls of the worker to one analytics stream land, but
// their answers are cut off (a fault proxy forwards them, then sends half a 200). The worker cannot
// know they landed and sends them again, so their records are in the stream twice. It must count
// every one of them: the output is then exactly the expected events plus byte-identical copies no
// more numerous than the count, and nothing is lost or processed twice.
func TestUnknownWriteOutcome(t *testing.T) {
	if testing.Short() {
		t.Skip("binary-level end-to-end run; not in -short")
	}
	d := deploy(t, fleet.Topology{RawShards: 1, AnalyticsShards: 1, Types: names.StandardTypes})
	target := d.env.Topology.Routes()["page_view"]
	proxy, env := d.faultProxy()
	proxy.Set("lose", faultproxy.Rule{Operation: "PutRecords", Stream: target, Fault: faultproxy.LoseAnswer, Times: 2})
	d.chaosWorker(1, env)

	const count = 400
	send, tail := d.startLoad(fleet.Load{Count: count, Customers: 40, Rate: 400, Seed: 17})
	res, err := send.Wait(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	m := res.Manifest
	waitFor(t, tail, 2*time.Minute, "every unique event delivered", func(s audit.Snapshot) bool { return s.Unique >= m.Unique })
	rep := tail.Check(fleet.Expected(m))
	unknown, err := d.env.UnknownOutcomes()
	if err != nil {
		t.Fatal(err)
	}
	c := proxy.Counts("PutRecords", target)
	t.Logf("%s; proxy lost the answers of %d calls (%d records); the worker counted %d records with an unknown outcome",
		rep, c.Faulted, c.Entries, unknown)
	if c.Faulted != 2 {
		t.Fatalf("the proxy lost %d answers, want 2 (did the worker write to %s?)", c.Faulted, target)
	}
	if unknown < int(c.Entries) {
		t.Errorf("the worker counted %d records with an unknown outcome, fewer than the %d whose answer was lost", unknown, c.Entries)
	}
	if rep.Resent == 0 || rep.Duplicates != rep.Resent {
		t.Errorf("duplicates=%d resent=%d: want the lost calls' records again, byte for byte, and nothing else", rep.Duplicates, rep.Resent)
	}
	if rep.Late > 0 || rep.Gaps > 0 || len(rep.Quarantined) > 0 || len(rep.DeadLetters) > 0 {
		t.Errorf("late %d, gaps %d, quarantined %v, dead letters %v: a resent write flags, quarantines and dead-letters nothing",
			rep.Late, rep.Gaps, rep.Quarantined, rep.DeadLetters)
	}
	if rep.OK() || !exactlyOnce(t, d, rep) {
		t.Errorf("OK()=%v exactlyOnce=%v: want the strict check to see the copies and the counted check to accept them", rep.OK(), exactlyOnce(t, d, rep))
	}
}
