package event

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

const rawEmail = "jane.doe@example.com"

func TestPIIPolicy(t *testing.T) {
	tk, err := NewTokenizer([]byte(strings.Repeat("k", 32)))
	if err != nil {
		t.Fatal(err)
	}
	tok := tk.Token("email", rawEmail)
	cust := tk.Token("customer", "c1")
	pol, err := NewPIIPolicy([]string{"properties.email", " customer_id ", "", "properties.address.street"})
	if err != nil {
		t.Fatal(err)
	}
	detail := func(customer, props string) string {
		return `{"event_id":"e1","customer_id":` + customer + `,"seq":1,"occurred_at":"2026-11-26T10:00:00Z","properties":` + props + `}`
	}
	tests := []struct {
		name      string
		detail    string
		wantPaths string // "" = allowed
	}{
		{"tokens", detail(`"`+cust+`"`, `{"email":"`+tok+`","path":"/"}`), ""},
		{"absent", detail(`"`+cust+`"`, `{"path":"/"}`), ""},
		{"null and empty", detail(`"`+cust+`"`, `{"email":null,"address":{"street":""}}`), ""},
		{"escaped token", detail(`"`+cust+`"`, `{"email":"\u0074ok_`+tok[4:]+`"}`), ""},
		{"raw email", detail(`"`+cust+`"`, `{"email":"`+rawEmail+`"}`), "properties.email"},
		{"escaped key", detail(`"`+cust+`"`, `{"em\u0061il":"`+rawEmail+`"}`), "properties.email"},
		{"number", detail(`"`+cust+`"`, `{"email":5551234}`), "properties.email"},
		{"object", detail(`"`+cust+`"`, `{"email":{"v":"`+rawEmail+`"}}`), "properties.email"},
		{"array", detail(`"`+cust+`"`, `{"email":["`+rawEmail+`"]}`), "properties.email"},
		{"token-shaped but upper case", detail(`"`+cust+`"`, `{"email":"`+strings.ToUpper(tok)+`"}`), "properties.email"},
		{"nested", detail(`"`+cust+`"`, `{"address":{"street":"1 Main St","city":"x"}}`), "properties.address.street"},
		{"raw customer and email", detail(`"c1"`, `{"email":"`+rawEmail+`"}`), "customer_id, properties.email"},
		{"path through a non-object is not followed", detail(`"`+cust+`"`, `{"address":["1 Main St"]}`), ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := pol.CheckDetail([]byte(tc.detail))
			if tc.wantPaths == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if ReasonOf(err) != ReasonRawPII || !strings.HasSuffix(err.Error(), tc.wantPaths) {
				t.Fatalf("err %v, want raw_pii at %s", err, tc.wantPaths)
			}
			if strings.Contains(err.Error(), rawEmail) || strings.Contains(err.Error(), "1 Main St") {
				t.Fatalf("error carries the value: %v", err)
			}
			raw := `{"v":1,"type":"page_view","detail":` + tc.detail + `}`
			out, paths, ok := pol.RedactRaw([]byte(raw))
			if !ok || strings.Join(paths, ", ") != tc.wantPaths {
				t.Fatalf("redact: ok %v paths %v", ok, paths)
			}
			if bytes.Contains(out, []byte(rawEmail)) || bytes.Contains(out, []byte("1 Main St")) || !json.Valid(out) {
				t.Fatalf("redacted record %s", out)
			}
		})
	}
}

func TestPIIRedactRaw(t *testing.T) {
	pol, err := NewPIIPolicy([]string{"properties.email"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, in, want string
		ok             bool
	}{
		{"duplicate keys: every occurrence", `{"detail":{"properties":{"email":"a@b","email":"c@d"}},"x":1}`,
			`{"detail":{"properties":{"email":` + Redacted + `,"email":` + Redacted + `}},"x":1}`, true},
		{"duplicate detail", `{"detail":{"properties":{"email":"a@b"}},"detail":{"properties":{"email":"c@d"}}}`,
			`{"detail":{"properties":{"email":` + Redacted + `}},"detail":{"properties":{"email":` + Redacted + `}}}`, true},
		{"clean record kept", `{"detail":{"properties":{"email":null}}}`, `{"detail":{"properties":{"email":null}}}`, true},
		{"not JSON: withheld", `{"detail":{"properties":{"email":"a@b"}`, "", false},
		{"invalid UTF-8: withheld", "{\"detail\":{\"properties\":{\"email\":\"a@b\xff\"}}}", "", false},
		{"not an object: withheld", `["a@b"]`, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, _, ok := pol.RedactRaw([]byte(tc.in))
			if ok != tc.ok || string(out) != tc.want {
				t.Fatalf("got %v %s, want %v %s", ok, out, tc.ok, tc.want)
			}
		})
	}
	if p, err := NewPIIPolicy([]string{" ", ""}); p != nil || err != nil {
		t.Fatalf("no paths: %v %v", p, err)
	}
	if _, err := NewPIIPolicy([]string{"properties..email"}); err == nil {
		t.Fatal("empty segment accepted")
	}
	var none *PIIPolicy
	if none.CheckDetail([]byte(`{"email":"x"}`)) != nil || none.Covers("customer_id") {
		t.Fatal("nil policy is not off")
	}
}

// FuzzPIIRedact feeds arbitrary bytes to the PII policy.
//
// Invariant: CheckDetail and RedactRaw never panic; CheckDetail fails only with a Reason; a record
// RedactRaw keeps (ok) is still valid JSON and, searched again, holds nothing at a configured path
// but allowed values and the Redacted marker; and a detail that CheckDetail passes, wrapped in a
// record, comes back from RedactRaw unchanged.
func FuzzPIIRedact(f *testing.F) {
	for _, s := range seedRecords() {
		f.Add([]byte(s))
	}
	f.Add([]byte(`{"detail":{"customer_id":"a@b","properties":{"email":"a@b","email":{"x":[1,"y"]},"address":{"street":"s"}}}}`))
	pol, err := NewPIIPolicy([]string{"customer_id", "properties.email", "properties.address.street", "properties"})
	if err != nil {
		f.Fatal(err)
	}
	rooted := make([][]string, len(pol.paths))
	for i, p := range pol.paths {
		rooted[i] = append([]string{"detail"}, p...)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if err := pol.CheckDetail(b); err != nil && ReasonOf(err) == "" {
			t.Fatalf("error without a reason: %v", err)
		} else if err == nil && json.Valid(b) {
			rec := append(append([]byte(`{"detail":`), b...), '}')
			if out, _, ok := pol.RedactRaw(rec); utf8.Valid(b) && (!ok || !bytes.Equal(out, rec)) {
				t.Fatalf("a clean detail was changed in its record: %v %s", ok, out)
			}
		}
		out, _, ok := pol.RedactRaw(b)
		if !ok {
			return
		}
		if !json.Valid(out) {
			t.Fatalf("redacted record is not JSON: %s", out)
		}
		spans, err := pol.scan(out, rooted)
		if err != nil {
			t.Fatalf("redacted record no longer scans: %v", err)
		}
		for _, s := range spans {
			if string(out[s.start:s.end]) != Redacted {
				t.Fatalf("value left at %s: %s", s.path, out[s.start:s.end])
			}
		}
	})
}
