package processors

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/kinesis-events/pipeline/event"
	"github.com/kinesis-events/pipeline/internal/kinesisfake"
	"github.com/kinesis-events/pipeline/internal/names"
)

const (
	rawEmail = "jane.doe@example.com"
	rawName  = "Jane Q. Doe"
)

func piiTokens(t testing.TB) (email, cust string) {
	t.Helper()
	tk, err := event.NewTokenizer([]byte(strings.Repeat("t", 32)))
	if err != nil {
		t.Fatal(err)
	}
	return tk.Token("email", rawEmail), tk.Token("customer", "c1")
}

// TestPIIPolicy: events with raw values at the configured paths are quarantined with raw_pii, and
// no raw value appears in any stream, in the dedupe store or in a log line, whatever the reason a
// record is quarantined for; clean events are routed as usual.
func TestPIIPolicy(t *testing.T) {
	cfg := testConfig()
	cfg.PIIPaths = []string{"properties.email", "properties.name", "customer_id"}
	core, logs := observer.New(zap.DebugLevel)
	h := newHarness(t, cfg)
	p, err := New(cfg, Deps{Kinesis: h.kin, Dedupe: h.store, Keys: h.kr, Logger: zap.New(core), Registerer: prometheus.NewRegistry(), Now: h.clock.Now, Sleep: h.clock.Sleep})
	if err != nil {
		t.Fatal(err)
	}
	h.p = p
	emailTok, custTok := piiTokens(t)
	good := raw(t, h.kr, ev{id: "g1", cust: custTok, seq: 1, props: `{"email":"` + emailTok + `","name":null,"path":"/"}`})
	cases := []struct {
		name     string
		data     []byte
		want     event.Reason
		withheld bool
	}{
		{"raw email", raw(t, h.kr, ev{id: "p1", cust: custTok, seq: 2, props: `{"email":"` + rawEmail + `"}`}), event.ReasonRawPII, false},
		{"raw name, escaped key", raw(t, h.kr, ev{id: "p2", cust: custTok, seq: 2, props: `{"n\u0061me":"` + rawName + `"}`}), event.ReasonRawPII, false},
		{"raw customer id", raw(t, h.kr, ev{id: "p3", cust: rawEmail, seq: 1}), event.ReasonRawPII, false},
		{"raw email and a bad signature", bytes.Replace(raw(t, h.kr, ev{id: "p4", cust: custTok, seq: 2, props: `{"email":"` + rawEmail + `","n":1}`}), []byte(`"n":1`), []byte(`"n":2`), 1), event.ReasonBadSignature, false},
		{"raw email, unknown key", raw(t, h.kr, ev{id: "p5", cust: rawEmail, seq: 2, key: "k9", props: `{"email":"` + rawEmail + `"}`}), event.ReasonUnknownKey, false},
		{"raw email in a duplicate key", []byte(strings.Replace(string(raw(t, h.kr, ev{id: "p6", cust: custTok, seq: 2, props: `{"email":"` + emailTok + `"}`})), `"email":"`, `"email":"`+rawEmail+`","email":"`, 1)), event.ReasonDuplicateKey, false},
		{"raw email, not JSON", []byte(`{"v":1,"detail":{"properties":{"email":"` + rawEmail + `"}`), event.ReasonNotJSON, true},
		{"raw email, invalid UTF-8", []byte("{\"v\":1,\"detail\":{\"properties\":{\"email\":\"" + rawEmail + "\xff\"}}}"), event.ReasonInvalidUTF8, true},
	}
	recs := []Record{{SequenceNumber: h.gen.next(), Data: good, ArrivedAt: t0}}
	for _, tc := range cases {
		recs = append(recs, Record{SequenceNumber: h.gen.next(), Data: tc.data, ArrivedAt: t0})
	}
	after := h.recs(ev{id: "g2", cust: custTok, seq: 2})
	recs = append(recs, after...)
	if wm := h.process(h.open("shard-pii"), recs); wm != after[0].SequenceNumber {
		t.Fatalf("watermark %q, want past every record", wm)
	}
	if got := len(h.kin.Records(names.AnalyticsStream("page_view"))); got != 2 {
		t.Fatalf("%d analytics records, want the 2 clean events", got)
	}
	bySeq := map[string]event.Quarantine{}
	for _, q := range quarantine(t, h.kin, names.QuarantineStream) {
		bySeq[q.SourceSeq] = q
	}
	for i, tc := range cases {
		q, ok := bySeq[recs[i+1].SequenceNumber]
		if !ok {
			t.Fatalf("%s: not quarantined", tc.name)
		}
		if q.Reason != tc.want {
			t.Errorf("%s: reason %s (%s), want %s", tc.name, q.Reason, q.Detail, tc.want)
		}
		if tc.withheld {
			if q.Original != nil || !strings.Contains(q.Detail, "original withheld") {
				t.Errorf("%s: original not withheld: %+v", tc.name, q)
			}
		} else if !bytes.Contains(q.Original, []byte(event.Redacted)) || !strings.Contains(q.Detail, "original redacted") {
			t.Errorf("%s: original not redacted: %s (%s)", tc.name, q.Original, q.Detail)
		}
	}
	// No raw value anywhere: every stream (records and partition keys), the dedupe store, the logs.
	for stream, rs := range h.kin.All() {
		for _, r := range rs {
			if hasRaw(string(r.Data)) || hasRaw(r.Key) {
				t.Errorf("raw PII in %s: key %q data %s", stream, r.Key, r.Data)
			}
		}
	}
	h.mem.mu.Lock()
	for k := range h.mem.items {
		if hasRaw(k) {
			t.Errorf("raw PII in the dedupe store: %q", k)
		}
	}
	h.mem.mu.Unlock()
	for _, l := range logs.All() {
		b, _ := json.Marshal(l.ContextMap())
		if hasRaw(l.Message + string(b)) {
			t.Errorf("raw PII logged: %s %s", l.Message, b)
		}
	}
}

// TestPIIDeadLetter: a quarantine record that cannot be written is dead-lettered, and the dead
// letter's original is the redacted one too.
func TestPIIDeadLetter(t *testing.T) {
	cfg := testConfig()
	cfg.PIIPaths = []string{"properties.email"}
	h := newHarness(t, cfg)
	h.kin.Set(func(f *kinesisfake.Fake) {
		f.EntryErr = func(e kinesisfake.Entry) string {
			if e.Stream == names.QuarantineStream {
				return "InternalFailure"
			}
			return ""
		}
	})
	_, custTok := piiTokens(t)
	h.process(h.open("s"), h.recs(ev{id: "p1", cust: custTok, seq: 1, props: `{"email":"` + rawEmail + `"}`}))
	dls := deadLetters(t, h.kin, names.DLQStream)
	if len(dls) != 1 {
		t.Fatalf("%d dead letters", len(dls))
	}
	if hasRaw(string(dls[0].Original)) || !bytes.Contains(dls[0].Original, []byte(event.Redacted)) {
		t.Fatalf("dead letter original %s", dls[0].Original)
	}
}

func TestPIIConfig(t *testing.T) {
	cfg := testConfig()
	cfg.PIIPaths = []string{"properties..email"}
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "empty segment") {
		t.Fatalf("bad path accepted: %v", err)
	}
}

func hasRaw(s string) bool { return strings.Contains(s, rawEmail) || strings.Contains(s, rawName) }

// FuzzDecodeRecord runs arbitrary records through the worker's verify stage with the PII policy on.
//
// Invariant: decode never panics; each record becomes exactly one of an accepted event (decoded,
// signature verified, no raw value at a configured path) or a quarantine entry with a reason whose
// kept original, if any, holds nothing left to redact; and the encoded quarantine record is valid
// JSON within the Kinesis record limit.
func FuzzDecodeRecord(f *testing.F) {
	kr := testKeyring(f)
	emailTok, custTok := piiTokens(f)
	for _, e := range []ev{
		{id: "g1", cust: custTok, seq: 1, props: `{"email":"` + emailTok + `","a":[1,{"b":null}]}`},
		{id: "p1", cust: custTok, seq: 2, props: `{"email":"` + rawEmail + `"}`},
		{id: "p2", cust: rawEmail, seq: 1},
		{id: "o1", cust: custTok, seq: 1, key: "old"},
	} {
		f.Add(raw(f, kr, e))
	}
	for _, s := range []string{`{}`, `[]`, `{"v":1}`, "\xff", `{"v":1,"type":"page_view","detail":{"properties":{"email":"x"}}}`} {
		f.Add([]byte(s))
	}
	cfg := testConfig()
	cfg.PIIPaths = []string{"properties.email", "customer_id"}
	p, err := New(cfg, Deps{Kinesis: kinesisfake.New(), Dedupe: NewMemoryDedupe(nil), Keys: kr, Now: newClock().Now})
	if err != nil {
		f.Fatal(err)
	}
	s := openShard(f, p, "fuzz") // decode touches only the shard's scratch buffer
	f.Fuzz(func(t *testing.T, data []byte) {
		e, q := s.decode(&Record{SequenceNumber: "1", Data: data}, 0, t0)
		switch {
		case (e == nil) == (q == nil):
			t.Fatalf("accepted %v and quarantined %v", e != nil, q != nil)
		case e != nil:
			if err := p.pii.CheckDetail(e.raw.Detail); err != nil {
				t.Fatalf("accepted an event with raw PII: %v", err)
			}
			if err := p.keys.Verify(e.raw.Type, e.d, t0); err != nil {
				t.Fatalf("accepted an event that does not verify: %v", err)
			}
		default:
			if q.reason == "" {
				t.Fatal("quarantined without a reason")
			}
			// Redacting a kept original again changes nothing: only allowed values and the markers.
			if q.data != nil {
				if again, _, ok := p.pii.RedactRaw(q.data); !ok || !bytes.Equal(again, q.data) {
					t.Fatalf("kept original still holds raw values: %q", q.data)
				}
			}
			if (q.customerID != "" && !event.IsToken(q.customerID)) || strings.Contains(q.detail, rawEmail) {
				t.Fatalf("raw customer id or value kept: %+v", q)
			}
			rec := encodeQuarantine(q, s.id, t0)
			if !json.Valid(rec) || len(rec) > maxKinesisRecord {
				t.Fatalf("quarantine record of %d bytes, valid %v", len(rec), json.Valid(rec))
			}
		}
	})
}
