// Package kclctl is the operator CLI of the worker fleet (cmd/kclctl): a thin client over the
// checkpoint package's inspection and guarded reset and the Kinesis API, printing human tables by
// default, JSON with --json, refreshing with --watch, and exiting with codes scripts can rely on
// (ExitOK, ExitError, ExitUsage, ExitWarnings, ExitRefused).
//
// checkpoints, workers, dlq list and forwarder-dlq list only read (SQS cannot peek: forwarder-dlq
// list receives the failure queue's messages and makes them visible again). reset, scale, dlq
// replay and forwarder-dlq replay change something only with --apply; without it they show what
// they would do. reset writes one conditional update that fences out the lease holder; scale
// reshards step by step, each step waited for until the stream is ACTIVE again; dlq replay puts
// records into the raw stream at least once (a PutRecords that timed out may have landed), which
// the pipeline's dedupe makes safe; forwarder-dlq replay hands each failed EventBridge event to the
// forwarder's Lambda entry point and deletes its message only after the event was forwarded or
// quarantined: each event is written at least once, and no message is deleted unwritten.
//
// Reads are bounded by --timeout per run (per refresh with --watch; scale, dlq replay and
// forwarder-dlq by --wait) and every AWS request by the same timeout. An App is used by one
// command run at a time; MeasureLag reads shards concurrently and is safe to call from any
// goroutine; forwarder-dlq replay forwards the events of different customers concurrently.
package kclctl
