package ordered

import (
	"context"
	"errors"
	"fmt"
	"time"

	"golang.org/x/time/rate"

	"github.com/kinesis-events/pipeline/internal/retry"
)

// WriterConfig configures a Writer. The zero value plus a step writes at full speed, retries
// transient and throttled failures without bound and gives up on fatal ones.
type WriterConfig struct {
	// Policy is the retry policy (backoff, attempts, fatal outcomes).
	Policy Policy
	// MaxRecords and MaxBytes cap one call below the Kinesis limits; 0 means the limit. An
	// aggregate counts as one record, at its size.
	MaxRecords, MaxBytes int
	// Aggregation, when on, sends a key's consecutive records as one Kinesis record in the KPL
	// aggregated format whenever several of them wait (Aggregation, Queue); off, the zero value,
	// every record goes out as itself. Readers of the stream must de-aggregate.
	Aggregation Aggregation
	// RecordsPerSecond and BytesPerSecond limit what the Writer sends (a token bucket each, whose
	// burst is one second's worth, which also caps a call); 0 means unlimited. They count what
	// Kinesis counts: an aggregate is one record.
	RecordsPerSecond float64
	BytesPerSecond   int
	// MinAttemptTime, when positive, gives up on the records waiting for a retry (CauseDeadline)
	// instead of waiting, when less than this would be left before ctx's deadline after the wait.
	MinAttemptTime time.Duration
	// After, when set, is called after every step that ctx did not end, with its result and the
	// time; returning true stops the write: every record not written yet is given up on
	// (CauseStopped), and Write returns.
	After func(res Result, now time.Time) (stop bool)
	// Now is the clock of backoffs and rate limits; default time.Now.
	Now func() time.Time
	// Sleep waits d or until ctx ends, returning ctx's error then; default retry.Sleep. Tests pass one
	// that advances their fake clock.
	Sleep func(ctx context.Context, d time.Duration) error
}

// Validate reports every setting that cannot work.
func (c WriterConfig) Validate() error {
	var errs []error
	if err := c.Policy.Backoff.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.Policy.MaxAttempts < 0 {
		errs = append(errs, fmt.Errorf("ordered: MaxAttempts %d is negative", c.Policy.MaxAttempts))
	}
	if c.MaxRecords < 0 || c.MaxRecords > MaxRecords {
		errs = append(errs, fmt.Errorf("ordered: MaxRecords %d not in 0..%d", c.MaxRecords, MaxRecords))
	}
	if c.MaxBytes < 0 || c.MaxBytes > MaxCallBytes {
		errs = append(errs, fmt.Errorf("ordered: MaxBytes %d not in 0..%d", c.MaxBytes, MaxCallBytes))
	}
	if err := c.Aggregation.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.RecordsPerSecond < 0 || (c.RecordsPerSecond > 0 && c.RecordsPerSecond < 1) {
		errs = append(errs, fmt.Errorf("ordered: RecordsPerSecond %v: want 0 (unlimited) or at least 1", c.RecordsPerSecond))
	}
	if c.BytesPerSecond < 0 {
		errs = append(errs, fmt.Errorf("ordered: BytesPerSecond %d is negative", c.BytesPerSecond))
	}
	if c.MinAttemptTime < 0 {
		errs = append(errs, fmt.Errorf("ordered: MinAttemptTime %v is negative", c.MinAttemptTime))
	}
	return errors.Join(errs...)
}

// Writer writes batches of records to one stream through a step, in order per partition key: the
// batch loop of the worker's sink and of DLQ replay, and the forwarder's Lambda path. It owns a
// Queue, the rate limiters and scratch space, so one goroutine uses it at a time; the step may be
// shared.
type Writer[T Item] struct {
	cfg            WriterConfig
	step           Step
	q              *Queue[T]
	records, bytes *rate.Limiter
	maxN, maxBytes int
	batch          []T
	recs           []*Record
}

// NewWriter returns a Writer that makes its calls through step.
func NewWriter[T Item](step Step, cfg WriterConfig) (*Writer[T], error) {
	if step == nil {
		return nil, errors.New("ordered: nil step")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Sleep == nil {
		cfg.Sleep = retry.Sleep
	}
	if cfg.Policy.Backoff.Now == nil {
		cfg.Policy.Backoff.Now = cfg.Now
	}
	w := &Writer[T]{cfg: cfg, step: step, q: NewQueue[T](cfg.Policy, nil, nil), maxN: MaxRecords, maxBytes: MaxCallBytes}
	w.q.agg = cfg.Aggregation
	if cfg.MaxRecords > 0 {
		w.maxN = cfg.MaxRecords
	}
	if cfg.MaxBytes > 0 {
		w.maxBytes = cfg.MaxBytes
	}
	if r := cfg.RecordsPerSecond; r > 0 {
		w.records = rate.NewLimiter(rate.Limit(r), max(1, int(r)))
		w.maxN = min(w.maxN, w.records.Burst())
	}
	if b := cfg.BytesPerSecond; b > 0 {
		w.bytes = rate.NewLimiter(rate.Limit(b), b)
		w.maxBytes = min(w.maxBytes, b)
	}
	return w, nil
}

// Pending returns the records of the current Write not yet written nor given up on.
func (w *Writer[T]) Pending() int { return w.q.Len() }

// Write writes items in order per partition key, each call carrying at most one record per key
// (with Aggregation, that record may be an aggregate of the key's next records), and returns once every record is written (State Written) or given up on (State Failed, with its
// Cause) — nil — or when ctx ends, with ctx's error (records may then be left Pending, and no
// further call is made; a record whose call landed is Written all the same). A record is given up on only by the Policy, MinAttemptTime or After: with
// the zero Policy a transient or throttled failure is retried until ctx ends.
func (w *Writer[T]) Write(ctx context.Context, items []T) error {
	q := w.q
	q.Reset()
	defer func() {
		clear(w.batch[:cap(w.batch)])
		clear(w.recs[:cap(w.recs)])
		q.Reset() // drop the references to items
	}()
	for _, it := range items {
		q.Add(it)
	}
	for q.Len() > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		now := w.cfg.Now()
		q.Promote(now)
		w.batch = q.Take(w.maxN, w.maxBytes, w.batch[:0])
		if len(w.batch) == 0 {
			if err := w.wait(ctx, now); err != nil {
				return err
			}
			continue
		}
		w.recs = w.recs[:0]
		size := 0
		for _, it := range w.batch {
			r := it.Rec().wire()
			w.recs = append(w.recs, r)
			size += r.Size()
		}
		if err := w.waitRate(ctx, len(w.recs), size); err != nil {
			return err
		}
		res := w.step(ctx, w.recs)
		now = w.cfg.Now()
		q.Complete(w.batch, res, now) // a record that landed is Written even if ctx ended meanwhile
		if err := ctx.Err(); err != nil {
			return err
		}
		if w.cfg.After != nil && w.cfg.After(res, now) {
			q.Stop(CauseStopped)
		}
	}
	return nil
}

// wait sleeps until the earliest delayed record is due, or gives up on them when the deadline
// would leave too little time for the attempt.
func (w *Writer[T]) wait(ctx context.Context, now time.Time) error {
	due, ok := w.q.NextDue()
	if !ok {
		return fmt.Errorf("ordered: %d records held, none ready or waiting (a bug)", w.q.Len())
	}
	d := due.Sub(now)
	if dl, has := ctx.Deadline(); has && w.cfg.MinAttemptTime > 0 && time.Until(dl) < d+w.cfg.MinAttemptTime {
		w.q.Stop(CauseDeadline)
		return nil
	}
	return w.cfg.Sleep(ctx, d)
}

// waitRate blocks until n records of size bytes may be sent at the configured rates.
func (w *Writer[T]) waitRate(ctx context.Context, n, size int) error {
	if w.records == nil && w.bytes == nil {
		return nil
	}
	now := w.cfg.Now()
	var delay time.Duration
	if w.records != nil {
		delay = max(delay, w.records.ReserveN(now, min(n, w.records.Burst())).DelayFrom(now))
	}
	if w.bytes != nil {
		delay = max(delay, w.bytes.ReserveN(now, min(size, w.bytes.Burst())).DelayFrom(now))
	}
	if delay > 0 {
		return w.cfg.Sleep(ctx, delay)
	}
	return nil
}
