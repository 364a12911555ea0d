package worker

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kinesis-events/pipeline/checkpoint"
	"github.com/kinesis-events/pipeline/internal/localstack/localstacktest"
	"github.com/kinesis-events/pipeline/internal/poll"
)

// TestReadyz checks /healthz and /readyz against the emulators: ready while the lease table and the
// raw stream answer and every shard makes progress; not ready (503, with the reason) when a shard
// stalls past the limit or the raw stream is gone.
func TestReadyz(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the local emulators")
	}
	st := localstacktest.Start(t)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if err := st.CreateStream(ctx, "ready-raw", 1); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	clock := func() time.Time { return now }
	store, err := checkpoint.New(ctx, checkpoint.Config{Table: "ready-leases", WorkerID: "w1", Stream: "ready-raw", Now: clock}, st.DynamoDB(), st.Kinesis())
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	if err := store.Init(ctx); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	w := &Worker{
		cfg:     Config{Stream: "ready-raw", CallTimeout: 3 * time.Second},
		leases:  store,
		shards:  &shardRegistry{now: clock, shards: map[string]*shardState{}},
		metrics: newMetrics(reg),
		kc:      st.Kinesis(),
	}
	srv := httptest.NewServer(w.handler(reg))
	defer srv.Close()
	get := func(path string) (int, readiness) {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var r readiness
		if path == "/readyz" {
			if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
				t.Fatal(err)
			}
		}
		return resp.StatusCode, r
	}

	if code, _ := get("/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz = %d", code)
	}
	w.shards.start("shardId-000000000000")
	w.shards.behind("shardId-000000000000", 1500)
	if code, r := get("/readyz"); code != http.StatusOK || !r.Ready || r.Shards["shardId-000000000000"].MillisBehindLatest != 1500 {
		t.Fatalf("/readyz = %d %+v, want 200 ready", code, r)
	}

	now = now.Add(stallLimit + time.Second) // no batch completed since
	code, r := get("/readyz")
	if code != http.StatusServiceUnavailable || r.Ready || len(r.Problems) != 1 || !strings.Contains(r.Problems[0], "shardId-000000000000 made no progress") {
		t.Fatalf("stalled shard: /readyz = %d %+v", code, r)
	}
	w.shards.progress("shardId-000000000000", 0)
	if code, r := get("/readyz"); code != http.StatusOK {
		t.Fatalf("after progress: /readyz = %d %+v", code, r)
	}

	// A shard whose processor had to stop (lease released for a peer) fails readiness, with its
	// id, until a worker holds it again.
	w.shards.markStopped("shardId-000000000000", "checkpoint: access denied")
	code, r = get("/readyz")
	if code != http.StatusServiceUnavailable || len(r.Problems) != 1 || !strings.Contains(r.Problems[0], "shardId-000000000000 stopped") ||
		r.Stopped["shardId-000000000000"].Reason != "checkpoint: access denied" {
		t.Fatalf("stopped shard: /readyz = %d %+v", code, r)
	}
	if acq, err := store.Acquire(ctx, "shardId-000000000000"); err != nil || !acq.Acquired {
		t.Fatalf("a worker takes the stopped shard: %+v %v", acq, err)
	}
	// Taken (here by the test's store), it is no problem any more but stays listed, with the
	// worker that took it, for stoppedKeep.
	if code, r := get("/readyz"); code != http.StatusOK || len(r.Problems) != 0 || r.Stopped["shardId-000000000000"].TakenBy == "" ||
		r.Stopped["shardId-000000000000"].Reason != "checkpoint: access denied" {
		t.Fatalf("stopped shard taken again: /readyz = %d %+v, want 200 with the stop listed and taken_by", code, r)
	}
	now = now.Add(stoppedKeep + time.Second)
	w.shards.progress("shardId-000000000000", 0)
	if code, r := get("/readyz"); code != http.StatusOK || len(r.Stopped) != 0 {
		t.Fatalf("stopped shard taken %v ago: /readyz = %d %+v, want it no longer listed", stoppedKeep, code, r)
	}

	if _, err := st.Kinesis().DeleteStream(ctx, &kinesis.DeleteStreamInput{StreamName: aws.String("ready-raw")}); err != nil {
		t.Fatal(err)
	}
	// Deleting takes a moment on the emulator; readiness must fail once the stream is gone.
	poll.Until(t, 30*time.Second, 100*time.Millisecond, "/readyz failing after the raw stream was deleted", func() (bool, string) {
		code, r = get("/readyz")
		return code == http.StatusServiceUnavailable, fmt.Sprintf("/readyz %d %+v", code, r)
	})
	if len(r.Problems) != 1 || !strings.HasPrefix(r.Problems[0], "raw stream: ") {
		t.Fatalf("problems %q, want the raw stream", r.Problems)
	}
}
