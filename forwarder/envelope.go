package forwarder

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strconv"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/kinesis-events/pipeline/event"
)

// envelope is the part of an EventBridge event the forwarder uses. detail holds the producer's bytes
// exactly as received.
type envelope struct {
	detailType string
	source     string
	id         string
	time       string
	detail     []byte
}

// maxEnvelopeMembers bounds the top-level keys of an EventBridge event (EventBridge sends 9).
const maxEnvelopeMembers = 64

// decodeEnvelope reads an EventBridge event strictly: exact key names, no duplicate keys, one JSON
// object and nothing after it. The caller has checked UTF-8 validity. Unknown members are ignored.
func decodeEnvelope(b []byte) (envelope, error) {
	var env envelope
	dec := json.NewDecoder(bytes.NewReader(b))
	tok, err := dec.Token()
	if err != nil {
		return env, &event.Error{Reason: event.ReasonNotJSON, Msg: "not JSON: " + syntaxMsg(err)}
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return env, &event.Error{Reason: event.ReasonBadEnvelope, Msg: "top level is not an object"}
	}
	seen := make(map[string]struct{}, 10)
	var haveDetail bool
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return env, &event.Error{Reason: event.ReasonNotJSON, Msg: "not JSON: " + syntaxMsg(err)}
		}
		key, _ := tok.(string)
		if _, dup := seen[key]; dup {
			return env, &event.Error{Reason: event.ReasonDuplicateKey, Msg: "duplicate key " + strconv.Quote(clip(key, 32)) + " in the EventBridge event"}
		}
		seen[key] = struct{}{}
		if len(seen) > maxEnvelopeMembers {
			return env, &event.Error{Reason: event.ReasonBadEnvelope, Msg: "EventBridge event with more than 64 members"}
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return env, &event.Error{Reason: event.ReasonNotJSON, Msg: "not JSON: " + syntaxMsg(err)}
		}
		switch key {
		case "detail-type":
			env.detailType, err = stringMember(key, raw)
		case "source":
			env.source, err = stringMember(key, raw)
		case "id":
			env.id, err = stringMember(key, raw)
		case "time":
			env.time, err = stringMember(key, raw)
		case "detail":
			switch raw[0] {
			case '{':
				env.detail, haveDetail = raw, true
			case 'n':
			default:
				err = &event.Error{Reason: event.ReasonBadField, Msg: "detail is not an object"}
			}
		}
		if err != nil {
			return env, err
		}
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return env, &event.Error{Reason: event.ReasonNotJSON, Msg: "not JSON: " + syntaxMsg(err)}
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return env, &event.Error{Reason: event.ReasonNotJSON, Msg: "trailing data after the event"}
	}
	if !haveDetail {
		return env, &event.Error{Reason: event.ReasonMissingField, Msg: "detail is required"}
	}
	return env, env.validate()
}

// validate applies the limits the worker's event.DecodeRaw applies to the raw envelope, so that
// nothing is forwarded that the worker would reject for its envelope.
func (env envelope) validate() error {
	for _, f := range [...]struct {
		name, v string
		max     int
	}{{"detail-type", env.detailType, event.MaxIDLen}, {"source", env.source, 256}, {"id", env.id, 256}, {"time", env.time, 64}} {
		if len(f.v) > f.max {
			return &event.Error{Reason: event.ReasonBadField, Msg: f.name + " longer than " + strconv.Itoa(f.max) + " bytes"}
		}
		if !utf8.ValidString(f.v) {
			return &event.Error{Reason: event.ReasonInvalidUTF8, Msg: f.name + " is not valid UTF-8"}
		}
	}
	if env.detailType == "" {
		return &event.Error{Reason: event.ReasonMissingField, Msg: "detail-type is required"}
	}
	for _, r := range env.detailType {
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

// stringMember decodes a string member; null counts as absent.
func stringMember(name string, raw json.RawMessage) (string, error) {
	if raw[0] == 'n' {
		return "", nil
	}
	if raw[0] != '"' {
		return "", &event.Error{Reason: event.ReasonBadField, Msg: name + " is not a string"}
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", &event.Error{Reason: event.ReasonNotJSON, Msg: name + ": " + syntaxMsg(err)}
	}
	return s, nil
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

// appendRaw appends the raw-stream record (event.Raw, version event.RawVersion) for env. It is written
// by hand so that the detail bytes go out exactly as received: encoding/json would compact them and
// escape HTML characters, and the detail is what the producer signed.
func appendRaw(dst []byte, env envelope, forwardedAt time.Time) []byte {
	dst = append(dst, `{"v":`...)
	dst = strconv.AppendInt(dst, event.RawVersion, 10)
	dst = append(dst, `,"type":`...)
	dst = appendJSONString(dst, env.detailType)
	dst = append(dst, `,"source":`...)
	dst = appendJSONString(dst, env.source)
	if env.id != "" {
		dst = append(dst, `,"bridge_id":`...)
		dst = appendJSONString(dst, env.id)
	}
	if env.time != "" {
		dst = append(dst, `,"bridge_time":`...)
		dst = appendJSONString(dst, env.time)
	}
	dst = append(dst, `,"forwarded_at":"`...)
	dst = forwardedAt.UTC().AppendFormat(dst, time.RFC3339Nano)
	dst = append(dst, `","detail":`...)
	dst = append(dst, env.detail...)
	return append(dst, '}')
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string. s is valid UTF-8 (the input was checked).
func appendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			dst = append(dst, '\\', c)
		case c < 0x20:
			dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		default:
			dst = append(dst, c)
		}
	}
	return append(dst, '"')
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
