package infra

import (
	"encoding/json"
	"fmt"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsapplicationautoscaling"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatch"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsec2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsecrassets"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsecs"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/jsii-runtime-go"
)

// WorkerHealthCheck is the container health check: busybox wget (present in
// the alpine runtime image) against the worker's readiness endpoint.
var WorkerHealthCheck = []string{
	"CMD", "wget", "-q", "-T", "3", "-O", "/dev/null", fmt.Sprintf("http://127.0.0.1:%d/readyz", MetricsPort),
}

// addFleet creates the VPC, the cluster and the worker service with its
// task role, health check and autoscaling.
func (p *Pipeline) addFleet() {
	cfg := p.Config
	region := *p.Stack.Region()

	flowLogs := p.logGroup("VpcFlowLogs", "vpc-flow")
	vpc := awsec2.NewVpc(p.Stack, jsii.String("Vpc"), &awsec2.VpcProps{
		MaxAzs:                       jsii.Number(2),
		NatGateways:                  jsii.Number(float64(cfg.NatGateways)),
		RestrictDefaultSecurityGroup: jsii.Bool(false),
		SubnetConfiguration: &[]*awsec2.SubnetConfiguration{
			{Name: jsii.String("public"), SubnetType: awsec2.SubnetType_PUBLIC, CidrMask: jsii.Number(24)},
			{Name: jsii.String("workers"), SubnetType: awsec2.SubnetType_PRIVATE_WITH_EGRESS, CidrMask: jsii.Number(22)},
		},
		FlowLogs: &map[string]*awsec2.FlowLogOptions{
			"all": {
				Destination: awsec2.FlowLogDestination_ToCloudWatchLogs(flowLogs, nil),
				TrafficType: awsec2.FlowLogTrafficType_ALL,
			},
		},
		// DynamoDB and S3 (ECR image layers) traffic stays on the AWS network.
		GatewayEndpoints: &map[string]*awsec2.GatewayVpcEndpointOptions{
			"dynamodb": {Service: awsec2.GatewayVpcEndpointAwsService_DYNAMODB()},
			"s3":       {Service: awsec2.GatewayVpcEndpointAwsService_S3()},
		},
	})

	cluster := awsecs.NewCluster(p.Stack, jsii.String("Cluster"), &awsecs.ClusterProps{
		ClusterName:         jsii.String(clusterName),
		Vpc:                 vpc,
		ContainerInsightsV2: awsecs.ContainerInsights_ENABLED,
	})

	taskRole := p.workerTaskRole(region)
	task := awsecs.NewFargateTaskDefinition(p.Stack, jsii.String("WorkerTask"), &awsecs.FargateTaskDefinitionProps{
		Family:         jsii.String(workerServiceName),
		Cpu:            jsii.Number(float64(cfg.WorkerCPU)),
		MemoryLimitMiB: jsii.Number(float64(cfg.WorkerMemoryMiB)),
		RuntimePlatform: &awsecs.RuntimePlatform{
			CpuArchitecture:       awsecs.CpuArchitecture_ARM64(),
			OperatingSystemFamily: awsecs.OperatingSystemFamily_LINUX(),
		},
		TaskRole: taskRole,
	})

	routes, err := json.Marshal(Routes())
	if err != nil { // a map[string]string always marshals
		panic(fmt.Sprintf("routes: %v", err))
	}
	p.WorkerLogs = p.logGroup("WorkerLogs", "worker")
	healthCheck := make([]*string, 0, len(WorkerHealthCheck))
	for _, s := range WorkerHealthCheck {
		healthCheck = append(healthCheck, jsii.String(s))
	}
	task.AddContainer(jsii.String(workerContainer), &awsecs.ContainerDefinitionOptions{
		ContainerName: jsii.String(workerContainer),
		// Built from the repository's Dockerfile. Synth only stages the build
		// context (honouring .dockerignore); the image is built and pushed by
		// `cdk deploy`, which needs Docker.
		Image: awsecs.ContainerImage_FromAsset(jsii.String(cfg.WorkerImageDir), &awsecs.AssetImageProps{
			Platform: awsecrassets.Platform_LINUX_ARM64(),
		}),
		Essential: jsii.Bool(true),
		Environment: &map[string]*string{
			"RAW_STREAM":              jsii.String(StreamRaw),
			"LEASE_TABLE":             jsii.String(cfg.LeaseTable),
			"DEDUPE_TABLE":            jsii.String(cfg.DedupeTable),
			"QUARANTINE_STREAM":       jsii.String(StreamQuarantine),
			"DLQ_STREAM":              jsii.String(StreamDLQ),
			"LATE_STREAM":             jsii.String(StreamLate),
			"ROUTES":                  jsii.String(string(routes)),
			"SIGNING_KEYS_SECRET_ARN": p.SigningKeys.SecretArn(),
			"METRICS_ADDR":            jsii.String(fmt.Sprintf(":%d", MetricsPort)),
			// The worker's region defaults to us-east-1; pin it to the stack's.
			"AWS_REGION": p.Stack.Region(),
		},
		// ECS reads the key set from Secrets Manager when the task starts and
		// hands it to the worker as SIGNING_KEYS (the worker's -keys); the
		// task role can also read it by SIGNING_KEYS_SECRET_ARN. A changed key
		// set reaches running workers with the next deployment.
		Secrets: &map[string]awsecs.Secret{
			"SIGNING_KEYS": awsecs.Secret_FromSecretsManager(p.SigningKeys, nil),
		},
		PortMappings: &[]*awsecs.PortMapping{{
			Name: jsii.String("metrics"), ContainerPort: jsii.Number(MetricsPort), Protocol: awsecs.Protocol_TCP,
		}},
		HealthCheck: &awsecs.HealthCheck{
			Command:     &healthCheck,
			Interval:    awscdk.Duration_Seconds(jsii.Number(15)),
			Timeout:     awscdk.Duration_Seconds(jsii.Number(5)),
			Retries:     jsii.Number(3),
			StartPeriod: awscdk.Duration_Seconds(jsii.Number(60)),
		},
		Logging: awsecs.LogDrivers_AwsLogs(&awsecs.AwsLogDriverProps{
			StreamPrefix: jsii.String(workerContainer),
			LogGroup:     p.WorkerLogs,
		}),
		ReadonlyRootFilesystem: jsii.Bool(true),
		// Time for SIGTERM's graceful hand-off: finish the in-flight batch,
		// checkpoint, release leases. Fargate's maximum is 120 s.
		StopTimeout: awscdk.Duration_Seconds(jsii.Number(90)),
	})
	suppress(task, "AwsSolutions-ECS2",
		"The plain environment holds only resource names, the region, the routing table and a port, none of them secret; the signing keys come from Secrets Manager through the container's secrets (valueFrom), never as a plain value.")
	// The execution role is generated by CDK for pulling the image asset and
	// writing the worker's log group; ECR's GetAuthorizationToken has no
	// resource-level permissions, so its Resource must be "*".
	suppress(task.ObtainExecutionRole(), "AwsSolutions-IAM5",
		"ecr:GetAuthorizationToken does not support resource-level permissions (AWS requires Resource \"*\"); the image pull itself is scoped to the CDK asset repository.",
		"Resource::*")

	sg := awsec2.NewSecurityGroup(p.Stack, jsii.String("WorkerSecurityGroup"), &awsec2.SecurityGroupProps{
		Vpc:              vpc,
		Description:      jsii.String("Kinesis events workers: no inbound; outbound HTTPS to AWS APIs only"),
		AllowAllOutbound: jsii.Bool(false),
	})
	sg.AddEgressRule(awsec2.Peer_AnyIpv4(), awsec2.Port_Tcp(jsii.Number(443)), jsii.String("HTTPS to AWS service endpoints"), nil)

	p.Workers = awsecs.NewFargateService(p.Stack, jsii.String("Workers"), &awsecs.FargateServiceProps{
		ServiceName:    jsii.String(workerServiceName),
		Cluster:        cluster,
		TaskDefinition: task,
		// No DesiredCount: CloudFormation would reset the fleet to it on every
		// deploy, shrinking a fleet autoscaling grew during a spike (and moving
		// leases mid-spike). ECS starts one task; autoscaling's minimum (below)
		// raises it to MinWorkers and owns the count from then on.
		MinHealthyPercent: jsii.Number(100),
		MaxHealthyPercent: jsii.Number(200),
		CircuitBreaker:    &awsecs.DeploymentCircuitBreaker{Enable: jsii.Bool(true), Rollback: jsii.Bool(true)},
		VpcSubnets:        &awsec2.SubnetSelection{SubnetType: awsec2.SubnetType_PRIVATE_WITH_EGRESS},
		SecurityGroups:    &[]awsec2.ISecurityGroup{sg},
		AssignPublicIp:    jsii.Bool(false),
		PlatformVersion:   awsecs.FargatePlatformVersion_LATEST,
	})

	// A KCL worker without a lease idles, so the fleet never exceeds the raw
	// stream's shard count. CPU tracks the steady state; iterator age adds
	// workers when the fleet falls behind.
	scaling := p.Workers.AutoScaleTaskCount(&awsapplicationautoscaling.EnableScalingProps{
		MinCapacity: jsii.Number(float64(cfg.MinWorkers)),
		MaxCapacity: jsii.Number(float64(cfg.RawShards)),
	})
	scaling.ScaleOnCpuUtilization(jsii.String("Cpu"), &awsecs.CpuUtilizationScalingProps{
		TargetUtilizationPercent: jsii.Number(60),
		ScaleInCooldown:          awscdk.Duration_Minutes(jsii.Number(5)),
		ScaleOutCooldown:         awscdk.Duration_Minutes(jsii.Number(1)),
	})
	scaling.ScaleOnMetric(jsii.String("IteratorAge"), &awsapplicationautoscaling.BasicStepScalingPolicyProps{
		Metric: p.Streams[StreamRaw].MetricGetRecordsIteratorAgeMilliseconds(&awscloudwatch.MetricOptions{
			Statistic: jsii.String("Maximum"), Period: awscdk.Duration_Minutes(jsii.Number(1)),
		}),
		ScalingSteps: &[]*awsapplicationautoscaling.ScalingInterval{
			{Lower: jsii.Number(30_000), Change: jsii.Number(1)},
			{Lower: jsii.Number(120_000), Change: jsii.Number(2)},
		},
		AdjustmentType: awsapplicationautoscaling.AdjustmentType_CHANGE_IN_CAPACITY,
		Cooldown:       awscdk.Duration_Minutes(jsii.Number(2)),
	})
}

// workerTaskRole is the role the worker's code runs with: every statement
// names exact stream, table, key and secret ARNs.
func (p *Pipeline) workerTaskRole(region string) awsiam.Role {
	role := awsiam.NewRole(p.Stack, jsii.String("WorkerTaskRole"), &awsiam.RoleProps{
		AssumedBy:   awsiam.NewServicePrincipal(jsii.String("ecs-tasks.amazonaws.com"), nil),
		Description: jsii.String("Kinesis events worker: read events-raw, write the output streams, lease and dedupe tables"),
	})
	add := func(sid string, actions []string, resources *[]*string, cond *map[string]any) {
		role.AddToPrincipalPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
			Sid: jsii.String(sid), Actions: jsii.Strings(actions...), Resources: resources, Conditions: cond,
		}))
	}
	add("ReadRawStream", []string{
		"kinesis:GetRecords", "kinesis:GetShardIterator", "kinesis:DescribeStream",
		"kinesis:DescribeStreamSummary", "kinesis:ListShards",
	}, p.streamArns([]string{StreamRaw}), nil)
	add("WriteOutputStreams", []string{
		"kinesis:PutRecord", "kinesis:PutRecords", "kinesis:DescribeStreamSummary",
	}, p.streamArns(OutputStreamNames()), nil)
	add("LeaseAndDedupeItems", []string{
		"dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:PutItem", "dynamodb:UpdateItem",
		"dynamodb:DeleteItem", "dynamodb:BatchWriteItem", "dynamodb:ConditionCheckItem",
		"dynamodb:Query", "dynamodb:Scan", "dynamodb:DescribeTable",
	}, &[]*string{p.LeaseTable.TableArn(), p.DedupeTable.TableArn()}, nil)
	add("ReadSigningKeys", []string{
		"secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret",
	}, &[]*string{p.SigningKeys.SecretArn()}, nil)
	add("DataKeysViaPipelineServices", []string{
		"kms:Decrypt", "kms:GenerateDataKey", "kms:DescribeKey",
	}, &[]*string{p.Key.KeyArn()}, viaServices(region, "kinesis", "dynamodb", "secretsmanager"))
	return role
}
