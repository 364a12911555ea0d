package ordered

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/kinesis-events/pipeline/internal/ambiguous"
	"github.com/kinesis-events/pipeline/internal/kinesisfake"
)

func TestClassify(t *testing.T) {
	wrap := func(err error) error { return fmt.Errorf("operation error Kinesis: PutRecords: %w", err) }
	for _, tc := range []struct {
		name string
		err  error
		want Outcome
	}{
		{"nil", nil, OK},
		{"plain", errors.New("connection reset"), Retry},
		{"context", context.Canceled, Retry},
		{"throughput", wrap(&types.ProvisionedThroughputExceededException{}), Throttled},
		{"limit exceeded", wrap(&types.LimitExceededException{}), Throttled},
		{"kms throttling", wrap(&types.KMSThrottlingException{}), Throttled},
		{"throttling code", wrap(&smithy.GenericAPIError{Code: "ThrottlingException"}), Throttled},
		{"missing stream", wrap(&types.ResourceNotFoundException{}), Fatal},
		{"access denied", wrap(&types.AccessDeniedException{}), Fatal},
		{"invalid argument", wrap(&types.InvalidArgumentException{}), Fatal},
		{"validation", wrap(&types.ValidationException{}), Fatal},
		{"kms disabled", wrap(&types.KMSDisabledException{}), Fatal},
		{"kms not found", wrap(&types.KMSNotFoundException{}), Fatal},
		{"kms invalid state", wrap(&types.KMSInvalidStateException{}), Fatal},
		{"kms access denied", wrap(&types.KMSAccessDeniedException{}), Fatal},
		{"kms opt-in", wrap(&types.KMSOptInRequired{}), Fatal},
		{"bad credentials", wrap(&smithy.GenericAPIError{Code: "UnrecognizedClientException"}), Fatal},
		{"untyped missing stream", wrap(&smithy.GenericAPIError{Code: "ResourceNotFoundException"}), Fatal},
		{"stream updating", wrap(&types.ResourceInUseException{}), Retry},
		{"internal failure code", wrap(&smithy.GenericAPIError{Code: "InternalFailure"}), Retry},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Classify(tc.err); got != tc.want {
				t.Fatalf("Classify(%v) = %v, want %v", tc.err, got, tc.want)
			}
		})
	}
	for code, want := range map[string]Outcome{
		"": OK, "ProvisionedThroughputExceededException": Throttled, "KMSThrottlingException": Throttled,
		"InternalFailure": Retry, "KMSDisabledException": Fatal, "KMSNotFoundException": Fatal,
		"KMSInvalidStateException": Fatal, "KMSAccessDeniedException": Fatal, "KMSOptInRequired": Fatal, "SomethingNew": Retry,
	} {
		if got := ClassifyCode(code); got != want {
			t.Errorf("ClassifyCode(%q) = %v, want %v", code, got, want)
		}
	}
}

// TestPutOutcomes: one call, every entry classified from its error code; only written entries get
// a shard and sequence number; the counts go to the result and the metrics.
func TestPutOutcomes(t *testing.T) {
	kin := kinesisfake.New()
	codes := map[string]string{"b": "ProvisionedThroughputExceededException", "c": "InternalFailure", "d": "KMSDisabledException"}
	kin.EntryErr = func(e kinesisfake.Entry) string { return codes[e.Key] }
	var calls, throttles, retries, errs counter
	s := NewStream(kin, "s", nil, Metrics{Calls: &calls, Throttles: &throttles, Retries: &retries, Errors: &errs})
	recs := []*Record{{Key: "a", Data: []byte("1")}, {Key: "b", Data: []byte("2")}, {Key: "c", Data: []byte("3")}, {Key: "d", Data: []byte("4")}}
	recs[1].Attempts = 1 // sent before
	res := s.Put(t.Context(), recs)
	want := []Outcome{OK, Throttled, Retry, Fatal}
	for i, r := range recs {
		if r.Outcome != want[i] {
			t.Errorf("record %s: %v, want %v", r.Key, r.Outcome, want[i])
		}
	}
	if recs[0].ShardID == "" || recs[0].SequenceNumber == "" || recs[1].SequenceNumber != "" {
		t.Fatalf("shard/seq %+v %+v", recs[0], recs[1])
	}
	if recs[1].LastError != "ProvisionedThroughputExceededException: scripted" {
		t.Fatalf("last error %q", recs[1].LastError)
	}
	if res.Err != nil || res.Sent != 4 || res.Written != 1 || res.Failed != 3 || res.Throttled != 1 || res.Retried != 1 || !res.Progress() || res.OnlyThrottled() {
		t.Fatalf("result %+v", res)
	}
	if calls.value() != 1 || throttles.value() != 1 || retries.value() != 1 || errs.value() != 0 {
		t.Fatalf("metrics calls %v throttles %v retries %v errors %v", calls.value(), throttles.value(), retries.value(), errs.value())
	}

	// A throttled call: every record throttled; the call counts as an error.
	kin.CallErr = func(kinesisfake.Call) error {
		return &types.ProvisionedThroughputExceededException{Message: ptr("slow down")}
	}
	res = s.Put(t.Context(), recs[:2])
	if res.Class != Throttled || res.Throttled != 2 || !res.OnlyThrottled() || recs[0].Outcome != Throttled || errs.value() != 1 || throttles.value() != 3 {
		t.Fatalf("throttled call: %+v, errors %v, throttles %v", res, errs.value(), throttles.value())
	}
}

// TestPutLimits: a record over a Kinesis limit is never sent and fails on its own with the reason;
// the others of the call are sent. Records over one call's limits are not sent at all.
func TestPutLimits(t *testing.T) {
	kin := kinesisfake.New()
	s := NewStream(kin, "s", nil, Metrics{})
	ok256 := strings.Repeat("é", MaxKeyChars) // 512 bytes, 256 characters: allowed
	recs := []*Record{
		{Key: "a", Data: []byte("fine")},
		{Key: "", Data: []byte("no key")},
		{Key: strings.Repeat("k", MaxKeyChars+1), Data: []byte("long key")},
		{Key: "b", Data: make([]byte, MaxRecordBytes)}, // with its key, one byte over
		{Key: ok256, Data: make([]byte, MaxRecordBytes-len(ok256))},
	}
	res := s.Put(t.Context(), recs)
	if res.Sent != 2 || res.Written != 2 || res.Failed != 3 {
		t.Fatalf("result %+v", res)
	}
	for i, wantErr := range []string{"", "partition key is empty", "partition key of 257 characters", "record of 1048577 bytes", ""} {
		r := recs[i]
		if wantErr == "" {
			if r.Outcome != OK {
				t.Errorf("record %d: %v %s", i, r.Outcome, r.LastError)
			}
			continue
		}
		if r.Outcome != Fatal || r.Cause != CauseLimit || !strings.Contains(r.LastError, wantErr) {
			t.Errorf("record %d: %v %v %q, want fatal over a limit: %q", i, r.Outcome, r.Cause, r.LastError, wantErr)
		}
	}
	if got := len(written(kin)); got != 2 {
		t.Fatalf("%d records reached the stream, want 2", got)
	}
	kin.CheckViolations(t)

	var many []*Record
	for i := range MaxRecords + 1 {
		many = append(many, &Record{Key: fmt.Sprint("k", i), Data: []byte("x")})
	}
	if res := s.Put(t.Context(), many); !errors.Is(res.Err, ErrCallLimits) || res.Class != Fatal || res.Sent != 0 || kin.Calls() != 1 {
		t.Fatalf("501 records: %+v after %d calls", res, kin.Calls())
	}
}

// TestPutUnknownOutcome: the records of a call in which attempts had an unknown outcome are
// counted once per such attempt and logged with the stable message and fields; a failed call with
// an unknown outcome is Unknown, not Retry; a clean failure counts nothing.
func TestPutUnknownOutcome(t *testing.T) {
	recs := func(n int) []*Record {
		var out []*Record
		for i := range n {
			out = append(out, &Record{Key: fmt.Sprint("k", i), Data: []byte("x"), ID: fmt.Sprint("e", i)})
		}
		return out
	}
	for _, tc := range []struct {
		name      string
		notes     int   // attempts the "SDK" saw end unknown
		err       error // the call's final error
		answer    int   // entries answered (-1: as many as sent)
		wantClass Outcome
		want      int
	}{
		{"sdk retried it once", 1, nil, -1, OK, 5},
		{"sdk retried it twice", 2, nil, -1, OK, 10},
		{"answer lost", 1, errors.New("read tcp: use of closed network connection"), -1, Unknown, 5},
		{"throttled after an unknown attempt", 1, &types.ProvisionedThroughputExceededException{}, -1, Throttled, 5},
		{"answer does not match", 0, nil, 3, Unknown, 5},
		{"clean failure", 0, errors.New("dial tcp: connection refused"), -1, Retry, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			core, logs := observer.New(zapcore.WarnLevel)
			var unknown counter
			s := NewStream(putFunc(func(ctx context.Context, n int) (int, error) {
				for range tc.notes {
					ambiguous.Note(ctx)
				}
				if tc.answer >= 0 {
					return tc.answer, tc.err
				}
				return n, tc.err
			}), "analytics", zap.New(core).With(zap.String("shard", "s1")), Metrics{Unknown: &unknown})
			res := s.Put(t.Context(), recs(5))
			if res.Unknown != tc.want || unknown.value() != float64(tc.want) {
				t.Fatalf("unknown %d (metric %v), want %d", res.Unknown, unknown.value(), tc.want)
			}
			if res.Class != tc.wantClass {
				t.Fatalf("class %v, want %v", res.Class, tc.wantClass)
			}
			entries := logs.FilterMessage(LogUnknownOutcome).All()
			if tc.want == 0 {
				if len(entries) != 0 {
					t.Fatalf("logged %d unknown-outcome warnings after a clean failure", len(entries))
				}
				return
			}
			if len(entries) != 1 {
				t.Fatalf("%d warnings, want 1", len(entries))
			}
			f := entries[0].ContextMap()
			if f["records"] != int64(tc.want) || f["stream"] != "analytics" || f["shard"] != "s1" || fmt.Sprint(f["event_ids"]) != "[e0 e1 e2 e3 e4]" {
				t.Fatalf("fields %v", f)
			}
		})
	}
}

// putFunc is a Putter that answers n entries (all written) or fails, as fn says.
type putFunc func(ctx context.Context, n int) (answered int, err error)

func (f putFunc) PutRecords(ctx context.Context, in *kinesis.PutRecordsInput, _ ...func(*kinesis.Options)) (*kinesis.PutRecordsOutput, error) {
	answered, err := f(ctx, len(in.Records))
	if err != nil {
		return nil, err
	}
	out := &kinesis.PutRecordsOutput{Records: make([]types.PutRecordsResultEntry, answered)}
	for i := range out.Records {
		out.Records[i] = types.PutRecordsResultEntry{ShardId: ptr("shardId-0"), SequenceNumber: ptr(fmt.Sprint(i))}
	}
	return out, nil
}

func TestRefuse(t *testing.T) {
	recs := []*Record{{Key: "a", LastError: "ResourceNotFoundException: gone"}, {Key: "b"}}
	res := Refuse(recs, errors.New("circuit breaker is open"))
	if !res.Refused || res.Failed != 2 || res.Sent != 0 || res.Progress() || res.OnlyThrottled() {
		t.Fatalf("result %+v", res)
	}
	if recs[0].LastError != "ResourceNotFoundException: gone" || recs[1].LastError != "circuit breaker is open" || recs[1].Outcome != Retry {
		t.Fatalf("records %+v %+v", recs[0], recs[1])
	}
}
