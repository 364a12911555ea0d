package checkpoint

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

type metrics struct {
	held          prometheus.Gauge
	suspended     prometheus.Gauge
	suspensions   prometheus.Counter
	acquired      prometheus.Counter
	renewals      *prometheus.CounterVec // result: ok, failed
	lost          *prometheus.CounterVec // reason
	handOffs      prometheus.Counter
	abandoned     prometheus.Counter
	adopted       *prometheus.CounterVec // op: a write whose answer was lost, found landed
	claims        prometheus.Counter
	denied        *prometheus.CounterVec // reason
	checkpoints   *prometheus.CounterVec // result: ok, lease_lost, retried, gave_up, error
	tableRecreate prometheus.Counter
	callErrors    *prometheus.CounterVec // op
	calls         *prometheus.CounterVec // op
}

func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	return &metrics{
		held: f.NewGauge(prometheus.GaugeOpts{
			Name: "checkpoint_leases_held", Help: "Leases this worker holds.",
		}),
		suspended: f.NewGauge(prometheus.GaugeOpts{
			Name: "checkpoint_leases_suspended", Help: "Held leases that ran out locally without a renewal and wait for a fenced write (no output meanwhile).",
		}),
		suspensions: f.NewCounter(prometheus.CounterOpts{
			Name: "checkpoint_lease_suspensions_total", Help: "Times a held lease ran out locally without a renewal (suspended, not lost).",
		}),
		acquired: f.NewCounter(prometheus.CounterOpts{
			Name: "checkpoint_leases_taken_total", Help: "Leases taken by this worker.",
		}),
		renewals: f.NewCounterVec(prometheus.CounterOpts{
			Name: "checkpoint_lease_renewals_total", Help: "Lease renewals by result (ok, failed).",
		}, []string{"result"}),
		lost: f.NewCounterVec(prometheus.CounterOpts{
			Name: "checkpoint_leases_lost_total", Help: "Leases this worker stopped holding, by reason.",
		}, []string{"reason"}),
		handOffs: f.NewCounter(prometheus.CounterOpts{
			Name: "checkpoint_lease_handoffs_total", Help: "Leases handed to peers for balance.",
		}),
		abandoned: f.NewCounter(prometheus.CounterOpts{
			Name: "checkpoint_leases_abandoned_total", Help: "Leases given up because the shard's processor had to stop (Abandon).",
		}),
		adopted: f.NewCounterVec(prometheus.CounterOpts{
			Name: "checkpoint_writes_adopted_total", Help: "Lease writes whose answer was lost (timed out, or resent by the SDK) found landed and adopted, by operation.",
		}, []string{"op"}),
		claims: f.NewCounter(prometheus.CounterOpts{
			Name: "checkpoint_lease_claims_total", Help: "ClaimRequests posted on peers' leases.",
		}),
		denied: f.NewCounterVec(prometheus.CounterOpts{
			Name: "checkpoint_lease_denied_total", Help: "Lease grants refused, by reason.",
		}, []string{"reason"}),
		checkpoints: f.NewCounterVec(prometheus.CounterOpts{
			Name: "checkpoint_writes_total", Help: "Checkpoint write attempts by result (ok, lease_lost, retried: failed transiently and tried again, gave_up: failed transiently past CheckpointRetryBudget, error).",
		}, []string{"result"}),
		tableRecreate: f.NewCounter(prometheus.CounterOpts{
			Name: "checkpoint_table_recreated_total", Help: "Times the lease table was found missing and recreated.",
		}),
		calls: f.NewCounterVec(prometheus.CounterOpts{
			Name: "checkpoint_calls_total", Help: "DynamoDB/Kinesis calls of the lease store, by operation (every outcome; a Scan counts once however many pages).",
		}, []string{"op"}),
		callErrors: f.NewCounterVec(prometheus.CounterOpts{
			Name: "checkpoint_call_errors_total", Help: "Failed DynamoDB/Kinesis calls (not condition failures), by operation.",
		}, []string{"op"}),
	}
}
