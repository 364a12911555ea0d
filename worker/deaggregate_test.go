package worker

import (
	"bytes"
	"crypto/md5"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	deagg "github.com/awslabs/kinesis-aggregation/go/v2/deaggregator"
	aggpb "github.com/awslabs/kinesis-aggregation/go/v2/records"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/protoadapt"

	"github.com/kinesis-events/pipeline/internal/ordered"
)

// kpl encodes an aggregate in the KPL format: magic, protobuf, MD5 of the protobuf.
func kpl(t *testing.T, m *aggpb.AggregatedRecord) []byte {
	t.Helper()
	body, err := proto.Marshal(protoadapt.MessageV2Of(m))
	if err != nil {
		t.Fatal(err)
	}
	return framed(body)
}

func framed(body []byte) []byte {
	sum := md5.Sum(body)
	out := append([]byte{}, ordered.AggregateMagic[:]...)
	out = append(out, body...)
	return append(out, sum[:]...)
}

func aggOf(keys []string, parts ...[]byte) *aggpb.AggregatedRecord {
	m := &aggpb.AggregatedRecord{PartitionKeyTable: keys}
	for _, p := range parts {
		m.Records = append(m.Records, &aggpb.Record{PartitionKeyIndex: proto.Uint64(0), Data: p})
	}
	return m
}

// TestDeaggregate: aggregates become their records, in order, with the aggregate's sequence number
// and numbered inside it; plain records pass untouched; an aggregate that does not decode is kept
// whole and marked, never dropped; and nothing handed on makes the KCL's own de-aggregator fail (it
// drops the whole page when one record does not decode).
func TestDeaggregate(t *testing.T) {
	at := time.Unix(1700000000, 0)
	rec := func(seq string, data []byte) types.Record {
		return types.Record{SequenceNumber: aws.String(seq), Data: data, PartitionKey: aws.String("c1"), ApproximateArrivalTimestamp: &at}
	}
	badIndex := aggOf([]string{"c1"}, []byte(`{"a":1}`))
	badIndex.Records[0].PartitionKeyIndex = proto.Uint64(3)
	nested := aggOf([]string{"c1"}, []byte(`{"a":1}`))
	nested.Records = append(nested.Records, &aggpb.Record{PartitionKeyIndex: proto.Uint64(0), Data: kpl(t, aggOf([]string{"c1"}, []byte("x")))})
	wrongSum := kpl(t, aggOf([]string{"c1"}, []byte(`{"a":1}`)))
	wrongSum[len(wrongSum)-1] ^= 1

	in := []types.Record{
		rec("1", []byte(`{"plain":1}`)),
		rec("2", kpl(t, aggOf([]string{"c1"}, []byte(`{"e":1}`), []byte(`{"e":2}`), []byte(`{"e":3}`)))),
		rec("3", framed([]byte{0xff, 0xff, 0xff})),                                   // not a protobuf
		rec("4", kpl(t, badIndex)),                                                   // key index out of the table
		rec("5", kpl(t, &aggpb.AggregatedRecord{PartitionKeyTable: []string{"c1"}})), // no records inside
		rec("6", kpl(t, nested)),                                                     // an aggregate inside
		rec("7", wrongSum),                                                           // MD5 does not match: a plain record
		rec("8", kpl(t, aggOf([]string{"c2"}, []byte(`{"e":9}`)))),                   // one record inside
	}
	out := deaggregate(in)
	if kcl, err := deagg.DeaggregateRecords(out); err != nil || len(kcl) != len(out) {
		t.Fatalf("the KCL's de-aggregator on what the worker hands on: %d records, %v; want the same %d", len(kcl), err, len(out))
	}
	recs := toRecords(out, "")
	type want struct {
		seq  string
		sub  int
		data string
		bad  string // substring of BadAggregate
	}
	wants := []want{
		{"1", 0, `{"plain":1}`, ""},
		{"2", 0, `{"e":1}`, ""}, {"2", 1, `{"e":2}`, ""}, {"2", 2, `{"e":3}`, ""},
		{"3", 0, string(in[2].Data), "protobuf"},
		{"4", 0, string(in[3].Data), "partition key index"},
		{"5", 0, string(in[4].Data), "no records"},
		{"6", 0, string(in[5].Data), "itself an aggregate"},
		{"7", 0, string(wrongSum), ""},
		{"8", 0, `{"e":9}`, ""},
	}
	if len(recs) != len(wants) {
		t.Fatalf("%d records, want %d: %+v", len(recs), len(wants), recs)
	}
	for i, w := range wants {
		r := recs[i]
		if r.SequenceNumber != w.seq || r.SubSequence != w.sub || string(r.Data) != w.data ||
			(w.bad == "") != (r.BadAggregate == "") || !strings.Contains(r.BadAggregate, w.bad) || !r.ArrivedAt.Equal(at) {
			t.Errorf("record %d: %+v, want %+v", i, r, w)
		}
	}
	if recs[9].PartitionKey != "c2" {
		t.Errorf("record inside aggregate 8 has key %q, want its own, c2", recs[9].PartitionKey)
	}

	plain := []types.Record{rec("1", []byte("a")), rec("2", []byte("b"))}
	if got := deaggregate(plain); &got[0] != &plain[0] {
		t.Error("a page without aggregates was copied")
	}
}

// TestUnmarkBadOnlyMarked: a record's data is read as marked only when it starts with the whole tag.
func TestUnmarkBadOnlyMarked(t *testing.T) {
	for _, d := range [][]byte{nil, []byte("{}"), badAggregateTag[:5], badAggregateTag} {
		if orig, _, ok := unmarkBad(d); ok || !bytes.Equal(orig, d) {
			t.Errorf("unmarkBad(%q) = %q, %v", d, orig, ok)
		}
	}
	orig, why, ok := unmarkBad(markBad([]byte("data\x00x"), errString("a\x00b")))
	if !ok || string(orig) != "data\x00x" || why != "ab" {
		t.Errorf("round trip: %q %q %v", orig, why, ok)
	}
}

type errString string

func (e errString) Error() string { return string(e) }
