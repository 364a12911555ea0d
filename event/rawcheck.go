package event

import (
	"strconv"
	"time"
	"unicode"
	"unicode/utf8"
)

// RawParts are the members a forwarder writes around a detail in a raw record (see AppendRaw).
// Type and Source are always written; BridgeID and BridgeTime only when not empty.
type RawParts struct {
	Type, Source, BridgeID, BridgeTime []byte
	ForwardedAt                        time.Time
}

// AppendRaw appends the raw-stream record (Raw, version RawVersion) of a detail to dst. It is written
// by hand so that the detail bytes go out exactly as received: encoding/json would compact them and
// escape HTML characters, and the detail is what the producer signed. The parts must be valid UTF-8
// for the record to be valid JSON.
func AppendRaw(dst []byte, p RawParts, detail []byte) []byte {
	dst = append(dst, `{"v":`...)
	dst = strconv.AppendInt(dst, RawVersion, 10)
	dst = append(dst, `,"type":`...)
	dst = AppendJSONString(dst, p.Type)
	dst = append(dst, `,"source":`...)
	dst = AppendJSONString(dst, p.Source)
	if len(p.BridgeID) != 0 {
		dst = append(dst, `,"bridge_id":`...)
		dst = AppendJSONString(dst, p.BridgeID)
	}
	if len(p.BridgeTime) != 0 {
		dst = append(dst, `,"bridge_time":`...)
		dst = AppendJSONString(dst, p.BridgeTime)
	}
	dst = append(dst, `,"forwarded_at":"`...)
	dst = p.ForwardedAt.UTC().AppendFormat(dst, time.RFC3339Nano)
	dst = append(dst, `","detail":`...)
	dst = append(dst, detail...)
	return append(dst, '}')
}

// AppendJSONString appends s as a JSON string: only '"', '\' and control characters escaped, the
// control characters as \u00xx (s is valid UTF-8: the caller checked it).
func AppendJSONString(dst, s []byte) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			dst = append(dst, '\\', c)
		case c < 0x20:
			dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		default:
			dst = append(dst, c)
		}
	}
	return append(dst, '"')
}

// DetailCheck is CheckRaw's decision on a raw record taken from its detail alone, while a writer (the
// forwarder) reads the detail in its input and before the record exists, so that the detail is
// walked once, not once more inside the record. CheckDetail makes it; Decide completes it with the
// record. The zero DetailCheck decides nothing: its Decide is CheckRaw.
type DetailCheck struct {
	customerID, eventID string
	err                 error // the detail's own rejection: a field of the wrong type or size, a missing field
	done                bool  // the walk reached the end of the detail without an error of its own
}

// CheckDetail walks the JSON value at the start of b exactly as CheckRaw walks the detail of a record
// (at the same depth, under DefaultLimits) and returns the length of the value and its check. It
// returns n = 0, and a check that leaves the decision to CheckRaw, when the walk stopped at an error
// of the value itself (a syntax error, a limit, a duplicate key, invalid UTF-8, a number out of
// range): the message of such an error holds offsets into the record, which does not exist yet, so
// only CheckRaw on the record words it. The caller then finds the end of the value by other means.
func CheckDetail(b []byte) (n int, c DetailCheck) {
	p := parser{src: b, lim: DefaultLimits, sc: getScratch()}
	defer p.sc.release()
	var f detailFields
	if len(b) == 0 || p.detailInRecord(&f, 1) != nil {
		return 0, DetailCheck{}
	}
	c.done = true
	if f.bad != nil {
		c.err = f.bad
		return p.i, c
	}
	c.customerID, c.eventID, c.err = f.ids(p.sc.strs)
	return p.i, c
}

// Decide returns what CheckRaw(rec) returns, where rec is AppendRaw(dst, p, detail) and detail is
// the value CheckDetail walked for c: the parts are checked here the way CheckRaw checks those
// members, before the detail's decision; anything out of the ordinary (a part CheckRaw would reject,
// a record over MaxRecordBytes, a detail whose walk stopped at an error) is left to CheckRaw itself.
// FuzzCheckDetail holds Decide to CheckRaw.
func (c *DetailCheck) Decide(rec []byte, p RawParts) (customerID, eventID string, err error) {
	if !c.done || len(rec) > MaxRecordBytes || !p.plain() {
		return CheckRaw(rec)
	}
	if c.err != nil {
		return "", "", c.err
	}
	return c.customerID, c.eventID, nil
}

// plain reports whether CheckRaw accepts the record's members other than the detail as AppendRaw
// writes them: a type of 1 to MaxIDLen printable characters without white space, a source and
// bridge_id of at most 256 bytes and a bridge_time of at most 64, all valid UTF-8 (their escapes
// decode to themselves), and a forwarded_at within the years RFC 3339 can write (0 to 9999).
func (p *RawParts) plain() bool {
	if len(p.Type) == 0 || len(p.Type) > MaxIDLen || len(p.Source) > 256 || len(p.BridgeID) > 256 || len(p.BridgeTime) > 64 {
		return false
	}
	if !utf8.Valid(p.Source) || !utf8.Valid(p.BridgeID) || !utf8.Valid(p.BridgeTime) {
		return false
	}
	for i := 0; i < len(p.Type); {
		if c := p.Type[i]; c < utf8.RuneSelf {
			if c <= ' ' || c == 0x7f {
				return false
			}
			i++
			continue
		}
		r, n := utf8.DecodeRune(p.Type[i:])
		if r == utf8.RuneError && n == 1 || !unicode.IsPrint(r) || unicode.IsSpace(r) {
			return false
		}
		i += n
	}
	y := p.ForwardedAt.UTC().Year()
	return y >= 0 && y <= 9999
}
