package infra

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsec2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsecrassets"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsecs"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsevents"
	"github.com/aws/aws-cdk-go/awscdk/v2/awseventstargets"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/jsii-runtime-go"
)

// The autoscaler's scheduled task.
const (
	autoscalerContainer = "autoscaler"
	// autoscalerKclctl is kclctl in the worker image (the Dockerfile copies it there).
	autoscalerKclctl = "/usr/local/bin/kclctl"
	// autoscalerTickOK is the line the task logs after `kclctl autoscale run --once` exited 0: a
	// tick that led and whose decisions, reshards and fleet update all succeeded, or that found
	// another instance leading. The autoscaler-not-running alarm counts these lines, so a task
	// that fails to start, exits with an error or does not run at all raises it.
	autoscalerTickOK = "autoscaler tick ok"
	// autoscalerSilentMinutes is how long without a successful tick raises autoscaler-not-running:
	// the task runs every minute, so this is about a dozen failed or missing runs in a row.
	autoscalerSilentMinutes = 15
)

// autoscalerEndpoints are the APIs only the autoscaler calls: CloudWatch's GetMetricData (the
// streams' write load) and Application Auto Scaling (the fleet's task maximum). Kinesis,
// DynamoDB, Logs and ECR are the fleet's endpoints already.
var autoscalerEndpoints = map[string]awsec2.InterfaceVpcEndpointAwsService{
	"monitoring":              awsec2.InterfaceVpcEndpointAwsService_CLOUDWATCH_MONITORING(),
	"application-autoscaling": awsec2.InterfaceVpcEndpointAwsService_APPLICATION_AUTOSCALING(),
}

// AutoscalerCommand is the shell command of the autoscaler's task: one tick of
// `kclctl autoscale run --once` with the stage's names (the lease table and raw stream come from
// LEASE_TABLE and RAW_STREAM in its environment), then the success line the alarm counts.
//
// The leader id is fixed for the stage: every scheduled run is the same leader, so a run renews
// the lease the previous one took instead of waiting out its 5 minutes as a follower (a --once
// run does not release it). Two runs that overlap (a reshard outlasting the minute) both lead;
// the state rows' conditional writes keep them from acting twice on one decision, and a stream
// being resharded is UPDATING, which the second leaves alone.
func (c Config) AutoscalerCommand(n Names) string {
	streams := make([]string, 0, len(AllStreamNames()))
	for _, s := range AllStreamNames() {
		streams = append(streams, c.Name(s))
	}
	args := []string{
		autoscalerKclctl, "autoscale", "run", "--once", "--json",
		"--source", "cloudwatch",
		"--streams", strings.Join(streams, ","),
		"--id", c.Stage + "-scheduled",
		"--max-shards", strconv.Itoa(c.AutoscalerMaxShards),
		"--ecs-resource", "service/" + n.Cluster + "/" + n.WorkerService,
		"--shards-per-worker", "1",
		"--min-workers", strconv.Itoa(c.MinWorkers),
		"--max-workers", strconv.Itoa(c.AutoscalerMaxShards),
	}
	return strings.Join(args, " ") + fmt.Sprintf(` && echo '{"msg":"%s"}'`, autoscalerTickOK)
}

// addAutoscaler deploys the stream autoscaler (issue 13) when Config.Autoscaler is on: a task
// definition of the worker image running AutoscalerCommand, its own role with exactly the calls
// that command's code makes (TestRolesMatchTheCodesSDKCalls follows them from the code), its log
// group, and an EventBridge schedule running it every minute on the fleet's cluster, subnets and
// security group. Its alarm (autoscaler-not-running) is created with the others.
func (p *Pipeline) addAutoscaler() {
	cfg, n := p.Config, p.Names
	if !cfg.Autoscaler {
		return
	}
	p.AutoscalerLogs = p.logGroup("AutoscalerLogs", "autoscaler")
	p.AutoscalerRole = p.autoscalerTaskRole(*p.Stack.Region())
	task := awsecs.NewFargateTaskDefinition(p.Stack, jsii.String("AutoscalerTask"), &awsecs.FargateTaskDefinitionProps{
		Family:         jsii.String(n.Autoscaler),
		Cpu:            jsii.Number(256),
		MemoryLimitMiB: jsii.Number(512),
		RuntimePlatform: &awsecs.RuntimePlatform{
			CpuArchitecture:       awsecs.CpuArchitecture_ARM64(),
			OperatingSystemFamily: awsecs.OperatingSystemFamily_LINUX(),
		},
		TaskRole: p.AutoscalerRole,
	})
	task.AddContainer(jsii.String(autoscalerContainer), &awsecs.ContainerDefinitionOptions{
		ContainerName: jsii.String(autoscalerContainer),
		// The worker's image (the same asset: built and pushed once), which ships kclctl.
		Image: awsecs.ContainerImage_FromAsset(jsii.String(cfg.WorkerImageDir), &awsecs.AssetImageProps{
			Platform: awsecrassets.Platform_LINUX_ARM64(),
		}),
		Essential: jsii.Bool(true),
		// busybox sh (alpine): the success line follows kclctl's exit status.
		EntryPoint: jsii.Strings("/bin/sh", "-c"),
		Command:    jsii.Strings(cfg.AutoscalerCommand(n)),
		Environment: &map[string]*string{
			"RAW_STREAM":  jsii.String(cfg.Name(RawStream)),
			"LEASE_TABLE": jsii.String(cfg.Name(LeaseTable)),
			"AWS_REGION":  p.Stack.Region(),
		},
		Logging: awsecs.LogDrivers_AwsLogs(&awsecs.AwsLogDriverProps{
			StreamPrefix: jsii.String(autoscalerContainer),
			LogGroup:     p.AutoscalerLogs,
		}),
		ReadonlyRootFilesystem: jsii.Bool(true),
	})
	suppress(task, "AwsSolutions-ECS2",
		"The plain environment holds only the raw stream's and the lease table's names and the region; the command line holds stream, cluster and service names and sizing numbers; none of them is secret.")
	suppress(task.ObtainExecutionRole(), "AwsSolutions-IAM5",
		"ecr:GetAuthorizationToken does not support resource-level permissions (AWS requires Resource \"*\"); the image pull itself is scoped to the CDK asset repository.",
		"Resource::*")

	rule := awsevents.NewRule(p.Stack, jsii.String("AutoscalerSchedule"), &awsevents.RuleProps{
		RuleName:    jsii.String(n.Autoscaler),
		Description: jsii.String("Runs the stream autoscaler (kclctl autoscale run --once) every minute"),
		Schedule:    awsevents.Schedule_Rate(awscdk.Duration_Minutes(jsii.Number(1))),
	})
	rule.AddTarget(awseventstargets.NewEcsTask(&awseventstargets.EcsTaskProps{
		Cluster:         p.Cluster,
		TaskDefinition:  task,
		TaskCount:       jsii.Number(1),
		SubnetSelection: p.taskSubnets,
		SecurityGroups:  &[]awsec2.ISecurityGroup{p.TaskSecurityGroup},
		AssignPublicIp:  jsii.Bool(false),
		PlatformVersion: awsecs.FargatePlatformVersion_LATEST,
		// A run that cannot start is not retried: the next minute's run is the retry.
		RetryAttempts: jsii.Number(0),
	}))
	// The role CDK makes for EventBridge to run the task: RunTask of this task definition on this
	// cluster, PassRole of its two roles, and TagResource on the tasks it starts, whose ids exist
	// only once they run.
	clusterID := *p.Stack.GetLogicalId(p.Cluster.Node().DefaultChild().(awscdk.CfnElement))
	suppress(task, "AwsSolutions-IAM5",
		"EventBridge's role tags the tasks it starts with ecs:TagResource on task/<cluster>/*: task ids exist only once a task runs; the cluster is this stack's.",
		fmt.Sprintf("Resource::arn:<AWS::Partition>:ecs:<AWS::Region>:*:task/<%s>/*", clusterID))
}

// autoscalerTaskRole is the autoscaler's role: exactly the calls `kclctl autoscale run` makes
// (TestRolesMatchTheCodesSDKCalls follows them from its entry point), on exact ARNs where the
// action has resource-level permissions.
func (p *Pipeline) autoscalerTaskRole(region string) awsiam.Role {
	role := awsiam.NewRole(p.Stack, jsii.String("AutoscalerTaskRole"), &awsiam.RoleProps{
		AssumedBy:   awsiam.NewServicePrincipal(jsii.String("ecs-tasks.amazonaws.com"), nil),
		Description: jsii.String("Kinesis events autoscaler: reshard the streams from their write load, set the fleet's task maximum"),
	})
	add := func(sid string, actions []string, resources *[]*string, cond *map[string]any) {
		role.AddToPrincipalPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
			Sid: jsii.String(sid), Actions: jsii.Strings(actions...), Resources: resources, Conditions: cond,
		}))
	}
	// internal/autoscale and internal/reshard: each stream's status and shards, and the reshard
	// (UpdateShardCount; split/merge where the endpoint lacks it).
	add("ReshardStreams", []string{
		"kinesis:DescribeStreamSummary", "kinesis:ListShards", "kinesis:UpdateShardCount", "kinesis:SplitShard", "kinesis:MergeShards",
	}, p.streamArns(AllStreamNames()), nil)
	// The fleet's view (kclctl's checkpoints report): the age of the record after each
	// checkpoint on the raw stream.
	add("MeasureFleetLag", []string{"kinesis:GetShardIterator", "kinesis:GetRecords"}, p.streamArns([]string{RawStream}), nil)
	// The leader lease and the state rows ("__autoscaler#..."), and the lease rows the fleet's
	// view reads.
	add("LeaseTable", []string{"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Scan"}, &[]*string{p.LeaseTable.TableArn()}, nil)
	// Actions without resource-level permissions: the account's shard headroom, the streams'
	// load, the scalable targets (CloudFormation exposes no ARN for the fleet's target).
	add("AccountWide", []string{
		"kinesis:DescribeLimits", "cloudwatch:GetMetricData",
		"application-autoscaling:DescribeScalableTargets", "application-autoscaling:RegisterScalableTarget",
	}, jsii.Strings("*"), nil)
	// Application Auto Scaling checks that the caller of RegisterScalableTarget for an ECS
	// service may describe and update that service.
	add("FleetService", []string{"ecs:DescribeServices", "ecs:UpdateService"}, &[]*string{p.Workers.ServiceArn()}, nil)
	add("DataKeysViaPipelineServices", []string{"kms:Decrypt", "kms:GenerateDataKey"},
		&[]*string{p.Key.KeyArn()}, viaServices(region, "kinesis", "dynamodb"))
	suppress(role, "AwsSolutions-IAM5",
		"kinesis:DescribeLimits, cloudwatch:GetMetricData and application-autoscaling:DescribeScalableTargets have no resource-level permissions; application-autoscaling:RegisterScalableTarget is scoped by a scalable-target ARN that CloudFormation does not expose for the fleet's target, so it is granted on \"*\" too; the ecs: grants that go with it name the fleet's service only.",
		"Resource::*")
	return role
}
