package event

import (
	"encoding/json"
	"math"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
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
	p := parser{src: b, lim: DefaultLimits, sc: getScratch(), keepCanon: true}
	defer p.sc.release()
	var f detailFields
	if err := p.members(func(key []byte) error { return p.detailMember(key, &f, 1, false) }); err != nil {
		return nil, err
	}
	d := &Detail{}
	if err := f.fill(d, string(p.sc.strs), p.sc.canon); err != nil {
		return nil, err
	}
	return d, nil
}

// DecodeRaw decodes a raw-stream record written by the forwarder and its detail.
//
// The record is read in one pass: the detail is decoded in place while the record is validated as a
// whole, and a rejection of one of the detail's fields is reported only once the record itself is
// known to be valid JSON with a supported envelope (the same outcome as validating the record first
// and then calling ParseDetail on its detail).
func DecodeRaw(b []byte) (*Raw, *Detail, error) {
	type decoded struct {
		r Raw
		d Detail
	}
	out := &decoded{}
	rawOK, err := decodeRaw(b, &out.r, &out.d)
	switch {
	case !rawOK:
		return nil, nil, err
	case err != nil:
		return &out.r, nil, err
	}
	return &out.r, &out.d, nil
}

// CheckRaw decides what DecodeRaw decides for b (the same parse, the same error) and returns only
// the detail's customer_id and event_id: for a writer that checks a record before it sends it (the
// forwarder), without DecodeRaw's copies and without the canonical form of the properties, which
// only signature verification needs.
func CheckRaw(b []byte) (customerID, eventID string, err error) {
	var d Detail
	if _, err := decodeRaw(b, nil, &d); err != nil {
		return "", "", err
	}
	return d.CustomerID, d.EventID, nil
}

// decodeRaw is DecodeRaw into r and d: rawOK reports whether the record's envelope was valid (r is
// set; a non-nil err is then the detail's rejection). d keeps the canonical properties for signature
// verification. With r nil it only checks (CheckRaw): the properties are validated, not
// canonicalised, and d gets only its customer_id and event_id.
func decodeRaw(b []byte, r *Raw, d *Detail) (rawOK bool, err error) {
	if len(b) > MaxRecordBytes {
		return false, reject(ReasonTooLarge, "record of %d bytes", len(b))
	}
	p := parser{src: b, lim: DefaultLimits, sc: getScratch(), keepCanon: r != nil}
	defer p.sc.release()
	var (
		v                                 uint64
		typ, source, bridgeID, bridgeTime span
		forwardedAt                       time.Time
		detail                            []byte
		f                                 detailFields
	)
	err = p.members(func(key []byte) error {
		var bad *Error
		var err error
		switch string(key) {
		case "v":
			v, bad, err = p.uintField("v", 1)
		case "type":
			typ, bad, err = p.idField("type", 1)
		case "source":
			source, bad, err = p.stringField("source", 256, 1)
		case "bridge_id":
			bridgeID, bad, err = p.stringField("bridge_id", 256, 1)
		case "bridge_time":
			bridgeTime, bad, err = p.stringField("bridge_time", 64, 1)
		case "forwarded_at":
			var s span
			if s, bad, err = p.stringField("forwarded_at", 64, 1); err == nil && bad == nil {
				if forwardedAt, err = time.Parse(time.RFC3339Nano, string(p.sc.strs[s.off:s.end])); err != nil {
					err = reject(ReasonBadField, "forwarded_at is not RFC 3339")
				}
			}
		case "detail":
			start := p.i
			if err = p.detailInRecord(&f, 1); err == nil {
				detail = p.src[start:p.i]
			}
		default:
			err = p.skipValue(1)
		}
		if err != nil {
			return err
		}
		if bad != nil {
			return bad
		}
		return nil
	})
	if err != nil {
		return false, err
	}
	if ver := int(min(v, 1<<30)); ver != RawVersion {
		return false, reject(ReasonUnsupportedRaw, "raw envelope version %d", ver)
	}
	if typ.empty() {
		return false, reject(ReasonMissingField, "type is required")
	}
	if detail == nil {
		return false, reject(ReasonMissingField, "detail is required")
	}
	if r == nil {
		if f.bad != nil {
			return true, f.bad
		}
		d.CustomerID, d.EventID, err = f.ids(p.sc.strs)
		return true, err
	}
	strs := string(p.sc.strs)
	r.V = RawVersion
	r.Type, r.Source, r.BridgeID, r.BridgeTime = typ.of(strs), source.of(strs), bridgeID.of(strs), bridgeTime.of(strs)
	r.ForwardedAt = forwardedAt
	r.Detail = json.RawMessage(detail)
	if f.bad != nil {
		return true, f.bad
	}
	return true, f.fill(d, strs, p.sc.canon)
}

// span is a decoded string field's position in scratch.strs.
type span struct{ off, end int }

func (s span) of(strs string) string { return strs[s.off:s.end] }

func (s span) empty() bool { return s.end == s.off }

// detailFields collects a detail's fields while its members are read.
type detailFields struct {
	eventID, customerID, keyID, signature, occurredAt span

	seq      uint64
	haveSeq  bool
	props    []byte // the properties object as sent; nil when absent or null
	hasCanon bool   // scratch.canon holds its canonical form
	// bad is the first rejected field when the rejection is reported after the record is validated.
	bad *Error
}

// fill sets d from f once every member is read (strs holds scratch.strs, canon scratch.canon) and
// checks what the detail as a whole requires.
func (f *detailFields) fill(d *Detail, strs string, canon []byte) error {
	d.EventID, d.CustomerID, d.KeyID = f.eventID.of(strs), f.customerID.of(strs), f.keyID.of(strs)
	d.Signature, d.OccurredAt, d.Seq = f.signature.of(strs), f.occurredAt.of(strs), f.seq
	if f.props != nil {
		d.Properties = json.RawMessage(f.props)
	}
	if f.hasCanon {
		d.canon = append(make([]byte, 0, len(canon)), canon...)
	}
	return f.check(d.OccurredAt)
}

// ids is fill for a caller that needs only the customer_id and event_id: the same checks, with only
// those two strings and occurred_at copied out of strs (scratch.strs), in one allocation.
func (f *detailFields) ids(strs []byte) (customerID, eventID string, err error) {
	c, e, o := strs[f.customerID.off:f.customerID.end], strs[f.eventID.off:f.eventID.end], strs[f.occurredAt.off:f.occurredAt.end]
	var b strings.Builder
	b.Grow(len(c) + len(e) + len(o))
	b.Write(c)
	b.Write(e)
	b.Write(o)
	all := b.String()
	if err := f.check(all[len(c)+len(e):]); err != nil {
		return "", "", err
	}
	return all[:len(c)], all[len(c) : len(c)+len(e)], nil
}

// check applies what the detail as a whole requires; occurredAt is its occurred_at.
func (f *detailFields) check(occurredAt string) error {
	switch {
	case f.eventID.empty():
		return reject(ReasonMissingField, "event_id is required")
	case f.customerID.empty():
		return reject(ReasonMissingField, "customer_id is required")
	case !f.haveSeq || f.seq == 0:
		return reject(ReasonMissingField, "seq is required and starts at 1")
	case occurredAt == "":
		return reject(ReasonMissingField, "occurred_at is required")
	}
	if _, err := time.Parse(time.RFC3339Nano, occurredAt); err != nil {
		return reject(ReasonBadField, "occurred_at is not RFC 3339")
	}
	return nil
}

// detailMember reads the value of the detail member named key into f; depth is the nesting depth of
// the detail's member values. A field of the wrong type or size is returned at once, or, when
// deferred, kept in f.bad (the first one only) while the value is still read through, and every
// member after it is only validated.
func (p *parser) detailMember(key []byte, f *detailFields, depth int, deferred bool) error {
	if deferred && f.bad != nil {
		return p.skipValue(depth)
	}
	var bad *Error
	var err error
	switch string(key) {
	case "event_id":
		f.eventID, bad, err = p.idField("event_id", depth)
	case "customer_id":
		f.customerID, bad, err = p.idField("customer_id", depth)
	case "key_id":
		f.keyID, bad, err = p.idField("key_id", depth)
	case "signature":
		f.signature, bad, err = p.stringField("signature", 128, depth)
	case "occurred_at":
		f.occurredAt, bad, err = p.stringField("occurred_at", 64, depth)
	case "seq":
		f.seq, bad, err = p.uintField("seq", depth)
		f.haveSeq = true
	case "properties":
		start := p.i
		switch p.src[p.i] {
		case '{':
			if p.keepCanon {
				p.sc.canon, err = p.value(p.sc.canon[:0], depth)
			} else {
				err = p.skipValue(depth)
			}
			f.props, f.hasCanon = p.src[start:p.i], p.keepCanon
		case 'n': // null: same as absent
			err = p.skipLiteral("null")
		default:
			bad = reject(ReasonBadField, "properties is not an object")
			if !deferred {
				return bad
			}
			err = p.skipValue(depth)
		}
	default:
		err = p.skipValue(depth)
	}
	if err != nil {
		return err
	}
	if bad != nil {
		if !deferred {
			return bad
		}
		f.bad = bad
	}
	return nil
}

// detailInRecord reads the detail at p.i inside a raw record, whose members' values are at depth:
// it validates the value exactly as value(depth) does, and reads the detail's fields into f with
// their rejections deferred (see detailMember). A detail that is not an object is rejected the way
// ParseDetail rejects it, also deferred.
func (p *parser) detailInRecord(f *detailFields, depth int) error {
	if p.src[p.i] != '{' {
		if err := p.skipValue(depth); err != nil {
			return err
		}
		f.bad = reject(ReasonBadEnvelope, "top level is not an object")
		return nil
	}
	// What follows mirrors object(dst, depth+1), without output.
	depth++
	if depth > p.lim.MaxDepth {
		return reject(ReasonTooDeep, "nesting deeper than %d", p.lim.MaxDepth)
	}
	p.i++ // {
	p.skipWS()
	if p.i < len(p.src) && p.src[p.i] == '}' {
		p.i++
		return nil
	}
	sc := p.sc
	base, kbase := len(sc.members), len(sc.keys)
	sorted := true
	for {
		p.skipWS()
		if p.i >= len(p.src) || p.src[p.i] != '"' {
			return reject(ReasonNotJSON, "expected object key at byte %d", p.i)
		}
		ks := len(sc.keys)
		var err error
		if sc.keys, err = p.appendStr(sc.keys); err != nil {
			return err
		}
		ke := len(sc.keys)
		p.skipWS()
		if p.i >= len(p.src) || p.src[p.i] != ':' {
			return reject(ReasonNotJSON, "expected ':' at byte %d", p.i)
		}
		p.i++
		p.skipWS()
		if p.i >= len(p.src) {
			return reject(ReasonNotJSON, "unexpected end of input")
		}
		if err := p.detailMember(sc.keys[ks:ke], f, depth, true); err != nil {
			return err
		}
		n := len(sc.members) - base
		sc.members = append(sc.members, memberSpan{ks: ks, ke: ke})
		if n+1 > p.lim.MaxMembers {
			return reject(ReasonTooLarge, "object with more than %d members", p.lim.MaxMembers)
		}
		if sorted && n > 0 {
			prev := sc.members[base+n-1]
			sorted = compareKeys(sc.keys[prev.ks:prev.ke], sc.keys[ks:ke]) < 0
		}
		more, err := p.afterItem('}', "object")
		if err != nil {
			return err
		}
		if more {
			continue
		}
		break
	}
	if !sorted {
		if err := sortMembers(sc.members[base:], sc.keys); err != nil {
			return err
		}
	}
	sc.members = sc.members[:base]
	sc.keys = sc.keys[:kbase]
	return nil
}

// members walks the members of the top-level object, calling fn with each key while the parser stands
// at the member's value; fn must consume the value. Duplicate keys are rejected.
func (p *parser) members(fn func(key []byte) error) error {
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
	sc := p.sc
	p.skipWS()
	if p.i < len(p.src) && p.src[p.i] == '}' {
		p.i++
	} else {
		for {
			p.skipWS()
			if p.i >= len(p.src) || p.src[p.i] != '"' {
				return reject(ReasonNotJSON, "expected object key at byte %d", p.i)
			}
			ks := len(sc.keys)
			var err error
			if sc.keys, err = p.appendStr(sc.keys); err != nil {
				return err
			}
			key := sc.keys[ks:]
			if p.seenKey(key) {
				return reject(ReasonDuplicateKey, "duplicate key %q", truncate(string(key), 32))
			}
			sc.top = append(sc.top, keySpan{ks, len(sc.keys)})
			if len(sc.top) > p.lim.MaxMembers {
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
			more, err := p.afterItem('}', "object")
			if err != nil {
				return err
			}
			if more {
				continue
			}
			break
		}
	}
	p.skipWS()
	if p.i != len(p.src) {
		return reject(ReasonNotJSON, "trailing data at byte %d", p.i)
	}
	return nil
}

// seenKey reports whether key is among the top-level keys read so far: a linear scan for the few
// members a record has, a set beyond that.
func (p *parser) seenKey(key []byte) bool {
	sc := p.sc
	const linear = 16
	if len(sc.top) < linear {
		for _, k := range sc.top {
			if string(sc.keys[k.ks:k.ke]) == string(key) {
				return true
			}
		}
		return false
	}
	if sc.seen == nil {
		sc.seen = make(map[string]struct{}, 2*linear)
		for _, k := range sc.top {
			sc.seen[string(sc.keys[k.ks:k.ke])] = struct{}{}
		}
	}
	if _, ok := sc.seen[string(key)]; ok {
		return true
	}
	sc.seen[string(key)] = struct{}{}
	return false
}

// stringField reads a string member value (at depth) of at most max bytes into scratch.strs. A value
// of another type or size is returned as bad, after it is read through.
func (p *parser) stringField(name string, max, depth int) (s span, bad *Error, err error) {
	if p.src[p.i] != '"' {
		if err := p.skipValue(depth); err != nil {
			return span{}, nil, err
		}
		return span{}, reject(ReasonBadField, "%s is not a string", name), nil
	}
	off := len(p.sc.strs)
	if p.sc.strs, err = p.appendStr(p.sc.strs); err != nil {
		return span{}, nil, err
	}
	if n := len(p.sc.strs) - off; n > max {
		p.sc.strs = p.sc.strs[:off]
		return span{}, reject(ReasonBadField, "%s longer than %d bytes", name, max), nil
	}
	return span{off, len(p.sc.strs)}, nil, nil
}

// idField reads an identifier: 1 to MaxIDLen printable characters, no white space.
func (p *parser) idField(name string, depth int) (span, *Error, error) {
	s, bad, err := p.stringField(name, MaxIDLen, depth)
	if err != nil || bad != nil {
		return s, bad, err
	}
	b := p.sc.strs[s.off:s.end]
	for i := 0; i < len(b); {
		if c := b[i]; c < utf8.RuneSelf {
			if c <= ' ' || c == 0x7f {
				return span{}, reject(ReasonBadField, "%s has a non-printable or space character", name), nil
			}
			i++
			continue
		}
		r, n := utf8.DecodeRune(b[i:])
		if !unicode.IsPrint(r) || unicode.IsSpace(r) {
			return span{}, reject(ReasonBadField, "%s has a non-printable or space character", name), nil
		}
		i += n
	}
	return s, nil, nil
}

// uintField reads a member value that must be a base-10 integer literal in the range of uint64.
func (p *parser) uintField(name string, depth int) (uint64, *Error, error) {
	start := p.i
	if err := p.skipValue(depth); err != nil {
		return 0, nil, err
	}
	lit := p.src[start:p.i]
	var v uint64
	for _, c := range lit {
		d := uint64(c - '0')
		if c < '0' || c > '9' || v > (math.MaxUint64-d)/10 {
			return 0, reject(ReasonBadField, "%s is not a non-negative integer", name), nil
		}
		v = v*10 + d
	}
	if len(lit) == 0 {
		return 0, reject(ReasonBadField, "%s is not a non-negative integer", name), nil
	}
	return v, nil, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
