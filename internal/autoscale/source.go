package autoscale

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/kinesis-events/pipeline/internal/faultproxy"
)

// Window is the write load of some streams over [From, To), in periods.
type Window struct {
	From, To time.Time
	// Samples by stream; a period without a sample had no writes.
	Samples map[string][]Sample
}

// Source gives the write load of streams. To of the answer may be earlier than asked: the end of
// the last period the source knows complete.
type Source interface {
	Load(ctx context.Context, streams []string, from, to time.Time) (Window, error)
}

// ProxyLoad reads the load the local fault proxy counts (GET faultproxy.LoadPath): per second,
// for every writer that goes through the proxy, the way CloudWatch counts it. It is the local
// stand-in for CloudWatch because it sees what Kinesis sees: the forwarder's writes to the raw
// stream as much as the workers' to the output streams, and the throttled entries of all of them,
// which no single process's metrics do (and a killed worker's counters die with it).
type ProxyLoad struct {
	URL    string // the proxy's base URL, e.g. http://127.0.0.1:41234
	Client *http.Client
}

// Load implements Source.
func (s ProxyLoad) Load(ctx context.Context, streams []string, from, to time.Time) (Window, error) {
	c := s.Client
	if c == nil {
		c = &http.Client{Timeout: 10 * time.Second}
	}
	u := strings.TrimRight(s.URL, "/") + faultproxy.LoadPath + "?since=" + strconv.FormatInt(from.Unix(), 10)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return Window{}, fmt.Errorf("proxy load: %w", err)
	}
	resp, err := c.Do(req)
	if err != nil {
		return Window{}, fmt.Errorf("proxy load: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return Window{}, fmt.Errorf("proxy load: %s", resp.Status)
	}
	var rep faultproxy.LoadReport
	if err := json.NewDecoder(resp.Body).Decode(&rep); err != nil {
		return Window{}, fmt.Errorf("proxy load: %w", err)
	}
	// The current second is still being counted.
	end := rep.Now.Truncate(time.Second)
	if to.Before(end) {
		end = to.Truncate(time.Second)
	}
	w := Window{From: from, To: end, Samples: map[string][]Sample{}}
	for _, name := range streams {
		for _, x := range rep.Streams[name] {
			at := time.Unix(x.At, 0)
			if at.Before(from) || !at.Before(end) {
				continue
			}
			w.Samples[name] = append(w.Samples[name], Sample{At: at, Period: time.Second,
				Records: float64(x.Records), Bytes: float64(x.Bytes), Throttled: float64(x.Throttled)})
		}
	}
	return w, nil
}
