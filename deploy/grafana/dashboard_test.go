// Package grafana holds the Grafana dashboard of the worker fleet (pipeline.json) and its test:
// the dashboard is valid, every panel queries the Prometheus datasource variable, and every metric
// it queries is one the code defines, so a renamed metric cannot leave a silently empty panel.
package grafana

import (
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

type target struct {
	Expr       string          `json:"expr"`
	Datasource json.RawMessage `json:"datasource"`
}

type panel struct {
	ID         int             `json:"id"`
	Type       string          `json:"type"`
	Title      string          `json:"title"`
	Datasource json.RawMessage `json:"datasource"`
	GridPos    struct{ H, W, X, Y int }
	Targets    []target `json:"targets"`
}

type dashboard struct {
	Title      string  `json:"title"`
	UID        string  `json:"uid"`
	Panels     []panel `json:"panels"`
	Templating struct {
		List []struct {
			Name       string          `json:"name"`
			Type       string          `json:"type"`
			Query      json.RawMessage `json:"query"`
			Definition string          `json:"definition"`
		} `json:"list"`
	} `json:"templating"`
}

func load(t *testing.T) dashboard {
	t.Helper()
	b, err := os.ReadFile("pipeline.json")
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	dec := json.NewDecoder(strings.NewReader(string(b)))
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("pipeline.json is not valid JSON: %v", err)
	}
	return d
}

func TestDashboardShape(t *testing.T) {
	d := load(t)
	if d.Title == "" || d.UID == "" {
		t.Fatal("dashboard without title or uid")
	}
	hasDS := false
	for _, v := range d.Templating.List {
		if v.Name == "datasource" && v.Type == "datasource" && string(v.Query) == `"prometheus"` {
			hasDS = true
		}
	}
	if !hasDS {
		t.Fatal(`no "datasource" variable of type datasource querying prometheus`)
	}
	ids := map[int]bool{}
	var rows []string
	for _, p := range d.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d used twice", p.ID)
		}
		ids[p.ID] = true
		if p.GridPos.W <= 0 || p.GridPos.X+p.GridPos.W > 24 {
			t.Errorf("panel %q: gridPos %+v outside the 24-column grid", p.Title, p.GridPos)
		}
		if p.Type == "row" {
			rows = append(rows, p.Title)
			continue
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, raw := range append([]json.RawMessage{p.Datasource}, datasources(p.Targets)...) {
			var ds struct{ Type, UID string }
			if err := json.Unmarshal(raw, &ds); err != nil || ds.Type != "prometheus" || ds.UID != "${datasource}" {
				t.Errorf("panel %q: datasource %s, want the ${datasource} variable", p.Title, raw)
			}
		}
	}
	for _, area := range []string{"Throughput", "Quality", "Ordering", "Destinations", "Progress", "Leases", "Process"} {
		found := false
		for _, r := range rows {
			found = found || strings.HasPrefix(r, area)
		}
		if !found {
			t.Errorf("no row for %s (rows: %q)", area, rows)
		}
	}
}

func datasources(ts []target) []json.RawMessage {
	out := make([]json.RawMessage, len(ts))
	for i, t := range ts {
		out[i] = t.Datasource
	}
	return out
}

// selector matches a metric name followed by its label matchers; every query in the dashboard
// filters by job and instance, so every metric it reads is followed by "{".
var selector = regexp.MustCompile(`([a-zA-Z_:][a-zA-Z0-9_:]*)\{`)

// queried returns every metric name the dashboard reads (panel queries and variable queries).
func queried(t *testing.T, d dashboard) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	add := func(where, expr string) {
		for _, m := range selector.FindAllStringSubmatch(expr, -1) {
			out[m[1]] = append(out[m[1]], where)
		}
	}
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			if !strings.Contains(tg.Expr, "{") {
				t.Errorf("panel %q: query %q selects no labels; filter by job and instance", p.Title, tg.Expr)
			}
			add(p.Title, tg.Expr)
		}
	}
	labelValues := regexp.MustCompile(`label_values\(([a-zA-Z_:][a-zA-Z0-9_:]*)`)
	for _, v := range d.Templating.List {
		for _, m := range labelValues.FindAllStringSubmatch(v.Definition, -1) {
			out[m[1]] = append(out[m[1]], "variable "+v.Name)
		}
	}
	return out
}

// defined collects the metric names the main module's code defines: Name: "x" in prometheus
// *Opts literals and prometheus.NewDesc("x", ...), in non-test Go files outside deploy/.
func defined(t *testing.T) (names map[string]bool, source string) {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("main module not found at %s: %v", root, err)
	}
	def := regexp.MustCompile(`(?:Name:\s*|NewDesc\(\s*)"([a-zA-Z_:][a-zA-Z0-9_:]*)"`)
	names = map[string]bool{}
	var all strings.Builder
	err = filepath.WalkDir(root, func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if e.IsDir() {
			switch e.Name() {
			case "deploy", "node_modules", ".git", "bin", "testdata":
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		all.Write(b)
		for _, m := range def.FindAllSubmatch(b, -1) {
			names[string(m[1])] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return names, all.String()
}

func TestDashboardMetricsExistInCode(t *testing.T) {
	d := load(t)
	names, src := defined(t)
	if len(names) < 20 {
		t.Fatalf("found only %d metric definitions in the code; is the walk right?", len(names))
	}
	q := queried(t, d)
	var missing []string
	for name, where := range q {
		base := name
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if b, ok := strings.CutSuffix(name, suffix); ok && names[b] {
				base = b
			}
		}
		switch {
		case names[base]:
		case name == "up": // written by Prometheus itself for every scrape target
		case strings.HasPrefix(name, "go_") && strings.Contains(src, "collectors.NewGoCollector("):
		case strings.HasPrefix(name, "process_") && strings.Contains(src, "collectors.NewProcessCollector("):
		default:
			missing = append(missing, name+" (in "+strings.Join(where, ", ")+")")
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Fatalf("the dashboard queries metrics the code does not define:\n  %s", strings.Join(missing, "\n  "))
	}
	// And it shows every metric operators were promised.
	for _, want := range []string{
		"pipeline_records_in_total", "kcl_records_read_total", "pipeline_records_out_total",
		"pipeline_quarantined_total", "pipeline_dead_lettered_total", "pipeline_dedupe_hits_total",
		"pipeline_reorder_held", "pipeline_reorder_gaps_total", "pipeline_late_events_total",
		"pipeline_breaker_state", "pipeline_put_retries_total", "pipeline_put_throttles_total",
		"worker_checkpoint_age_seconds", "kcl_millis_behind_latest",
		"checkpoint_leases_held", "checkpoint_leases_taken_total", "checkpoint_leases_lost_total",
	} {
		if len(q[want]) == 0 {
			t.Errorf("the dashboard has no panel for %s", want)
		}
	}
}
