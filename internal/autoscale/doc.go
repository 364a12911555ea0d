// Package autoscale reshards the pipeline's streams (the raw stream and every output stream) from
// their write load, and lets the worker fleet's maximum follow the raw stream's shards.
//
// Each tick, the leader (one instance, by a lease in the lease table) reads every stream's write
// load from a Source (CloudWatch on AWS; the local fault proxy's counters on the local stack),
// its status and open shards, and decides with Decide, a pure function of the time, the Policy,
// what it sees (View) and what it remembers (History):
//
//   - Load is measured in shards: records/s (throttled writes added: demand that did not fit;
//     not within OutWindow after a reshard, when their retries are already counted as written)
//     over the per-shard records limit, or bytes/s over the bytes limit, whichever is more, as a
//     mean over OutWindow. Capacity is the open shards' count in even shards: split/merge can
//     leave uneven ranges, and the widest range fills first (reshard.Effective).
//   - Scale out when the load is above ScaleOutAbove of the capacity, or a share of the writes
//     above ThrottledAbove was throttled while the stream has fewer shards than the load needs at
//     TargetUtilisation (throttles counted partly before the last reshard aside): to the smallest
//     count whose capacity holds the load at TargetUtilisation (headroom), at most doubling
//     (Kinesis's rule for UpdateShardCount), within MaxShards and the account's shard headroom.
//   - Scale in when the busiest OutWindow within InWindow stayed below ScaleInBelow of the
//     capacity, the autoscaler has watched the stream for InWindow, and InCooldown passed since
//     the last reshard: to the smallest count that holds that peak at TargetUtilisation, at least
//     half (Kinesis's rule), never below MinShards. Scale-in is slower than scale-out: a longer
//     window, a longer cool-down, the band between ScaleInBelow and ScaleOutAbove, and
//     ReserveCalls of the 10 calls per rolling 24 h kept for scale-out.
//   - Never while the stream is not ACTIVE (UPDATING), never within OutCooldown of the last
//     reshard, never past CallsPerDay in a rolling 24 h. An on-demand stream is only watched: the
//     decision says what it would need provisioned.
//   - With Config.Fleet (the worker fleet's view of the raw stream): no stream is scaled in while
//     the fleet is more than an out window behind (an output stream's load is then the fleet's
//     pace, not the demand), nor the raw stream while closed shards are unfinished; and the worker
//     maximum counts those closed shards with the open ones.
//
// A decision is logged (zap), counted (Prometheus, namespace autoscale), and committed to the
// stream's state row in the lease table (key StreamKey(stream): the rolling call count, the last
// reshard, the latest decision and the last reshards and refusals) with a write conditional on the
// row's version, before the reshard runs: two instances can never both act on one state. The
// reshard itself is internal/reshard's (UpdateShardCount, or split/merge where the endpoint lacks
// it), and its outcome is written back to the row. Then the fleet: the worker maximum
// WorkerPolicy.Workers(open raw shards), written to the fleet row and, with Config.ECS, set as the
// ECS service's Application Auto Scaling maximum. `kclctl autoscale status` shows the rows.
//
// Row keys start with checkpoint.ReservedPrefix ("__"), which the lease store, and so kclctl's
// shard views, leave alone.
//
// Concurrency: a Scaler's Tick and Run are meant for one goroutine; reshards of different streams
// within a tick run concurrently. Any number of instances may run: the leader lease lets one act,
// and the conditional state writes keep a stale leader from acting twice.
package autoscale
