package event

import (
	"bytes"
	"math"
	"slices"
	"strconv"
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
	p := parser{src: src, lim: lim}
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

type parser struct {
	src []byte
	i   int
	lim Limits
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
		s, err := p.str()
		if err != nil {
			return dst, err
		}
		return appendString(dst, s), nil
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

func (p *parser) literal(dst []byte, lit string) ([]byte, error) {
	if !bytes.HasPrefix(p.src[p.i:], []byte(lit)) {
		return dst, reject(ReasonNotJSON, "bad literal at byte %d", p.i)
	}
	p.i += len(lit)
	return append(dst, lit...), nil
}

type member struct {
	key string
	val []byte
}

func (p *parser) object(dst []byte, depth int) ([]byte, error) {
	if depth > p.lim.MaxDepth {
		return dst, reject(ReasonTooDeep, "nesting deeper than %d", p.lim.MaxDepth)
	}
	p.i++ // {
	var members []member
	p.skipWS()
	if p.i < len(p.src) && p.src[p.i] == '}' {
		p.i++
		return append(dst, "{}"...), nil
	}
	for {
		p.skipWS()
		if p.i >= len(p.src) || p.src[p.i] != '"' {
			return dst, reject(ReasonNotJSON, "expected object key at byte %d", p.i)
		}
		key, err := p.str()
		if err != nil {
			return dst, err
		}
		p.skipWS()
		if p.i >= len(p.src) || p.src[p.i] != ':' {
			return dst, reject(ReasonNotJSON, "expected ':' at byte %d", p.i)
		}
		p.i++
		p.skipWS()
		val, err := p.value(nil, depth)
		if err != nil {
			return dst, err
		}
		members = append(members, member{key: key, val: val})
		if len(members) > p.lim.MaxMembers {
			return dst, reject(ReasonTooLarge, "object with more than %d members", p.lim.MaxMembers)
		}
		p.skipWS()
		if p.i >= len(p.src) {
			return dst, reject(ReasonNotJSON, "unterminated object")
		}
		if p.src[p.i] == ',' {
			p.i++
			continue
		}
		if p.src[p.i] != '}' {
			return dst, reject(ReasonNotJSON, "expected ',' or '}' at byte %d", p.i)
		}
		p.i++
		break
	}
	slices.SortFunc(members, func(a, b member) int { return compareUTF16(a.key, b.key) })
	for k := 1; k < len(members); k++ {
		if members[k].key == members[k-1].key {
			return dst, reject(ReasonDuplicateKey, "duplicate key (%d bytes) in object", len(members[k].key))
		}
	}
	dst = append(dst, '{')
	for k, m := range members {
		if k > 0 {
			dst = append(dst, ',')
		}
		dst = appendString(dst, m.key)
		dst = append(dst, ':')
		dst = append(dst, m.val...)
	}
	return append(dst, '}'), nil
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
		p.skipWS()
		if p.i >= len(p.src) {
			return dst, reject(ReasonNotJSON, "unterminated array")
		}
		if p.src[p.i] == ',' {
			p.i++
			continue
		}
		if p.src[p.i] != ']' {
			return dst, reject(ReasonNotJSON, "expected ',' or ']' at byte %d", p.i)
		}
		p.i++
		return append(dst, ']'), nil
	}
}

// str parses a JSON string starting at the opening quote and returns its decoded value.
func (p *parser) str() (string, error) {
	p.i++ // opening quote
	start := p.i
	// Fast path: no escapes.
	for p.i < len(p.src) {
		c := p.src[p.i]
		if c == '"' {
			raw := p.src[start:p.i]
			p.i++
			if len(raw) > p.lim.MaxStringLen {
				return "", reject(ReasonTooLarge, "string of %d bytes over limit %d", len(raw), p.lim.MaxStringLen)
			}
			if !utf8.Valid(raw) {
				return "", reject(ReasonInvalidUTF8, "invalid UTF-8 in string")
			}
			return string(raw), nil
		}
		if c == '\\' {
			break
		}
		if c < 0x20 {
			return "", reject(ReasonNotJSON, "control character in string at byte %d", p.i)
		}
		p.i++
	}
	buf := append([]byte(nil), p.src[start:p.i]...)
	for {
		if p.i >= len(p.src) {
			return "", reject(ReasonNotJSON, "unterminated string")
		}
		c := p.src[p.i]
		switch {
		case c == '"':
			p.i++
			if len(buf) > p.lim.MaxStringLen {
				return "", reject(ReasonTooLarge, "string of %d bytes over limit %d", len(buf), p.lim.MaxStringLen)
			}
			if !utf8.Valid(buf) {
				return "", reject(ReasonInvalidUTF8, "invalid UTF-8 in string")
			}
			return string(buf), nil
		case c < 0x20:
			return "", reject(ReasonNotJSON, "control character in string at byte %d", p.i)
		case c != '\\':
			buf = append(buf, c)
			p.i++
			continue
		}
		if p.i+1 >= len(p.src) {
			return "", reject(ReasonNotJSON, "unterminated escape")
		}
		e := p.src[p.i+1]
		p.i += 2
		switch e {
		case '"', '\\', '/':
			buf = append(buf, e)
		case 'b':
			buf = append(buf, '\b')
		case 'f':
			buf = append(buf, '\f')
		case 'n':
			buf = append(buf, '\n')
		case 'r':
			buf = append(buf, '\r')
		case 't':
			buf = append(buf, '\t')
		case 'u':
			r, ok := p.hex4()
			if !ok {
				return "", reject(ReasonNotJSON, "bad \\u escape at byte %d", p.i)
			}
			if r >= 0xD800 && r < 0xDC00 { // high surrogate: must pair with a low one
				if p.i+1 < len(p.src) && p.src[p.i] == '\\' && p.src[p.i+1] == 'u' {
					p.i += 2
					lo, ok := p.hex4()
					if !ok || lo < 0xDC00 || lo > 0xDFFF {
						return "", reject(ReasonInvalidUTF8, "unpaired surrogate in string")
					}
					r = 0x10000 + (r-0xD800)<<10 + (lo - 0xDC00)
				} else {
					return "", reject(ReasonInvalidUTF8, "unpaired surrogate in string")
				}
			} else if r >= 0xDC00 && r <= 0xDFFF {
				return "", reject(ReasonInvalidUTF8, "unpaired surrogate in string")
			}
			buf = utf8.AppendRune(buf, r)
		default:
			return "", reject(ReasonNotJSON, "bad escape at byte %d", p.i-1)
		}
	}
}

func (p *parser) hex4() (rune, bool) {
	if p.i+4 > len(p.src) {
		return 0, false
	}
	v, err := strconv.ParseUint(string(p.src[p.i:p.i+4]), 16, 32)
	if err != nil {
		return 0, false
	}
	p.i += 4
	return rune(v), true
}

func (p *parser) number(dst []byte) ([]byte, error) {
	start := p.i
	if p.src[p.i] == '-' {
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
		return dst, reject(ReasonNotJSON, "bad number at byte %d", start)
	}
	if p.src[intStart] == '0' && p.i-intStart > 1 {
		return dst, reject(ReasonNotJSON, "leading zero in number at byte %d", start)
	}
	if p.i < len(p.src) && p.src[p.i] == '.' {
		p.i++
		if digits() == 0 {
			return dst, reject(ReasonNotJSON, "bad fraction at byte %d", start)
		}
	}
	if p.i < len(p.src) && (p.src[p.i] == 'e' || p.src[p.i] == 'E') {
		p.i++
		if p.i < len(p.src) && (p.src[p.i] == '+' || p.src[p.i] == '-') {
			p.i++
		}
		if digits() == 0 {
			return dst, reject(ReasonNotJSON, "bad exponent at byte %d", start)
		}
	}
	lit := p.src[start:p.i]
	if len(lit) > 64 {
		return dst, reject(ReasonBadNumber, "number literal of %d bytes", len(lit))
	}
	f, err := strconv.ParseFloat(string(lit), 64)
	if err != nil || math.IsInf(f, 0) {
		return dst, reject(ReasonBadNumber, "number out of range for a double")
	}
	return appendESNumber(dst, f), nil
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
	digits := make([]byte, 0, len(mant))
	for _, c := range mant {
		if c != '.' {
			digits = append(digits, c)
		}
	}
	x, _ := strconv.Atoi(string(exp))
	k := len(digits)
	n := x + 1 // position of the decimal point relative to the digits
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

func appendString(dst []byte, s string) []byte {
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

// compareUTF16 orders strings by their UTF-16 code units, as RFC 8785 requires. For strings without
// characters above U+FFFF this equals byte order of the UTF-8 form.
func compareUTF16(a, b string) int {
	for len(a) > 0 && len(b) > 0 {
		ra, na := utf8.DecodeRuneInString(a)
		rb, nb := utf8.DecodeRuneInString(b)
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
