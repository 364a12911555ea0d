package processors

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"go.uber.org/zap"
)

type metrics struct {
	recordsIn      prometheus.Counter
	recordsOut     *prometheus.CounterVec // stream, type
	quarantined    *prometheus.CounterVec // reason
	deadLettered   *prometheus.CounterVec // reason
	dedupeHits     *prometheus.CounterVec // level (l1, inflight, l2), kind (natural, conflicting)
	quarReplays    prometheus.Counter
	stateMissing   prometheus.Counter
	stateExpired   prometheus.Counter
	stateSnapshots prometheus.Counter
	writeUnits     prometheus.Counter
	readUnits      prometheus.Counter
	dedupeCalls    *prometheus.CounterVec // op (get, put): round trips
	dedupeKeys     *prometheus.CounterVec // op: keys read / items written
	dedupeErrors   *prometheus.CounterVec // op
	held           prometheus.Gauge
	holdSeconds    prometheus.Histogram     // stream time each released event waited in its reorder buffer
	stageSeconds   *prometheus.HistogramVec // stage: wall time of each batch's stage
	gaps           prometheus.Counter
	gapSeqs        prometheus.Counter
	late           prometheus.Counter
	breakerState   *prometheus.GaugeVec   // stream: 0 closed, 1 half-open, 2 open
	putCalls       *prometheus.CounterVec // stream
	putRetries     *prometheus.CounterVec // stream: entries sent again after a failure
	putThrottles   *prometheus.CounterVec // stream: entries refused with ProvisionedThroughputExceeded
	putErrors      *prometheus.CounterVec // stream: calls that failed as a whole or were refused by the breaker
	putUnknown     *prometheus.CounterVec // stream: records sent in attempts whose outcome is unknown, once per attempt
	putAggregated  *prometheus.CounterVec // stream: records sent inside KPL aggregates, every attempt
}

func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	return &metrics{
		recordsIn: f.NewCounter(prometheus.CounterOpts{Name: "pipeline_records_in_total",
			Help: "Raw records received by the pipeline."}),
		recordsOut: f.NewCounterVec(prometheus.CounterOpts{Name: "pipeline_records_out_total",
			Help: "Events written to an analytics or late stream, by stream and event type."}, []string{"stream", "type"}),
		quarantined: f.NewCounterVec(prometheus.CounterOpts{Name: "pipeline_quarantined_total",
			Help: "Records quarantined, by reason code."}, []string{"reason"}),
		deadLettered: f.NewCounterVec(prometheus.CounterOpts{Name: "pipeline_dead_lettered_total",
			Help: "Records written to the DLQ, by reason."}, []string{"reason"}),
		dedupeHits: f.NewCounterVec(prometheus.CounterOpts{Name: "pipeline_dedupe_hits_total",
			Help: "Duplicates found, by level (inflight, l1, state) and kind (natural, conflicting, unverified: a copy behind its customer's last delivered seq, dropped without comparing content)."}, []string{"level", "kind"}),
		quarReplays: f.NewCounter(prometheus.CounterOpts{Name: "pipeline_quarantine_replays_total",
			Help: "Records read again (after a lease moved) that were already quarantined: not written again."}),
		stateMissing: f.NewCounter(prometheus.CounterOpts{Name: "pipeline_state_chunks_missing_total",
			Help: "State snapshot chunks listed by a manifest but not found (expired or lost): the customers in them start over."}),
		stateExpired: f.NewCounter(prometheus.CounterOpts{Name: "pipeline_state_customers_expired_total",
			Help: "Customers whose dedupe state was dropped because their last event is older than the dedupe horizon."}),
		stateSnapshots: f.NewCounter(prometheus.CounterOpts{Name: "pipeline_state_snapshots_total",
			Help: "Snapshots of shard state written (compactions, and the first state of a new shard)."}),
		writeUnits: f.NewCounter(prometheus.CounterOpts{Name: "pipeline_dedupe_write_units_total",
			Help: "DynamoDB write units the dedupe table's writes cost: one per started kilobyte of each item written."}),
		readUnits: f.NewCounter(prometheus.CounterOpts{Name: "pipeline_dedupe_read_units_total",
			Help: "DynamoDB read units the dedupe table's strongly consistent reads cost: one per started 4 KB of each item found."}),
		dedupeCalls: f.NewCounterVec(prometheus.CounterOpts{Name: "pipeline_dedupe_round_trips_total",
			Help: "Round trips to the level-2 dedupe store, by operation (get, put)."}, []string{"op"}),
		dedupeKeys: f.NewCounterVec(prometheus.CounterOpts{Name: "pipeline_dedupe_keys_total",
			Help: "Keys read (get) or items written (put) in the level-2 dedupe store."}, []string{"op"}),
		dedupeErrors: f.NewCounterVec(prometheus.CounterOpts{Name: "pipeline_dedupe_errors_total",
			Help: "Failed level-2 dedupe store calls (retried), by operation."}, []string{"op"}),
		held: f.NewGauge(prometheus.GaugeOpts{Name: "pipeline_reorder_held",
			Help: "Events held in reorder buffers, all shards of this process."}),
		holdSeconds: f.NewHistogram(prometheus.HistogramOpts{Name: "pipeline_reorder_hold_seconds",
			Help:    "Stream time each event waited in its reorder buffer before release (0 for an event released as it came), all shards of this process.",
			Buckets: []float64{0, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60}}),
		stageSeconds: f.NewHistogramVec(prometheus.HistogramOpts{Name: "pipeline_stage_seconds",
			Help:    "Wall time of each stage of each batch (verify, dedupe, reorder, route, quarantine, write, mark), all shards of this process: where a slow batch spends it.",
			Buckets: []float64{0.001, 0.005, 0.025, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}}, []string{"stage"}),
		gaps: f.NewCounter(prometheus.CounterOpts{Name: "pipeline_reorder_gaps_total",
			Help: "Events released with a gap before them (window passed or buffer bound)."}),
		gapSeqs: f.NewCounter(prometheus.CounterOpts{Name: "pipeline_reorder_gap_seqs_total",
			Help: "Sequence numbers skipped by gaps (at most 1,048,576 counted per gap: a larger jump is a producer's, not that many missing events)."}),
		late: f.NewCounter(prometheus.CounterOpts{Name: "pipeline_late_events_total",
			Help: "Events released after a later seq of their customer (Late=true)."}),
		breakerState: f.NewGaugeVec(prometheus.GaugeOpts{Name: "pipeline_breaker_state",
			Help: "Circuit breaker state per destination stream: 0 closed, 1 half-open, 2 open."}, []string{"stream"}),
		putCalls: f.NewCounterVec(prometheus.CounterOpts{Name: "pipeline_put_calls_total",
			Help: "PutRecords calls, by destination stream."}, []string{"stream"}),
		putRetries: f.NewCounterVec(prometheus.CounterOpts{Name: "pipeline_put_retries_total",
			Help: "Records sent again after a failed attempt (each inside an aggregate counted), by destination stream."}, []string{"stream"}),
		putThrottles: f.NewCounterVec(prometheus.CounterOpts{Name: "pipeline_put_throttles_total",
			Help: "Records throttled (ProvisionedThroughputExceeded; each inside an aggregate counted), by destination stream."}, []string{"stream"}),
		putErrors: f.NewCounterVec(prometheus.CounterOpts{Name: "pipeline_put_errors_total",
			Help: "PutRecords calls that failed whole, or were refused by an open breaker, by destination stream."}, []string{"stream"}),
		putUnknown: f.NewCounterVec(prometheus.CounterOpts{Name: "pipeline_put_unknown_outcome_total",
			Help: "Records sent in a PutRecords attempt whose outcome is unknown (a 200 cut off, a 5xx, no answer), once per such attempt: the most byte-identical extra copies the writes can have left in the stream, by destination stream."}, []string{"stream"}),
		putAggregated: f.NewCounterVec(prometheus.CounterOpts{Name: "pipeline_put_aggregated_records_total",
			Help: "Records sent inside KPL aggregates (AGGREGATE_KEYS), every attempt, by destination stream."}, []string{"stream"}),
	}
}

func zapShard(id string) zap.Field    { return zap.String("shard", id) }
func zapErr(err error) zap.Field      { return zap.Error(err) }
func zapAttempt(n int) zap.Field      { return zap.Int("attempt", n) }
func zapStream(name string) zap.Field { return zap.String("stream", name) }
