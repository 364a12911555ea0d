package kclctl

import (
	"context"
	"fmt"
	"math/big"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go"

	"github.com/kinesis-events/pipeline/internal/kinesisfake"
)

// fakeStream is one in-memory stream with shard lineage (split, merge, uniform scaling) and
// records, for the scale and dlq tests. Its PutRecords goes through internal/kinesisfake (the
// limits, the per-key rule, scripted entry failures); a violation fails the test that made the
// stream. Safe for concurrent use.
type fakeStream struct {
	mu          sync.Mutex
	kin         *kinesisfake.Fake
	shards      []*fakeShard
	seq         int
	noUniform   bool                         // UpdateShardCount answers UnknownOperationException
	putFail     func(key string, n int) bool // fail the n-th put attempt of a key (1-based)
	putAttempts map[string]int               // written by kin's EntryErr, under kin's lock
	puts        []fakeRecord                 // every record that landed, in order
	calls       map[string]int
}

type fakeShard struct {
	id, parent, adjacent string
	start, end           *big.Int
	closed               bool
	records              []fakeRecord
}

type fakeRecord struct {
	key, seq string
	data     []byte
	at       time.Time
}

func newFakeStream(t testing.TB, n int) *fakeStream {
	f := &fakeStream{kin: kinesisfake.New(), putAttempts: map[string]int{}, calls: map[string]int{}}
	f.kin.EntryErr = func(e kinesisfake.Entry) string {
		f.putAttempts[e.Key]++
		if f.putFail != nil && f.putFail(e.Key, f.putAttempts[e.Key]) {
			return "ProvisionedThroughputExceededException"
		}
		return ""
	}
	t.Cleanup(func() { f.kin.CheckViolations(t) })
	width := new(big.Int).Div(hashSpace, big.NewInt(int64(n)))
	for i := range n {
		lo := new(big.Int).Mul(width, big.NewInt(int64(i)))
		hi := new(big.Int).Sub(new(big.Int).Add(lo, width), big.NewInt(1))
		if i == n-1 {
			hi = new(big.Int).Sub(hashSpace, big.NewInt(1))
		}
		f.add("", "", lo, hi)
	}
	return f
}

func (f *fakeStream) add(parent, adjacent string, lo, hi *big.Int) *fakeShard {
	s := &fakeShard{id: fmt.Sprintf("shardId-%012d", len(f.shards)), parent: parent, adjacent: adjacent, start: lo, end: hi}
	f.shards = append(f.shards, s)
	return s
}

func (f *fakeStream) find(id string) *fakeShard {
	for _, s := range f.shards {
		if s.id == id {
			return s
		}
	}
	return nil
}

func (f *fakeStream) open() []*fakeShard {
	var out []*fakeShard
	for _, s := range f.shards {
		if !s.closed {
			out = append(out, s)
		}
	}
	return out
}

func apiErr(code string) error { return &smithy.GenericAPIError{Code: code, Message: code} }

func (f *fakeStream) ListShards(_ context.Context, in *kinesis.ListShardsInput, _ ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls["ListShards"]++
	out := &kinesis.ListShardsOutput{}
	for _, s := range f.shards {
		sh := types.Shard{ShardId: aws.String(s.id), HashKeyRange: &types.HashKeyRange{StartingHashKey: aws.String(s.start.String()), EndingHashKey: aws.String(s.end.String())},
			SequenceNumberRange: &types.SequenceNumberRange{StartingSequenceNumber: aws.String("0")}}
		if s.parent != "" {
			sh.ParentShardId = aws.String(s.parent)
		}
		if s.adjacent != "" {
			sh.AdjacentParentShardId = aws.String(s.adjacent)
		}
		if s.closed {
			sh.SequenceNumberRange.EndingSequenceNumber = aws.String("9")
		}
		out.Shards = append(out.Shards, sh)
	}
	return out, nil
}

func (f *fakeStream) DescribeStreamSummary(context.Context, *kinesis.DescribeStreamSummaryInput, ...func(*kinesis.Options)) (*kinesis.DescribeStreamSummaryOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return &kinesis.DescribeStreamSummaryOutput{StreamDescriptionSummary: &types.StreamDescriptionSummary{
		StreamStatus: types.StreamStatusActive, OpenShardCount: aws.Int32(int32(len(f.open())))}}, nil
}

func (f *fakeStream) UpdateShardCount(_ context.Context, in *kinesis.UpdateShardCountInput, _ ...func(*kinesis.Options)) (*kinesis.UpdateShardCountOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls["UpdateShardCount"]++
	if f.noUniform {
		return nil, apiErr("UnknownOperationException")
	}
	n, cur := int(aws.ToInt32(in.TargetShardCount)), len(f.open())
	if n > 2*cur || 2*n < cur {
		return nil, apiErr("ValidationException")
	}
	// Close every open shard; create n uniform children (lineage simplified: parent = the old shard
	// holding the child's start).
	old := f.open()
	width := new(big.Int).Div(hashSpace, big.NewInt(int64(n)))
	for i := range n {
		lo := new(big.Int).Mul(width, big.NewInt(int64(i)))
		hi := new(big.Int).Sub(new(big.Int).Add(lo, width), big.NewInt(1))
		if i == n-1 {
			hi = new(big.Int).Sub(hashSpace, big.NewInt(1))
		}
		parent := ""
		for _, s := range old {
			if s.start.Cmp(lo) <= 0 && s.end.Cmp(lo) >= 0 {
				parent = s.id
			}
		}
		f.add(parent, "", lo, hi)
	}
	for _, s := range old {
		s.closed = true
	}
	return &kinesis.UpdateShardCountOutput{}, nil
}

func (f *fakeStream) SplitShard(_ context.Context, in *kinesis.SplitShardInput, _ ...func(*kinesis.Options)) (*kinesis.SplitShardOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls["SplitShard"]++
	s := f.find(aws.ToString(in.ShardToSplit))
	at, ok := new(big.Int).SetString(aws.ToString(in.NewStartingHashKey), 10)
	if s == nil || s.closed || !ok || at.Cmp(s.start) <= 0 || at.Cmp(s.end) > 0 {
		return nil, apiErr("InvalidArgumentException")
	}
	s.closed = true
	f.add(s.id, "", s.start, new(big.Int).Sub(at, big.NewInt(1)))
	f.add(s.id, "", at, s.end)
	return &kinesis.SplitShardOutput{}, nil
}

func (f *fakeStream) MergeShards(_ context.Context, in *kinesis.MergeShardsInput, _ ...func(*kinesis.Options)) (*kinesis.MergeShardsOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls["MergeShards"]++
	a, b := f.find(aws.ToString(in.ShardToMerge)), f.find(aws.ToString(in.AdjacentShardToMerge))
	if a == nil || b == nil || a.closed || b.closed || new(big.Int).Add(a.end, big.NewInt(1)).Cmp(b.start) != 0 {
		return nil, apiErr("InvalidArgumentException")
	}
	a.closed, b.closed = true, true
	f.add(a.id, b.id, a.start, b.end)
	return &kinesis.MergeShardsOutput{}, nil
}

func (f *fakeStream) GetShardIterator(_ context.Context, in *kinesis.GetShardIteratorInput, _ ...func(*kinesis.Options)) (*kinesis.GetShardIteratorOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.find(aws.ToString(in.ShardId)) == nil {
		return nil, apiErr("ResourceNotFoundException")
	}
	return &kinesis.GetShardIteratorOutput{ShardIterator: aws.String(aws.ToString(in.ShardId) + "/0")}, nil
}

// GetRecords returns at most 2 records per call (to exercise paging); an open shard read to its end
// returns an empty page at MillisBehindLatest 0, a closed one a nil iterator.
func (f *fakeStream) GetRecords(_ context.Context, in *kinesis.GetRecordsInput, _ ...func(*kinesis.Options)) (*kinesis.GetRecordsOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	id, pos, _ := cutLast(aws.ToString(in.ShardIterator), "/")
	s := f.find(id)
	i, _ := strconv.Atoi(pos)
	out := &kinesis.GetRecordsOutput{MillisBehindLatest: aws.Int64(0)}
	for ; i < len(s.records) && len(out.Records) < 2; i++ {
		r := s.records[i]
		out.Records = append(out.Records, types.Record{Data: r.data, PartitionKey: aws.String(r.key), SequenceNumber: aws.String(r.seq), ApproximateArrivalTimestamp: aws.Time(r.at)})
	}
	if i < len(s.records) {
		out.MillisBehindLatest = aws.Int64(1000)
	}
	if !s.closed || i < len(s.records) {
		out.NextShardIterator = aws.String(fmt.Sprintf("%s/%d", id, i))
	}
	return out, nil
}

func cutLast(s, sep string) (string, string, bool) {
	for i := len(s) - len(sep); i >= 0; i-- {
		if s[i:i+len(sep)] == sep {
			return s[:i], s[i+len(sep):], true
		}
	}
	return s, "", false
}

// PutRecords writes through kin and lands the entries it accepted on the first open shard (the
// tests do not care which), answering that shard and its sequence numbers; entries putFail
// selects fail with ProvisionedThroughputExceededException.
func (f *fakeStream) PutRecords(ctx context.Context, in *kinesis.PutRecordsInput, _ ...func(*kinesis.Options)) (*kinesis.PutRecordsOutput, error) {
	f.mu.Lock()
	f.calls["PutRecords"]++
	f.mu.Unlock()
	out, err := f.kin.PutRecords(ctx, in)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, e := range out.Records {
		if e.ErrorCode != nil {
			continue
		}
		f.seq++
		r := fakeRecord{key: aws.ToString(in.Records[i].PartitionKey), seq: strconv.Itoa(f.seq), data: in.Records[i].Data, at: time.Now()}
		s := f.open()[0]
		s.records = append(s.records, r)
		f.puts = append(f.puts, r)
		out.Records[i].ShardId, out.Records[i].SequenceNumber = aws.String(s.id), aws.String(r.seq)
	}
	return out, nil
}
