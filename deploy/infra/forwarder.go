package infra

import (
	"fmt"

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
	// ruleRetryAttempts and ruleMaxEventAge: EventBridge's maximum, so an
	// event is parked in the DLQ only after a day of failed deliveries.
	ruleRetryAttempts = 185
	ruleMaxEventAge   = 24 // hours
	// lambdaRetryAttempts and lambdaMaxEventAge govern Lambda's own retries
	// of an asynchronous invocation whose function returned an error (for
	// example a Kinesis throttle); after them the event goes to the DLQ.
	lambdaRetryAttempts = 2
	lambdaMaxEventAge   = 6 // hours, Lambda's maximum
	dlqRetentionDays    = 14
)

// addForwarder creates the custom bus, the forwarder function with its own
// narrowly scoped role, the encrypted dead-letter queue, and the two rules.
func (p *Pipeline) addForwarder() {
	cfg := p.Config
	region := *p.Stack.Region()

	p.ForwarderLogs = p.logGroup("ForwarderLogs", "forwarder")

	p.ForwarderDLQ = awssqs.NewQueue(p.Stack, jsii.String("ForwarderDLQ"), &awssqs.QueueProps{
		QueueName:           jsii.String(forwarderDLQName),
		Encryption:          awssqs.QueueEncryption_KMS,
		EncryptionMasterKey: p.Key,
		EnforceSSL:          jsii.Bool(true),
		RetentionPeriod:     awscdk.Duration_Days(jsii.Number(dlqRetentionDays)),
		RemovalPolicy:       awscdk.RemovalPolicy_RETAIN,
	})
	suppress(p.ForwarderDLQ, "AwsSolutions-SQS3",
		"This queue is itself the dead-letter queue of the EventBridge rule targets and of the forwarder's asynchronous invocations; nothing consumes from it automatically, so a further redrive queue would have no failures to catch. Its depth is alarmed (ForwarderDLQNotEmpty).")

	// The function's role: PutRecord(s) on the raw and quarantine streams and
	// nothing else of Kinesis, data keys through Kinesis and SQS only, its own
	// log group, and SendMessage on the DLQ (Lambda uses the function's role
	// to deliver failed asynchronous invocations there). No managed policy.
	role := awsiam.NewRole(p.Stack, jsii.String("ForwarderRole"), &awsiam.RoleProps{
		AssumedBy:   awsiam.NewServicePrincipal(jsii.String("lambda.amazonaws.com"), nil),
		Description: jsii.String("Forwarder Lambda: put to events-raw and events-quarantine only"),
	})
	role.AddToPrincipalPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:       jsii.String("PutRawAndQuarantine"),
		Actions:   jsii.Strings("kinesis:PutRecord", "kinesis:PutRecords"),
		Resources: p.streamArns([]string{StreamRaw, StreamQuarantine}),
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
		FunctionName:                 jsii.String(forwarderName),
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
		// The forwarder's own variable names (forwarder.EnvRawStream,
		// forwarder.EnvQuarantineStream); contract_test.go checks them.
		Environment: &map[string]*string{
			"FORWARDER_RAW_STREAM":        jsii.String(StreamRaw),
			"FORWARDER_QUARANTINE_STREAM": jsii.String(StreamQuarantine),
		},
	})

	// Lambda's handling of failed asynchronous invocations (EventBridge
	// invokes asynchronously): retry, then park the event in the DLQ instead
	// of dropping it.
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
		EventBusName: jsii.String(cfg.EventBusName),
		Description:  jsii.String("Customer behaviour events from producers"),
	})

	// Content filtering: the forwarding rule takes only events that carry
	// both identifiers the pipeline keys on.
	forward := map[string]any{
		"event_id":    []any{map[string]any{"exists": true}},
		"customer_id": []any{map[string]any{"exists": true}},
	}
	p.ForwardRule = p.rule(forwardRuleName, "ForwardRule",
		"Events carrying detail.event_id and detail.customer_id -> forwarder -> events-raw", forward)
	// The complement goes to the same forwarder, which quarantines what it
	// cannot forward with a reason: a filter must not drop events silently.
	malformed := map[string]any{
		"$or": []any{
			map[string]any{"event_id": []any{map[string]any{"exists": false}}},
			map[string]any{"customer_id": []any{map[string]any{"exists": false}}},
		},
	}
	p.MalformedRule = p.rule(malformedRuleName, "MalformedRule",
		"Events missing detail.event_id or detail.customer_id -> forwarder -> events-quarantine", malformed)

	// The rule ARNs are spelled out rather than referenced: a reference
	// would make the key depend on the rules, which depend (through the
	// function and its role) on the streams, which depend on the key.
	grantServiceDataKeys(p.Key, "EventBridgeToEncryptedDLQ", "events.amazonaws.com", "ArnEquals",
		p.ruleArn(forwardRuleName), p.ruleArn(malformedRuleName))
}

// ruleArn is the ARN of a rule on the custom bus, built from names.
func (p *Pipeline) ruleArn(name string) string {
	return fmt.Sprintf("arn:%s:events:%s:%s:rule/%s/%s", *p.Stack.Partition(), *p.Stack.Region(), *p.Stack.Account(), p.Config.EventBusName, name)
}

// rule creates one rule on the custom bus targeting the forwarder with the
// retry policy and dead-letter queue. The source prefix, when configured, is
// set on the CloudFormation pattern directly (CDK's typed pattern only takes
// exact strings for `source`).
func (p *Pipeline) rule(name, id, desc string, detail map[string]any) awsevents.Rule {
	r := awsevents.NewRule(p.Stack, jsii.String(id), &awsevents.RuleProps{
		RuleName:     jsii.String(name),
		Description:  jsii.String(desc),
		EventBus:     p.Bus,
		EventPattern: &awsevents.EventPattern{Detail: &detail},
		Targets: &[]awsevents.IRuleTarget{
			awseventstargets.NewLambdaFunction(p.Forwarder, &awseventstargets.LambdaFunctionProps{
				DeadLetterQueue: p.ForwarderDLQ,
				RetryAttempts:   jsii.Number(ruleRetryAttempts),
				MaxEventAge:     awscdk.Duration_Hours(jsii.Number(ruleMaxEventAge)),
			}),
		},
	})
	if prefix := p.Config.EventSourcePrefix; prefix != "" {
		cfn := r.Node().DefaultChild().(awsevents.CfnRule)
		cfn.AddPropertyOverride(jsii.String("EventPattern.source"), []any{map[string]any{"prefix": prefix}})
	}
	return r
}

// logGroup creates one of the stack's log groups: encrypted with the key,
// retained for Config.LogRetentionDays, named under logGroupPrefix.
func (p *Pipeline) logGroup(id, name string) awslogs.LogGroup {
	return awslogs.NewLogGroup(p.Stack, jsii.String(id), &awslogs.LogGroupProps{
		LogGroupName:  jsii.String(logGroupPrefix + name),
		EncryptionKey: p.Key,
		Retention:     retentionDays(p.Config.LogRetentionDays),
		RemovalPolicy: awscdk.RemovalPolicy_RETAIN,
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
