// Package processors is the worker's per-record pipeline: for every record read from a raw-stream shard
// it runs, in this order,
//
//	decode -> verify -> dedupe -> reorder -> route -> write -> mark seen -> advance the watermark
//
// Stages, one owner each (pipeline.go states their order; shard.go holds a shard's state):
//   - verify.go: strict decode (event.DecodeRaw) and HMAC verification; anything bad is quarantined
//     with its reason code and never routed, marked or held.
//   - pii.go: the optional PII policy (Config.PIIPaths), applied right after verification: raw values
//     at the configured detail paths are quarantined as raw_pii, and no quarantine record keeps one.
//   - dedupe.go: the dedupe stage (type dedupe) owns level 1, a per-shard cache of the ids in flight
//     and of the most recent ids written (first in, first out), and level 2, a DedupeStore (store.go;
//     DynamoDB in production, store_dynamo.go) read and written in batches, a few calls in flight
//     at once: lookup before reorder, marks after the write. Marks carry a content hash: same id
//     and content = natural duplicate (dropped), same id and other content = conflicting duplicate
//     (quarantined). The store also holds a per-customer cursor (the last released seq) so a new
//     owner of a shard resumes reordering where the old one stopped, and a mark per quarantined
//     record (shard and sequence number), so a record read again after a lease moved is not
//     quarantined twice.
//   - reorder.go: per-customer order by seq: the next seq is released at once, later ones are held
//     until the gap fills or the reorder window passes; late events are released flagged.
//   - route.go: event type to stream, and the analytics record encoder.
//   - quarantine.go: the quarantine and dead-letter records.
//   - sink.go: writes through internal/ordered (at most one record per partition key per call, so a
//     partial failure can never land a customer's later event before an earlier one; only failed
//     entries are retried, with jittered backoff; a per-shard rate limit; with Config.AggregateKeys
//     that one record may be a KPL aggregate of the customer's next events, on the analytics
//     streams only, so a hot customer is not capped at one event per round trip), with a gobreaker
//     breaker per destination around each call and dead-lettering after Config.BreakerHold. A
//     destination that merely throttles is retried and counted, and counts toward neither the
//     breaker nor the hold: it is never dead-lettered.
//   - watermark.go: the checkpoint watermark, the last sequence number of the longest handled prefix.
//
// Delivery semantics: at least once, and exactly once except after a crash or a lost lease. A record
// is "handled" once it is written to its analytics (or late) stream and its dedupe mark is durable,
// or it is quarantined (and marked), dropped as a natural duplicate, or dead-lettered. The watermark never passes
// a record that is not handled, and an event is marked seen only after its output write succeeded,
// so a failure can cause a duplicate (dropped by dedupe on replay, unless the process died between
// the write and the mark) but never a loss.
//
// Concurrency: a Pipeline is shared by all shards of one worker process and is safe for concurrent
// use. A Shard belongs to one goroutine: its methods must not be called concurrently. Process blocks
// while a destination or the dedupe store is unavailable (so the caller reads no more and memory stays
// bounded) and returns promptly when its context is cancelled; a Shard whose Process or Drain failed
// must be discarded.
package processors
