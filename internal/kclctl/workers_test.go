package kclctl

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/kinesis-events/pipeline/checkpoint"
	"github.com/kinesis-events/pipeline/internal/names"
)

func sampleSnapshot() checkpoint.Snapshot {
	live := at.Add(8 * time.Second)
	return checkpoint.Snapshot{Table: names.LeaseTable, Stream: names.RawStream, At: at,
		Shards: []checkpoint.ShardInfo{
			{ShardID: "shardId-000000000000", State: checkpoint.ShardFinished, HasRow: true, Checkpoint: "SHARD_END"},
			{ShardID: "shardId-000000000001", State: checkpoint.ShardOpen, Owner: "w1", LeaseExpiresAt: live, LastRenewal: at.Add(-time.Second),
				HasMillisBehind: true, MillisBehindLatest: 2500},
			{ShardID: "shardId-000000000002", State: checkpoint.ShardOpen, Owner: "w1", LeaseExpiresAt: live, LastRenewal: at.Add(-2 * time.Second),
				HasMillisBehind: true, MillisBehindLatest: 0},
			{ShardID: "shardId-000000000003", State: checkpoint.ShardOpen, Owner: "w1", LeaseExpiresAt: live, LastRenewal: at.Add(-time.Second)},
			{ShardID: "shardId-000000000004", State: checkpoint.ShardOpen, Owner: "w2", LeaseExpiresAt: live, LastRenewal: at.Add(-time.Second)},
			{ShardID: "shardId-000000000005", State: checkpoint.ShardOpen, Owner: "w3", LeaseExpiresAt: at.Add(-time.Minute), LeaseExpired: true,
				LastRenewal: at.Add(-70 * time.Second)},
			{ShardID: "shardId-000000000006", State: checkpoint.ShardOpen, WaitingOn: []string{"shardId-000000000005"}},
		},
		Warnings: []checkpoint.Warning{{Kind: checkpoint.WarnExpiredLease, ShardID: "shardId-000000000005", Message: "lease of w3 expired 1m0s ago"}},
	}
}

func TestBuildWorkers(t *testing.T) {
	r := BuildWorkers(sampleSnapshot())
	if len(r.Workers) != 3 || r.Leasable != 5 || r.Spread != 2 || strings.Join(r.Unowned, ",") != "shardId-000000000005" {
		t.Fatalf("%+v", r)
	}
	w1 := r.Workers[0]
	if w1.WorkerID != "w1" || len(w1.Shards) != 3 || *w1.MaxBehindMS != 2500 || !w1.LastRenewal.Equal(at.Add(-time.Second)) {
		t.Fatalf("w1 %+v", w1)
	}
	kinds := map[string]bool{}
	for _, w := range r.Warnings {
		kinds[w.Kind] = true
	}
	if !kinds[WarnUnbalanced] || !kinds[WarnWorkerSilent] || !kinds[string(checkpoint.WarnExpiredLease)] || len(r.Warnings) != 3 {
		t.Fatalf("warnings %+v", r.Warnings)
	}
	var b bytes.Buffer
	if err := RenderWorkers(&b, r); err != nil {
		t.Fatal(err)
	}
	want := `WORKER  LEASES  SHARDS                                                          EXPIRED               LAST RENEWAL  MAX BEHIND
w1      3       shardId-000000000001,shardId-000000000002,shardId-000000000003  -                     1s ago        2s
w2      1       shardId-000000000004                                            -                     1s ago        -
w3      0       -                                                               shardId-000000000005  1m10s ago     -

2 worker(s) with live leases, 5 leasable shard(s), 1 unowned, spread 2
`
	if got := b.String(); !strings.HasPrefix(got, want) || !strings.Contains(got, "WARNINGS (3):") {
		t.Fatalf("got:\n%s\nwant prefix:\n%s", got, want)
	}
}

func TestWorkersCommand(t *testing.T) {
	for _, tc := range []struct {
		name     string
		snap     checkpoint.Snapshot
		args     []string
		wantCode int
		wantOut  string
	}{
		{"warnings", sampleSnapshot(), []string{"workers"}, ExitWarnings, "spread 2"},
		{"balanced", checkpoint.Snapshot{Table: names.LeaseTable, Stream: names.RawStream, At: at, Shards: []checkpoint.ShardInfo{
			{ShardID: "a", State: checkpoint.ShardOpen, Owner: "w1", LeaseExpiresAt: at.Add(time.Second)},
			{ShardID: "b", State: checkpoint.ShardOpen, Owner: "w2", LeaseExpiresAt: at.Add(time.Second)}}}, []string{"workers", "--json"}, ExitOK, `"spread": 0`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			app := &App{Stdout: &out, Stderr: &errb, Getenv: func(string) string { return "" }, Now: func() time.Time { return at },
				Connect: func(context.Context, time.Duration) (*Clients, error) { return &Clients{}, nil },
				Snapshot: func(ctx context.Context, _ *Clients, table, stream string, now time.Time) (checkpoint.Snapshot, error) {
					if _, ok := ctx.Deadline(); !ok {
						t.Error("snapshot without a deadline")
					}
					return tc.snap, nil
				}}
			code := Main(t.Context(), app, tc.args)
			if code != tc.wantCode || !strings.Contains(out.String(), tc.wantOut) {
				t.Fatalf("exit %d (want %d)\n%s\n%s", code, tc.wantCode, out.String(), errb.String())
			}
			if strings.Contains(strings.Join(tc.args, " "), "--json") {
				var r WorkersReport
				if err := json.Unmarshal(out.Bytes(), &r); err != nil || r.Workers == nil || r.Unowned == nil || r.Warnings == nil {
					t.Fatalf("json %+v %v", r, err)
				}
			}
		})
	}
}

func TestParsePosition(t *testing.T) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		to      string
		args    []string
		want    checkpoint.Position
		wantErr string
	}{
		{to: "trim-horizon", want: checkpoint.Position{Kind: checkpoint.PositionTrimHorizon}},
		{to: "latest", want: checkpoint.Position{Kind: checkpoint.PositionLatest}},
		{to: "timestamp", args: []string{"2026-11-26T11:00:00Z"}, want: checkpoint.Position{Kind: checkpoint.PositionAtTimestamp, Timestamp: now.Add(-time.Hour)}},
		{to: "timestamp=2026-11-26T11:00:00.5Z", want: checkpoint.Position{Kind: checkpoint.PositionAtTimestamp, Timestamp: now.Add(-time.Hour + 500*time.Millisecond)}},
		{to: "timestamp", args: []string{"-15m"}, want: checkpoint.Position{Kind: checkpoint.PositionAtTimestamp, Timestamp: now.Add(-15 * time.Minute)}},
		{to: "sequence", args: []string{"4965"}, want: checkpoint.Position{Kind: checkpoint.PositionAfterSequence, Sequence: "4965"}},
		{to: "sequence=4965", want: checkpoint.Position{Kind: checkpoint.PositionAfterSequence, Sequence: "4965"}},
		{to: "timestamp", args: []string{"15m"}, wantErr: "must be negative"},
		{to: "timestamp", args: []string{"yesterday"}, wantErr: "RFC 3339"},
		{to: "timestamp", wantErr: "needs exactly one time"},
		{to: "sequence", args: []string{"12x"}, wantErr: "not a sequence number"},
		{to: "latest", args: []string{"x"}, wantErr: "takes no argument"},
		{to: "sequence=1", args: []string{"2"}, wantErr: "no further argument"},
		{to: "oldest", wantErr: "want trim-horizon"},
	}
	for _, tc := range cases {
		t.Run(tc.to+strings.Join(tc.args, " "), func(t *testing.T) {
			got, err := ParsePosition(tc.to, tc.args, now)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || got.Kind != tc.want.Kind || !got.Timestamp.Equal(tc.want.Timestamp) || got.Sequence != tc.want.Sequence {
				t.Fatalf("got %+v %v, want %+v", got, err, tc.want)
			}
		})
	}
}

func TestMutatingCommandsUsage(t *testing.T) {
	for _, args := range [][]string{
		{"reset", "--to", "latest"},
		{"reset", "--shard", "s"},
		{"reset", "--shard", "s", "--to", "sideways"},
		{"scale"},
		{"scale", "--shards", "2", "--method", "magic"},
		{"dlq"},
		{"dlq", "list", "--limit", "0"},
	} {
		var out, errb bytes.Buffer
		connects := 0
		app := &App{Stdout: &out, Stderr: &errb, Getenv: func(string) string { return "" },
			Connect: func(context.Context, time.Duration) (*Clients, error) { connects++; return &Clients{}, nil }}
		if code := Main(t.Context(), app, args); code != ExitUsage {
			t.Errorf("%v: exit %d, want %d\n%s", args, code, ExitUsage, errb.String())
		}
	}
}
