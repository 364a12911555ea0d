package ordered

import (
	"fmt"
	"time"
	"unicode/utf8"
)

// Kinesis PutRecords limits.
const (
	// MaxRecords is the most entries one PutRecords call may carry.
	MaxRecords = 500
	// MaxCallBytes bounds the data plus partition keys of one call.
	MaxCallBytes = 5 << 20
	// MaxRecordBytes bounds the data plus partition key of one record.
	MaxRecordBytes = 1 << 20
	// MaxKeyChars bounds a partition key, in Unicode characters (it must have at least one).
	MaxKeyChars = 256
)

// State is where a Record stands.
type State uint8

// Record states.
const (
	// Pending: not yet written nor given up on.
	Pending State = iota
	// Written: Kinesis accepted it (ShardID and SequenceNumber say where).
	Written
	// Failed: given up on; Cause says why, LastError what the destination said last.
	Failed
)

func (s State) String() string {
	switch s {
	case Pending:
		return "pending"
	case Written:
		return "written"
	case Failed:
		return "failed"
	}
	return fmt.Sprintf("State(%d)", s)
}

// Cause says why a Record was given up on.
type Cause uint8

// Causes of a Failed record.
const (
	CauseNone Cause = iota
	// CauseLimit: the record is over a Kinesis limit (LastError says which); it was never sent.
	CauseLimit
	// CauseFatal: the destination refused it for good (Outcome Fatal) and the Policy does not
	// retry fatal outcomes.
	CauseFatal
	// CauseAttempts: Policy.MaxAttempts failed attempts.
	CauseAttempts
	// CauseDeadline: the next attempt could not start in time before the context's deadline
	// (WriterConfig.MinAttemptTime).
	CauseDeadline
	// CauseEarlier: an earlier record of its key was given up on, so writing this one would put
	// it before that one. It was not sent (again).
	CauseEarlier
	// CauseStopped: the Queue was stopped (Queue.Stop) before it was written.
	CauseStopped
)

func (c Cause) String() string {
	switch c {
	case CauseNone:
		return "none"
	case CauseLimit:
		return "over a Kinesis limit"
	case CauseFatal:
		return "refused by the destination"
	case CauseAttempts:
		return "attempts used up"
	case CauseDeadline:
		return "no time left before the deadline"
	case CauseEarlier:
		return "an earlier record of its key was not written"
	case CauseStopped:
		return "stopped before it was written"
	}
	return fmt.Sprintf("Cause(%d)", c)
}

// Record is one record to write to a stream, and what became of it. The caller sets Key, Data
// and ID; Queue and Stream fill in the rest. A Record is in at most one PutRecords call at a time,
// and only the goroutine driving its Queue touches it while it is pending.
type Record struct {
	// Key is the partition key: 1 to MaxKeyChars characters.
	Key string
	// Data is the payload; Data plus Key is at most MaxRecordBytes. The writer never changes it.
	Data []byte
	// ID names the record in logs (the event id); may be empty.
	ID string

	State State
	Cause Cause // when Failed
	// Outcome is the class of the last attempt.
	Outcome Outcome
	// Attempts counts the failed attempts: calls that carried the record and did not write it,
	// and calls refused before they were made (a breaker).
	Attempts int
	// LastError is what the last failed attempt said: the call's error, or the entry's error code
	// and message. A refused call keeps the destination's own earlier error when there is one.
	LastError    string
	FirstFailure time.Time // of the first failed attempt
	LastFailure  time.Time // of the last failed attempt
	// ShardID and SequenceNumber say where the record landed, once Written.
	ShardID, SequenceNumber string

	due int64 // delayed: earliest next attempt, Unix nanoseconds
	// agg, while the record heads an aggregate (Aggregation), is the Kinesis record that a call
	// carries for it and the records of its key behind it, from its first attempt until the last.
	agg *Record
	// parts, on an aggregate, are the records inside it, in order.
	parts []*Record
	// kq, while a Queue holds the record, is its key's queue there (a *keyQueue[T]), so that
	// Complete finds it without hashing the key again.
	kq any
}

// Size is what the record counts against the Kinesis limits: data plus partition key.
func (r *Record) Size() int { return len(r.Data) + len(r.Key) }

// Records is how many records r stands for: those inside it when it is an aggregate, else 1.
func (r *Record) Records() int {
	if r.parts != nil {
		return len(r.parts)
	}
	return 1
}

// Wire is the record a call carries for r, a record a Queue's Take returned: its aggregate when it
// heads one, else r. A caller that drives a Queue by hand (Take, its own call, Complete) sends
// these.
func (r *Record) Wire() *Record { return r.wire() }

// wire is the record a call carries for r: its aggregate when it heads one, else r.
func (r *Record) wire() *Record {
	if r.agg != nil {
		return r.agg
	}
	return r
}

// Check reports why r cannot be written to Kinesis (a limit it is over), nil when it can.
func (r *Record) Check() error {
	switch {
	case r.Key == "":
		return fmt.Errorf("partition key is empty (Kinesis needs 1 to %d characters)", MaxKeyChars)
	case len(r.Key) > MaxKeyChars && utf8.RuneCountInString(r.Key) > MaxKeyChars:
		return fmt.Errorf("partition key of %d characters is over the Kinesis limit of %d", utf8.RuneCountInString(r.Key), MaxKeyChars)
	case r.Size() > MaxRecordBytes:
		return fmt.Errorf("record of %d bytes (data plus partition key) is over the Kinesis limit of %d", r.Size(), MaxRecordBytes)
	}
	return nil
}

// reset forgets every outcome, as for a record about to be written afresh.
func (r *Record) reset() {
	r.State, r.Cause, r.Attempts = Pending, CauseNone, 0
	r.FirstFailure, r.LastFailure, r.LastError, r.Outcome = time.Time{}, time.Time{}, "", OK
	r.ShardID, r.SequenceNumber = "", ""
	r.due, r.agg, r.kq = 0, nil, nil
}

// failed records one failed attempt at now.
func (r *Record) failed(now time.Time) {
	r.Attempts++
	if r.FirstFailure.IsZero() {
		r.FirstFailure = now
	}
	r.LastFailure = now
}
