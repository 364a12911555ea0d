package worker

import (
	"errors"
	"slices"
	"testing"

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
	if got := h.cp.written(); !slices.Equal(got, []string{"3", "4"}) {
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
	if got := h.cp.written(); !slices.Equal(got, []string{"2"}) {
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
	if got := h.cp.written(); len(got) != 1 {
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
	if got := h.cp.written(); !slices.Equal(got, []string{"1"}) {
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
	if got := h.cp.written(); !slices.Equal(got, []string{"2", "5", "SHARD_END"}) {
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
	if got := h.cp.written(); !slices.Equal(got, []string{"1"}) {
		t.Fatalf("checkpoints %v, want only [1]: no SHARD_END after a failed drain", got)
	}
	if got := testutil.ToFloat64(h.env.metrics.shardStops.WithLabelValues("drain at shard end")); got != 1 {
		t.Fatalf("shard stops = %v, want 1", got)
	}
}

// A requested shutdown (SIGTERM) checkpoints nothing more: every batch was checkpointed at its
// watermark, and held events stay behind it for the next owner.
func TestProcessorShutdownRequested(t *testing.T) {
	h := newProcHarness(t)
	h.batch(0, "1")
	h.shard.held = 3
	h.p.Shutdown(&kcl.ShutdownInput{ShutdownReason: kcl.REQUESTED, Checkpointer: h.cp})
	if got := h.cp.written(); !slices.Equal(got, []string{"1"}) {
		t.Fatalf("checkpoints %v, want [1]", got)
	}
	if !h.shard.isClosed() || h.registered() {
		t.Fatalf("after Shutdown: shard closed %v, registered %v", h.shard.isClosed(), h.registered())
	}
}
