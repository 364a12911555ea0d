package infra

import (
	"encoding/json"
	"fmt"
)

// The worker's metrics reach CloudWatch through a sidecar, not through code in the worker: the
// AWS Distro for OpenTelemetry collector scrapes the worker's /metrics over the task's loopback
// every minute and writes CloudWatch embedded-metric-format log lines (its awsemf exporter) to
// the worker-metrics log group, from which CloudWatch extracts the metrics declared below.
// Why a sidecar rather than EMF written by the worker: /metrics stays the one source (the
// Grafana dashboard, kclctl, the local runs and the tests read the same names), the worker
// keeps no AWS-specific metrics code, and a collector failure cannot touch event processing
// (the container is not essential). The cost: one more container (64 MiB reserved) per task.

// collectorScrapeInterval is how often the sidecar scrapes the worker.
const collectorScrapeInterval = "60s"

// MetricDeclaration is one awsemf metric declaration: the metrics whose names match a selector
// become CloudWatch metrics with these dimension sets; every other scraped series stays in the
// log group only (queryable with Logs Insights, not billed as a metric).
type MetricDeclaration struct {
	Dimensions [][]string `json:"dimensions"`
	Selectors  []string   `json:"metric_name_selectors"`
}

// workerMetricDeclarations are the worker metrics published to CloudWatch (the dashboard and
// TestCollectorPublishesMetricsTheWorkerHas use them). Every series carries the "stage" label
// (a scrape target label), so [["stage"]] is the fleet-wide total.
var workerMetricDeclarations = []MetricDeclaration{
	{Dimensions: [][]string{{"stage"}}, Selectors: []string{
		"^pipeline_records_in_total$", "^pipeline_reorder_held$", "^pipeline_reorder_gaps_total$",
		"^pipeline_late_events_total$", "^kcl_millis_behind_latest$", "^checkpoint_leases_held$",
		"^checkpoint_leases_lost_total$",
	}},
	{Dimensions: [][]string{{"stage", "stream"}}, Selectors: []string{
		"^pipeline_records_out_total$", "^pipeline_put_throttles_total$", "^pipeline_put_errors_total$",
		"^pipeline_put_unknown_outcome_total$", "^pipeline_breaker_state$",
	}},
	{Dimensions: [][]string{{"stage", "reason"}}, Selectors: []string{
		"^pipeline_quarantined_total$", "^pipeline_dead_lettered_total$",
	}},
}

// collectorConfig is the collector's configuration (AOT_CONFIG_CONTENT), as JSON, which is YAML.
func (p *Pipeline) collectorConfig(logGroup string) string {
	cfg := map[string]any{
		"receivers": map[string]any{"prometheus": map[string]any{"config": map[string]any{
			"global": map[string]any{"scrape_interval": collectorScrapeInterval, "scrape_timeout": "10s"},
			"scrape_configs": []any{map[string]any{
				"job_name": "worker",
				"static_configs": []any{map[string]any{
					"targets": []string{fmt.Sprintf("127.0.0.1:%d", MetricsPort)},
					"labels":  map[string]string{"stage": p.Config.Stage},
				}},
			}},
		}}},
		"processors": map[string]any{
			// The ECS detector reads the task's metadata endpoint, so log_stream_name's {TaskId}
			// names each task's stream.
			"resourcedetection": map[string]any{"detectors": []string{"env", "ecs"}, "timeout": "2s", "override": false},
			"batch/metrics":     map[string]any{"timeout": collectorScrapeInterval},
		},
		"exporters": map[string]any{"awsemf": map[string]any{
			"namespace":               p.Names.MetricsNamespace,
			"log_group_name":          logGroup,
			"log_stream_name":         "{TaskId}",
			"dimension_rollup_option": "NoDimensionRollup",
			"metric_declarations":     workerMetricDeclarations,
		}},
		"service": map[string]any{"pipelines": map[string]any{"metrics": map[string]any{
			"receivers": []string{"prometheus"}, "processors": []string{"resourcedetection", "batch/metrics"}, "exporters": []string{"awsemf"},
		}}},
	}
	b, err := json.Marshal(cfg)
	if err != nil { // maps of strings and slices always marshal
		panic(fmt.Sprintf("collector config: %v", err))
	}
	return string(b)
}
