package processors

import (
	"bytes"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/kinesis-events/pipeline/event"
	"github.com/kinesis-events/pipeline/internal/names"
)

// TestAggregateRecordsQuarantinedApart: the records of one raw KPL aggregate share its sequence
// number, so their quarantine marks are told apart by their place inside it. A new owner replaying
// the aggregate skips the record quarantined before and still quarantines another one of the same
// aggregate (with one mark per sequence number it would be taken for quarantined already, and lost).
func TestAggregateRecordsQuarantinedApart(t *testing.T) {
	h := newHarness(t, testConfig())
	seq := h.gen.next()
	first := Record{SequenceNumber: seq, SubSequence: 0, Data: []byte("junk")}
	h.process(h.open("s"), []Record{first})

	p2, err := New(testConfig(), Deps{Kinesis: h.kin, Dedupe: h.store, Keys: h.kr, Now: h.clock.Now, Sleep: h.clock.Sleep})
	if err != nil {
		t.Fatal(err)
	}
	second := Record{SequenceNumber: seq, SubSequence: 1, Data: []byte("other junk")}
	if wm := h.process(openShard(t, p2, "s"), []Record{first, second}); wm != seq {
		t.Fatalf("watermark %q, want %q", wm, seq)
	}
	qs := quarantine(t, h.kin, names.QuarantineStream)
	if len(qs) != 2 {
		t.Fatalf("%d quarantine records, want the first owner's and the second record's: %+v", len(qs), qs)
	}
	if q := qs[1]; q.SourceSeq != seq || q.SourceSubSeq != 1 || !bytes.Equal(q.Original, second.Data) {
		t.Fatalf("second record's quarantine %+v", q)
	}
	if n := testutil.ToFloat64(p2.m.quarReplays); n != 1 {
		t.Fatalf("pipeline_quarantine_replays_total = %v, want 1", n)
	}
}

// TestBadAggregateQuarantined: a raw record the worker found to be a KPL aggregate that does not
// decode is quarantined whole, with its reason and its bytes as written, and passes the watermark.
func TestBadAggregateQuarantined(t *testing.T) {
	h := newHarness(t, testConfig())
	data := []byte("\xf3\x89\x9a\xc2 broken protobuf")
	bad := Record{SequenceNumber: h.gen.next(), Data: data, BadAggregate: "protobuf: cannot parse"}
	after := h.recs(ev{id: "g1", cust: "c1", seq: 1})
	if wm := h.process(h.open("s"), append([]Record{bad}, after...)); wm != after[0].SequenceNumber {
		t.Fatalf("watermark %q, want %q", wm, after[0].SequenceNumber)
	}
	qs := quarantine(t, h.kin, names.QuarantineStream)
	if len(qs) != 1 || qs[0].Reason != event.ReasonBadAggregate || !bytes.Equal(qs[0].Original, data) ||
		!bytes.Contains([]byte(qs[0].Detail), []byte("protobuf: cannot parse")) {
		t.Fatalf("quarantine records %+v, want one bad_aggregate with the original", qs)
	}
}
