package audit

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/kinesis-events/pipeline/event"
)

func rec(t *testing.T, v any) types.Record {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return types.Record{Data: b, SequenceNumber: aws.String("1"), ApproximateArrivalTimestamp: aws.Time(time.Unix(100, 0))}
}

func analytics(id, typ, cust string, seq uint64) event.Analytics {
	return event.Analytics{EventID: id, Type: typ, CustomerID: cust, Seq: seq, ForwardedAt: time.Unix(99, 0)}
}

// TestObserve checks the verdicts the end-to-end and chaos tests rely on: loss, duplicates,
// per-customer order judged on first deliveries, routing, late events and quarantine counts.
func TestObserve(t *testing.T) {
	tail := NewTail(nil, map[string]Kind{"a-page": Analytics, "a-other": Analytics, "q": Quarantine, "dlq": DeadLetter},
		map[string]string{"page": "a-page"}, "a-other")
	obs := func(stream string, v any) { tail.observe(stream, rec(t, v)) }

	obs("a-page", analytics("e1", "page", "c1", 1))
	obs("a-page", analytics("e3", "page", "c1", 3))
	obs("a-page", analytics("e2", "page", "c1", 2)) // first delivery out of order: a violation
	obs("a-page", analytics("e1", "page", "c1", 1)) // re-delivery: a duplicate, not an order violation
	late := analytics("e4", "page", "c2", 1)
	late.Late = true
	obs("a-page", late)                             // late events are flagged, not violations
	obs("a-page", analytics("e5", "shop", "c3", 1)) // wrong stream: unknown types go to a-other
	obs("a-other", analytics("e6", "shop", "c3", 2))
	obs("q", event.Quarantine{Reason: event.ReasonNotJSON, Detail: "one"})
	obs("q", event.Quarantine{Reason: event.ReasonNotJSON, Detail: "another"})
	obs("dlq", event.DeadLetter{Reason: "breaker_hold"})

	rep := tail.Check([]Expected{{EventID: "e1"}, {EventID: "e2"}, {EventID: "e3"}, {EventID: "e4"}, {EventID: "e5"}, {EventID: "e6"}, {EventID: "e7"}})
	if rep.Duplicates != 1 || rep.OrderViol != 1 || rep.Late != 1 || len(rep.WrongStream) != 1 {
		t.Fatalf("duplicates=%d order=%d late=%d wrong=%v, want 1 each", rep.Duplicates, rep.OrderViol, rep.Late, rep.WrongStream)
	}
	if len(rep.Lost) != 1 || rep.Lost[0] != "e7" {
		t.Fatalf("lost %v, want [e7]", rep.Lost)
	}
	if rep.Quarantined[event.ReasonNotJSON] != 2 || rep.DeadLetters["breaker_hold"] != 1 {
		t.Fatalf("quarantined %v dead %v", rep.Quarantined, rep.DeadLetters)
	}
	if rep.Unique != 6 || rep.Delivered != 7 || rep.OK() {
		t.Fatalf("unique=%d delivered=%d ok=%v", rep.Unique, rep.Delivered, rep.OK())
	}
	if len(rep.DupExamples) != 0 {
		t.Fatalf("a byte-identical copy described as processed twice: %v", rep.DupExamples)
	}
}

// TestCleanRunIsOK: exactly-once, in order, in the right streams is OK.
func TestCleanRunIsOK(t *testing.T) {
	tail := NewTail(nil, map[string]Kind{"a-page": Analytics}, map[string]string{"page": "a-page"}, "a-other")
	for i := uint64(1); i <= 3; i++ {
		tail.observe("a-page", rec(t, analytics("e"+string(rune('0'+i)), "page", "c", i)))
	}
	rep := tail.Check([]Expected{{EventID: "e1"}, {EventID: "e2"}, {EventID: "e3"}})
	if !rep.OK() {
		t.Fatalf("clean run not OK: %s", rep)
	}
}

// TestResentWrites: a byte-identical copy is a resent write, allowed up to the workers' count of
// unknown write outcomes; a copy with other bytes (processed again) never is.
func TestResentWrites(t *testing.T) {
	tail := NewTail(nil, map[string]Kind{"a-page": Analytics}, map[string]string{"page": "a-page"}, "a-other")
	obs := func(v event.Analytics) { tail.observe("a-page", rec(t, v)) }
	e1, e2 := analytics("e1", "page", "c", 1), analytics("e2", "page", "c", 2)
	obs(e1)
	obs(e2)
	obs(e1) // the same write again
	want := []Expected{{EventID: "e1"}, {EventID: "e2"}}
	rep := tail.Check(want)
	if rep.Duplicates != 1 || rep.Resent != 1 {
		t.Fatalf("duplicates=%d resent=%d, want 1 and 1", rep.Duplicates, rep.Resent)
	}
	if rep.OK() || rep.OKWithResent(0) || !rep.OKWithResent(1) {
		t.Fatalf("OK=%v OKWithResent(0)=%v OKWithResent(1)=%v, want false false true", rep.OK(), rep.OKWithResent(0), rep.OKWithResent(1))
	}
	again := e2
	again.ProcessedAt = time.Unix(200, 0) // processed a second time: other bytes
	obs(again)
	rep = tail.Check(want)
	if rep.Duplicates != 2 || rep.Resent != 1 || rep.OKWithResent(10) {
		t.Fatalf("duplicates=%d resent=%d OKWithResent(10)=%v, want 2, 1, false", rep.Duplicates, rep.Resent, rep.OKWithResent(10))
	}
}

// TestTimeline: first deliveries per arrival second with their largest delays, and the followed
// customer's deliveries; re-deliveries count in neither.
func TestTimeline(t *testing.T) {
	tail := NewTail(nil, map[string]Kind{"a": Analytics}, map[string]string{"page": "a"}, "a")
	tail.Follow("hot")
	at := func(id, cust string, seq uint64, arrived, occurred int64) {
		a := analytics(id, "page", cust, seq)
		a.OccurredAt = time.Unix(occurred, 0).UTC().Format(time.RFC3339)
		a.ProcessedAt = time.Unix(occurred, 0).Add(500 * time.Millisecond) // routed 0.5 s after it occurred
		r := rec(t, a)
		r.ApproximateArrivalTimestamp = aws.Time(time.Unix(arrived, 0))
		tail.observe("a", r)
	}
	at("e1", "hot", 1, 100, 98)
	at("e2", "c", 1, 100, 93)
	at("e3", "hot", 2, 102, 101)
	at("e1", "hot", 1, 103, 98) // a duplicate
	again := analytics("e3", "page", "hot", 2)
	again.SourceShard, again.ProcessedAt = "shard-b", time.Unix(104, 0)
	r := rec(t, again)
	r.ApproximateArrivalTimestamp = aws.Time(time.Unix(104, 0))
	tail.observe("a", r) // processed twice: other bytes
	if ex := tail.Snapshot().DupExamples; len(ex) != 1 || !strings.Contains(ex[0], "again from shard-b") {
		t.Fatalf("duplicate examples %q", ex)
	}
	tl := tail.Timeline()
	// The followed customer's worst delay apart: 2 s of e1 in second 100, where e2 took 7 s.
	want := []Second{{At: 100, Delivered: 2, MaxDelay: 7 * time.Second, MaxForward: time.Second, MaxWrite: 6500 * time.Millisecond, MaxFollowed: 2 * time.Second},
		{At: 102, Delivered: 1, MaxDelay: time.Second, MaxForward: 3 * time.Second, MaxWrite: 500 * time.Millisecond, MaxFollowed: time.Second}}
	// Each second's worst forwarder -> analytics delivery, kept for SplitAtRaw: e1 in second 100
	// (e2 took as long, not longer), e3 in second 102.
	if w := tl[0].Worst; !w.Processed.Equal(time.Unix(98, 5e8)) || !w.Arrived.Equal(time.Unix(100, 0)) {
		t.Fatalf("worst of second 100: %+v", w)
	}
	if w := tl[1].Worst; !w.Forwarded.Equal(time.Unix(99, 0)) || !w.Processed.Equal(time.Unix(101, 5e8)) {
		t.Fatalf("worst of second 102: %+v", w)
	}
	tl[0].Worst, tl[1].Worst = Delivery{}, Delivery{}
	if len(tl) != 2 || tl[0] != want[0] || tl[1] != want[1] {
		t.Fatalf("timeline %+v, want %+v", tl, want)
	}
	if f := tail.Followed(); f.Delivered != 2 || !f.First.Equal(time.Unix(100, 0)) || !f.Last.Equal(time.Unix(102, 0)) {
		t.Fatalf("followed %+v", f)
	}
}

// TestQuarantineResent: a quarantine record byte for byte the same as one before is counted apart
// (a write sent twice), not as a second quarantine; two records for the same input that differ
// (quarantined twice) both count.
func TestQuarantineResent(t *testing.T) {
	tail := NewTail(nil, map[string]Kind{"events-quarantine": Quarantine}, nil, "")
	qrec := func(at string) types.Record {
		return types.Record{Data: []byte(`{"reason":"not_json","at":"` + at + `"}`)}
	}
	tail.observe("events-quarantine", qrec("2026-12-02T00:00:00Z"))
	tail.observe("events-quarantine", qrec("2026-12-02T00:00:00Z"))
	tail.observe("events-quarantine", qrec("2026-12-02T00:00:01Z"))
	rep := tail.Check(nil)
	if rep.Quarantined["not_json"] != 2 || rep.QuarantineResent != 1 {
		t.Fatalf("quarantined %v, resent %d; want 2 and 1", rep.Quarantined, rep.QuarantineResent)
	}
	if !rep.OK() || rep.QuarantineOK(0, 0) || !rep.QuarantineOK(0, 1) || !rep.QuarantineOK(1, 0) {
		t.Fatalf("OK=%v QuarantineOK(0,0)=%v (0,1)=%v (1,0)=%v, want true false true true", rep.OK(), rep.QuarantineOK(0, 0), rep.QuarantineOK(0, 1), rep.QuarantineOK(1, 0))
	}
}
