package forwarder

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
)

// EMF settings the command reads on the Lambda path.
const (
	// EnvMetricsNamespace names the CloudWatch namespace of the forwarder's metrics.
	EnvMetricsNamespace = "FORWARDER_METRICS_NAMESPACE"
	// DefaultMetricsNamespace is used when EnvMetricsNamespace is unset.
	DefaultMetricsNamespace = "KinesisEventsPipeline"
	// EnvMetricsEvery is how long an execution environment may gather the counts of invocations
	// that forwarded their event cleanly before it writes them in one line (a Go duration; "0":
	// one line per invocation).
	EnvMetricsEvery = "FORWARDER_METRICS_EVERY"
	// DefaultMetricsEvery is used when EnvMetricsEvery is unset: well inside the one-minute
	// periods of the dashboard, and one line per ~2,000 invocations of a busy environment.
	DefaultMetricsEvery = 30 * time.Second
	// envFunctionName is set by the Lambda runtime to the function's name.
	envFunctionName = "AWS_LAMBDA_FUNCTION_NAME"
)

// The metrics each EMF line carries, all of unit Count, with the dimension "Function".
const (
	emfInvocations = "Invocations"
	emfForwarded   = "Forwarded"
	emfQuarantined = "Quarantined"
	emfFailed      = "Failed"
	emfRetries     = "Retries"
	emfThrottles   = "Throttles"
	emfUnknown     = "UnknownOutcome"
)

var emfMetrics = []string{emfInvocations, emfForwarded, emfQuarantined, emfFailed, emfRetries, emfThrottles, emfUnknown}

// EMF is the Lambda handler of the deployed forwarder: it runs each invocation through the
// Forwarder's Invoke and writes its counts in CloudWatch embedded metric format to w (the
// function's stdout, which Lambda sends to CloudWatch Logs, where the metrics are extracted). A
// Lambda process lives for many invocations and has no scrape endpoint, so its Prometheus
// counters would die with it; these lines are how its counts reach CloudWatch.
//
// A line is written at once for every invocation that did anything but forward its event on the
// first try (quarantined, failed, retried, throttled, an unknown outcome): it names the outcome,
// reason and event_id (never payload values) for Logs Insights. The counts of invocations that
// forwarded cleanly are gathered and written with the next such line, or on the first invocation
// at least every (EnvMetricsEvery) after the last line. A line per event cost more than the rest
// of the pipeline (CloudWatch Logs ingestion of ~600 bytes per event: ~$300 per billion events);
// gathered, a busy environment writes one line per ~2,000 invocations. The price: an environment
// that Lambda reclaims, or that gets no invocation for a while, holds up to every's worth of
// clean counts until its next invocation, or loses them with the environment (Lambda's own
// Invocations metric still counts those invocations; nothing an alarm reads waits).
//
// Each line carries the counts accumulated since the previous line (Stats deltas), so every count
// is on exactly one line and the sums CloudWatch computes stay exact, however invocations overlap.
// Safe for concurrent use; lines never interleave.
type EMF struct {
	f         *Forwarder
	w         io.Writer
	namespace string
	function  string
	every     time.Duration
	now       func() time.Time

	mu       sync.Mutex
	last     Stats
	lastLine time.Time
	pending  int // invocations since the last line
}

// NewEMF returns the handler; function is the value of the "Function" dimension, every how long
// clean invocations' counts may be gathered before a line (0: a line per invocation).
func NewEMF(f *Forwarder, w io.Writer, namespace, function string, every time.Duration) *EMF {
	if namespace == "" {
		namespace = DefaultMetricsNamespace
	}
	return &EMF{f: f, w: w, namespace: namespace, function: function, every: every, now: f.cfg.Now,
		last: f.Stats(), lastLine: f.cfg.Now()}
}

// Invoke implements the aws-lambda-go lambda.Handler interface: Forwarder.Invoke, then its counts
// (in a line now, or gathered). A line is written whether the invocation succeeded or not; a
// failed write of the line is reported on the Forwarder's logger and never fails the invocation.
func (e *EMF) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	out, err := e.f.Invoke(ctx, payload)
	props := map[string]any{"outcome": "failed"}
	if err == nil {
		var o Outcome
		if json.Unmarshal(out, &o) == nil {
			props["outcome"] = o.Status
			if o.Reason != "" {
				props["reason"] = string(o.Reason)
			}
			if o.EventID != "" {
				props["event_id"] = o.EventID
			}
		}
	}
	if werr := e.record(props); werr != nil {
		e.f.log.Warn("metrics line not written")
	}
	return out, err
}

// record counts one invocation with its properties and writes a line when it is due.
func (e *EMF) record(props map[string]any) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.pending++
	now := e.f.Stats()
	d := now
	d.Forwarded -= e.last.Forwarded
	d.Quarantined -= e.last.Quarantined
	d.Failed -= e.last.Failed
	d.Retries -= e.last.Retries
	d.Throttles -= e.last.Throttles
	d.Unknown -= e.last.Unknown
	clean := props["outcome"] == StatusForwarded && d.Quarantined == 0 && d.Failed == 0 && d.Retries == 0 &&
		d.Throttles == 0 && d.Unknown == 0
	at := e.now()
	if clean && e.every > 0 && at.Sub(e.lastLine) < e.every {
		return nil
	}
	if e.pending > 1 && clean {
		props = map[string]any{"outcome": StatusForwarded} // a line for many: no one event's id
	}
	n := e.pending
	e.last, e.lastLine, e.pending = now, at, 0
	return e.emit(props, d, n, at)
}

// emfDirective is the "_aws" member of an EMF line.
type emfDirective struct {
	Timestamp         int64       `json:"Timestamp"`
	CloudWatchMetrics []emfMetric `json:"CloudWatchMetrics"`
}

type emfMetric struct {
	Namespace  string              `json:"Namespace"`
	Dimensions [][]string          `json:"Dimensions"`
	Metrics    []map[string]string `json:"Metrics"`
}

// emit writes one line with the counts d of n invocations and the given properties; e.mu is held.
func (e *EMF) emit(props map[string]any, d Stats, n int, at time.Time) error {
	line := map[string]any{}
	for k, v := range props {
		line[k] = v
	}
	defs := make([]map[string]string, 0, len(emfMetrics))
	for _, m := range emfMetrics {
		defs = append(defs, map[string]string{"Name": m, "Unit": "Count"})
	}
	line["_aws"] = emfDirective{
		Timestamp:         at.UnixMilli(),
		CloudWatchMetrics: []emfMetric{{Namespace: e.namespace, Dimensions: [][]string{{"Function"}}, Metrics: defs}},
	}
	line["Function"] = e.function
	line[emfInvocations] = n
	line[emfForwarded] = d.Forwarded
	line[emfQuarantined] = d.Quarantined
	line[emfFailed] = d.Failed
	line[emfRetries] = d.Retries
	line[emfThrottles] = d.Throttles
	line[emfUnknown] = d.Unknown
	b, err := json.Marshal(line)
	if err != nil {
		return fmt.Errorf("emf line: %w", err)
	}
	if _, err := e.w.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("emf line: %w", err)
	}
	return nil
}

// errNoHandler guards against a nil Forwarder.
var errNoHandler = errors.New("forwarder: EMF needs a Forwarder")

// newLambdaHandler wraps f for the Lambda runtime, writing EMF lines to w.
func newLambdaHandler(f *Forwarder, w io.Writer, getenv func(string) string) (*EMF, error) {
	if f == nil {
		return nil, errNoHandler
	}
	every := DefaultMetricsEvery
	if v := getenv(EnvMetricsEvery); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			return nil, fmt.Errorf("forwarder: %s=%q: want a duration >= 0, e.g. 30s (0: a line per invocation)", EnvMetricsEvery, v)
		}
		every = d
	}
	return NewEMF(f, w, getenv(EnvMetricsNamespace), getenv(envFunctionName), every), nil
}
