package event

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

// FuzzCheckDetail holds the forwarder's early decision to the worker's: for any detail bytes and any
// parts, CheckDetail's walk completed by Decide on the record AppendRaw builds returns exactly what
// CheckRaw returns for that record (the same reason and message, the same customer and event ids).
//
// Invariant: when CheckDetail walks a value (n > 0), b[:n] is one whole JSON value; the record is
// built from it, as the forwarder builds it from the detail it read. Otherwise the record holds all of
// b (Decide then leaves the decision to CheckRaw).
func FuzzCheckDetail(f *testing.F) {
	at := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC).Unix()
	for _, s := range seedRecords() {
		f.Add([]byte(s), "page_view", "shop.web", "b-1", "2026-11-26T10:00:00Z", at, int64(123456789))
	}
	detail := seedRecords()[1]
	for _, p := range [][4]string{
		{"", "s", "", ""}, {"a b", "s", "", ""}, {"a\u00a0b", "s", "", ""}, {"a\x7fb", "s", "", ""}, {"é\"\\", "s\n\"", "\x01", "\t"},
		{strings.Repeat("t", MaxIDLen), strings.Repeat("s", 256), strings.Repeat("i", 256), strings.Repeat("m", 64)},
		{strings.Repeat("t", MaxIDLen+1), "s", "", ""}, {"t", strings.Repeat("s", 257), "", ""},
		{"t", "s", strings.Repeat("i", 257), ""}, {"t", "s", "", strings.Repeat("m", 65)},
		{"t\xff", "s", "", ""}, {"t", "s\xff", "", ""}, {"t", "s", "\xff", ""}, {"t", "s", "", "\xff"},
	} {
		f.Add([]byte(detail), p[0], p[1], p[2], p[3], at, int64(0))
	}
	for _, y := range []int{-1, 0, 1, 9999, 10000} {
		f.Add([]byte(detail), "t", "s", "", "", time.Date(y, 1, 1, 0, 0, 0, 0, time.UTC).Unix(), int64(0))
		f.Add([]byte(detail), "t", "s", "", "", time.Date(y, 12, 31, 23, 59, 59, 0, time.UTC).Unix(), int64(999999999))
	}
	// Details at and over the limits, and with errors that carry offsets. In a record, the detail's
	// properties are at depth 3: 13 nested arrays in them reach the limit of 16.
	for _, d := range []string{
		strings.Replace(detail, `"p":"/"`, `"p":`+strings.Repeat("[", 13)+strings.Repeat("]", 13), 1),
		strings.Replace(detail, `"p":"/"`, `"p":`+strings.Repeat("[", 14)+strings.Repeat("]", 14), 1),
		strings.Replace(detail, `"p":"/"`, `"p":"`+strings.Repeat("x", 8192)+`"`, 1),
		strings.Replace(detail, `"p":"/"`, `"p":"`+strings.Repeat("x", 8193)+`"`, 1),
		strings.Replace(detail, `"p":"/"`, `"p":[`+strings.Repeat("1,", 999)+`1]`, 1),
		strings.Replace(detail, `"p":"/"`, `"p":[`+strings.Repeat("1,", 1000)+`1]`, 1),
		strings.Replace(detail, `"p":"/"`, `"p":"/" , "q" : 1 `, 1),
		strings.Replace(detail, `"seq":1`, `"seq":0`, 1), strings.Replace(detail, `"seq":1`, `"seq":-1`, 1),
		strings.Replace(detail, `"occurred_at":"2026-11-26T10:00:00Z"`, `"occurred_at":"yesterday"`, 1),
		strings.Replace(detail, `"customer_id":"tok_aaaaaaaaaaaaaaaaaaaaaaaaaa"`, `"customer_id":""`, 1),
		strings.Replace(detail, `"event_id":"e1"`, `"event_id":"`+strings.Repeat("e", MaxIDLen+1)+`"`, 1),
		detail[:len(detail)-1], detail + `,`, detail + `}`, `{"a":1}`, `[1]`, `"s"`, `{`, `{"a" 1}`,
	} {
		f.Add([]byte(d), "page_view", "shop.web", "", "", at, int64(0))
	}
	f.Fuzz(func(t *testing.T, b []byte, typ, source, bridgeID, bridgeTime string, sec, nsec int64) {
		p := RawParts{Type: []byte(typ), Source: []byte(source), BridgeID: []byte(bridgeID), BridgeTime: []byte(bridgeTime),
			ForwardedAt: time.Unix(sec, nsec)}
		n, c := CheckDetail(b)
		detail := b
		if n > 0 {
			if !json.Valid(b[:n]) {
				t.Fatalf("CheckDetail walked %d bytes of %q: not one JSON value", n, b)
			}
			detail = b[:n]
		}
		rec := AppendRaw(nil, p, detail)
		cust, id, err := c.Decide(rec, p)
		wcust, wid, werr := CheckRaw(rec)
		if fmt.Sprint(err) != fmt.Sprint(werr) || ReasonOf(err) != ReasonOf(werr) || cust != wcust || id != wid {
			t.Fatalf("%s: Decide: %q %q %v; CheckRaw: %q %q %v", rec, cust, id, err, wcust, wid, werr)
		}
	})
}

// TestCheckDetailDecides: the walk decides alone (without CheckRaw) on ordinary records, accepted or
// rejected for a field, so that FuzzCheckDetail compares two decisions, not CheckRaw with itself.
func TestCheckDetailDecides(t *testing.T) {
	detail := seedRecords()[1]
	p := RawParts{Type: []byte("page_view"), Source: []byte("shop.web"), ForwardedAt: time.Now()}
	for _, tc := range []struct {
		detail string
		reason Reason
	}{
		{detail, ""},
		{strings.Replace(detail, `"seq":1`, `"seq":"1"`, 1), ReasonBadField},
		{strings.Replace(detail, `"seq":1,`, ``, 1), ReasonMissingField},
	} {
		n, c := CheckDetail([]byte(tc.detail + ` ,"more":1}`))
		if n != len(tc.detail) || !c.done {
			t.Fatalf("%s: walked %d bytes (done %v)", tc.detail, n, c.done)
		}
		rec := AppendRaw(nil, p, []byte(tc.detail))
		cust, id, err := c.Decide(rec, p)
		if ReasonOf(err) != tc.reason {
			t.Fatalf("%s: %v, want %q", tc.detail, err, tc.reason)
		}
		if err == nil && (cust != "tok_aaaaaaaaaaaaaaaaaaaaaaaaaa" || id != "e1") {
			t.Fatalf("ids %q %q", cust, id)
		}
	}
	// At the limits: the deepest nesting a record allows (properties at depth 3, 13 arrays in
	// them), and records of exactly MaxRecordBytes and one byte more.
	deep := strings.Replace(detail, `"p":"/"`, `"p":`+strings.Repeat("[", 13)+strings.Repeat("]", 13), 1)
	if n, c := CheckDetail([]byte(deep)); n != len(deep) || !c.done {
		t.Fatalf("the deepest detail a record allows not decided by the walk: %d %v", n, c.done)
	}
	big := strings.Replace(detail, `"p":"/"`, `"p":[`+strings.TrimSuffix(strings.Repeat(`"`+strings.Repeat("x", 8000)+`",`, 130), ",")+`],"pad":""`, 1)
	pad := MaxRecordBytes - len(AppendRaw(nil, p, []byte(big)))
	if pad < 0 || pad > 8000 {
		t.Fatalf("pad %d", pad)
	}
	for _, extra := range []int{0, 1} {
		d := []byte(strings.Replace(big, `"pad":""`, `"pad":"`+strings.Repeat("y", pad+extra)+`"`, 1))
		n, c := CheckDetail(d)
		rec := AppendRaw(nil, p, d)
		_, _, err := c.Decide(rec, p)
		_, _, werr := CheckRaw(rec)
		if n != len(d) || fmt.Sprint(err) != fmt.Sprint(werr) || (extra == 0) != (err == nil) {
			t.Fatalf("record of %d bytes: walked %d, %v; CheckRaw: %v", len(rec), n, err, werr)
		}
	}
	if n, c := CheckDetail([]byte(`{"a":1,"a":2}`)); n != 0 || c.done {
		t.Fatalf("a duplicate key decided by the walk: %d %v", n, c.done)
	}
}
