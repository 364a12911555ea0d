package event

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"
)

// Redacted is what a raw PII value is replaced with in a record kept for inspection (a quarantine
// record's original).
const Redacted = `"[redacted]"`

// PIIPolicy names the detail fields that must hold tokens (see Tokenizer): a value at a configured
// path must be a token, null or the empty string. Paths are dotted and relative to the detail object,
// e.g. "customer_id" or "properties.email"; a path continues only through objects. Every occurrence
// counts (also a repeated key), and keys are compared after JSON unescaping, so neither a duplicate
// key nor an escaped spelling hides a value. Safe for concurrent use.
type PIIPolicy struct {
	paths [][]string // rooted at the detail
}

// NewPIIPolicy parses dotted detail paths. Empty entries are skipped; no paths gives a nil policy,
// which allows everything.
func NewPIIPolicy(paths []string) (*PIIPolicy, error) {
	p := &PIIPolicy{}
	for _, s := range paths {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		parts := strings.Split(s, ".")
		if slices.Contains(parts, "") {
			return nil, fmt.Errorf("PII path %q has an empty segment", s)
		}
		p.paths = append(p.paths, parts)
	}
	if len(p.paths) == 0 {
		return nil, nil
	}
	return p, nil
}

// Paths returns the configured paths, dotted.
func (p *PIIPolicy) Paths() []string {
	if p == nil {
		return nil
	}
	out := make([]string, len(p.paths))
	for i, path := range p.paths {
		out[i] = strings.Join(path, ".")
	}
	return out
}

// Covers reports whether field (a top-level detail member, e.g. "customer_id") is a configured path.
func (p *PIIPolicy) Covers(field string) bool {
	if p == nil {
		return false
	}
	for _, path := range p.paths {
		if len(path) == 1 && path[0] == field {
			return true
		}
	}
	return false
}

// CheckDetail checks a detail object's bytes. It returns nil when every value at a configured path
// is allowed, an *Error with ReasonRawPII naming the paths (never the values) when one is not, or an
// *Error with ReasonNotJSON when detail is not a JSON object.
func (p *PIIPolicy) CheckDetail(detail []byte) error {
	if p == nil {
		return nil
	}
	spans, err := p.scan(detail, p.paths)
	if err != nil {
		return err
	}
	if len(spans) == 0 {
		return nil
	}
	return reject(ReasonRawPII, "values that are not tokens at %s", strings.Join(spanPaths(spans), ", "))
}

// RedactRaw returns a copy of a raw-stream record (an event.Raw in JSON, the paths taken under its
// "detail") with every value at a configured path that is not allowed replaced by Redacted, and the
// dotted detail paths redacted. ok is false when the record is not JSON that can be searched: then
// nothing of it may be kept, since it cannot be shown to be free of raw PII. A nil policy returns the
// record as is.
func (p *PIIPolicy) RedactRaw(record []byte) (out []byte, paths []string, ok bool) {
	if p == nil {
		return record, nil, true
	}
	rooted := make([][]string, len(p.paths))
	for i, path := range p.paths {
		rooted[i] = append([]string{"detail"}, path...)
	}
	if !json.Valid(record) || !utf8.Valid(record) {
		return nil, nil, false
	}
	spans, err := p.scan(record, rooted)
	if err != nil {
		return nil, nil, false
	}
	if len(spans) == 0 {
		return record, nil, true
	}
	slices.SortFunc(spans, func(a, b piiSpan) int { return a.start - b.start })
	out = make([]byte, 0, len(record))
	at := 0
	for _, s := range spans {
		if s.start < at { // inside a value already redacted
			continue
		}
		out = append(out, record[at:s.start]...)
		out = append(out, Redacted...)
		at = s.end
	}
	out = append(out, record[at:]...)
	paths = spanPaths(spans)
	for i, s := range paths {
		paths[i] = strings.TrimPrefix(s, "detail.")
	}
	return out, paths, true
}

// piiSpan is a disallowed value's byte range and its dotted path.
type piiSpan struct {
	start, end int
	path       string
}

func spanPaths(spans []piiSpan) []string {
	var out []string
	for _, s := range spans {
		if !slices.Contains(out, s.path) {
			out = append(out, s.path)
		}
	}
	return out
}

// scan finds every disallowed value at paths in the object doc. It is bounds-checked throughout and
// reports malformed input as ReasonNotJSON rather than trusting it.
func (p *PIIPolicy) scan(doc []byte, paths [][]string) ([]piiSpan, error) {
	w := piiWalker{src: doc, paths: paths}
	w.ws()
	if w.i >= len(w.src) || w.src[w.i] != '{' {
		return nil, reject(ReasonNotJSON, "not a JSON object")
	}
	if err := w.object(0); err != nil {
		return nil, err
	}
	w.ws()
	if w.i != len(w.src) {
		return nil, reject(ReasonNotJSON, "trailing data at byte %d", w.i)
	}
	return w.spans, nil
}

type piiWalker struct {
	src   []byte
	i     int
	paths [][]string
	spans []piiSpan
}

func (w *piiWalker) ws() {
	for w.i < len(w.src) && (w.src[w.i] == ' ' || w.src[w.i] == '\t' || w.src[w.i] == '\n' || w.src[w.i] == '\r') {
		w.i++
	}
}

// object walks the object at w.i whose members are at path depth depth.
func (w *piiWalker) object(depth int) error {
	if depth > DefaultLimits.MaxDepth {
		return reject(ReasonTooDeep, "nesting deeper than %d", DefaultLimits.MaxDepth)
	}
	w.i++ // {
	w.ws()
	if w.i < len(w.src) && w.src[w.i] == '}' {
		w.i++
		return nil
	}
	for {
		w.ws()
		if w.i >= len(w.src) || w.src[w.i] != '"' {
			return reject(ReasonNotJSON, "expected object key at byte %d", w.i)
		}
		ks := w.i
		if err := w.skipString(); err != nil {
			return err
		}
		var key string
		if raw := w.src[ks:w.i]; bytes.IndexByte(raw, '\\') < 0 {
			key = string(raw[1 : len(raw)-1])
		} else if err := json.Unmarshal(raw, &key); err != nil {
			return reject(ReasonNotJSON, "bad string at byte %d", ks)
		}
		w.ws()
		if w.i >= len(w.src) || w.src[w.i] != ':' {
			return reject(ReasonNotJSON, "expected ':' at byte %d", w.i)
		}
		w.i++
		w.ws()
		if w.i >= len(w.src) {
			return reject(ReasonNotJSON, "unexpected end of input")
		}
		full, prefix := MatchPIIPath(w.paths, depth, key)
		start := w.i
		switch {
		case prefix && full == nil && w.src[w.i] == '{':
			if err := w.object(depth + 1); err != nil {
				return err
			}
		default:
			if err := w.skipValue(0); err != nil {
				return err
			}
		}
		if full != nil && !allowedPII(w.src[start:w.i]) {
			w.spans = append(w.spans, piiSpan{start: start, end: w.i, path: strings.Join(full, ".")})
		}
		w.ws()
		if w.i >= len(w.src) {
			return reject(ReasonNotJSON, "unterminated object")
		}
		switch w.src[w.i] {
		case ',':
			w.i++
		case '}':
			w.i++
			return nil
		default:
			return reject(ReasonNotJSON, "expected ',' or '}' at byte %d", w.i)
		}
	}
}

// MatchPIIPath reports which of paths (split dotted detail paths) ends at key at this depth (full),
// and whether one continues below key (prefix). A walk that descends only along the paths reaches a
// depth only along one of them, so comparing the segment at depth with key is enough. Shared by the
// worker's policy and the forwarder's.
func MatchPIIPath(paths [][]string, depth int, key string) (full []string, prefix bool) {
	for _, path := range paths {
		if len(path) <= depth || path[depth] != key {
			continue
		}
		if len(path) == depth+1 {
			full = path
		} else {
			prefix = true
		}
	}
	return full, prefix
}

func (w *piiWalker) skipString() error {
	w.i++ // opening quote
	for w.i < len(w.src) {
		switch c := w.src[w.i]; {
		case c == '"':
			w.i++
			return nil
		case c == '\\':
			w.i += 2
		case c < 0x20:
			return reject(ReasonNotJSON, "control character in string at byte %d", w.i)
		default:
			w.i++
		}
	}
	return reject(ReasonNotJSON, "unterminated string")
}

// skipValue moves past one value; its syntax is checked only as far as finding its end needs (the
// callers validate documents first).
func (w *piiWalker) skipValue(depth int) error {
	if depth > DefaultLimits.MaxDepth {
		return reject(ReasonTooDeep, "nesting deeper than %d", DefaultLimits.MaxDepth)
	}
	if w.i >= len(w.src) {
		return reject(ReasonNotJSON, "unexpected end of input")
	}
	switch w.src[w.i] {
	case '"':
		return w.skipString()
	case '{', '[':
		closer := byte('}')
		if w.src[w.i] == '[' {
			closer = ']'
		}
		w.i++
		for {
			w.ws()
			if w.i >= len(w.src) {
				return reject(ReasonNotJSON, "unterminated value")
			}
			switch w.src[w.i] {
			case closer:
				w.i++
				return nil
			case ',', ':':
				w.i++
				continue
			}
			if err := w.skipValue(depth + 1); err != nil {
				return err
			}
		}
	default:
		start := w.i
		for w.i < len(w.src) && !strings.ContainsRune(",}]: \t\r\n", rune(w.src[w.i])) {
			w.i++
		}
		if w.i == start {
			return reject(ReasonNotJSON, "unexpected byte at %d", w.i)
		}
		return nil
	}
}

// allowedPII: a token, null or the empty string.
func allowedPII(raw []byte) bool {
	switch {
	case string(raw) == "null" || string(raw) == `""`:
		return true
	case len(raw) < 2 || raw[0] != '"':
		return false
	case bytes.IndexByte(raw, '\\') < 0:
		return IsToken(string(raw[1 : len(raw)-1]))
	}
	var s string
	return json.Unmarshal(raw, &s) == nil && IsToken(s)
}
