package infra

import (
	"fmt"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatch"
	"github.com/aws/jsii-runtime-go"
)

// ForwarderEMFMetrics are the metrics the forwarder writes in CloudWatch embedded metric format,
// one line per invocation (forwarder/emf.go), with the dimension "Function".
var ForwarderEMFMetrics = []string{"Invocations", "Forwarded", "Quarantined", "Failed", "Retries", "Throttles", "UnknownOutcome"}

// addDashboard creates the stage's CloudWatch dashboard: traffic, lag, throttling, loss paths and
// the fleet, from AWS's metrics, the forwarder's EMF metrics and the worker metrics the sidecar
// publishes (collector.go).
func (p *Pipeline) addDashboard() {
	cfg, n := p.Config, p.Names
	period := awscdk.Duration_Minutes(jsii.Number(1))
	m := func(namespace, name, stat, label string, dims map[string]string) awscloudwatch.IMetric {
		d := map[string]*string{}
		for k, v := range dims {
			d[k] = jsii.String(v)
		}
		return awscloudwatch.NewMetric(&awscloudwatch.MetricProps{
			Namespace: jsii.String(namespace), MetricName: jsii.String(name), DimensionsMap: &d,
			Statistic: jsii.String(stat), Period: period, Label: jsii.String(label),
		})
	}
	stream := func(s string) map[string]string { return map[string]string{"StreamName": cfg.Name(s)} }
	fn := map[string]string{"Function": n.Forwarder}
	stage := map[string]string{"stage": cfg.Stage}
	// search graphs a worker metric per value of one label (stream, reason), whatever the values.
	search := func(metricName, label string) awscloudwatch.IMetric {
		return awscloudwatch.NewMathExpression(&awscloudwatch.MathExpressionProps{
			Expression: jsii.String(fmt.Sprintf(`SEARCH('{%s,stage,%s} MetricName="%s"', 'Sum', 60)`, n.MetricsNamespace, label, metricName)),
			Label:      jsii.String(""),
			Period:     period,
		})
	}
	graph := func(title string, metrics ...awscloudwatch.IMetric) awscloudwatch.IWidget {
		return awscloudwatch.NewGraphWidget(&awscloudwatch.GraphWidgetProps{
			Title: jsii.String(title), Left: &metrics, Width: jsii.Number(8), Height: jsii.Number(6),
		})
	}
	var outThrottles []awscloudwatch.IMetric
	for _, s := range OutputStreamNames() {
		outThrottles = append(outThrottles, m("AWS/Kinesis", "WriteProvisionedThroughputExceeded", "Sum", s, stream(s)))
	}

	awscloudwatch.NewDashboard(p.Stack, jsii.String("Dashboard"), &awscloudwatch.DashboardProps{
		DashboardName: jsii.String(n.Dashboard),
		Widgets: &[]*[]awscloudwatch.IWidget{
			{
				graph("Events in: forwarder (per minute)",
					m(n.MetricsNamespace, "Forwarded", "Sum", "forwarded", fn),
					m(n.MetricsNamespace, "Quarantined", "Sum", "quarantined", fn),
					m(n.MetricsNamespace, "Failed", "Sum", "failed (retried by Lambda)", fn),
					m("AWS/Kinesis", "IncomingRecords", "Sum", "raw stream records", stream(RawStream))),
				graph("Events out: workers, per destination stream", search("pipeline_records_out_total", "stream")),
				graph("Lag (ms)",
					m("AWS/Kinesis", "GetRecords.IteratorAgeMilliseconds", "Maximum", "raw iterator age", stream(RawStream)),
					m(n.MetricsNamespace, "kcl_millis_behind_latest", "Maximum", "MillisBehindLatest (workers)", stage)),
			},
			{
				graph("Throttled writes",
					append([]awscloudwatch.IMetric{
						m("AWS/Kinesis", "WriteProvisionedThroughputExceeded", "Sum", RawStream, stream(RawStream)),
						m(n.MetricsNamespace, "Throttles", "Sum", "forwarder entries throttled", fn),
					}, outThrottles...)...),
				graph("Quarantined and dead-lettered, by reason",
					search("pipeline_quarantined_total", "reason"), search("pipeline_dead_lettered_total", "reason")),
				graph("Forwarder failure path",
					m("AWS/Lambda", "AsyncEventAge", "Maximum", "async event age (ms)", map[string]string{"FunctionName": n.Forwarder}),
					m("AWS/SQS", "ApproximateNumberOfMessagesVisible", "Maximum", "failure queue depth", map[string]string{"QueueName": n.ForwarderDLQ}),
					m("AWS/SQS", "ApproximateAgeOfOldestMessage", "Maximum", "failure queue oldest (s)", map[string]string{"QueueName": n.ForwarderDLQ})),
			},
			{
				graph("Fleet",
					m("ECS/ContainerInsights", "RunningTaskCount", "Minimum", "running workers", map[string]string{"ClusterName": n.Cluster, "ServiceName": n.WorkerService}),
					m(n.MetricsNamespace, "checkpoint_leases_held", "Sum", "leases held", stage),
					m(n.MetricsNamespace, "checkpoint_leases_lost_total", "Sum", "leases lost", stage)),
				graph("Reorder and writes of unknown outcome",
					m(n.MetricsNamespace, "pipeline_reorder_held", "Maximum", "events held for reordering", stage),
					m(n.MetricsNamespace, "pipeline_reorder_gaps_total", "Sum", "gaps", stage),
					m(n.MetricsNamespace, "pipeline_late_events_total", "Sum", "late events", stage),
					m(n.MetricsNamespace, "UnknownOutcome", "Sum", "forwarder unknown outcomes", fn),
					search("pipeline_put_unknown_outcome_total", "stream")),
				graph("Breaker state per destination (0 closed, 1 half-open, 2 open)", search("pipeline_breaker_state", "stream")),
			},
		},
	})
}
