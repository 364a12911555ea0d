package e2e

import (
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/kinesis-events/pipeline/event"
	"github.com/kinesis-events/pipeline/internal/audit"
	"github.com/kinesis-events/pipeline/internal/fleet"
	"github.com/kinesis-events/pipeline/internal/localstack"
)

// TestPipeline runs the real binaries on kinesalite + dynalite: 20,000 events of 6 types through
// `loadgen | forwarder` into 4 raw shards, 2 workers, one of them stopped with SIGTERM mid-run and
// restarted. Every valid event must land exactly once in its type's stream, in per-customer order;
// every malformed input must be quarantined with the reason the generator expects.
func TestPipeline(t *testing.T) {
	if testing.Short() {
		t.Skip("binary-level end-to-end run; not in -short")
	}
	runPipeline(t, 20000, 2000, localstack.Options{})
}

// TestPipelineCompat runs a smaller version on the compatibility tier: kinesis-local (kinesis-mock)
// and AWS's DynamoDB Local.
func TestPipelineCompat(t *testing.T) {
	if testing.Short() {
		t.Skip("binary-level end-to-end run; not in -short")
	}
	runPipeline(t, 1500, 500, localstack.Options{Kinesis: localstack.KinesisMock, DynamoDB: localstack.DynamoDBLocal})
}

func runPipeline(t *testing.T, count int, rate float64, o localstack.Options) {
	topo := fleet.DefaultTopology()
	d := deploy(t, topo, o)
	w1 := d.worker(1)
	d.worker(2)

	send, err := d.env.Send(fleet.Load{Count: count, Customers: 500, Rate: rate, Seed: 42, BadRatio: 0.01})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(send.Stop)
	tail := d.env.NewTail(d.stack.Kinesis())

	// Mid-run, stop worker 1 gracefully and bring it back with the same id.
	waitFor(t, tail, 3*time.Minute, "a third of the events delivered", func(s audit.Snapshot) bool { return s.Unique >= count/3 })
	stopped := time.Now()
	if err := w1.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := w1.Wait(ctx); err != nil {
		t.Fatalf("worker 1 did not exit cleanly on SIGTERM: %v", err)
	}
	t.Logf("worker 1 exited %s after SIGTERM", time.Since(stopped).Round(time.Millisecond))
	d.worker(1)

	res, err := send.Wait(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	m := res.Manifest
	t.Logf("forwarder: %s", res.Forwarder)
	if res.Forwarder.Failed != 0 {
		t.Fatalf("forwarder failed %d events", res.Forwarder.Failed)
	}
	badTotal := 0
	for _, n := range m.Bad {
		badTotal += n
	}
	waitFor(t, tail, 3*time.Minute, "every unique event and every quarantine record", func(s audit.Snapshot) bool {
		q := 0
		for _, n := range s.Quarantined {
			q += n
		}
		return s.Unique >= m.Unique && q >= badTotal
	})
	rep := tail.Check(fleet.Expected(m))
	t.Logf("sent %d lines: %d unique valid, %d malformed; %s", m.Lines, m.Unique, badTotal, rep)
	for _, s := range sortedKeys(rep.PerStream) {
		t.Logf("  %-28s %6d", s, rep.PerStream[s])
	}
	if !exactlyOnce(t, d, rep) {
		t.Errorf("not exactly-once and in order: lost=%d (first %v) duplicates=%d order=%d wrong=%v unexpected=%v",
			len(rep.Lost), first(rep.Lost, 5), rep.Duplicates, rep.OrderViol, first(rep.WrongStream, 5), rep.Unwanted)
	}
	for typ, n := range m.ByType {
		if got := rep.PerStream["analytics-"+typ]; got != n {
			t.Errorf("analytics-%s has %d records, want %d", typ, got, n)
		}
	}
	// Every malformed line is quarantined with the reason the generator expects.
	want := map[event.Reason]int{}
	for _, b := range m.BadLines {
		want[event.Reason(b.Reason)]++
	}
	for r, n := range want {
		if rep.Quarantined[r] != n {
			t.Errorf("quarantined[%s] = %d, want %d (all: %v)", r, rep.Quarantined[r], n, rep.Quarantined)
		}
	}
	if len(rep.DeadLetters) != 0 {
		t.Errorf("dead letters in a healthy run: %v", rep.DeadLetters)
	}
}

func first[T any](s []T, n int) []T {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// exactlyOnce is rep.OK, except that a duplicate byte for byte the same as its first delivery (one
// output write sent twice) is allowed when the workers counted at least that many records as sent
// in a write whose outcome was unknown (the AWS SDK retries a PutRecords whose 200 answer was cut
// off). A record processed twice is never allowed.
func exactlyOnce(t *testing.T, d *deployment, rep audit.Report) bool {
	t.Helper()
	n, err := d.env.UnknownOutcomes()
	if err != nil {
		t.Fatalf("reading the workers' unknown write outcomes: %v", err)
	}
	f, err := d.env.ForwarderUnknownOutcomes()
	if err != nil {
		t.Fatalf("reading the forwarder's unknown write outcomes: %v", err)
	}
	if rep.Resent > 0 || rep.QuarantineResent > 0 || n > 0 || f > 0 {
		t.Logf("resent writes in the output: %d, in the quarantine stream: %d; records sent with an unknown outcome: workers %d, forwarder %d",
			rep.Resent, rep.QuarantineResent, n, f)
	}
	return rep.OKWithResent(n) && rep.QuarantineOK(n, f)
}
