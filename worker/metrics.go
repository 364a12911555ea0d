package worker

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

type metrics struct {
	millisBehind *prometheus.GaugeVec
	leases       *prometheus.CounterVec
	shardStops   *prometheus.CounterVec
	getRecordsMs *prometheus.HistogramVec
	processMs    *prometheus.HistogramVec
	recordsRead  *prometheus.CounterVec
	recordAge    prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	ms := []float64{5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000}
	return &metrics{
		millisBehind: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "kcl_millis_behind_latest", Help: "MillisBehindLatest of the last GetRecords, per shard held by this worker.",
		}, []string{"shard"}),
		leases: f.NewCounterVec(prometheus.CounterOpts{
			Name: "kcl_lease_events_total", Help: "Lease events seen by the KCL consumer: gained, renewed, lost.",
		}, []string{"event"}),
		shardStops: f.NewCounterVec(prometheus.CounterOpts{
			Name: "worker_shard_stops_total", Help: "Shards whose processing stopped early (lease lost or shutdown deadline), by the step that noticed.",
		}, []string{"during"}),
		getRecordsMs: f.NewHistogramVec(prometheus.HistogramOpts{
			Name: "kcl_get_records_ms", Help: "GetRecords latency in milliseconds.", Buckets: ms,
		}, []string{"shard"}),
		processMs: f.NewHistogramVec(prometheus.HistogramOpts{
			Name: "worker_process_batch_ms", Help: "Time to run one GetRecords batch through the pipeline, in milliseconds.", Buckets: ms,
		}, []string{"shard"}),
		recordsRead: f.NewCounterVec(prometheus.CounterOpts{
			Name: "kcl_records_read_total", Help: "Records read from the raw stream, per shard.",
		}, []string{"shard"}),
		recordAge: f.NewHistogram(prometheus.HistogramOpts{
			Name:    "worker_batch_record_age_ms",
			Help:    "Age of each batch's oldest record (now - its ApproximateArrivalTimestamp) as the batch starts, in milliseconds, all shards of this worker: how long records wait in the raw shard to be read and processed, which MillisBehindLatest does not show where it is always 0 (kinesalite).",
			Buckets: []float64{100, 250, 500, 1000, 2500, 5000, 10000, 20000, 30000, 60000},
		}),
	}
}

// monitor implements the KCL's MonitoringService on our Prometheus metrics. It also follows each
// shard's batches (batches) for worker_checkpoint_age_seconds, and hands every shard's
// MillisBehindLatest to behind, when set (the lease store publishes it in the lease row).
type monitor struct {
	m       *metrics
	shards  *shardRegistry
	batches *batchTracker
	behind  func(shard string, ms int64)
}

func (*monitor) Init(_, _, _ string) error { return nil }
func (*monitor) Start() error              { return nil }
func (*monitor) Shutdown()                 {}

// The KCL calls, per GetRecords: RecordGetRecordsTime, the processor's ProcessRecords,
// RecordProcessRecordsTime, IncrRecordsProcessed, IncrBytesProcessed, MillisBehindLatest.
func (o *monitor) IncrRecordsProcessed(shard string, n int) {
	o.m.recordsRead.WithLabelValues(shard).Add(float64(n))
	o.batches.records(shard, n)
}
func (*monitor) IncrBytesProcessed(string, int64) {}
func (o *monitor) MillisBehindLatest(shard string, ms float64) {
	o.m.millisBehind.WithLabelValues(shard).Set(ms)
	o.batches.end(shard, int64(ms))
	if o.behind != nil {
		o.behind(shard, int64(ms))
	}
}
func (o *monitor) DeleteMetricMillisBehindLatest(shard string) {
	o.m.millisBehind.DeleteLabelValues(shard)
	o.batches.forget(shard)
}
func (o *monitor) LeaseGained(string)  { o.m.leases.WithLabelValues("gained").Inc() }
func (o *monitor) LeaseLost(string)    { o.m.leases.WithLabelValues("released").Inc() }
func (o *monitor) LeaseRenewed(string) { o.m.leases.WithLabelValues("renewed").Inc() }
func (o *monitor) RecordGetRecordsTime(shard string, ms float64) {
	o.m.getRecordsMs.WithLabelValues(shard).Observe(ms)
	o.batches.begin(shard, time.Duration(ms*float64(time.Millisecond)))
}
func (o *monitor) RecordProcessRecordsTime(shard string, ms float64) {
	o.m.processMs.WithLabelValues(shard).Observe(ms)
}

// batchTracker follows each shard's batches as the KCL reports them, to tell a caught-up shard
// (its last batch was empty at MillisBehindLatest 0) from one with records waiting, and since
// when they have been waiting.
type batchTracker struct {
	mu     sync.Mutex
	now    func() time.Time
	shards map[string]*batchState
}

type batchState struct {
	inFlight   bool
	batchStart time.Time // GetRecords start of the batch in flight or last completed
	lastN      int
	// pending is when records started waiting after the shard was last caught up; zero while
	// caught up.
	pending time.Time
}

func newBatchTracker(now func() time.Time) *batchTracker {
	return &batchTracker{now: now, shards: map[string]*batchState{}}
}

func (b *batchTracker) state(shard string) *batchState {
	s := b.shards[shard]
	if s == nil {
		s = &batchState{}
		b.shards[shard] = s
	}
	return s
}

// begin: a GetRecords that took getRecords returned and its batch goes to the processor.
func (b *batchTracker) begin(shard string, getRecords time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.state(shard)
	s.inFlight, s.batchStart, s.lastN = true, b.now().Add(-getRecords), 0
}

func (b *batchTracker) records(shard string, n int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.state(shard).lastN = n
}

// end: the batch went through the processor; behindMs is its MillisBehindLatest.
func (b *batchTracker) end(shard string, behindMs int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.state(shard)
	s.inFlight = false
	switch {
	case s.lastN == 0 && behindMs == 0:
		s.pending = time.Time{}
	case s.pending.IsZero():
		s.pending = s.batchStart
	}
}

func (b *batchTracker) forget(shard string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.shards, shard)
}

func (b *batchTracker) get(shard string) (batchState, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	s, ok := b.shards[shard]
	if !ok {
		return batchState{}, false
	}
	return *s, true
}

// shardCollector reports, at scrape time, per shard this worker processes:
//
//	worker_checkpoint_age_seconds: how long records have waited behind the shard's checkpoint:
//	  seconds since the checkpoint last advanced or since records started waiting after the shard
//	  was caught up, whichever is later; 0 while the shard is caught up (its last batch was empty at
//	  MillisBehindLatest 0 and nothing is held for reordering). It grows while a batch is blocked (a
//	  destination down, DynamoDB unreachable) or events wait in a reorder gap.
//	worker_shard_progress_age_seconds: seconds since the shard's processor last completed a batch
//	  (the consumer completes one at least every idle time even when the shard is empty); /readyz
//	  fails above its stall limit.
//	worker_shard_stopped: 1 for a shard whose processor had to stop here (its lease was released for
//	  a peer), until a worker holds it again (checked by /readyz); /readyz fails meanwhile.
//
// Computed when scraped, so a batch that never returns still shows its age growing.
type shardCollector struct {
	shards      *shardRegistry
	batches     *batchTracker
	checkpoint  *prometheus.Desc
	progressAge *prometheus.Desc
	stopped     *prometheus.Desc
}

func newShardCollector(shards *shardRegistry, batches *batchTracker) *shardCollector {
	return &shardCollector{
		shards:  shards,
		batches: batches,
		checkpoint: prometheus.NewDesc("worker_checkpoint_age_seconds",
			"How long records have waited behind the shard's checkpoint, in seconds; 0 while the shard is caught up.", []string{"shard"}, nil),
		progressAge: prometheus.NewDesc("worker_shard_progress_age_seconds",
			"Seconds since the shard's processor last completed a batch.", []string{"shard"}, nil),
		stopped: prometheus.NewDesc("worker_shard_stopped",
			"1 for a shard whose processor had to stop on this worker (lease released for a peer), until a worker holds it again.", []string{"shard"}, nil),
	}
}

func (c *shardCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.checkpoint
	ch <- c.progressAge
	ch <- c.stopped
}

func (c *shardCollector) Collect(ch chan<- prometheus.Metric) {
	now := c.shards.now()
	for id, s := range c.shards.snapshot() {
		b, read := c.batches.get(id)
		ch <- prometheus.MustNewConstMetric(c.checkpoint, prometheus.GaugeValue, checkpointAge(s, b, read, now).Seconds(), id)
		ch <- prometheus.MustNewConstMetric(c.progressAge, prometheus.GaugeValue, max(now.Sub(s.lastProgress), 0).Seconds(), id)
	}
	for id, s := range c.shards.stoppedShards() {
		if s.TakenBy != "" {
			continue // a peer holds it: nothing waits
		}
		ch <- prometheus.MustNewConstMetric(c.stopped, prometheus.GaugeValue, 1, id)
	}
}

// checkpointAge is the checkpoint age of one shard as of now (see shardCollector); read is false
// until the shard's first GetRecords has returned.
func checkpointAge(s shardState, b batchState, read bool, now time.Time) time.Duration {
	if read && !b.inFlight && b.pending.IsZero() && s.held == 0 {
		return 0
	}
	since := s.lastCheckpoint
	if since.IsZero() {
		since = s.started
	}
	waiting := b.pending
	if waiting.IsZero() && b.inFlight {
		waiting = b.batchStart
	}
	if waiting.After(since) {
		since = waiting
	}
	return max(now.Sub(since), 0)
}
