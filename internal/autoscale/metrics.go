package autoscale

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

type metrics struct {
	ticks      *prometheus.CounterVec // result: leader, follower, error
	leader     prometheus.Gauge
	decisions  *prometheus.CounterVec // stream, action
	reshards   *prometheus.CounterVec // stream, direction (out, in), result (ok, error)
	shards     *prometheus.GaugeVec   // stream
	target     *prometheus.GaugeVec   // stream
	util       *prometheus.GaugeVec   // stream
	records    *prometheus.GaugeVec   // stream
	bytes      *prometheus.GaugeVec   // stream
	throttled  *prometheus.GaugeVec   // stream
	callsLeft  *prometheus.GaugeVec   // stream
	maxWorkers prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	g := func(name, help string) *prometheus.GaugeVec {
		return f.NewGaugeVec(prometheus.GaugeOpts{Namespace: "autoscale", Name: name, Help: help}, []string{"stream"})
	}
	return &metrics{
		ticks: f.NewCounterVec(prometheus.CounterOpts{Namespace: "autoscale", Name: "ticks_total",
			Help: "Autoscaler ticks by result: leader (decided), follower (another instance leads), error."}, []string{"result"}),
		leader: f.NewGauge(prometheus.GaugeOpts{Namespace: "autoscale", Name: "leader", Help: "1 while this instance holds the leader lease."}),
		decisions: f.NewCounterVec(prometheus.CounterOpts{Namespace: "autoscale", Name: "decisions_total",
			Help: "Decisions by stream and action (scale-out, scale-in, hold, blocked, watch)."}, []string{"stream", "action"}),
		reshards: f.NewCounterVec(prometheus.CounterOpts{Namespace: "autoscale", Name: "reshards_total",
			Help: "Reshards run, by stream, direction (out, in) and result (ok, error)."}, []string{"stream", "direction", "result"}),
		shards:     g("open_shards", "Open shards of the stream at the last tick."),
		target:     g("target_shards", "Open shards the last decision wanted."),
		util:       g("utilisation", "Write load over capacity over the scale-out window."),
		records:    g("incoming_records_per_second", "IncomingRecords per second over the scale-out window."),
		bytes:      g("incoming_bytes_per_second", "IncomingBytes per second over the scale-out window."),
		throttled:  g("throttled_per_second", "WriteProvisionedThroughputExceeded per second over the scale-out window."),
		callsLeft:  g("calls_left", "Reshard calls left in the rolling 24 h."),
		maxWorkers: f.NewGauge(prometheus.GaugeOpts{Namespace: "autoscale", Name: "fleet_max_workers", Help: "Worker maximum for the open raw shards."}),
	}
}
