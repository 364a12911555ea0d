package faultproxy

import (
	"encoding/json"
	"net/http"
	"sort"
	"strconv"
	"sync"
	"time"
)

// LoadPath is where the proxy serves its load samples (GET, on its own address): the AWS SDKs
// only POST to "/", so the path never meets a Kinesis call.
const LoadPath = "/faultproxy/load"

// Sample is one second of a stream's write load, counted the way CloudWatch counts the stream
// metrics of the same names: records and bytes (data plus partition key) that were written
// (IncomingRecords, IncomingBytes), and entries refused for throughput, by the proxy's limits, a
// FailEntries rule or the emulator (WriteProvisionedThroughputExceeded).
type Sample struct {
	At        int64 `json:"t"` // Unix second the sample covers
	Records   int64 `json:"incoming_records"`
	Bytes     int64 `json:"incoming_bytes"`
	Throttled int64 `json:"throttled"`
}

// LoadReport is the per-second load of every stream written through the proxy since a time.
type LoadReport struct {
	Now     time.Time           `json:"now"`
	Streams map[string][]Sample `json:"streams"` // seconds without writes are left out; sorted by At
}

// loadBook keeps the per-second samples of each stream for a bounded history.
type loadBook struct {
	mu      sync.Mutex
	history time.Duration
	streams map[string]map[int64]*Sample
}

func newLoadBook(history time.Duration) *loadBook {
	return &loadBook{history: history, streams: map[string]map[int64]*Sample{}}
}

func (b *loadBook) add(now time.Time, stream string, records, bytes, throttled int64) {
	if stream == "" || records == 0 && bytes == 0 && throttled == 0 {
		return
	}
	sec := now.Unix()
	b.mu.Lock()
	defer b.mu.Unlock()
	m := b.streams[stream]
	if m == nil {
		m = map[int64]*Sample{}
		b.streams[stream] = m
	}
	s := m[sec]
	if s == nil {
		s = &Sample{At: sec}
		m[sec] = s
		// Prune once per new second of this stream.
		oldest := now.Add(-b.history).Unix()
		for t := range m {
			if t < oldest {
				delete(m, t)
			}
		}
	}
	s.Records += records
	s.Bytes += bytes
	s.Throttled += throttled
}

func (b *loadBook) since(now, from time.Time) LoadReport {
	b.mu.Lock()
	defer b.mu.Unlock()
	rep := LoadReport{Now: now, Streams: map[string][]Sample{}}
	for name, m := range b.streams {
		var out []Sample
		for t, s := range m {
			if t >= from.Unix() {
				out = append(out, *s)
			}
		}
		if len(out) == 0 {
			continue
		}
		sort.Slice(out, func(i, j int) bool { return out[i].At < out[j].At })
		rep.Streams[name] = out
	}
	return rep
}

// Load returns the per-second write load of every stream since from (at most the proxy's
// LoadHistory back).
func (p *Proxy) Load(from time.Time) LoadReport { return p.load.since(p.cfg.Now(), from) }

// serveLoad answers GET LoadPath?since=<Unix seconds> (default: the whole history) with a
// LoadReport in JSON.
func (p *Proxy) serveLoad(rw http.ResponseWriter, r *http.Request) {
	now := p.cfg.Now()
	from := now.Add(-p.cfg.LoadHistory)
	if s := r.URL.Query().Get("since"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			http.Error(rw, "since: want Unix seconds", http.StatusBadRequest)
			return
		}
		from = time.Unix(n, 0)
	}
	rw.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(rw).Encode(p.load.since(now, from)) // a client gone mid-answer is not ours to report
}
