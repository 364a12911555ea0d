// Package checkpoint is the lease and checkpoint store of the pipeline: leases and checkpoints of
// the raw stream's shards in a DynamoDB table, behind a context-first API of its own (Acquire,
// Renew, Checkpoint, Release, Read, Leases, Forget), plus read-only inspection (Inspect) and a
// guarded reset (Reset) used by kclctl. It does not import the KCL: package worker adapts it to
// vmware-go-kcl-v2's Checkpointer (worker/checkpointer.go), and the table keeps the KCL's
// attribute names, so the library's tools read it.
//
// What it adds over the KCL's stock DynamoCheckpoint:
//
//   - Fencing. Every lease row carries a LeaseCounter. Taking, renewing, checkpointing and
//     releasing a lease are conditional writes on (AssignedTo, LeaseCounter) and bump the counter,
//     so a worker that lost its lease can never overwrite the row of the new owner. A failed
//     condition is an expected outcome: Acquire returns an Acquisition that was not granted, and
//     Renew, Checkpoint and Release return false with a nil error. A write whose answer was lost
//     (timed out, or resent by the SDK: internal/ambiguous marks such attempts) is settled by
//     reading the row: a take that landed is adopted, a renewal or checkpoint that landed is
//     built upon, a release that landed is a release, never taken for a lost race or a fencing.
//   - Expiry observed, never computed from another machine's clock (the KCL Java rule). A worker
//     considers a peer's lease expired only after it has watched the row's lease state (owner,
//     counter) stay unchanged for one LeaseDuration of its own monotonic clock, counting only
//     across its own successful reads: a failed DynamoDB call, or a long gap between reads, starts
//     the watch over. A peer's ClaimRequest is judged the same way, over ClaimTTL. Timestamps in
//     the rows (LeaseTimeout, ClaimedAt, ...) are the writer's clock and only for display. The
//     holder stops writing (see suspension) at the instant it sent its last successful owner write
//     plus LeaseDuration, which is never later than any observer's expiry, whatever the clocks say.
//   - Lineage-aware grant. A shard is leased only when every parent (ParentShardId and
//     AdjacentParentShardId, learned from Kinesis ListShards) has Checkpoint == SHARD_END, or has
//     left the stream (past retention) and is not leased. A child waiting for a parent is never
//     leased, so nobody processes it twice and a merge keeps per-key order.
//   - Suspension, not loss, at the local expiry. A lease whose last successful owner write was
//     sent LeaseDuration ago is suspended: nobody may have taken it (DynamoDB may be paused for
//     every worker), but a peer may be about to. Store.WaitValid, the gate before every output
//     write, blocks while it is suspended. The holder keeps renewing with fenced writes (owner =
//     this worker, counter = its own): one that lands makes the lease valid again; one whose
//     condition fails means a peer took it. Only fencing, the row or the table vanishing, or a
//     release end a lease.
//   - Lease-loss notification. Each held lease has a context (Store.LeaseContext) cancelled the
//     moment the lease is known lost (a fenced write failed, the row or the table vanished) or
//     handed off for rebalancing; context.Cause tells which.
//   - Checkpoints that survive transient failures. A checkpoint write that times out, is
//     throttled or meets a server error is retried (internal/retry) while the lease is this
//     worker's, for at most CheckpointRetryBudget from the first failure (renewals that land keep
//     a lease held however long checkpoints fail): past it Checkpoint returns ErrCheckpointStuck.
//     A processor that has to stop (that, a refused write, any other failure) gives its lease up
//     with Abandon: released at once for a peer, the reason recorded in the row (LastStop*,
//     kept after a take as history; Inspect warns "stopped" until a worker takes the shard).
//   - Abandoned shards move. A free shard another worker stopped may be taken above the fair
//     share, and balancing never moves it back to that worker (no claim by it, no voluntary
//     hand-off by its holder). The stopping worker benches it: one LeaseDuration, doubling per
//     further abandon there up to BenchMax; a checkpoint landing there, or a peer stopping the
//     shard too, starts the strikes over (bench.go).
//   - Bounded calls. Every DynamoDB and Kinesis call runs under its caller's context and is bounded
//     by Config.CallTimeout. The context given to New only bounds the store's own background work.
//   - A lease table that disappears is recreated (loudly: error log + metric) and Healthy reports
//     the outage until it is ACTIVE again; all leases are dropped, because rows that vanished
//     fence nobody.
//   - Balanced leasing. A worker takes a free lease only while it holds fewer than its target
//     share; an over-share worker hands off one lease at a time (LeaseContext cause
//     ErrLeaseHandedOff, then Release); a worker under its share that sees no free lease posts a
//     ClaimRequest on a lease of the most loaded worker, and withdraws it once it holds its share
//     or on ReleaseAll (a claim counts its worker as active until observers have watched it for
//     ClaimTTL). A hand-off never cuts a batch: while the processor marks a batch in flight
//     (Busy), the fallback release (HandOffTimeout, for a processor that does not answer) waits
//     for the batch to end. The decisions are the pure planLeases.
//   - Reserved rows. Keys beginning with ReservedPrefix ("__") are not shards: other parts of the
//     fleet keep their state there (the autoscaler: "__autoscaler#<stream>"). Scans, planning,
//     Inspect, Reset, Acquire, Read and Forget ignore or refuse them.
//
// Using it (package worker does, through its KCL adapter):
//
//	store, err := checkpoint.New(ctx, checkpoint.Config{WorkerID: id, Stream: "events-raw"}, ddb, kin)
//	err = store.Init(ctx)
//	acq, err := store.Acquire(ctx, shardID) // acq.Acquired, or acq.Reason
//	held, err := store.Renew(ctx, shardID)   // every LeaseDuration/3 at most
//	err = store.WaitValid(ctx, shardID)      // before every output write: nil, blocks, or lost
//	ok, err := store.Checkpoint(ctx, shardID, seq)
//	ok, err = store.Release(ctx, shardID)
//
// The KCL runs with EnableLeaseStealing = false (the store balances), InitialPositionInStream =
// TRIM_HORIZON (a shard without checkpoint, e.g. a new child, must start at its beginning),
// FailoverTimeMillis = Config.LeaseDuration and LeaseRefreshWaitTime at most a third of it. The
// shard's processor captures store.LeaseContext(shardID) and store.OwnershipContext(shardID) once
// when it starts. When the lease context is done:
//
//   - cause ErrLeaseHandedOff: stop taking records, finish in-flight writes under the ownership
//     context, checkpoint, then store.Release(ctx, shardID); the KCL consumer ends at its next
//     renewal (Renew reports the lease gone) and a peer takes the shard from the checkpoint;
//   - any other cause (ErrLeaseLost, ErrLeaseReleased, ErrShardStopped): stop emitting at once
//     and drop buffers; never checkpoint (it would be refused anyway). The next owner replays
//     from the last checkpoint.
//
// Each batch runs between Busy and its done func, after WaitValid returned nil; before every
// output write the pipeline calls WaitValid again (processors.LeaseGate).
//
// On shutdown every consumer checkpoints and releases its lease; ReleaseAll afterwards releases
// whatever is left and withdraws this worker's claim, then Close.
//
// Delivery semantics: the store never loses a checkpoint it acknowledged (short of the table itself
// being deleted) and never lets a checkpoint of a former owner overwrite the current one.
// Processing between the last checkpoint and a lease loss is replayed by the next owner
// (at-least-once); the processor must drop its buffers when its LeaseContext is done.
//
// Concurrency: a Store is safe for concurrent use. Writes to one lease are serialised (renewal,
// checkpoint and release of the same shard never race each other's LeaseCounter). One Store serves
// one worker identity; two live processes must never share a WorkerID.
package checkpoint
