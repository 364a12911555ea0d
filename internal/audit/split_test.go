package audit

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
)

// pagedKinesis is one stream: each shard's records are read two a page; a shard in closed ends
// with a nil iterator, an open one with an empty page at its tip.
type pagedKinesis struct {
	shards map[string][]types.Record
	closed map[string]bool
}

func (k *pagedKinesis) ListShards(context.Context, *kinesis.ListShardsInput, ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error) {
	out := &kinesis.ListShardsOutput{}
	for id := range k.shards {
		out.Shards = append(out.Shards, types.Shard{ShardId: aws.String(id)})
	}
	return out, nil
}

func (k *pagedKinesis) GetShardIterator(_ context.Context, in *kinesis.GetShardIteratorInput, _ ...func(*kinesis.Options)) (*kinesis.GetShardIteratorOutput, error) {
	return &kinesis.GetShardIteratorOutput{ShardIterator: aws.String(aws.ToString(in.ShardId) + ":0")}, nil
}

func (k *pagedKinesis) GetRecords(_ context.Context, in *kinesis.GetRecordsInput, _ ...func(*kinesis.Options)) (*kinesis.GetRecordsOutput, error) {
	shard, at, _ := strings.Cut(aws.ToString(in.ShardIterator), ":")
	pos, _ := strconv.Atoi(at)
	recs := k.shards[shard]
	end := min(pos+2, len(recs))
	out := &kinesis.GetRecordsOutput{Records: recs[pos:end], NextShardIterator: aws.String(shard + ":" + strconv.Itoa(end))}
	if end == len(recs) && k.closed[shard] {
		out.NextShardIterator = nil
	}
	return out, nil
}

// TestSplitAtRaw: each second's worst delivery is split at the arrival of the raw record it was
// read from (by source shard and sequence number, in closed parents and open children alike, past
// the first page); a delivery whose raw record is not found stays unsplit.
func TestSplitAtRaw(t *testing.T) {
	raw := func(seq string, at float64) types.Record {
		return types.Record{SequenceNumber: aws.String(seq), ApproximateArrivalTimestamp: aws.Time(time.Unix(0, int64(at*1e9)))}
	}
	kc := &pagedKinesis{
		shards: map[string][]types.Record{
			"parent": {raw("1", 100), raw("2", 100.5), raw("3", 101)},
			"child":  {raw("1", 102), raw("4", 103), raw("5", 104.25)},
		},
		closed: map[string]bool{"parent": true},
	}
	tail := NewTail(kc, map[string]Kind{"a": Analytics}, map[string]string{"page": "a"}, "a")
	deliver := func(id, shard, seq string, forwarded, processed, arrived float64) {
		a := analytics(id, "page", "c-"+id, 1)
		a.SourceShard, a.SourceSeq = shard, seq
		a.ForwardedAt, a.ProcessedAt = time.Unix(0, int64(forwarded*1e9)), time.Unix(0, int64(processed*1e9))
		r := rec(t, a)
		r.ApproximateArrivalTimestamp = aws.Time(time.Unix(0, int64(arrived*1e9)))
		tail.observe("a", r)
	}
	deliver("e1", "parent", "3", 99, 110, 110.5)     // second 110: raw at 101
	deliver("e2", "child", "5", 104, 111, 111.25)    // second 111: raw at 104.25, the fifth record of its shard
	deliver("e3", "child", "9", 105, 112, 112.5)     // second 112: no such raw record
	deliver("e4", "parent", "1", 109.9, 110, 110.75) // second 110, but not its worst
	if err := tail.SplitAtRaw(t.Context(), "raw"); err != nil {
		t.Fatal(err)
	}
	tl := tail.Timeline()
	if len(tl) != 3 {
		t.Fatalf("timeline %+v", tl)
	}
	for i, want := range []struct{ queued, held time.Duration }{{2 * time.Second, 9 * time.Second}, {250 * time.Millisecond, 6750 * time.Millisecond}, {0, 0}} {
		if w := tl[i].Worst; w.Queued() != want.queued || w.Held() != want.held {
			t.Errorf("second %d: queued %s held %s, want %s and %s (%+v)", tl[i].At, w.Queued(), w.Held(), want.queued, want.held, w)
		}
	}
	if !tl[2].Worst.RawArrived.IsZero() {
		t.Errorf("a raw record not in the stream was found: %+v", tl[2].Worst)
	}
}
