// Package ordered is the project's one Kinesis PutRecords writer: the worker's sink, the
// forwarder and DLQ replay all write through it, and nothing else calls PutRecords (the
// benchmarks' bare put loops, the measured baseline, excepted).
//
// It has three layers:
//
//   - Stream.Put, the step: one PutRecords call. It classifies every entry (OK, Retry, Throttled,
//     Unknown, Fatal; Classify and ClassifyCode are the project's one classifier, errors.As on the
//     SDK's typed exceptions plus the per-entry error codes), never sends a record over a Kinesis
//     limit (1 MiB with its partition key, a key of 1 to 256 characters; such a record fails Fatal
//     with the reason, on its own), marks the call with internal/ambiguous and counts and logs
//     (LogUnknownOutcome) the records of attempts whose outcome is unknown. Its Metrics keep each
//     caller's own counters. A wrapper may stand in front of it: the sink's circuit breaker does.
//   - Queue, the per-key rule and the retry policy: at most one record of a partition key is out at
//     a time, across concurrent calls and retries, so a later record of a key is never sent while
//     an earlier one is unwritten; only the failed entries of a call are sent again, after a backoff
//     (internal/retry: bounded, jittered, on an injectable clock); a record given up on (Policy
//     MaxAttempts, a fatal outcome, Stop) takes the later records of its key with it. The forwarder
//     drives a Queue with many calls in flight.
//   - Writer, the batch loop: a Queue driven one call at a time, with calls of at most 500 records
//     and 5 MiB, an optional rate limit (records and bytes per second), and a hook after each call
//     (the sink's breaker hold stops a write there). It sleeps only for the rate limit or while every
//     held record waits for its backoff. The sink and DLQ replay use it, and the forwarder's Lambda
//     path for its one record.
//
// Delivery: at least once per record that ends Written. A record ends Written or Failed with its
// Cause, never silently dropped; Write returns early only when its context ends. A call whose
// outcome is unknown may have landed although it failed, and sending its records again may write
// them twice, byte for byte: Result.Unknown and Metrics.Unknown count them, once per such attempt,
// and that count bounds the copies. Order: per partition key, records are written in the order they
// were added, whatever fails; a key whose record was given up on writes nothing more.
//
// Concurrency: Stream is safe for concurrent use. A Queue, and a Writer with it, belongs to one
// goroutine; the calls of a Queue's batches may run concurrently.
//
// Hot keys (issue 13): one record per key per call caps a key at one record per round trip. With
// WriterConfig.Aggregation on, Queue.Take lifts that: a key's head, on its first attempt, with the
// records queued right behind it (up to Aggregation.MaxRecords, and MaxBytes with the key) goes out
// as one Kinesis record in the KPL aggregated format (aggregate.go: kinesis-aggregation's protobuf
// types, the magic and MD5 trailer), and Complete gives its outcome to each record inside. The
// per-key rule is unchanged (the aggregate is the key's one record out), so order holds across
// aggregates and retries; an aggregate keeps its records through its retries (sent again byte for
// byte), so they share every attempt, and given up on they fail together with one cause. Result,
// Metrics and the unknown-outcome warning count the records inside (Metrics.Aggregated counts them
// apart); the rate limits count an aggregate once, as Kinesis does. A key with one record waiting
// sends it plain. Readers must de-aggregate (the KCL, Firehose and Flink's connector do;
// kinesis-aggregation's deaggregator in Go). A Queue driven by hand (the forwarder) does not
// aggregate.
package ordered
