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
// Forwarder's Invoke and then writes one line in CloudWatch embedded metric format to w (the
// function's stdout, which Lambda sends to CloudWatch Logs, where the metrics are extracted). A
// Lambda process lives for many invocations and has no scrape endpoint, so its Prometheus
// counters would die with it; these lines are how its counts reach CloudWatch.
//
// Each line carries the counts accumulated since the previous line (Stats deltas): with one
// invocation at a time per execution environment, Lambda's model, that is exactly the
// invocation's counts; if invocations ever overlap, a count may land on a neighbour's line, but
// every count is on exactly one line, so the sums CloudWatch computes stay exact. A line also
// names the invocation's outcome, reason and event_id (never payload values) for Logs Insights.
// Safe for concurrent use; lines never interleave.
type EMF struct {
	f         *Forwarder
	w         io.Writer
	namespace string
	function  string
	now       func() time.Time

	mu   sync.Mutex
	last Stats
}

// NewEMF returns the handler; function is the value of the "Function" dimension.
func NewEMF(f *Forwarder, w io.Writer, namespace, function string) *EMF {
	if namespace == "" {
		namespace = DefaultMetricsNamespace
	}
	return &EMF{f: f, w: w, namespace: namespace, function: function, now: f.cfg.Now, last: f.Stats()}
}

// Invoke implements the aws-lambda-go lambda.Handler interface: Forwarder.Invoke, then one EMF
// line. The line is written whether the invocation succeeded or not; a failed write of the line
// is reported on the Forwarder's logger and never fails the invocation.
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
	if werr := e.emit(props); werr != nil {
		e.f.log.Warn("metrics line not written")
	}
	return out, err
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

// emit writes one line with the counts since the previous line and the given properties.
func (e *EMF) emit(props map[string]any) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := e.f.Stats()
	d := now
	d.Forwarded -= e.last.Forwarded
	d.Quarantined -= e.last.Quarantined
	d.Failed -= e.last.Failed
	d.Retries -= e.last.Retries
	d.Throttles -= e.last.Throttles
	d.Unknown -= e.last.Unknown
	e.last = now

	line := map[string]any{}
	for k, v := range props {
		line[k] = v
	}
	defs := make([]map[string]string, 0, len(emfMetrics))
	for _, m := range emfMetrics {
		defs = append(defs, map[string]string{"Name": m, "Unit": "Count"})
	}
	line["_aws"] = emfDirective{
		Timestamp:         e.now().UnixMilli(),
		CloudWatchMetrics: []emfMetric{{Namespace: e.namespace, Dimensions: [][]string{{"Function"}}, Metrics: defs}},
	}
	line["Function"] = e.function
	line[emfInvocations] = 1
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
	return NewEMF(f, w, getenv(EnvMetricsNamespace), getenv(envFunctionName)), nil
}
