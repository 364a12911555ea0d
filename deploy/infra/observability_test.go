package infra

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// collectorConfigOf reads the metrics sidecar's configuration out of the template.
func collectorConfigOf(t *testing.T, s *synthed) map[string]any {
	t.Helper()
	raw, ok := containerEnv(t, s, collectorContainer)[envCollectorConfig].(string)
	if !ok {
		t.Fatalf("the collector has no %s", envCollectorConfig)
	}
	var cfg map[string]any
	if err := json.Unmarshal([]byte(raw), &cfg); err != nil {
		t.Fatalf("%s is not JSON (YAML): %v", envCollectorConfig, err)
	}
	return cfg
}

// TestCollectorScrapesTheWorker: the sidecar scrapes the worker's metrics port over the task's
// loopback, exports through awsemf into the worker-metrics log group under the stage's
// namespace, and every metric it publishes is one the worker defines (so a renamed metric fails
// here instead of leaving an empty dashboard on AWS).
func TestCollectorScrapesTheWorker(t *testing.T) {
	cfg := collectorConfigOf(t, &fx)
	b := jsonOf(cfg)
	for _, want := range []string{
		`"targets":["127.0.0.1:9090"]`, `"stage":"test"`,
		`"log_group_name":"` + fx.names.LogGroupPrefix + `worker-metrics"`,
		`"namespace":"` + fx.names.MetricsNamespace + `"`,
		`"exporters":["awsemf"]`, `"receivers":["prometheus"]`,
	} {
		if !strings.Contains(b, want) {
			t.Errorf("collector config lacks %s:\n%s", want, b)
		}
	}
	src := goSources(t, "worker", "processors", "checkpoint")
	decls := cfg["exporters"].(map[string]any)["awsemf"].(map[string]any)["metric_declarations"].([]any)
	if len(decls) == 0 {
		t.Fatal("no metric declarations: nothing would become a CloudWatch metric")
	}
	for _, d := range decls {
		for _, sel := range d.(map[string]any)["metric_name_selectors"].([]any) {
			name := strings.TrimSuffix(strings.TrimPrefix(sel.(string), "^"), "$")
			if !regexp.MustCompile(`^[a-z_]+$`).MatchString(name) {
				t.Errorf("selector %q: want an exact ^name$", sel)
				continue
			}
			if !strings.Contains(src, `"`+name+`"`) {
				t.Errorf("the collector publishes %s, which worker/, processors/ and checkpoint/ never define", name)
			}
		}
	}
}

// TestDashboardUsesMetricsThatExist: every metric of the stage's namespace on the dashboard is a
// forwarder EMF metric (forwarder/emf.go emits it) or a worker metric the collector publishes.
func TestDashboardUsesMetricsThatExist(t *testing.T) {
	dashboards := resources("AWS::CloudWatch::Dashboard")
	if len(dashboards) != 1 {
		t.Fatalf("%d dashboards, want 1", len(dashboards))
	}
	var body string
	for _, props := range dashboards {
		body = jsonOf(props["DashboardBody"])
	}
	published := map[string]bool{}
	for _, d := range workerMetricDeclarations {
		for _, sel := range d.Selectors {
			published[strings.Trim(sel, "^$")] = true
		}
	}
	emf := goSources(t, "forwarder")
	for _, m := range ForwarderEMFMetrics {
		if !strings.Contains(emf, `"`+m+`"`) {
			t.Errorf("the dashboard expects the forwarder EMF metric %s, which forwarder/ never names", m)
		}
		published[m] = true
	}
	// Metrics in the namespace appear as [namespace, name, ...] or in SEARCH MetricName="name".
	ns := regexp.QuoteMeta(fx.names.MetricsNamespace)
	used := regexp.MustCompile(`\\"`+ns+`\\",\\"([A-Za-z_]+)\\"|MetricName=\\\\\\"([A-Za-z_]+)\\\\\\"`).FindAllStringSubmatch(body, -1)
	if len(used) < 5 {
		t.Fatalf("found %d metrics of %s on the dashboard; the pattern is broken:\n%s", len(used), fx.names.MetricsNamespace, body)
	}
	for _, u := range used {
		name := u[1] + u[2]
		if !published[name] {
			t.Errorf("the dashboard graphs %s, which nothing publishes to %s", name, fx.names.MetricsNamespace)
		}
	}
}

// TestEveryAlarmHasARunbookRow: docs/operations.md has a row per alarm saying what it means and
// what to do, and names no alarm the stack does not create.
func TestEveryAlarmHasARunbookRow(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(repoRoot, "docs", "operations.md"))
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	start := strings.Index(doc, "\n## Alarms\n")
	if start < 0 {
		t.Fatal("docs/operations.md has no \"## Alarms\" section")
	}
	section := doc[start+1:]
	if end := strings.Index(section[3:], "\n## "); end >= 0 {
		section = section[:end+3]
	}
	rows := map[string]bool{}
	for _, m := range regexp.MustCompile("(?m)^\\| `([a-z-]+)` \\|[^|]+\\|[^|]+\\|").FindAllStringSubmatch(section, -1) {
		rows[m[1]] = true
	}
	all := append(AlarmNames(fx.cfg), AlarmNames(alt.cfg)...)
	for _, name := range all {
		if !rows[name] {
			t.Errorf("docs/operations.md has no alarm row | `%s` | meaning | action |", name)
		}
	}
	for name := range rows {
		if !slices.Contains(all, name) {
			t.Errorf("docs/operations.md has a row for alarm %s, which the stack does not create", name)
		}
	}
}
