package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/kinesis-events/pipeline/checkpoint"
	"github.com/kinesis-events/pipeline/event"
	"github.com/kinesis-events/pipeline/internal/audit"
	"github.com/kinesis-events/pipeline/internal/fleet"
	"github.com/kinesis-events/pipeline/internal/loadgen"
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
	d.t.Helper()
	return d.settleWhen(send, tail, timeout, "every unique event and every quarantine record", func(s audit.Snapshot, m loadgen.Manifest) bool {
		return s.Unique >= m.Unique
	})
}

// settleWhen is settle with another condition for "every unique event accounted for" (e.g.
// delivered or dead-lettered), on top of every expected quarantine record having arrived.
func (d *deployment) settleWhen(send *fleet.Send, tail *audit.Tail, timeout time.Duration, what string, arrived func(audit.Snapshot, loadgen.Manifest) bool) settled {
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
	deadline := time.Now().Add(timeout)
	for {
		if err := tail.Poll(t.Context()); err != nil && t.Context().Err() == nil {
			t.Fatalf("reading output streams: %v", err)
		}
		s := tail.Snapshot()
		q := 0
		for _, n := range s.Quarantined {
			q += n
		}
		if arrived(s, m) && q >= wantQ {
			break
		}
		if time.Now().After(deadline) {
			d.explainMissing(m)
			t.Fatalf("timed out after %s waiting for %s; now: delivered=%d unique=%d (of %d) quarantined=%v (of %d) dead=%v",
				timeout, what, s.Delivered, s.Unique, m.Unique, s.Quarantined, wantQ, s.DeadLetters)
		}
		select {
		case <-t.Context().Done():
			t.Fatal(t.Context().Err())
		case <-time.After(chaosPollInterval):
		}
	}

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

// wantQuarantined is what the input makes the pipeline quarantine, by reason: every malformed line
// with the reason the generator expects, and every conflicting duplicate.
func wantQuarantined(m loadgen.Manifest) map[event.Reason]int {
	want := map[event.Reason]int{}
	for _, b := range m.BadLines {
		want[b.Reason]++
	}
	if m.Duplicates.Conflicting > 0 {
		want[event.ReasonConflictingDupe] += m.Duplicates.Conflicting
	}
	return want
}

// requireQuarantinedOnce holds quarantine to the analytics streams' standard: every record the
// input makes quarantinable is quarantined exactly once with its reason (a record read again after
// a lease moved finds its quarantine mark and is not quarantined twice), every conflicting
// duplicate under the event id the generator gave it, and nothing else is quarantined.
func requireQuarantinedOnce(t *testing.T, o outcome, m loadgen.Manifest) {
	t.Helper()
	want := wantQuarantined(m)
	if !maps.Equal(o.Quarantined, want) {
		t.Errorf("quarantined by reason %v, the input makes %v (each exactly once)", o.Quarantined, want)
	}
	gotIDs := slices.Clone(o.QuarantinedIDs[event.ReasonConflictingDupe])
	slices.Sort(gotIDs)
	gotIDs = slices.Compact(gotIDs)
	wantIDs := slices.Clone(m.ConflictingIDs)
	sort.Strings(wantIDs)
	if !slices.Equal(gotIDs, wantIDs) {
		t.Errorf("conflicting duplicates quarantined for %d event ids, the manifest's conflicting_ids has %d (first got %v, want %v)",
			len(gotIDs), len(wantIDs), first(gotIDs, 3), first(wantIDs, 3))
	}
}

// requireNoFlags fails the test on a late flag or a gap where the input has none: events displaced
// within the reorder window (or not at all) must be reordered, never flagged.
func requireNoFlags(t *testing.T, o outcome) {
	t.Helper()
	if o.Late > 0 || o.Gaps > 0 {
		t.Errorf("%d late events and %d gap seqs: the input has no event displaced beyond the reorder window", o.Late, o.Gaps)
	}
}

// requireNoDeadLetters fails the test on a dead letter: a scenario whose destinations are never
// down longer than the breaker hold has nothing to dead-letter.
func requireNoDeadLetters(t *testing.T, o outcome) {
	t.Helper()
	if len(o.DeadLetterIDs) > 0 {
		t.Errorf("%d dead letters (by destination %v; first ids %v): no destination was down for the breaker hold",
			len(o.DeadLetterIDs), o.DeadLetters, first(o.DeadLetterIDs, 5))
	}
}

// requireExactlyOnce is everything the README promises for a run without a crash: nothing lost,
// per-customer order, nothing delivered twice beyond the counted resent writes, no false late or
// gap flag, quarantine exactly once, nothing dead-lettered, and every worker still running.
func requireExactlyOnce(t *testing.T, s settled, ws ...*chaosWorker) {
	t.Helper()
	requireRunning(t, ws...)
	requireDelivered(t, s.out)
	requireNoDuplicates(t, s.out, ws...)
	requireNoFlags(t, s.out)
	requireQuarantinedOnce(t, s.out, s.res.Manifest)
	requireNoDeadLetters(t, s.out)
}

// requireReportClean is requireExactlyOnce for the tests that judge a run with an audit tail:
// exactly once beyond counted resent writes (exactlyOnce), in order, no late or gap flag, nothing
// dead-lettered, and quarantine by reason exactly what the input makes.
func requireReportClean(t *testing.T, d *deployment, rep audit.Report, m loadgen.Manifest) {
	t.Helper()
	if !exactlyOnce(t, d, rep) {
		t.Errorf("not exactly once and in order: lost=%d (first %v) duplicates=%d (resent %d) order=%d wrong=%v unexpected=%v",
			len(rep.Lost), first(rep.Lost, 5), rep.Duplicates, rep.Resent, rep.OrderViol, first(rep.WrongStream, 5), rep.Unwanted)
	}
	if rep.Late > 0 || rep.Gaps > 0 {
		t.Errorf("%d late events and %d gap seqs: the input has no event displaced beyond the reorder window", rep.Late, rep.Gaps)
	}
	if len(rep.DeadLetters) > 0 {
		t.Errorf("dead letters %v: no destination was down", rep.DeadLetters)
	}
	if want := wantQuarantined(m); !maps.Equal(rep.Quarantined, want) {
		t.Errorf("quarantined by reason %v, the input makes %v (each exactly once)", rep.Quarantined, want)
	}
}

// explainMissing logs, for a run that timed out, where the events not delivered sit: their raw
// shard and sequence number, and each raw shard's owner and checkpoint, so that a failure tells a
// stalled shard (checkpoint before the missing records) from a loss (checkpoint past them).
func (d *deployment) explainMissing(m loadgen.Manifest) {
	t := d.t
	t.Helper()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(t.Context()), 2*time.Minute)
	defer cancel()
	o := d.readOutcome(ctx, m)
	recs, err := d.stack.ReadAll(ctx, fleet.RawStream)
	if err != nil {
		t.Logf("explain: read the raw stream: %v", err)
		return
	}
	type at struct{ shard, seq string }
	where := map[string]at{}
	copies := map[string][]string{} // event id -> every raw record of it, described
	for _, r := range recs {
		var raw event.Raw
		var det event.Detail
		if json.Unmarshal(r.Record.Data, &raw) != nil || json.Unmarshal(raw.Detail, &det) != nil {
			continue
		}
		if _, ok := where[det.EventID]; !ok {
			where[det.EventID] = at{r.ShardID, aws.ToString(r.Record.SequenceNumber)}
		}
		copies[det.EventID] = append(copies[det.EventID], fmt.Sprintf("%s/%s arrived %s customer %s seq %d properties %s",
			r.ShardID, aws.ToString(r.Record.SequenceNumber), aws.ToTime(r.Record.ApproximateArrivalTimestamp).Format("15:04:05.000"),
			det.CustomerID, det.Seq, det.Properties))
	}
	snap := d.inspect(ctx)
	perShard := map[string]int{}
	firstMissing := map[string]string{}
	for _, id := range o.Lost {
		w, ok := where[id]
		if !ok {
			perShard["(not in the raw stream)"]++
			continue
		}
		perShard[w.shard]++
		if f := firstMissing[w.shard]; f == "" || seqAfter(f, w.seq) {
			firstMissing[w.shard] = w.seq
		}
	}
	t.Logf("explain: %d events not delivered, by raw shard: %v (first ids %v)", len(o.Lost), perShard, first(o.Lost, 5))
	quarantined := map[string]bool{}
	for _, id := range o.QuarantinedIDs[event.ReasonConflictingDupe] {
		quarantined[id] = true
	}
	for _, id := range m.ConflictingIDs {
		if !quarantined[id] {
			t.Logf("explain: conflicting duplicate of %s never quarantined; its raw records:\n  %s\nits deliveries: %d",
				id, strings.Join(copies[id], "\n  "), 1+o.DuplicatesByEvent[id])
		}
	}
	for _, w := range d.workers {
		fams, err := scrape(ctx, w.metrics)
		if err != nil {
			t.Logf("explain: %s metrics: %v", w.Name, err)
			continue
		}
		var parts []string
		for _, name := range []string{"pipeline_dedupe_hits_total", "pipeline_quarantine_replays_total", "pipeline_quarantined_total",
			"worker_shard_stops_total", "checkpoint_leases_lost_total", "checkpoint_leases_taken_total"} {
			for _, m := range fams[name].GetMetric() {
				var labels []string
				for _, l := range m.GetLabel() {
					labels = append(labels, l.GetName()+"="+l.GetValue())
				}
				parts = append(parts, fmt.Sprintf("%s{%s} %v", name, strings.Join(labels, ","), m.GetCounter().GetValue()))
			}
		}
		t.Logf("explain: %s metrics:\n  %s", w.Name, strings.Join(parts, "\n  "))
	}
	for _, sh := range snap.Shards {
		verdict := ""
		if f := firstMissing[sh.ShardID]; f != "" {
			verdict = "stalled: its checkpoint is before the first missing record"
			if sh.Checkpoint == checkpoint.ShardEnd || (sh.Checkpoint != "" && !seqAfter(f, sh.Checkpoint)) {
				verdict = "LOST: its checkpoint passed a record that was never delivered"
			}
		}
		t.Logf("explain: %s state %s owner %q checkpoint %q (at %s) first missing record %q %s", sh.ShardID, sh.State, sh.Owner,
			sh.Checkpoint, sh.CheckpointedAt.Format(time.RFC3339), firstMissing[sh.ShardID], verdict)
	}
}
