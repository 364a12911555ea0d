package forwarder

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/kinesis-events/pipeline/event"
	"github.com/kinesis-events/pipeline/internal/kinesisfake"
)

var testNow = time.Date(2026, 11, 26, 10, 0, 0, 123456789, time.UTC)

// detail returns a producer detail; props is a JSON object or "".
func detail(eventID, customer string, seq int, props string) string {
	if props == "" {
		props = `{"path":"/home"}`
	}
	return fmt.Sprintf(`{"event_id":%q,"customer_id":%q,"seq":%d,"occurred_at":"2026-11-26T09:59:59Z","properties":%s,"key_id":"k1","signature":"c2ln"}`,
		eventID, customer, seq, props)
}

// bridge wraps a detail in an EventBridge event.
func bridge(typ, det string) string {
	return fmt.Sprintf(`{"version":"0","id":"b-%d","detail-type":%q,"source":"shop.web","account":"123456789012","time":"2026-11-26T10:00:00Z","region":"us-east-1","resources":[],"detail":%s}`,
		len(det), typ, det)
}

func goodLine(eventID, customer string, seq int) string {
	return bridge("page_view", detail(eventID, customer, seq, ""))
}

func newTestForwarder(t testing.TB, kin Kinesis, mod func(*Config)) *Forwarder {
	t.Helper()
	cfg := Config{
		MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond,
		Now: func() time.Time { return testNow },
	}
	if mod != nil {
		mod(&cfg)
	}
	f, err := New(cfg, kin)
	if err != nil {
		t.Fatal(err)
	}
	if fake, ok := kin.(*kinesisfake.Fake); ok {
		// Every write keeps to the Kinesis limits and the per-key rule.
		t.Cleanup(func() { fake.CheckViolations(t) })
	}
	return f
}

// decodeQuarantine decodes a quarantine record and checks the invariants every one must hold.
func decodeQuarantine(t *testing.T, data []byte) event.Quarantine {
	t.Helper()
	if len(data) > MaxRecordBytes {
		t.Fatalf("quarantine record of %d bytes", len(data))
	}
	var q event.Quarantine
	if err := json.Unmarshal(data, &q); err != nil {
		t.Fatalf("quarantine record does not decode: %v", err)
	}
	if q.Stage != StageForwarder || q.Reason == "" || q.At.IsZero() {
		t.Fatalf("quarantine record %+v", q)
	}
	return q
}

// seqOf reads detail.seq and customer_id of a raw record.
func rawIDs(t *testing.T, data []byte) (customer string, seq uint64, eventID string) {
	t.Helper()
	_, d, err := event.DecodeRaw(data)
	if err != nil {
		t.Fatalf("raw record does not decode: %v", err)
	}
	return d.CustomerID, d.Seq, d.EventID
}

func lines(ls ...string) string { return strings.Join(ls, "\n") + "\n" }
