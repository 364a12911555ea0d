package worker

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// stallLimit is how long a held shard may go without completing a batch before /readyz fails. The
// consumer calls the processor at least every IdleTime even when the shard is empty, so only a
// blocked pipeline (a destination down beyond the breaker hold, DynamoDB unreachable) trips it.
const stallLimit = 60 * time.Second

func (w *Worker) handler(reg *prometheus.Registry) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("/healthz", func(rw http.ResponseWriter, _ *http.Request) {
		rw.Header().Set("Content-Type", "text/plain")
		fmt.Fprintln(rw, "ok")
	})
	mux.HandleFunc("/readyz", func(rw http.ResponseWriter, r *http.Request) {
		status, body := w.ready(r.Context())
		rw.Header().Set("Content-Type", "application/json")
		rw.WriteHeader(status)
		_ = json.NewEncoder(rw).Encode(body)
	})
	return mux
}

type readiness struct {
	Ready    bool                  `json:"ready"`
	Problems []string              `json:"problems,omitempty"`
	Shards   map[string]shardReady `json:"shards"`
	// Stopped lists the shards whose processor had to stop on this worker (their leases were
	// released for a peer): a problem until a worker holds them again, then listed with taken_by
	// for stoppedKeep more, so an operator still sees what moved away and why.
	Stopped map[string]stoppedShard `json:"stopped,omitempty"`
}

type shardReady struct {
	Held               int    `json:"held"`
	MillisBehindLatest int64  `json:"millis_behind_latest"`
	LastProgress       string `json:"last_progress"`
}

// ready checks dependencies (the lease table and the raw stream answer), that no held shard is
// stalled, and that no shard this worker stopped waits for a new owner: a stopped shard counts
// until the lease table shows an owner again (a peer, or this worker once it took it back); taken
// by a peer, it stays listed (not a problem) for stoppedKeep.
func (w *Worker) ready(ctx context.Context) (int, readiness) {
	ctx, cancel := context.WithTimeout(ctx, w.cfg.CallTimeout)
	defer cancel()
	out := readiness{Shards: map[string]shardReady{}}
	if err := w.leases.Healthy(); err != nil {
		out.Problems = append(out.Problems, "lease table: "+err.Error())
	}
	if _, err := w.kc.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(w.cfg.Stream)}); err != nil {
		out.Problems = append(out.Problems, "raw stream: "+err.Error())
	}
	stalled := w.shards.stalled(stallLimit)
	sort.Strings(stalled)
	for _, id := range stalled {
		out.Problems = append(out.Problems, "shard "+id+" made no progress for over "+stallLimit.String())
	}
	stopped := w.shards.stoppedShards()
	ids := make([]string, 0, len(stopped))
	for id := range stopped {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		st := stopped[id]
		if st.TakenBy == "" {
			if row, err := w.leases.Read(ctx, id); err == nil && row != nil && row.Owner != "" {
				st = w.shards.takenBy(id, row.Owner)
			}
		}
		if st.TakenBy != "" && w.shards.now().Sub(st.At) > stoppedKeep {
			w.shards.clearStopped(id)
			continue
		}
		if out.Stopped == nil {
			out.Stopped = map[string]stoppedShard{}
		}
		out.Stopped[id] = st
		if st.TakenBy != "" {
			continue
		}
		out.Problems = append(out.Problems, "shard "+id+" stopped at "+stopped[id].At.UTC().Format(time.RFC3339)+
			" and released for a peer, not taken since: "+stopped[id].Reason)
	}
	for id, s := range w.shards.snapshot() {
		out.Shards[id] = shardReady{Held: s.held, MillisBehindLatest: s.behindMs, LastProgress: s.lastProgress.UTC().Format(time.RFC3339)}
	}
	out.Ready = len(out.Problems) == 0
	if !out.Ready {
		return http.StatusServiceUnavailable, out
	}
	return http.StatusOK, out
}
