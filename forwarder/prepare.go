package forwarder

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/kinesis-events/pipeline/event"
	"github.com/kinesis-events/pipeline/internal/ordered"
)

// StageForwarder is the Stage of every quarantine record this package writes.
const StageForwarder = "forwarder"

// MaxLineBytes is the longest input line kept whole in local mode. A longer line cannot become a
// record (1 MiB) and is quarantined as too_large with a truncated original.
const MaxLineBytes = 2 << 20

// maxOriginalBytes bounds the original kept in a quarantine record, so that the record, with the
// original base64-encoded, stays under the 1 MiB Kinesis limit.
const maxOriginalBytes = 700 << 10

// maxTooLargeOriginal bounds the original kept for a too_large input, which no replay can send
// as it is: its first 64 KiB (with its size and SHA-256 in the detail) show what it was. Kept at
// 700 KiB, each such record took most of a second of a quarantine shard's write budget on AWS
// (and seven seconds at make spike's tenth), and every worker's quarantine write to that shard
// waited behind it with its whole batch.
const maxTooLargeOriginal = 64 << 10

// maxQuarantineDetail bounds the human-readable Detail of a quarantine record.
const maxQuarantineDetail = 1024

type lane uint8

const (
	laneRaw lane = iota
	laneQuarantine
	laneBlank // an empty line: nothing to write
)

// input is one event to forward: a Lambda payload or one line of local input.
type input struct {
	data      []byte // the bytes as received; a prefix when truncated
	size      int64  // the full size of the input
	truncated bool
	line      int64  // 1-based line number; 0 for a Lambda invocation
	source    string // input name for quarantine details ("stdin", a file name)
}

// entry is one record to write, with its writer state.
type entry struct {
	lane    lane
	key     string // partition key
	data    []byte
	line    int64
	eventID string
	reason  event.Reason   // quarantine lane only
	orig    []byte         // original input, kept only when failed inputs are written out
	mem     []byte         // the raw record's buffer (data, raw lane); kept when the entry is recycled
	rec     ordered.Record // the writer's view: attempts, outcome (see toWrite)
}

func (e *entry) size() int { return len(e.data) + len(e.key) }

// prepare decides what one input becomes: a raw record or a quarantine record. It never fails: an
// input that cannot be forwarded becomes its quarantine record.
func (f *Forwarder) prepare(in input) *entry {
	e := f.prepareInput(in)
	e.orig = in.data
	return e
}

func (f *Forwarder) prepareInput(in input) *entry {
	now := f.cfg.Now()
	if in.truncated {
		return f.quarantine(in, nil, event.ReasonTooLarge,
			fmt.Sprintf("input of %d bytes exceeds the %d-byte line limit", in.size, MaxLineBytes), now)
	}
	if len(bytes.TrimSpace(in.data)) == 0 {
		return &entry{lane: laneBlank, line: in.line}
	}
	if !utf8.Valid(in.data) {
		return f.quarantine(in, nil, event.ReasonInvalidUTF8, "input is not valid UTF-8", now)
	}
	env, err := decodeEnvelope(in.data)
	if err != nil {
		reason, msg := rejection(err)
		return f.quarantine(in, nil, reason, msg, now)
	}
	return f.prepareEnvelope(in, env, now)
}

// prepareEnvelope builds and checks the raw record for a decoded EventBridge event.
func (f *Forwarder) prepareEnvelope(in input, env envelope, now time.Time) *entry {
	e := newEntry()
	// The record's size, but for escapes in the strings and a forwarded_at past year 9999 (the
	// buffer then grows): the detail, the four strings and 128 bytes of member names and the time.
	if need := len(env.detail) + len(env.detailType) + len(env.source) + len(env.id) + len(env.time) + 128; cap(e.mem) < need {
		// Rounded up to 64 bytes (the runtime's size classes from 512 to 1024 bytes are 64 apart),
		// so that a recycled buffer fits records a little longer than its first. Made with
		// length 0: a buffer taken from fresh memory is not zeroed first.
		e.mem = make([]byte, 0, (need+63)&^63)
	}
	parts := event.RawParts{Type: env.detailType, Source: env.source, BridgeID: env.id, BridgeTime: env.time, ForwardedAt: now}
	data := event.AppendRaw(e.mem[:0], parts, env.detail)
	e.mem = data
	if len(data) > MaxRecordBytes {
		e.recycle()
		return f.quarantine(in, nil, event.ReasonTooLarge,
			fmt.Sprintf("raw record of %d bytes exceeds %d", len(data), MaxRecordBytes), now)
	}
	// Exactly what the worker will decode (event.DecodeRaw's decision, that is event.CheckRaw's on
	// data), minus signature verification: decided from the detail's walk in decodeEnvelope where
	// that walk could decide (env.check), by CheckRaw otherwise.
	customerID, eventID, err := env.check.Decide(data, parts)
	if err != nil {
		e.recycle()
		reason, msg := rejection(err)
		return f.quarantine(in, nil, reason, "detail: "+msg, now)
	}
	if len(data)+len(customerID) > MaxRecordBytes {
		e.recycle()
		return f.quarantine(in, &event.Detail{EventID: eventID, CustomerID: customerID}, event.ReasonTooLarge,
			fmt.Sprintf("raw record of %d bytes plus partition key exceeds %d", len(data), MaxRecordBytes), now)
	}
	if f.pii != nil {
		spans, err := f.pii.scan(in.data)
		if err != nil || len(spans) > 0 {
			e.recycle()
			return f.quarantine(in, &event.Detail{EventID: eventID, CustomerID: customerID}, event.ReasonRawPII,
				"configured PII fields hold values that are not tokens", now)
		}
	}
	e.lane, e.key, e.data, e.line, e.eventID = laneRaw, customerID, data, in.line, eventID
	return e
}

// entryPool holds the entries of records already written, with their record buffers, for the next
// ones: local mode recycles an entry once its queue has finished with it (nothing reads it after
// its PutRecords call has returned: the call's body is a copy), so that a run's memory is mostly
// its read-ahead, reused, rather than a fresh entry and buffer per event, each page of which is
// first touched (and faulted in) once. Buffers above maxPooledRecord are left to the collector.
var entryPool = sync.Pool{New: func() any { return new(entry) }}

const maxPooledRecord = 16 << 10

// newEntry returns an empty entry, recycled when one is free.
func newEntry() *entry { return entryPool.Get().(*entry) }

// recycle gives a finished entry back for reuse, with its record buffer; nothing may use it (or
// its data) afterwards.
func (e *entry) recycle() {
	mem := e.mem[:0]
	if cap(mem) > maxPooledRecord {
		mem = nil
	}
	*e = entry{mem: mem}
	entryPool.Put(e)
}

// rejection splits a decoding error into its reason and message. The event package's errors carry
// field names and sizes, never values.
func rejection(err error) (event.Reason, string) {
	var e *event.Error
	if errors.As(err, &e) {
		return e.Reason, e.Msg
	}
	return event.ReasonBadEnvelope, "undecodable"
}

// quarantine builds the quarantine record for an input. d is the parsed detail when known. With a
// PII policy, the original keeps no raw value at a configured path: those values are replaced by
// Redacted, and an input that cannot be parsed to find them is withheld (only its size and SHA-256
// are kept), since it cannot be shown to be free of them.
func (f *Forwarder) quarantine(in input, d *event.Detail, reason event.Reason, msg string, now time.Time) *entry {
	var b strings.Builder
	if in.line > 0 {
		fmt.Fprintf(&b, "%s:%d: ", clip(in.source, 200), in.line)
	}
	b.WriteString(msg)
	sum := sha256.Sum256(in.data)
	digest := hex.EncodeToString(sum[:])
	orig := in.data
	piiWithheld := false
	if f.pii != nil {
		spans, err := f.pii.scan(in.data)
		switch {
		case err != nil || in.truncated:
			orig, piiWithheld = nil, true
			fmt.Fprintf(&b, "; original withheld (PII policy on and the input cannot be parsed to redact it): %d bytes, sha256 %s", in.size, digest)
		case len(spans) > 0:
			var paths []string
			orig, paths = redact(in.data, spans)
			fmt.Fprintf(&b, "; original redacted: the values at %s were replaced by %s", strings.Join(paths, ", "), Redacted)
		}
	}
	keep := maxOriginalBytes
	if reason == event.ReasonTooLarge {
		keep = maxTooLargeOriginal
	}
	if !piiWithheld && (len(orig) > keep || in.truncated) {
		fmt.Fprintf(&b, "; original truncated to its first %d of %d bytes (sha256 of the %d bytes read: %s)",
			min(len(orig), keep), in.size, len(in.data), digest)
		orig = orig[:min(len(orig), keep)]
	}
	q := event.Quarantine{
		Reason:   reason,
		Detail:   clip(b.String(), maxQuarantineDetail),
		Stage:    StageForwarder,
		At:       now.UTC(),
		Original: orig,
	}
	if d != nil {
		if f.pii == nil || !f.pii.covers("event_id") || event.IsToken(d.EventID) {
			q.EventID = d.EventID
		}
		if f.pii == nil || !f.pii.covers("customer_id") || event.IsToken(d.CustomerID) {
			q.CustomerID = d.CustomerID
		}
	}
	if y := q.At.Year(); y < 0 || y > 9999 { // outside what encoding/json can write
		q.At = time.Time{}
	}
	data, err := json.Marshal(q)
	if err != nil { // cannot happen for strings, a valid time and bytes; never lose the input's fate
		data = event.AppendJSONString([]byte(`{"stage":"forwarder","reason":`), []byte(reason))
		data = append(data, `,"detail":"quarantine record could not be encoded"}`...)
	}
	e := newEntry()
	e.lane, e.key, e.data, e.line, e.eventID, e.reason = laneQuarantine, "q-"+digest[:32], data, in.line, q.EventID, reason
	return e
}

// covers reports whether a configured path is exactly this detail field.
func (p *piiPolicy) covers(field string) bool {
	for _, path := range p.paths {
		if len(path) == 2 && path[1] == field {
			return true
		}
	}
	return false
}
