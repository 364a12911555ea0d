package kclctl

import (
	"bytes"
	"math/big"
	"strings"
	"testing"
	"time"
)

func TestUniformNext(t *testing.T) {
	for _, tc := range []struct{ cur, target, want int }{
		{4, 6, 6}, {4, 8, 8}, {2, 9, 4}, {4, 2, 2}, {8, 1, 4}, {3, 1, 2}, {5, 3, 3},
	} {
		if got := uniformNext(tc.cur, tc.target); got != tc.want {
			t.Errorf("uniformNext(%d, %d) = %d, want %d", tc.cur, tc.target, got, tc.want)
		}
	}
}

// coverage checks that rs are contiguous, sorted and cover the whole hash key space.
func coverage(t *testing.T, rs []ShardRange) {
	t.Helper()
	next := new(big.Int)
	for _, r := range rs {
		if r.Start.Cmp(next) != 0 {
			t.Fatalf("range %s starts at %s, want %s", r.ShardID, r.Start, next)
		}
		next = new(big.Int).Add(r.End, big.NewInt(1))
	}
	if next.Cmp(hashSpace) != 0 {
		t.Fatalf("ranges end at %s, want 2^128", next)
	}
}

func TestPlanSplitMerge(t *testing.T) {
	cases := []struct {
		name      string
		from, to  int
		wantOps   string
		wantFirst string // shards of the first step
	}{
		{"4 to 6 splits the two lowest widest", 4, 6, "split,split", "shardId-000000000000"},
		{"4 to 2 merges the narrowest adjacent pairs", 4, 2, "merge,merge", "shardId-000000000000+shardId-000000000001"},
		{"1 to 3", 1, 3, "split,split", "shardId-000000000000"},
		{"3 to 1", 3, 1, "merge,merge", "shardId-000000000000+shardId-000000000001"},
		{"same", 2, 2, "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeStream(t, tc.from)
			all, _ := listAllShards(t.Context(), f, "s")
			open := openRanges(all)
			coverage(t, open)
			steps, err := PlanSplitMerge(open, tc.to)
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
	if _, err := PlanSplitMerge(openRanges(nil), 0); err == nil {
		t.Fatal("target 0 accepted")
	}
}

func TestRunScale(t *testing.T) {
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
		{name: "uniform where supported", from: 4, to: 6, method: MethodAuto, wantMethod: MethodUniform, wantSteps: 1},
		{name: "uniform in doubling steps", from: 2, to: 7, method: MethodAuto, wantMethod: MethodUniform, wantSteps: 2},
		{name: "auto falls back to split/merge", from: 4, to: 6, method: MethodAuto, noUniform: true, wantMethod: MethodSplitMerge, wantSteps: 2, wantNote: "UnknownOperationException"},
		{name: "merge down", from: 4, to: 3, method: MethodSplitMerge, wantMethod: MethodSplitMerge, wantSteps: 1},
		{name: "uniform only fails without UpdateShardCount", from: 4, to: 6, method: MethodUniform, noUniform: true, wantErr: "not supported"},
		{name: "already there", from: 3, to: 3, method: MethodAuto, wantSteps: 0, wantNote: "nothing to do"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeStream(t, tc.from)
			f.noUniform = tc.noUniform
			rep, err := RunScale(t.Context(), f, ScaleOptions{Stream: "s", Target: tc.to, Method: tc.method, Apply: true, Poll: time.Millisecond})
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
			all, _ := listAllShards(t.Context(), f, "s")
			open := openRanges(all)
			if len(open) != tc.to {
				t.Fatalf("%d open shards, want %d", len(open), tc.to)
			}
			coverage(t, open)
			opened, closed := 0, 0
			for _, l := range rep.Lineage {
				if l.State == "open" {
					opened++
				} else {
					closed++
				}
			}
			if opened != tc.to || opened+closed != len(all) {
				t.Fatalf("lineage %d open %d closed, stream has %d shards", opened, closed, len(all))
			}
			for _, s := range rep.Steps {
				if len(s.Children) == 0 {
					t.Fatalf("step %+v without new shards", s)
				}
			}
		})
	}
}

func TestScaleDryRunChangesNothing(t *testing.T) {
	f := newFakeStream(t, 4)
	f.noUniform = true
	rep, err := RunScale(t.Context(), f, ScaleOptions{Stream: "s", Target: 6, Method: MethodAuto, Poll: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if f.calls["UpdateShardCount"]+f.calls["SplitShard"]+f.calls["MergeShards"] != 0 || rep.Applied {
		t.Fatalf("dry run changed the stream: %v", f.calls)
	}
	var b bytes.Buffer
	if err := RenderScale(&b, rep); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"4 -> 6 open shards (uniform; would run 1 step(s))", "update-shard-count", "to 6", "lineage now:",
		"shardId-000000000003  open   -        75.0%-100.0%", "split shardId-000000000000; split shardId-000000000001", "add --apply"} {
		if !strings.Contains(out, want) {
			t.Fatalf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestRenderScaleApplied(t *testing.T) {
	f := newFakeStream(t, 2)
	f.noUniform = true
	rep, err := RunScale(t.Context(), f, ScaleOptions{Stream: "s", Target: 3, Method: MethodAuto, Apply: true, Poll: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	rep.TookMS, rep.Steps[0].TookMS = 1500, 1400
	var b bytes.Buffer
	if err := RenderScale(&b, rep); err != nil {
		t.Fatal(err)
	}
	want := `stream s: 2 -> 3 open shards (split-merge; ran 1 step(s))

STEP  OP     SHARDS                DETAIL    NEW SHARDS                                 TOOK
1     split  shardId-000000000000  at 25.0%  shardId-000000000002,shardId-000000000003  1s

lineage after:
SHARD                 STATE   PARENTS               HASH RANGE
shardId-000000000000  closed  -                     0.0%-50.0%
shardId-000000000001  open    -                     50.0%-100.0%
shardId-000000000002  open    shardId-000000000000  0.0%-25.0%
shardId-000000000003  open    shardId-000000000000  25.0%-50.0%

took 1s
note: the endpoint does not support UpdateShardCount (UnknownOperationException); resharding by split/merge
`
	if got := b.String(); got != want {
		t.Fatalf("got:\n%s\nwant:\n%s", got, want)
	}
}
