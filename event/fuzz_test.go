package event

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// seedRecords are raw records covering every member, escapes, nesting and the usual defects; shared by
// the fuzz targets' corpora.
func seedRecords() []string {
	detail := `{"event_id":"e1","customer_id":"tok_aaaaaaaaaaaaaaaaaaaaaaaaaa","seq":1,"occurred_at":"2026-11-26T10:00:00Z","properties":{"p":"/","n":[1,2.5,-0,1e3,{"x":null}],"s":"\u00e9\ud83d\ude00\n"},"key_id":"k1","signature":"` + strings.Repeat("ab", 32) + `"}`
	good := `{"v":1,"type":"page_view","source":"shop","bridge_id":"b","bridge_time":"2026-11-26T10:00:00Z","forwarded_at":"2026-11-26T10:00:00.123Z","detail":` + detail + `}`
	return []string{
		good,
		detail,
		strings.Replace(good, `"seq":1`, `"seq":1,"seq":2`, 1),
		strings.Replace(good, `"p":"/"`, `"p":"/","p":"\/"`, 1),
		strings.Replace(good, `"seq":1`, `"seq":18446744073709551616`, 1),
		strings.Replace(good, `"seq":1`, `"seq":"1"`, 1),
		strings.Replace(good, `"seq":1`, `"seq":1.0`, 1),
		strings.Replace(good, `"p":"/"`, `"p":1e400`, 1),
		strings.Replace(good, `"p":"/"`, `"p":"\ud800"`, 1),
		strings.Replace(good, `"p":"/"`, "\"p\":\"\xff\xfe\"", 1),
		strings.Replace(good, `"p":"/"`, `"p":`+strings.Repeat("[", 20)+strings.Repeat("]", 20), 1),
		strings.Replace(good, `"event_id":"e1"`, `"event_id":"e\n1"`, 1),
		strings.Replace(good, `"event_id":"e1"`, `"event_id":"e\u00001"`, 1),
		strings.Replace(good, `"properties":{`, `"properties":[`, 1),
		strings.Replace(good, `"properties":{`, `"properties":null,"x":{`, 1),
		strings.Replace(good, `"v":1`, `"v":2`, 1),
		`{"v":1,"type":"x","detail":null}`,
		`{"v":1,"type":"x","detail":{}}`,
		`{}`, `[]`, `null`, `"s"`, `0`, ``, ` `, `{"a":}`, `{"a":1,}`, `{"a" 1}`, `{"a":1}x`,
		`{"a":-}`, `{"a":01}`, `{"a":1.}`, `{"a":1e}`, `{"a":tru}`, `{"\u00zz":1}`, `{"a":"\q"}`,
	}
}

// FuzzDecodeRaw feeds arbitrary bytes to the worker's record decoder.
//
// Invariant: DecodeRaw never panics, and either
//   - fails with an error that carries a Reason (so the worker can quarantine with a code), or
//   - succeeds only on valid JSON (json.Valid), with version RawVersion, a type, and a detail that
//     ParseDetail decodes alone to the same fields, and that satisfies the detail invariant of
//     FuzzParseDetail.
func FuzzDecodeRaw(f *testing.F) {
	for _, s := range seedRecords() {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, d, err := DecodeRaw(b)
		// CheckRaw (the forwarder's check) decides exactly what DecodeRaw decides.
		cust, id, cerr := CheckRaw(b)
		if fmt.Sprint(cerr) != fmt.Sprint(err) {
			t.Fatalf("CheckRaw: %v; DecodeRaw: %v", cerr, err)
		}
		if err == nil && (cust != d.CustomerID || id != d.EventID) {
			t.Fatalf("CheckRaw: %q %q; DecodeRaw: %q %q", cust, id, d.CustomerID, d.EventID)
		}
		if err != nil {
			if ReasonOf(err) == "" {
				t.Fatalf("error without a reason: %v", err)
			}
			return
		}
		if !json.Valid(b) {
			t.Fatalf("accepted invalid JSON: %q", b)
		}
		if r.V != RawVersion || r.Type == "" || d == nil {
			t.Fatalf("accepted %+v %+v", r, d)
		}
		if !bytes.Contains(b, r.Detail) {
			t.Fatal("detail is not the record's bytes")
		}
		d2, err := ParseDetail(r.Detail)
		if err != nil {
			t.Fatalf("detail accepted inside the record, rejected alone: %v", err)
		}
		if !sameDetail(d, d2) {
			t.Fatalf("detail decodes differently alone: %+v vs %+v", d, d2)
		}
		checkDetail(t, d)
	})
}

// FuzzParseDetail feeds arbitrary bytes to the producer-detail decoder.
//
// Invariant: ParseDetail never panics, and either fails with a Reason, or succeeds only on valid JSON
// with every required field present and within its limits (ids 1..MaxIDLen printable characters
// without spaces, seq >= 1, occurred_at RFC 3339), properties absent or a JSON object whose canonical
// form is what the signature covers, and the fields agree with encoding/json's reading of the same
// bytes (where the two agree on JSON semantics: encoding/json folds key case, so it is given
// only inputs whose keys are already exact).
func FuzzParseDetail(f *testing.F) {
	for _, s := range seedRecords() {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := ParseDetail(b)
		if err != nil {
			if ReasonOf(err) == "" {
				t.Fatalf("error without a reason: %v", err)
			}
			return
		}
		if !json.Valid(b) {
			t.Fatalf("accepted invalid JSON: %q", b)
		}
		checkDetail(t, d)
		var std struct {
			EventID    string          `json:"event_id"`
			CustomerID string          `json:"customer_id"`
			Seq        uint64          `json:"seq"`
			OccurredAt string          `json:"occurred_at"`
			Properties json.RawMessage `json:"properties"`
			KeyID      string          `json:"key_id"`
			Signature  string          `json:"signature"`
		}
		if hasFoldedKey(b) {
			return
		}
		if err := json.Unmarshal(b, &std); err != nil {
			t.Fatalf("accepted what encoding/json rejects: %v", err)
		}
		if std.EventID != d.EventID || std.CustomerID != d.CustomerID || std.Seq != d.Seq ||
			std.OccurredAt != d.OccurredAt || std.KeyID != d.KeyID || std.Signature != d.Signature {
			t.Fatalf("fields differ from encoding/json: %+v vs %+v", d, std)
		}
	})
}

// hasFoldedKey reports whether some top-level key of the (valid) object b equals a detail field name
// under case folding without being spelled exactly as it.
func hasFoldedKey(b []byte) bool {
	var m map[string]json.RawMessage
	if json.Unmarshal(b, &m) != nil {
		return true
	}
	for k := range m {
		for _, f := range []string{"event_id", "customer_id", "seq", "occurred_at", "properties", "key_id", "signature"} {
			if k != f && strings.EqualFold(k, f) {
				return true
			}
		}
	}
	return false
}

func checkDetail(t *testing.T, d *Detail) {
	t.Helper()
	for _, id := range []string{d.EventID, d.CustomerID} {
		if id == "" || len(id) > MaxIDLen || !utf8.ValidString(id) {
			t.Fatalf("bad id %q accepted", id)
		}
		for _, r := range id {
			if !unicode.IsPrint(r) || unicode.IsSpace(r) {
				t.Fatalf("id %q with a non-printable or space character accepted", id)
			}
		}
	}
	if d.Seq == 0 {
		t.Fatal("seq 0 accepted")
	}
	if _, err := time.Parse(time.RFC3339Nano, d.OccurredAt); err != nil {
		t.Fatalf("occurred_at %q accepted", d.OccurredAt)
	}
	if len(d.Properties) > 0 {
		if d.Properties[0] != '{' {
			t.Fatalf("properties %q accepted", d.Properties)
		}
		c, err := AppendCanonicalJSON(nil, d.Properties, DefaultLimits)
		if err != nil || !bytes.Equal(c, d.canon) {
			t.Fatalf("cached canonical properties %q differ from %q (%v)", d.canon, c, err)
		}
	}
}

func sameDetail(a, b *Detail) bool {
	return a.EventID == b.EventID && a.CustomerID == b.CustomerID && a.Seq == b.Seq && a.OccurredAt == b.OccurredAt &&
		a.KeyID == b.KeyID && a.Signature == b.Signature && bytes.Equal(a.Properties, b.Properties) && bytes.Equal(a.canon, b.canon)
}

// FuzzCanonicalJSON feeds arbitrary bytes to the RFC 8785 canonicaliser.
//
// Invariant: AppendCanonicalJSON never panics, and
//   - it is idempotent: canonical(canonical(x)) == canonical(x);
//   - its output is valid JSON with no white space outside strings, and means the same as the input
//     (encoding/json decodes both to equal values);
//   - it agrees with encoding/json on validity where JSON semantics agree: whatever it accepts,
//     json.Valid accepts; whatever json.Valid accepts and it rejects is rejected for a reason where
//     the two deliberately differ (duplicate keys, invalid UTF-8 or lone surrogates, numbers that are
//     not finite doubles, or the size and depth limits), never as not_json;
//   - dst is never clobbered: the output starts with the bytes passed in dst.
func FuzzCanonicalJSON(f *testing.F) {
	for _, s := range seedRecords() {
		f.Add([]byte(s))
	}
	for _, s := range []string{`1e21`, `1e-7`, `123456789012345678901`, `-0.0`, `5e-324`, `1.7976931348623157e308`,
		`{"\ue000":1,"\ud83d\ude00":2,"a":{"b":[],"a":{}}}`, `"\u001f\u007f\u2028"`, `[1,[2,[3]]]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		prefix := []byte("pre")
		out, err := AppendCanonicalJSON(append([]byte(nil), prefix...), b, DefaultLimits)
		if !bytes.HasPrefix(out, prefix) {
			t.Fatalf("dst clobbered: %q", out)
		}
		valid := json.Valid(b)
		if err != nil {
			r := ReasonOf(err)
			switch {
			case r == "":
				t.Fatalf("error without a reason: %v", err)
			case valid && r == ReasonNotJSON:
				t.Fatalf("valid JSON %q rejected as not JSON: %v", b, err)
			case !valid && r != ReasonNotJSON && r != ReasonTooDeep && r != ReasonTooLarge &&
				r != ReasonInvalidUTF8 && r != ReasonBadNumber && r != ReasonDuplicateKey:
				t.Fatalf("invalid JSON rejected with reason %s", r)
			}
			return
		}
		if !valid {
			t.Fatalf("accepted invalid JSON: %q -> %q", b, out)
		}
		c := out[len(prefix):]
		if !json.Valid(c) {
			t.Fatalf("canonical form %q is not JSON", c)
		}
		again, err := AppendCanonicalJSON(nil, c, DefaultLimits)
		if err != nil || !bytes.Equal(again, c) {
			t.Fatalf("not idempotent: %q -> %q -> %q (%v)", b, c, again, err)
		}
		var v1, v2 any
		if err := json.Unmarshal(b, &v1); err != nil {
			t.Fatalf("accepted what encoding/json rejects: %v", err)
		}
		if err := json.Unmarshal(c, &v2); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(v1, v2) {
			t.Fatalf("canonical form changes the value: %q -> %q", b, c)
		}
		if want := referenceJCS(t, b); !bytes.Equal(c, want) {
			t.Fatalf("canonical form differs from the reference:\n in  %q\n got %q\nwant %q", b, c, want)
		}
	})
}

// FuzzSkipValue holds the validation-only walk (skipValue: unknown members, numeric fields, and the
// properties when no signature will be verified, as in CheckRaw) to the canonicalising one (value)
// it replaces there.
//
// Invariant: for any input and any depth, skipValue and value return the same error (reason and
// message, offsets included) and, on success, stop at the same byte; on success value's output is
// the canonical form, so skipValue accepts exactly what canonicalisation accepts.
func FuzzSkipValue(f *testing.F) {
	for _, s := range seedRecords() {
		f.Add([]byte(s), uint8(1))
	}
	for _, s := range []string{`1e21`, `1e-7`, `123456789012345678901`, `1234567890.12345`, `1234567890.123456`,
		`0.000000000000000000001`, `-0.0`, `5e-324`, `1e400`, `-1e400`, `1.7976931348623157e309`,
		`100000000000000000000000000000000000000000000000000000000000000000`, `00`, `-`, `1.e5`,
		`{"\ue000":1,"\ud83d\ude00":2,"a":{"b":[],"a":{}}}`, `{"b":1,"a":2,"b":3}`, `{"a":1,"a":1}`,
		`"\u001f\u007f\u2028"`, `"\ud800x"`, "\"\xff\"", "\"a\x01\"", `[1,[2,[3]]]`, `[1,]`, `{"a":1 "b":2}`,
		`nul`, `tru`, `[` + strings.Repeat(`[`, 20), `"` + strings.Repeat("x", 8193) + `"`, `"\n` + strings.Repeat("x", 8192) + `"`} {
		f.Add([]byte(s), uint8(0))
	}
	// At the small limits (odd depth): just over each of them, and just within.
	for _, s := range []string{`[1,2,3,4,5,6,7,8]`, `[1,2,3,4,5,6,7,8,9]`, `{"a":1,"b":2,"c":3,"d":4,"e":5,"f":6,"g":7,"h":8}`,
		`{"a":1,"b":2,"c":3,"d":4,"e":5,"f":6,"g":7,"h":8,"i":9}`, `{"i":1,"h":2,"g":3,"f":4,"e":5,"d":6,"c":7,"b":8,"a":9}`,
		`[[[[[1]]]]]`, `[[[[[[1]]]]]]`, `{"a":{"a":{"a":{"a":{"a":1}}}}}`, `{"a":{"a":{"a":{"a":{"a":{"a":1}}}}}}`,
		`"` + strings.Repeat("y", 64) + `"`, `"` + strings.Repeat("y", 65) + `"`, `"\t` + strings.Repeat("y", 64) + `"`,
		`{"` + strings.Repeat("k", 65) + `":1}`} {
		f.Add([]byte(s), uint8(1))
	}
	f.Fuzz(func(t *testing.T, b []byte, depth uint8) {
		lim := Limits{MaxDepth: 6, MaxStringLen: 64, MaxMembers: 8} // small, so that fuzzing reaches them
		if depth%2 == 0 {
			lim = DefaultLimits
		}
		d := int(depth % 8)
		pv := parser{src: b, lim: lim, sc: getScratch()}
		defer pv.sc.release()
		ps := parser{src: b, lim: lim, sc: getScratch()}
		defer ps.sc.release()
		pv.skipWS()
		ps.skipWS()
		out, verr := pv.value(nil, d)
		serr := ps.skipValue(d)
		if fmt.Sprint(verr) != fmt.Sprint(serr) || ReasonOf(verr) != ReasonOf(serr) {
			t.Fatalf("%q at depth %d: value: %v; skipValue: %v", b, d, verr, serr)
		}
		if verr == nil && pv.i != ps.i {
			t.Fatalf("%q: value stopped at %d, skipValue at %d (%q)", b, pv.i, ps.i, out)
		}
	})
}

// referenceJCS is an independent, slow RFC 8785 canonicaliser for the differential check: encoding/json
// decodes (numbers kept as text), keys are sorted by UTF-16 code units, strings escaped as JCS says,
// and numbers printed from strconv's shortest digits by the ECMAScript rules. Only called on inputs
// AppendCanonicalJSON accepted (no duplicate keys, valid UTF-8, finite numbers).
func referenceJCS(t *testing.T, b []byte) []byte {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("reference decode: %v", err)
	}
	var out []byte
	var emit func(v any)
	emit = func(v any) {
		switch x := v.(type) {
		case nil:
			out = append(out, "null"...)
		case bool:
			out = strconv.AppendBool(out, x)
		case json.Number:
			f, err := strconv.ParseFloat(string(x), 64)
			if err != nil {
				t.Fatalf("reference: number %s: %v", x, err)
			}
			out = append(out, esNumber(f)...)
		case string:
			out = append(out, jcsString(x)...)
		case []any:
			out = append(out, '[')
			for i, e := range x {
				if i > 0 {
					out = append(out, ',')
				}
				emit(e)
			}
			out = append(out, ']')
		case map[string]any:
			keys := make([]string, 0, len(x))
			for k := range x {
				keys = append(keys, k)
			}
			slices.SortFunc(keys, func(a, b string) int {
				return slices.Compare(utf16.Encode([]rune(a)), utf16.Encode([]rune(b)))
			})
			out = append(out, '{')
			for i, k := range keys {
				if i > 0 {
					out = append(out, ',')
				}
				out = append(out, jcsString(k)...)
				out = append(out, ':')
				emit(x[k])
			}
			out = append(out, '}')
		default:
			t.Fatalf("reference: %T", v)
		}
	}
	emit(v)
	return out
}

func jcsString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"':
			b.WriteString(`\"`)
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\b':
			b.WriteString(`\b`)
		case r == '\f':
			b.WriteString(`\f`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20:
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// esNumber is ECMAScript's Number.prototype.toString for a finite double (ECMA-262 Number::toString):
// with k shortest digits s and exponent n (value = 0.s × 10^n), integers up to 21 digits are written
// out, then decimals down to 1e-6, else exponential notation with an explicit sign.
func esNumber(f float64) string {
	if f == 0 {
		return "0"
	}
	sign := ""
	if f < 0 {
		sign, f = "-", -f
	}
	e := strconv.FormatFloat(f, 'e', -1, 64) // d.ddde±x
	mant, exp, _ := strings.Cut(e, "e")
	digits := strings.Replace(mant, ".", "", 1)
	x, _ := strconv.Atoi(exp)
	k, n := len(digits), x+1
	switch {
	case k <= n && n <= 21:
		return sign + digits + strings.Repeat("0", n-k)
	case 0 < n && n <= 21:
		return sign + digits[:n] + "." + digits[n:]
	case -6 < n && n <= 0:
		return sign + "0." + strings.Repeat("0", -n) + digits
	}
	m := digits[:1]
	if k > 1 {
		m += "." + digits[1:]
	}
	return fmt.Sprintf("%s%se%+d", sign, m, n-1)
}

// FuzzVerify signs generated details and checks hostile records against a keyring.
//
// Invariant: Sign then Verify round-trips for any detail that Sign accepts and whose JSON encoding
// ParseDetail reads back unchanged (so what a producer sends, the worker verifies); changing any
// signed field after signing makes Verify fail with signature_mismatch; and Verify of anything
// DecodeRaw accepts never panics and fails only with a Reason.
func FuzzVerify(f *testing.F) {
	f.Add("page_view", "e1", "tok_aaaaaaaaaaaaaaaaaaaaaaaaaa", uint64(1), int64(1795000000), []byte(`{"p":"/","n":1.5}`), []byte(seedRecords()[0]))
	f.Add("purchase", "e-\u00e9", "c 1", uint64(1<<63), int64(-1), []byte(`{"a":"\ud83d\ude00","b":[{},[]]}`), []byte(`{}`))
	f.Add("x\ny", "e", "c", uint64(0), int64(0), []byte(`null`), []byte(`[]`))
	f.Add("t", "e", "c", uint64(2), int64(1e12), []byte(`{"a":1,"a":2}`), []byte(seedRecords()[1]))
	ring, err := NewKeyring(Key{ID: "k1", Secret: []byte("0123456789abcdef0123")}, Key{ID: "k2", Secret: []byte("fedcba9876543210fedc")},
		Key{ID: "old", Secret: []byte("0011223344556677889900"), RetiredAt: time.Unix(1, 0)})
	if err != nil {
		f.Fatal(err)
	}
	now := time.Unix(1795000000, 0)
	f.Fuzz(func(t *testing.T, typ, eventID, customerID string, seq uint64, at int64, props, record []byte) {
		// Hostile records: whatever decodes must verify or fail with a reason.
		if _, d, err := DecodeRaw(record); err == nil {
			for _, k := range []string{d.KeyID, "k1", "old", ""} {
				c := *d
				c.KeyID = k
				if err := ring.Verify(typ, &c, now); err != nil && ReasonOf(err) == "" {
					t.Fatalf("verify error without a reason: %v", err)
				}
			}
		}

		d := &Detail{EventID: eventID, CustomerID: customerID, Seq: seq,
			OccurredAt: time.Unix(0, at).UTC().Format(time.RFC3339Nano), Properties: json.RawMessage(props)}
		if err := ring.Sign(typ, d, "k2"); err != nil {
			if ReasonOf(err) == "" {
				t.Fatalf("sign error without a reason: %v", err)
			}
			return
		}
		if err := ring.Verify(typ, d, now); err != nil {
			t.Fatalf("signed detail does not verify: %v", err)
		}
		wire, err := json.Marshal(d)
		if err != nil {
			return // properties that encoding/json cannot embed: no producer can send them
		}
		got, err := ParseDetail(wire)
		if err != nil {
			return // the detail breaks the contract (checked by FuzzParseDetail); signing does not fix that
		}
		if got.EventID != d.EventID || got.CustomerID != d.CustomerID || got.Seq != d.Seq || got.OccurredAt != d.OccurredAt {
			return // encoding/json replaced invalid UTF-8: not what was signed
		}
		if err := ring.Verify(typ, got, now); err != nil {
			t.Fatalf("sent detail does not verify: %v\n%s", err, wire)
		}
		tampered := *got
		tampered.Seq++
		if tampered.Seq != 0 {
			if r := ReasonOf(ring.Verify(typ, &tampered, now)); r != ReasonBadSignature {
				t.Fatalf("changed seq verifies: reason %q", r)
			}
		}
		if r := ReasonOf(ring.Verify(typ+"x", got, now)); r != ReasonBadSignature {
			t.Fatalf("changed type verifies: reason %q", r)
		}
	})
}
