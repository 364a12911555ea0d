package forwarder

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/kinesis-events/pipeline/internal/names"
)

// Kinesis limits for one PutRecords call and one record (data plus partition key).
const (
	MaxBatchRecords = 500
	MaxBatchBytes   = 5 << 20
	// MaxRecordBytes is the largest record, data plus partition key, the forwarder writes.
	MaxRecordBytes = 1 << 20
)

// Default stream names: the ones of internal/names, which defines them for every component.
const (
	DefaultRawStream        = names.RawStream
	DefaultQuarantineStream = names.QuarantineStream
)

// Config configures a Forwarder. The zero value plus defaults is usable: see withDefaults.
type Config struct {
	// RawStream receives forwarded events; default names.RawStream.
	RawStream string
	// QuarantineStream receives what cannot be forwarded; default names.QuarantineStream.
	QuarantineStream string

	// MaxAttempts bounds the PutRecords attempts per record, the first included; default 5.
	MaxAttempts int
	// MinBackoff and MaxBackoff bound the jittered exponential wait between attempts of one record;
	// defaults 50ms and 2s. Lambda invocations also stop retrying before their deadline.
	MinBackoff, MaxBackoff time.Duration

	// BatchSize caps records per PutRecords call in local mode, 1..500; default 500.
	BatchSize int
	// BatchBytes caps data plus partition keys per PutRecords call, up to 5 MiB; default 5 MiB.
	BatchBytes int
	// Concurrency is the number of PutRecords calls in flight at once in local mode; default 4.
	Concurrency int
	// MaxPending bounds the events read ahead and not yet written in local mode (memory bound);
	// default 8 * BatchSize * Concurrency. The read-ahead fills BatchSize * Concurrency at least;
	// past that it grows towards MaxPending only while what it reads can go out soon (see
	// runState.canAccept): an event queued behind two or more of its customer's cannot go out for
	// two round trips at least. With AggregateKeys it grows to MaxPending, since such events go
	// out together in their customer's next record.
	MaxPending int
	// MaxPendingBytes bounds the bytes of those events; default 64 MiB.
	MaxPendingBytes int
	// AggregateKeys, in local mode, packs a customer's events that wait behind its one record in
	// flight into one raw-stream record in the KPL aggregated format (ordered.DefaultAggregation),
	// so a customer is not capped at one event per PutRecords round trip. The worker de-aggregates
	// (the KCL does, and it reads parents' tails the same way) and checkpoints an aggregate only
	// once every event inside it is handled. Quarantine records are never aggregated. Lambda mode
	// writes each invocation's events plainly.
	AggregateKeys bool
	// DrainTimeout is how long in-flight PutRecords calls may finish after the run's context is
	// cancelled, so the final counts are exact; default 10s.
	DrainTimeout time.Duration

	// PIIPaths turns the PII policy on when not empty: dotted paths inside the detail (for example
	// "properties.email", "customer_id") whose values must be tokens (event.IsToken), null or "".
	// An event with anything else there is quarantined with event.ReasonRawPII.
	PIIPaths []string

	// Logger gets warnings and errors; never event payloads or field values. Default zap.NewNop().
	Logger *zap.Logger
	// Now is the clock for forwarded_at and quarantine timestamps; default time.Now.
	Now func() time.Time
}

// withDefaults returns c with every zero field set to its default: the one place they are defined.
func (c Config) withDefaults() Config {
	if c.RawStream == "" {
		c.RawStream = names.RawStream
	}
	if c.QuarantineStream == "" {
		c.QuarantineStream = names.QuarantineStream
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = 5
	}
	if c.MinBackoff == 0 {
		c.MinBackoff = 50 * time.Millisecond
	}
	if c.MaxBackoff == 0 {
		c.MaxBackoff = 2 * time.Second
	}
	if c.BatchSize == 0 {
		c.BatchSize = MaxBatchRecords
	}
	if c.BatchBytes == 0 {
		c.BatchBytes = MaxBatchBytes
	}
	if c.Concurrency == 0 {
		c.Concurrency = 4
	}
	if c.MaxPending == 0 {
		c.MaxPending = 8 * c.BatchSize * c.Concurrency
	}
	if c.MaxPendingBytes == 0 {
		c.MaxPendingBytes = 64 << 20
	}
	if c.DrainTimeout == 0 {
		c.DrainTimeout = 10 * time.Second
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Validate reports every invalid setting at once. It is pure and applies no defaults: a zero value
// means its default and is valid. New validates cfg with its defaults applied, which also catches a
// setting that conflicts only with another's default.
func (c Config) Validate() error {
	var errs []error
	if c.RawStream != "" && c.RawStream == c.QuarantineStream {
		errs = append(errs, fmt.Errorf("raw and quarantine streams are both %q", c.RawStream))
	}
	if c.MaxAttempts < 0 {
		errs = append(errs, fmt.Errorf("MaxAttempts %d < 1", c.MaxAttempts))
	}
	if c.MinBackoff < 0 || c.MaxBackoff < 0 || (c.MinBackoff > 0 && c.MaxBackoff > 0 && c.MaxBackoff < c.MinBackoff) {
		errs = append(errs, fmt.Errorf("backoff bounds %v..%v", c.MinBackoff, c.MaxBackoff))
	}
	if c.BatchSize < 0 || c.BatchSize > MaxBatchRecords {
		errs = append(errs, fmt.Errorf("BatchSize %d not in 1..%d", c.BatchSize, MaxBatchRecords))
	}
	if c.BatchBytes != 0 && (c.BatchBytes < MaxRecordBytes || c.BatchBytes > MaxBatchBytes) {
		errs = append(errs, fmt.Errorf("BatchBytes %d not in %d..%d", c.BatchBytes, MaxRecordBytes, MaxBatchBytes))
	}
	if c.Concurrency < 0 || c.Concurrency > 64 {
		errs = append(errs, fmt.Errorf("concurrency %d (Concurrency) not in 1..64", c.Concurrency))
	}
	if c.MaxPending < 0 || (c.MaxPending > 0 && c.BatchSize > 0 && c.MaxPending < c.BatchSize) {
		errs = append(errs, fmt.Errorf("MaxPending %d < BatchSize %d", c.MaxPending, c.BatchSize))
	}
	if c.MaxPendingBytes != 0 && c.MaxPendingBytes < MaxRecordBytes {
		errs = append(errs, fmt.Errorf("MaxPendingBytes %d < %d", c.MaxPendingBytes, MaxRecordBytes))
	}
	if c.DrainTimeout < 0 {
		errs = append(errs, fmt.Errorf("DrainTimeout %v < 0", c.DrainTimeout))
	}
	if _, err := parsePIIPaths(c.PIIPaths); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// parsePIIPaths splits dotted detail paths; "properties.email" becomes [detail properties email],
// rooted at the EventBridge event so one walk covers the whole input.
func parsePIIPaths(paths []string) ([][]string, error) {
	var out [][]string
	for _, p := range paths {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		parts := strings.Split(p, ".")
		for _, s := range parts {
			if s == "" {
				return nil, fmt.Errorf("PII path %q has an empty segment", p)
			}
		}
		out = append(out, append([]string{"detail"}, parts...))
	}
	return out, nil
}
