package forwarder

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"slices"
	"strings"

	"github.com/kinesis-events/pipeline/event"
)

// Redacted replaces each raw PII value in a quarantine record's original.
const Redacted = `"[redacted]"`

// piiPolicy checks configured paths (rooted at the EventBridge event: [detail properties email]).
type piiPolicy struct {
	paths [][]string
}

// span is a value's byte range in the document and its dotted path.
type span struct {
	start, end int
	path       string
}

// scan finds every value at a configured path that is not allowed (a token, null or ""). Every
// occurrence counts, duplicate keys included, and keys are compared after JSON unescaping, so
// neither a repeated key nor an escaped spelling hides a value. An error means doc is not JSON.
func (p *piiPolicy) scan(doc []byte) ([]span, error) {
	var spans []span
	if err := p.walk(doc, 0, 0, &spans); err != nil {
		return nil, err
	}
	return spans, nil
}

// walk visits the object in doc (at offset base of the whole document) at path depth depth.
func (p *piiPolicy) walk(doc []byte, base, depth int, spans *[]span) error {
	dec := json.NewDecoder(bytes.NewReader(doc))
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil // not an object: no path continues through it
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		key, _ := tok.(string)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return err
		}
		end := int(dec.InputOffset())
		start := end - len(raw)
		full, prefix := event.MatchPIIPath(p.paths, depth, key)
		switch {
		case full != nil:
			if !allowedPIIValue(raw) {
				*spans = append(*spans, span{start: base + start, end: base + end, path: strings.Join(full, ".")})
			}
		case prefix && raw[0] == '{':
			if err := p.walk(raw, base+start, depth+1, spans); err != nil {
				return err
			}
		}
	}
	if _, err := dec.Token(); err != nil {
		return err
	}
	if depth == 0 {
		if _, err := dec.Token(); !errors.Is(err, io.EOF) {
			return errors.New("trailing data")
		}
	}
	return nil
}

// allowedPIIValue: a token, null or the empty string.
func allowedPIIValue(raw json.RawMessage) bool {
	switch raw[0] {
	case 'n':
		return true
	case '"':
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return false
		}
		return s == "" || event.IsToken(s)
	}
	return false
}

// redact returns a copy of doc with every span replaced by Redacted, and the distinct paths.
func redact(doc []byte, spans []span) ([]byte, []string) {
	slices.SortFunc(spans, func(a, b span) int { return a.start - b.start })
	out := make([]byte, 0, len(doc))
	var paths []string
	at := 0
	for _, s := range spans {
		if s.start < at { // nested inside a span already redacted
			continue
		}
		out = append(out, doc[at:s.start]...)
		out = append(out, Redacted...)
		at = s.end
		if !slices.Contains(paths, s.path) {
			paths = append(paths, s.path)
		}
	}
	return append(out, doc[at:]...), paths
}
