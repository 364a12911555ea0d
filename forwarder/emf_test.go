package forwarder

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/kinesis-events/pipeline/internal/kinesisfake"
)

var _ lambda.Handler = (*EMF)(nil)

// syncBuffer is a bytes.Buffer safe for concurrent writers (as the function's stdout is).
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// emfLines decodes every line the handler wrote, checking each is one complete EMF object.
func emfLines(t *testing.T, out []byte) []map[string]any {
	t.Helper()
	var lines []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		var l map[string]any
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("line %q is not one JSON object: %v", sc.Text(), err)
		}
		lines = append(lines, l)
	}
	return lines
}

// checkDirective checks a line against the embedded metric format: the _aws member names the
// namespace, the Function dimension and every metric, each present as a number on the line.
func checkDirective(t *testing.T, l map[string]any, namespace, function string) {
	t.Helper()
	aws, ok := l["_aws"].(map[string]any)
	if !ok {
		t.Fatalf("no _aws member: %v", l)
	}
	if ts, ok := aws["Timestamp"].(float64); !ok || ts != float64(testNow.UnixMilli()) {
		t.Errorf("Timestamp = %v, want %d (ms)", aws["Timestamp"], testNow.UnixMilli())
	}
	cwm := aws["CloudWatchMetrics"].([]any)
	if len(cwm) != 1 {
		t.Fatalf("CloudWatchMetrics = %v", cwm)
	}
	d := cwm[0].(map[string]any)
	if d["Namespace"] != namespace || fmt.Sprint(d["Dimensions"]) != "[[Function]]" {
		t.Errorf("directive = %v", d)
	}
	var names []string
	for _, m := range d["Metrics"].([]any) {
		mm := m.(map[string]any)
		names = append(names, mm["Name"].(string))
		if mm["Unit"] != "Count" {
			t.Errorf("metric %v: unit %v", mm["Name"], mm["Unit"])
		}
		if _, ok := l[mm["Name"].(string)].(float64); !ok {
			t.Errorf("metric %v has no numeric value on the line", mm["Name"])
		}
	}
	if !slices.Equal(names, emfMetrics) {
		t.Errorf("metrics = %v, want %v", names, emfMetrics)
	}
	if l["Function"] != function {
		t.Errorf("Function = %v, want %q", l["Function"], function)
	}
}

func TestEMFOneLinePerInvocationWithItsCounts(t *testing.T) {
	kin := kinesisfake.New()
	// Entries of customer "bad" fail for good: the invocation fails after its attempts.
	kin.EntryErr = func(e kinesisfake.Entry) string {
		if e.Key == "bad" {
			return "InternalFailure"
		}
		return ""
	}
	f := newTestForwarder(t, kin, func(c *Config) { c.MaxAttempts = 2 })
	var out syncBuffer
	h, err := newLambdaHandler(f, &out, func(k string) string {
		return map[string]string{EnvMetricsNamespace: "KinesisEventsPipeline/test", envFunctionName: "test-fwd"}[k]
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if _, err := h.Invoke(ctx, []byte(goodLine("e1", "c1", 1))); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Invoke(ctx, []byte(`not json`)); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Invoke(ctx, []byte(goodLine("e3", "bad", 1))); !errors.Is(err, ErrNotWritten) {
		t.Fatalf("err = %v, want ErrNotWritten", err)
	}
	lines := emfLines(t, out.b.Bytes())
	if len(lines) != 3 {
		t.Fatalf("%d lines for 3 invocations", len(lines))
	}
	want := []map[string]any{
		{"outcome": StatusForwarded, "event_id": "e1", emfForwarded: 1.0, emfQuarantined: 0.0, emfFailed: 0.0, emfRetries: 0.0},
		{"outcome": StatusQuarantined, "reason": "not_json", emfForwarded: 0.0, emfQuarantined: 1.0, emfFailed: 0.0},
		{"outcome": "failed", emfForwarded: 0.0, emfQuarantined: 0.0, emfFailed: 1.0, emfRetries: 1.0},
	}
	for i, l := range lines {
		checkDirective(t, l, "KinesisEventsPipeline/test", "test-fwd")
		if l[emfInvocations] != 1.0 {
			t.Errorf("line %d: Invocations = %v", i, l[emfInvocations])
		}
		for k, v := range want[i] {
			if l[k] != v {
				t.Errorf("line %d: %s = %v, want %v (line %v)", i, k, l[k], v, l)
			}
		}
	}
}

// TestEMFSumsAreExactUnderConcurrency: however invocations overlap, each count is on exactly one
// line, so the per-metric sums over the lines equal the Forwarder's totals.
func TestEMFSumsAreExactUnderConcurrency(t *testing.T) {
	kin := kinesisfake.New()
	kin.EntryErr = func(e kinesisfake.Entry) string {
		if e.Attempt == 1 {
			return "ProvisionedThroughputExceededException" // every entry throttled once, then written
		}
		return ""
	}
	f := newTestForwarder(t, kin, nil)
	var out syncBuffer
	h := NewEMF(f, &out, "", "fn")
	const n = 64
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			payload := goodLine(fmt.Sprintf("e%d", i), fmt.Sprintf("c%d", i), 1)
			if i%4 == 0 {
				payload = `{"broken"`
			}
			if _, err := h.Invoke(t.Context(), []byte(payload)); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	lines := emfLines(t, out.b.Bytes())
	if len(lines) != n {
		t.Fatalf("%d lines for %d invocations", len(lines), n)
	}
	sums := map[string]float64{}
	for _, l := range lines {
		checkDirective(t, l, DefaultMetricsNamespace, "fn")
		for _, m := range emfMetrics {
			sums[m] += l[m].(float64)
		}
	}
	s := f.Stats()
	want := map[string]float64{
		emfInvocations: n, emfForwarded: float64(s.Forwarded), emfQuarantined: float64(s.Quarantined),
		emfFailed: float64(s.Failed), emfRetries: float64(s.Retries), emfThrottles: float64(s.Throttles), emfUnknown: float64(s.Unknown),
	}
	if fmt.Sprint(sums) != fmt.Sprint(want) {
		t.Errorf("sums over the lines = %v, want the totals %v", sums, want)
	}
	if s.Forwarded != n*3/4 || s.Quarantined != n/4 || s.Throttles == 0 {
		t.Errorf("stats %+v: the scenario did not run as intended", s)
	}
}
