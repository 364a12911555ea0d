package forwarder

import (
	"strings"
	"testing"

	"github.com/kinesis-events/pipeline/event"
	"github.com/kinesis-events/pipeline/internal/kinesisfake"
)

const rawEmail = "jane.doe@example.com"

func TestPIIPolicy(t *testing.T) {
	tk, err := event.NewTokenizer([]byte(strings.Repeat("k", 32)))
	if err != nil {
		t.Fatal(err)
	}
	emailTok := tk.Token("email", rawEmail)
	custTok := tk.Token("customer", "cust-1")
	props := func(email string) string { return `{"email":` + email + `,"path":"/"}` }
	tests := []struct {
		name       string
		in         string
		want       event.Reason // "" = forwarded
		withheld   bool         // original withheld entirely
		redactedAt string       // a path named in the detail
	}{
		{"token passes", bridge("page_view", detail("e1", custTok, 1, props(`"`+emailTok+`"`))), "", false, ""},
		{"absent field passes", bridge("page_view", detail("e1", custTok, 1, `{"path":"/"}`)), "", false, ""},
		{"null passes", bridge("page_view", detail("e1", custTok, 1, props(`null`))), "", false, ""},
		{"empty string passes", bridge("page_view", detail("e1", custTok, 1, props(`""`))), "", false, ""},
		{"raw email", bridge("page_view", detail("e1", custTok, 1, props(`"`+rawEmail+`"`))), event.ReasonRawPII, false, "detail.properties.email"},
		{"escaped key spelling", bridge("page_view", detail("e1", custTok, 1, `{"em\u0061il":"`+rawEmail+`"}`)), event.ReasonRawPII, false, "detail.properties.email"},
		{"number instead of token", bridge("page_view", detail("e1", custTok, 1, props(`5551234`))), event.ReasonRawPII, false, "detail.properties.email"},
		{"object instead of token", bridge("page_view", detail("e1", custTok, 1, props(`{"v":"`+rawEmail+`"}`))), event.ReasonRawPII, false, "detail.properties.email"},
		{"raw customer id", bridge("page_view", detail("e1", rawEmail, 1, `{}`)), event.ReasonRawPII, false, "detail.customer_id"},
		{"duplicate key hides a raw value", bridge("page_view", detail("e1", custTok, 1, `{"email":"`+emailTok+`","email":"`+rawEmail+`"}`)), event.ReasonDuplicateKey, false, "detail.properties.email"},
		{"other defect with raw PII", bridge("page_view", detail("e1", custTok, 0, props(`"`+rawEmail+`"`))), event.ReasonMissingField, false, "detail.properties.email"},
		{"unparseable input is withheld", `{"detail":{"properties":{"email":"` + rawEmail + `"}`, event.ReasonNotJSON, true, ""},
	}
	f := newTestForwarder(t, kinesisfake.New(), func(c *Config) { c.PIIPaths = []string{"properties.email", "customer_id"} })
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := f.prepare(newInput([]byte(tc.in), 1, "in"))
			if tc.want == "" {
				if e.lane != laneRaw {
					t.Fatalf("quarantined: %s", e.data)
				}
				return
			}
			if e.lane != laneQuarantine || e.reason != tc.want {
				t.Fatalf("lane %d reason %s, want %s", e.lane, e.reason, tc.want)
			}
			// No trace of the raw value anywhere in the record, nor in its decoded original.
			if strings.Contains(string(e.data), rawEmail) || strings.Contains(e.key, rawEmail) {
				t.Fatalf("raw PII in the quarantine record: %s", e.data)
			}
			q := decodeQuarantine(t, e.data)
			if strings.Contains(string(q.Original), rawEmail) || strings.Contains(q.Detail, rawEmail) || q.CustomerID == rawEmail {
				t.Fatalf("raw PII in the quarantine record: %+v", q)
			}
			if tc.withheld {
				if q.Original != nil || !strings.Contains(q.Detail, "withheld") {
					t.Fatalf("original not withheld: %+v", q)
				}
				return
			}
			if !strings.Contains(string(q.Original), Redacted) || !strings.Contains(q.Detail, tc.redactedAt) {
				t.Fatalf("redaction not stated: detail %q original %s", q.Detail, q.Original)
			}
			// The rest of the original is untouched.
			if !strings.Contains(string(q.Original), `"detail-type":"page_view"`) {
				t.Fatalf("original %s", q.Original)
			}
		})
	}
}

func TestPIIPolicyOffKeepsOriginal(t *testing.T) {
	f := newTestForwarder(t, kinesisfake.New(), nil)
	in := bridge("page_view", detail("e1", "c1", 1, `{"email":"`+rawEmail+`"}`))
	if e := f.prepare(newInput([]byte(in), 1, "in")); e.lane != laneRaw {
		t.Fatalf("quarantined without a policy: %s", e.data)
	}
}

func TestRedactNested(t *testing.T) {
	p := &piiPolicy{paths: [][]string{{"detail", "properties"}, {"detail", "properties", "email"}}}
	doc := []byte(`{"detail":{"properties":{"email":"x@y"}},"other":1}`)
	spans, err := p.scan(doc)
	if err != nil {
		t.Fatal(err)
	}
	out, paths := redact(doc, spans)
	if string(out) != `{"detail":{"properties":`+Redacted+`},"other":1}` || len(paths) != 1 {
		t.Fatalf("%s %v", out, paths)
	}
}
