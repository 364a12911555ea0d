package forwarder

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/kinesis-events/pipeline/event"
	"github.com/kinesis-events/pipeline/internal/kinesisfake"
	"github.com/kinesis-events/pipeline/internal/names"
)

var _ lambda.Handler = (*Forwarder)(nil)

func TestInvokeForwardsAndQuarantines(t *testing.T) {
	kin := kinesisfake.New()
	f := newTestForwarder(t, kin, nil)
	ctx := t.Context()

	out, err := f.Invoke(ctx, []byte(goodLine("e1", "c1", 1)))
	if err != nil {
		t.Fatal(err)
	}
	var o Outcome
	if err := json.Unmarshal(out, &o); err != nil {
		t.Fatal(err)
	}
	if o.Status != StatusForwarded || o.EventID != "e1" || o.Stream != names.RawStream || o.SequenceNumber == "" {
		t.Fatalf("outcome %+v", o)
	}
	raw := written(kin, names.RawStream)
	if len(raw) != 1 || raw[0].key != "c1" {
		t.Fatalf("raw stream %+v", raw)
	}

	// Decoding into a struct would hide this duplicate; Invoke sees the bytes.
	dup := strings.Replace(goodLine("e2", "c1", 2), `"source":"shop.web"`, `"source":"a","source":"b"`, 1)
	for _, bad := range []string{`not json`, dup, ``} {
		out, err := f.Invoke(ctx, []byte(bad))
		if err != nil {
			t.Fatalf("%q: %v", bad, err)
		}
		if err := json.Unmarshal(out, &o); err != nil || o.Status != StatusQuarantined || o.Stream != names.QuarantineStream {
			t.Fatalf("%q: %v %+v", bad, err, o)
		}
	}
	q := written(kin, names.QuarantineStream)
	if len(q) != 3 {
		t.Fatalf("quarantine stream has %d records", len(q))
	}
	for i, want := range []event.Reason{event.ReasonNotJSON, event.ReasonDuplicateKey, event.ReasonNotJSON} {
		if r := decodeQuarantine(t, q[i].data); r.Reason != want {
			t.Fatalf("quarantine record %d: reason %q, want %q", i, r.Reason, want)
		}
	}
	if r := decodeQuarantine(t, q[1].data); string(r.Original) != dup {
		t.Fatalf("quarantine %+v", r)
	}
	if s := f.Stats(); s.Read != 4 || s.Forwarded != 1 || s.Quarantined != 3 || s.Failed != 0 {
		t.Fatalf("stats %+v", s)
	}
}

func TestHandleTyped(t *testing.T) {
	kin := kinesisfake.New()
	f := newTestForwarder(t, kin, nil)
	det := `{"event_id":"e1","customer_id":"c9","seq":1,"occurred_at":"2026-11-26T09:59:59Z","properties":{"x":"<&>"}}`
	o, err := f.Handle(t.Context(), event.BridgeEvent{DetailType: "purchase", Source: "shop", Detail: json.RawMessage(det)})
	if err != nil || o.Status != StatusForwarded {
		t.Fatalf("%v %+v", err, o)
	}
	if got := written(kin, names.RawStream); len(got) != 1 || !strings.HasSuffix(string(got[0].data), `"detail":`+det+`}`) {
		t.Fatalf("raw %+v", got)
	}
	o, err = f.Handle(t.Context(), event.BridgeEvent{DetailType: "purchase", Source: "shop"})
	if err != nil || o.Status != StatusQuarantined || o.Reason != event.ReasonMissingField {
		t.Fatalf("%v %+v", err, o)
	}
}

func TestHandleRetries(t *testing.T) {
	throttle := &types.ProvisionedThroughputExceededException{Message: ptr("slow down")}
	tests := []struct {
		name      string
		callErr   func(n int) error
		entryErr  func(attempt int) string
		wantErr   error // nil: written
		wantCalls int
	}{
		{"entry throttled twice", nil, func(a int) string {
			if a <= 2 {
				return "ProvisionedThroughputExceededException"
			}
			return ""
		}, nil, 3},
		{"call throttled once", func(n int) error {
			if n == 1 {
				return throttle
			}
			return nil
		}, nil, nil, 2},
		{"always failing", nil, func(int) string { return "InternalFailure" }, ErrNotWritten, 4},
		{"missing stream is fatal", func(int) error {
			return &types.ResourceNotFoundException{Message: ptr("no stream")}
		}, nil, ErrFatalPut, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			kin := kinesisfake.New()
			if tc.callErr != nil {
				kin.CallErr = func(c kinesisfake.Call) error { return tc.callErr(c.N) }
			}
			if tc.entryErr != nil {
				kin.EntryErr = func(e kinesisfake.Entry) string { return tc.entryErr(e.Attempt) }
			}
			f := newTestForwarder(t, kin, func(c *Config) { c.MaxAttempts = 4 })
			_, err := f.Invoke(t.Context(), []byte(goodLine("e1", "c1", 1)))
			switch {
			case tc.wantErr == nil && err != nil:
				t.Fatalf("error %v", err)
			case tc.wantErr != nil && (!errors.Is(err, tc.wantErr) || !errors.Is(err, ErrNotWritten)):
				t.Fatalf("error %v, want %v", err, tc.wantErr)
			}
			if kin.Calls() != tc.wantCalls {
				t.Fatalf("%d calls, want %d", kin.Calls(), tc.wantCalls)
			}
			if tc.wantErr == nil && len(written(kin, names.RawStream)) != 1 {
				t.Fatal("not written")
			}
			if s := f.Stats(); tc.wantErr != nil && s.Failed != 1 {
				t.Fatalf("stats %+v", s)
			}
		})
	}
}

func TestHandleStopsBeforeDeadline(t *testing.T) {
	kin := kinesisfake.New()
	kin.EntryErr = func(kinesisfake.Entry) string { return "ProvisionedThroughputExceededException" }
	f := newTestForwarder(t, kin, func(c *Config) {
		c.MaxAttempts, c.MinBackoff, c.MaxBackoff = 100, time.Second, time.Second
	})
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := f.Invoke(ctx, []byte(goodLine("e1", "c1", 1)))
	if !errors.Is(err, ErrNotWritten) || !strings.Contains(err.Error(), "deadline") {
		t.Fatalf("error %v", err)
	}
	if time.Since(start) > 250*time.Millisecond || kin.Calls() != 1 {
		t.Fatalf("waited %v over %d calls instead of giving up", time.Since(start), kin.Calls())
	}
}

func ptr[T any](v T) *T { return &v }
