package infra

import (
	"fmt"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatch"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatchactions"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssns"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssnssubscriptions"
	"github.com/aws/jsii-runtime-go"
)

// alarmPrefix starts every alarm name; the key policy admits CloudWatch to
// publish to the encrypted topic for these alarms only.
const alarmPrefix = "kinesis-events-"

// AlarmNames lists the alarms the stack creates (tests check each exists).
var AlarmNames = []string{
	alarmPrefix + "raw-iterator-age",
	alarmPrefix + "dlq-records",
	alarmPrefix + "quarantine-records",
	alarmPrefix + "breaker-open",
	alarmPrefix + "forwarder-errors",
	alarmPrefix + "forwarder-throttles",
	alarmPrefix + "forwarder-dlq-not-empty",
	alarmPrefix + "forward-rule-failed-invocations",
	alarmPrefix + "malformed-rule-failed-invocations",
	alarmPrefix + "workers-below-minimum",
}

// addAlarms creates the alarm topic and the alarms. All of them use metrics
// AWS publishes, except breaker-open, which counts the worker's log lines
// matching Config.BreakerOpenLogPattern. The raw stream's
// GetRecords.IteratorAgeMilliseconds is the stream-level maximum of the
// consumers' MillisBehindLatest, so it stands for the per-shard lag here.
func (p *Pipeline) addAlarms() {
	cfg := p.Config
	p.AlarmTopic = awssns.NewTopic(p.Stack, jsii.String("AlarmTopic"), &awssns.TopicProps{
		TopicName:   jsii.String(alarmTopicName),
		DisplayName: jsii.String("Kinesis events pipeline alarms"),
		MasterKey:   p.Key,
		EnforceSSL:  jsii.Bool(true),
	})
	if cfg.AlarmEmail != "" {
		p.AlarmTopic.AddSubscription(awssnssubscriptions.NewEmailSubscription(jsii.String(cfg.AlarmEmail), nil))
	}
	grantServiceDataKeys(p.Key, "CloudWatchAlarmsToEncryptedTopic", "cloudwatch.amazonaws.com", "ArnLike",
		fmt.Sprintf("arn:%s:cloudwatch:%s:%s:alarm:%s*", *p.Stack.Partition(), *p.Stack.Region(), *p.Stack.Account(), alarmPrefix))
	action := awscloudwatchactions.NewSnsAction(p.AlarmTopic)

	minute := awscdk.Duration_Minutes(jsii.Number(1))
	fiveMinutes := awscdk.Duration_Minutes(jsii.Number(5))
	opts := func(stat string, period awscdk.Duration) *awscloudwatch.MetricOptions {
		return &awscloudwatch.MetricOptions{Statistic: jsii.String(stat), Period: period}
	}
	// Missing data is "no events", so not breaching, except for the fleet
	// size, where silence means nothing is running.
	alarmMissing := func(name, desc string, metric awscloudwatch.IMetric, op awscloudwatch.ComparisonOperator, threshold float64, periods int, missing awscloudwatch.TreatMissingData) {
		a := awscloudwatch.NewAlarm(p.Stack, jsii.String("Alarm-"+name), &awscloudwatch.AlarmProps{
			AlarmName:          jsii.String(alarmPrefix + name),
			AlarmDescription:   jsii.String(desc),
			Metric:             metric,
			ComparisonOperator: op,
			Threshold:          jsii.Number(threshold),
			EvaluationPeriods:  jsii.Number(float64(periods)),
			TreatMissingData:   missing,
		})
		a.AddAlarmAction(action)
		a.AddOkAction(action)
	}
	alarm := func(name, desc string, metric awscloudwatch.IMetric, op awscloudwatch.ComparisonOperator, threshold float64, periods int) {
		alarmMissing(name, desc, metric, op, threshold, periods, awscloudwatch.TreatMissingData_NOT_BREACHING)
	}
	over := awscloudwatch.ComparisonOperator_GREATER_THAN_THRESHOLD
	atLeast := awscloudwatch.ComparisonOperator_GREATER_THAN_OR_EQUAL_TO_THRESHOLD

	alarm("raw-iterator-age",
		fmt.Sprintf("The worker fleet is more than %d ms behind on events-raw (max MillisBehindLatest across shards) for 5 minutes.", cfg.IteratorAgeAlarmMillis),
		p.Streams[StreamRaw].MetricGetRecordsIteratorAgeMilliseconds(opts("Maximum", minute)),
		over, float64(cfg.IteratorAgeAlarmMillis), 5)
	alarm("dlq-records",
		"Records were dead-lettered to events-dlq (writes that failed after every retry); replay them with kclctl dlq.",
		p.Streams[StreamDLQ].MetricIncomingRecords(opts("Sum", fiveMinutes)), over, 0, 1)
	alarm("quarantine-records",
		fmt.Sprintf("More than %d records were quarantined in 5 minutes (bad signatures, malformed or hostile input).", cfg.QuarantineAlarmRecords),
		p.Streams[StreamQuarantine].MetricIncomingRecords(opts("Sum", fiveMinutes)), over, float64(cfg.QuarantineAlarmRecords), 1)

	breaker := awslogs.NewMetricFilter(p.Stack, jsii.String("BreakerOpenFilter"), &awslogs.MetricFilterProps{
		LogGroup:        p.WorkerLogs,
		FilterPattern:   awslogs.FilterPattern_Literal(jsii.String(cfg.BreakerOpenLogPattern)),
		MetricNamespace: jsii.String(metricsNamespace),
		MetricName:      jsii.String(breakerMetricName),
		MetricValue:     jsii.String("1"),
		DefaultValue:    jsii.Number(0),
	})
	alarm("breaker-open",
		"A worker's circuit breaker opened: writes to the analytics streams are failing and records are being held back.",
		breaker.Metric(opts("Sum", minute)), atLeast, 1, 1)

	alarm("forwarder-errors", "The forwarder Lambda returned errors (Lambda retries them, then parks the event in the forwarder DLQ).",
		p.Forwarder.MetricErrors(opts("Sum", fiveMinutes)), over, 0, 1)
	alarm("forwarder-throttles", "The forwarder Lambda was throttled (reserved concurrency reached).",
		p.Forwarder.MetricThrottles(opts("Sum", fiveMinutes)), over, 0, 1)
	alarm("forwarder-dlq-not-empty", "Events are parked in the forwarder's SQS dead-letter queue and were not forwarded.",
		p.ForwarderDLQ.MetricApproximateNumberOfMessagesVisible(opts("Maximum", fiveMinutes)), over, 0, 1)
	for _, r := range []struct{ name, rule string }{
		{"forward-rule-failed-invocations", forwardRuleName},
		{"malformed-rule-failed-invocations", malformedRuleName},
	} {
		alarm(r.name, fmt.Sprintf("EventBridge failed to deliver events from rule %s to the forwarder.", r.rule),
			awscloudwatch.NewMetric(&awscloudwatch.MetricProps{
				Namespace:  jsii.String("AWS/Events"),
				MetricName: jsii.String("FailedInvocations"),
				DimensionsMap: &map[string]*string{
					"EventBusName": jsii.String(cfg.EventBusName),
					"RuleName":     jsii.String(r.rule),
				},
				Statistic: jsii.String("Sum"),
				Period:    fiveMinutes,
			}), over, 0, 1)
	}
	alarmMissing("workers-below-minimum",
		fmt.Sprintf("Fewer than %d worker tasks are running.", cfg.MinWorkers),
		awscloudwatch.NewMetric(&awscloudwatch.MetricProps{
			Namespace:  jsii.String("ECS/ContainerInsights"),
			MetricName: jsii.String("RunningTaskCount"),
			DimensionsMap: &map[string]*string{
				"ClusterName": jsii.String(clusterName),
				"ServiceName": jsii.String(workerServiceName),
			},
			Statistic: jsii.String("Minimum"),
			Period:    minute,
		}), awscloudwatch.ComparisonOperator_LESS_THAN_THRESHOLD, float64(cfg.MinWorkers), 5,
		awscloudwatch.TreatMissingData_BREACHING)
}
