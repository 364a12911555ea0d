package kinesisfake

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"go.uber.org/goleak"

	"github.com/kinesis-events/pipeline/internal/ambiguous"
	"github.com/kinesis-events/pipeline/internal/poll"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// put builds a call of one entry per key ("key" or "key=data"; the data defaults to "d-"+key).
func put(stream string, keys ...string) *kinesis.PutRecordsInput {
	in := &kinesis.PutRecordsInput{StreamName: aws.String(stream)}
	for _, k := range keys {
		key, data, ok := strings.Cut(k, "=")
		if !ok {
			data = "d-" + key
		}
		in.Records = append(in.Records, types.PutRecordsRequestEntry{PartitionKey: aws.String(key), Data: []byte(data)})
	}
	return in
}

func sized(stream string, n, dataBytes int) *kinesis.PutRecordsInput {
	in := &kinesis.PutRecordsInput{StreamName: aws.String(stream)}
	for i := range n {
		in.Records = append(in.Records, types.PutRecordsRequestEntry{PartitionKey: aws.String(fmt.Sprint("k", i)), Data: make([]byte, dataBytes)})
	}
	return in
}

func TestServiceLimitsRejected(t *testing.T) {
	key257 := strings.Repeat("k", MaxKeyChars+1)
	cases := []struct {
		name string
		in   *kinesis.PutRecordsInput
		want any // the typed exception expected
	}{
		{"no records", put("s"), new(*types.ValidationException)},
		{"501 records", sized("s", MaxRecords+1, 1), new(*types.ValidationException)},
		{"request over 5 MiB", sized("s", 6, 1<<20-10), new(*types.ValidationException)},
		{"record over 1 MiB with its key", &kinesis.PutRecordsInput{StreamName: aws.String("s"), Records: []types.PutRecordsRequestEntry{{PartitionKey: aws.String("ab"), Data: make([]byte, MaxRecordBytes-1)}}}, new(*types.InvalidArgumentException)},
		{"empty key", put("s", "=x"), new(*types.ValidationException)},
		{"key of 257 characters", put("s", key257), new(*types.ValidationException)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := New()
			_, err := f.PutRecords(t.Context(), tc.in)
			if err == nil || !errors.As(err, tc.want) {
				t.Fatalf("err %v, want %T", err, tc.want)
			}
			if len(f.Records("s")) != 0 {
				t.Fatalf("a rejected call wrote %d records", len(f.Records("s")))
			}
			if v := f.Violations(); len(v) == 0 {
				t.Fatal("no violation recorded")
			}
			if f.Calls() != 1 || f.InFlight() != 0 {
				t.Fatalf("%d calls, %d in flight", f.Calls(), f.InFlight())
			}
		})
	}
}

func TestLimitsAtTheirEdgeAccepted(t *testing.T) {
	f := New()
	calls := []*kinesis.PutRecordsInput{
		sized("s", MaxRecords, 1),
		sized("s", 5, 1<<20-2), // 5 records of exactly 1 MiB with their key "k0".."k4": 5 MiB
		put("s", strings.Repeat("é", MaxKeyChars)),
	}
	for i, in := range calls {
		out, err := f.PutRecords(t.Context(), in)
		if err != nil || aws.ToInt32(out.FailedRecordCount) != 0 {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	f.CheckViolations(t)
	if got := len(f.Records("s")); got != MaxRecords+5+1 {
		t.Fatalf("%d records written", got)
	}
	if got := f.BatchSizes(); len(got) != 3 || got[0] != MaxRecords || got[1] != 5 || got[2] != 1 {
		t.Fatalf("batch sizes %v", got)
	}
	if got := f.BatchBytes()[1]; got != MaxRequestBytes {
		t.Fatalf("second call of %d bytes, want %d", got, MaxRequestBytes)
	}
}

func TestKeyTwiceInOneCallRecorded(t *testing.T) {
	f := New()
	if _, err := f.PutRecords(t.Context(), put("s", "a=1", "b", "a=2")); err != nil {
		t.Fatal(err)
	}
	v := f.Violations()
	if len(v) != 1 || !strings.Contains(v[0], "key a twice in one call") {
		t.Fatalf("violations %q", v)
	}
	if got := f.Records("s"); len(got) != 3 || got[2].Key != "a" || string(got[2].Data) != "2" || got[2].Seq != "3" || got[2].ShardID != ShardID {
		t.Fatalf("records %+v: the service would accept the call", got)
	}
}

// TestKeyInFlightRecorded holds a call in flight and sends the same key to the same stream (a
// violation) and to another stream (none: Kinesis orders per stream).
func TestKeyInFlightRecorded(t *testing.T) {
	f := New()
	gate := make(chan struct{})
	f.Gate = gate
	done := make(chan error, 1)
	go func() {
		_, err := f.PutRecords(t.Context(), put("s", "a", "b"))
		done <- err
	}()
	poll.True(t, 10*time.Second, time.Millisecond, "first call in flight", func() bool { return f.InFlight() == 1 })
	f.Set(func(f *Fake) { f.Gate = nil })
	if _, err := f.PutRecords(t.Context(), put("other", "a")); err != nil {
		t.Fatal(err)
	}
	if v := f.Violations(); len(v) != 0 {
		t.Fatalf("key on another stream: %q", v)
	}
	if _, err := f.PutRecords(t.Context(), put("s", "c", "a")); err != nil {
		t.Fatal(err)
	}
	v := f.Violations()
	if len(v) != 1 || !strings.Contains(v[0], "key a already in flight") {
		t.Fatalf("violations %q", v)
	}
	if f.MaxInFlight() != 2 {
		t.Fatalf("max in flight %d, want 2", f.MaxInFlight())
	}
	close(gate)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if f.InFlight() != 0 || len(f.Records("s")) != 4 {
		t.Fatalf("%d in flight, %d records on s", f.InFlight(), len(f.Records("s")))
	}
}

func TestKeyFreeAfterItsCall(t *testing.T) {
	f := New()
	for range 3 {
		if _, err := f.PutRecords(t.Context(), put("s", "a")); err != nil {
			t.Fatal(err)
		}
	}
	f.Set(func(f *Fake) { f.CallErr = func(Call) error { return errors.New("down") } })
	if _, err := f.PutRecords(t.Context(), put("s", "a")); err == nil {
		t.Fatal("scripted failure not returned")
	}
	f.Set(func(f *Fake) { f.CallErr = nil })
	if _, err := f.PutRecords(t.Context(), put("s", "a")); err != nil {
		t.Fatal(err)
	}
	f.CheckViolations(t)
	if f.InFlight() != 0 || f.MaxInFlight() != 1 {
		t.Fatalf("%d in flight, max %d", f.InFlight(), f.MaxInFlight())
	}
}

func TestFullBatch(t *testing.T) {
	f := New()
	gate := make(chan struct{})
	f.FullBatch, f.Gate = 2, gate
	done := make(chan error, 1)
	go func() {
		_, err := f.PutRecords(t.Context(), put("s", "a", "b"))
		done <- err
	}()
	poll.True(t, 10*time.Second, time.Millisecond, "first call in flight", func() bool { return f.InFlight() == 1 })
	f.Set(func(f *Fake) { f.Gate = nil })
	if _, err := f.PutRecords(t.Context(), put("s", "c", "d")); err != nil {
		t.Fatal(err)
	}
	if v := f.Violations(); len(v) != 0 {
		t.Fatalf("a full batch alongside: %q", v)
	}
	if _, err := f.PutRecords(t.Context(), put("s", "e")); err != nil {
		t.Fatal(err)
	}
	if v := f.Violations(); len(v) != 1 || !strings.Contains(v[0], "1 records sent alongside 1 calls in flight") {
		t.Fatalf("violations %q", v)
	}
	select {
	case err := <-done:
		t.Fatalf("first call answered (%v) before its gate opened", err)
	default:
	}
	gate <- struct{}{}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// Alone, a short call is fine.
	if _, err := f.PutRecords(t.Context(), put("s", "f")); err != nil {
		t.Fatal(err)
	}
	if v := f.Violations(); len(v) != 1 {
		t.Fatalf("violations %q", v)
	}
}

func TestCallErrFailsWholeCall(t *testing.T) {
	f := New()
	var seen []Call
	f.CallErr = func(c Call) error {
		seen = append(seen, c)
		if c.Stream == "s" && c.StreamN == 2 {
			return &types.ProvisionedThroughputExceededException{Message: aws.String("slow down")}
		}
		return nil
	}
	for _, in := range []*kinesis.PutRecordsInput{put("s", "a"), put("t", "b"), put("s", "c", "d")} {
		_, err := f.PutRecords(t.Context(), in)
		var pt *types.ProvisionedThroughputExceededException
		if got := errors.As(err, &pt); got != (aws.ToString(in.StreamName) == "s" && len(in.Records) == 2) {
			t.Fatalf("call to %s of %d: err %v", aws.ToString(in.StreamName), len(in.Records), err)
		}
	}
	want := []Call{{N: 1, StreamN: 1, Stream: "s", Keys: []string{"a"}}, {N: 2, StreamN: 1, Stream: "t", Keys: []string{"b"}}, {N: 3, StreamN: 2, Stream: "s", Keys: []string{"c", "d"}}}
	if fmt.Sprint(seen) != fmt.Sprint(want) {
		t.Fatalf("calls %v, want %v", seen, want)
	}
	if got := f.Records("s"); len(got) != 1 || got[0].Key != "a" {
		t.Fatalf("records %+v: a failed call wrote", got)
	}
	if f.Calls() != 3 || f.CallsTo("s") != 2 || f.CallsTo("t") != 1 || f.Attempts([]byte("d-c")) != 0 {
		t.Fatalf("calls %d, to s %d, to t %d, attempts of c %d", f.Calls(), f.CallsTo("s"), f.CallsTo("t"), f.Attempts([]byte("d-c")))
	}
}

func TestEntryErrFailsOneEntry(t *testing.T) {
	f := New()
	var attempts []int
	f.EntryErr = func(e Entry) string {
		if e.Key == "b" {
			attempts = append(attempts, e.Attempt)
			if e.Attempt < 3 {
				return "ProvisionedThroughputExceededException"
			}
		}
		return ""
	}
	for n := 1; n <= 3; n++ {
		out, err := f.PutRecords(t.Context(), put("s", fmt.Sprint("a", n), "b", fmt.Sprint("c", n)))
		if err != nil {
			t.Fatal(err)
		}
		wantFailed := int32(1)
		if n == 3 {
			wantFailed = 0
		}
		if aws.ToInt32(out.FailedRecordCount) != wantFailed || len(out.Records) != 3 {
			t.Fatalf("call %d: %d failed of %d", n, aws.ToInt32(out.FailedRecordCount), len(out.Records))
		}
		if wantFailed == 1 && (aws.ToString(out.Records[1].ErrorCode) != "ProvisionedThroughputExceededException" || out.Records[1].SequenceNumber != nil || out.Records[0].SequenceNumber == nil || out.Records[2].SequenceNumber == nil) {
			t.Fatalf("call %d: entries %+v", n, out.Records)
		}
	}
	if fmt.Sprint(attempts) != "[1 2 3]" || f.Attempts([]byte("d-b")) != 3 {
		t.Fatalf("attempts of b %v (%d)", attempts, f.Attempts([]byte("d-b")))
	}
	var keys []string
	for _, r := range f.Records("s") {
		keys = append(keys, r.Key+"@"+r.Seq)
	}
	if got := strings.Join(keys, " "); got != "a1@1 c1@2 a2@3 c2@4 a3@5 b@6 c3@7" {
		t.Fatalf("written %s", got)
	}
	f.CheckViolations(t)
}

func TestLoseAnswerWritesThenFails(t *testing.T) {
	f := New()
	f.LoseAnswer = func(c Call) bool { return c.N == 2 }
	ctx, tr := ambiguous.Track(t.Context())
	if _, err := f.PutRecords(ctx, put("s", "a")); err != nil || tr.Unknown() != 0 {
		t.Fatalf("call 1: %v, %d unknown", err, tr.Unknown())
	}
	out, err := f.PutRecords(ctx, put("s", "b"))
	if !errors.Is(err, ErrLostAnswer) || out != nil || tr.Unknown() != 1 {
		t.Fatalf("call 2: %v %v, %d unknown", out, err, tr.Unknown())
	}
	if got := f.Records("s"); len(got) != 2 || got[1].Key != "b" {
		t.Fatalf("records %+v: the lost call's records must be written", got)
	}
}

func TestStreamsThatExist(t *testing.T) {
	f := New()
	f.Streams = map[string]bool{"s": true}
	var nf *types.ResourceNotFoundException
	if _, err := f.PutRecords(t.Context(), put("t", "a")); !errors.As(err, &nf) {
		t.Fatalf("err %v, want ResourceNotFoundException", err)
	}
	if _, err := f.PutRecords(t.Context(), put("s", "a")); err != nil {
		t.Fatal(err)
	}
	if f.Calls() != 1 || f.CallsTo("t") != 0 {
		t.Fatalf("%d calls, %d to t", f.Calls(), f.CallsTo("t"))
	}
}

func TestOnCallAndContext(t *testing.T) {
	f := New()
	ctx, cancel := context.WithCancel(t.Context())
	f.OnCall = func(_ context.Context, c Call) {
		if c.N == 2 {
			cancel()
		}
	}
	if _, err := f.PutRecords(ctx, put("s", "a")); err != nil {
		t.Fatal(err)
	}
	if _, err := f.PutRecords(ctx, put("s", "b")); !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v, want canceled", err)
	}
	if len(f.Records("s")) != 1 || f.InFlight() != 0 {
		t.Fatalf("%d records, %d in flight", len(f.Records("s")), f.InFlight())
	}
}

func TestGateAndLatencyEndWithContext(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(f *Fake)
	}{
		{"gate", func(f *Fake) { f.Gate = make(chan struct{}) }},
		{"latency", func(f *Fake) { f.Latency = time.Hour }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := New()
			tc.setup(f)
			ctx, cancel := context.WithCancel(t.Context())
			done := make(chan error, 1)
			go func() {
				_, err := f.PutRecords(ctx, put("s", "a"))
				done <- err
			}()
			poll.True(t, 10*time.Second, time.Millisecond, "call in flight", func() bool { return f.InFlight() == 1 })
			cancel()
			if err := <-done; !errors.Is(err, context.Canceled) {
				t.Fatalf("err %v", err)
			}
			if len(f.Records("s")) != 0 || f.InFlight() != 0 {
				t.Fatalf("%d records, %d in flight", len(f.Records("s")), f.InFlight())
			}
		})
	}
}

// recorder is a TB that records a failure instead of stopping the test.
type recorder struct{ failed string }

func (r *recorder) Helper() {}
func (r *recorder) Fatalf(format string, args ...any) {
	r.failed = fmt.Sprintf(format, args...)
}

func TestCheckViolationsFails(t *testing.T) {
	f := New()
	var r recorder
	f.CheckViolations(&r)
	if r.failed != "" {
		t.Fatalf("clean fake failed: %s", r.failed)
	}
	if _, err := f.PutRecords(t.Context(), put("s", "a", "a")); err != nil {
		t.Fatal(err)
	}
	f.CheckViolations(&r)
	if !strings.Contains(r.failed, "1 violations") || !strings.Contains(r.failed, "key a twice") {
		t.Fatalf("failure %q", r.failed)
	}
}

// TestConcurrentCalls: disjoint keys from many goroutines, no violation, every record kept once.
func TestConcurrentCalls(t *testing.T) {
	f := New()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 50 {
				if _, err := f.PutRecords(t.Context(), put("s", fmt.Sprintf("g%d-%d", g, i))); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	f.CheckViolations(t)
	seen := map[string]bool{}
	for _, r := range f.Records("s") {
		if seen[r.Key] {
			t.Fatalf("%s twice", r.Key)
		}
		seen[r.Key] = true
	}
	if len(seen) != 400 || f.Calls() != 400 || len(f.All()["s"]) != 400 {
		t.Fatalf("%d records, %d calls", len(seen), f.Calls())
	}
}
