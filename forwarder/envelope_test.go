package forwarder

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/kinesis-events/pipeline/event"
)

// decodeEnvelopeTwoPass is how decodeEnvelope decided before it read in one pass: the whole input
// validated first, then its members read by a scanner that trusts it. FuzzDecodeEnvelope holds
// decodeEnvelope to it.
func decodeEnvelopeTwoPass(b []byte) (envelope, error) {
	var env envelope
	if !validJSON(b) {
		err := json.Unmarshal(b, new(json.RawMessage)) // only to locate the error
		return env, &event.Error{Reason: event.ReasonNotJSON, Msg: "not JSON: " + syntaxMsg(err)}
	}
	s := scanner{b: b}
	s.skipWS()
	if b[s.i] != '{' {
		return env, &event.Error{Reason: event.ReasonBadEnvelope, Msg: "top level is not an object"}
	}
	s.i++
	var (
		seen       [maxEnvelopeMembers][]byte
		nseen      int
		haveDetail bool
	)
	for {
		s.skipWS()
		if b[s.i] == '}' {
			break
		}
		key := s.str()
		for _, k := range seen[:nseen] {
			if bytes.Equal(k, key) {
				return env, &event.Error{Reason: event.ReasonDuplicateKey, Msg: "duplicate key " + strconv.Quote(clip(string(key), 32)) + " in the EventBridge event"}
			}
		}
		if nseen == maxEnvelopeMembers {
			return env, &event.Error{Reason: event.ReasonBadEnvelope, Msg: "EventBridge event with more than 64 members"}
		}
		seen[nseen] = key
		nseen++
		s.skipWS()
		s.i++ // ':'
		s.skipWS()
		start := s.i
		s.skipValue()
		raw := b[start:s.i]
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
				env.detail, haveDetail = raw, true
			case 'n':
			default:
				err = &event.Error{Reason: event.ReasonBadField, Msg: "detail is not an object"}
			}
		}
		if err != nil {
			return env, err
		}
		s.skipWS()
		if b[s.i] == ',' {
			s.i++
		}
	}
	if !haveDetail {
		return env, &event.Error{Reason: event.ReasonMissingField, Msg: "detail is required"}
	}
	return env, env.validate()
}

// scanner walks JSON already known to be valid.
type scanner struct {
	b []byte
	i int
}

func (s *scanner) skipWS() {
	for s.i < len(s.b) && (s.b[s.i] == ' ' || s.b[s.i] == '\t' || s.b[s.i] == '\n' || s.b[s.i] == '\r') {
		s.i++
	}
}

// skipString moves past the string starting at s.i and reports whether it has escapes.
func (s *scanner) skipString() bool {
	esc := false
	for s.i++; s.b[s.i] != '"'; s.i++ {
		if s.b[s.i] == '\\' {
			esc = true
			s.i++
		}
	}
	s.i++
	return esc
}

// str reads the string at s.i, unescaped: a slice of the input when it has no escapes.
func (s *scanner) str() []byte {
	start := s.i
	if !s.skipString() {
		return s.b[start+1 : s.i-1 : s.i-1]
	}
	var v string
	if err := json.Unmarshal(s.b[start:s.i], &v); err != nil { // valid JSON: cannot fail
		return s.b[start+1 : s.i-1 : s.i-1]
	}
	return []byte(v)
}

// skipValue moves past the value starting at s.i.
func (s *scanner) skipValue() {
	switch s.b[s.i] {
	case '"':
		s.skipString()
	case '{', '[':
		depth := 0
		for {
			switch s.b[s.i] {
			case '"':
				s.skipString()
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
			}
			s.i++
			if depth == 0 {
				return
			}
		}
	default: // number or literal
		for s.i < len(s.b) && !strings.ContainsRune(",}] \t\r\n", rune(s.b[s.i])) {
			s.i++
		}
	}
}

// FuzzDecodeEnvelope: the one-pass decodeEnvelope decides exactly what validating first and then
// reading the members decided: the same envelope, the same rejection (reason and message).
func FuzzDecodeEnvelope(f *testing.F) {
	good := goodLine("e1", "c1", 1)
	for _, s := range []string{
		good, "", " ", "null", "[]", `{}`, `{"detail":null}`, `{"detail":{}} x`, `{"detail":{},}`,
		`{"detail-type":"a","detail-type":"b","detail":{}`, // a duplicate before a syntax error
		`{"det\u0061il":{"a":1},"detail-type":"x"}`, `{"detail":[1],"detail-type":1}`,
		`{"source":"\u00e9\n","detail":{"a":"b"},"detail-type":"t","time":null,"id":"\"x\""}`,
		`{"a":1,"a":2}`, ` {"detail":{"x":[{"y":"}"}]},"detail-type":"p"} `, `{"detail":{"a":tru}}`,
		strings.Replace(good, `"source":"shop.web"`, `"source":"a","source":"b"`, 1),
	} {
		f.Add([]byte(s))
	}
	var many strings.Builder
	many.WriteString(`{"detail":{},"detail-type":"t"`)
	for i := range 70 {
		many.WriteString(`,"k` + strconv.Itoa(i) + `":1`)
	}
	f.Add([]byte(many.String() + "}"))
	f.Add([]byte(many.String()))
	f.Fuzz(func(t *testing.T, b []byte) {
		if !utf8.Valid(b) {
			return // the caller checks UTF-8 first
		}
		got, gotErr := decodeEnvelope(b)
		want, wantErr := decodeEnvelopeTwoPass(b)
		if !reflect.DeepEqual(errString(gotErr), errString(wantErr)) {
			t.Fatalf("%q: error %v, two-pass %v", b, gotErr, wantErr)
		}
		got.check = event.DetailCheck{} // the detail's check: FuzzPrepare holds it to event.CheckRaw
		if gotErr == nil && !reflect.DeepEqual(got, want) {
			t.Fatalf("%q: envelope %+v, two-pass %+v", b, got, want)
		}
	})
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	var e *event.Error
	if errors.As(err, &e) {
		return string(e.Reason) + ": " + e.Msg
	}
	return "other: " + err.Error()
}
