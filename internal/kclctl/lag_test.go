package kclctl

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/kinesis-events/pipeline/internal/names"
)

// fakeKinesis serves GetShardIterator and GetRecords from scripted pages per shard: the iterator of
// a shard is "<shard>/<page>", and page i answers pages[shard][i].
type fakeKinesis struct {
	mu      sync.Mutex
	pages   map[string][]*kinesis.GetRecordsOutput
	iterErr error
	getErr  error
	reqs    []*kinesis.GetShardIteratorInput
	gets    int
}

func (f *fakeKinesis) GetShardIterator(_ context.Context, in *kinesis.GetShardIteratorInput, _ ...func(*kinesis.Options)) (*kinesis.GetShardIteratorOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reqs = append(f.reqs, in)
	if f.iterErr != nil {
		return nil, f.iterErr
	}
	return &kinesis.GetShardIteratorOutput{ShardIterator: aws.String(aws.ToString(in.ShardId) + "/0")}, nil
}

func (f *fakeKinesis) GetRecords(_ context.Context, in *kinesis.GetRecordsInput, _ ...func(*kinesis.Options)) (*kinesis.GetRecordsOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.gets++
	if f.getErr != nil {
		return nil, f.getErr
	}
	if aws.ToInt32(in.Limit) != 1 {
		return nil, errors.New("lag reads must use Limit 1")
	}
	shard, page, _ := strings.Cut(aws.ToString(in.ShardIterator), "/")
	i := int(page[0] - '0')
	out := f.pages[shard][i]
	cp := *out
	if cp.NextShardIterator != nil {
		cp.NextShardIterator = aws.String(shard + "/" + string(rune('0'+i+1)))
	}
	return &cp, nil
}

func rec(arrived time.Time) types.Record {
	return types.Record{SequenceNumber: aws.String("1"), ApproximateArrivalTimestamp: aws.Time(arrived), Data: []byte("x"), PartitionKey: aws.String("k")}
}

func TestShardLag(t *testing.T) {
	next := aws.String("more")
	cases := []struct {
		name      string
		shard     Shard
		pages     []*kinesis.GetRecordsOutput
		getErr    error
		want      Lag
		wantErr   bool
		wantIter  types.ShardIteratorType
		wantStart string
	}{
		{name: "caught up", shard: Shard{Checkpoint: "123", State: StateOpen},
			pages:    []*kinesis.GetRecordsOutput{{MillisBehindLatest: aws.Int64(0), NextShardIterator: next}},
			want:     Lag{Status: LagCaughtUp, MillisBehindLatest: aws.Int64(0)},
			wantIter: types.ShardIteratorTypeAfterSequenceNumber, wantStart: "123"},
		{name: "behind", shard: Shard{Checkpoint: "123", State: StateOpen},
			pages:    []*kinesis.GetRecordsOutput{{Records: []types.Record{rec(at.Add(-90 * time.Second))}, MillisBehindLatest: aws.Int64(90000), NextShardIterator: next}},
			want:     Lag{Status: LagBehind, AgeMS: 90000, OldestUnprocessed: at.Add(-90 * time.Second), MillisBehindLatest: aws.Int64(90000)},
			wantIter: types.ShardIteratorTypeAfterSequenceNumber, wantStart: "123"},
		{name: "gap before the record", shard: Shard{Checkpoint: "123", State: StateOpen},
			pages: []*kinesis.GetRecordsOutput{
				{MillisBehindLatest: aws.Int64(5000), NextShardIterator: next},
				{MillisBehindLatest: aws.Int64(5000), NextShardIterator: next},
				{Records: []types.Record{rec(at.Add(-5 * time.Second))}, MillisBehindLatest: aws.Int64(4000), NextShardIterator: next},
			},
			want:     Lag{Status: LagBehind, AgeMS: 5000, OldestUnprocessed: at.Add(-5 * time.Second), MillisBehindLatest: aws.Int64(4000)},
			wantIter: types.ShardIteratorTypeAfterSequenceNumber, wantStart: "123"},
		{name: "gap never closes", shard: Shard{Checkpoint: "123", State: StateOpen},
			pages: []*kinesis.GetRecordsOutput{
				{MillisBehindLatest: aws.Int64(5000), NextShardIterator: next}, {MillisBehindLatest: aws.Int64(5000), NextShardIterator: next},
				{MillisBehindLatest: aws.Int64(5000), NextShardIterator: next}, {MillisBehindLatest: aws.Int64(5000), NextShardIterator: next},
				{MillisBehindLatest: aws.Int64(5000), NextShardIterator: next},
			},
			wantErr: true, wantIter: types.ShardIteratorTypeAfterSequenceNumber, wantStart: "123"},
		{name: "no checkpoint reads from trim horizon", shard: Shard{State: StateOpen},
			pages:    []*kinesis.GetRecordsOutput{{Records: []types.Record{rec(at.Add(-time.Hour))}, NextShardIterator: next}},
			want:     Lag{Status: LagBehind, AgeMS: time.Hour.Milliseconds(), OldestUnprocessed: at.Add(-time.Hour)},
			wantIter: types.ShardIteratorTypeTrimHorizon},
		{name: "trim horizon checkpoint", shard: Shard{Checkpoint: CheckpointTrimHorizon, State: StateOpen},
			pages:    []*kinesis.GetRecordsOutput{{MillisBehindLatest: aws.Int64(0), NextShardIterator: next}},
			want:     Lag{Status: LagCaughtUp, MillisBehindLatest: aws.Int64(0)},
			wantIter: types.ShardIteratorTypeTrimHorizon},
		{name: "closed shard read to its end", shard: Shard{Checkpoint: "999", State: StateClosed},
			pages:    []*kinesis.GetRecordsOutput{{MillisBehindLatest: aws.Int64(3000)}},
			want:     Lag{Status: LagCaughtUp, MillisBehindLatest: aws.Int64(3000)},
			wantIter: types.ShardIteratorTypeAfterSequenceNumber, wantStart: "999"},
		{name: "record from the future counts as zero", shard: Shard{Checkpoint: "1", State: StateOpen},
			pages:    []*kinesis.GetRecordsOutput{{Records: []types.Record{rec(at.Add(time.Second))}, NextShardIterator: next}},
			want:     Lag{Status: LagBehind, AgeMS: 0, OldestUnprocessed: at.Add(time.Second)},
			wantIter: types.ShardIteratorTypeAfterSequenceNumber, wantStart: "1"},
		{name: "read error", shard: Shard{Checkpoint: "1", State: StateOpen}, getErr: errors.New("throttled"),
			wantErr: true, wantIter: types.ShardIteratorTypeAfterSequenceNumber, wantStart: "1"},
		{name: "shard end", shard: Shard{Checkpoint: CheckpointShardEnd, State: StateClosed}, want: Lag{Status: LagDone}},
		{name: "latest", shard: Shard{Checkpoint: CheckpointLatest, State: StateOpen}, want: Lag{Status: LagUnknown, Reason: "starts at LATEST: no position to measure from"}},
		{name: "gone", shard: Shard{Checkpoint: "5", State: StateGone}, want: Lag{Status: LagUnknown, Reason: "shard is no longer in the stream"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.shard.ShardID = "shard-1"
			f := &fakeKinesis{pages: map[string][]*kinesis.GetRecordsOutput{"shard-1": tc.pages}, getErr: tc.getErr}
			got, err := ShardLag(t.Context(), f, names.RawStream, tc.shard, at)
			if tc.wantErr {
				if err == nil || got.Status != LagUnknown || !strings.Contains(got.Reason, "shard-1") {
					t.Fatalf("lag %+v, err %v; want an error and unknown lag", got, err)
				}
			} else {
				if err != nil {
					t.Fatal(err)
				}
				if !lagEqual(got, tc.want) {
					t.Fatalf("lag %+v, want %+v", got, tc.want)
				}
			}
			if tc.wantIter == "" {
				if len(f.reqs) != 0 {
					t.Fatalf("read the stream for a shard that needs no read")
				}
				return
			}
			if len(f.reqs) != 1 || f.reqs[0].ShardIteratorType != tc.wantIter || aws.ToString(f.reqs[0].StartingSequenceNumber) != tc.wantStart ||
				aws.ToString(f.reqs[0].StreamName) != names.RawStream || aws.ToString(f.reqs[0].ShardId) != "shard-1" {
				t.Fatalf("iterator requests %+v", f.reqs)
			}
			if f.gets > lagReads {
				t.Fatalf("%d GetRecords calls, bound is %d", f.gets, lagReads)
			}
		})
	}
}

func lagEqual(a, b Lag) bool {
	return a.Status == b.Status && a.AgeMS == b.AgeMS && a.OldestUnprocessed.Equal(b.OldestUnprocessed) && a.Reason == b.Reason &&
		aws.ToInt64(a.MillisBehindLatest) == aws.ToInt64(b.MillisBehindLatest) && (a.MillisBehindLatest == nil) == (b.MillisBehindLatest == nil)
}

func TestMeasureLagWarnsOnlyOnReadErrors(t *testing.T) {
	next := aws.String("more")
	f := &fakeKinesis{pages: map[string][]*kinesis.GetRecordsOutput{
		"a": {{Records: []types.Record{rec(at.Add(-time.Second))}, NextShardIterator: next}},
		"b": {{MillisBehindLatest: aws.Int64(0), NextShardIterator: next}},
	}}
	shards := []Shard{
		{ShardID: "a", State: StateOpen, Checkpoint: "1"},
		{ShardID: "b", State: StateOpen, Checkpoint: "1"},
		{ShardID: "c", State: StateClosed, Checkpoint: CheckpointShardEnd},
		{ShardID: "d", State: StateOpen, Checkpoint: CheckpointLatest},
	}
	if w := MeasureLag(t.Context(), f, "s", shards, at); len(w) != 0 {
		t.Fatalf("warnings %v", w)
	}
	want := []LagStatus{LagBehind, LagCaughtUp, LagDone, LagUnknown}
	for i, s := range shards {
		if s.Lag.Status != want[i] {
			t.Errorf("shard %s lag %+v, want %s", s.ShardID, s.Lag, want[i])
		}
	}

	f.getErr = errors.New("boom")
	w := MeasureLag(t.Context(), f, "s", shards[:2], at)
	if len(w) != 2 || w[0].Shard != "a" || w[1].Shard != "b" || w[0].Kind != WarnLagUnknown || !strings.Contains(w[0].Message, "boom") {
		t.Fatalf("warnings %+v", w)
	}
}
