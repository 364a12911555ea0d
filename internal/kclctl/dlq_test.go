package kclctl

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/kinesis-events/pipeline/event"
	"github.com/kinesis-events/pipeline/internal/ambiguous"
	"github.com/kinesis-events/pipeline/internal/names"
)

func rawRecord(t *testing.T, customer, eventID string, seq int) []byte {
	t.Helper()
	detail, _ := json.Marshal(map[string]any{"event_id": eventID, "customer_id": customer, "seq": seq})
	b, err := json.Marshal(event.Raw{V: 1, Type: "purchase", Source: "test", Detail: detail})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// dlqWith builds a DLQ stream holding the given dead letters (and raw junk records), in order.
func dlqWith(t *testing.T, items ...any) *fakeStream {
	t.Helper()
	f := newFakeStream(t, 2)
	base := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	for i, it := range items {
		var data []byte
		switch v := it.(type) {
		case event.DeadLetter:
			data, _ = json.Marshal(v)
		case string:
			data = []byte(v)
		}
		f.seq++
		// Alternate shards, so reading must merge them back into arrival order.
		s := f.shards[i%2]
		s.records = append(s.records, fakeRecord{key: "k", seq: fmt.Sprint(f.seq), data: data, at: base.Add(time.Duration(i) * time.Second)})
	}
	return f
}

func dead(t *testing.T, customer, eventID string, seq int, reason string) event.DeadLetter {
	return event.DeadLetter{Reason: reason, Destination: names.AnalyticsStream("purchase"), Attempts: 7,
		FirstFailure: time.Date(2026, 11, 26, 11, 0, 0, 0, time.UTC), LastFailure: time.Date(2026, 11, 26, 11, 1, 0, 0, time.UTC),
		SourceShard: "shardId-000000000001", SourceSeq: fmt.Sprintf("4960%052d", seq), EventID: eventID, CustomerID: customer,
		Original: rawRecord(t, customer, eventID, seq)}
}

func TestReadDLQ(t *testing.T) {
	f := dlqWith(t,
		dead(t, "c1", "e1", 1, "destination_unavailable: ResourceNotFoundException"),
		"not json",
		dead(t, "c2", "e2", 1, "quarantine_unavailable (quarantined for bad_signature): timeout"),
		dead(t, "c1", "e3", 2, "destination_unavailable: throttled"),
	)
	r, err := ReadDLQ(t.Context(), f, names.DLQStream, 100, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, d := range r.Records {
		ids = append(ids, d.EventID)
	}
	if strings.Join(ids, ",") != "e1,e2,e3" || r.ByReason["destination_unavailable"] != 2 || r.ByReason["quarantine_unavailable (quarantined for bad_signature)"] != 1 {
		t.Fatalf("records %v by reason %v", ids, r.ByReason)
	}
	if len(r.Warnings) != 1 || r.Warnings[0].Kind != WarnUndecodable || r.Truncated {
		t.Fatalf("warnings %+v truncated %v", r.Warnings, r.Truncated)
	}
	if d := r.Records[0]; d.Attempts != 7 || d.SourceShard != "shardId-000000000001" || d.DLQShard == "" || d.DLQSeq == "" || d.ArrivedAt.IsZero() || len(d.Original) == 0 {
		t.Fatalf("record %+v", d)
	}

	var b bytes.Buffer
	if err := RenderDLQ(&b, r); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"EVENT ID  CUSTOMER  REASON", "e1        c1        destination_unavailable", "2026-11-26T11:00:00.000Z",
		"4960...00000001", "3 dead letter(s) in events-dlq by reason: destination_unavailable=2", "undecodable_dead_letter"} {
		if !strings.Contains(out, want) {
			t.Fatalf("table lacks %q:\n%s", want, out)
		}
	}

	r, err = ReadDLQ(t.Context(), f, names.DLQStream, 2, time.Now())
	if err != nil || !r.Truncated || len(r.Records) != 2 || r.Warnings[len(r.Warnings)-1].Kind != WarnTruncated {
		t.Fatalf("limit 2: %d records, truncated %v, warnings %+v, %v", len(r.Records), r.Truncated, r.Warnings, err)
	}
}

func TestReplaySelectsAndSkips(t *testing.T) {
	noCustomer := dead(t, "", "e5", 1, "destination_unavailable: x")
	noCustomer.Original = []byte(`{"v":1,"detail":{"event_id":"e5"}}`)
	fromOriginal := dead(t, "", "e6", 1, "destination_unavailable: x")
	fromOriginal.Original = rawRecord(t, "c6", "e6", 1)
	truncated := dead(t, "c7", "e7", 1, "quarantine_unavailable (quarantined for too_large): x")
	truncated.Original = []byte(`{"v":1,"detail":{"eve`)
	f := dlqWith(t,
		dead(t, "c1", "e1", 1, "destination_unavailable: x"),
		dead(t, "c1", "e1", 1, "destination_unavailable: again"), // same event, same content: once
		dead(t, "c2", "e2", 1, "destination_unavailable: x"),
		noCustomer, fromOriginal, truncated,
	)
	dlq, err := ReadDLQ(t.Context(), f, names.DLQStream, 100, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	raw := newFakeStream(t, 1)
	rep, err := Replay(t.Context(), raw, dlq, ReplayOptions{RawStream: names.RawStream})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Selected != 6 || rep.Replayed != 3 || rep.Skipped != 3 || rep.Failed != 0 || len(rep.Warnings) != 2 || raw.calls["PutRecords"] != 0 {
		t.Fatalf("dry run: %+v, %d puts", rep, raw.calls["PutRecords"])
	}
	rep, err = Replay(t.Context(), raw, dlq, ReplayOptions{RawStream: names.RawStream, Apply: true})
	if err != nil || rep.Replayed != 3 || len(raw.puts) != 3 {
		t.Fatalf("apply: %+v (%v), %d landed", rep, err, len(raw.puts))
	}
	keys := map[string]bool{}
	for _, p := range raw.puts {
		keys[p.key] = true
	}
	if !keys["c1"] || !keys["c2"] || !keys["c6"] {
		t.Fatalf("partition keys %v, want customer ids c1 c2 c6", keys)
	}
	rep, err = Replay(t.Context(), raw, dlq, ReplayOptions{RawStream: names.RawStream, EventIDs: []string{"e2"}, Apply: true})
	if err != nil || rep.Selected != 1 || rep.Replayed != 1 {
		t.Fatalf("by event id: %+v %v", rep, err)
	}
	rep, err = Replay(t.Context(), raw, dlq, ReplayOptions{RawStream: names.RawStream, Reason: "too_large"})
	if err != nil || rep.Selected != 1 || rep.Skipped != 1 || rep.Rows[0].Result != ReplayNoOriginal {
		t.Fatalf("by reason: %+v %v", rep, err)
	}
}

// TestReplayKeepsCustomerOrderUnderFailures: entries fail at random-looking but deterministic
// attempts; every record lands exactly once and each customer's records land in DLQ order.
func TestReplayKeepsCustomerOrderUnderFailures(t *testing.T) {
	var items []any
	for i := range 60 {
		c := fmt.Sprintf("c%d", i%7)
		items = append(items, dead(t, c, fmt.Sprintf("e%02d", i), i, "destination_unavailable: x"))
	}
	dlq, err := ReadDLQ(t.Context(), dlqWith(t, items...), names.DLQStream, 1000, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	raw := newFakeStream(t, 1)
	raw.putFail = func(key string, n int) bool { return (len(key)*7+n*3)%4 == 0 && n < 4 }
	rep, err := Replay(t.Context(), raw, dlq, ReplayOptions{RawStream: names.RawStream, Apply: true, Backoff: time.Microsecond})
	if err != nil || rep.Replayed != 60 || rep.Failed != 0 {
		t.Fatalf("%+v %v", rep, err)
	}
	if len(raw.puts) != 60 {
		t.Fatalf("%d records landed, want 60", len(raw.puts))
	}
	last := map[string]int{}
	seen := map[string]bool{}
	for _, p := range raw.puts {
		var r event.Raw
		var d event.Detail
		if err := json.Unmarshal(p.data, &r); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(r.Detail, &d); err != nil {
			t.Fatal(err)
		}
		if seen[d.EventID] {
			t.Fatalf("%s landed twice", d.EventID)
		}
		seen[d.EventID] = true
		if prev, ok := last[p.key]; ok && int(d.Seq) < prev {
			t.Fatalf("customer %s: seq %d landed after %d", p.key, d.Seq, prev)
		}
		last[p.key] = int(d.Seq)
	}

	// A customer whose record keeps failing is given up on, and its later records are not sent.
	raw = newFakeStream(t, 1)
	raw.putFail = func(key string, _ int) bool { return key == "c3" }
	rep, err = Replay(t.Context(), raw, dlq, ReplayOptions{RawStream: names.RawStream, Apply: true, Backoff: time.Microsecond})
	if err != nil {
		t.Fatal(err)
	}
	c3 := 0
	for _, r := range rep.Rows {
		if r.CustomerID == "c3" {
			c3++
			if r.Result != ReplayFailed {
				t.Fatalf("c3 row %+v", r)
			}
		}
	}
	if rep.Failed != c3 || rep.Replayed != 60-c3 || raw.putAttempts["c3"] != maxReplayAttempts {
		t.Fatalf("failed %d (c3 has %d), replayed %d, c3 attempts %d", rep.Failed, c3, rep.Replayed, raw.putAttempts["c3"])
	}
	var b bytes.Buffer
	if err := RenderReplay(&b, rep); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "not sent: an earlier dead letter of the customer failed") || !strings.Contains(b.String(), fmt.Sprintf("replayed %d into events-raw", 60-c3)) {
		t.Fatalf("replay table:\n%s", b.String())
	}
}

// putWrapper answers PutRecords its own way, in front of a fakeStream.
type putWrapper struct {
	*fakeStream
	put func(ctx context.Context, in *kinesis.PutRecordsInput) (*kinesis.PutRecordsOutput, error)
}

func (p putWrapper) PutRecords(ctx context.Context, in *kinesis.PutRecordsInput, _ ...func(*kinesis.Options)) (*kinesis.PutRecordsOutput, error) {
	return p.put(ctx, in)
}

// TestReplayFatalAndUnknown: a raw stream that does not exist fails each customer's first record at
// once (no retries: it cannot succeed) and leaves its later ones unsent; a put whose outcome was
// unknown is counted in the report and noted in the table.
func TestReplayFatalAndUnknown(t *testing.T) {
	dlq, err := ReadDLQ(t.Context(), dlqWith(t,
		dead(t, "c1", "e1", 1, "destination_unavailable: x"), dead(t, "c1", "e2", 2, "destination_unavailable: x"),
		dead(t, "c2", "e3", 1, "destination_unavailable: x"),
	), names.DLQStream, 100, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	calls := 0
	missing := putWrapper{fakeStream: newFakeStream(t, 1), put: func(context.Context, *kinesis.PutRecordsInput) (*kinesis.PutRecordsOutput, error) {
		calls++
		return nil, &types.ResourceNotFoundException{Message: aws.String("Stream events-raw not found")}
	}}
	rep, err := Replay(t.Context(), missing, dlq, ReplayOptions{RawStream: names.RawStream, Apply: true, Backoff: time.Microsecond})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Failed != 3 || rep.Replayed != 0 || calls != 1 {
		t.Fatalf("%+v after %d calls", rep, calls)
	}
	if !strings.Contains(rep.Rows[0].Error, "not found") || rep.Rows[1].Error != "not sent: an earlier dead letter of the customer failed" || !strings.Contains(rep.Rows[2].Error, "not found") {
		t.Fatalf("rows %+v", rep.Rows)
	}

	raw := newFakeStream(t, 1)
	lost := putWrapper{fakeStream: raw, put: func(ctx context.Context, in *kinesis.PutRecordsInput) (*kinesis.PutRecordsOutput, error) {
		if raw.calls["PutRecords"] == 0 {
			ambiguous.Note(ctx) // the SDK resent the first call after its answer was cut off
		}
		return raw.PutRecords(ctx, in)
	}}
	rep, err = Replay(t.Context(), lost, dlq, ReplayOptions{RawStream: names.RawStream, Apply: true, Backoff: time.Microsecond})
	if err != nil || rep.Replayed != 3 || rep.Unknown != 2 {
		t.Fatalf("%+v %v: want 3 replayed, the 2 records of the first call counted unknown", rep, err)
	}
	var b bytes.Buffer
	if err := RenderReplay(&b, rep); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "note: 2 record(s) were sent in attempts whose outcome is unknown") {
		t.Fatalf("replay table:\n%s", b.String())
	}
}
