package event

import (
	"encoding/json"
	"strconv"
	"time"
	"unicode"
)

// Size and field limits enforced by the decoders. Kinesis caps a record at 1 MiB; EventBridge caps an
// event at 256 KiB.
const (
	MaxRecordBytes = 1 << 20
	MaxIDLen       = 128
)

// ParseDetail decodes and validates a producer's detail object. Keys are matched exactly (no case
// folding); duplicate keys, invalid UTF-8, excess nesting and wrong types are rejected with a Reason.
// Unknown members are ignored (they are not signed). The properties are canonicalised once here and
// reused by signature verification.
func ParseDetail(b []byte) (*Detail, error) {
	if len(b) > MaxRecordBytes {
		return nil, reject(ReasonTooLarge, "detail of %d bytes", len(b))
	}
	d := &Detail{}
	var haveSeq bool
	p := parser{src: b, lim: DefaultLimits}
	err := p.members(func(key string) error {
		var err error
		switch key {
		case "event_id":
			d.EventID, err = p.idString(key)
		case "customer_id":
			d.CustomerID, err = p.idString(key)
		case "key_id":
			d.KeyID, err = p.idString(key)
		case "signature":
			d.Signature, err = p.stringField(key, 128)
		case "occurred_at":
			d.OccurredAt, err = p.stringField(key, 64)
		case "seq":
			d.Seq, err = p.uintField(key)
			haveSeq = true
		case "properties":
			start := p.i
			if p.i >= len(p.src) || p.src[p.i] != '{' {
				if p.i < len(p.src) && p.src[p.i] == 'n' { // null: same as absent
					_, err = p.literal(nil, "null")
					return err
				}
				return reject(ReasonBadField, "properties is not an object")
			}
			d.canon, err = p.value(nil, 1)
			d.Properties = json.RawMessage(p.src[start:p.i])
		default:
			_, err = p.value(nil, 1)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	switch {
	case d.EventID == "":
		return nil, reject(ReasonMissingField, "event_id is required")
	case d.CustomerID == "":
		return nil, reject(ReasonMissingField, "customer_id is required")
	case !haveSeq || d.Seq == 0:
		return nil, reject(ReasonMissingField, "seq is required and starts at 1")
	case d.OccurredAt == "":
		return nil, reject(ReasonMissingField, "occurred_at is required")
	}
	if _, err := time.Parse(time.RFC3339Nano, d.OccurredAt); err != nil {
		return nil, reject(ReasonBadField, "occurred_at is not RFC 3339")
	}
	return d, nil
}

// DecodeRaw decodes a raw-stream record written by the forwarder and its detail.
func DecodeRaw(b []byte) (*Raw, *Detail, error) {
	if len(b) > MaxRecordBytes {
		return nil, nil, reject(ReasonTooLarge, "record of %d bytes", len(b))
	}
	r := &Raw{}
	var detail []byte
	p := parser{src: b, lim: DefaultLimits}
	err := p.members(func(key string) error {
		var err error
		switch key {
		case "v":
			var v uint64
			v, err = p.uintField(key)
			r.V = int(min(v, 1<<30))
		case "type":
			r.Type, err = p.idString(key)
		case "source":
			r.Source, err = p.stringField(key, 256)
		case "bridge_id":
			r.BridgeID, err = p.stringField(key, 256)
		case "bridge_time":
			r.BridgeTime, err = p.stringField(key, 64)
		case "forwarded_at":
			var s string
			if s, err = p.stringField(key, 64); err == nil {
				if r.ForwardedAt, err = time.Parse(time.RFC3339Nano, s); err != nil {
					err = reject(ReasonBadField, "forwarded_at is not RFC 3339")
				}
			}
		case "detail":
			start := p.i
			if _, err = p.value(nil, 1); err == nil {
				detail = p.src[start:p.i]
			}
		default:
			_, err = p.value(nil, 1)
		}
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	if r.V != RawVersion {
		return nil, nil, reject(ReasonUnsupportedRaw, "raw envelope version %d", r.V)
	}
	if r.Type == "" {
		return nil, nil, reject(ReasonMissingField, "type is required")
	}
	if detail == nil {
		return nil, nil, reject(ReasonMissingField, "detail is required")
	}
	r.Detail = json.RawMessage(detail)
	d, err := ParseDetail(detail)
	if err != nil {
		return r, nil, err
	}
	return r, d, nil
}

// members walks the members of the top-level object, calling fn with each key while the parser stands
// at the member's value; fn must consume the value. Duplicate keys are rejected.
func (p *parser) members(fn func(key string) error) error {
	p.skipWS()
	if p.i >= len(p.src) || p.src[p.i] != '{' {
		if p.i >= len(p.src) {
			return reject(ReasonNotJSON, "empty input")
		}
		if p.src[p.i] == '[' || p.src[p.i] == '"' || p.src[p.i] == 'n' || p.src[p.i] == 't' || p.src[p.i] == 'f' || p.src[p.i] == '-' || (p.src[p.i] >= '0' && p.src[p.i] <= '9') {
			return reject(ReasonBadEnvelope, "top level is not an object")
		}
		return reject(ReasonNotJSON, "not a JSON object")
	}
	p.i++
	seen := make(map[string]struct{}, 8)
	p.skipWS()
	if p.i < len(p.src) && p.src[p.i] == '}' {
		p.i++
	} else {
		for {
			p.skipWS()
			if p.i >= len(p.src) || p.src[p.i] != '"' {
				return reject(ReasonNotJSON, "expected object key at byte %d", p.i)
			}
			key, err := p.str()
			if err != nil {
				return err
			}
			if _, dup := seen[key]; dup {
				return reject(ReasonDuplicateKey, "duplicate key %q", truncate(key, 32))
			}
			seen[key] = struct{}{}
			if len(seen) > p.lim.MaxMembers {
				return reject(ReasonTooLarge, "object with more than %d members", p.lim.MaxMembers)
			}
			p.skipWS()
			if p.i >= len(p.src) || p.src[p.i] != ':' {
				return reject(ReasonNotJSON, "expected ':' at byte %d", p.i)
			}
			p.i++
			p.skipWS()
			if p.i >= len(p.src) {
				return reject(ReasonNotJSON, "unexpected end of input")
			}
			if err := fn(key); err != nil {
				return err
			}
			p.skipWS()
			if p.i >= len(p.src) {
				return reject(ReasonNotJSON, "unterminated object")
			}
			if p.src[p.i] == ',' {
				p.i++
				continue
			}
			if p.src[p.i] != '}' {
				return reject(ReasonNotJSON, "expected ',' or '}' at byte %d", p.i)
			}
			p.i++
			break
		}
	}
	p.skipWS()
	if p.i != len(p.src) {
		return reject(ReasonNotJSON, "trailing data at byte %d", p.i)
	}
	return nil
}

func (p *parser) stringField(name string, max int) (string, error) {
	if p.src[p.i] != '"' {
		if _, err := p.value(nil, 1); err != nil {
			return "", err
		}
		return "", reject(ReasonBadField, "%s is not a string", name)
	}
	s, err := p.str()
	if err != nil {
		return "", err
	}
	if len(s) > max {
		return "", reject(ReasonBadField, "%s longer than %d bytes", name, max)
	}
	return s, nil
}

// idString reads an identifier: 1 to MaxIDLen printable characters, no white space.
func (p *parser) idString(name string) (string, error) {
	s, err := p.stringField(name, MaxIDLen)
	if err != nil {
		return "", err
	}
	for _, r := range s {
		if !unicode.IsPrint(r) || unicode.IsSpace(r) {
			return "", reject(ReasonBadField, "%s has a non-printable or space character", name)
		}
	}
	return s, nil
}

func (p *parser) uintField(name string) (uint64, error) {
	start := p.i
	if _, err := p.value(nil, 1); err != nil {
		return 0, err
	}
	lit := string(p.src[start:p.i])
	v, err := strconv.ParseUint(lit, 10, 64)
	if err != nil {
		return 0, reject(ReasonBadField, "%s is not a non-negative integer", name)
	}
	return v, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
