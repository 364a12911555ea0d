package processors

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"pgregory.net/rapid"

	"github.com/kinesis-events/pipeline/event"
	"github.com/kinesis-events/pipeline/internal/ambiguous"
	"github.com/kinesis-events/pipeline/internal/kinesisfake"
	"github.com/kinesis-events/pipeline/internal/names"
)

// throttleCode is the PutRecords entry error code of a throttled entry.
const throttleCode = "ProvisionedThroughputExceededException"

// TestWriteOrderUnderPartialFailures is the property behind the batching scheme: whatever entries
// of whatever calls fail (throttles, internal errors, whole-call errors), every record reaches its
// stream exactly once, each partition key's records arrive in order, and no call carries a key twice.
func TestWriteOrderUnderPartialFailures(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		cfg := testConfig()
		cfg.BreakerOpenTimeout = time.Nanosecond
		cfg.BreakerHold = 1000 * time.Hour // never give up here
		h := newHarness(t, cfg)
		nKeys := rapid.IntRange(1, 8).Draw(rt, "keys")
		nRecs := rapid.IntRange(1, 60).Draw(rt, "records")
		failPct := rapid.IntRange(0, 90).Draw(rt, "fail_pct")
		callFailPct := rapid.IntRange(0, 30).Draw(rt, "call_fail_pct")
		seed := rapid.Uint64().Draw(rt, "seed")
		rnd := newSplitMix(seed)
		h.kin.Set(func(f *kinesisfake.Fake) {
			f.EntryErr = func(e kinesisfake.Entry) string {
				if int(rnd.next()%100) < failPct {
					return []string{throttleCode, "InternalFailure"}[rnd.next()%2]
				}
				return ""
			}
			f.CallErr = func(c kinesisfake.Call) error {
				if int(rnd.next()%100) < callFailPct {
					return errors.New("injected call failure")
				}
				return nil
			}
		})
		recs := make([]*outRec, nRecs)
		for i := range recs {
			key := fmt.Sprint("k", rnd.next()%uint64(nKeys))
			recs[i] = &outRec{kind: outEvent, key: key, data: []byte(fmt.Sprintf("%s/%03d", key, i))}
		}
		d := h.p.dests[names.AnalyticsStream("page_view")]
		dead, err := h.p.writeStream(context.Background(), "s", d, h.p.newLimiters(), recs, true)
		if err != nil || len(dead) != 0 {
			rt.Fatalf("writeStream: %v, %d dead", err, len(dead))
		}
		got := h.kin.Records(names.AnalyticsStream("page_view"))
		if len(got) != nRecs {
			rt.Fatalf("%d records written, want %d (exactly once each)", len(got), nRecs)
		}
		seen := map[string]bool{}
		last := map[string]string{}
		for _, r := range got {
			s := string(r.Data)
			if seen[s] {
				rt.Fatalf("%s written twice", s)
			}
			seen[s] = true
			if prev, ok := last[r.Key]; ok && prev > s {
				rt.Fatalf("key %s: %s landed after %s", r.Key, s, prev)
			}
			last[r.Key] = s
		}
		for _, r := range recs {
			if !r.written {
				rt.Fatalf("%s not flagged written", r.data)
			}
		}
		h.kin.CheckViolations(rt) // no partition key twice in a call, nor in two calls in flight
	})
}

// splitMix is a tiny deterministic generator for failure patterns (rapid draws the seed).
type splitMix struct{ s uint64 }

func newSplitMix(seed uint64) *splitMix { return &splitMix{seed} }

func (r *splitMix) next() uint64 {
	r.s += 0x9e3779b97f4a7c15
	z := r.s
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// TestThrottleRetriesOnlyFailed: throttled entries are retried after a backoff; entries that
// succeeded are not sent again; throttles and retries are counted.
func TestThrottleRetriesOnlyFailed(t *testing.T) {
	h := newHarness(t, testConfig())
	sent := map[string]int{}
	h.kin.Set(func(f *kinesisfake.Fake) {
		f.EntryErr = func(e kinesisfake.Entry) string {
			sent[e.Key]++
			if e.StreamN == 1 && (e.Key == "c2" || e.Key == "c4") {
				return throttleCode
			}
			return ""
		}
	})
	var evs []ev
	for i := range 5 {
		evs = append(evs, ev{id: fmt.Sprint("e", i), cust: fmt.Sprint("c", i), seq: 1})
	}
	h.process(h.open("s"), h.recs(evs...))
	want := map[string]int{"c0": 1, "c1": 1, "c2": 2, "c3": 1, "c4": 2}
	if !reflect.DeepEqual(sent, want) {
		t.Fatalf("entries sent per key %v, want %v", sent, want)
	}
	if h.kin.CallsTo(names.AnalyticsStream("page_view")) != 2 || h.clock.Slept() == 0 {
		t.Fatalf("%d calls, slept %s: want a backoff then one retry call", h.kin.CallsTo(names.AnalyticsStream("page_view")), h.clock.Slept())
	}
	if h.counter("pipeline_put_throttles_total", "stream", names.AnalyticsStream("page_view")) != 2 ||
		h.counter("pipeline_put_retries_total", "stream", names.AnalyticsStream("page_view")) != 2 {
		t.Fatal("throttles or retries not counted")
	}
	if h.counter("pipeline_breaker_state", "stream", names.AnalyticsStream("page_view")) != 0 {
		t.Fatal("partial throttling opened the breaker")
	}
}

// TestCallLimits: calls carry at most 500 records and 5 MiB.
func TestCallLimits(t *testing.T) {
	h := newHarness(t, testConfig())
	var sizes [][2]int
	h.kin.Set(func(f *kinesisfake.Fake) {
		f.EntryErr = func(e kinesisfake.Entry) string {
			if e.I == 0 {
				sizes = append(sizes, [2]int{0, 0})
			}
			sizes[len(sizes)-1][0]++
			sizes[len(sizes)-1][1] += len(e.Data) + len(e.Key)
			return ""
		}
	})
	var recs []*outRec
	for i := range 1200 {
		recs = append(recs, &outRec{key: fmt.Sprint("k", i), data: make([]byte, 100)})
	}
	big := strings.Repeat("x", 900<<10)
	for i := range 12 {
		recs = append(recs, &outRec{key: fmt.Sprint("big", i), data: []byte(big)})
	}
	if _, err := h.p.writeStream(context.Background(), "s", h.p.dests[names.AnalyticsStream("page_view")], h.p.newLimiters(), recs, true); err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, s := range sizes {
		if s[0] > MaxPutRecords || s[1] > MaxPutBytes {
			t.Fatalf("call of %d records, %d bytes", s[0], s[1])
		}
		total += s[0]
	}
	if total != len(recs) {
		t.Fatalf("%d sent, want %d", total, len(recs))
	}
}

// TestRateLimit: with OutputRatePerShard the writer waits (on the injected clock) so a shard writes
// at most that many records per second to one stream.
func TestRateLimit(t *testing.T) {
	cfg := testConfig()
	cfg.OutputRatePerShard = 100
	h := newHarness(t, cfg)
	var recs []*outRec
	for i := range 500 {
		recs = append(recs, &outRec{key: fmt.Sprint("k", i), data: []byte("x")})
	}
	start := h.clock.Now()
	if _, err := h.p.writeStream(context.Background(), "s", h.p.dests[names.AnalyticsStream("page_view")], h.p.newLimiters(), recs, true); err != nil {
		t.Fatal(err)
	}
	if calls := h.kin.CallsTo(names.AnalyticsStream("page_view")); calls != 5 {
		t.Fatalf("%d calls, want 5 of 100", calls)
	}
	// 100 may go at once (the burst), the other 400 take 4 s.
	if el := h.clock.Now().Sub(start); el < 4*time.Second || el > 5*time.Second {
		t.Fatalf("500 records at 100/s took %s", el)
	}
}

// TestBreakerOpensPausesAndCloses: a destination failing for a while opens its breaker; Process
// pauses (retrying probes) instead of giving up, and once the destination is back everything is
// written once, in order, and the breaker closes. Nothing goes to the DLQ.
func TestBreakerOpensPausesAndCloses(t *testing.T) {
	cfg := testConfig()
	cfg.BreakerOpenTimeout = time.Nanosecond // each retry after opening is a half-open probe
	cfg.BreakerFailures = 3
	h := newHarness(t, cfg)
	var states []float64
	h.kin.Set(func(f *kinesisfake.Fake) {
		f.CallErr = func(c kinesisfake.Call) error {
			if c.Stream == names.AnalyticsStream("page_view") && c.StreamN <= 8 {
				return errors.New("stream unavailable")
			}
			return nil
		}
		f.OnCall = func(_ context.Context, c kinesisfake.Call) {
			if c.Stream == names.AnalyticsStream("page_view") {
				states = append(states, h.counter("pipeline_breaker_state", "stream", c.Stream))
			}
		}
	})
	recs := h.recs(ev{id: "a1", cust: "a", seq: 1}, ev{id: "a2", cust: "a", seq: 2}, ev{id: "b1", cust: "b", seq: 1})
	wm := h.process(h.open("s"), recs)
	if wm != recs[2].SequenceNumber {
		t.Fatalf("watermark %q", wm)
	}
	if got := perCustomer(analytics(t, h.kin, names.AnalyticsStream("page_view"))); !slices.Equal(got, []string{"a:1", "a:2", "b:1"}) {
		t.Fatalf("delivered %v", got)
	}
	if len(h.kin.Records(names.DLQStream)) != 0 {
		t.Fatal("dead-lettered while the hold had not passed")
	}
	// Closed for the first 3 calls, then every call is a half-open probe, until one succeeds.
	if !slices.Equal(states[:3], []float64{0, 0, 0}) || !slices.Contains(states, 1) {
		t.Fatalf("breaker states seen by the destination: %v", states)
	}
	if h.counter("pipeline_breaker_state", "stream", names.AnalyticsStream("page_view")) != 0 {
		t.Fatal("breaker not closed after recovery")
	}
}

// TestBreakerHoldDeadLetters: a destination that stays broken past BreakerHold gets its records
// dead-lettered with reason, attempts, failure times, source and the original bytes; the watermark
// passes them; nothing is marked. While the breaker is open no call reaches the destination.
func TestBreakerHoldDeadLetters(t *testing.T) {
	cfg := testConfig()
	cfg.BreakerOpenTimeout = time.Hour // stays open for the whole test (real time)
	cfg.BreakerHold = time.Minute
	h := newHarness(t, cfg)
	h.kin.Set(func(f *kinesisfake.Fake) {
		f.CallErr = func(c kinesisfake.Call) error {
			if c.Stream == names.AnalyticsStream("purchase") {
				return errors.New("ResourceNotFoundException: stream gone")
			}
			return nil
		}
	})
	s := h.open("shard-7")
	recs := h.recs(ev{id: "p1", cust: "a", seq: 1, typ: "purchase"}, ev{id: "v1", cust: "b", seq: 1})
	start := h.clock.Now()
	wm := h.process(s, recs)
	if wm != recs[1].SequenceNumber {
		t.Fatalf("watermark %q: dead-lettered record not handled", wm)
	}
	if el := h.clock.Now().Sub(start); el < time.Minute {
		t.Fatalf("gave up after %s, before the hold", el)
	}
	if calls := h.kin.CallsTo(names.AnalyticsStream("purchase")); calls != 5 {
		t.Fatalf("%d calls reached the broken stream, want 5 (then the open breaker refuses)", calls)
	}
	dls := deadLetters(t, h.kin, names.DLQStream)
	if len(dls) != 1 {
		t.Fatalf("%d dead letters", len(dls))
	}
	dl := dls[0]
	if dl.Reason != "destination_unavailable: ResourceNotFoundException: stream gone" || dl.Destination != names.AnalyticsStream("purchase") ||
		dl.SourceShard != "shard-7" || dl.SourceSeq != recs[0].SequenceNumber || dl.EventID != "p1" || dl.CustomerID != "a" ||
		string(dl.Original) != string(recs[0].Data) || dl.Attempts < 5 || !dl.FirstFailure.Equal(start) || !dl.LastFailure.After(dl.FirstFailure) {
		t.Fatalf("dead letter %+v", dl)
	}
	// Both customers' state moved past seq 1, but the dead-lettered one stays pending: a DLQ
	// replay of it is delivered, not dropped as a duplicate.
	st := h.durable("shard-7")
	a, b := st.custs[custKeyOf("a")], st.custs[custKeyOf("b")]
	if a == nil || b == nil || a.delivered(1) || !b.delivered(1) {
		t.Fatalf("state a %+v b %+v: want only the delivered event delivered", a, b)
	}
	if h.counter("pipeline_dead_lettered_total", "reason", "destination_unavailable") != 1 ||
		h.counter("pipeline_breaker_state", "stream", names.AnalyticsStream("purchase")) != 2 {
		t.Fatal("dead-letter or breaker metrics wrong")
	}
	// The destination is still broken: the next batch does not wait the hold again.
	before := h.clock.Now()
	h.process(s, h.recs(ev{id: "p2", cust: "a", seq: 2, typ: "purchase"}))
	if el := h.clock.Now().Sub(before); el >= time.Minute {
		t.Fatalf("second batch waited %s", el)
	}
	if n := len(h.kin.Records(names.DLQStream)); n != 2 {
		t.Fatalf("%d dead letters", n)
	}
}

// TestThrottledNeverDeadLetters (issue 13): a destination that only throttles, for far longer than
// BreakerHold and for more calls than BreakerFailures, is retried with backoff and counted, but its
// breaker never opens and nothing is dead-lettered; once it takes writes again, everything is
// delivered once, in order.
func TestThrottledNeverDeadLetters(t *testing.T) {
	const stream = names.AnalyticsPrefix + "page_view"
	for _, whole := range []bool{true, false} {
		name := "every entry throttled"
		if whole {
			name = "whole calls throttled"
		}
		t.Run(name, func(t *testing.T) {
			cfg := testConfig()
			cfg.BreakerFailures = 2
			cfg.BreakerOpenTimeout = time.Nanosecond
			cfg.BreakerHold = 10 * time.Second
			h := newHarness(t, cfg)
			const throttledCalls = 40 // at RetryMax 1s, well past the 10s hold
			var states []float64
			h.kin.Set(func(f *kinesisfake.Fake) {
				f.OnCall = func(_ context.Context, c kinesisfake.Call) {
					if c.Stream == stream {
						states = append(states, h.counter("pipeline_breaker_state", "stream", c.Stream))
					}
				}
				if whole {
					f.CallErr = func(c kinesisfake.Call) error {
						if c.Stream == stream && c.StreamN <= throttledCalls {
							return &types.ProvisionedThroughputExceededException{Message: aws.String("Rate exceeded for shard")}
						}
						return nil
					}
				} else {
					f.EntryErr = func(e kinesisfake.Entry) string {
						if e.Stream == stream && e.StreamN <= throttledCalls {
							return throttleCode
						}
						return ""
					}
				}
			})
			recs := h.recs(ev{id: "a1", cust: "a", seq: 1}, ev{id: "a2", cust: "a", seq: 2}, ev{id: "b1", cust: "b", seq: 1})
			start := h.clock.Now()
			if wm := h.process(h.open("s"), recs); wm != recs[2].SequenceNumber {
				t.Fatalf("watermark %q", wm)
			}
			if el := h.clock.Now().Sub(start); el < cfg.BreakerHold {
				t.Fatalf("throttled for %v only: the test must outlast the hold", el)
			}
			if n := len(h.kin.Records(names.DLQStream)); n != 0 {
				t.Fatalf("%d records dead-lettered while the destination was merely throttled", n)
			}
			if got := perCustomer(analytics(t, h.kin, stream)); !slices.Equal(got, []string{"a:1", "a:2", "b:1"}) {
				t.Fatalf("delivered %v", got)
			}
			if slices.ContainsFunc(states, func(s float64) bool { return s != 0 }) {
				t.Fatalf("breaker opened while the destination was merely throttled: states %v", states)
			}
			// Two entries (a1, b1) per throttled call.
			if got := h.counter("pipeline_put_throttles_total", "stream", stream); got != 2*throttledCalls {
				t.Fatalf("pipeline_put_throttles_total = %v, want %d", got, 2*throttledCalls)
			}
			if got := h.counter("pipeline_put_retries_total", "stream", stream); got != 2*throttledCalls {
				t.Fatalf("pipeline_put_retries_total = %v, want %d", got, 2*throttledCalls)
			}
			if h.counter("pipeline_dead_lettered_total") != 0 {
				t.Fatal("dead letters counted")
			}
		})
	}
}

// TestDLQNeverGivesUp: when the DLQ itself fails, the writer keeps retrying (no hold) until it works.
func TestDLQNeverGivesUp(t *testing.T) {
	cfg := testConfig()
	cfg.BreakerOpenTimeout = time.Nanosecond
	cfg.BreakerHold = time.Second
	h := newHarness(t, cfg)
	h.kin.Set(func(f *kinesisfake.Fake) {
		f.CallErr = func(c kinesisfake.Call) error {
			switch {
			case c.Stream == names.AnalyticsStream("page_view"):
				return errors.New("down")
			case c.Stream == names.DLQStream && c.StreamN <= 40:
				return errors.New("dlq down too")
			}
			return nil
		}
	})
	recs := h.recs(ev{id: "e1", cust: "a", seq: 1})
	if wm := h.process(h.open("s"), recs); wm != recs[0].SequenceNumber {
		t.Fatalf("watermark %q", wm)
	}
	if h.kin.CallsTo(names.DLQStream) != 41 || len(h.kin.Records(names.DLQStream)) != 1 {
		t.Fatalf("dlq calls %d, records %d", h.kin.CallsTo(names.DLQStream), len(h.kin.Records(names.DLQStream)))
	}
}

// TestQuarantineUnavailableDeadLetters: a quarantine stream broken past the hold sends the rejected
// record to the DLQ with the quarantine reason.
func TestQuarantineUnavailableDeadLetters(t *testing.T) {
	cfg := testConfig()
	cfg.BreakerHold = time.Second
	h := newHarness(t, cfg)
	h.kin.Set(func(f *kinesisfake.Fake) {
		f.CallErr = func(c kinesisfake.Call) error {
			if c.Stream == names.QuarantineStream {
				return errors.New("down")
			}
			return nil
		}
	})
	h.process(h.open("s"), []Record{{SequenceNumber: "1", Data: []byte("junk")}})
	dls := deadLetters(t, h.kin, names.DLQStream)
	if len(dls) != 1 || !strings.Contains(dls[0].Reason, string(event.ReasonNotJSON)) || string(dls[0].Original) != "junk" {
		t.Fatalf("dead letters %+v", dls)
	}
	// Not quarantined, so not marked: a replay must try to quarantine it again.
	if found, _, _ := h.mem.Get(context.Background(), []string{QuarantineKey("s", "1", 0)}); len(found) != 0 {
		t.Fatalf("a dead-lettered quarantine record was marked quarantined: %+v", found)
	}
}

// TestLeaseLostStopsWrites: when the lease context is cancelled during a write, Process returns
// promptly with an error wrapping the context's, no further PutRecords call is made, nothing is
// marked, and the Shard refuses further work.
func TestLeaseLostStopsWrites(t *testing.T) {
	cfg := testConfig()
	cfg.BreakerOpenTimeout = time.Nanosecond
	h := newHarness(t, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var callsAfterCancel atomic.Int64
	purchaseCalled := make(chan struct{})
	var purchaseOnce sync.Once
	h.kin.Set(func(f *kinesisfake.Fake) {
		f.OnCall = func(_ context.Context, c kinesisfake.Call) {
			if ctx.Err() != nil {
				callsAfterCancel.Add(1)
			}
			if c.Stream == names.AnalyticsStream("purchase") {
				purchaseOnce.Do(func() { close(purchaseCalled) })
			}
			if c.Stream == names.AnalyticsStream("page_view") && c.StreamN == 3 {
				// The purchase write runs beside page_view's. Its call is let through first, so
				// that a call counted above started after the lease was lost, not while it was
				// being lost (a call past its lease gate when another goroutine cancels cannot be
				// taken back; under a loaded -race run it came just after the cancel, 12 in 300).
				select {
				case <-purchaseCalled:
				case <-time.After(5 * time.Second):
				}
				cancel() // the lease is lost while the destination is failing
			}
		}
		f.CallErr = func(c kinesisfake.Call) error {
			if c.Stream == names.AnalyticsStream("page_view") {
				return errors.New("unavailable")
			}
			return nil
		}
	})
	s := h.open("s")
	recs := h.recs(ev{id: "e1", cust: "a", seq: 1}, ev{id: "e2", cust: "b", seq: 1, typ: "purchase"}, ev{id: "e3", cust: "c", seq: 3})
	wm, err := s.Process(ctx, recs)
	if !errors.Is(err, context.Canceled) || wm != "" {
		t.Fatalf("Process after lease loss: %q, %v", wm, err)
	}
	if n := callsAfterCancel.Load(); n != 0 {
		t.Fatalf("%d PutRecords calls after the lease was lost", n)
	}
	if n := len(h.durable("s").custs); n != 0 {
		t.Fatalf("%d customers' state written after lease loss", n)
	}
	if _, err := s.Process(context.Background(), h.recs(ev{id: "e4", cust: "d", seq: 1})); !errors.Is(err, ErrShardClosed) {
		t.Fatalf("Process on a closed shard: %v", err)
	}
	if s.Held() != 0 || h.counter("pipeline_reorder_held") != 0 {
		t.Fatal("buffers of the closed shard still counted")
	}
	// Cancelled while the dedupe store is down: returns too.
	h2 := newHarness(t, testConfig())
	s2 := h2.open("s")
	h2.store.setDown(func(string, int) error { return errors.New("down") })
	ctx2, cancel2 := context.WithCancel(context.Background())
	h2.clock.OnSleep = func(time.Duration) {
		if h2.store.count("put") >= 3 {
			cancel2()
		}
	}
	if _, err := s2.Process(ctx2, h2.recs(ev{id: "e1", cust: "a", seq: 1})); !errors.Is(err, context.Canceled) {
		t.Fatalf("Process with the store down and the lease lost: %v", err)
	}
	if n := len(h2.kin.Records(names.AnalyticsStream("page_view"))); n != 1 {
		t.Fatalf("%d written before the state log blocked", n)
	}
}

// TestAnalyticsEncoding: the hand-written encoder's output decodes (encoding/json) to exactly the
// event.Analytics the fields describe, for arbitrary strings, seqs, gaps and times.
func TestAnalyticsEncoding(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		str := rapid.StringN(0, 20, -1)
		d := &event.Detail{
			EventID: str.Draw(rt, "id"), CustomerID: str.Draw(rt, "cust"), Seq: rapid.Uint64().Draw(rt, "seq"),
			OccurredAt: str.Draw(rt, "occurred"),
		}
		props := rapid.SampledFrom([]string{"", `{}`, `{"a":[1,2,{"b":null}],"c":"\u00e9\n"}`, `{ "x" : 1 }`}).Draw(rt, "props")
		if props != "" {
			d.Properties = json.RawMessage(props)
		}
		r := &event.Raw{Type: str.Draw(rt, "type"), Source: str.Draw(rt, "source")}
		if rapid.Bool().Draw(rt, "forwarded") {
			r.ForwardedAt = time.Unix(rapid.Int64Range(0, 4e9).Draw(rt, "fwd"), rapid.Int64Range(0, 1e9-1).Draw(rt, "ns")).UTC()
		}
		e := &rec{raw: r, d: d, seqNum: str.Draw(rt, "seqnum"), gap: rapid.Uint64().Draw(rt, "gap"), late: rapid.Bool().Draw(rt, "late")}
		shard := str.Draw(rt, "shard")
		at := time.Unix(rapid.Int64Range(0, 4e9).Draw(rt, "at"), 0).In(time.FixedZone("x", 3600))
		b := appendAnalytics(nil, e, shard, at)
		var got event.Analytics
		if err := json.Unmarshal(b, &got); err != nil {
			rt.Fatalf("not JSON: %v: %s", err, b)
		}
		want := event.Analytics{EventID: d.EventID, Type: r.Type, Source: r.Source, CustomerID: d.CustomerID, Seq: d.Seq,
			OccurredAt: d.OccurredAt, Gap: e.gap, Late: e.late, SourceShard: shard, SourceSeq: e.seqNum, ForwardedAt: r.ForwardedAt}
		if !reflect.DeepEqual(got.ProcessedAt.UTC(), at.UTC()) {
			rt.Fatalf("processed_at %v, want %v", got.ProcessedAt, at)
		}
		// Strings that are not valid UTF-8 are replaced, as encoding/json does.
		norm := func(s string) string {
			var b strings.Builder
			for _, r := range s { // ranging yields U+FFFD for each invalid byte
				b.WriteRune(r)
			}
			return b.String()
		}
		want.EventID, want.Type, want.Source, want.CustomerID = norm(want.EventID), norm(want.Type), norm(want.Source), norm(want.CustomerID)
		want.OccurredAt, want.SourceShard, want.SourceSeq = norm(want.OccurredAt), norm(want.SourceShard), norm(want.SourceSeq)
		gotProps := got.Properties
		got.Properties, got.ProcessedAt = nil, time.Time{}
		if !reflect.DeepEqual(got, want) {
			rt.Fatalf("decoded\n%+v\nwant\n%+v\nfrom %s", got, want, b)
		}
		wantProps := props
		if wantProps == "" {
			wantProps = "{}"
		}
		if string(gotProps) != wantProps {
			rt.Fatalf("properties %s, want %s", gotProps, wantProps)
		}
	})
}

// TestUnknownOutcomeCounted: records of a call in which attempts ended with an unknown outcome (the
// client retried them itself, or the call failed after it may have landed and the sink sends it
// again) are counted once per such attempt: each can have left one extra copy.
func TestUnknownOutcomeCounted(t *testing.T) {
	const stream = names.AnalyticsPrefix + "page_view"
	for _, tc := range []struct {
		name      string
		failFirst bool
		unknown   map[int]int // call -> attempts with an unknown outcome in it
		wantCalls int
		want      float64
	}{
		{"client retried it itself", false, map[int]int{1: 1}, 1, 5},
		{"client retried it twice", false, map[int]int{1: 2}, 1, 10},
		{"call failed, sink sends it again", true, map[int]int{1: 1}, 2, 5},
		{"the resend's answer is lost too", true, map[int]int{1: 1, 2: 1}, 2, 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, testConfig())
			h.kin.Set(func(f *kinesisfake.Fake) {
				f.OnCall = func(ctx context.Context, c kinesisfake.Call) {
					if c.Stream == stream {
						for range tc.unknown[c.StreamN] {
							ambiguous.Note(ctx)
						}
					}
				}
				if tc.failFirst {
					f.CallErr = func(c kinesisfake.Call) error {
						if c.Stream == stream && c.StreamN == 1 {
							return errors.New("read tcp: use of closed network connection")
						}
						return nil
					}
				}
			})
			var evs []ev
			for i := range 5 {
				evs = append(evs, ev{id: fmt.Sprint("e", i), cust: fmt.Sprint("c", i), seq: 1})
			}
			h.process(h.open("s"), h.recs(evs...))
			if got := h.kin.CallsTo(stream); got != tc.wantCalls {
				t.Fatalf("%d calls, want %d", got, tc.wantCalls)
			}
			if got := len(h.kin.Records(stream)); got != 5 {
				t.Fatalf("%d records written, want 5", got)
			}
			if got := h.counter("pipeline_put_unknown_outcome_total", "stream", stream); got != tc.want {
				t.Fatalf("pipeline_put_unknown_outcome_total = %v, want %v", got, tc.want)
			}
		})
	}
	// A clean failure (the attempt was refused before anything could land) is not counted.
	h := newHarness(t, testConfig())
	h.kin.Set(func(f *kinesisfake.Fake) {
		f.CallErr = func(c kinesisfake.Call) error {
			if c.StreamN == 1 {
				return errors.New("dial tcp: connection refused")
			}
			return nil
		}
	})
	h.process(h.open("s"), h.recs(ev{id: "e", cust: "c", seq: 1}))
	if got := h.counter("pipeline_put_unknown_outcome_total"); got != 0 {
		t.Fatalf("pipeline_put_unknown_outcome_total = %v after a clean failure, want 0", got)
	}
}

// fakeGate is a LeaseGate the test steers: lost after `valid` calls; it counts the calls.
type fakeGate struct {
	mu    sync.Mutex
	calls int
	valid int
	err   error
}

func (g *fakeGate) WaitValid(ctx context.Context, shard string) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.calls++
	if g.calls > g.valid {
		return g.err
	}
	return ctx.Err()
}

// TestLeaseGateBeforeEveryWrite: every PutRecords, retries included, is made only after the
// lease's gate said the lease is valid; once the gate reports the lease gone, the write ends with
// the gate's error and no further call is made.
func TestLeaseGateBeforeEveryWrite(t *testing.T) {
	cfg := testConfig()
	cfg.BreakerOpenTimeout = time.Nanosecond
	lost := errors.New("lease lost: fenced")
	gate := &fakeGate{valid: 3, err: lost}
	h := newHarness(t, cfg)
	p, err := New(cfg, Deps{Kinesis: h.kin, Dedupe: h.store, Keys: h.kr, Now: h.clock.Now, Sleep: h.clock.Sleep, Leases: gate})
	if err != nil {
		t.Fatal(err)
	}
	h.kin.Set(func(f *kinesisfake.Fake) {
		f.CallErr = func(c kinesisfake.Call) error {
			if c.Stream == "analytics-page_view" {
				return errors.New("unavailable")
			}
			return nil
		}
	})
	s := openShard(t, p, "s")
	_, err = s.Process(context.Background(), h.recs(ev{id: "e1", cust: "a", seq: 1}))
	if !errors.Is(err, lost) {
		t.Fatalf("Process: %v, want the gate's error", err)
	}
	if calls := h.kin.CallsTo("analytics-page_view"); calls != 3 || gate.calls != 4 {
		t.Fatalf("%d PutRecords calls and %d gate checks, want 3 calls, each after a check, and the check that found the lease gone", calls, gate.calls)
	}
	if n := len(h.durable("s").custs); n != 0 {
		t.Fatalf("%d customers' state written after the lease was lost", n)
	}
}
