package event

import (
	"bytes"
	"math"
	"slices"
	"strconv"
	"sync"
	"unicode/utf8"
)

// Limits bound what a single JSON value may contain. They protect the worker from records that are
// valid JSON but built to exhaust memory or stack.
type Limits struct {
	MaxDepth     int // nesting of objects and arrays
	MaxStringLen int // bytes in one string (key or value)
	MaxMembers   int // members of one object or elements of one array
}

// DefaultLimits are generous for behaviour events and small enough to keep one record cheap.
var DefaultLimits = Limits{MaxDepth: 16, MaxStringLen: 8 << 10, MaxMembers: 1000}

// AppendCanonicalJSON validates the JSON value in src and appends its canonical form to dst.
//
// The canonical form follows RFC 8785 (JSON Canonicalization Scheme): no insignificant white space;
// object members sorted by key, comparing keys as UTF-16 code units; strings with only the escapes
// JSON requires (\" \\ \b \f \n \r \t and \u00xx in lower-case hex for other control characters),
// everything else as literal UTF-8; numbers as IEEE-754 doubles printed the way ECMAScript's
// Number.prototype.toString does. Producers in any language with a JCS library sign the same bytes.
//
// Rejected, with a Reason: invalid JSON, trailing data, invalid UTF-8, duplicate keys, numbers that are
// not finite doubles, and anything over the limits.
func AppendCanonicalJSON(dst, src []byte, lim Limits) ([]byte, error) {
	p := parser{src: src, lim: lim, sc: getScratch()}
	defer p.sc.release()
	p.skipWS()
	out, err := p.value(dst, 0)
	if err != nil {
		return dst, err
	}
	p.skipWS()
	if p.i != len(p.src) {
		return dst, reject(ReasonNotJSON, "trailing data at byte %d", p.i)
	}
	return out, nil
}

// parser is a single forward pass over src. It canonicalises as it goes: an object's members are
// written to the output in input order, and only put in key order (through sc.tmp) when they are
// not already, so nothing is allocated per member or per key.
type parser struct {
	src []byte
	i   int
	lim Limits
	sc  *scratch
	// keepCanon has a detail's properties canonicalised into sc.canon (for signature verification);
	// without it they are only validated.
	keepCanon bool
}

// scratch holds the buffers one parse reuses; pooled, so decoding a record allocates only what it
// returns. The member and key stacks follow the nesting: an object pushes its members and pops them
// when it ends.
type scratch struct {
	members []memberSpan // members of the objects being read, innermost last
	keys    []byte       // their decoded keys
	top     []keySpan    // keys of the top-level object walked by members()
	seen    map[string]struct{}
	tmp     []byte // an object's members while they are put in key order
	str     []byte // a string value with escapes, decoded
	strs    []byte // decoded string fields of a record
	canon   []byte // canonical properties of a detail
}

// memberSpan is one member of an object being read: its decoded key in scratch.keys and its
// `"key":value` bytes in the output.
type memberSpan struct {
	ks, ke     int
	start, end int
}

type keySpan struct{ ks, ke int }

var scratchPool = sync.Pool{New: func() any { return new(scratch) }}

func getScratch() *scratch { return scratchPool.Get().(*scratch) }

// release returns s to the pool; buffers grown by an unusually large input are dropped rather than
// kept.
func (s *scratch) release() {
	const keep = 64 << 10
	trim := func(b []byte) []byte {
		if cap(b) > keep {
			return nil
		}
		return b[:0]
	}
	s.keys, s.tmp, s.str, s.strs, s.canon = trim(s.keys), trim(s.tmp), trim(s.str), trim(s.strs), trim(s.canon)
	if cap(s.members) > keep/32 {
		s.members = nil
	}
	s.members = s.members[:0]
	if cap(s.top) > keep/16 {
		s.top = nil
	}
	s.top = s.top[:0]
	s.seen = nil
	scratchPool.Put(s)
}

func (p *parser) skipWS() {
	for p.i < len(p.src) {
		switch p.src[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *parser) value(dst []byte, depth int) ([]byte, error) {
	if p.i >= len(p.src) {
		return dst, reject(ReasonNotJSON, "unexpected end of input")
	}
	switch c := p.src[p.i]; {
	case c == '{':
		return p.object(dst, depth+1)
	case c == '[':
		return p.array(dst, depth+1)
	case c == '"':
		return p.canonString(dst)
	case c == 't':
		return p.literal(dst, "true")
	case c == 'f':
		return p.literal(dst, "false")
	case c == 'n':
		return p.literal(dst, "null")
	case c == '-' || (c >= '0' && c <= '9'):
		return p.number(dst)
	default:
		return dst, reject(ReasonNotJSON, "unexpected byte %q at %d", c, p.i)
	}
}

// skipValue validates the value at p.i exactly as value(dst, depth) does, with the same error at the
// same point, without writing its canonical form: for values that are only checked (unknown members,
// numeric fields, properties when no signature will be verified). FuzzSkipValue holds it to value.
func (p *parser) skipValue(depth int) error {
	if p.i >= len(p.src) {
		return reject(ReasonNotJSON, "unexpected end of input")
	}
	switch c := p.src[p.i]; {
	case c == '{':
		return p.skipObject(depth + 1)
	case c == '[':
		return p.skipArray(depth + 1)
	case c == '"':
		return p.skipString()
	case c == 't':
		return p.skipLiteral("true")
	case c == 'f':
		return p.skipLiteral("false")
	case c == 'n':
		return p.skipLiteral("null")
	case c == '-' || (c >= '0' && c <= '9'):
		return p.skipNumber()
	default:
		return reject(ReasonNotJSON, "unexpected byte %q at %d", c, p.i)
	}
}

func (p *parser) literal(dst []byte, lit string) ([]byte, error) {
	if err := p.skipLiteral(lit); err != nil {
		return dst, err
	}
	return append(dst, lit...), nil
}

func (p *parser) skipLiteral(lit string) error {
	if !bytes.HasPrefix(p.src[p.i:], []byte(lit)) {
		return reject(ReasonNotJSON, "bad literal at byte %d", p.i)
	}
	p.i += len(lit)
	return nil
}

func (p *parser) object(dst []byte, depth int) ([]byte, error) {
	if depth > p.lim.MaxDepth {
		return dst, reject(ReasonTooDeep, "nesting deeper than %d", p.lim.MaxDepth)
	}
	p.i++ // {
	p.skipWS()
	if p.i < len(p.src) && p.src[p.i] == '}' {
		p.i++
		return append(dst, "{}"...), nil
	}
	sc := p.sc
	base, kbase := len(sc.members), len(sc.keys)
	open := len(dst)
	dst = append(dst, '{')
	sorted := true
	for {
		p.skipWS()
		if p.i >= len(p.src) || p.src[p.i] != '"' {
			return dst, reject(ReasonNotJSON, "expected object key at byte %d", p.i)
		}
		ks := len(sc.keys)
		var err error
		if sc.keys, err = p.appendStr(sc.keys); err != nil {
			return dst, err
		}
		ke := len(sc.keys)
		p.skipWS()
		if p.i >= len(p.src) || p.src[p.i] != ':' {
			return dst, reject(ReasonNotJSON, "expected ':' at byte %d", p.i)
		}
		p.i++
		p.skipWS()
		n := len(sc.members) - base
		if n > 0 {
			dst = append(dst, ',')
		}
		start := len(dst)
		dst = appendString(dst, sc.keys[ks:ke])
		dst = append(dst, ':')
		if dst, err = p.value(dst, depth); err != nil {
			return dst, err
		}
		sc.members = append(sc.members, memberSpan{ks: ks, ke: ke, start: start, end: len(dst)})
		if n+1 > p.lim.MaxMembers {
			return dst, reject(ReasonTooLarge, "object with more than %d members", p.lim.MaxMembers)
		}
		if sorted && n > 0 {
			prev := sc.members[base+n-1]
			sorted = compareKeys(sc.keys[prev.ks:prev.ke], sc.keys[ks:ke]) < 0
		}
		more, err := p.afterItem('}', "object")
		if err != nil {
			return dst, err
		}
		if more {
			continue
		}
		break
	}
	if !sorted {
		ms := sc.members[base:]
		if err := sortMembers(ms, sc.keys); err != nil {
			return dst, err
		}
		sc.tmp = append(sc.tmp[:0], dst[open+1:]...)
		dst = dst[:open+1]
		for k, m := range ms {
			if k > 0 {
				dst = append(dst, ',')
			}
			dst = append(dst, sc.tmp[m.start-open-1:m.end-open-1]...)
		}
	}
	sc.members = sc.members[:base]
	sc.keys = sc.keys[:kbase]
	return append(dst, '}'), nil
}

// skipObject is object without output: the same checks in the same order. Keys are still decoded,
// since duplicates are rejected.
func (p *parser) skipObject(depth int) error {
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
		n := len(sc.members) - base
		if err := p.skipValue(depth); err != nil {
			return err
		}
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

// sortMembers puts ms in key order (RFC 8785) and rejects duplicate keys.
func sortMembers(ms []memberSpan, keys []byte) error {
	slices.SortFunc(ms, func(a, b memberSpan) int { return compareKeys(keys[a.ks:a.ke], keys[b.ks:b.ke]) })
	for k := 1; k < len(ms); k++ {
		if a, b := keys[ms[k-1].ks:ms[k-1].ke], keys[ms[k].ks:ms[k].ke]; bytes.Equal(a, b) {
			return reject(ReasonDuplicateKey, "duplicate key (%d bytes) in object", len(b))
		}
	}
	return nil
}

func (p *parser) array(dst []byte, depth int) ([]byte, error) {
	if depth > p.lim.MaxDepth {
		return dst, reject(ReasonTooDeep, "nesting deeper than %d", p.lim.MaxDepth)
	}
	p.i++ // [
	dst = append(dst, '[')
	p.skipWS()
	if p.i < len(p.src) && p.src[p.i] == ']' {
		p.i++
		return append(dst, ']'), nil
	}
	for n := 0; ; n++ {
		if n >= p.lim.MaxMembers {
			return dst, reject(ReasonTooLarge, "array with more than %d elements", p.lim.MaxMembers)
		}
		if n > 0 {
			dst = append(dst, ',')
		}
		p.skipWS()
		var err error
		if dst, err = p.value(dst, depth); err != nil {
			return dst, err
		}
		more, err := p.afterItem(']', "array")
		if err != nil {
			return dst, err
		}
		if more {
			continue
		}
		return append(dst, ']'), nil
	}
}

// skipArray is array without output.
func (p *parser) skipArray(depth int) error {
	if depth > p.lim.MaxDepth {
		return reject(ReasonTooDeep, "nesting deeper than %d", p.lim.MaxDepth)
	}
	p.i++ // [
	p.skipWS()
	if p.i < len(p.src) && p.src[p.i] == ']' {
		p.i++
		return nil
	}
	for n := 0; ; n++ {
		if n >= p.lim.MaxMembers {
			return reject(ReasonTooLarge, "array with more than %d elements", p.lim.MaxMembers)
		}
		p.skipWS()
		if err := p.skipValue(depth); err != nil {
			return err
		}
		more, err := p.afterItem(']', "array")
		if err != nil {
			return err
		}
		if more {
			continue
		}
		return nil
	}
}

// canonString appends the canonical form of the string at p.i. A string without escapes is its own
// canonical form (it cannot contain a quote, a backslash or a control character), so it is copied.
func (p *parser) canonString(dst []byte) ([]byte, error) {
	i := p.i + 1
	for i < len(p.src) {
		if c := p.src[i]; c == '"' || c == '\\' || c < 0x20 {
			break
		}
		i++
	}
	if i < len(p.src) && p.src[i] == '"' {
		raw := p.src[p.i+1 : i]
		if len(raw) > p.lim.MaxStringLen {
			return dst, reject(ReasonTooLarge, "string of %d bytes over limit %d", len(raw), p.lim.MaxStringLen)
		}
		if !utf8.Valid(raw) {
			return dst, reject(ReasonInvalidUTF8, "invalid UTF-8 in string")
		}
		p.i = i + 1
		dst = append(dst, '"')
		dst = append(dst, raw...)
		return append(dst, '"'), nil
	}
	s, err := p.appendStr(p.sc.str[:0])
	p.sc.str = s[:0]
	if err != nil {
		return dst, err
	}
	return appendString(dst, s), nil
}

// skipString is canonString without output.
func (p *parser) skipString() error {
	i := p.i + 1
	for i < len(p.src) {
		if c := p.src[i]; c == '"' || c == '\\' || c < 0x20 {
			break
		}
		i++
	}
	if i < len(p.src) && p.src[i] == '"' {
		raw := p.src[p.i+1 : i]
		if len(raw) > p.lim.MaxStringLen {
			return reject(ReasonTooLarge, "string of %d bytes over limit %d", len(raw), p.lim.MaxStringLen)
		}
		if !utf8.Valid(raw) {
			return reject(ReasonInvalidUTF8, "invalid UTF-8 in string")
		}
		p.i = i + 1
		return nil
	}
	s, err := p.appendStr(p.sc.str[:0])
	p.sc.str = s[:0]
	return err
}

// appendStr parses a JSON string starting at the opening quote and appends its decoded value to dst.
func (p *parser) appendStr(dst []byte) ([]byte, error) {
	p.i++ // opening quote
	start, base := p.i, len(dst)
	// Fast path: no escapes.
	for p.i < len(p.src) {
		c := p.src[p.i]
		if c == '"' {
			raw := p.src[start:p.i]
			p.i++
			if len(raw) > p.lim.MaxStringLen {
				return dst, reject(ReasonTooLarge, "string of %d bytes over limit %d", len(raw), p.lim.MaxStringLen)
			}
			if !utf8.Valid(raw) {
				return dst, reject(ReasonInvalidUTF8, "invalid UTF-8 in string")
			}
			return append(dst, raw...), nil
		}
		if c == '\\' {
			break
		}
		if c < 0x20 {
			return dst, reject(ReasonNotJSON, "control character in string at byte %d", p.i)
		}
		p.i++
	}
	dst = append(dst, p.src[start:p.i]...)
	for {
		if p.i >= len(p.src) {
			return dst, reject(ReasonNotJSON, "unterminated string")
		}
		c := p.src[p.i]
		switch {
		case c == '"':
			p.i++
			if n := len(dst) - base; n > p.lim.MaxStringLen {
				return dst, reject(ReasonTooLarge, "string of %d bytes over limit %d", n, p.lim.MaxStringLen)
			}
			if !utf8.Valid(dst[base:]) {
				return dst, reject(ReasonInvalidUTF8, "invalid UTF-8 in string")
			}
			return dst, nil
		case c < 0x20:
			return dst, reject(ReasonNotJSON, "control character in string at byte %d", p.i)
		case c != '\\':
			dst = append(dst, c)
			p.i++
			continue
		}
		if p.i+1 >= len(p.src) {
			return dst, reject(ReasonNotJSON, "unterminated escape")
		}
		e := p.src[p.i+1]
		p.i += 2
		switch e {
		case '"', '\\', '/':
			dst = append(dst, e)
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r, ok := p.hex4()
			if !ok {
				return dst, reject(ReasonNotJSON, "bad \\u escape at byte %d", p.i)
			}
			if r >= 0xD800 && r < 0xDC00 { // high surrogate: must pair with a low one
				if p.i+1 < len(p.src) && p.src[p.i] == '\\' && p.src[p.i+1] == 'u' {
					p.i += 2
					lo, ok := p.hex4()
					if !ok || lo < 0xDC00 || lo > 0xDFFF {
						return dst, reject(ReasonInvalidUTF8, "unpaired surrogate in string")
					}
					r = 0x10000 + (r-0xD800)<<10 + (lo - 0xDC00)
				} else {
					return dst, reject(ReasonInvalidUTF8, "unpaired surrogate in string")
				}
			} else if r >= 0xDC00 && r <= 0xDFFF {
				return dst, reject(ReasonInvalidUTF8, "unpaired surrogate in string")
			}
			dst = utf8.AppendRune(dst, r)
		default:
			return dst, reject(ReasonNotJSON, "bad escape at byte %d", p.i-1)
		}
	}
}

// hex4 reads exactly four hex digits.
func (p *parser) hex4() (rune, bool) {
	if p.i+4 > len(p.src) {
		return 0, false
	}
	var v rune
	for _, c := range p.src[p.i : p.i+4] {
		switch {
		case c >= '0' && c <= '9':
			v = v<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			v = v<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			v = v<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	p.i += 4
	return v, true
}

func (p *parser) number(dst []byte) ([]byte, error) {
	lit, neg, intPart, frac, exp, err := p.scanNumber()
	if err != nil {
		return dst, err
	}
	if !exp {
		if out, ok := appendDecimal(dst, neg, intPart, frac); ok {
			return out, nil
		}
	}
	f, err := strconv.ParseFloat(string(lit), 64)
	if err != nil || math.IsInf(f, 0) {
		return dst, reject(ReasonBadNumber, "number out of range for a double")
	}
	return appendESNumber(dst, f), nil
}

// skipNumber is number without output. A literal without an exponent, at most 64 bytes, is always a
// finite double, so only one with an exponent is parsed, as number would.
func (p *parser) skipNumber() error {
	lit, _, _, _, exp, err := p.scanNumber()
	if err != nil || !exp {
		return err
	}
	f, err := strconv.ParseFloat(string(lit), 64)
	if err != nil || math.IsInf(f, 0) {
		return reject(ReasonBadNumber, "number out of range for a double")
	}
	return nil
}

// scanNumber reads the number literal at p.i: the literal, its sign, integer and fraction digits, and
// whether it has an exponent. A literal over 64 bytes is rejected.
func (p *parser) scanNumber() (lit []byte, neg bool, intPart, frac []byte, exp bool, err error) {
	start := p.i
	neg = p.src[p.i] == '-'
	if neg {
		p.i++
	}
	digits := func() int {
		n := 0
		for p.i < len(p.src) && p.src[p.i] >= '0' && p.src[p.i] <= '9' {
			p.i++
			n++
		}
		return n
	}
	intStart := p.i
	if digits() == 0 {
		return nil, false, nil, nil, false, reject(ReasonNotJSON, "bad number at byte %d", start)
	}
	intEnd := p.i
	if p.src[intStart] == '0' && intEnd-intStart > 1 {
		return nil, false, nil, nil, false, reject(ReasonNotJSON, "leading zero in number at byte %d", start)
	}
	fracStart, fracEnd := intEnd, intEnd
	if p.i < len(p.src) && p.src[p.i] == '.' {
		p.i++
		fracStart = p.i
		if digits() == 0 {
			return nil, false, nil, nil, false, reject(ReasonNotJSON, "bad fraction at byte %d", start)
		}
		fracEnd = p.i
	}
	if p.i < len(p.src) && (p.src[p.i] == 'e' || p.src[p.i] == 'E') {
		exp = true
		p.i++
		if p.i < len(p.src) && (p.src[p.i] == '+' || p.src[p.i] == '-') {
			p.i++
		}
		if digits() == 0 {
			return nil, false, nil, nil, false, reject(ReasonNotJSON, "bad exponent at byte %d", start)
		}
	}
	lit = p.src[start:p.i]
	if len(lit) > 64 {
		return nil, false, nil, nil, false, reject(ReasonBadNumber, "number literal of %d bytes", len(lit))
	}
	return lit, neg, p.src[intStart:intEnd], p.src[fracStart:fracEnd], exp, nil
}

// appendDecimal appends the ECMAScript form of the decimal literal int.frac without going through a
// float, when that is exact: at most 15 significant digits (every such decimal is the shortest
// representation of the double nearest to it, DBL_DIG = 15) and, with no exponent and at most 64
// bytes, far inside the normal range of doubles. It reports false when the literal needs ParseFloat.
func appendDecimal(dst []byte, neg bool, intPart, frac []byte) ([]byte, bool) {
	var buf [64]byte
	d := append(append(buf[:0], intPart...), frac...)
	n := len(intPart) // position of the decimal point in d
	for len(d) > 0 && d[0] == '0' {
		d = d[1:]
		n--
	}
	for len(d) > 0 && d[len(d)-1] == '0' {
		d = d[:len(d)-1]
	}
	if len(d) == 0 {
		return append(dst, '0'), true // also for -0
	}
	if len(d) > 15 {
		return dst, false
	}
	if neg {
		dst = append(dst, '-')
	}
	return appendESDigits(dst, d, n), true
}

// appendESNumber prints f the way ECMAScript Number.prototype.toString does (RFC 8785 section 3.2.2.3).
func appendESNumber(dst []byte, f float64) []byte {
	if f == 0 {
		return append(dst, '0') // also for -0
	}
	if f < 0 {
		dst = append(dst, '-')
		f = -f
	}
	// Shortest round-trip digits and decimal exponent: d.ddddde±x
	var tmp [32]byte
	e := strconv.AppendFloat(tmp[:0], f, 'e', -1, 64)
	mant, exp, _ := bytes.Cut(e, []byte("e"))
	var dbuf [32]byte
	digits := dbuf[:0]
	for _, c := range mant {
		if c != '.' {
			digits = append(digits, c)
		}
	}
	x, _ := strconv.Atoi(string(exp))
	return appendESDigits(dst, digits, x+1)
}

// appendESDigits prints the positive number 0.digits × 10^n (digits without leading or trailing
// zeros) the way ECMAScript's Number.prototype.toString does.
func appendESDigits(dst, digits []byte, n int) []byte {
	k := len(digits)
	switch {
	case k <= n && n <= 21:
		dst = append(dst, digits...)
		for range n - k {
			dst = append(dst, '0')
		}
	case 0 < n && n <= 21:
		dst = append(dst, digits[:n]...)
		dst = append(dst, '.')
		dst = append(dst, digits[n:]...)
	case -6 < n && n <= 0:
		dst = append(dst, "0."...)
		for range -n {
			dst = append(dst, '0')
		}
		dst = append(dst, digits...)
	default:
		dst = append(dst, digits[0])
		if k > 1 {
			dst = append(dst, '.')
			dst = append(dst, digits[1:]...)
		}
		dst = append(dst, 'e')
		if n-1 >= 0 {
			dst = append(dst, '+')
		}
		dst = strconv.AppendInt(dst, int64(n-1), 10)
	}
	return dst
}

func appendString[S string | []byte](dst []byte, s S) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			dst = append(dst, '\\', c)
		case c >= 0x20:
			dst = append(dst, c)
		case c == '\b':
			dst = append(dst, '\\', 'b')
		case c == '\f':
			dst = append(dst, '\\', 'f')
		case c == '\n':
			dst = append(dst, '\\', 'n')
		case c == '\r':
			dst = append(dst, '\\', 'r')
		case c == '\t':
			dst = append(dst, '\\', 't')
		default:
			dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
		}
	}
	return append(dst, '"')
}

// compareKeys orders object keys as RFC 8785 requires (compareUTF16), comparing bytes directly where
// the keys first differ in an ASCII character.
func compareKeys(a, b []byte) int {
	n := min(len(a), len(b))
	i := 0
	for i < n && a[i] == b[i] {
		i++
	}
	if i == n {
		return len(a) - len(b)
	}
	if a[i] < utf8.RuneSelf && b[i] < utf8.RuneSelf {
		return int(a[i]) - int(b[i])
	}
	return compareUTF16(a, b)
}

// compareUTF16 orders strings by their UTF-16 code units, as RFC 8785 requires. For strings without
// characters above U+FFFF this equals byte order of the UTF-8 form.
func compareUTF16(a, b []byte) int {
	for len(a) > 0 && len(b) > 0 {
		ra, na := utf8.DecodeRune(a)
		rb, nb := utf8.DecodeRune(b)
		if ra != rb {
			ua, ub := utf16Key(ra), utf16Key(rb)
			if ua < ub {
				return -1
			}
			return 1
		}
		a, b = a[na:], b[nb:]
	}
	return len(a) - len(b)
}

// utf16Key maps a rune to its UTF-16 code units packed high unit first, so that comparing keys
// compares code-unit sequences: runes above U+FFFF become a surrogate pair (0xD800-0xDBFF first).
func utf16Key(r rune) int {
	if r >= 0x10000 {
		v := int(r - 0x10000)
		return (0xD800+v>>10)<<16 | (0xDC00 + v&0x3FF)
	}
	return int(r) << 16
}

// afterItem reads past what follows an object member or an array element: a ',' (more is true) or
// the container's closing byte (more is false), after any whitespace. what names the container in
// the errors ("object" or "array").
func (p *parser) afterItem(closing byte, what string) (more bool, err error) {
	p.skipWS()
	if p.i >= len(p.src) {
		return false, reject(ReasonNotJSON, "unterminated %s", what)
	}
	switch p.src[p.i] {
	case ',':
		p.i++
		return true, nil
	case closing:
		p.i++
		return false, nil
	}
	return false, reject(ReasonNotJSON, "expected ',' or '%c' at byte %d", closing, p.i)
}
