package checkpoint

import (
	"errors"
	"fmt"
)

// ErrLeaseLost means this worker no longer owns a lease it thought it held: a fenced write found
// another owner or a newer LeaseCounter, the local lease expiry passed without a successful
// renewal, the row or the whole table vanished, or the lease was never held. It is the cause
// (inside a *LeaseLostError) of a LeaseContext cancelled for that reason.
var ErrLeaseLost = errors.New("lease lost")

// ErrLeaseHandedOff is the cause of a LeaseContext cancelled because this worker is above its fair
// share and gives the lease to a peer. The lease is still owned: the processor finishes the batch
// in flight (using OwnershipContext), checkpoints, and calls Store.Release. If it does not within
// Config.HandOffTimeout of the request, or of the end of the batch in flight (Store.Busy), the
// store releases the lease itself.
var ErrLeaseHandedOff = errors.New("lease handed off for rebalancing")

// ErrLeaseReleased is the cause of a LeaseContext whose lease this worker gave up on purpose
// (Release, ReleaseAll).
var ErrLeaseReleased = errors.New("lease released")

// ErrShardStopped is the cause (wrapped, with the reason) of a LeaseContext whose lease this worker
// gave up with Abandon: its processor had to stop.
var ErrShardStopped = errors.New("shard stopped by its worker")

// Reasons an Acquisition was refused (Acquisition.Reason). Each is an expected outcome, never
// returned as an error.
var (
	// ErrLeaseHeld: another worker holds an unexpired lease on the shard (or won the race for it).
	ErrLeaseHeld = errors.New("lease held by another worker")
	// ErrWaitingOnParent: a parent shard has not reached SHARD_END yet.
	ErrWaitingOnParent = errors.New("waiting for parent shard to finish")
	// ErrFairShare: this worker already holds its share of the leases.
	ErrFairShare = errors.New("worker holds its fair share")
	// ErrClaimedByOther: the shard is reserved for the worker that claimed it.
	ErrClaimedByOther = errors.New("shard claimed by another worker")
	// ErrShardFinished: the shard's checkpoint is SHARD_END.
	ErrShardFinished = errors.New("shard finished")
	// ErrUnknownShard: the shard is not in the stream's ListShards (or its key is reserved, see
	// ReservedPrefix).
	ErrUnknownShard = errors.New("shard not in stream")
	// ErrAlreadyHeld: this worker already holds the lease (acquisition asked twice).
	ErrAlreadyHeld = errors.New("lease already held by this worker")
	// ErrStoppedHere: this worker gave the shard up with Abandon and benches it (one LeaseDuration,
	// doubling with each further abandon up to Config.BenchMax): a peer takes it first.
	ErrStoppedHere = errors.New("shard recently stopped by this worker")
)

// ErrCheckpointStuck is returned (wrapped, with the last failure) by Checkpoint when a write kept
// failing transiently for Config.CheckpointRetryBudget while the lease was still held: the shard
// cannot be checkpointed from this worker, and its processor should stop it and Abandon the lease.
var ErrCheckpointStuck = errors.New("checkpoint write kept failing past its retry budget")

// ErrTableUnavailable is returned (wrapped) by every call while the lease table is missing and
// being recreated, and by Healthy.
var ErrTableUnavailable = errors.New("lease table unavailable")

// ErrStoreClosed is returned (wrapped) by Acquire after Close.
var ErrStoreClosed = errors.New("lease store closed")

// ErrShardLeased is returned by Reset when the shard has a live lease and force is false.
var ErrShardLeased = errors.New("shard is leased")

// ErrReservedKey is returned (wrapped) by Reset and Forget for a lease-table key that names no
// shard (see ReservedPrefix).
var ErrReservedKey = errors.New("reserved lease-table key")

// LeaseLostError is the typed form of ErrLeaseLost; errors.Is(err, ErrLeaseLost) holds.
type LeaseLostError struct {
	ShardID string
	Reason  string // fenced, expired, not held, table lost, row deleted
}

func (e *LeaseLostError) Error() string {
	return fmt.Sprintf("shard %s: lease lost: %s", e.ShardID, e.Reason)
}

// Unwrap makes errors.Is(err, ErrLeaseLost) true.
func (e *LeaseLostError) Unwrap() error { return ErrLeaseLost }

func leaseLost(shardID, reason string) error {
	return &LeaseLostError{ShardID: shardID, Reason: reason}
}
