// Package forwarder is the thin edge between EventBridge and the raw Kinesis stream.
//
// It turns one EventBridge event (Lambda) or one NDJSON line (local mode) into either a raw record
// (event.Raw, partition key = detail.customer_id, the producer's detail bytes verbatim) written to the
// raw stream, or a quarantine record (event.Quarantine, Stage "forwarder", a stable event.Reason)
// written to the quarantine stream. It accepts exactly what the worker's event.DecodeRaw accepts, minus
// signature verification and dedupe, which stay with the worker; what the worker would reject anyway
// is quarantined here, at the edge, with its reason and the untouched original. With a PII policy
// configured (Config.PIIPaths), a detail whose configured fields hold anything but tokens is
// quarantined with event.ReasonRawPII, and the quarantine record carries the original with those
// values replaced by "[redacted]".
//
// Delivery semantics: at least once. Nothing is dropped silently: every input is forwarded,
// quarantined, or reported as failed (Handle returns an error, so EventBridge retries; ForwardStream
// counts it in Result.Failed and returns ErrNotForwarded). Every write goes through the project's
// ordered writer (internal/ordered): a PutRecords entry that fails is retried alone, with bounded
// attempts (Config.MaxAttempts) and jittered backoff, and one that Kinesis refuses for good (a
// missing stream, a KMS key that is disabled) is not retried; a write whose outcome is unknown
// (timeout) is retried, so a record can appear twice, which the worker's dedupe absorbs (counted in
// Stats.Unknown).
//
// Order: local mode keeps at most one record per partition key in flight at any time, across
// concurrent batches and retries (an ordered.Queue per stream), so a customer's later event is never
// written before an earlier one. When an event of a customer finally fails, that customer's later events in the same run are
// failed too rather than written out of order (see Result.FailedLines and StreamOptions.FailedOut).
//
// Concurrency: a Forwarder is safe for concurrent use; Handle may run concurrently with itself.
// ForwardStream/ForwardBatch runs are independent of each other; overlapping runs do not order
// events of one customer against each other, so a caller that needs order runs them one after the
// other.
//
// Metrics: the counts of Stats. Local mode prints them (--progress lines and the summary line); on
// the Lambda path (Command under a Lambda runtime) the handler is EMF, which writes them as
// CloudWatch embedded-metric-format lines (one at once for an invocation that quarantined, failed,
// retried or was throttled; clean ones gathered for up to FORWARDER_METRICS_EVERY), since a Lambda
// process has no scrape endpoint. Neither mode serves Prometheus metrics.
package forwarder
