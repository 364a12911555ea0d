package ordered

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/kinesis-events/pipeline/internal/kinesiswire"
	"github.com/kinesis-events/pipeline/internal/localstack"
	"github.com/kinesis-events/pipeline/internal/localstack/localstacktest"
)

// TestKinesalite writes through the real client to the emulator: every record lands once, each key's
// records in order on its shard, with the shard and sequence number Kinesis gave them; a record
// over the limit is refused without a call; a missing stream is a fatal outcome, given up on at
// once.
//
// It runs with the SDK's codec and with kinesiswire's (what the worker, forwarder and kclctl use).
func TestKinesalite(t *testing.T) {
	st := localstacktest.Start(t)
	cfg, err := st.AWSConfig(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	wire := kinesis.NewFromConfig(cfg, func(o *kinesis.Options) { o.BaseEndpoint = aws.String(st.KinesisEndpoint) }, kinesiswire.Install)
	for _, c := range []struct {
		name string
		kin  Putter
	}{{"sdk", st.Kinesis()}, {"kinesiswire", wire}} {
		t.Run(c.name, func(t *testing.T) { testKinesalite(t, st, c.kin, "ordered-test-"+c.name) })
	}
}

func testKinesalite(t *testing.T, st *localstack.Stack, kin Putter, stream string) {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	if err := st.CreateStream(ctx, stream, 3); err != nil {
		t.Fatal(err)
	}
	var calls, unknown counter
	m := Metrics{Calls: &calls, Unknown: &unknown}
	w, err := NewWriter[*rec](NewStream(kin, stream, nil, m).Put, WriterConfig{MaxRecords: 100})
	if err != nil {
		t.Fatal(err)
	}
	var recs []*rec
	for i := range 600 {
		key := fmt.Sprintf("cust-%02d", i%40)
		recs = append(recs, newRec(key, fmt.Sprintf("%s/%04d", key, i)))
	}
	big := newRec("cust-big", strings.Repeat("x", MaxRecordBytes))
	recs = append(recs, big)
	if err := w.Write(ctx, recs); err != nil {
		t.Fatal(err)
	}
	if big.r.State != Failed || big.r.Cause != CauseLimit {
		t.Fatalf("oversized record: %v %v", big.r.State, big.r.Cause)
	}
	where := map[string]string{} // data -> shard/seq reported
	for _, r := range recs[:600] {
		if r.r.State != Written || r.r.ShardID == "" || r.r.SequenceNumber == "" {
			t.Fatalf("%s: %v (%s)", r.r.Data, r.r.State, r.r.LastError)
		}
		where[string(r.r.Data)] = r.r.ShardID + "/" + r.r.SequenceNumber
	}
	got, err := st.ReadAll(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 600 {
		t.Fatalf("%d records in the stream, want 600 (the writer counted %v with an unknown outcome)", len(got), unknown.value())
	}
	last := map[string]string{}
	for _, g := range got {
		key, data := aws.ToString(g.Record.PartitionKey), string(g.Record.Data)
		if where[data] != g.ShardID+"/"+aws.ToString(g.Record.SequenceNumber) {
			t.Fatalf("%s is at %s/%s, the writer reported %s", data, g.ShardID, aws.ToString(g.Record.SequenceNumber), where[data])
		}
		if prev, ok := last[key]; ok && prev > data {
			t.Fatalf("key %s: %s landed after %s", key, data, prev)
		}
		last[key] = data
	}
	// 40 keys of 15 records each: at least 15 rounds, in calls of at most 100.
	if c := calls.value(); c < 15 || c > 100 {
		t.Fatalf("%v calls", c)
	}

	missing, err := NewWriter[*rec](NewStream(kin, "no-such-stream", nil, Metrics{}).Put, WriterConfig{})
	if err != nil {
		t.Fatal(err)
	}
	r := newRec("k", "data")
	if err := missing.Write(ctx, []*rec{r}); err != nil {
		t.Fatal(err)
	}
	if r.r.State != Failed || r.r.Cause != CauseFatal || r.r.Outcome != Fatal || !strings.Contains(r.r.LastError, "ResourceNotFoundException") {
		t.Fatalf("missing stream: %+v", r.r)
	}
}

// TestKinesaliteAggregated writes a hot key among cold ones with aggregation on through the real
// client: each aggregate lands as one record, the hot key in a few calls instead of one per record,
// and the stream read back through kinesis-aggregation's de-aggregator has every record once, each
// key's in order, at the shard and sequence number the writer reported for it.
func TestKinesaliteAggregated(t *testing.T) {
	st := localstacktest.Start(t)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	const stream = "ordered-agg-test"
	if err := st.CreateStream(ctx, stream, 2); err != nil {
		t.Fatal(err)
	}
	var calls, aggregated counter
	w, err := NewWriter[*rec](NewStream(st.Kinesis(), stream, nil, Metrics{Calls: &calls, Aggregated: &aggregated}).Put,
		WriterConfig{Aggregation: Aggregation{MaxRecords: 200}})
	if err != nil {
		t.Fatal(err)
	}
	var recs []*rec
	for i := range 1000 {
		key := "hot"
		if i%5 == 0 {
			key = fmt.Sprintf("cold-%03d", i)
		}
		recs = append(recs, newRec(key, fmt.Sprintf("%s/%04d", key, i)))
	}
	if err := w.Write(ctx, recs); err != nil {
		t.Fatal(err)
	}
	where := map[string]string{}
	for _, r := range recs {
		if r.r.State != Written {
			t.Fatalf("%s: %v (%s)", r.r.Data, r.r.State, r.r.LastError)
		}
		where[string(r.r.Data)] = r.r.ShardID + "/" + r.r.SequenceNumber
	}
	// 800 hot records in aggregates of at most 200: 4 calls, the cold records riding along.
	if calls.value() != 4 || aggregated.value() != 800 {
		t.Fatalf("%v calls, %v records aggregated; want 4 and 800", calls.value(), aggregated.value())
	}
	got, err := st.ReadAll(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	var flat []stored
	shardOf := map[string]string{}
	for _, g := range got {
		flat = append(flat, stored{key: aws.ToString(g.Record.PartitionKey), data: string(g.Record.Data)})
		shardOf[string(g.Record.Data)] = g.ShardID + "/" + aws.ToString(g.Record.SequenceNumber)
	}
	if len(flat) != 204 {
		t.Fatalf("%d Kinesis records, want 204 (4 aggregates, 200 plain)", len(flat))
	}
	last, n := map[string]string{}, 0
	for i, d := range deaggregate(t, flat) {
		for _, data := range d.records {
			n++
			if where[data] != shardOf[flat[i].data] {
				t.Fatalf("%s is at %s, the writer reported %s", data, shardOf[flat[i].data], where[data])
			}
			if prev, ok := last[d.key]; ok && prev > data {
				t.Fatalf("key %s: %s landed after %s", d.key, data, prev)
			}
			last[d.key] = data
		}
	}
	if n != 1000 {
		t.Fatalf("%d records de-aggregated, want 1000", n)
	}
}
