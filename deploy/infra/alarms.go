package infra

import (
	"fmt"
	"sort"
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatch"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatchactions"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssns"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssnssubscriptions"
	"github.com/aws/jsii-runtime-go"
)

// AlarmNames lists the alarms the stack creates for cfg, without the stage prefix (tests check
// each exists and that docs/operations.md has a row for each).
func AlarmNames(cfg Config) []string {
	names := []string{
		"raw-iterator-age", "raw-write-throttled", "analytics-write-throttled", "side-streams-write-throttled",
		"zero-traffic", "dlq-records", "quarantine-records", "breaker-open",
		"forwarder-errors", "forwarder-throttles", "forwarder-async-event-age",
		"forwarder-destination-delivery-failures", "forwarder-async-events-dropped",
		"forwarder-dlq-not-empty", "forwarder-dlq-oldest-message",
		"forward-rule-failed-invocations", "malformed-rule-failed-invocations", "rules-dlq-delivery-failures",
		"table-throttles", "workers-below-minimum",
	}
	if cfg.EventSourcePrefix != "" {
		names = append(names, "unrouted-rule-failed-invocations", "unrouted-events")
	}
	if cfg.Autoscaler {
		names = append(names, "autoscaler-not-running")
	}
	sort.Strings(names)
	return names
}

// addAlarms creates the alarm topic, its subscribers and the alarms. All of them use metrics
// AWS publishes, except breaker-open, which counts the worker's log lines matching
// Config.BreakerOpenLogPattern. The raw stream's GetRecords.IteratorAgeMilliseconds is the
// stream-level maximum of the consumers' MillisBehindLatest, so it stands for the per-shard lag.
func (p *Pipeline) addAlarms() {
	cfg, n := p.Config, p.Names
	p.AlarmTopic = awssns.NewTopic(p.Stack, jsii.String("AlarmTopic"), &awssns.TopicProps{
		TopicName:   jsii.String(n.AlarmTopic),
		DisplayName: jsii.String("Kinesis events pipeline alarms (" + cfg.Stage + ")"),
		MasterKey:   p.Key,
		EnforceSSL:  jsii.Bool(true),
	})
	if cfg.AlarmEmail != "" {
		p.AlarmTopic.AddSubscription(awssnssubscriptions.NewEmailSubscription(jsii.String(cfg.AlarmEmail), nil))
	}
	if cfg.AlarmWebhookURL != "" {
		p.AlarmTopic.AddSubscription(awssnssubscriptions.NewUrlSubscription(jsii.String(cfg.AlarmWebhookURL),
			&awssnssubscriptions.UrlSubscriptionProps{Protocol: awssns.SubscriptionProtocol_HTTPS}))
	}
	grantServiceDataKeys(p.Key, "CloudWatchAlarmsToEncryptedTopic", "cloudwatch.amazonaws.com", "ArnLike",
		fmt.Sprintf("arn:%s:cloudwatch:%s:%s:alarm:%s*", *p.Stack.Partition(), *p.Stack.Region(), *p.Stack.Account(), n.AlarmPrefix))
	action := awscloudwatchactions.NewSnsAction(p.AlarmTopic)

	minute := awscdk.Duration_Minutes(jsii.Number(1))
	fiveMinutes := awscdk.Duration_Minutes(jsii.Number(5))
	opts := func(stat string, period awscdk.Duration) *awscloudwatch.MetricOptions {
		return &awscloudwatch.MetricOptions{Statistic: jsii.String(stat), Period: period}
	}
	metric := func(namespace, name, stat string, period awscdk.Duration, dims map[string]string) awscloudwatch.Metric {
		d := map[string]*string{}
		for k, v := range dims {
			d[k] = jsii.String(v)
		}
		return awscloudwatch.NewMetric(&awscloudwatch.MetricProps{
			Namespace: jsii.String(namespace), MetricName: jsii.String(name), DimensionsMap: &d,
			Statistic: jsii.String(stat), Period: period,
		})
	}
	// sum adds metrics up in one metric-math expression, FILL(m0, 0) + FILL(m1, 0) + ...: these
	// metrics are published only when something happens (a throttled write, a failed delivery),
	// and a sum of series without FILL has a value only where every series has one, so it would
	// almost never reach the alarm.
	sum := func(label string, metrics []awscloudwatch.IMetric) awscloudwatch.IMetric {
		using := map[string]awscloudwatch.IMetric{}
		var ids []string
		for i, m := range metrics {
			id := fmt.Sprintf("m%d", i)
			using[id] = m
			ids = append(ids, "FILL("+id+", 0)")
		}
		return awscloudwatch.NewMathExpression(&awscloudwatch.MathExpressionProps{
			Expression: jsii.String(strings.Join(ids, " + ")), UsingMetrics: &using,
			Label: jsii.String(label), Period: fiveMinutes,
		})
	}
	// Missing data is "no events", so not breaching, except where silence itself is the problem.
	alarmMissing := func(name, desc string, m awscloudwatch.IMetric, op awscloudwatch.ComparisonOperator, threshold float64, periods int, missing awscloudwatch.TreatMissingData) {
		a := awscloudwatch.NewAlarm(p.Stack, jsii.String("Alarm-"+name), &awscloudwatch.AlarmProps{
			AlarmName:          jsii.String(n.AlarmPrefix + name),
			AlarmDescription:   jsii.String(desc + " Runbook: docs/operations.md#alarms, row " + name + "."),
			Metric:             m,
			ComparisonOperator: op,
			Threshold:          jsii.Number(threshold),
			EvaluationPeriods:  jsii.Number(float64(periods)),
			TreatMissingData:   missing,
		})
		a.AddAlarmAction(action)
		a.AddOkAction(action)
	}
	alarm := func(name, desc string, m awscloudwatch.IMetric, op awscloudwatch.ComparisonOperator, threshold float64, periods int) {
		alarmMissing(name, desc, m, op, threshold, periods, awscloudwatch.TreatMissingData_NOT_BREACHING)
	}
	over := awscloudwatch.ComparisonOperator_GREATER_THAN_THRESHOLD
	atLeast := awscloudwatch.ComparisonOperator_GREATER_THAN_OR_EQUAL_TO_THRESHOLD
	below := awscloudwatch.ComparisonOperator_LESS_THAN_THRESHOLD
	kinesis := func(stream, name string) awscloudwatch.IMetric {
		return metric("AWS/Kinesis", name, "Sum", fiveMinutes, map[string]string{"StreamName": cfg.Name(stream)})
	}
	lambda := func(name, stat string) awscloudwatch.Metric {
		return metric("AWS/Lambda", name, stat, fiveMinutes, map[string]string{"FunctionName": n.Forwarder})
	}

	// Streams.
	alarm("raw-iterator-age",
		fmt.Sprintf("The worker fleet is more than %d ms behind on the raw stream (max MillisBehindLatest across shards) for 5 minutes.", cfg.IteratorAgeAlarmMillis),
		p.Streams[RawStream].MetricGetRecordsIteratorAgeMilliseconds(opts("Maximum", minute)),
		over, float64(cfg.IteratorAgeAlarmMillis), 5)
	alarm("raw-write-throttled",
		"Writes to the raw stream were refused for throughput (WriteProvisionedThroughputExceeded): the forwarder retries, then fails the invocation, and events wait in Lambda's retries or the forwarder's failure queue.",
		kinesis(RawStream, "WriteProvisionedThroughputExceeded"), over, 0, 1)
	var analytics, side []awscloudwatch.IMetric
	for _, s := range OutputStreamNames() {
		m := kinesis(s, "WriteProvisionedThroughputExceeded")
		if strings.HasPrefix(s, AnalyticsPrefix) {
			analytics = append(analytics, m)
		} else {
			side = append(side, m)
		}
	}
	alarm("analytics-write-throttled",
		"Writes to the analytics streams were refused for throughput: the workers retry them with backoff and fall behind.",
		sum("analytics streams throttled writes", analytics), over, 0, 1)
	alarm("side-streams-write-throttled",
		"Writes to the quarantine, DLQ or late streams were refused for throughput: the workers retry them with backoff and fall behind.",
		sum("side streams throttled writes", side), over, 0, 1)
	zeroPeriods := (cfg.ZeroTrafficAlarmMinutes + 4) / 5
	alarmMissing("zero-traffic",
		fmt.Sprintf("The raw stream took no record for %d minutes: producers, EventBridge or the forwarder have stopped.", zeroPeriods*5),
		kinesis(RawStream, "IncomingRecords"), below, 1, zeroPeriods, awscloudwatch.TreatMissingData_BREACHING)
	alarm("dlq-records",
		"Records were dead-lettered to the DLQ stream (writes that failed after every retry); replay them with kclctl dlq replay.",
		kinesis(DLQStream, "IncomingRecords"), over, 0, 1)
	alarm("quarantine-records",
		fmt.Sprintf("More than %d records were quarantined in 5 minutes (bad signatures, malformed or hostile input, raw PII).", cfg.QuarantineAlarmRecords),
		kinesis(QuarantineStream, "IncomingRecords"), over, float64(cfg.QuarantineAlarmRecords), 1)

	// Workers.
	breaker := awslogs.NewMetricFilter(p.Stack, jsii.String("BreakerOpenFilter"), &awslogs.MetricFilterProps{
		LogGroup:        p.WorkerLogs,
		FilterPattern:   awslogs.FilterPattern_Literal(jsii.String(cfg.BreakerOpenLogPattern)),
		MetricNamespace: jsii.String(n.MetricsNamespace),
		MetricName:      jsii.String(n.BreakerMetric),
		MetricValue:     jsii.String("1"),
		DefaultValue:    jsii.Number(0),
	})
	alarm("breaker-open",
		"A worker's circuit breaker opened: writes to a destination stream are failing and its records are held back, then dead-lettered.",
		breaker.Metric(opts("Sum", minute)), atLeast, 1, 1)
	alarmMissing("workers-below-minimum",
		fmt.Sprintf("Fewer than %d worker tasks are running.", cfg.MinWorkers),
		metric("ECS/ContainerInsights", "RunningTaskCount", "Minimum", minute,
			map[string]string{"ClusterName": n.Cluster, "ServiceName": n.WorkerService}),
		below, float64(cfg.MinWorkers), 5, awscloudwatch.TreatMissingData_BREACHING)
	if p.AutoscalerLogs != nil {
		ticks := awslogs.NewMetricFilter(p.Stack, jsii.String("AutoscalerTickFilter"), &awslogs.MetricFilterProps{
			LogGroup:        p.AutoscalerLogs,
			FilterPattern:   awslogs.FilterPattern_Literal(jsii.String(fmt.Sprintf(`{ $.msg = "%s" }`, autoscalerTickOK))),
			MetricNamespace: jsii.String(n.MetricsNamespace),
			MetricName:      jsii.String(n.AutoscalerMetric),
			MetricValue:     jsii.String("1"),
			DefaultValue:    jsii.Number(0),
		})
		// Missing data is the alarm itself: no run logged anything (the schedule is disabled, or
		// RunTask fails before a task starts).
		alarmMissing("autoscaler-not-running",
			fmt.Sprintf("The stream autoscaler's scheduled task has not completed a run for %d minutes: it fails to start, exits with an error, or does not run. Streams are not resharded and the fleet's maximum does not follow them.", autoscalerSilentMinutes),
			ticks.Metric(opts("Sum", fiveMinutes)), below, 1, autoscalerSilentMinutes/5, awscloudwatch.TreatMissingData_BREACHING)
	}
	var tables []awscloudwatch.IMetric
	for _, t := range []string{LeaseTable, DedupeTable} {
		for _, m := range []string{"ReadThrottleEvents", "WriteThrottleEvents"} {
			tables = append(tables, metric("AWS/DynamoDB", m, "Sum", fiveMinutes, map[string]string{"TableName": cfg.Name(t)}))
		}
	}
	alarm("table-throttles",
		"DynamoDB throttled requests to the lease or dedupe table: lease renewals may be late (shards change hands) and dedupe lookups are retried.",
		sum("table throttle events", tables), over, 0, 1)

	// Forwarder.
	alarm("forwarder-errors", "The forwarder Lambda returned errors (Lambda retries them, then parks the event in the forwarder's failure queue).",
		lambda("Errors", "Sum"), over, 0, 1)
	alarm("forwarder-throttles", "The forwarder Lambda was throttled (reserved concurrency reached); Lambda keeps the events and retries.",
		lambda("Throttles", "Sum"), over, 0, 1)
	alarm("forwarder-async-event-age",
		fmt.Sprintf("Events waited more than %d s in Lambda's asynchronous queue before the forwarder ran them (throttling or retries).", cfg.AsyncEventAgeAlarmSeconds),
		lambda("AsyncEventAge", "Maximum"), over, float64(cfg.AsyncEventAgeAlarmSeconds*1000), 1)
	alarm("forwarder-destination-delivery-failures",
		"Lambda could not deliver failed invocations to the forwarder's failure queue: those events are lost unless EventBridge still holds them.",
		lambda("DestinationDeliveryFailures", "Sum"), over, 0, 1)
	alarm("forwarder-async-events-dropped",
		"Lambda dropped asynchronous events without running the forwarder successfully (event too old or retries exhausted).",
		lambda("AsyncEventsDropped", "Sum"), over, 0, 1)
	alarm("forwarder-dlq-not-empty", "Events are parked in the forwarder's failure queue and were not forwarded; replay them with kclctl forwarder-dlq replay.",
		p.ForwarderDLQ.MetricApproximateNumberOfMessagesVisible(opts("Maximum", fiveMinutes)), over, 0, 1)
	alarm("forwarder-dlq-oldest-message",
		fmt.Sprintf("The oldest message in the forwarder's failure queue is older than %d s; the queue keeps messages %d days.", cfg.ForwarderDLQAgeAlarmSeconds, dlqRetentionDays),
		p.ForwarderDLQ.MetricApproximateAgeOfOldestMessage(opts("Maximum", fiveMinutes)), over, float64(cfg.ForwarderDLQAgeAlarmSeconds), 1)

	// EventBridge.
	rules := []struct{ alarm, rule string }{
		{"forward-rule-failed-invocations", n.ForwardRule},
		{"malformed-rule-failed-invocations", n.MalformedRule},
	}
	if p.UnroutedRule != nil {
		rules = append(rules, struct{ alarm, rule string }{"unrouted-rule-failed-invocations", n.UnroutedRule})
	}
	var dlqFailures []awscloudwatch.IMetric
	for _, r := range rules {
		dims := map[string]string{"EventBusName": cfg.Name(EventBus), "RuleName": r.rule}
		alarm(r.alarm, fmt.Sprintf("EventBridge failed to deliver events from rule %s to its target (it retries for 24 h, then dead-letters them).", r.rule),
			metric("AWS/Events", "FailedInvocations", "Sum", fiveMinutes, dims), over, 0, 1)
		dlqFailures = append(dlqFailures, metric("AWS/Events", "InvocationsFailedToBeSentToDlq", "Sum", fiveMinutes, dims))
	}
	alarm("rules-dlq-delivery-failures",
		"EventBridge could not put undeliverable events into the forwarder's failure queue: those events are lost (the archive still holds them for replay).",
		sum("events failed to reach the failure queue", dlqFailures), over, 0, 1)
	if p.UnroutedQueue != nil {
		alarm("unrouted-events", fmt.Sprintf("Events whose source does not start with %q are parked in the unrouted queue (not forwarded).", cfg.EventSourcePrefix),
			p.UnroutedQueue.MetricApproximateNumberOfMessagesVisible(opts("Maximum", fiveMinutes)), over, 0, 1)
	}
}
