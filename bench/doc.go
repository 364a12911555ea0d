// Package bench measures the pipeline end to end on the local stack (kinesalite + dynalite, started
// by internal/localstack) with the real binaries: the worker, forwarder and loadgen commands run as
// child processes through internal/fleet, and their output is checked with internal/audit. It is the
// end-to-end half of `make bench` (issue 7); the in-process half is the Benchmark* functions beside
// the code in processors/ and forwarder/, whose `go test -bench` output Run folds into the same report.
//
// The emulators on a shared development machine are slower than AWS and their speed drifts, so every
// figure is a ratio or a per-core rate measured side by side in one run (the baseline is re-measured
// before and after the subject where the order could matter), never an absolute time compared with
// a constant. Nothing here asserts a time: Run returns figures, and each Target says whether its
// figure met the target, for the report.
//
// Scenarios (each on its own fresh stack unless noted):
//   - Ingest: the forwarder binary in local mode against a plain PutRecords loop writing the same
//     records (read back from the raw stream) with the same batch size and concurrency.
//   - Throughput (same stack as Ingest, whose first forwarder run pre-fills the raw stream): a plain
//     GetRecords loop over every shard, then one worker process from start to the last record
//     delivered, then the loop again; also the time from worker start to the first record delivered,
//     the worker's CPU time per event, and its dedupe round trips per event from its own counters.
//   - NaiveDedupe: one conditional PutItem per event (the scheme batching replaces), on dynalite.
//   - Latency: forwarder put (forwarded_at) to arrival in the analytics stream at a steady rate, with
//     the reorder window off and at 30 s, on a gap-free stream.
//   - Backpressure: the worker's Kinesis calls go through internal/faultproxy; every PutRecords to an
//     analytics stream fails for a period while events keep arriving; the worker's RSS is sampled.
//   - Hot (issue 13): one worker, every PutRecords to an analytics stream delayed 25 ms at
//     internal/faultproxy (AWS's round trip), 1,000 customers at 1 event/s and one hot customer
//     climbing a ladder of rates while its lag stays bounded, with AGGREGATE_KEYS off and on; lag
//     from the events' arrival times; both runs audited (exactly once, in order).
//   - ScaleModel: workers, shards and dedupe-table capacity for target rates, computed from the
//     measured per-event costs and the Kinesis and DynamoDB limits.
//
// Concurrency: Run executes the scenarios one after the other (they would otherwise compete for the
// machine's cores); every function here blocks until its scenario is over and stops every process
// and emulator it started, also when ctx ends.
package bench
