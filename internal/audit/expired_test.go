package audit

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/kinesis-events/pipeline/event"
)

// expiringKinesis is one stream of one shard whose iterators expire after one read.
type expiringKinesis struct {
	records []types.Record
	reads   int
}

func (k *expiringKinesis) ListShards(context.Context, *kinesis.ListShardsInput, ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error) {
	return &kinesis.ListShardsOutput{Shards: []types.Shard{{ShardId: aws.String("shard-0")}}}, nil
}

func (k *expiringKinesis) GetShardIterator(_ context.Context, in *kinesis.GetShardIteratorInput, _ ...func(*kinesis.Options)) (*kinesis.GetShardIteratorOutput, error) {
	pos := 0
	if in.ShardIteratorType == types.ShardIteratorTypeAfterSequenceNumber {
		pos, _ = strconv.Atoi(aws.ToString(in.StartingSequenceNumber))
	}
	return &kinesis.GetShardIteratorOutput{ShardIterator: aws.String("fresh:" + strconv.Itoa(pos))}, nil
}

// GetRecords answers a fresh iterator with two records and an iterator that has expired by the
// next call.
func (k *expiringKinesis) GetRecords(_ context.Context, in *kinesis.GetRecordsInput, _ ...func(*kinesis.Options)) (*kinesis.GetRecordsOutput, error) {
	k.reads++
	it := aws.ToString(in.ShardIterator)
	if strings.HasPrefix(it, "stale:") {
		return nil, &types.ExpiredIteratorException{Message: aws.String("Iterator expired")}
	}
	pos, _ := strconv.Atoi(strings.TrimPrefix(it, "fresh:"))
	end := min(pos+2, len(k.records))
	return &kinesis.GetRecordsOutput{Records: k.records[pos:end], NextShardIterator: aws.String("stale:" + strconv.Itoa(end)), MillisBehindLatest: aws.Int64(1)}, nil
}

// TestTailRenewsExpiredIterators: a shard not read for five minutes goes on after its last record,
// neither failing for good nor reading a record twice.
func TestTailRenewsExpiredIterators(t *testing.T) {
	k := &expiringKinesis{}
	for i := 1; i <= 5; i++ {
		b, _ := json.Marshal(event.Analytics{EventID: "e" + strconv.Itoa(i), Type: "page", CustomerID: "c", Seq: uint64(i), ForwardedAt: time.Unix(1, 0)})
		k.records = append(k.records, types.Record{Data: b, SequenceNumber: aws.String(strconv.Itoa(i)), ApproximateArrivalTimestamp: aws.Time(time.Unix(2, 0))})
	}
	tail := NewTail(k, map[string]Kind{"a": Analytics}, map[string]string{"page": "a"}, "a")
	for range 4 {
		if err := tail.Poll(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	rep := tail.Check([]Expected{{EventID: "e1"}, {EventID: "e2"}, {EventID: "e3"}, {EventID: "e4"}, {EventID: "e5"}})
	if !rep.OK() || rep.Delivered != 5 {
		t.Fatalf("after expired iterators: %s", rep)
	}
}
