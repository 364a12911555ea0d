package kclctl

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/kinesis-events/pipeline/internal/autoscale"
)

func TestRenderAutoscaleStatus(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 10, 0, 0, time.UTC)
	out := autoscale.Decision{At: now.Add(-5 * time.Minute), Stream: "events-raw", Action: autoscale.ActionOut, From: 2, To: 4,
		Reason: "utilisation 3.10 > 0.80: 2 -> 4 shards", Applied: true, Method: "split-merge", TookMS: 640,
		Load: autoscale.Load{Records: 620, Bytes: 620 * 900, Throttled: 410}, Util: 3.1}
	failed := autoscale.Decision{At: now.Add(-time.Minute), Stream: "analytics-page_view", Action: autoscale.ActionOut, From: 1, To: 2,
		Reason: "utilisation 1.20 > 0.80", Error: "LimitExceededException"}
	hold := autoscale.Decision{At: now.Add(-3 * time.Second), Stream: "events-raw", Action: autoscale.ActionHold, From: 4, To: 4,
		Load: autoscale.Load{Records: 180, Bytes: 180 * 900}, Util: 0.45}
	r := AutoscaleStatus{Table: "kcl-leases", At: now,
		Leader: &AutoscaleLeader{Leader: autoscale.Leader{ID: "vm-4242", Until: now.Add(12 * time.Second), Since: now.Add(-time.Hour)}, Live: true},
		Fleet:  &autoscale.Fleet{At: now.Add(-5 * time.Minute), OpenShards: 4, Workers: 2},
		Streams: []AutoscaleStreamRow{
			{Stream: "analytics-page_view", Mode: "provisioned", Status: "ACTIVE", OpenShards: 1, Last: &failed, CallsLeft: 9},
			{Stream: "events-raw", Mode: "provisioned", Status: "ACTIVE", OpenShards: 4, Last: &hold, CallsLeft: 9},
		},
		Recent: []autoscale.Decision{failed, out},
		Warns:  []Warning{{Kind: WarnReshardFailed, Message: "analytics-page_view: 1 -> 2 failed: LimitExceededException"}},
	}
	var b bytes.Buffer
	if err := RenderAutoscaleStatus(&b, r); err != nil {
		t.Fatal(err)
	}
	got := b.String()
	for _, want := range []string{
		"STREAM               MODE         STATUS  SHARDS  RECORDS/S  BYTES/S  THROTTLED/S  UTIL  LAST DECISION        CALLS LEFT (24H)",
		"events-raw           provisioned  ACTIVE  4       180.0      158.2Ki  0.0          0.45  hold 3s ago          9",
		"leader: vm-4242, lease ends in 12s (leading since 2026-11-27T11:10:00Z)",
		"fleet: 4 live raw shards -> 2 workers",
		"2026-11-27T12:05:00.000Z  events-raw           scale-out  2     4   ok (split-merge)               640ms  utilisation 3.10 > 0.80: 2 -> 4 shards",
		"error: LimitExceededException",
		"reshard_failed",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
}
