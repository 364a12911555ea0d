package checkpoint

import (
	"context"
	"errors"
	"math/big"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kinesis-events/pipeline/internal/localstack"
	"github.com/kinesis-events/pipeline/internal/localstack/localstacktest"
	"github.com/kinesis-events/pipeline/internal/names"
	"github.com/kinesis-events/pipeline/internal/poll"
)

// TestLineageAndResetOnKinesalite runs the lineage gate on the shard metadata a real Kinesis
// emulator reports after MergeShards and SplitShard, and resolves reset positions from real
// records and arrival timestamps.
func TestLineageAndResetOnKinesalite(t *testing.T) {
	t.Parallel()
	stack := localstacktest.Start(t, localstack.Options{StartTimeout: 3 * time.Minute}) // a loaded machine: not under test
	tm := emulatorTiming
	ctx, cancel := context.WithTimeout(t.Context(), 2*tm.wait)
	defer cancel()
	kin, ddb := stack.Kinesis(), stack.DynamoDB()
	const stream = names.RawStream
	if err := stack.CreateStream(ctx, stream, 2); err != nil {
		t.Fatal(err)
	}
	if err := stack.CreateTable(ctx, names.LeaseTable, "ShardID"); err != nil {
		t.Fatal(err)
	}
	shards, err := listShards(ctx, kin, stream, tm.call)
	if err != nil || len(shards) != 2 {
		t.Fatalf("ListShards: %v %v", shards, err)
	}
	s0, s1 := "shardId-000000000000", "shardId-000000000001"
	full := func(id string) *ktypes.Shard {
		out, err := kin.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String(stream)})
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range out.Shards {
			if aws.ToString(s.ShardId) == id {
				return &s
			}
		}
		t.Fatalf("shard %s not listed", id)
		return nil
	}
	put := func(data string) string {
		out, err := kin.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String(stream), Data: []byte(data),
			PartitionKey: aws.String("k"), ExplicitHashKey: full(s0).HashKeyRange.StartingHashKey})
		if err != nil || aws.ToString(out.ShardId) != s0 {
			t.Fatalf("put %s: %v %v", data, out, err)
		}
		return aws.ToString(out.SequenceNumber)
	}

	// Reset positions resolved from records: two records, a gap of more than a second (the
	// emulator's arrival timestamps have second precision at worst), two more.
	put("r1")
	r2 := put("r2")
	between := time.Now()
	for time.Since(between) < 1100*time.Millisecond {
		time.Sleep(50 * time.Millisecond) // let the wall clock move on: arrival timestamps must differ
	}
	put("r3")
	r4 := put("r4")
	at, err := PlanReset(ctx, ddb, kin, names.LeaseTable, stream, s0, Position{Kind: PositionAtTimestamp, Timestamp: between.Add(500 * time.Millisecond)}, time.Now())
	if err != nil || at.NewCheckpoint != r2 {
		t.Fatalf("reset to a timestamp between r2 and r3 resolved to %+v (%v), want after r2 %s", at, err, r2)
	}
	latest, err := PlanReset(ctx, ddb, kin, names.LeaseTable, stream, s0, Position{Kind: PositionLatest}, time.Now())
	if err != nil || latest.NewCheckpoint != r4 {
		t.Fatalf("reset to latest resolved to %+v (%v), want r4 %s", latest, err, r4)
	}
	early, err := PlanReset(ctx, ddb, kin, names.LeaseTable, stream, s0, Position{Kind: PositionAtTimestamp, Timestamp: time.Now().Add(-time.Hour)}, time.Now())
	if err != nil || early.NewCheckpoint != "" {
		t.Fatalf("reset to before every record resolved to %+v (%v), want trim horizon", early, err)
	}
	empty, err := PlanReset(ctx, ddb, kin, names.LeaseTable, stream, s1, Position{Kind: PositionLatest}, time.Now())
	if err != nil || empty.NewCheckpoint != "" {
		t.Fatalf("latest of an empty shard = %+v (%v), want no checkpoint", empty, err)
	}

	waitActive := func() {
		t.Helper()
		poll.Until(t, tm.wait, 20*time.Millisecond, "stream active", func() (bool, string) {
			out, err := kin.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(stream)})
			if err != nil {
				return false, err.Error()
			}
			return out.StreamDescriptionSummary.StreamStatus == ktypes.StreamStatusActive, string(out.StreamDescriptionSummary.StreamStatus)
		})
	}
	if _, err := kin.MergeShards(ctx, &kinesis.MergeShardsInput{StreamName: aws.String(stream), ShardToMerge: aws.String(s0), AdjacentShardToMerge: aws.String(s1)}); err != nil {
		t.Fatalf("merge: %v", err)
	}
	waitActive()
	shards, err = listShards(ctx, kin, stream, tm.call)
	if err != nil {
		t.Fatal(err)
	}
	var merged shardMeta
	for _, m := range shards {
		if m.Parent != "" {
			merged = m
		}
	}
	if merged.Parent != s0 || merged.Adjacent != s1 {
		t.Fatalf("merged child lineage = %+v", merged)
	}
	hash, ok := new(big.Int).SetString(aws.ToString(full(merged.ID).HashKeyRange.EndingHashKey), 10)
	if !ok {
		t.Fatal("bad hash key")
	}
	if _, err := kin.SplitShard(ctx, &kinesis.SplitShardInput{StreamName: aws.String(stream), ShardToSplit: aws.String(merged.ID),
		NewStartingHashKey: aws.String(new(big.Int).Rsh(hash, 1).String())}); err != nil {
		t.Fatalf("split: %v", err)
	}
	waitActive()

	s, err := New(t.Context(), Config{Table: names.LeaseTable, WorkerID: "a", Stream: stream, LeaseDuration: tm.lease, CallTimeout: tm.call,
		TableWaitTimeout: tm.wait, Registerer: prometheus.NewRegistry()}, ddb, kin)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Init(ctx); err != nil {
		t.Fatal(err)
	}
	var children []string
	for id, m := range s.lineage {
		if m.Parent == merged.ID {
			children = append(children, id)
		}
	}
	if len(children) != 2 {
		t.Fatalf("split children of %s: %v", merged.ID, children)
	}
	waiting := func(id string) {
		t.Helper()
		if err := take(ctx, s, id); !errors.Is(err, ErrWaitingOnParent) || !isRefused(err) {
			t.Fatalf("Acquire(%s) = %v, want waiting on parent", id, err)
		}
	}
	finish := func(id string) {
		t.Helper()
		if err := take(ctx, s, id); err != nil {
			t.Fatalf("take %s: %v", id, err)
		}
		if err := checkpoint(ctx, s, id, ShardEnd); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Release(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	waiting(merged.ID)
	waiting(children[0])
	finish(s0)
	waiting(merged.ID) // one of two parents done is not enough
	finish(s1)
	waiting(children[1]) // grandchildren wait for the merged shard
	finish(merged.ID)
	for _, c := range children {
		if err := take(ctx, s, c); err != nil {
			t.Fatalf("split child %s after its parent finished: %v", c, err)
		}
	}
}
