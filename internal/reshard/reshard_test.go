package reshard_test

import (
	"context"
	"math"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/kinesis-events/pipeline/internal/reshard"
	"github.com/kinesis-events/pipeline/internal/reshard/reshardtest"
)

func TestNextUniform(t *testing.T) {
	for _, tc := range []struct{ cur, target, want int }{
		{4, 6, 6}, {4, 8, 8}, {2, 9, 4}, {4, 2, 2}, {8, 1, 4}, {3, 1, 2}, {5, 3, 3}, {1, 1, 1},
	} {
		if got := reshard.NextUniform(tc.cur, tc.target); got != tc.want {
			t.Errorf("NextUniform(%d, %d) = %d, want %d", tc.cur, tc.target, got, tc.want)
		}
	}
}

// coverage checks that rs are contiguous, sorted and cover the whole hash key space.
func coverage(t *testing.T, rs []reshard.Range) {
	t.Helper()
	next := new(big.Int)
	for _, r := range rs {
		if r.Start.Cmp(next) != 0 {
			t.Fatalf("range %s starts at %s, want %s", r.ShardID, r.Start, next)
		}
		next = new(big.Int).Add(r.End, big.NewInt(1))
	}
	if next.Cmp(reshard.HashSpace) != 0 {
		t.Fatalf("ranges end at %s, want 2^128", next)
	}
}

func openOf(t *testing.T, k *reshardtest.Kinesis, stream string) []reshard.Range {
	t.Helper()
	all, err := reshard.ListAll(t.Context(), k, stream)
	if err != nil {
		t.Fatal(err)
	}
	return reshard.OpenRanges(all)
}

func TestPlanSplitMerge(t *testing.T) {
	cases := []struct {
		name      string
		from, to  int
		wantOps   string
		wantFirst string
	}{
		{"4 to 6 splits the two lowest widest", 4, 6, "split,split", "shardId-000000000000"},
		{"4 to 2 merges the narrowest adjacent pairs", 4, 2, "merge,merge", "shardId-000000000000+shardId-000000000001"},
		{"1 to 3", 1, 3, "split,split", "shardId-000000000000"},
		{"2 to 8 splits every shard, then every half", 2, 8, "split,split,split,split,split,split", "shardId-000000000000"},
		{"3 to 1", 3, 1, "merge,merge", "shardId-000000000000+shardId-000000000001"},
		{"same", 2, 2, "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			k := reshardtest.New()
			k.AddStream("s", tc.from)
			open := openOf(t, k, "s")
			coverage(t, open)
			steps, err := reshard.PlanSplitMerge(open, tc.to)
			if err != nil {
				t.Fatal(err)
			}
			var ops []string
			for _, s := range steps {
				ops = append(ops, s.Op)
			}
			if got := strings.Join(ops, ","); got != tc.wantOps {
				t.Fatalf("ops %q, want %q (%+v)", got, tc.wantOps, steps)
			}
			if len(steps) > 0 && strings.Join(steps[0].Shards, "+") != tc.wantFirst {
				t.Fatalf("first step on %v, want %s", steps[0].Shards, tc.wantFirst)
			}
		})
	}
	if _, err := reshard.PlanSplitMerge(nil, 0); err == nil {
		t.Fatal("target 0 accepted")
	}
}

func TestRun(t *testing.T) {
	cases := []struct {
		name       string
		from, to   int
		method     string
		noUniform  bool
		wantMethod string
		wantSteps  int
		wantNote   string
		wantErr    string
	}{
		{name: "uniform where supported", from: 4, to: 6, method: reshard.MethodAuto, wantMethod: reshard.MethodUniform, wantSteps: 1},
		{name: "uniform in doubling steps", from: 2, to: 7, method: reshard.MethodAuto, wantMethod: reshard.MethodUniform, wantSteps: 2},
		{name: "uniform in halving steps", from: 8, to: 2, method: reshard.MethodAuto, wantMethod: reshard.MethodUniform, wantSteps: 2},
		{name: "auto falls back to split/merge", from: 4, to: 6, method: reshard.MethodAuto, noUniform: true, wantMethod: reshard.MethodSplitMerge, wantSteps: 2, wantNote: "UnknownOperationException"},
		{name: "merge down", from: 4, to: 3, method: reshard.MethodSplitMerge, wantMethod: reshard.MethodSplitMerge, wantSteps: 1},
		{name: "uniform only fails without UpdateShardCount", from: 4, to: 6, method: reshard.MethodUniform, noUniform: true, wantErr: "not supported"},
		{name: "already there", from: 3, to: 3, method: reshard.MethodAuto, wantSteps: 0, wantNote: "nothing to do"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			k := reshardtest.New()
			k.AddStream("s", tc.from)
			k.NoUniform = tc.noUniform
			rep, err := reshard.Run(t.Context(), k, reshard.Options{Stream: "s", Target: tc.to, Method: tc.method, Apply: true, Poll: time.Millisecond})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.wantMethod != "" && rep.Method != tc.wantMethod || len(rep.Steps) != tc.wantSteps || rep.From != tc.from {
				t.Fatalf("method %s, %d steps, from %d: %+v", rep.Method, len(rep.Steps), rep.From, rep)
			}
			if tc.wantNote != "" && !strings.Contains(strings.Join(rep.Notes, "\n"), tc.wantNote) {
				t.Fatalf("notes %q, want %q", rep.Notes, tc.wantNote)
			}
			open := openOf(t, k, "s")
			if len(open) != tc.to {
				t.Fatalf("%d open shards, want %d", len(open), tc.to)
			}
			coverage(t, open)
			for _, s := range rep.Steps {
				if len(s.Children) == 0 {
					t.Fatalf("step %+v without new shards", s)
				}
			}
		})
	}
}

// TestRunWaitsWhileUpdating: a stream that is UPDATING is not touched until ctx ends.
func TestRunWaitsWhileUpdating(t *testing.T) {
	k := reshardtest.New()
	k.AddStream("s", 2)
	k.SetStatus("s", types.StreamStatusUpdating)
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	_, err := reshard.Run(ctx, k, reshard.Options{Stream: "s", Target: 4, Method: reshard.MethodAuto, Apply: true, Poll: time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), "status UPDATING") {
		t.Fatalf("err %v, want not ready (status UPDATING)", err)
	}
	if n := k.Calls("UpdateShardCount") + k.Calls("SplitShard"); n != 0 {
		t.Fatalf("%d reshard calls on an UPDATING stream", n)
	}
}

func TestEffective(t *testing.T) {
	cases := []struct {
		name   string
		splits int // splits of the widest shard, starting from 2 even shards
		want   float64
	}{
		{"2 even", 0, 2}, {"3 uneven holds what 2 do", 1, 2}, {"4 even", 2, 4}, {"5 uneven", 3, 4},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			k := reshardtest.New()
			k.AddStream("s", 2)
			k.NoUniform = true
			if tc.splits > 0 {
				if _, err := reshard.Run(t.Context(), k, reshard.Options{Stream: "s", Target: 2 + tc.splits, Method: reshard.MethodAuto, Apply: true, Poll: time.Millisecond}); err != nil {
					t.Fatal(err)
				}
			}
			if got := reshard.Effective(openOf(t, k, "s")); math.Abs(got-tc.want) > 1e-9 {
				t.Fatalf("Effective = %v, want %v", got, tc.want)
			}
		})
	}
	if reshard.Effective(nil) != 0 {
		t.Fatal("Effective(nil) != 0")
	}
}

// TestSplitMergeResult: the capacity a split/merge path leaves, in even shards.
func TestSplitMergeResult(t *testing.T) {
	for _, tc := range []struct {
		from, to int
		want     float64
	}{{2, 3, 2}, {2, 4, 4}, {4, 3, 2}, {8, 4, 4}, {4, 6, 4}, {4, 8, 8}} {
		k := reshardtest.New()
		k.AddStream("s", tc.from)
		rs, err := reshard.SplitMergeResult(openOf(t, k, "s"), tc.to)
		if err != nil {
			t.Fatal(err)
		}
		if len(rs) != tc.to || math.Abs(reshard.Effective(rs)-tc.want) > 1e-9 {
			t.Errorf("%d -> %d: %d ranges of effective capacity %v, want %d and %v", tc.from, tc.to, len(rs), reshard.Effective(rs), tc.to, tc.want)
		}
		coverage(t, rs)
	}
}

// TestRunStepAnswerLost: a split or merge whose answer is lost after it was applied counts as done
// (its shards are closed), so the run neither fails nor splits again.
func TestRunStepAnswerLost(t *testing.T) {
	for _, tc := range []struct {
		op       string
		from, to int
	}{{"SplitShard", 2, 4}, {"MergeShards", 4, 2}} {
		t.Run(tc.op, func(t *testing.T) {
			k := reshardtest.New()
			k.AddStream("s", tc.from)
			k.NoUniform = true
			k.LoseAnswers(tc.op, 1)
			rep, err := reshard.Run(t.Context(), k, reshard.Options{Stream: "s", Target: tc.to, Method: reshard.MethodAuto, Apply: true, Poll: time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			if n := k.Open("s"); n != tc.to || k.Calls(tc.op) != 2 || len(rep.Steps) != 2 {
				t.Fatalf("%d open shards after %d calls and %d steps, want %d after 2 and 2", n, k.Calls(tc.op), len(rep.Steps), tc.to)
			}
		})
	}
}
