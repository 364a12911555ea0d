package ordered

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"go.uber.org/zap"

	"github.com/kinesis-events/pipeline/internal/ambiguous"
)

// Putter is the one Kinesis call the writer makes. *kinesis.Client implements it; install
// ambiguous.Middleware("PutRecords") on it so attempts the SDK retries on its own are seen.
type Putter interface {
	PutRecords(ctx context.Context, in *kinesis.PutRecordsInput, optFns ...func(*kinesis.Options)) (*kinesis.PutRecordsOutput, error)
}

// Counter is a count a Stream adds to (prometheus.Counter implements it).
type Counter interface{ Add(float64) }

// Observer takes one observation (prometheus.Observer implements it).
type Observer interface{ Observe(float64) }

// Metrics are where a Stream counts its calls; every field is optional.
type Metrics struct {
	// Calls counts PutRecords calls made.
	Calls Counter
	// Errors counts calls that failed as a whole (not those ended by the caller's context).
	Errors Counter
	// Retries counts entries sent again after a failed attempt.
	Retries Counter
	// Throttles counts entries refused for throughput (every entry of a throttled call).
	Throttles Counter
	// Unknown counts the entries sent in attempts whose outcome is unknown, once per such attempt:
	// the most byte-identical extra copies the calls can have left in the stream.
	Unknown Counter
	// Aggregated counts the records sent inside aggregates (Aggregation), every attempt.
	Aggregated Counter
	// Entries observes the entries of every call (an aggregate is one entry). The other counts
	// count records: an aggregate counts as the records inside it.
	Entries Observer
	// Seconds observes every call's latency.
	Seconds Observer
}

// LogUnknownOutcome is the message of the warning a Stream logs for the records of a call in
// which attempts ended with an unknown outcome. Its fields: stream, records (records times
// attempts: the most extra copies the call can have written), attempts, event_ids (the IDs of the
// first 50 records) and final_error, plus the fields of the Stream's logger (the worker adds
// shard). internal/fleet sums "records" over the worker logs; keep the text and the field stable.
const LogUnknownOutcome = "write outcome unknown, records sent again may appear twice"

// maxLoggedIDs bounds the event ids one unknown-outcome warning lists.
const maxLoggedIDs = 50

// Stream is one destination stream: its client, its metrics and the single-call step. Safe for
// concurrent use; every call carries its own records.
type Stream struct {
	name string
	kin  Putter
	log  *zap.Logger
	m    Metrics
}

// NewStream returns the step for stream name through kin. log (nil: none) gets the
// unknown-outcome warnings.
func NewStream(kin Putter, name string, log *zap.Logger, m Metrics) *Stream {
	if log == nil {
		log = zap.NewNop()
	}
	return &Stream{name: name, kin: kin, log: log, m: m}
}

// Name is the stream's name.
func (s *Stream) Name() string { return s.name }

// WithLogger returns a copy of s that logs to log (the same client and metrics), for example one
// that carries the source shard.
func (s *Stream) WithLogger(log *zap.Logger) *Stream {
	c := *s
	if log != nil {
		c.log = log
	}
	return &c
}

// Step makes one PutRecords call (or decides not to) for recs, at most one record per partition
// key (an aggregate is one record), and reports each record's outcome in the record (Outcome, LastError, and ShardID and
// SequenceNumber when written). Stream.Put is the step; a wrapper (a circuit breaker) may stand in
// front of it.
type Step func(ctx context.Context, recs []*Record) Result

// Result sums up one step. Each record's own outcome is in the record. Its counts are of records:
// an aggregate counts as the records inside it, all with its outcome.
type Result struct {
	// Err is the call's error when it failed as a whole (every record failed with Class).
	Err error
	// Class is Err's class; OK when the call was answered.
	Class Outcome
	// Refused says that no call was made (Refuse).
	Refused bool
	// Sent counts the records the call carried; Written and Failed split the records of the step.
	Sent, Written, Failed int
	// Throttled counts the failed records that were throttled.
	Throttled int
	// Retried counts the records sent again after a failed attempt.
	Retried int
	// Unknown counts the records sent in attempts whose outcome is unknown, once per such attempt.
	Unknown int
}

// Progress reports whether the step wrote at least one record.
func (r Result) Progress() bool { return r.Written > 0 }

// OnlyThrottled reports whether records failed and every one of them was throttled: the
// destination is busy, not broken.
func (r Result) OnlyThrottled() bool { return r.Failed > 0 && r.Throttled == r.Failed }

// ErrCallLimits is returned (wrapped) in a Result whose records together exceed a PutRecords
// call's limits: a caller's bug, never sent.
var ErrCallLimits = errors.New("records over the limits of one PutRecords call")

// Refuse is the Result of a step that made no call (a circuit breaker refused it): every record
// failed with Retry and err, except that a record keeps the destination's own earlier error.
func Refuse(recs []*Record, err error) Result {
	msg := err.Error()
	for _, r := range recs {
		r.Outcome = Retry
		if r.LastError == "" {
			r.LastError = msg
		}
	}
	return Result{Err: err, Class: Retry, Refused: true, Failed: records(recs)}
}

// records counts the records recs stand for (Record.Records).
func records(recs []*Record) int {
	n := 0
	for _, r := range recs {
		n += r.Records()
	}
	return n
}

var entryPool = sync.Pool{New: func() any { s := make([]types.PutRecordsRequestEntry, 0, MaxRecords); return &s }}

// Put is the step: one PutRecords call for recs. A record over a Kinesis limit is not sent and
// fails Fatal (its Check error in LastError, Cause CauseLimit); records that together exceed one
// call's limits are not sent at all (ErrCallLimits). Attempts of the call whose outcome is unknown
// are counted and logged (LogUnknownOutcome), and turn a failed call's Retry into Unknown.
func (s *Stream) Put(ctx context.Context, recs []*Record) Result {
	var res Result
	if len(recs) == 0 {
		return res
	}
	send := recs
	for i, r := range recs {
		if err := r.Check(); err != nil {
			if len(send) == len(recs) {
				send = append(make([]*Record, 0, len(recs)), recs[:i]...)
			}
			r.Outcome, r.Cause, r.LastError = Fatal, CauseLimit, err.Error()
			res.Failed += r.Records()
			continue
		}
		if len(send) < len(recs) {
			send = append(send, r)
		}
	}
	if len(send) == 0 {
		return res
	}
	size := 0
	for _, r := range send {
		size += r.Size()
	}
	if len(send) > MaxRecords || size > MaxCallBytes {
		err := fmt.Errorf("%w: %d records, %d bytes (at most %d and %d)", ErrCallLimits, len(send), size, MaxRecords, MaxCallBytes)
		for _, r := range send {
			r.Outcome, r.LastError = Fatal, err.Error()
		}
		res.Err, res.Class = err, Fatal
		res.Failed += records(send)
		return res
	}

	if err := ctx.Err(); err != nil { // ended while the call was being prepared: make no call
		for _, r := range send {
			r.Outcome, r.LastError = Retry, err.Error()
		}
		res.Err, res.Class = err, Retry
		res.Failed += records(send)
		return res
	}
	ep := entryPool.Get().(*[]types.PutRecordsRequestEntry)
	entries := (*ep)[:0]
	aggregated := 0
	for _, r := range send {
		entries = append(entries, types.PutRecordsRequestEntry{Data: r.Data, PartitionKey: &r.Key})
		n := r.Records()
		res.Sent += n
		if r.Attempts > 0 {
			res.Retried += n
		}
		if r.parts != nil {
			aggregated += n
		}
	}
	add(s.m.Calls, 1)
	add(s.m.Retries, res.Retried)
	add(s.m.Aggregated, aggregated)
	if s.m.Entries != nil {
		s.m.Entries.Observe(float64(len(entries)))
	}
	var start time.Time
	if s.m.Seconds != nil {
		start = time.Now()
	}
	cctx, tracker := ambiguous.Track(ctx)
	out, err := s.kin.PutRecords(cctx, &kinesis.PutRecordsInput{StreamName: &s.name, Records: entries})
	if s.m.Seconds != nil {
		s.m.Seconds.Observe(time.Since(start).Seconds())
	}
	clear(entries) // drop the references to the records' data
	*ep = entries[:0]
	entryPool.Put(ep)

	unknown := tracker.Unknown()
	if err == nil && len(out.Records) != len(send) {
		// A 200 whose body does not match the request: the records may have landed.
		err = fmt.Errorf("PutRecords answered %d entries for %d", len(out.Records), len(send))
		unknown = max(unknown, 1)
	}
	if unknown > 0 {
		res.Unknown = res.Sent * unknown
		s.unsure(send, res.Sent, unknown, err)
	}
	if err != nil {
		class := Classify(err)
		if class == Retry && unknown > 0 {
			class = Unknown
		}
		if ctx.Err() == nil {
			add(s.m.Errors, 1)
		}
		msg := err.Error()
		for _, r := range send {
			r.Outcome, r.LastError = class, msg
		}
		res.Err, res.Class = err, class
		res.Failed += res.Sent
		if class == Throttled {
			res.Throttled = res.Sent
			add(s.m.Throttles, res.Sent)
		}
		return res
	}
	for k, e := range out.Records {
		r := send[k]
		if e.ErrorCode == nil || *e.ErrorCode == "" {
			r.Outcome = OK
			if e.ShardId != nil {
				r.ShardID = *e.ShardId
			}
			if e.SequenceNumber != nil {
				r.SequenceNumber = *e.SequenceNumber
			}
			res.Written += r.Records()
			continue
		}
		r.Outcome = ClassifyCode(*e.ErrorCode)
		r.LastError = *e.ErrorCode
		if e.ErrorMessage != nil && *e.ErrorMessage != "" {
			r.LastError += ": " + *e.ErrorMessage
		}
		res.Failed += r.Records()
		if r.Outcome == Throttled {
			res.Throttled += r.Records()
		}
	}
	add(s.m.Throttles, res.Throttled)
	return res
}

// unsure logs the records of a call (sent of them, those inside aggregates included) in which
// attempts ended with an unknown outcome, and counts them once per such attempt: each may have
// landed, and every later attempt may add a copy.
func (s *Stream) unsure(recs []*Record, sent, attempts int, err error) {
	ids := make([]string, 0, min(sent, maxLoggedIDs))
	for _, r := range recs {
		if r.parts == nil {
			ids = append(ids, r.ID)
		}
		for _, p := range r.parts {
			ids = append(ids, p.ID)
		}
		if len(ids) >= maxLoggedIDs {
			ids = ids[:maxLoggedIDs]
			break
		}
	}
	n := sent * attempts
	add(s.m.Unknown, n)
	s.log.Warn(LogUnknownOutcome, zap.String("stream", s.name), zap.Int("records", n), zap.Int("attempts", attempts),
		zap.Strings("event_ids", ids), zap.NamedError("final_error", err))
}

func add(c Counter, n int) {
	if c != nil && n != 0 {
		c.Add(float64(n))
	}
}
