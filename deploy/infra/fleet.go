package infra

import (
	"encoding/json"
	"fmt"
	"maps"
	"strconv"
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsapplicationautoscaling"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatch"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsec2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsecrassets"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsecs"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/jsii-runtime-go"
)

// WorkerHealthCheck is the container health check: busybox wget (present in the alpine runtime
// image) against the worker's liveness endpoint. Never /readyz: readiness fails when a
// destination is down or a shard stalls, and a health check that fails then would have ECS kill
// every task at once, turning an outage downstream into a fleet outage.
var WorkerHealthCheck = []string{
	"CMD", "wget", "-q", "-T", "3", "-O", "/dev/null", fmt.Sprintf("http://127.0.0.1:%d/healthz", MetricsPort),
}

// Fleet settings the tests pin.
const (
	// workerStopTimeout is the time SIGTERM's graceful hand-off gets: finish the in-flight batch,
	// checkpoint, release leases. Fargate's maximum is 120 s.
	workerStopTimeout = 90
	// workerShutdownGrace (SHUTDOWN_GRACE) bounds finishing the in-flight batch after SIGTERM. The
	// worker may take longer than the grace by its bounded tail: a KCL call in flight (its read
	// deadline, 10 s), releasing its leases (twice the call timeout, 2 x 3 s) and closing the
	// metrics server (2 s). Grace plus tail stays within workerStopTimeout, so ECS never SIGKILLs
	// a worker that is finishing a batch whose records were written but not checkpointed: their
	// replay by the next owner would be duplicates (the worker's 10 s default cut such batches
	// when scale-in stopped tasks: 5,275 duplicates in a local spike). TestShutdownGraceFitsTheStopTimeout
	// reads the tail from the worker's code.
	workerShutdownGrace = 70
	// workerSubnets names the private subnets of the fleet.
	workerSubnets = "workers"
)

// interfaceEndpoints are the AWS APIs the tasks reach through the VPC (no NAT gateway needed):
// the worker's Kinesis and Secrets Manager calls, the awslogs driver and the metrics sidecar
// (CloudWatch Logs), the image pulls (ECR API and registry), and KMS for code that calls it.
// DynamoDB and S3 (ECR's image layers) are gateway endpoints.
var interfaceEndpoints = map[string]awsec2.InterfaceVpcEndpointAwsService{
	"kinesis":        awsec2.InterfaceVpcEndpointAwsService_KINESIS_STREAMS(),
	"kms":            awsec2.InterfaceVpcEndpointAwsService_KMS(),
	"secretsmanager": awsec2.InterfaceVpcEndpointAwsService_SECRETS_MANAGER(),
	"logs":           awsec2.InterfaceVpcEndpointAwsService_CLOUDWATCH_LOGS(),
	"ecr-api":        awsec2.InterfaceVpcEndpointAwsService_ECR(),
	"ecr-dkr":        awsec2.InterfaceVpcEndpointAwsService_ECR_DOCKER(),
}

// Environment variables of the worker (cmd/worker's flags; contract_test.go checks it reads each).
const (
	envWorkerPII           = "PII_PATHS"
	envWorkerKeysARN       = "SIGNING_KEYS_SECRET_ARN"
	envWorkerShutdownGrace = "SHUTDOWN_GRACE"
	envCollectorConfig     = "AOT_CONFIG_CONTENT"
)

// addFleet creates the VPC, the cluster and the worker service with its task role, health check,
// metrics sidecar and autoscaling.
func (p *Pipeline) addFleet() {
	cfg, n := p.Config, p.Names
	region := *p.Stack.Region()

	flowLogs := p.logGroup("VpcFlowLogs", "vpc-flow")
	subnets := []*awsec2.SubnetConfiguration{
		{Name: jsii.String(workerSubnets), SubnetType: awsec2.SubnetType_PRIVATE_ISOLATED, CidrMask: jsii.Number(22)},
	}
	if cfg.NatGateways > 0 {
		subnets = []*awsec2.SubnetConfiguration{
			{Name: jsii.String("public"), SubnetType: awsec2.SubnetType_PUBLIC, CidrMask: jsii.Number(24)},
			{Name: jsii.String(workerSubnets), SubnetType: awsec2.SubnetType_PRIVATE_WITH_EGRESS, CidrMask: jsii.Number(22)},
		}
	}
	p.Vpc = awsec2.NewVpc(p.Stack, jsii.String("Vpc"), &awsec2.VpcProps{
		MaxAzs:                       jsii.Number(MaxAZs),
		NatGateways:                  jsii.Number(float64(cfg.NatGateways)),
		RestrictDefaultSecurityGroup: jsii.Bool(false),
		SubnetConfiguration:          &subnets,
		FlowLogs: &map[string]*awsec2.FlowLogOptions{
			"all": {
				Destination: awsec2.FlowLogDestination_ToCloudWatchLogs(flowLogs, nil),
				TrafficType: awsec2.FlowLogTrafficType_ALL,
			},
		},
		GatewayEndpoints: &map[string]*awsec2.GatewayVpcEndpointOptions{
			"dynamodb": {Service: awsec2.GatewayVpcEndpointAwsService_DYNAMODB()},
			"s3":       {Service: awsec2.GatewayVpcEndpointAwsService_S3()},
		},
	})
	workerSubnetSel := &awsec2.SubnetSelection{SubnetGroupName: jsii.String(workerSubnets)}

	// Workers: no inbound at all; outbound HTTPS only. Without a NAT gateway the only HTTPS
	// destinations routable from the subnets are the endpoints below and the gateway endpoints.
	sg := awsec2.NewSecurityGroup(p.Stack, jsii.String("WorkerSecurityGroup"), &awsec2.SecurityGroupProps{
		Vpc:              p.Vpc,
		Description:      jsii.String("Kinesis events workers: no inbound; outbound HTTPS to AWS APIs only"),
		AllowAllOutbound: jsii.Bool(false),
	})
	sg.AddEgressRule(awsec2.Peer_AnyIpv4(), awsec2.Port_Tcp(jsii.Number(443)), jsii.String("HTTPS to AWS service endpoints"), nil)
	endpointSG := awsec2.NewSecurityGroup(p.Stack, jsii.String("EndpointSecurityGroup"), &awsec2.SecurityGroupProps{
		Vpc:              p.Vpc,
		Description:      jsii.String("Interface VPC endpoints: HTTPS from the workers only"),
		AllowAllOutbound: jsii.Bool(false),
	})
	endpointSG.AddIngressRule(sg, awsec2.Port_Tcp(jsii.Number(443)), jsii.String("HTTPS from the workers"), nil)
	endpoints := maps.Clone(interfaceEndpoints)
	if cfg.Autoscaler {
		maps.Copy(endpoints, autoscalerEndpoints)
	}
	for id, svc := range endpoints {
		p.Vpc.AddInterfaceEndpoint(jsii.String("Endpoint-"+id), &awsec2.InterfaceVpcEndpointOptions{
			Service:           svc,
			Subnets:           workerSubnetSel,
			SecurityGroups:    &[]awsec2.ISecurityGroup{endpointSG},
			Open:              jsii.Bool(false),
			PrivateDnsEnabled: jsii.Bool(true),
		})
	}

	p.taskSubnets, p.TaskSecurityGroup = workerSubnetSel, sg
	cluster := awsecs.NewCluster(p.Stack, jsii.String("Cluster"), &awsecs.ClusterProps{
		ClusterName:         jsii.String(n.Cluster),
		Vpc:                 p.Vpc,
		ContainerInsightsV2: awsecs.ContainerInsights_ENABLED,
	})
	p.Cluster = cluster

	p.WorkerLogs = p.logGroup("WorkerLogs", "worker")
	p.WorkerMetrics = p.logGroup("WorkerMetricsLogs", "worker-metrics")
	collectorLogs := p.logGroup("CollectorLogs", "metrics-collector")
	p.WorkerRole = p.workerTaskRole(region)
	task := awsecs.NewFargateTaskDefinition(p.Stack, jsii.String("WorkerTask"), &awsecs.FargateTaskDefinitionProps{
		Family:         jsii.String(n.WorkerService),
		Cpu:            jsii.Number(float64(cfg.WorkerCPU)),
		MemoryLimitMiB: jsii.Number(float64(cfg.WorkerMemoryMiB)),
		RuntimePlatform: &awsecs.RuntimePlatform{
			CpuArchitecture:       awsecs.CpuArchitecture_ARM64(),
			OperatingSystemFamily: awsecs.OperatingSystemFamily_LINUX(),
		},
		TaskRole: p.WorkerRole,
	})

	routes, err := json.Marshal(cfg.Routes())
	if err != nil { // a map[string]string always marshals
		panic(fmt.Sprintf("routes: %v", err))
	}
	healthCheck := make([]*string, 0, len(WorkerHealthCheck))
	for _, s := range WorkerHealthCheck {
		healthCheck = append(healthCheck, jsii.String(s))
	}
	task.AddContainer(jsii.String(workerContainer), &awsecs.ContainerDefinitionOptions{
		ContainerName: jsii.String(workerContainer),
		// Built from the repository's Dockerfile. Synth only stages the build context (honouring
		// .dockerignore); the image is built and pushed by `cdk deploy`, which needs Docker.
		Image: awsecs.ContainerImage_FromAsset(jsii.String(cfg.WorkerImageDir), &awsecs.AssetImageProps{
			Platform: awsecrassets.Platform_LINUX_ARM64(),
		}),
		Essential: jsii.Bool(true),
		Environment: &map[string]*string{
			"RAW_STREAM":        jsii.String(cfg.Name(RawStream)),
			"LEASE_TABLE":       jsii.String(cfg.Name(LeaseTable)),
			"DEDUPE_TABLE":      jsii.String(cfg.Name(DedupeTable)),
			"QUARANTINE_STREAM": jsii.String(cfg.Name(QuarantineStream)),
			"DLQ_STREAM":        jsii.String(cfg.Name(DLQStream)),
			"LATE_STREAM":       jsii.String(cfg.Name(LateStream)),
			"ROUTES":            jsii.String(string(routes)),
			"KCL_APPLICATION":   jsii.String(cfg.Name(Application)),
			// The one source of the signing keys: the worker reads the secret by ARN with its
			// task role and re-reads it every minute (SIGNING_KEYS_RELOAD), so a rotation reaches
			// running workers without a deployment. No copy is injected into the task.
			envWorkerKeysARN: p.SigningKeys.SecretArn(),
			// The same list as the forwarder's FORWARDER_PII_PATHS: one setting.
			envWorkerPII:   jsii.String(strings.Join(cfg.PIIPaths, ",")),
			"METRICS_ADDR": jsii.String(fmt.Sprintf(":%d", MetricsPort)),
			// Off by default: aggregated analytics records need de-aggregating consumers.
			"AGGREGATE_KEYS": jsii.String(strconv.FormatBool(cfg.AggregateKeys)),
			// The worker's region defaults to us-east-1; pin it to the stack's.
			"AWS_REGION": p.Stack.Region(),
			// A task stopped by scale-in or a deployment finishes its batch before ECS kills it.
			envWorkerShutdownGrace: jsii.String(fmt.Sprintf("%ds", workerShutdownGrace)),
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
		StopTimeout:            awscdk.Duration_Seconds(jsii.Number(workerStopTimeout)),
	})
	task.AddContainer(jsii.String(collectorContainer), &awsecs.ContainerDefinitionOptions{
		ContainerName: jsii.String(collectorContainer),
		Image: awsecs.ContainerImage_FromAsset(jsii.String(cfg.CollectorImageDir), &awsecs.AssetImageProps{
			Platform:  awsecrassets.Platform_LINUX_ARM64(),
			BuildArgs: &map[string]*string{"COLLECTOR_IMAGE": jsii.String(cfg.CollectorImage)},
		}),
		// Not essential: a collector that fails loses metrics, never the worker's processing.
		Essential:            jsii.Bool(false),
		MemoryReservationMiB: jsii.Number(64),
		Environment: &map[string]*string{
			envCollectorConfig: jsii.String(p.collectorConfig(n.LogGroupPrefix + "worker-metrics")),
			"AWS_REGION":       p.Stack.Region(),
		},
		Logging: awsecs.LogDrivers_AwsLogs(&awsecs.AwsLogDriverProps{
			StreamPrefix: jsii.String(collectorContainer),
			LogGroup:     collectorLogs,
		}),
		ReadonlyRootFilesystem: jsii.Bool(true),
	})
	suppress(task, "AwsSolutions-ECS2",
		"The plain environment holds only resource names, the region, the routing table, the PII path list, a port, the signing-key secret's ARN (not its value, which the worker reads itself) and the metrics collector's configuration; none of them is secret.")
	// The execution role is generated by CDK for pulling the image assets and writing the log
	// groups; ECR's GetAuthorizationToken has no resource-level permissions, so its Resource
	// must be "*".
	suppress(task.ObtainExecutionRole(), "AwsSolutions-IAM5",
		"ecr:GetAuthorizationToken does not support resource-level permissions (AWS requires Resource \"*\"); the image pull itself is scoped to the CDK asset repository.",
		"Resource::*")

	p.Workers = awsecs.NewFargateService(p.Stack, jsii.String("Workers"), &awsecs.FargateServiceProps{
		ServiceName:    jsii.String(n.WorkerService),
		Cluster:        cluster,
		TaskDefinition: task,
		// No DesiredCount: CloudFormation would reset the fleet to it on every deploy, shrinking
		// a fleet autoscaling grew during a spike (and moving leases mid-spike). ECS starts one
		// task; autoscaling's minimum (below) raises it to MinWorkers and owns the count.
		// A deployment keeps every running task until its replacement is healthy, and a
		// deployment whose tasks do not become healthy rolls back by itself.
		MinHealthyPercent: jsii.Number(100),
		MaxHealthyPercent: jsii.Number(200),
		CircuitBreaker:    &awsecs.DeploymentCircuitBreaker{Enable: jsii.Bool(true), Rollback: jsii.Bool(true)},
		VpcSubnets:        workerSubnetSel,
		SecurityGroups:    &[]awsec2.ISecurityGroup{sg},
		AssignPublicIp:    jsii.Bool(false),
		PlatformVersion:   awsecs.FargatePlatformVersion_LATEST,
	})

	// A KCL worker without a lease idles, so the fleet never exceeds the raw stream's shard
	// count. CPU tracks the steady state; iterator age adds workers when the fleet falls behind.
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
		Metric: p.Streams[RawStream].MetricGetRecordsIteratorAgeMilliseconds(&awscloudwatch.MetricOptions{
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

// workerTaskRole is the role the worker's code (and the metrics sidecar) runs with: exactly the
// calls the worker binary makes (TestRolesMatchTheCodesSDKCalls computes them from the code), on
// exact stream, table, key, secret and log group ARNs.
func (p *Pipeline) workerTaskRole(region string) awsiam.Role {
	role := awsiam.NewRole(p.Stack, jsii.String("WorkerTaskRole"), &awsiam.RoleProps{
		AssumedBy:   awsiam.NewServicePrincipal(jsii.String("ecs-tasks.amazonaws.com"), nil),
		Description: jsii.String("Kinesis events worker: read the raw stream, write the output streams, lease and dedupe tables"),
	})
	add := func(sid string, actions []string, resources *[]*string, cond *map[string]any) {
		role.AddToPrincipalPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
			Sid: jsii.String(sid), Actions: jsii.Strings(actions...), Resources: resources, Conditions: cond,
		}))
	}
	// The KCL's polling consumer and checkpoint/ (ListShards, GetShardIterator, GetRecords); the
	// readiness probe (DescribeStreamSummary).
	add("ReadRawStream", []string{
		"kinesis:GetRecords", "kinesis:GetShardIterator", "kinesis:ListShards", "kinesis:DescribeStreamSummary",
	}, p.streamArns([]string{RawStream}), nil)
	add("WriteOutputStreams", []string{"kinesis:PutRecords"}, p.streamArns(OutputStreamNames()), nil)
	// checkpoint/: the lease store.
	add("LeaseTable", []string{
		"dynamodb:DescribeTable", "dynamodb:GetItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:Scan",
	}, &[]*string{p.LeaseTable.TableArn()}, nil)
	// processors/: the shards' dedupe state (manifests, snapshot and log chunks; quarantine marks):
	// read and written in batches, the manifest with a conditional PutItem.
	add("DedupeTable", []string{"dynamodb:BatchGetItem", "dynamodb:BatchWriteItem", "dynamodb:PutItem"},
		&[]*string{p.DedupeTable.TableArn()}, nil)
	add("ReadSigningKeys", []string{"secretsmanager:GetSecretValue"}, &[]*string{p.SigningKeys.SecretArn()}, nil)
	add("DataKeysViaPipelineServices", []string{"kms:Decrypt", "kms:GenerateDataKey"},
		&[]*string{p.Key.KeyArn()}, viaServices(region, "kinesis", "dynamodb", "secretsmanager"))
	// The metrics sidecar's awsemf exporter writes its log group.
	add("MetricsCollectorLogs", []string{"logs:CreateLogStream", "logs:PutLogEvents"},
		&[]*string{p.WorkerMetrics.LogGroupArn()}, nil)
	return role
}
