package worker

import (
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
	}
}

// monitor implements the KCL's MonitoringService on our Prometheus metrics.
type monitor struct {
	m      *metrics
	shards *shardRegistry
}

func (*monitor) Init(_, _, _ string) error { return nil }
func (*monitor) Start() error              { return nil }
func (*monitor) Shutdown()                 {}
func (o *monitor) IncrRecordsProcessed(shard string, n int) {
	o.m.recordsRead.WithLabelValues(shard).Add(float64(n))
}
func (*monitor) IncrBytesProcessed(string, int64) {}
func (o *monitor) MillisBehindLatest(shard string, ms float64) {
	o.m.millisBehind.WithLabelValues(shard).Set(ms)
}
func (o *monitor) DeleteMetricMillisBehindLatest(shard string) {
	o.m.millisBehind.DeleteLabelValues(shard)
}
func (o *monitor) LeaseGained(string)  { o.m.leases.WithLabelValues("gained").Inc() }
func (o *monitor) LeaseLost(string)    { o.m.leases.WithLabelValues("released").Inc() }
func (o *monitor) LeaseRenewed(string) { o.m.leases.WithLabelValues("renewed").Inc() }
func (o *monitor) RecordGetRecordsTime(shard string, ms float64) {
	o.m.getRecordsMs.WithLabelValues(shard).Observe(ms)
}
func (o *monitor) RecordProcessRecordsTime(shard string, ms float64) {
	o.m.processMs.WithLabelValues(shard).Observe(ms)
}
