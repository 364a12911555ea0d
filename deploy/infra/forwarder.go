package infra

import (
	"fmt"
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsevents"
	"github.com/aws/aws-cdk-go/awscdk/v2/awseventstargets"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssqs"
	"github.com/aws/jsii-runtime-go"
)

// Delivery settings of the EventBridge -> forwarder path.
const (
	// ruleRetryAttempts and ruleMaxEventAge: EventBridge's maximum, so an event is parked in the
	// DLQ only after a day of failed deliveries.
	ruleRetryAttempts = 185
	ruleMaxEventAge   = 24 // hours
	// lambdaRetryAttempts and lambdaMaxEventAge govern Lambda's own retries of an asynchronous
	// invocation whose function returned an error (for example a Kinesis throttle); after them
	// the event goes to the DLQ.
	lambdaRetryAttempts = 2
	lambdaMaxEventAge   = 6 // hours, Lambda's maximum
	dlqRetentionDays    = 14
)

// Environment variables of the forwarder (forwarder.EnvRawStream, ...; contract_test.go checks
// the forwarder reads each).
const (
	envForwarderRaw        = "FORWARDER_RAW_STREAM"
	envForwarderQuarantine = "FORWARDER_QUARANTINE_STREAM"
	envForwarderPII        = "FORWARDER_PII_PATHS"
	envForwarderNamespace  = "FORWARDER_METRICS_NAMESPACE"
)

// addForwarder creates the custom bus with its archive, the forwarder function with its own
// narrowly scoped role, the encrypted dead-letter queue, and the rules.
func (p *Pipeline) addForwarder() {
	cfg, n := p.Config, p.Names
	region := *p.Stack.Region()

	p.ForwarderLogs = p.logGroup("ForwarderLogs", "forwarder")

	p.ForwarderDLQ = p.queue("ForwarderDLQ", n.ForwarderDLQ)
	suppress(p.ForwarderDLQ, "AwsSolutions-SQS3",
		"This queue is itself the dead-letter queue of the EventBridge rule targets and of the forwarder's asynchronous invocations; nothing consumes from it automatically (kclctl forwarder-dlq replay does, by hand), so a further redrive queue would have no failures to catch. Its depth and its oldest message are alarmed.")

	// The function's role: PutRecords on the raw and quarantine streams and nothing else of
	// Kinesis (the forwarder calls only PutRecords: iam_test.go keeps this in sync with the
	// code), data keys through Kinesis and SQS only, its own log group, and SendMessage on the
	// DLQ (Lambda uses the function's role to deliver failed asynchronous invocations there).
	role := awsiam.NewRole(p.Stack, jsii.String("ForwarderRole"), &awsiam.RoleProps{
		AssumedBy:   awsiam.NewServicePrincipal(jsii.String("lambda.amazonaws.com"), nil),
		Description: jsii.String("Forwarder Lambda: put to the raw and quarantine streams only"),
	})
	role.AddToPrincipalPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:       jsii.String("PutRawAndQuarantine"),
		Actions:   jsii.Strings("kinesis:PutRecords"),
		Resources: p.streamArns([]string{RawStream, QuarantineStream}),
	}))
	role.AddToPrincipalPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:        jsii.String("DataKeysForStreamsAndDLQ"),
		Actions:    jsii.Strings("kms:GenerateDataKey", "kms:Decrypt"),
		Resources:  &[]*string{p.Key.KeyArn()},
		Conditions: viaServices(region, "kinesis", "sqs"),
	}))
	role.AddToPrincipalPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:       jsii.String("FailedInvocationsToDLQ"),
		Actions:   jsii.Strings("sqs:SendMessage"),
		Resources: &[]*string{p.ForwarderDLQ.QueueArn()},
	}))
	role.AddToPrincipalPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:       jsii.String("OwnLogGroup"),
		Actions:   jsii.Strings("logs:CreateLogStream", "logs:PutLogEvents"),
		Resources: &[]*string{p.ForwarderLogs.LogGroupArn()},
	}))

	p.Forwarder = awslambda.NewFunction(p.Stack, jsii.String("Forwarder"), &awslambda.FunctionProps{
		FunctionName:                 jsii.String(n.Forwarder),
		Description:                  jsii.String("Forwards EventBridge customer events to the raw Kinesis stream (partition key customer_id)"),
		Runtime:                      awslambda.Runtime_PROVIDED_AL2023(),
		Architecture:                 awslambda.Architecture_ARM_64(),
		Handler:                      jsii.String("bootstrap"),
		Code:                         awslambda.Code_FromAsset(jsii.String(cfg.ForwarderAssetDir), nil),
		Role:                         role,
		MemorySize:                   jsii.Number(256),
		Timeout:                      awscdk.Duration_Seconds(jsii.Number(30)),
		ReservedConcurrentExecutions: jsii.Number(float64(cfg.ForwarderReservedConcurrency)),
		LogGroup:                     p.ForwarderLogs,
		LoggingFormat:                awslambda.LoggingFormat_JSON,
		// Lambda's own start and report lines (INFO) cost ~500 bytes of log ingestion per event,
		// about $250 per billion events, for figures its built-in metrics (Duration, Errors,
		// Throttles) already give; WARN keeps its warnings and errors. The forwarder's own lines
		// (no "level": INFO to Lambda) are application logs and not filtered.
		SystemLogLevelV2: awslambda.SystemLogLevel_WARN,
		Environment: &map[string]*string{
			envForwarderRaw:        jsii.String(cfg.Name(RawStream)),
			envForwarderQuarantine: jsii.String(cfg.Name(QuarantineStream)),
			// The same list as the worker's PII_PATHS (fleet.go): one setting.
			envForwarderPII: jsii.String(strings.Join(cfg.PIIPaths, ",")),
			// The forwarder writes its embedded-metric-format lines here (forwarder/emf.go: at
			// once for anything but a clean forward, clean ones gathered for up to 30 s).
			envForwarderNamespace: jsii.String(n.MetricsNamespace),
		},
	})

	// Lambda's handling of failed asynchronous invocations (EventBridge invokes
	// asynchronously): retry, then park the event in the DLQ instead of dropping it.
	awslambda.NewCfnEventInvokeConfig(p.Stack, jsii.String("ForwarderAsyncConfig"), &awslambda.CfnEventInvokeConfigProps{
		FunctionName:             p.Forwarder.FunctionName(),
		Qualifier:                jsii.String("$LATEST"),
		MaximumRetryAttempts:     jsii.Number(lambdaRetryAttempts),
		MaximumEventAgeInSeconds: jsii.Number(lambdaMaxEventAge * 3600),
		DestinationConfig: &awslambda.CfnEventInvokeConfig_DestinationConfigProperty{
			OnFailure: &awslambda.CfnEventInvokeConfig_OnFailureProperty{Destination: p.ForwarderDLQ.QueueArn()},
		},
	})

	p.Bus = awsevents.NewEventBus(p.Stack, jsii.String("Bus"), &awsevents.EventBusProps{
		EventBusName: jsii.String(cfg.Name(EventBus)),
		Description:  jsii.String("Customer behaviour events from producers"),
	})
	// Every event put to the bus, kept for replay (`aws events start-replay`), whether a rule
	// took it or not. Encrypted with EventBridge's own key: CDK's customer-managed-key wiring for
	// archives grants EventBridge kms:DescribeKey without any condition, which this stack's key
	// policy admits for no one (TestKeyPolicyAdmitsOnlyTheseServices).
	awsevents.NewArchive(p.Stack, jsii.String("Archive"), &awsevents.ArchiveProps{
		ArchiveName:    jsii.String(n.Archive),
		Description:    jsii.String("Every event on the bus, for replay"),
		SourceEventBus: p.Bus,
		EventPattern:   &awsevents.EventPattern{Account: &[]*string{p.Stack.Account()}},
		Retention:      awscdk.Duration_Days(jsii.Number(float64(cfg.ArchiveRetentionDays))),
	})

	// The rules partition the bus: every event matches exactly one of them, so none is dropped
	// by a filter. The forwarding rule takes events that carry both identifiers the pipeline
	// keys on; the malformed rule takes the rest to the same forwarder, which quarantines them
	// with a reason; with a source prefix, events from other sources go to the unrouted queue.
	forward := map[string]any{
		"event_id":    []any{map[string]any{"exists": true}},
		"customer_id": []any{map[string]any{"exists": true}},
	}
	malformed := map[string]any{
		"$or": []any{
			map[string]any{"event_id": []any{map[string]any{"exists": false}}},
			map[string]any{"customer_id": []any{map[string]any{"exists": false}}},
		},
	}
	toForwarder := awseventstargets.NewLambdaFunction(p.Forwarder, &awseventstargets.LambdaFunctionProps{
		DeadLetterQueue: p.ForwarderDLQ,
		RetryAttempts:   jsii.Number(ruleRetryAttempts),
		MaxEventAge:     awscdk.Duration_Hours(jsii.Number(ruleMaxEventAge)),
	})
	p.ForwardRule = p.rule(n.ForwardRule, "ForwardRule",
		"Events carrying detail.event_id and detail.customer_id -> forwarder -> raw stream", forward, toForwarder)
	p.MalformedRule = p.rule(n.MalformedRule, "MalformedRule",
		"Events missing detail.event_id or detail.customer_id -> forwarder -> quarantine stream", malformed, toForwarder)
	ruleArns := []string{p.ruleArn(n.ForwardRule), p.ruleArn(n.MalformedRule)}

	if prefix := cfg.EventSourcePrefix; prefix != "" {
		p.UnroutedQueue = p.queue("UnroutedQueue", n.UnroutedQueue)
		suppress(p.UnroutedQueue, "AwsSolutions-SQS3",
			"This queue parks events whose source is outside eventSourcePrefix so that none vanishes; nothing consumes it automatically, its rule dead-letters to the forwarder's failure queue, and its depth is alarmed (unrouted-events).")
		// The target, the queue policy and the key grant are written here rather than by CDK's
		// SqsQueue target, which admits EventBridge to the queue and the key without naming
		// the rule.
		p.UnroutedRule = awsevents.NewRule(p.Stack, jsii.String("UnroutedRule"), &awsevents.RuleProps{
			RuleName:    jsii.String(n.UnroutedRule),
			Description: jsii.String("Events whose source does not start with " + prefix + " -> the unrouted queue (kept and counted, not forwarded)"),
			EventBus:    p.Bus,
			// Replaced below: CDK's typed pattern cannot say anything-but/prefix.
			EventPattern: &awsevents.EventPattern{Source: jsii.Strings(prefix)},
		})
		cfn := p.UnroutedRule.Node().DefaultChild().(awsevents.CfnRule)
		cfn.AddPropertyOverride(jsii.String("EventPattern.source"),
			[]any{map[string]any{"anything-but": map[string]any{"prefix": prefix}}})
		cfn.AddPropertyOverride(jsii.String("Targets"), []any{map[string]any{
			"Id":               "UnroutedQueue",
			"Arn":              p.UnroutedQueue.QueueArn(),
			"DeadLetterConfig": map[string]any{"Arn": p.ForwarderDLQ.QueueArn()},
			"RetryPolicy": map[string]any{
				"MaximumRetryAttempts": ruleRetryAttempts, "MaximumEventAgeInSeconds": ruleMaxEventAge * 3600,
			},
		}})
		for _, q := range []awssqs.Queue{p.UnroutedQueue, p.ForwarderDLQ} {
			q.AddToResourcePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
				Sid:        jsii.String("UnroutedRuleSends"),
				Principals: &[]awsiam.IPrincipal{awsiam.NewServicePrincipal(jsii.String("events.amazonaws.com"), nil)},
				Actions:    jsii.Strings("sqs:SendMessage"),
				Resources:  &[]*string{q.QueueArn()},
				Conditions: &map[string]any{"ArnEquals": map[string]any{"aws:SourceArn": p.UnroutedRule.RuleArn()}},
			}))
		}
		ruleArns = append(ruleArns, p.ruleArn(n.UnroutedRule))
	}

	// The rule ARNs are spelled out rather than referenced: a reference would make the key
	// depend on the rules, which depend (through the function and its role) on the streams,
	// which depend on the key.
	grantServiceDataKeys(p.Key, "EventBridgeToEncryptedQueues", "events.amazonaws.com", "ArnEquals", ruleArns...)
}

// queue creates one of the stack's SQS queues: encrypted with the key, TLS only, 14 days.
func (p *Pipeline) queue(id, name string) awssqs.Queue {
	return awssqs.NewQueue(p.Stack, jsii.String(id), &awssqs.QueueProps{
		QueueName:           jsii.String(name),
		Encryption:          awssqs.QueueEncryption_KMS,
		EncryptionMasterKey: p.Key,
		EnforceSSL:          jsii.Bool(true),
		RetentionPeriod:     awscdk.Duration_Days(jsii.Number(dlqRetentionDays)),
		RemovalPolicy:       dataRemovalPolicy,
	})
}

// ruleArn is the ARN of a rule on the custom bus, built from names.
func (p *Pipeline) ruleArn(name string) string {
	return fmt.Sprintf("arn:%s:events:%s:%s:rule/%s/%s", *p.Stack.Partition(), *p.Stack.Region(), *p.Stack.Account(), p.Config.Name(EventBus), name)
}

// rule creates one rule on the custom bus with its target. The source prefix, when configured,
// is set on the CloudFormation pattern directly (CDK's typed pattern only takes exact strings for
// `source`).
func (p *Pipeline) rule(name, id, desc string, detail map[string]any, target awsevents.IRuleTarget) awsevents.Rule {
	r := awsevents.NewRule(p.Stack, jsii.String(id), &awsevents.RuleProps{
		RuleName:     jsii.String(name),
		Description:  jsii.String(desc),
		EventBus:     p.Bus,
		EventPattern: &awsevents.EventPattern{Detail: &detail},
		Targets:      &[]awsevents.IRuleTarget{target},
	})
	if prefix := p.Config.EventSourcePrefix; prefix != "" {
		cfn := r.Node().DefaultChild().(awsevents.CfnRule)
		cfn.AddPropertyOverride(jsii.String("EventPattern.source"), []any{map[string]any{"prefix": prefix}})
	}
	return r
}

// logGroup creates one of the stack's log groups: encrypted with the key, retained for
// Config.LogRetentionDays, named under the stage's log group prefix.
func (p *Pipeline) logGroup(id, name string) awslogs.LogGroup {
	return awslogs.NewLogGroup(p.Stack, jsii.String(id), &awslogs.LogGroupProps{
		LogGroupName:  jsii.String(p.Names.LogGroupPrefix + name),
		EncryptionKey: p.Key,
		Retention:     retentionDays(p.Config.LogRetentionDays),
		RemovalPolicy: dataRemovalPolicy,
	})
}

func retentionDays(days int) awslogs.RetentionDays {
	switch days {
	case 7:
		return awslogs.RetentionDays_ONE_WEEK
	case 14:
		return awslogs.RetentionDays_TWO_WEEKS
	case 90:
		return awslogs.RetentionDays_THREE_MONTHS
	case 180:
		return awslogs.RetentionDays_SIX_MONTHS
	case 365:
		return awslogs.RetentionDays_ONE_YEAR
	}
	return awslogs.RetentionDays_ONE_MONTH
}
