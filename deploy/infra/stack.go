package infra

import (
	"fmt"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsdynamodb"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsec2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsecs"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsevents"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
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

// Base names of the resources outside names.go. Names derives each stage's names from them.
const (
	workerContainer     = "worker"
	collectorContainer  = "metrics-collector"
	signingKeyInitialID = "k1"
)

// Names are the stage's resource names outside the data plane (the data plane's come from
// names.go through Config.Name).
type Names struct {
	// LogGroupPrefix starts every log group, so the key policy can admit CloudWatch Logs for
	// exactly these groups.
	LogGroupPrefix string
	// AlarmPrefix starts every alarm name; the key policy admits CloudWatch to publish to the
	// encrypted topic for these alarms only.
	AlarmPrefix   string
	KeyAlias      string
	Forwarder     string
	ForwarderDLQ  string
	UnroutedQueue string
	Cluster       string
	WorkerService string
	// Autoscaler names the autoscaler's task family and its schedule rule.
	Autoscaler       string
	Trail            string
	AlarmTopic       string
	SigningSecret    string
	ForwardRule      string
	MalformedRule    string
	UnroutedRule     string
	Archive          string
	Dashboard        string
	MetricsNamespace string
	BreakerMetric    string
	// AutoscalerMetric counts the autoscaler's successful runs (from its log).
	AutoscalerMetric string
}

// NamesFor derives the stage's names.
func NamesFor(stage string) Names {
	p := stage + "-kinesis-events"
	return Names{
		LogGroupPrefix:   "/kinesis-events/" + stage + "/",
		AlarmPrefix:      p + "-",
		KeyAlias:         "alias/" + p,
		Forwarder:        p + "-forwarder",
		ForwarderDLQ:     stage + "-" + ForwarderDLQ, // = p + "-forwarder-dlq"; kclctl's default before the stage
		UnroutedQueue:    p + "-unrouted",
		Cluster:          p,
		WorkerService:    p + "-worker",
		Autoscaler:       p + "-autoscaler",
		Trail:            p + "-audit",
		AlarmTopic:       p + "-alarms",
		SigningSecret:    "kinesis-events/" + stage + "/signing-keys",
		ForwardRule:      stage + "-customer-events-forward",
		MalformedRule:    stage + "-customer-events-malformed",
		UnroutedRule:     stage + "-customer-events-unrouted",
		Archive:          stage + "-customer-events",
		Dashboard:        p,
		MetricsNamespace: "KinesisEventsPipeline/" + stage,
		BreakerMetric:    "BreakerOpened",
		AutoscalerMetric: "AutoscalerTicksOK",
	}
}

// Pipeline is the stack and the resources tests and callers need to reach.
type Pipeline struct {
	Stack  awscdk.Stack
	Config Config
	Names  Names

	Key awskms.Key
	// Streams maps each stream's base name (names.go) to its stream.
	Streams     map[string]awskinesis.Stream
	LeaseTable  awsdynamodb.Table
	DedupeTable awsdynamodb.Table
	SigningKeys awssecretsmanager.Secret

	Bus           awsevents.EventBus
	ForwardRule   awsevents.Rule
	MalformedRule awsevents.Rule
	// UnroutedRule is nil unless Config.EventSourcePrefix is set.
	UnroutedRule  awsevents.Rule
	UnroutedQueue awssqs.Queue
	Forwarder     awslambda.Function
	ForwarderDLQ  awssqs.Queue
	ForwarderLogs awslogs.LogGroup

	Vpc     awsec2.Vpc
	Cluster awsecs.Cluster
	// TaskSecurityGroup is the tasks' security group (the workers' and the autoscaler's): no
	// inbound, HTTPS out.
	TaskSecurityGroup awsec2.SecurityGroup
	taskSubnets       *awsec2.SubnetSelection
	Workers           awsecs.FargateService
	WorkerLogs        awslogs.LogGroup
	WorkerMetrics     awslogs.LogGroup
	WorkerRole        awsiam.Role
	// The autoscaler's scheduled task; nil when Config.Autoscaler is off.
	AutoscalerRole awsiam.Role
	AutoscalerLogs awslogs.LogGroup
	AlarmTopic     awssns.Topic
}

// NewPipeline builds the whole stack from a validated Config. id is the stack name; callers use
// cfg.StackName().
func NewPipeline(scope constructs.Construct, id string, props *awscdk.StackProps, cfg Config) (*Pipeline, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("pipeline stack: %w", err)
	}
	if props == nil {
		props = &awscdk.StackProps{}
	}
	if props.Description == nil {
		props.Description = jsii.String("Kinesis events pipeline (" + cfg.Stage + "): EventBridge -> forwarder Lambda -> Kinesis -> KCL worker fleet (ECS Fargate) -> per-type analytics streams")
	}
	stack := awscdk.NewStack(scope, jsii.String(id), props)
	p := &Pipeline{Stack: stack, Config: cfg, Names: NamesFor(cfg.Stage), Streams: map[string]awskinesis.Stream{}}

	p.Key = p.newKey()
	p.addData()
	p.addForwarder()
	p.addFleet()
	p.addAutoscaler() // needs the fleet's cluster, subnets and service; its alarm is in addAlarms
	p.addAlarms()
	p.addDashboard()
	p.addAudit()
	p.addOutputs()
	return p, nil
}

// AllStreamNames lists every stream's base name, raw first.
func AllStreamNames() []string {
	names := []string{RawStream}
	for _, t := range StandardTypes {
		names = append(names, AnalyticsStream(t))
	}
	return append(names, OtherStream, QuarantineStream, DLQStream, LateStream)
}

// OutputStreamNames lists the base names of the streams the worker writes to.
func OutputStreamNames() []string { return AllStreamNames()[1:] }

// Routes is the worker's ROUTES value for a stage: event type -> analytics stream, plus
// "default" for every other type.
func (c Config) Routes() map[string]string {
	r := map[string]string{"default": c.Name(OtherStream)}
	for _, t := range StandardTypes {
		r[t] = c.Name(AnalyticsStream(t))
	}
	return r
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
	c := p.Config
	out("EventBusName", *p.Bus.EventBusName(), "Producers PutEvents here")
	out("RawStreamName", c.Name(RawStream), "Raw stream written by the forwarder (kclctl --stream, RAW_STREAM)")
	out("DLQStreamName", c.Name(DLQStream), "Dead-letter stream of the worker (kclctl --dlq-stream, DLQ_STREAM)")
	out("LeaseTableName", c.Name(LeaseTable), "KCL lease/checkpoint table (kclctl --table, LEASE_TABLE)")
	out("ForwarderDLQUrl", *p.ForwarderDLQ.QueueUrl(), "The forwarder's failure queue (kclctl forwarder-dlq replay)")
	out("ClusterName", p.Names.Cluster, "ECS cluster of the worker fleet")
	out("SigningKeysSecretArn", *p.SigningKeys.SecretArn(), "Secret holding the HMAC signing keys; the workers re-read it every minute")
	out("AlarmTopicArn", *p.AlarmTopic.TopicArn(), "SNS topic the alarms notify")
}
