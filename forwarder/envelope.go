package forwarder

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strconv"
	"unicode"
	"unicode/utf8"

	"github.com/kinesis-events/pipeline/event"
)

// envelope is the part of an EventBridge event the forwarder uses. detail holds the producer's bytes
// exactly as received.
type envelope struct {
	detailType []byte
	source     []byte
	id         []byte
	time       []byte
	detail     []byte
	// check is the worker's decision on the raw record, taken while the detail was read
	// (event.CheckDetail); prepareEnvelope completes it once the record is built.
	check event.DetailCheck
}

// maxEnvelopeMembers bounds the top-level keys of an EventBridge event (EventBridge sends 9).
const maxEnvelopeMembers = 64

// decodeEnvelope reads an EventBridge event strictly: one JSON object and nothing after it, exact
// key names, no duplicate keys. The caller has checked UTF-8 validity. Unknown members are ignored.
// It validates and reads in one pass: a syntax error anywhere makes the input not_json, even after a
// member that would have been rejected (the first such rejection, in member order, is returned only
// for well-formed JSON), which is what validating the whole input first and then reading its members
// decides (decodeEnvelopeTwoPass in the tests; FuzzDecodeEnvelope holds the two to each other).
func decodeEnvelope(b []byte) (envelope, error) {
	var env envelope
	v := jsonValidator{b: b}
	v.ws()
	if v.i >= len(b) || b[v.i] != '{' {
		if validJSON(b) {
			return env, &event.Error{Reason: event.ReasonBadEnvelope, Msg: "top level is not an object"}
		}
		return env, notJSON(b)
	}
	var (
		seen       [maxEnvelopeMembers][]byte
		nseen      int
		haveDetail bool
		rejected   error // the first member rejected; the rest are only validated
	)
	v.i++ // '{'
	for more := v.open('}'); more; {
		if v.i >= len(b) || b[v.i] != '"' {
			return env, notJSON(b)
		}
		keyStart := v.i
		if !v.str() {
			return env, notJSON(b)
		}
		keyRaw := b[keyStart:v.i]
		v.ws()
		if v.i >= len(b) || b[v.i] != ':' {
			return env, notJSON(b)
		}
		v.i++
		v.ws()
		start := v.i
		var key []byte
		if rejected == nil {
			key = unquote(keyRaw)
		}
		// The detail is walked once, by the event package's check of it (what the worker's
		// decoding will decide), not by the validator as well; the validator takes over where that
		// walk stops at an error, to tell invalid JSON from a detail the worker rejects.
		walked := false
		if rejected == nil && string(key) == "detail" && v.i < len(b) && b[v.i] == '{' {
			var n int
			if n, env.check = event.CheckDetail(b[v.i:]); n > 0 {
				v.i += n
				walked = true
			}
		}
		if !walked && !v.value(1) {
			return env, notJSON(b)
		}
		if rejected == nil {
			rejected = env.member(key, b[start:v.i], &seen, &nseen, &haveDetail)
		}
		var ok bool
		if more, ok = v.sep('}'); !ok {
			return env, notJSON(b)
		}
	}
	v.ws()
	if v.i != len(b) {
		return env, notJSON(b)
	}
	if rejected != nil {
		return env, rejected
	}
	if !haveDetail {
		return env, &event.Error{Reason: event.ReasonMissingField, Msg: "detail is required"}
	}
	return env, env.validate()
}

// member applies one top-level member (its unescaped key, its raw value) to env: a duplicate key,
// the 65th member, or a bad value of a member the forwarder uses is returned.
func (env *envelope) member(key, raw []byte, seen *[maxEnvelopeMembers][]byte, nseen *int, haveDetail *bool) error {
	for _, k := range seen[:*nseen] {
		if bytes.Equal(k, key) {
			return &event.Error{Reason: event.ReasonDuplicateKey, Msg: "duplicate key " + strconv.Quote(clip(string(key), 32)) + " in the EventBridge event"}
		}
	}
	if *nseen == maxEnvelopeMembers {
		return &event.Error{Reason: event.ReasonBadEnvelope, Msg: "EventBridge event with more than 64 members"}
	}
	seen[*nseen] = key
	*nseen++
	var err error
	switch string(key) {
	case "detail-type":
		env.detailType, err = stringMember("detail-type", raw)
	case "source":
		env.source, err = stringMember("source", raw)
	case "id":
		env.id, err = stringMember("id", raw)
	case "time":
		env.time, err = stringMember("time", raw)
	case "detail":
		switch raw[0] {
		case '{':
			env.detail, *haveDetail = raw, true
		case 'n':
		default:
			err = &event.Error{Reason: event.ReasonBadField, Msg: "detail is not an object"}
		}
	}
	return err
}

// notJSON is the rejection of input that is not one JSON value.
func notJSON(b []byte) error {
	err := json.Unmarshal(b, new(json.RawMessage)) // only to locate the error
	return &event.Error{Reason: event.ReasonNotJSON, Msg: "not JSON: " + syntaxMsg(err)}
}

// unquote returns the string of a valid JSON string literal, unescaped: a slice of it when it has no
// escapes.
func unquote(lit []byte) []byte {
	if bytes.IndexByte(lit, '\\') < 0 {
		return lit[1 : len(lit)-1 : len(lit)-1]
	}
	var s string
	if err := json.Unmarshal(lit, &s); err != nil { // validated: cannot fail
		return lit[1 : len(lit)-1 : len(lit)-1]
	}
	return []byte(s)
}

// validate applies the limits the worker's event.DecodeRaw applies to the raw envelope, so that
// nothing is forwarded that the worker would reject for its envelope.
func (env envelope) validate() error {
	for _, f := range [...]struct {
		name string
		v    []byte
		max  int
	}{{"detail-type", env.detailType, event.MaxIDLen}, {"source", env.source, 256}, {"id", env.id, 256}, {"time", env.time, 64}} {
		if len(f.v) > f.max {
			return &event.Error{Reason: event.ReasonBadField, Msg: f.name + " longer than " + strconv.Itoa(f.max) + " bytes"}
		}
		if !utf8.Valid(f.v) {
			return &event.Error{Reason: event.ReasonInvalidUTF8, Msg: f.name + " is not valid UTF-8"}
		}
	}
	if len(env.detailType) == 0 {
		return &event.Error{Reason: event.ReasonMissingField, Msg: "detail-type is required"}
	}
	for _, r := range string(env.detailType) {
		if !unicode.IsPrint(r) || unicode.IsSpace(r) {
			return &event.Error{Reason: event.ReasonBadField, Msg: "detail-type has a non-printable or space character"}
		}
	}
	if len(env.detail) == 0 || string(env.detail) == "null" {
		return &event.Error{Reason: event.ReasonMissingField, Msg: "detail is required"}
	}
	if env.detail[0] != '{' {
		return &event.Error{Reason: event.ReasonBadField, Msg: "detail is not an object"}
	}
	return nil
}

// stringMember decodes a string member (a slice of raw when it has no escapes); null counts as
// absent.
func stringMember(name string, raw []byte) ([]byte, error) {
	if raw[0] == 'n' {
		return nil, nil
	}
	if raw[0] != '"' {
		return nil, &event.Error{Reason: event.ReasonBadField, Msg: name + " is not a string"}
	}
	if bytes.IndexByte(raw, '\\') < 0 {
		return raw[1 : len(raw)-1 : len(raw)-1], nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, &event.Error{Reason: event.ReasonNotJSON, Msg: name + ": " + syntaxMsg(err)}
	}
	return []byte(s), nil
}

// syntaxMsg describes a JSON error without quoting the input (it may hold PII).
func syntaxMsg(err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return "syntax error at byte " + strconv.FormatInt(se.Offset, 10)
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return "unexpected end of input"
	}
	return "malformed"
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
