package e2e

import (
	"os"
	"testing"
	"time"

	"github.com/kinesis-events/pipeline/event"
	"github.com/kinesis-events/pipeline/internal/audit"
	"github.com/kinesis-events/pipeline/internal/fleet"
	"github.com/kinesis-events/pipeline/internal/names"
)

// TestQuarantineOnceAfterHandOff: the next owner of a shard reads again every record after the
// checkpoint, which an event held for reordering pins. A record quarantined by the previous owner
// among them must not be quarantined a second time, and the held event must still be delivered, in
// order, once its predecessor comes.
func TestQuarantineOnceAfterHandOff(t *testing.T) {
	if testing.Short() {
		t.Skip("binary-level end-to-end run; not in -short")
	}
	d := deploy(t, fleet.Topology{RawShards: 1, AnalyticsShards: 1, Types: names.StandardTypes})
	b, err := os.ReadFile(d.env.KeysFile)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := event.ParseKeys(b)
	if err != nil || len(keys) == 0 {
		t.Fatalf("keys of the deployment: %v (%d)", err, len(keys))
	}
	p := newProducer(t, keys...)
	sign := func(id, cust string, seq uint64, props string) string {
		return line("q-"+id, "page_view", p.detail("page_view", id, cust, seq, props, keys[0].ID))
	}
	tail := d.env.NewTail(d.stack.Kinesis())

	w1 := d.chaosWorker(1, nil)
	d.forward(t, "first", []string{
		sign("a2", "cust-a", 2, `{"n":2}`), // held for a1: pins the checkpoint before it
		sign("b1", "cust-b", 1, `{"n":1}`),
		sign("b1", "cust-b", 1, `{"n":"other"}`), // the same event_id, other content: quarantined
		sign("c1", "cust-c", 1, `{"n":1}`),
	})
	waitFor(t, tail, 2*time.Minute, "b1 and c1 delivered, the conflicting b1 quarantined", func(s audit.Snapshot) bool {
		return s.Unique == 2 && s.Quarantined[event.ReasonConflictingDupe] == 1
	})
	if err := w1.Stop(20 * time.Second); err != nil {
		t.Fatalf("stop worker 1: %v", err)
	}

	w2 := d.chaosWorker(2, nil)
	waitFor(t, tail, 2*time.Minute, "worker 2 to read the four records again", func(audit.Snapshot) bool {
		fams, err := scrape(t.Context(), w2.metrics)
		if err != nil {
			return false // not serving yet
		}
		in, _ := metricValue(fams, "pipeline_records_in_total", nil)
		return in >= 4
	})
	d.forward(t, "second", []string{sign("a1", "cust-a", 1, `{"n":1}`)})
	waitFor(t, tail, 2*time.Minute, "a1 and a2 delivered", func(s audit.Snapshot) bool { return s.Unique == 4 })
	// The replayed batch was written before a1's: one more read of every stream sees all of it.
	if err := tail.Poll(t.Context()); err != nil {
		t.Fatal(err)
	}
	s := tail.Snapshot()
	fams, err := scrape(t.Context(), w2.metrics)
	if err != nil {
		t.Fatal(err)
	}
	replays, _ := metricValue(fams, "pipeline_quarantine_replays_total", nil)
	natural, _ := metricValue(fams, "pipeline_dedupe_hits_total", map[string]string{"kind": "natural"})
	t.Logf("worker 2: %v quarantine records not repeated, %v natural duplicates dropped on the replay", replays, natural)

	rep := tail.Check([]audit.Expected{
		{EventID: "a1", Type: "page_view", CustomerID: "cust-a", Seq: 1}, {EventID: "a2", Type: "page_view", CustomerID: "cust-a", Seq: 2},
		{EventID: "b1", Type: "page_view", CustomerID: "cust-b", Seq: 1}, {EventID: "c1", Type: "page_view", CustomerID: "cust-c", Seq: 1},
	})
	t.Logf("quarantine after hand-off: %s", rep)
	if !exactlyOnce(t, d, rep) {
		t.Fatalf("not exactly once and in order: %s", rep)
	}
	if got := s.Quarantined[event.ReasonConflictingDupe]; got != 1 {
		t.Errorf("the conflicting b1 was quarantined %d times, want once", got)
	}
	if replays != 1 {
		t.Errorf("worker 2 counted %v quarantine replays, want 1: the replay did not read the quarantined record again", replays)
	}
}
