package audit

import (
	"bytes"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/kinesis-events/pipeline/event"
	"github.com/kinesis-events/pipeline/internal/kinesisfake"
	"github.com/kinesis-events/pipeline/internal/ordered"
)

type item struct{ r ordered.Record }

func (i *item) Rec() *ordered.Record { return &i.r }

// written writes the analytics records evs to internal/kinesisfake through the project's writer with
// aggregation on (a customer's records in one write form one aggregate), and returns what a
// stream would hold.
func written(t *testing.T, evs ...event.Analytics) []types.Record {
	t.Helper()
	kin := kinesisfake.New()
	w, err := ordered.NewWriter[*item](ordered.NewStream(kin, "a-page", nil, ordered.Metrics{}).Put, ordered.WriterConfig{Aggregation: ordered.DefaultAggregation})
	if err != nil {
		t.Fatal(err)
	}
	items := make([]*item, len(evs))
	for i, e := range evs {
		b, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		items[i] = &item{ordered.Record{Key: e.CustomerID, Data: b, ID: e.EventID}}
	}
	if err := w.Write(t.Context(), items); err != nil {
		t.Fatal(err)
	}
	kin.CheckViolations(t)
	var recs []types.Record
	for _, r := range kin.Records("a-page") {
		recs = append(recs, types.Record{Data: r.Data, PartitionKey: aws.String(r.Key), SequenceNumber: aws.String(r.Seq), ApproximateArrivalTimestamp: aws.Time(time.Unix(100, 0))})
	}
	return recs
}

// TestDeaggregates: aggregated analytics records are judged one by one, in the order inside the
// aggregate: a clean aggregated run is OK and counted as aggregated; an aggregate whose records are
// out of seq order is an order violation; an aggregate written twice byte for byte is resent
// writes; an aggregate that does not de-aggregate (a damaged MD5 trailer) is reported, never
// skipped or read as an analytics record.
func TestDeaggregates(t *testing.T) {
	streams := map[string]Kind{"a-page": Analytics, "q": Quarantine}
	routes := map[string]string{"page": "a-page"}
	var hot []event.Analytics
	var want []Expected
	for seq := uint64(1); seq <= 20; seq++ {
		hot = append(hot, analytics(fmt.Sprint("h", seq), "page", "hot", seq))
		want = append(want, Expected{EventID: fmt.Sprint("h", seq)})
	}
	cold := analytics("c1", "page", "cold", 1)
	recs := written(t, append(hot, cold)...)
	if len(recs) != 2 || !bytes.HasPrefix(recs[0].Data, ordered.AggregateMagic[:]) {
		t.Fatalf("%d records written; want the hot customer's aggregate and the cold one's record", len(recs))
	}
	want = append(want, Expected{EventID: "c1"})

	t.Run("clean", func(t *testing.T) {
		tail := NewTail(nil, streams, routes, "")
		for _, r := range recs {
			tail.observe("a-page", r)
		}
		rep := tail.Check(want)
		if !rep.OK() || rep.Delivered != 21 || rep.Aggregated != 20 || rep.PerStream["a-page"] != 21 {
			t.Fatalf("%s; aggregated %d, per stream %v", rep, rep.Aggregated, rep.PerStream)
		}
	})
	t.Run("out of order inside", func(t *testing.T) {
		tail := NewTail(nil, streams, routes, "")
		swapped := append([]event.Analytics{}, hot...)
		swapped[4], swapped[5] = swapped[5], swapped[4]
		for _, r := range written(t, swapped...) {
			tail.observe("a-page", r)
		}
		if rep := tail.Check(want[:20]); rep.OrderViol != 1 || rep.OK() {
			t.Fatalf("%s: want 1 order violation", rep)
		}
	})
	t.Run("resent", func(t *testing.T) {
		tail := NewTail(nil, streams, routes, "")
		for _, r := range append(recs, recs[0]) {
			tail.observe("a-page", r)
		}
		rep := tail.Check(want)
		if rep.Duplicates != 20 || rep.Resent != 20 || rep.OK() || !rep.OKWithResent(20) {
			t.Fatalf("%s", rep)
		}
	})
	t.Run("damaged", func(t *testing.T) {
		tail := NewTail(nil, streams, routes, "")
		bad := recs[0]
		bad.Data = bytes.Clone(bad.Data)
		bad.Data[len(bad.Data)-1] ^= 0xff
		tail.observe("a-page", bad)
		tail.observe("a-page", recs[1])
		rep := tail.Check(want)
		if len(rep.WrongStream) != 1 || len(rep.Lost) != 20 || rep.Delivered != 1 || rep.OK() {
			t.Fatalf("%s; wrong stream %v", rep, rep.WrongStream)
		}
	})
}

// TestLastSeq: how far a customer has been delivered in order, over every analytics stream.
func TestLastSeq(t *testing.T) {
	tail := NewTail(nil, map[string]Kind{"a-page": Analytics, "a-buy": Analytics}, map[string]string{"page": "a-page", "buy": "a-buy"}, "")
	if n := tail.LastSeq("c"); n != 0 {
		t.Fatalf("nothing delivered: %d", n)
	}
	tail.observe("a-page", rec(t, analytics("e1", "page", "c", 1)))
	tail.observe("a-buy", rec(t, analytics("e2", "buy", "c", 2)))
	tail.observe("a-page", rec(t, analytics("e3", "page", "c", 3)))
	tail.observe("a-page", rec(t, analytics("x1", "page", "other", 7)))
	if n := tail.LastSeq("c"); n != 3 {
		t.Fatalf("LastSeq %d, want 3", n)
	}
}

// TestArrivedAt: the followed customer's first deliveries are kept by seq with their arrival time;
// a repeat keeps the first, other customers are not kept.
func TestArrivedAt(t *testing.T) {
	tail := NewTail(nil, map[string]Kind{"a-page": Analytics}, map[string]string{"page": "a-page"}, "")
	tail.Follow("c")
	at := func(r types.Record, sec int64) types.Record {
		r.ApproximateArrivalTimestamp = aws.Time(time.Unix(sec, 0))
		return r
	}
	tail.observe("a-page", at(rec(t, analytics("e1", "page", "c", 1)), 100))
	tail.observe("a-page", at(rec(t, analytics("e1", "page", "c", 1)), 105))
	tail.observe("a-page", at(rec(t, analytics("x1", "page", "other", 2)), 101))
	if got, ok := tail.ArrivedAt(1); !ok || !got.Equal(time.Unix(100, 0)) {
		t.Fatalf("ArrivedAt(1) = %v, %v; want the first delivery's 100 s", got, ok)
	}
	if _, ok := tail.ArrivedAt(2); ok {
		t.Fatal("another customer's seq 2 kept")
	}
}
