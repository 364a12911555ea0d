package worker

import (
	"errors"
	"slices"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
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
	if h2.shard.count() != 0 || len(h2.cp.written()) != 0 {
		t.Fatal("processed after a failed open")
	}
	if got := testutil.ToFloat64(h2.env.metrics.shardStops.WithLabelValues("open")); got != 1 {
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
