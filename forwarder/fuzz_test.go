package forwarder

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/kinesis-events/pipeline/event"
	"github.com/kinesis-events/pipeline/internal/kinesisfake"
	"github.com/kinesis-events/pipeline/internal/names"
)

// FuzzPrepare feeds arbitrary bytes to the forwarder's decision.
//
// Invariant: prepare never panics and every input ends as exactly one of
//   - a raw record: at most 1 MiB with its partition key, accepted by the worker's event.DecodeRaw,
//     partitioned by its customer_id, carrying the input's detail bytes verbatim, and, under the PII
//     policy, holding only tokens at the configured paths;
//   - a quarantine record: at most 1 MiB, an event.Quarantine with a reason and Stage "forwarder",
//     whose original, under the PII policy, holds no flagged value except the "[redacted]" marker;
//   - a blank line (only white space).
//
// And prepare decides exactly what prepareByRecord decides: the same record or quarantine record,
// byte for byte, with the same key, event id and reason.
func FuzzPrepare(f *testing.F) {
	good := goodLine("e1", "c1", 1)
	for _, s := range []string{
		good, "", " ", "null", "[]", `{}`, `{"detail":null}`, "\xff",
		strings.Replace(good, `"seq":1`, `"seq":1,"seq":2`, 1),
		strings.Replace(good, `"source":"shop.web"`, `"source":"a","source":"b"`, 1),
		bridge("page_view", detail("e1", "c1", 1, `{"email":"jane@example.com","a":[1,{"b":null}]}`)),
		bridge("page_view", detail("e1", "tok_aaaaaaaaaaaaaaaaaaaaaaaaaa", 1, `{"email":"tok_aaaaaaaaaaaaaaaaaaaaaaaaaa"}`)),
		bridge("page_view", detail("e1", "c1", 1, `{"em\u0061il":1e999}`)),
		good + good,
	} {
		f.Add([]byte(s))
	}
	plain := newTestForwarder(f, kinesisfake.New(), nil)
	pii := newTestForwarder(f, kinesisfake.New(), func(c *Config) { c.PIIPaths = []string{"properties.email", "customer_id"} })
	f.Fuzz(func(t *testing.T, in []byte) {
		for _, fw := range []*Forwarder{plain, pii} {
			e := fw.prepare(newInput(in, 1, "fuzz"))
			if want := prepareByRecord(fw, newInput(in, 1, "fuzz")); e.lane != want.lane || e.key != want.key ||
				e.eventID != want.eventID || e.reason != want.reason || !bytes.Equal(e.data, want.data) {
				t.Fatalf("%q: prepare: %d %q %q %q %s; by the record: %d %q %q %q %s", in,
					e.lane, e.key, e.eventID, e.reason, e.data, want.lane, want.key, want.eventID, want.reason, want.data)
			}
			switch e.lane {
			case laneBlank:
				if len(bytes.TrimSpace(in)) != 0 {
					t.Fatalf("non-blank input treated as blank: %q", in)
				}
			case laneRaw:
				if e.size() > MaxRecordBytes {
					t.Fatalf("raw record of %d bytes", e.size())
				}
				_, d, err := event.DecodeRaw(e.data)
				if err != nil {
					t.Fatalf("forwarded a record the worker rejects: %v", err)
				}
				if d.CustomerID != e.key {
					t.Fatalf("key %q for customer %q", e.key, d.CustomerID)
				}
				var r event.Raw
				if err := json.Unmarshal(e.data, &r); err != nil || !bytes.Contains(in, r.Detail) {
					t.Fatalf("detail not verbatim (%v): %s", err, r.Detail)
				}
				if fw.pii != nil {
					if spans, err := fw.pii.scan(in); err != nil || len(spans) > 0 {
						t.Fatalf("forwarded raw PII: %v %v", err, spans)
					}
				}
			case laneQuarantine:
				q := decodeQuarantine(t, e.data)
				if fw.pii != nil && q.Original != nil {
					spans, err := fw.pii.scan(q.Original)
					if err != nil {
						t.Fatalf("redacted original no longer parses: %v", err)
					}
					for _, s := range spans {
						if string(q.Original[s.start:s.end]) != Redacted {
							t.Fatalf("raw value left at %s: %s", s.path, q.Original[s.start:s.end])
						}
					}
				}
			default:
				t.Fatalf("lane %d", e.lane)
			}
		}
	})
}

// prepareByRecord is prepare as it decided before the detail's walk in decodeEnvelope decided for
// the record (event.CheckDetail): the input validated, then its members read (decodeEnvelopeTwoPass),
// the record built, then all of it checked by event.CheckRaw.
func prepareByRecord(f *Forwarder, in input) *entry {
	now := f.cfg.Now()
	if in.truncated || len(bytes.TrimSpace(in.data)) == 0 || !utf8.Valid(in.data) {
		return f.prepare(in)
	}
	env, err := decodeEnvelopeTwoPass(in.data)
	if err != nil {
		reason, msg := rejection(err)
		e := f.quarantine(in, nil, reason, msg, now)
		e.orig = in.data
		return e
	}
	// env.check is the zero DetailCheck, which decides nothing: its Decide is event.CheckRaw.
	e := f.prepareEnvelope(in, env, now)
	e.orig = in.data
	return e
}

// TestLogsCarryNoPayload: whatever happens to an event, no log line carries its payload values.
func TestLogsCarryNoPayload(t *testing.T) {
	core, logs := observer.New(zap.DebugLevel)
	kin := kinesisfake.New()
	kin.EntryErr = func(e kinesisfake.Entry) string {
		if e.Key == "c2" {
			return "InternalFailure"
		}
		return ""
	}
	f := newTestForwarder(t, kin, func(c *Config) {
		c.Logger, c.MaxAttempts = zap.New(core), 2
		c.PIIPaths = []string{"properties.email"}
	})
	secret := "jane.doe@example.com"
	in := lines(
		bridge("page_view", detail("e1", "c1", 1, `{"email":"`+secret+`"}`)),           // raw PII: quarantined
		bridge("page_view", detail("e2", "c2", 1, `{"note":"`+secret+`"}`)),            // fails to write
		`{"detail-type":"x","detail":{"customer_id":"`+secret+`"`,                      // not JSON
		bridge("page_view", detail("e3", "c3", 1, `{"email":"`+secret+`","email":1}`)), // duplicate key
	)
	_, err := f.ForwardStream(t.Context(), strings.NewReader(in), StreamOptions{})
	if err == nil {
		t.Fatal("expected the c2 event to fail")
	}
	if strings.Contains(err.Error(), secret) {
		t.Fatalf("error carries the payload: %v", err)
	}
	if _, err := f.Invoke(t.Context(), []byte(bridge("page_view", detail("e4", "c2", 1, `{"email":"`+secret+`x"}`)))); err != nil {
		t.Fatal(err)
	}
	if logs.Len() == 0 {
		t.Fatal("nothing logged: the test would prove nothing")
	}
	for _, l := range logs.All() {
		b, err := json.Marshal(l.ContextMap())
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(l.Message+string(b), secret) {
			t.Fatalf("log line carries the payload: %s %s", l.Message, b)
		}
	}
	for _, r := range written(kin, names.QuarantineStream) {
		if strings.Contains(string(r.data), secret) {
			t.Fatalf("quarantine record carries raw PII: %s", r.data)
		}
		q := decodeQuarantine(t, r.data)
		if strings.Contains(string(q.Original), secret) {
			t.Fatalf("quarantine original carries raw PII: %s", q.Original)
		}
	}
}
