package ordered

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"pgregory.net/rapid"

	"github.com/kinesis-events/pipeline/internal/kinesisfake"
)

// splitMix is a small deterministic generator for failure patterns (rapid draws the seed).
type splitMix struct{ s uint64 }

func (r *splitMix) next() uint64 {
	r.s += 0x9e3779b97f4a7c15
	z := r.s
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

func (r *splitMix) pct(p int) bool { return int(r.next()%100) < p }

// TestWriteOrderUnderPartialFailures is the property the writer exists for: whatever entries of
// whatever calls fail (throttles, internal failures, whole calls, answers lost after the records
// landed), every record is written, each key's records land in the order they were given, no call
// carries a key twice, and the only records in the stream twice are byte-identical copies of
// records sent in attempts counted as unknown.
func TestWriteOrderUnderPartialFailures(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		nKeys := rapid.IntRange(1, 8).Draw(rt, "keys")
		nRecs := rapid.IntRange(1, 80).Draw(rt, "records")
		entryPct := rapid.IntRange(0, 90).Draw(rt, "entry_fail_pct")
		callPct := rapid.IntRange(0, 30).Draw(rt, "call_fail_pct")
		losePct := rapid.IntRange(0, 20).Draw(rt, "lose_pct")
		maxN := rapid.IntRange(1, 10).Draw(rt, "max_records_per_call")
		rnd := &splitMix{rapid.Uint64().Draw(rt, "seed")}
		kin := kinesisfake.New()
		kin.EntryErr = func(kinesisfake.Entry) string {
			if rnd.pct(entryPct) {
				return []string{"ProvisionedThroughputExceededException", "InternalFailure"}[rnd.next()%2]
			}
			return ""
		}
		kin.CallErr = func(kinesisfake.Call) error {
			if rnd.pct(callPct) {
				if rnd.next()%2 == 0 {
					return &types.ProvisionedThroughputExceededException{Message: ptr("throttled")}
				}
				return errors.New("injected call failure")
			}
			return nil
		}
		kin.LoseAnswer = func(kinesisfake.Call) bool { return rnd.pct(losePct) }
		var unknown counter
		clock := newClock()
		w, err := NewWriter[*rec](NewStream(kin, "s", nil, Metrics{Unknown: &unknown}).Put, WriterConfig{
			MaxRecords: maxN, Policy: Policy{Backoff: testBackoff()}, Now: clock.Now, Sleep: clock.Sleep,
		})
		if err != nil {
			rt.Fatal(err)
		}
		recs := make([]*rec, nRecs)
		for i := range recs {
			key := fmt.Sprint("k", rnd.next()%uint64(nKeys))
			recs[i] = newRec(key, fmt.Sprintf("%s/%03d", key, i))
		}
		if err := w.Write(context.Background(), recs); err != nil {
			rt.Fatal(err)
		}
		for _, r := range recs {
			if r.r.State != Written {
				rt.Fatalf("%s: %v (%v)", r.r.Data, r.r.State, r.r.Cause)
			}
		}
		kin.CheckViolations(rt)
		got := written(kin)
		last := map[string]string{}
		seen := map[string]bool{}
		copies := 0
		for _, s := range got {
			if seen[s.data] {
				copies++
				continue
			}
			seen[s.data] = true
			if prev, ok := last[s.key]; ok && prev > s.data {
				rt.Fatalf("key %s: %s landed after %s", s.key, s.data, prev)
			}
			last[s.key] = s.data
		}
		if len(seen) != nRecs {
			rt.Fatalf("%d distinct records written, want %d", len(seen), nRecs)
		}
		if float64(copies) > unknown.value() {
			rt.Fatalf("%d copies in the stream, but only %v records counted with an unknown outcome", copies, unknown.value())
		}
	})
}

func testBackoff() retryPolicy { return retryPolicy{Initial: 100 * time.Millisecond, Max: time.Second} }

// TestWriteLimitsAndCalls: calls carry at most 500 records and 5 MiB; a record over a limit is
// given up on by itself (never sent), and its key's later records with it; other keys go on.
func TestWriteLimitsAndCalls(t *testing.T) {
	kin := kinesisfake.New()
	w := testWriter(t, kin, newClock(), WriterConfig{})
	var recs []*rec
	for i := range 1200 {
		recs = append(recs, newRec(fmt.Sprint("k", i), strings.Repeat("x", 100)))
	}
	for i := range 12 {
		recs = append(recs, newRec(fmt.Sprint("big", i), strings.Repeat("y", 900<<10)))
	}
	bad := []*rec{newRec("bad", strings.Repeat("z", MaxRecordBytes)), newRec("bad", "after the bad one")}
	recs = append(recs, bad...)
	if err := w.Write(t.Context(), recs); err != nil {
		t.Fatal(err)
	}
	kin.CheckViolations(t)
	if bad[0].r.State != Failed || bad[0].r.Cause != CauseLimit || !strings.Contains(bad[0].r.LastError, "over the Kinesis limit") {
		t.Fatalf("oversized record: %+v", bad[0].r)
	}
	if bad[1].r.State != Failed || bad[1].r.Cause != CauseEarlier {
		t.Fatalf("record behind the oversized one: %v %v", bad[1].r.State, bad[1].r.Cause)
	}
	if got := len(written(kin)); got != 1212 {
		t.Fatalf("%d written, want 1212", got)
	}
}

// TestBackoffBound: a destination that always fails is retried with delays that grow from the
// initial one to the cap (within the jitter) and never past it; a call that writes something
// starts them over; MaxAttempts bounds the attempts and names the cause.
func TestBackoffBound(t *testing.T) {
	clock := newClock()
	kin := kinesisfake.New()
	kin.CallErr = func(c kinesisfake.Call) error {
		if c.N <= 12 {
			return errors.New("503 service unavailable")
		}
		return nil
	}
	kin.EntryErr = func(e kinesisfake.Entry) string {
		if e.N > 12 && e.Key == "b" && e.N < 16 {
			return "InternalFailure"
		}
		return ""
	}
	w := testWriter(t, kin, clock, WriterConfig{Policy: Policy{Backoff: retryPolicy{Initial: 100 * time.Millisecond, Max: time.Second, Jitter: 0.5}}})
	if err := w.Write(t.Context(), []*rec{newRec("a", "1"), newRec("b", "2")}); err != nil {
		t.Fatal(err)
	}
	sl := clock.Sleeps()
	if len(sl) != 15 {
		t.Fatalf("%d sleeps, want 15 (12 failed calls, then 3 failures of b after a call that wrote a)", len(sl))
	}
	for i, d := range sl {
		if d > 1500*time.Millisecond || d < 50*time.Millisecond {
			t.Fatalf("sleep %d: %v outside [50ms, 1.5s]", i, d)
		}
	}
	if sl[0] > 150*time.Millisecond || sl[11] < 500*time.Millisecond {
		t.Fatalf("delays do not grow from 100ms to the 1s cap: %v", sl)
	}
	if sl[12] > 150*time.Millisecond {
		t.Fatalf("after a call that wrote something the delay is %v, want it started over (about 100ms)", sl[12])
	}

	// Bounded attempts.
	kin = kinesisfake.New()
	kin.EntryErr = func(kinesisfake.Entry) string { return "InternalFailure" }
	w = testWriter(t, kin, newClock(), WriterConfig{Policy: Policy{MaxAttempts: 4}})
	r := newRec("a", "1")
	if err := w.Write(t.Context(), []*rec{r, newRec("a", "2")}); err != nil {
		t.Fatal(err)
	}
	if r.r.State != Failed || r.r.Cause != CauseAttempts || r.r.Attempts != 4 || kin.Calls() != 4 {
		t.Fatalf("%+v after %d calls", r.r, kin.Calls())
	}
}

// TestWriteFatal: a fatal outcome is given up on at once, unless the policy retries it.
func TestWriteFatal(t *testing.T) {
	for _, retryFatal := range []bool{false, true} {
		t.Run(fmt.Sprint("retry fatal ", retryFatal), func(t *testing.T) {
			kin := kinesisfake.New()
			kin.CallErr = func(c kinesisfake.Call) error {
				if c.N <= 3 {
					return &types.ResourceNotFoundException{Message: ptr("no stream")}
				}
				return nil
			}
			w := testWriter(t, kin, newClock(), WriterConfig{Policy: Policy{RetryFatal: retryFatal}})
			a1, a2, b := newRec("a", "1"), newRec("a", "2"), newRec("b", "1")
			if err := w.Write(t.Context(), []*rec{a1, a2, b}); err != nil {
				t.Fatal(err)
			}
			if retryFatal {
				if a1.r.State != Written || a2.r.State != Written || b.r.State != Written || a1.r.Attempts != 3 {
					t.Fatalf("retried: %+v %+v %+v", a1.r, a2.r, b.r)
				}
				return
			}
			if a1.r.Cause != CauseFatal || a2.r.Cause != CauseEarlier || b.r.Cause != CauseFatal || kin.Calls() != 1 {
				t.Fatalf("causes %v %v %v after %d calls", a1.r.Cause, a2.r.Cause, b.r.Cause, kin.Calls())
			}
			if !strings.Contains(a1.r.LastError, "no stream") {
				t.Fatalf("last error %q", a1.r.LastError)
			}
		})
	}
}

// TestWriteThrottled: throttled records are retried with backoff until written, without bound.
func TestWriteThrottled(t *testing.T) {
	clock := newClock()
	kin := kinesisfake.New()
	kin.EntryErr = func(e kinesisfake.Entry) string {
		if e.N <= 30 {
			return "ProvisionedThroughputExceededException"
		}
		return ""
	}
	var throttled, calls int
	w := testWriter(t, kin, clock, WriterConfig{After: func(res Result, _ time.Time) bool {
		calls++
		if res.OnlyThrottled() {
			throttled++
		}
		return false
	}})
	r := newRec("a", "1")
	if err := w.Write(t.Context(), []*rec{r}); err != nil {
		t.Fatal(err)
	}
	if r.r.State != Written || r.r.Attempts != 30 || throttled != 30 || calls != 31 || len(clock.Sleeps()) != 30 {
		t.Fatalf("%+v: %d of %d calls throttled, %d sleeps", r.r, throttled, calls, len(clock.Sleeps()))
	}
}

// TestWriteAfterStops: After stopping the write gives up on every record not yet written; the
// written ones stay written.
func TestWriteAfterStops(t *testing.T) {
	kin := kinesisfake.New()
	kin.EntryErr = func(e kinesisfake.Entry) string {
		if e.Key == "b" {
			return "InternalFailure"
		}
		return ""
	}
	n := 0
	w := testWriter(t, kin, newClock(), WriterConfig{After: func(Result, time.Time) bool { n++; return n == 3 }})
	recs := []*rec{newRec("a", "1"), newRec("a", "2"), newRec("b", "1"), newRec("b", "2"), newRec("a", "3"), newRec("a", "4")}
	if err := w.Write(t.Context(), recs); err != nil {
		t.Fatal(err)
	}
	want := []State{Written, Written, Failed, Failed, Written, Failed}
	for i, r := range recs {
		if r.r.State != want[i] {
			t.Fatalf("record %d (%s): %v, want %v", i, r.r.Data, r.r.State, want[i])
		}
	}
	if recs[2].r.Cause != CauseStopped || recs[3].r.Cause != CauseEarlier || recs[5].r.Cause != CauseStopped || recs[2].r.LastError != "InternalFailure: scripted" {
		t.Fatalf("causes %v %v %v, last error %q", recs[2].r.Cause, recs[3].r.Cause, recs[5].r.Cause, recs[2].r.LastError)
	}
}

// TestWriteCancel: when ctx ends, during a wait or during a call, Write returns ctx's error at once
// and makes no further call.
func TestWriteCancel(t *testing.T) {
	t.Run("while waiting", func(t *testing.T) {
		clock := newClock()
		kin := kinesisfake.New()
		kin.CallErr = func(kinesisfake.Call) error { return errors.New("down") }
		ctx, cancel := context.WithCancel(t.Context())
		clock.OnSleep = func(time.Duration) {
			if kin.Calls() == 3 {
				cancel()
			}
		}
		w := testWriter(t, kin, clock, WriterConfig{})
		err := w.Write(ctx, []*rec{newRec("a", "1")})
		if !errors.Is(err, context.Canceled) || kin.Calls() != 3 {
			t.Fatalf("err %v after %d calls", err, kin.Calls())
		}
	})
	t.Run("after a call that landed", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		kin := putFunc(func(_ context.Context, n int) (int, error) {
			cancel() // the records land; then ctx ends before the answer is read
			return n, nil
		})
		w := testWriter(t, kin, newClock(), WriterConfig{})
		a1, a2 := newRec("a", "1"), newRec("a", "2")
		err := w.Write(ctx, []*rec{a1, a2})
		if !errors.Is(err, context.Canceled) || a1.r.State != Written || a1.r.SequenceNumber == "" || a2.r.State != Pending {
			t.Fatalf("err %v, states %v %v", err, a1.r.State, a2.r.State)
		}
	})
	t.Run("during a call", func(t *testing.T) {
		kin := kinesisfake.New()
		ctx, cancel := context.WithCancel(t.Context())
		kin.OnCall = func(_ context.Context, c kinesisfake.Call) {
			if c.N == 2 {
				cancel()
			}
		}
		w := testWriter(t, kin, newClock(), WriterConfig{MaxRecords: 1})
		recs := []*rec{newRec("a", "1"), newRec("b", "1"), newRec("c", "1")}
		err := w.Write(ctx, recs)
		if !errors.Is(err, context.Canceled) || kin.Calls() != 2 || recs[0].r.State != Written || recs[2].r.State != Pending {
			t.Fatalf("err %v after %d calls, states %v %v", err, kin.Calls(), recs[0].r.State, recs[2].r.State)
		}
	})
}

// TestWriteDeadline: with MinAttemptTime, a retry that could not start in time before ctx's
// deadline is not waited for: the record is given up on at once.
func TestWriteDeadline(t *testing.T) {
	kin := kinesisfake.New()
	kin.EntryErr = func(kinesisfake.Entry) string { return "InternalFailure" }
	clock := newClock()
	w := testWriter(t, kin, clock, WriterConfig{MinAttemptTime: 100 * time.Millisecond,
		Policy: Policy{Backoff: retryPolicy{Initial: 10 * time.Second, Max: 10 * time.Second, Jitter: -1}}})
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second) // less than one backoff
	defer cancel()
	r := newRec("a", "1")
	if err := w.Write(ctx, []*rec{r}); err != nil {
		t.Fatal(err)
	}
	if r.r.State != Failed || r.r.Cause != CauseDeadline || r.r.LastError != "InternalFailure: scripted" || kin.Calls() != 1 || len(clock.Sleeps()) != 0 {
		t.Fatalf("%+v after %d calls and %d sleeps", r.r, kin.Calls(), len(clock.Sleeps()))
	}
}

// TestWriteRateLimit: with RecordsPerSecond a writer sends at most that many records per second
// (waiting on the injected clock), in calls no larger than one second's worth.
func TestWriteRateLimit(t *testing.T) {
	clock := newClock()
	kin := kinesisfake.New()
	w := testWriter(t, kin, clock, WriterConfig{RecordsPerSecond: 100})
	var recs []*rec
	for i := range 500 {
		recs = append(recs, newRec(fmt.Sprint("k", i), "x"))
	}
	start := clock.Now()
	if err := w.Write(t.Context(), recs); err != nil {
		t.Fatal(err)
	}
	if kin.Calls() != 5 {
		t.Fatalf("%d calls, want 5 of 100", kin.Calls())
	}
	if el := clock.Now().Sub(start); el < 4*time.Second || el > 5*time.Second {
		t.Fatalf("500 records at 100/s took %v", el)
	}
}

func TestWriterConfigValidate(t *testing.T) {
	err := WriterConfig{MaxRecords: 501, MaxBytes: -1, RecordsPerSecond: 0.5, BytesPerSecond: -2, MinAttemptTime: -1,
		Policy: Policy{MaxAttempts: -1, Backoff: retryPolicy{Initial: 2 * time.Second, Max: time.Second}}}.Validate()
	for _, want := range []string{"MaxRecords", "MaxBytes", "RecordsPerSecond", "BytesPerSecond", "MinAttemptTime", "MaxAttempts", "Initial"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate: %v, want it to name %s", err, want)
		}
	}
	if err := (WriterConfig{}).Validate(); err != nil {
		t.Fatalf("zero config: %v", err)
	}
}
