// Package kclctl is the operator CLI of the worker fleet (cmd/kclctl): a thin client over the
// checkpoint package's read-only inspection and the Kinesis API, printing human tables by default,
// JSON with --json, refreshing with --watch, and exiting with codes scripts can rely on (ExitOK,
// ExitError, ExitUsage, ExitWarnings).
//
// Commands only read, except where a command's help says otherwise; reads are bounded by --timeout
// per run (per refresh with --watch) and every AWS request by the same timeout. An App is used by one
// command run at a time; MeasureLag reads shards concurrently and is safe to call from any goroutine.
package kclctl
