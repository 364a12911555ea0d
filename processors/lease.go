package processors

import "context"

// LeaseGate is the write gate of a shard's lease, as the worker's lease store provides it
// (checkpoint.Store.WaitValid; the worker passes it in Deps.Leases). WaitValid returns nil at once
// while this worker's lease on shardID is valid; it blocks while the lease is suspended (it ran out
// locally without a renewal: a peer may be about to take it) until a fenced renewal lands (then
// nil); it returns a non-nil error once the lease is lost, released or handed off and released
// (errors.Is with checkpoint.ErrLeaseLost, ErrLeaseReleased or ErrLeaseHandedOff), or ctx's cause
// when ctx ends first.
//
// The pipeline calls it right before every output write of a shard (each PutRecords to an
// analytics, late, quarantine or DLQ stream, retries included; sink.go's gated), with the shard's
// processing context; on an error it writes nothing more for that shard and Process returns the
// error (the worker then drops the shard; the next owner replays from the checkpoint). A lease being
// handed off stays valid, so a batch in flight finishes.
type LeaseGate interface {
	WaitValid(ctx context.Context, shardID string) error
}
