package worker

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// batch is one KCL GetRecords cycle as the monitor sees it: n records, behindMs, and whether the
// processor has returned yet.
type batch struct {
	n        int
	behindMs int64
	open     bool
}

func TestCheckpointAge(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	cases := []struct {
		name    string
		batches []batch // completed back to back in the first milliseconds; an open one starts at openAt
		openAt  time.Duration
		held    int
		cpAt    time.Duration // last checkpoint, relative to t0 (0: none yet)
		now     time.Duration
		want    time.Duration
	}{
		{name: "started, first read not back yet", now: 10 * time.Second, want: 10 * time.Second},
		{name: "caught up: empty batch at the tip", batches: []batch{{n: 0}}, now: time.Hour, want: 0},
		{name: "caught up after records, checkpoint long ago", batches: []batch{{n: 5}, {n: 0}}, cpAt: time.Second, now: time.Hour, want: 0},
		{name: "idle for an hour, then a batch in flight", batches: []batch{{n: 0}, {n: 5, open: true}}, openAt: time.Hour - time.Second, cpAt: time.Second, now: time.Hour, want: time.Second},
		{name: "first batch blocked in the pipeline", batches: []batch{{n: 100, open: true}}, now: 90 * time.Second, want: 90 * time.Second},
		{name: "batch blocked after checkpoints", batches: []batch{{n: 100}, {n: 100, open: true}}, openAt: 2 * time.Second, cpAt: time.Second, now: 90 * time.Second, want: 89 * time.Second},
		{name: "behind latest but checkpointing", batches: []batch{{n: 100, behindMs: 5000}}, cpAt: 80 * time.Second, now: 90 * time.Second, want: 10 * time.Second},
		{name: "empty read while behind latest (gap)", batches: []batch{{n: 0, behindMs: 5000}}, cpAt: 80 * time.Second, now: 90 * time.Second, want: 10 * time.Second},
		{name: "events held for reordering pin the checkpoint", batches: []batch{{n: 10}, {n: 0}}, held: 3, cpAt: 30 * time.Second, now: 90 * time.Second, want: 60 * time.Second},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			now := t0
			clock := func() time.Time { return now }
			reg := &shardRegistry{now: clock, shards: map[string]*shardState{}}
			bt := newBatchTracker(clock)
			m := &monitor{m: newMetrics(prometheus.NewRegistry()), shards: reg, batches: bt}
			reg.start("s")
			for i, b := range tc.batches {
				now = t0.Add(time.Duration(i) * time.Millisecond)
				if b.open {
					now = t0.Add(tc.openAt)
				}
				m.RecordGetRecordsTime("s", 0)
				if b.open {
					break
				}
				m.IncrRecordsProcessed("s", b.n)
				m.MillisBehindLatest("s", float64(b.behindMs))
			}
			reg.with("s", func(s *shardState) {
				s.held = tc.held
				if tc.cpAt > 0 {
					s.lastCheckpoint = t0.Add(tc.cpAt)
				}
			})
			now = t0.Add(tc.now)
			b, ok := bt.get("s")
			if got := checkpointAge(reg.snapshot()["s"], b, ok, now); got != tc.want {
				t.Fatalf("age %v, want %v", got, tc.want)
			}
		})
	}
}

func TestShardCollectorAndBehindHook(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	clock := func() time.Time { return now }
	reg := prometheus.NewRegistry()
	shards := &shardRegistry{now: clock, shards: map[string]*shardState{}}
	bt := newBatchTracker(clock)
	reg.MustRegister(newShardCollector(shards, bt))
	published := map[string]int64{}
	m := &monitor{m: newMetrics(reg), shards: shards, batches: bt, behind: func(s string, ms int64) { published[s] = ms }}

	shards.start("shardId-1")
	m.RecordGetRecordsTime("shardId-1", 0)
	m.IncrRecordsProcessed("shardId-1", 3)
	m.MillisBehindLatest("shardId-1", 1234)
	now = now.Add(7 * time.Second)
	want := `
# HELP worker_checkpoint_age_seconds How long records have waited behind the shard's checkpoint, in seconds; 0 while the shard is caught up.
# TYPE worker_checkpoint_age_seconds gauge
worker_checkpoint_age_seconds{shard="shardId-1"} 7
# HELP worker_shard_progress_age_seconds Seconds since the shard's processor last completed a batch.
# TYPE worker_shard_progress_age_seconds gauge
worker_shard_progress_age_seconds{shard="shardId-1"} 7
# HELP kcl_millis_behind_latest MillisBehindLatest of the last GetRecords, per shard held by this worker.
# TYPE kcl_millis_behind_latest gauge
kcl_millis_behind_latest{shard="shardId-1"} 1234
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "worker_checkpoint_age_seconds", "worker_shard_progress_age_seconds", "kcl_millis_behind_latest"); err != nil {
		t.Fatal(err)
	}
	if published["shardId-1"] != 1234 {
		t.Fatalf("MillisBehindLatest not handed to the lease store: %v", published)
	}
	// The lease ends: every per-shard series goes.
	m.DeleteMetricMillisBehindLatest("shardId-1")
	shards.stop("shardId-1")
	if n, err := testutil.GatherAndCount(reg, "worker_checkpoint_age_seconds", "worker_shard_progress_age_seconds", "kcl_millis_behind_latest"); err != nil || n != 0 {
		t.Fatalf("%d series left after the shard stopped (%v)", n, err)
	}
}
