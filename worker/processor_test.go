package worker

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	kcl "github.com/vmware/vmware-go-kcl-v2/clientlibrary/interfaces"
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

// At SHARD_END the processor drains what the pipeline still holds, checkpoints that watermark, and
// only then writes SHARD_END (Checkpoint(nil)), which lets the children start.
func TestProcessorShardEndDrainsThenCheckpointsNil(t *testing.T) {
	h := newProcHarness(t)
	h.batch(0, "1", "2")
	h.shard.drainWM = "5"
	h.p.Shutdown(&kcl.ShutdownInput{ShutdownReason: kcl.TERMINATE, Checkpointer: h.cp})
	if !h.shard.drained {
		t.Fatal("not drained at SHARD_END")
	}
	if got := h.leases.written(); !slices.Equal(got, []string{"2", "5", "SHARD_END"}) {
		t.Fatalf("checkpoints %v, want [2 5 SHARD_END]", got)
	}
	if !h.shard.isClosed() || h.registered() {
		t.Fatalf("after SHARD_END: shard closed %v, registered %v", h.shard.isClosed(), h.registered())
	}
}

// A drain that fails (its writes could not finish) must not mark the shard finished: SHARD_END
// would let the children start while the parent's held events were never written.
func TestProcessorShardEndDrainFailureWritesNoShardEnd(t *testing.T) {
	h := newProcHarness(t)
	h.batch(0, "1")
	h.shard.drainErr = errors.New("destination gone")
	h.p.Shutdown(&kcl.ShutdownInput{ShutdownReason: kcl.TERMINATE, Checkpointer: h.cp})
	if got := h.leases.written(); !slices.Equal(got, []string{"1"}) {
		t.Fatalf("checkpoints %v, want only [1]: no SHARD_END after a failed drain", got)
	}
	if got := testutil.ToFloat64(h.env.metrics.shardStops.WithLabelValues("drain at shard end")); got != 1 {
		t.Fatalf("shard stops = %v, want 1", got)
	}
	if got := h.leases.abandons(); len(got) != 1 || !strings.Contains(got[0], "destination gone") {
		t.Fatalf("abandoned %q, want the lease released with the drain's error", got)
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
