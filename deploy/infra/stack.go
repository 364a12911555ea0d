package infra

import (
	"fmt"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsdynamodb"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsecs"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsevents"
	"github.com/aws/aws-cdk-go/awscdk/v2/awskinesis"
	"github.com/aws/aws-cdk-go/awscdk/v2/awskms"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssecretsmanager"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssns"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssqs"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"
)

// Names of the resources outside the data plane. Log groups share one prefix
// so the key policy can admit CloudWatch Logs for exactly these groups.
const (
	logGroupPrefix      = "/kinesis-events/"
	forwarderName       = "kinesis-events-forwarder"
	clusterName         = "kinesis-events"
	workerServiceName   = "kinesis-events-worker"
	trailName           = "kinesis-events-audit"
	metricsNamespace    = "KinesisEventsPipeline"
	breakerMetricName   = "BreakerOpened"
	signingSecretName   = "kinesis-events/signing-keys"
	signingSeedName     = "kinesis-events/signing-key-seed"
	forwardRuleName     = "customer-events-forward"
	malformedRuleName   = "customer-events-malformed"
	forwarderDLQName    = "kinesis-events-forwarder-dlq"
	alarmTopicName      = "kinesis-events-alarms"
	workerContainer     = "worker"
	signingKeyInitialID = "k1"
)

// Pipeline is the stack and the resources tests and callers need to reach.
type Pipeline struct {
	Stack  awscdk.Stack
	Config Config

	Key awskms.Key
	// Streams maps each stream name to its stream.
	Streams     map[string]awskinesis.Stream
	LeaseTable  awsdynamodb.Table
	DedupeTable awsdynamodb.Table
	SigningKeys awssecretsmanager.Secret

	Bus           awsevents.EventBus
	ForwardRule   awsevents.Rule
	MalformedRule awsevents.Rule
	Forwarder     awslambda.Function
	ForwarderDLQ  awssqs.Queue
	ForwarderLogs awslogs.LogGroup
	Workers       awsecs.FargateService
	WorkerLogs    awslogs.LogGroup
	AlarmTopic    awssns.Topic
}

// NewPipeline builds the whole stack from a validated Config.
func NewPipeline(scope constructs.Construct, id string, props *awscdk.StackProps, cfg Config) (*Pipeline, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("pipeline stack: %w", err)
	}
	if props == nil {
		props = &awscdk.StackProps{}
	}
	if props.Description == nil {
		props.Description = jsii.String("Kinesis events pipeline: EventBridge -> forwarder Lambda -> Kinesis -> KCL worker fleet (ECS Fargate) -> per-type analytics streams")
	}
	stack := awscdk.NewStack(scope, jsii.String(id), props)
	p := &Pipeline{Stack: stack, Config: cfg, Streams: map[string]awskinesis.Stream{}}

	p.Key = newKey(stack)
	p.addData()
	p.addForwarder()
	p.addFleet()
	p.addAlarms()
	p.addAudit()
	p.addOutputs()
	return p, nil
}

// AllStreamNames lists every stream the stack creates, raw first.
func AllStreamNames() []string {
	names := []string{StreamRaw}
	for _, t := range EventTypes {
		names = append(names, AnalyticsStreamName(t))
	}
	return append(names, StreamOther, StreamQuarantine, StreamDLQ, StreamLate)
}

// OutputStreamNames lists the streams the worker writes to.
func OutputStreamNames() []string { return AllStreamNames()[1:] }

// Routes is the worker's ROUTES value: event type -> analytics stream, plus
// "default" for every other type.
func Routes() map[string]string {
	r := map[string]string{"default": StreamOther}
	for _, t := range EventTypes {
		r[t] = AnalyticsStreamName(t)
	}
	return r
}

// arn builds an ARN in this stack's partition, region and account.
func (p *Pipeline) arn(service, resource string) *string {
	return jsii.String(fmt.Sprintf("arn:%s:%s:%s:%s:%s", *p.Stack.Partition(), service, *p.Stack.Region(), *p.Stack.Account(), resource))
}

func (p *Pipeline) streamArns(names []string) *[]*string {
	arns := make([]*string, 0, len(names))
	for _, n := range names {
		arns = append(arns, p.Streams[n].StreamArn())
	}
	return &arns
}

func (p *Pipeline) addOutputs() {
	out := func(id, value, desc string) {
		awscdk.NewCfnOutput(p.Stack, jsii.String(id), &awscdk.CfnOutputProps{Value: jsii.String(value), Description: jsii.String(desc)})
	}
	out("EventBusName", *p.Bus.EventBusName(), "Producers PutEvents here")
	out("RawStreamName", StreamRaw, "Raw stream written by the forwarder")
	out("LeaseTableName", p.Config.LeaseTable, "KCL lease/checkpoint table (kclctl reads it)")
	out("ClusterName", clusterName, "ECS cluster of the worker fleet")
	out("SigningKeysSecretArn", *p.SigningKeys.SecretArn(), "Secret holding the HMAC signing keys (key_id -> key)")
	out("AlarmTopicArn", *p.AlarmTopic.TopicArn(), "SNS topic the alarms notify")
}
