// Package kinesisfake is the project's one in-memory Kinesis PutRecords fake, for tests only: the
// tests of the writer (internal/ordered), the worker's sink (processors), the forwarder, kclctl's
// DLQ replays, the audit and the log-leak test all script the same fake instead of each writing its
// own. (processors' benchmarks keep a putter that answers without any bookkeeping: it is the
// measured floor.)
//
// What it enforces. Every call is checked against the service's request limits (1 to 500
// entries, 5 MiB per request, 1 MiB per record counting its partition key, a key of 1 to 256
// characters) and against the project's per-key rule: a partition key appears at most once in a
// call, and never in two calls to the same stream that are in flight at the same time. A breach of
// a service limit is rejected (a ValidationException, or an InvalidArgumentException for a record
// whose data fits but not with its key, nothing written) and recorded; contract_test.go runs the
// same calls against kinesalite, which refuses what the fake refuses (it does not count the key in
// a record's size, the one limit only the fake checks). A breach of the per-key rule is what
// the real service would accept, so the call goes through and the breach is recorded. Recorded
// breaches are read with Violations or CheckViolations; a test that writes through the fake and
// never looks at them cannot fail on them.
//
// What a test scripts (set the fields before the first call, or through Set while calls run):
// CallErr fails a call as a whole before anything is written, EntryErr fails single entries with
// an error code, LoseAnswer writes a call's records and then fails it as if its answer had been
// cut off (the unknown outcome, noted with internal/ambiguous as the SDK middleware would),
// OnCall runs at the start of every call, Gate and Latency hold calls in flight, Streams limits
// the streams that exist, and FullBatch flags a short call sent alongside another in flight.
//
// What it counts: calls (in all and per stream), the records and bytes of every call, calls in
// flight and their maximum, and per record payload the calls that carried it. Accepted records are
// kept per stream in write order with the shard id and sequence number the call answered.
//
// Concurrency: a Fake is safe for concurrent calls; the scripting hooks run on the caller's
// goroutine, EntryErr and LoseAnswer with the fake's lock held (they must not call the fake), the
// others without it.
package kinesisfake
