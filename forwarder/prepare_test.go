package forwarder

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/kinesis-events/pipeline/event"
	"github.com/kinesis-events/pipeline/internal/kinesisfake"
	"github.com/kinesis-events/pipeline/internal/names"
)

func TestPrepareForwardsDetailVerbatim(t *testing.T) {
	f := newTestForwarder(t, kinesisfake.New(), nil)
	// White space, HTML characters, escapes and key order that encoding/json would all rewrite.
	det := "{ \"event_id\" : \"e1\",\n \"customer_id\":\"tok_c1\", \"seq\":7, \"occurred_at\":\"2026-11-26T09:59:59.5+01:00\",\n" +
		" \"properties\": {\"z\":1, \"a\":\"<b>&amp;</b> \\u00e9\\n\", \"n\": 1.50e3},\"key_id\":\"k1\",\"signature\":\"s\" }"
	line := `{"detail-type":"page_view","source":"shop.web","id":"abc","time":"2026-11-26T10:00:00Z","detail":` + det + `}`
	e := f.prepare(newInput([]byte(line), 1, "in"))
	if e.lane != laneRaw {
		t.Fatalf("lane %d, quarantine %s", e.lane, e.data)
	}
	if e.key != "tok_c1" || e.eventID != "e1" {
		t.Fatalf("key %q event %q", e.key, e.eventID)
	}
	if !bytes.Contains(e.data, []byte(`"detail":`+det+`}`)) {
		t.Fatalf("detail not verbatim in %s", e.data)
	}
	raw, d, err := event.DecodeRaw(e.data)
	if err != nil {
		t.Fatal(err)
	}
	want := event.Raw{V: event.RawVersion, Type: "page_view", Source: "shop.web", BridgeID: "abc",
		BridgeTime: "2026-11-26T10:00:00Z", ForwardedAt: testNow, Detail: json.RawMessage(det)}
	if raw.V != want.V || raw.Type != want.Type || raw.Source != want.Source || raw.BridgeID != want.BridgeID ||
		raw.BridgeTime != want.BridgeTime || !raw.ForwardedAt.Equal(want.ForwardedAt) || string(raw.Detail) != det {
		t.Fatalf("raw %+v\nwant %+v", raw, want)
	}
	if d.Seq != 7 {
		t.Fatalf("seq %d", d.Seq)
	}
	// The same record decodes with encoding/json into the contract type.
	var viaJSON event.Raw
	if err := json.Unmarshal(e.data, &viaJSON); err != nil || viaJSON.Type != "page_view" || !viaJSON.ForwardedAt.Equal(testNow) {
		t.Fatalf("json: %v %+v", err, viaJSON)
	}
}

func TestPrepareQuarantines(t *testing.T) {
	good := goodLine("e1", "c1", 1)
	deep := strings.Repeat(`{"a":`, 15) + "1" + strings.Repeat("}", 15)
	tests := []struct {
		name string
		in   string
		want event.Reason
	}{
		{"not json", `hello`, event.ReasonNotJSON},
		{"byte order mark before the event", "\xef\xbb\xbf" + good, event.ReasonNotJSON},
		{"truncated json", good[:len(good)-3], event.ReasonNotJSON},
		{"trailing data", good + ` {}`, event.ReasonNotJSON},
		{"two events on a line", good + good, event.ReasonNotJSON},
		{"top-level array", `[` + good + `]`, event.ReasonBadEnvelope},
		{"top-level string", `"x"`, event.ReasonBadEnvelope},
		{"invalid utf-8", strings.Replace(good, "/home", "/h\xffme", 1), event.ReasonInvalidUTF8},
		{"duplicate envelope key", strings.Replace(good, `"source":"shop.web"`, `"source":"a","source":"b"`, 1), event.ReasonDuplicateKey},
		{"duplicate detail", strings.TrimSuffix(good, "}") + `,"detail":{}}`, event.ReasonDuplicateKey},
		{"no detail-type", strings.Replace(good, `"detail-type":"page_view",`, ``, 1), event.ReasonMissingField},
		{"mis-cased detail-type", strings.Replace(good, `"detail-type"`, `"Detail-Type"`, 1), event.ReasonMissingField},
		{"empty detail-type", strings.Replace(good, `"detail-type":"page_view"`, `"detail-type":""`, 1), event.ReasonMissingField},
		{"detail-type number", strings.Replace(good, `"detail-type":"page_view"`, `"detail-type":7`, 1), event.ReasonBadField},
		{"detail-type with space", strings.Replace(good, `"detail-type":"page_view"`, `"detail-type":"page view"`, 1), event.ReasonBadField},
		{"detail-type too long", strings.Replace(good, `"detail-type":"page_view"`, `"detail-type":"`+strings.Repeat("t", 200)+`"`, 1), event.ReasonBadField},
		{"source too long", strings.Replace(good, `"source":"shop.web"`, `"source":"`+strings.Repeat("s", 300)+`"`, 1), event.ReasonBadField},
		{"no detail", `{"detail-type":"page_view","source":"s"}`, event.ReasonMissingField},
		{"null detail", `{"detail-type":"page_view","source":"s","detail":null}`, event.ReasonMissingField},
		{"string detail", `{"detail-type":"page_view","source":"s","detail":"{}"}`, event.ReasonBadField},
		{"no customer_id", bridge("page_view", `{"event_id":"e1","seq":1,"occurred_at":"2026-11-26T09:59:59Z"}`), event.ReasonMissingField},
		{"empty customer_id", bridge("page_view", detail("e1", "", 1, "")), event.ReasonMissingField},
		{"customer_id with space", bridge("page_view", detail("e1", "a b", 1, "")), event.ReasonBadField},
		{"customer_id number", strings.Replace(good, `"customer_id":"c1"`, `"customer_id":12`, 1), event.ReasonBadField},
		{"no event_id", bridge("page_view", `{"customer_id":"c1","seq":1,"occurred_at":"2026-11-26T09:59:59Z"}`), event.ReasonMissingField},
		{"seq zero", bridge("page_view", detail("e1", "c1", 0, "")), event.ReasonMissingField},
		{"seq out of range for a double", strings.Replace(good, `"seq":1`, `"seq":1e400`, 1), event.ReasonBadNumber},
		{"seq over uint64", strings.Replace(good, `"seq":1`, `"seq":18446744073709551616`, 1), event.ReasonBadField},
		{"seq negative", strings.Replace(good, `"seq":1`, `"seq":-1`, 1), event.ReasonBadField},
		{"occurred_at not a time", strings.Replace(good, `2026-11-26T09:59:59Z`, `yesterday`, 1), event.ReasonBadField},
		{"duplicate key in detail", strings.Replace(good, `"seq":1`, `"seq":1,"seq":2`, 1), event.ReasonDuplicateKey},
		{"duplicate key in properties", bridge("page_view", detail("e1", "c1", 1, `{"a":1,"a":2}`)), event.ReasonDuplicateKey},
		{"properties not an object", bridge("page_view", detail("e1", "c1", 1, `[1]`)), event.ReasonBadField},
		{"properties nested too deep for the worker", bridge("page_view", detail("e1", "c1", 1, deep)), event.ReasonTooDeep},
		{"huge number in properties", bridge("page_view", detail("e1", "c1", 1, `{"n":1e999}`)), event.ReasonBadNumber},
		{"raw record over 1 MiB", bridge("page_view", detail("e1", "c1", 1, `{"pad":[`+strings.Repeat(`"`+strings.Repeat("y", 8000)+`",`, 140)+`1]}`)), event.ReasonTooLarge},
	}
	f := newTestForwarder(t, kinesisfake.New(), nil)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := f.prepare(newInput([]byte(tc.in), 3, "events.ndjson"))
			if e.lane != laneQuarantine {
				t.Fatalf("forwarded, want %s", tc.want)
			}
			q := decodeQuarantine(t, e.data)
			if q.Reason != tc.want || e.reason != tc.want {
				t.Fatalf("reason %s (%s), want %s", q.Reason, q.Detail, tc.want)
			}
			if !strings.HasPrefix(q.Detail, "events.ndjson:3: ") {
				t.Fatalf("detail %q lacks the line", q.Detail)
			}
			if len(tc.in) <= maxOriginalBytes && string(q.Original) != tc.in {
				t.Fatalf("original not kept: %q", q.Original)
			}
			if !strings.HasPrefix(e.key, "q-") || len(e.key) > 256 {
				t.Fatalf("quarantine key %q", e.key)
			}
		})
	}
}

func TestPrepareOversizedLineKeepsBoundedOriginal(t *testing.T) {
	f := newTestForwarder(t, kinesisfake.New(), nil)
	big := goodLine("e1", "c1", 1)
	big = strings.Replace(big, `"/home"`, `"`+strings.Repeat("x", 3<<20)+`"`, 1)
	e := f.prepare(newInput([]byte(big), 9, "in"))
	if e.lane != laneQuarantine || e.reason != event.ReasonTooLarge {
		t.Fatalf("lane %d reason %s", e.lane, e.reason)
	}
	q := decodeQuarantine(t, e.data)
	if len(q.Original) != maxTooLargeOriginal || !strings.HasPrefix(big, string(q.Original)) {
		t.Fatalf("original of %d bytes", len(q.Original))
	}
	if !strings.Contains(q.Detail, "truncated") {
		t.Fatalf("detail %q", q.Detail)
	}
}

func TestPrepareBlank(t *testing.T) {
	f := newTestForwarder(t, kinesisfake.New(), nil)
	for _, in := range []string{"", " ", "\t\r"} {
		if e := f.prepare(newInput([]byte(in), 1, "in")); e.lane != laneBlank {
			t.Fatalf("%q: lane %d", in, e.lane)
		}
	}
}

func TestPrepareEventMatchesPrepare(t *testing.T) {
	f := newTestForwarder(t, kinesisfake.New(), nil)
	det := `{"event_id":"e1","customer_id":"c1","seq":2,"occurred_at":"2026-11-26T09:59:59Z","properties":{"a":"<&>"} }`
	ev := event.BridgeEvent{ID: "x", DetailType: "purchase", Source: "shop", Time: "2026-11-26T10:00:00Z", Detail: json.RawMessage(det)}
	e := f.prepareEvent(ev, 1, "in")
	if e.lane != laneRaw || !bytes.HasSuffix(e.data, []byte(`"detail":`+det+`}`)) {
		t.Fatalf("lane %d data %s", e.lane, e.data)
	}
	ev.DetailType = "bad type"
	if e := f.prepareEvent(ev, 1, "in"); e.lane != laneQuarantine || e.reason != event.ReasonBadField {
		t.Fatalf("lane %d reason %s", e.lane, e.reason)
	}
	ev.DetailType, ev.Detail = "purchase", json.RawMessage(`{"event_id":`)
	if e := f.prepareEvent(ev, 1, "in"); e.lane != laneQuarantine || e.reason != event.ReasonNotJSON {
		t.Fatalf("lane %d reason %s", e.lane, e.reason)
	}
	ev.Detail = nil
	if e := f.prepareEvent(ev, 1, "in"); e.lane != laneQuarantine || e.reason != event.ReasonMissingField {
		t.Fatalf("lane %d reason %s", e.lane, e.reason)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"zero value", Config{}, true},
		{"same streams", Config{RawStream: "a", QuarantineStream: "a"}, false},
		{"batch too big", Config{BatchSize: 501}, false},
		{"batch bytes too big", Config{BatchBytes: 6 << 20}, false},
		{"negative attempts", Config{MaxAttempts: -1}, false},
		{"backoff inverted", Config{MinBackoff: time.Second, MaxBackoff: time.Millisecond}, false},
		{"empty pii segment", Config{PIIPaths: []string{"properties..email"}}, false},
		{"pii paths", Config{PIIPaths: []string{"properties.email", "customer_id"}}, true},
		{"concurrency too high", Config{Concurrency: 1000}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.cfg.Validate(); (err == nil) != tc.ok {
				t.Fatalf("Validate() = %v, want ok=%v", err, tc.ok)
			}
		})
	}
	if _, err := New(Config{}, nil); err == nil {
		t.Fatal("New accepted a nil client")
	}
	// Validate is pure: a raw stream named like the default quarantine stream passes it, and New,
	// which validates with the defaults applied, refuses it.
	same := Config{RawStream: names.QuarantineStream}
	if err := same.Validate(); err != nil {
		t.Fatalf("Validate applied defaults: %v", err)
	}
	if _, err := New(same, kinesisfake.New()); err == nil || !strings.Contains(err.Error(), "raw and quarantine streams") {
		t.Fatalf("New with the raw stream named like the default quarantine stream = %v", err)
	}
	// Every problem at once.
	err := Config{BatchSize: 501, MaxAttempts: -1, Concurrency: 1000, DrainTimeout: -1}.Validate()
	for _, want := range []string{"BatchSize 501", "MaxAttempts -1", "concurrency 1000", "DrainTimeout"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want it to mention %q", err, want)
		}
	}
}
