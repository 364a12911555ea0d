package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/kinesis-events/pipeline/checkpoint"
	"github.com/kinesis-events/pipeline/internal/audit"
	"github.com/kinesis-events/pipeline/internal/fleet"
	"github.com/kinesis-events/pipeline/internal/localstack"
	"github.com/kinesis-events/pipeline/internal/names"
)

// startLoad starts `loadgen | forwarder` and a tail over the output streams.
func (d *deployment) startLoad(l fleet.Load) (*fleet.Send, *audit.Tail) {
	d.t.Helper()
	send, err := d.env.Send(l)
	if err != nil {
		d.t.Fatal(err)
	}
	d.t.Cleanup(send.Stop)
	return send, d.env.NewTail(d.stack.Kinesis())
}

// settled is the end state of a chaos run.
type settled struct {
	res   *fleet.SendResult
	out   outcome
	audit audit.Report
	// raw is every raw-stream record, by shard.
	raw map[string][]localstack.ShardRecord
}

// settle waits for the load to be sent, then for every unique event and every expected quarantine
// record to arrive and for every raw shard to be checkpointed to its end (SHARD_END for a closed
// shard): from then on no worker reprocesses anything. Then it reads the outcome.
func (d *deployment) settle(send *fleet.Send, tail *audit.Tail, timeout time.Duration) settled {
	t := d.t
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	res, err := send.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.Forwarder.Failed != 0 {
		t.Fatalf("forwarder failed %d events: %s", res.Forwarder.Failed, res.Forwarder)
	}
	m := res.Manifest
	wantQ := m.Duplicates.Conflicting
	for _, n := range m.Bad {
		wantQ += n
	}
	waitTail(t, tail, timeout, "every unique event and every quarantine record", func(s audit.Snapshot) bool {
		q := 0
		for _, n := range s.Quarantined {
			q += n
		}
		return s.Unique >= m.Unique && q >= wantQ
	})

	// Each step below gets its own budget: a slow delivery must not starve the checks.
	ctx, cancel = context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	recs, err := d.stack.ReadAll(ctx, names.RawStream)
	if err != nil {
		t.Fatalf("read the raw stream: %v", err)
	}
	raw := map[string][]localstack.ShardRecord{}
	for _, r := range recs {
		raw[r.ShardID] = append(raw[r.ShardID], r)
	}
	var snap checkpoint.Snapshot
	for {
		snap = d.inspect(ctx)
		pending := pendingShards(snap, raw)
		if len(pending) == 0 {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting for every raw shard to be checkpointed to its end; pending: %v", pending)
		case <-time.After(500 * time.Millisecond):
		}
	}
	// One last poll: anything a worker wrote before its final checkpoint is in the streams now.
	ctx, cancel = context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	if err := tail.Poll(ctx); err != nil {
		t.Fatalf("reading output streams: %v", err)
	}
	return settled{res: res, out: d.readOutcome(t.Context(), m), audit: tail.Check(fleet.Expected(m)), raw: raw}
}

// pendingShards lists the raw shards whose checkpoint has not reached their last record (or
// SHARD_END when closed).
func pendingShards(snap checkpoint.Snapshot, raw map[string][]localstack.ShardRecord) []string {
	var pending []string
	for _, s := range snap.Shards {
		switch {
		case s.State == checkpoint.ShardGone || s.Checkpoint == checkpoint.ShardEnd:
		case s.State == checkpoint.ShardClosed:
			pending = append(pending, fmt.Sprintf("%s (closed, checkpoint %q, owner %q)", s.ShardID, s.Checkpoint, s.Owner))
		default:
			recs := raw[s.ShardID]
			if len(recs) == 0 {
				continue
			}
			last := aws.ToString(recs[len(recs)-1].Record.SequenceNumber)
			if s.Checkpoint == "" || seqAfter(last, s.Checkpoint) {
				pending = append(pending, fmt.Sprintf("%s (checkpoint %q, last record %s, owner %q)", s.ShardID, s.Checkpoint, last, s.Owner))
			}
		}
	}
	return pending
}

// report logs the run's numbers in the terms and returns the outcome.
func (s settled) report(t *testing.T, scenario string) outcome {
	t.Helper()
	o := s.out
	t.Logf("%s: sent %d / delivered %d / lost %d / duplicated %d / order violations %d", scenario,
		o.Sent, o.Delivered, len(o.Lost), o.Duplicates, o.OrderViol)
	t.Logf("%s: %s", scenario, o)
	t.Logf("%s: audit tail: %s", scenario, s.audit)
	t.Logf("%s: forwarder: %s", scenario, s.res.Forwarder)
	t.Logf("%s: per stream:%s", scenario, perStreamLines(o.PerStream))
	if len(o.Quarantined) > 0 {
		t.Logf("%s: quarantined by reason: %v", scenario, o.Quarantined)
	}
	if len(o.DeadLetters) > 0 {
		t.Logf("%s: dead letters by destination: %v", scenario, o.DeadLetters)
	}
	return o
}

// requireDelivered fails the test on a lost event, an order violation among first deliveries, a
// record in the wrong stream, wrong content or an unexpected event.
func requireDelivered(t *testing.T, o outcome) {
	t.Helper()
	if len(o.Lost) > 0 {
		t.Errorf("lost %d events (first %v)", len(o.Lost), first(o.Lost, 5))
	}
	if o.OrderViol > 0 {
		t.Errorf("%d per-customer order violations", o.OrderViol)
	}
	if len(o.WrongStream) > 0 || len(o.WrongContent) > 0 || len(o.Unexpected) > 0 {
		t.Errorf("wrong stream %v, wrong content %v, unexpected %v", first(o.WrongStream, 5), first(o.WrongContent, 5), first(o.Unexpected, 5))
	}
}

// requireNoDuplicates fails the test on any duplicate delivery other than resent writes the workers
// counted (see exactlyOnce); the message says how many leases the workers lost during the run (a
// lost lease replays from the checkpoint by design).
func requireNoDuplicates(t *testing.T, o outcome, ws ...*chaosWorker) {
	t.Helper()
	losses, detail := leaseLosses(t.Context(), ws...)
	if losses > 0 {
		t.Logf("shards stopped early (lease lost) during the run: %v (%s)", losses, detail)
	}
	if o.Resent > 0 {
		t.Logf("resent writes in the output: %d; records the workers sent with an unknown outcome: %d", o.Resent, o.Unsure)
	}
	if o.Duplicates > 0 && (o.Duplicates != o.Resent || o.Resent > o.Unsure) {
		ids := make([]string, 0, 5)
		for id := range o.DuplicatesByEvent {
			if len(ids) == 5 {
				break
			}
			ids = append(ids, id)
		}
		t.Errorf("%d duplicate deliveries (e.g. %v); shards stopped early by a lost lease: %v (%s)", o.Duplicates, ids, losses, detail)
	}
}
