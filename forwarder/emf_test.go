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
	"time"

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
		return map[string]string{EnvMetricsNamespace: "KinesisEventsPipeline/test", envFunctionName: "test-fwd", EnvMetricsEvery: "0"}[k]
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
	h := NewEMF(f, &out, "", "fn", 0)
	const n = 64
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			payload := goodLine(fmt.Sprintf("e%d", i), fmt.Sprintf("c%d", i), 1)
			if i%4 == 0 {
				// Each its own input: identical ones would share a quarantine partition key, and
				// concurrent invocations do not keep one record per key in flight between them
				// (only local mode does), which the fake reports as a violation.
				payload = fmt.Sprintf(`{"broken":%d`, i)
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

// TestEMFGathersCleanInvocations: invocations that forward their event on the first try are
// counted into the next line, written on the first invocation at least every after the last line
// or with the next invocation that did anything else; every count lands on exactly one line.
func TestEMFGathersCleanInvocations(t *testing.T) {
	kin := kinesisfake.New()
	kin.EntryErr = func(e kinesisfake.Entry) string {
		if e.Key == "slow" && e.Attempt == 1 {
			return "ProvisionedThroughputExceededException"
		}
		return ""
	}
	now := time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)
	f := newTestForwarder(t, kin, func(c *Config) { c.Now = func() time.Time { return now } })
	var out syncBuffer
	h, err := newLambdaHandler(f, &out, func(k string) string { return map[string]string{envFunctionName: "fn"}[k] })
	if err != nil {
		t.Fatal(err)
	}
	invoke := func(payload string) {
		t.Helper()
		if _, err := h.Invoke(t.Context(), []byte(payload)); err != nil {
			t.Fatal(err)
		}
	}
	lines := func() []map[string]any { return emfLines(t, out.b.Bytes()) }
	for i := range 10 {
		invoke(goodLine(fmt.Sprintf("e%d", i), fmt.Sprintf("c%d", i), 1))
		now = now.Add(time.Second)
	}
	if n := len(lines()); n != 0 {
		t.Fatalf("%d lines after 10 clean invocations within %s, want 0", n, DefaultMetricsEvery)
	}
	invoke(`not json`) // quarantined: a line at once, with the gathered counts
	ls := lines()
	if len(ls) != 1 || ls[0][emfInvocations] != 11.0 || ls[0][emfForwarded] != 10.0 || ls[0][emfQuarantined] != 1.0 || ls[0]["reason"] != "not_json" {
		t.Fatalf("after a quarantine: lines %v, want one with 11 invocations, 10 forwarded, 1 quarantined, reason not_json", ls)
	}
	invoke(goodLine("s1", "slow", 1)) // throttled once, then written: not clean, a line at once
	if ls = lines(); len(ls) != 2 || ls[1]["event_id"] != "s1" || ls[1][emfThrottles] != 1.0 || ls[1][emfInvocations] != 1.0 {
		t.Fatalf("after a throttled invocation: lines %v", ls)
	}
	for i := range 5 {
		invoke(goodLine(fmt.Sprintf("g%d", i), fmt.Sprintf("g%d", i), 1))
		now = now.Add(10 * time.Second)
	}
	// The last line was at t=10s; the invocation at t=50s is the first at least 30 s later.
	ls = lines()
	if len(ls) != 3 || ls[2][emfInvocations] != 4.0 || ls[2][emfForwarded] != 4.0 || ls[2]["event_id"] != nil {
		t.Fatalf("after 5 clean invocations over 50 s: lines %v, want a third with 4 invocations and no event_id", ls)
	}
	sums := map[string]float64{}
	for _, l := range ls {
		for _, m := range emfMetrics {
			sums[m] += l[m].(float64)
		}
	}
	if s := f.Stats(); sums[emfForwarded] != float64(s.Forwarded-1) || sums[emfInvocations] != 16 {
		t.Errorf("sums %v; forwarder %+v: one clean invocation should be gathered, not yet written", sums, s)
	}
	if _, err := newLambdaHandler(f, &out, func(k string) string { return map[string]string{EnvMetricsEvery: "soon"}[k] }); err == nil {
		t.Errorf("%s=soon accepted", EnvMetricsEvery)
	}
}
