// Package loadgen generates synthetic, signed customer events as NDJSON EventBridge events, for demos,
// benchmarks and end-to-end tests.
//
// Output is a pure function of Config (seed, start time, ratios, keys): the same Config yields the same
// bytes. Each valid event has a unique event_id, a tokenized customer_id (never raw PII) and a
// per-customer seq that starts at 1 and is strictly consecutive. On request the stream also contains
// natural duplicates (an earlier line re-emitted verbatim), conflicting duplicates (an earlier event_id
// with different, correctly signed content), events displaced behind a later event of the same customer
// (by a bounded number of lines) and malformed inputs of several kinds. The Manifest records every unique
// valid event and counts everything else, so a test can check exactly-once delivery and per-customer
// order against what a pipeline delivered.
//
// A Generator is not safe for concurrent use: one goroutine calls Next (or ranges over All, or calls
// Run). Manifest may be called between calls of Next. It does no I/O; Run paces lines to Config.Rate, or
// to a Profile (a rate over time: ramps, a spike; each line is due at a fixed offset from the start), and
// hands them to a caller's function. Config.HotRate makes customer 1 a hot customer at a fixed rate
// whatever the total rate (the manifest names it).
package loadgen
