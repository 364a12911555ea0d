package event

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestCanonicalJSON(t *testing.T) {
	cases := []struct{ in, want string }{
		{`{"b":1, "a":[true,false,null]}`, `{"a":[true,false,null],"b":1}`},
		{`{"n":1.0,"m":-0,"e":1E3,"f":0.000001,"g":1e-7,"h":1e21,"i":123456789012345678901}`,
			`{"e":1000,"f":0.000001,"g":1e-7,"h":1e+21,"i":123456789012345680000,"m":0,"n":1}`},
		{`{"s":"\u00e9\n\u001f\/"}`, "{\"s\":\"\u00e9\\n\\u001f/\"}"},
		// RFC 8785 sorts by UTF-16 code units: U+1F600 (surrogates D83D..) sorts before U+E000.
		{`{"\ue000":1,"\ud83d\ude00":2}`, "{\"\U0001F600\":2,\"\uE000\":1}"},
		{` [ ] `, `[]`},
	}
	for _, c := range cases {
		got, err := AppendCanonicalJSON(nil, []byte(c.in), DefaultLimits)
		if err != nil {
			t.Fatalf("%s: %v", c.in, err)
		}
		if string(got) != c.want {
			t.Errorf("%s:\n got %s\nwant %s", c.in, got, c.want)
		}
	}
}

func TestCanonicalJSONRejects(t *testing.T) {
	cases := []struct {
		in   string
		want Reason
	}{
		{`{"a":1,"a":2}`, ReasonDuplicateKey},
		{`{"a":1e400}`, ReasonBadNumber},
		{"{\"a\":\"\xff\"}", ReasonInvalidUTF8},
		{`{"a":"\ud800"}`, ReasonInvalidUTF8},
		{strings.Repeat("[", 40) + strings.Repeat("]", 40), ReasonTooDeep},
		{`{"a":01}`, ReasonNotJSON},
		{`{"a":1} x`, ReasonNotJSON},
		{`{"a":`, ReasonNotJSON},
	}
	for _, c := range cases {
		_, err := AppendCanonicalJSON(nil, []byte(c.in), DefaultLimits)
		if got := ReasonOf(err); got != c.want {
			t.Errorf("%q: reason %q (%v), want %q", c.in, got, err, c.want)
		}
	}
}

func testKeyring(t *testing.T) *Keyring {
	t.Helper()
	k, err := NewKeyring(Key{ID: "k1", Secret: []byte("0123456789abcdef0123")}, Key{ID: "k0", Secret: []byte("fedcba9876543210fedc"), RetiredAt: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestSignVerifyRoundTrip(t *testing.T) {
	k := testKeyring(t)
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	d := &Detail{EventID: "e1", CustomerID: "tok_aaaaaaaaaaaaaaaaaaaaaaaaaa", Seq: 7, OccurredAt: "2026-11-26T11:59:59Z",
		Properties: json.RawMessage(`{"sku":"A-1","qty":2,"price":19.90}`)}
	if err := k.Sign("purchase", d, "k1"); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(d)
	// Reformatting the properties must not break the signature: it covers the canonical form.
	reformatted := strings.Replace(string(b), `{"sku":"A-1","qty":2,"price":19.90}`, `{ "price": 1.99e1, "qty": 2.0, "sku": "A-1" }`, 1)
	parsed, err := ParseDetail([]byte(reformatted))
	if err != nil {
		t.Fatal(err)
	}
	if err := k.Verify("purchase", parsed, now); err != nil {
		t.Fatalf("verify: %v", err)
	}
	tampered := []struct {
		name string
		mut  func(d *Detail) string
		want Reason
	}{
		{"type", func(d *Detail) string { return "page_view" }, ReasonBadSignature},
		{"seq", func(d *Detail) string { d.Seq++; return "purchase" }, ReasonBadSignature},
		{"customer", func(d *Detail) string { d.CustomerID = "tok_bbbbbbbbbbbbbbbbbbbbbbbbbb"; return "purchase" }, ReasonBadSignature},
		{"properties", func(d *Detail) string {
			d.canon = nil
			d.Properties = json.RawMessage(`{"sku":"A-1","qty":3,"price":19.9}`)
			return "purchase"
		}, ReasonBadSignature},
		{"no signature", func(d *Detail) string { d.Signature = ""; return "purchase" }, ReasonNoSignature},
		{"unknown key", func(d *Detail) string { d.KeyID = "k9"; return "purchase" }, ReasonUnknownKey},
		{"retired key", func(d *Detail) string { d.KeyID = "k0"; return "purchase" }, ReasonKeyRetired},
		{"not hex", func(d *Detail) string { d.Signature = strings.Repeat("z", 64); return "purchase" }, ReasonBadSignature},
	}
	for _, tc := range tampered {
		t.Run(tc.name, func(t *testing.T) {
			c := *parsed
			typ := tc.mut(&c)
			if got := ReasonOf(k.Verify(typ, &c, now)); got != tc.want {
				t.Fatalf("reason %q, want %q", got, tc.want)
			}
		})
	}
}

func TestClockSkew(t *testing.T) {
	k := testKeyring(t)
	k.MaxSkew = time.Hour
	d := &Detail{EventID: "e1", CustomerID: "c", Seq: 1, OccurredAt: "2026-11-26T10:00:00Z"}
	if err := k.Sign("page_view", d, "k1"); err != nil {
		t.Fatal(err)
	}
	if err := k.Verify("page_view", d, time.Date(2026, 11, 26, 10, 30, 0, 0, time.UTC)); err != nil {
		t.Fatal(err)
	}
	if got := ReasonOf(k.Verify("page_view", d, time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC))); got != ReasonClockSkew {
		t.Fatalf("reason %q", got)
	}
}

func TestDecodeRaw(t *testing.T) {
	good := `{"v":1,"type":"page_view","source":"shop","forwarded_at":"2026-11-26T10:00:00Z","detail":{"event_id":"e1","customer_id":"c1","seq":1,"occurred_at":"2026-11-26T10:00:00Z","properties":{"p":"/"},"key_id":"k1","signature":"x"}}`
	r, d, err := DecodeRaw([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if r.Type != "page_view" || d.EventID != "e1" || d.Seq != 1 || string(d.Properties) != `{"p":"/"}` {
		t.Fatalf("decoded %+v %+v", r, d)
	}
	bad := []struct {
		name, in string
		want     Reason
	}{
		{"not json", `hello`, ReasonNotJSON},
		{"array", `[1]`, ReasonBadEnvelope},
		{"version", strings.Replace(good, `"v":1`, `"v":2`, 1), ReasonUnsupportedRaw},
		{"no detail", `{"v":1,"type":"x"}`, ReasonMissingField},
		{"dup key in detail", strings.Replace(good, `"seq":1`, `"seq":1,"seq":2`, 1), ReasonDuplicateKey},
		{"case-folded key is not the field", strings.Replace(good, `"customer_id":"c1"`, `"CUSTOMER_ID":"c1"`, 1), ReasonMissingField},
		{"seq as string", strings.Replace(good, `"seq":1`, `"seq":"1"`, 1), ReasonBadField},
		{"seq zero", strings.Replace(good, `"seq":1`, `"seq":0`, 1), ReasonMissingField},
		{"seq negative", strings.Replace(good, `"seq":1`, `"seq":-1`, 1), ReasonBadField},
		{"properties array", strings.Replace(good, `{"p":"/"}`, `[1]`, 1), ReasonBadField},
		{"bad time", strings.Replace(good, `"occurred_at":"2026-11-26T10:00:00Z"`, `"occurred_at":"yesterday"`, 1), ReasonBadField},
		{"space in id", strings.Replace(good, `"event_id":"e1"`, `"event_id":"e 1"`, 1), ReasonBadField},
		{"long id", strings.Replace(good, `"event_id":"e1"`, `"event_id":"`+strings.Repeat("e", 200)+`"`, 1), ReasonBadField},
		{"too large", `{"v":1,"pad":"` + strings.Repeat("a", MaxRecordBytes) + `"}`, ReasonTooLarge},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := DecodeRaw([]byte(tc.in))
			var e *Error
			if !errors.As(err, &e) || e.Reason != tc.want {
				t.Fatalf("err %v, want reason %q", err, tc.want)
			}
		})
	}
}

func TestTokenizer(t *testing.T) {
	tk, err := NewTokenizer([]byte(strings.Repeat("k", 32)))
	if err != nil {
		t.Fatal(err)
	}
	a := tk.Token("email", " Jane@Example.com ")
	if a != tk.Token("email", "jane@example.com") {
		t.Fatal("normalisation does not map spellings to one token")
	}
	if a == tk.Token("customer", "jane@example.com") {
		t.Fatal("kinds share a namespace")
	}
	if !IsToken(a) || IsToken("jane@example.com") || IsToken("tok_short") {
		t.Fatalf("IsToken wrong for %q", a)
	}
	if strings.Contains(a, "jane") {
		t.Fatal("token leaks the value")
	}
}
