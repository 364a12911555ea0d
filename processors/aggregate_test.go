package processors

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/awslabs/kinesis-aggregation/go/v2/deaggregator"

	"github.com/kinesis-events/pipeline/event"
	"github.com/kinesis-events/pipeline/internal/kinesisfake"
	"github.com/kinesis-events/pipeline/internal/ordered"
)

// TestAggregateKeys (issue 13, the hot customer): with AggregateKeys, a customer's events of one
// write to an analytics stream go out as one KPL aggregate, read back in seq order through
// kinesis-aggregation's de-aggregator; a customer with one event stays a plain record; the
// quarantine and DLQ streams stay plain even with several records of one key in a write; the
// events of an aggregate given up on are dead-lettered one by one, each its own dead letter.
func TestAggregateKeys(t *testing.T) {
	cfg := testConfig()
	cfg.AggregateKeys = true
	cfg.BreakerOpenTimeout = time.Hour // the broken stream's breaker stays open (real time)
	cfg.BreakerHold = time.Minute
	h := newHarness(t, cfg)
	h.kin.Set(func(f *kinesisfake.Fake) {
		f.CallErr = func(c kinesisfake.Call) error {
			if c.Stream == "analytics-purchase" {
				return fmt.Errorf("ResourceNotFoundException: stream gone")
			}
			return nil
		}
	})
	var evs []ev
	for seq := uint64(1); seq <= 40; seq++ {
		evs = append(evs, ev{id: fmt.Sprint("hot-", seq), cust: "hot", seq: seq})
	}
	for seq := uint64(41); seq <= 43; seq++ {
		evs = append(evs, ev{id: fmt.Sprint("hot-", seq), cust: "hot", seq: seq, typ: "purchase"})
	}
	evs = append(evs, ev{id: "cold-1", cust: "cold", seq: 1},
		ev{id: "bad-1", cust: "hot", seq: 44, key: "nope"}, ev{id: "bad-2", cust: "hot", seq: 45, key: "nope"})
	s := h.open("shard-1")
	recs := h.recs(evs...)
	if wm := h.process(s, recs); wm != recs[len(recs)-1].SequenceNumber {
		t.Fatalf("watermark %q, want the last record (everything handled)", wm)
	}

	pv := h.kin.Records("analytics-page_view")
	if len(pv) != 2 {
		t.Fatalf("%d Kinesis records in analytics-page_view, want 2 (the hot customer's aggregate, the cold one's record)", len(pv))
	}
	var hot []string
	for _, r := range pv {
		evs := deaggregated(t, r)
		agg := bytes.HasPrefix(r.Data, ordered.AggregateMagic[:])
		switch r.Key {
		case "hot":
			if !agg {
				t.Fatal("the hot customer's events went out plain")
			}
			for _, a := range evs {
				hot = append(hot, a.EventID)
			}
		case "cold":
			if agg || len(evs) != 1 || evs[0].EventID != "cold-1" {
				t.Fatalf("the cold customer's one event: aggregated %v, %+v", agg, evs)
			}
		}
	}
	var want []string
	for seq := 1; seq <= 40; seq++ {
		want = append(want, fmt.Sprint("hot-", seq))
	}
	if !slices.Equal(hot, want) {
		t.Fatalf("hot customer's events %v, want %v", hot, want)
	}
	for _, stream := range []string{"events-quarantine", "events-dlq"} {
		for _, r := range h.kin.Records(stream) {
			if bytes.HasPrefix(r.Data, ordered.AggregateMagic[:]) {
				t.Fatalf("%s has an aggregated record", stream)
			}
		}
	}
	if q := quarantine(t, h.kin, "events-quarantine"); len(q) != 2 || q[0].Reason != event.ReasonUnknownKey {
		t.Fatalf("quarantined %+v", q)
	}
	dls := deadLetters(t, h.kin, "events-dlq")
	if len(dls) != 3 {
		t.Fatalf("%d dead letters, want 3 (one per event of the given-up aggregate)", len(dls))
	}
	for i, dl := range dls {
		id := fmt.Sprint("hot-", 41+i)
		if dl.EventID != id || dl.Destination != "analytics-purchase" || dl.Attempts < 5 || !bytes.Equal(dl.Original, recs[40+i].Data) {
			t.Fatalf("dead letter %d: %+v, want event %s", i, dl, id)
		}
	}
	if got := h.counter("pipeline_put_aggregated_records_total", "stream", "analytics-page_view"); got != 40 {
		t.Fatalf("pipeline_put_aggregated_records_total{analytics-page_view} = %v, want 40", got)
	}
	for _, stream := range []string{"events-quarantine", "events-dlq"} {
		if got := h.counter("pipeline_put_aggregated_records_total", "stream", stream); got != 0 {
			t.Fatalf("pipeline_put_aggregated_records_total{%s} = %v", stream, got)
		}
	}
}

// TestAggregateKeysOff: by default every analytics record is its own Kinesis record.
func TestAggregateKeysOff(t *testing.T) {
	h := newHarness(t, testConfig())
	var evs []ev
	for seq := uint64(1); seq <= 10; seq++ {
		evs = append(evs, ev{id: fmt.Sprint("hot-", seq), cust: "hot", seq: seq})
	}
	h.process(h.open("shard-1"), h.recs(evs...))
	got := analytics(t, h.kin, "analytics-page_view") // fails on anything but a plain analytics record
	if len(got) != 10 || h.kin.CallsTo("analytics-page_view") != 10 {
		t.Fatalf("%d records in %d calls, want 10 plain records, one a call", len(got), h.kin.CallsTo("analytics-page_view"))
	}
}

// deaggregated reads the analytics records of one stored Kinesis record through
// kinesis-aggregation's de-aggregator (what a KCL consumer does).
func deaggregated(t testing.TB, r stored) []event.Analytics {
	t.Helper()
	recs, err := deaggregator.DeaggregateRecords([]types.Record{{Data: r.Data, PartitionKey: &r.Key}})
	if err != nil {
		t.Fatal(err)
	}
	out := make([]event.Analytics, 0, len(recs))
	for _, u := range recs {
		var a event.Analytics
		if err := json.Unmarshal(u.Data, &a); err != nil {
			t.Fatalf("not an analytics record: %v", err)
		}
		if a.CustomerID != r.Key || *u.PartitionKey != r.Key {
			t.Fatalf("partition key %q, customer %q", r.Key, a.CustomerID)
		}
		out = append(out, a)
	}
	return out
}
