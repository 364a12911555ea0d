package worker

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	kcl "github.com/vmware/vmware-go-kcl-v2/clientlibrary/interfaces"

	"github.com/kinesis-events/pipeline/checkpoint"
)

// The checkpoint follows the pipeline's watermark: it moves when the watermark advances, once per
// advance, and an empty page read while the shard is behind is not run through the pipeline (it
// would move the reorder clock to the wall clock).
func TestProcessorCheckpointsTheWatermark(t *testing.T) {
	h := newProcHarness(t)
	h.batch(0, "1", "2", "3")
	h.batch(0) // caught up: the pipeline sees the empty batch, nothing new to checkpoint
	h.batch(500)
	h.batch(0, "4")
	if got := h.leases.written(); !slices.Equal(got, []string{"3", "4"}) {
		t.Fatalf("checkpoints %v, want [3 4]", got)
	}
	if n := h.shard.count(); n != 3 {
		t.Fatalf("%d batches reached the pipeline, want 3 (not the empty page read while behind)", n)
	}
	if !h.registered() {
		t.Fatal("a live shard left the registry")
	}
}

// A hand-off request (the lease context ends with ErrLeaseHandedOff, ownership stays) takes
// effect between batches: the next batch is not processed (it is behind the checkpoint, the peer
// reads it), the lease is released at once, and the shard's state is dropped.
func TestProcessorHandOffBetweenBatches(t *testing.T) {
	h := newProcHarness(t)
	h.batch(0, "1", "2")
	h.leases.handOff(testShard)
	h.batch(0, "3", "4")
	if got := h.leases.written(); !slices.Equal(got, []string{"2"}) {
		t.Fatalf("checkpoints %v, want [2]: nothing after the hand-off", got)
	}
	if n := h.shard.count(); n != 1 {
		t.Fatalf("%d batches processed, want 1: the batch after the hand-off request must not run", n)
	}
	if got := h.leases.releases(); !slices.Equal(got, []string{testShard}) {
		t.Fatalf("releases %v, want the handed-off shard once", got)
	}
	if !h.shard.isClosed() || h.registered() {
		t.Fatalf("after the hand-off: shard closed %v, registered %v", h.shard.isClosed(), h.registered())
	}
	h.p.Shutdown(&kcl.ShutdownInput{ShutdownReason: kcl.REQUESTED, Checkpointer: h.cp}) // the KCL's consumer ends later
	if got := h.leases.written(); len(got) != 1 {
		t.Fatalf("Shutdown after a hand-off checkpointed: %v", got)
	}
}

// A lost lease stops the shard at once: nothing more is processed, checkpointed or released (the
// lease is someone else's), the buffers are dropped and the stop is counted.
func TestProcessorLeaseLost(t *testing.T) {
	h := newProcHarness(t)
	h.batch(0, "1")
	h.leases.lose(testShard)
	h.batch(0, "2")
	h.batch(0, "3")
	if got := h.leases.written(); !slices.Equal(got, []string{"1"}) {
		t.Fatalf("checkpoints %v, want [1]", got)
	}
	if n := h.shard.count(); n != 1 {
		t.Fatalf("%d batches processed after the loss, want 1 before it", n)
	}
	if len(h.leases.releases()) != 0 {
		t.Fatalf("released a lost lease: %v", h.leases.releases())
	}
	if !h.shard.isClosed() || h.registered() {
		t.Fatalf("after the loss: shard closed %v, registered %v", h.shard.isClosed(), h.registered())
	}
	if got := testutil.ToFloat64(h.env.metrics.shardStops.WithLabelValues("lease check")); got != 1 {
		t.Fatalf("shard stops = %v, want 1", got)
	}
}

// At SHARD_END the processor does not drain what the pipeline holds: it finishes the shard with
// its tail, where the records it has not handled begin, for the children to read.
func TestProcessorShardEndFinishesWithTheTail(t *testing.T) {
	str := func(s string) *string { return &s }
	inherited := []checkpoint.TailSegment{{Shard: "parent", After: "9"}}
	for _, tc := range []struct {
		name      string
		wm        *string // the watermark Process returns; nil: the batch's last record
		held      int
		inherited []checkpoint.TailSegment
		want      []checkpoint.TailSegment
	}{
		{name: "everything handled: no tail", want: nil},
		{name: "events held: after the checkpoint", wm: str("1"), held: 1, want: []checkpoint.TailSegment{{Shard: testShard, After: "1"}}},
		{name: "no checkpoint yet: the inherited tail and every own record", wm: str(""), held: 2, inherited: inherited,
			want: []checkpoint.TailSegment{{Shard: "parent", After: "9"}, {Shard: testShard}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newProcHarness(t)
			h.shard.wm, h.shard.held, h.opener.inherited = tc.wm, tc.held, tc.inherited
			h.batch(0, "1", "2")
			h.p.Shutdown(&kcl.ShutdownInput{ShutdownReason: kcl.TERMINATE, Checkpointer: h.cp})
			tail, ok := h.leases.finishedWith(testShard)
			if !ok || !slices.Equal(tail, tc.want) {
				t.Fatalf("finished %v with tail %v, want %v", ok, tail, tc.want)
			}
			if !h.shard.isClosed() || h.registered() {
				t.Fatalf("after SHARD_END: shard closed %v, registered %v", h.shard.isClosed(), h.registered())
			}
		})
	}
}

// A shard that cannot be finished (the lease is gone, or the write fails) stops, counted: the next
// owner reads it to the end again and finishes it.
func TestProcessorShardEndFinishFailure(t *testing.T) {
	for _, refuse := range []bool{true, false} {
		h := newProcHarness(t)
		h.batch(0, "1")
		if refuse {
			h.leases.finishRefused = true
		} else {
			h.leases.finishErr = errors.New("throttled")
		}
		h.p.Shutdown(&kcl.ShutdownInput{ShutdownReason: kcl.TERMINATE, Checkpointer: h.cp})
		if _, ok := h.leases.finishedWith(testShard); ok {
			t.Fatal("finished")
		}
		if got := testutil.ToFloat64(h.env.metrics.shardStops.WithLabelValues("finish shard")); got != 1 {
			t.Fatalf("shard stops = %v, want 1", got)
		}
		// A failed write gives the lease up so a peer finishes the shard; a refused one was lost.
		if got := h.leases.abandons(); (len(got) == 1) == refuse {
			t.Fatalf("refused %v: abandoned %q", refuse, got)
		}
	}
}

// A shard opens on its first batch (its state is read under the renewing lease, not in
// Initialize); an open that fails stops the shard.
func TestProcessorOpensOnFirstBatch(t *testing.T) {
	h := newProcHarness(t)
	if h.opener.opened != 0 {
		t.Fatal("opened in Initialize")
	}
	h.batch(0, "1")
	h.batch(0, "2")
	if h.opener.opened != 1 {
		t.Fatalf("opened %d times, want once", h.opener.opened)
	}
	h2 := newProcHarness(t)
	h2.opener.err = errors.New("state unreadable")
	h2.batch(0, "1")
	h2.batch(0, "2")
	if h2.shard.count() != 0 || len(h2.leases.written()) != 0 {
		t.Fatal("processed after a failed open")
	}
	if got := testutil.ToFloat64(h2.env.metrics.shardStops.WithLabelValues("open")); got != 1 {
		t.Fatalf("shard stops = %v, want 1", got)
	}
	if got := h2.leases.abandons(); len(got) != 1 || !strings.Contains(got[0], "state unreadable") {
		t.Fatalf("abandoned %q, want the lease released with the open's error", got)
	}
}

// A requested shutdown (SIGTERM) checkpoints nothing more: every batch was checkpointed at its
// watermark, and held events stay behind it for the next owner.
func TestProcessorShutdownRequested(t *testing.T) {
	h := newProcHarness(t)
	h.batch(0, "1")
	h.shard.held = 3
	h.p.Shutdown(&kcl.ShutdownInput{ShutdownReason: kcl.REQUESTED, Checkpointer: h.cp})
	if got := h.leases.written(); !slices.Equal(got, []string{"1"}) {
		t.Fatalf("checkpoints %v, want [1]", got)
	}
	if !h.shard.isClosed() || h.registered() {
		t.Fatalf("after Shutdown: shard closed %v, registered %v", h.shard.isClosed(), h.registered())
	}
}

// A suspended lease (it ran out locally, no fenced renewal has landed) holds the next batch back
// before anything of it is written: the batch runs once the lease is valid again, and never if
// the lease is lost meanwhile.
func TestProcessorWaitsWhileSuspended(t *testing.T) {
	h := newProcHarness(t)
	h.batch(0, "1")
	h.leases.suspend(testShard)
	done := make(chan struct{})
	go func() { h.batch(0, "2"); close(done) }()
	select {
	case <-done:
		t.Fatal("a batch ran while the lease was suspended")
	case <-time.After(100 * time.Millisecond): // it must still be waiting; resume below releases it
	}
	if n := h.shard.count(); n != 1 {
		t.Fatalf("%d batches reached the pipeline while suspended, want 1", n)
	}
	h.leases.resume(testShard)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the batch did not run after the lease was valid again")
	}
	if got := h.leases.written(); !slices.Equal(got, []string{"1", "2"}) {
		t.Fatalf("checkpoints %v, want [1 2]", got)
	}

	h.leases.suspend(testShard)
	done = make(chan struct{})
	go func() { h.batch(0, "3"); close(done) }()
	h.leases.lose(testShard)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the batch still waits after the lease was lost")
	}
	if n := h.shard.count(); n != 2 || !h.shard.isClosed() {
		t.Fatalf("after losing a suspended lease: %d batches, closed %v; want 2 and closed", n, h.shard.isClosed())
	}
	if got := h.leases.written(); !slices.Equal(got, []string{"1", "2"}) {
		t.Fatalf("checkpoints %v, want [1 2]", got)
	}
}

// A checkpoint that cannot be written for a reason other than a lost lease (the store retried
// every transient failure already) stops the shard visibly: its lease is abandoned (released with
// the reason, so a peer takes the shard from its checkpoint instead of this worker reading and
// dropping every later batch while it keeps renewing), /readyz lists it, and nothing more is
// processed or checkpointed here.
func TestProcessorStopsAndReleasesOnCheckpointFailure(t *testing.T) {
	h := newProcHarness(t)
	h.batch(0, "1")
	h.leases.mu.Lock()
	h.leases.cpErr = errors.New("ValidationException: the checkpoint cannot be written")
	h.leases.mu.Unlock()
	h.batch(0, "2")
	h.batch(0, "3")
	if n := h.shard.count(); n != 2 {
		t.Fatalf("%d batches processed, want 2: none after the stop", n)
	}
	got := h.leases.abandons()
	if len(got) != 1 || !strings.Contains(got[0], "ValidationException") {
		t.Fatalf("abandoned with %q, want once with the checkpoint error", got)
	}
	stopped := h.env.shards.stoppedShards()
	if s, ok := stopped[testShard]; !ok || !strings.Contains(s.Reason, "checkpoint") {
		t.Fatalf("stopped shards %+v, want %s with the reason", stopped, testShard)
	}
	if !h.shard.isClosed() || h.registered() {
		t.Fatalf("after the stop: shard closed %v, registered %v", h.shard.isClosed(), h.registered())
	}
	if got := testutil.ToFloat64(h.env.metrics.shardStops.WithLabelValues("checkpoint")); got != 1 {
		t.Fatalf("shard stops = %v, want 1", got)
	}
	// Taking the shard again (here or anywhere) ends the stop.
	h.env.shards.start(testShard)
	if _, ok := h.env.shards.stoppedShards()[testShard]; ok {
		t.Fatal("a shard started again is still listed as stopped")
	}
}

// A checkpoint refused because the lease is lost is no stop to report: nothing is abandoned (the
// lease is someone else's) and /readyz does not list the shard.
func TestProcessorCheckpointLeaseLostIsNoStop(t *testing.T) {
	h := newProcHarness(t)
	h.leases.mu.Lock()
	h.leases.cpLost = true
	h.leases.mu.Unlock()
	h.batch(0, "1")
	h.batch(0, "2")
	if n := h.shard.count(); n != 1 || len(h.leases.abandons()) != 0 || len(h.env.shards.stoppedShards()) != 0 {
		t.Fatalf("batches %d, abandoned %v, stopped %v; want 1, none, none", n, h.leases.abandons(), h.env.shards.stoppedShards())
	}
}

// A hand-off asked for in the middle of a batch does not cut it: the batch is written (Process
// returns under the ownership context), checkpointed, and marked busy all along, so no hand-off
// timer releases the lease meanwhile; the processor releases it at its next call, before anything
// of the next batch is written.
func TestProcessorHandOffMidBatchFinishesTheBatch(t *testing.T) {
	h := newProcHarness(t)
	var busyInside bool
	h.shard.processed = func(context.Context) {
		busyInside = h.leases.inBatch()
		h.leases.handOff(testShard) // the store asks for the lease while the batch is being written
	}
	h.batch(0, "1", "2")
	if !busyInside {
		t.Fatal("the batch was not marked busy while it was processed")
	}
	if got := h.leases.written(); !slices.Equal(got, []string{"2"}) {
		t.Fatalf("checkpoints %v, want [2]: the batch in flight is checkpointed", got)
	}
	if len(h.leases.releases()) != 0 || h.leases.inBatch() {
		t.Fatalf("after the batch: releases %v, still busy %v; want no release yet and the batch done", h.leases.releases(), h.leases.inBatch())
	}
	h.shard.processed = nil
	h.batch(0, "3")
	if got := h.leases.releases(); !slices.Equal(got, []string{testShard}) || h.leases.released0 != 0 {
		t.Fatalf("releases %v (%d while busy), want one, between batches", got, h.leases.released0)
	}
	if n := h.shard.count(); n != 1 {
		t.Fatalf("%d batches processed, want 1: not the one after the hand-off", n)
	}
}

// Each batch's oldest record's age (now - its arrival in the raw stream) is observed as the batch
// starts; a batch of records without an arrival time (none here but in tests) is not.
func TestProcessorObservesRecordAge(t *testing.T) {
	h := newProcHarness(t)
	h.batch(0, "1")
	arrived := time.Now().Add(-4 * time.Second)
	h.p.ProcessRecords(&kcl.ProcessRecordsInput{Checkpointer: h.cp, Records: []ktypes.Record{
		{SequenceNumber: aws.String("2"), Data: []byte("2"), PartitionKey: aws.String("k"), ApproximateArrivalTimestamp: aws.Time(arrived)},
		{SequenceNumber: aws.String("3"), Data: []byte("3"), PartitionKey: aws.String("k"), ApproximateArrivalTimestamp: aws.Time(arrived.Add(3 * time.Second))},
	}})
	if n := testutil.CollectAndCount(h.env.metrics.recordAge); n != 1 {
		t.Fatalf("%d record age series", n)
	}
	var m dto.Metric
	if err := h.env.metrics.recordAge.Write(&m); err != nil {
		t.Fatal(err)
	}
	if c, s := m.GetHistogram().GetSampleCount(), m.GetHistogram().GetSampleSum(); c != 1 || s < 4000 || s > 4000+float64(time.Minute.Milliseconds()) {
		t.Fatalf("record age: %d batches, %v ms in all; want 1 batch of its oldest record's age, about 4000 ms", c, s)
	}
}
