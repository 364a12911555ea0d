package forwarder

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

type metrics struct {
	forwarded    prometheus.Counter
	quarantined  *prometheus.CounterVec // reason
	failed       prometheus.Counter
	retries      *prometheus.CounterVec // stream
	throttles    *prometheus.CounterVec // stream
	batchRecords *prometheus.HistogramVec
	putSeconds   *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	return &metrics{
		forwarded: f.NewCounter(prometheus.CounterOpts{
			Namespace: "forwarder", Name: "forwarded_total",
			Help: "Events written to the raw stream.",
		}),
		quarantined: f.NewCounterVec(prometheus.CounterOpts{
			Namespace: "forwarder", Name: "quarantined_total",
			Help: "Events written to the quarantine stream, by reason.",
		}, []string{"reason"}),
		failed: f.NewCounter(prometheus.CounterOpts{
			Namespace: "forwarder", Name: "failed_total",
			Help: "Events neither forwarded nor quarantined (retries exhausted, fatal error or cancelled).",
		}),
		retries: f.NewCounterVec(prometheus.CounterOpts{
			Namespace: "forwarder", Name: "put_retries_total",
			Help: "PutRecords entries sent again after a failed attempt.",
		}, []string{"stream"}),
		throttles: f.NewCounterVec(prometheus.CounterOpts{
			Namespace: "forwarder", Name: "put_throttles_total",
			Help: "PutRecords entries refused for throughput (per entry, or every entry of a throttled call).",
		}, []string{"stream"}),
		batchRecords: f.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "forwarder", Name: "batch_records",
			Help:    "Records per PutRecords call.",
			Buckets: []float64{1, 5, 10, 25, 50, 100, 200, 300, 400, 500},
		}, []string{"stream"}),
		putSeconds: f.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "forwarder", Name: "put_seconds",
			Help:    "PutRecords call latency.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 10),
		}, []string{"stream"}),
	}
}
