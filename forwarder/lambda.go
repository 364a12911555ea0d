package forwarder

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/kinesis-events/pipeline/event"
)

// Outcome is what happened to one event delivered to Handle or Invoke.
type Outcome struct {
	Status         string       `json:"status"` // StatusForwarded or StatusQuarantined
	Reason         event.Reason `json:"reason,omitempty"`
	EventID        string       `json:"event_id,omitempty"`
	Stream         string       `json:"stream"`
	ShardID        string       `json:"shard_id,omitempty"`
	SequenceNumber string       `json:"sequence_number,omitempty"`
}

// Outcome statuses.
const (
	StatusForwarded   = "forwarded"
	StatusQuarantined = "quarantined"
)

// ErrNotWritten is returned (wrapped) by Handle and Invoke when the event could be neither forwarded
// nor quarantined within the attempt budget or the invocation deadline. The Lambda runtime reports
// it, and EventBridge delivers the event again.
var ErrNotWritten = errors.New("event not written")

// Invoke implements the aws-lambda-go lambda.Handler interface, so lambda.Start(f) hands it the
// EventBridge event's bytes untouched: they are decoded strictly here (exact keys, no duplicates),
// which the SDK's reflection handler would not do. An event that cannot be forwarded is quarantined
// and Invoke returns its Outcome with a nil error (retrying bad input is pointless); an error means
// Kinesis did not take the record and the invocation should be retried.
func (f *Forwarder) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	o, err := f.handle(ctx, f.prepare(newInput(payload, 0, "")))
	if err != nil {
		return nil, err
	}
	return json.Marshal(o)
}

// Handle is the typed Lambda handler: lambda.Start(f.Handle) works too. Its detail is forwarded
// verbatim, as Invoke does; the envelope fields are checked against the same limits. Prefer Invoke
// (or lambda.Start(f)), which also catches duplicate and mis-cased envelope keys that decoding into a
// struct hides.
func (f *Forwarder) Handle(ctx context.Context, ev event.BridgeEvent) (Outcome, error) {
	return f.handle(ctx, f.prepareEvent(ev, 0, ""))
}

// prepareEvent is prepare for an event already decoded into a struct: the detail goes out verbatim;
// the original kept for a quarantine record is the event re-encoded.
func (f *Forwarder) prepareEvent(ev event.BridgeEvent, line int64, source string) *entry {
	now := f.cfg.Now()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(ev); err != nil { // only a detail that is not JSON fails to encode
		in := newInput(ev.Detail, line, source)
		e := f.quarantine(in, nil, event.ReasonNotJSON, "detail is not JSON", now)
		e.orig = in.data
		return e
	}
	in := newInput(bytes.TrimSpace(buf.Bytes()), line, source)
	if in.truncated {
		return f.prepare(in)
	}
	env := envelope{detailType: []byte(ev.DetailType), source: []byte(ev.Source), id: []byte(ev.ID), time: []byte(ev.Time), detail: bytes.TrimSpace(ev.Detail)}
	var e *entry
	if err := env.validate(); err != nil {
		reason, msg := rejection(err)
		e = f.quarantine(in, nil, reason, msg, now)
	} else {
		e = f.prepareEnvelope(in, env, now)
	}
	e.orig = in.data
	return e
}

// newInput wraps one event's bytes, keeping only a prefix of an input too long to forward.
func newInput(b []byte, line int64, source string) input {
	in := input{data: b, size: int64(len(b)), line: line, source: source}
	if len(b) > MaxLineBytes {
		in.data, in.truncated = b[:maxOriginalBytes], true
	}
	return in
}

// handle writes one prepared entry with bounded retries and records the outcome.
func (f *Forwarder) handle(ctx context.Context, e *entry) (Outcome, error) {
	f.stats.read.Add(1)
	o := Outcome{Status: StatusForwarded, EventID: e.eventID, Stream: f.cfg.RawStream}
	if e.lane == laneQuarantine {
		o.Status, o.Reason, o.Stream = StatusQuarantined, e.reason, f.cfg.QuarantineStream
	}
	if e.lane == laneBlank {
		e = f.quarantine(input{}, nil, event.ReasonNotJSON, "empty event", f.cfg.Now())
		o.Status, o.Reason, o.Stream = StatusQuarantined, e.reason, f.cfg.QuarantineStream
	}
	l := laneRaw
	if o.Stream == f.cfg.QuarantineStream {
		l = laneQuarantine
	}
	shard, seq, err := f.writeOne(ctx, l, e)
	if err != nil {
		f.stats.failed.Add(1)
		f.log.Error("event not written", zap.String("stream", o.Stream), zap.String("event_id", e.eventID),
			zap.String("reason", string(e.reason)), zap.Int("attempts", e.rec.Attempts), zap.Error(err))
		return o, fmt.Errorf("%w to %s: %w", ErrNotWritten, o.Stream, err)
	}
	o.ShardID, o.SequenceNumber = shard, seq
	f.countWritten(e)
	if e.lane == laneQuarantine {
		f.log.Warn("event quarantined", zap.String("reason", string(e.reason)), zap.String("event_id", e.eventID))
	}
	return o, nil
}

// countWritten records a written entry in the stats.
func (f *Forwarder) countWritten(e *entry) {
	if e.lane == laneQuarantine {
		f.stats.quarantined.Add(1)
		return
	}
	f.stats.forwarded.Add(1)
}

// minAttemptTime is the least time worth starting another attempt with before a deadline.
const minAttemptTime = 100 * time.Millisecond
