package kclctl

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/kinesis-events/pipeline/internal/names"
)

var at = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

func ms(d time.Duration) *int64 { v := d.Milliseconds(); return &v }

const longSeq = "49654720134325543987431296012345678901234567890123450034"

// sampleReport covers every kind of row: an owned open shard behind, a finished parent, a merge child
// waiting without a lease, an expired lease, a shard with an unreadable lag.
func sampleReport() Report {
	return Report{
		Table: names.LeaseTable, Stream: names.RawStream, At: at,
		Shards: []Shard{
			{ShardID: "shardId-000000000000", State: StateClosed, Owner: "", Checkpoint: CheckpointShardEnd, HasLease: true, LeaseCounter: 40,
				Lag: Lag{Status: LagDone}},
			{ShardID: "shardId-000000000001", State: StateOpen, Parents: []string{"shardId-000000000000"}, Owner: "host-a-1", LeaseCounter: 17,
				LeaseExpiry: at.Add(7 * time.Second), LeaseExpiresInMS: ms(7 * time.Second), Checkpoint: longSeq, HasLease: true,
				Lag:    Lag{Status: LagBehind, AgeMS: (2*time.Minute + 5*time.Second).Milliseconds(), OldestUnprocessed: at.Add(-125 * time.Second)},
				Behind: &Behind{MS: 118000, At: at.Add(-time.Second)}},
			{ShardID: "shardId-000000000002", State: StateOpen, Owner: "host-b-1", LeaseCounter: 3,
				LeaseExpiry: at.Add(-3 * time.Second), LeaseExpiresInMS: ms(-3 * time.Second), Checkpoint: CheckpointTrimHorizon, HasLease: true,
				Lag: Lag{Status: LagCaughtUp}, Behind: &Behind{MS: 0, At: at.Add(-4 * time.Second)}},
			{ShardID: "shardId-000000000003", State: StateOpen, Parents: []string{"shardId-000000000001", "shardId-000000000002"},
				Lag: Lag{Status: LagUnknown, Reason: "shard shardId-000000000003: lag: get records: boom"}},
		},
		Warnings: []Warning{
			{Shard: "shardId-000000000002", Kind: "expired_lease", Message: "lease of host-b-1 expired 3s ago"},
			{Shard: "shardId-000000000003", Kind: WarnLagUnknown, Message: "get records:\tboom\nagain"},
		},
	}
}

func TestRenderCheckpointsTable(t *testing.T) {
	var b bytes.Buffer
	if err := RenderCheckpoints(&b, sampleReport()); err != nil {
		t.Fatal(err)
	}
	want := `SHARD                 STATE   PARENTS                                    OWNER     LEASE EXPIRES IN  CHECKPOINT       LAG    BEHIND
shardId-000000000000  closed  -                                          -         -                 SHARD_END        -      -
shardId-000000000001  open    shardId-000000000000                       host-a-1  7s                4965...23450034  2m05s  1m58s
shardId-000000000002  open    -                                          host-b-1  expired 3s ago    TRIM_HORIZON     0      -
shardId-000000000003  open    shardId-000000000001,shardId-000000000002  -         -                 (no lease)       ?      -

WARNINGS (2):
  shardId-000000000002  expired_lease    lease of host-b-1 expired 3s ago
  shardId-000000000003  lag_unavailable  get records: boom again
`
	if got := b.String(); got != want {
		t.Fatalf("table:\n%s\nwant:\n%s", got, want)
	}
}

func TestRenderCheckpointsNoWarnings(t *testing.T) {
	r := sampleReport()
	r.Warnings = nil
	var b bytes.Buffer
	if err := RenderCheckpoints(&b, r); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), "WARNINGS") || strings.Count(b.String(), "\n") != 5 {
		t.Fatalf("table without warnings:\n%s", b.String())
	}
}

func TestCheckpointsJSON(t *testing.T) {
	var b bytes.Buffer
	if err := WriteJSON(&b, sampleReport(), true); err != nil {
		t.Fatal(err)
	}
	if strings.Count(b.String(), "\n") != 1 {
		t.Fatalf("compact JSON is not one line: %q", b.String())
	}
	var got struct {
		Table  string `json:"table"`
		Stream string `json:"stream"`
		At     string `json:"at"`
		Shards []struct {
			ShardID          string   `json:"shard_id"`
			State            string   `json:"state"`
			Parents          []string `json:"parents"`
			Owner            string   `json:"owner"`
			LeaseCounter     int64    `json:"lease_counter"`
			LeaseExpiry      string   `json:"lease_expiry"`
			LeaseExpiresInMS *int64   `json:"lease_expires_in_ms"`
			Checkpoint       string   `json:"checkpoint"`
			HasLease         bool     `json:"has_lease"`
			Lag              struct {
				Status            string `json:"status"`
				AgeMS             int64  `json:"age_ms"`
				OldestUnprocessed string `json:"oldest_unprocessed"`
				Reason            string `json:"reason"`
			} `json:"lag"`
		} `json:"shards"`
		Warnings []Warning `json:"warnings"`
	}
	if err := json.Unmarshal(b.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if got.Table != names.LeaseTable || got.Stream != names.RawStream || got.At != "2026-11-26T12:00:00Z" || len(got.Shards) != 4 || len(got.Warnings) != 2 {
		t.Fatalf("report %+v", got)
	}
	s1 := got.Shards[1]
	if s1.Checkpoint != longSeq || s1.Owner != "host-a-1" || s1.LeaseCounter != 17 || s1.LeaseExpiry != "2026-11-26T12:00:07Z" ||
		s1.LeaseExpiresInMS == nil || *s1.LeaseExpiresInMS != 7000 || s1.Lag.Status != "behind" || s1.Lag.AgeMS != 125000 ||
		s1.Lag.OldestUnprocessed != "2026-11-26T11:57:55Z" || len(s1.Parents) != 1 {
		t.Fatalf("shard 1 %+v", s1)
	}
	if s2 := got.Shards[2]; *s2.LeaseExpiresInMS != -3000 || s2.Lag.Status != "caught_up" || s2.Lag.AgeMS != 0 {
		t.Fatalf("shard 2 %+v", s2)
	}
	if s3 := got.Shards[3]; s3.HasLease || s3.LeaseExpiresInMS != nil || s3.LeaseExpiry != "" || s3.Lag.Status != "unknown" || s3.Lag.Reason == "" {
		t.Fatalf("shard 3 %+v", s3)
	}
}

func TestShortSeq(t *testing.T) {
	cases := map[string]string{
		longSeq:                "4965...23450034",
		"":                     "",
		"TRIM_HORIZON":         "TRIM_HORIZON",
		"SHARD_END":            "SHARD_END",
		"1234567890123456":     "1234567890123456",
		"12345678901234567890": "1234...34567890",
	}
	for in, want := range cases {
		if got := ShortSeq(in); got != want {
			t.Errorf("ShortSeq(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestHumanDuration(t *testing.T) {
	cases := []struct {
		d    time.Duration
		want string
	}{
		{0, "0ms"},
		{850 * time.Millisecond, "850ms"},
		{12*time.Second + 900*time.Millisecond, "12s"},
		{2*time.Minute + 5*time.Second, "2m05s"},
		{3*time.Hour + 4*time.Minute, "3h04m"},
		{47 * time.Hour, "47h00m"},
		{51 * time.Hour, "2d03h"},
		{-3 * time.Second, "3s"},
	}
	for _, c := range cases {
		if got := HumanDuration(c.d); got != c.want {
			t.Errorf("HumanDuration(%v) = %q, want %q", c.d, got, c.want)
		}
	}
}
