// Package reshard plans and runs the resharding of one Kinesis stream: UpdateShardCount
// (UNIFORM_SCALING, at most doubling or halving per call) where the endpoint has it, and
// SplitShard/MergeShards one step at a time where it does not (kinesalite). `kclctl scale` and the
// autoscaler (internal/autoscale) share it, so a manual and an automatic reshard take the same
// path.
//
// Run changes the stream only with Options.Apply; without it, it returns the plan. Every step is
// waited for until the stream is ACTIVE with the expected open shard count before the next one, so
// a reshard never overlaps another step of its own. The workers follow a reshard by themselves:
// the lease store finishes each parent to SHARD_END before any worker leases its children.
//
// Concurrency: the functions are safe to call from any goroutine; two concurrent Runs on one
// stream are not coordinated here (Kinesis refuses the second step with ResourceInUseException,
// which Run retries briefly): the autoscaler's leader lease keeps it to one.
package reshard
