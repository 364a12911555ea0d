package infra

import (
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/jsii-runtime-go"
)

func autoscalerRoleID(t *testing.T, s *synthed) string {
	t.Helper()
	return taskOfFamily(t, s, s.names.Autoscaler)["TaskRoleArn"].(map[string]any)["Fn::GetAtt"].([]any)[0].(string)
}

// autoscalerContainerDef is the autoscaler task's one container.
func autoscalerContainerDef(t *testing.T, s *synthed) map[string]any {
	t.Helper()
	cs := taskOfFamily(t, s, s.names.Autoscaler)["ContainerDefinitions"].([]any)
	if len(cs) != 1 {
		t.Fatalf("autoscaler task has %d containers, want 1", len(cs))
	}
	return cs[0].(map[string]any)
}

// TestAutoscalerRunsEveryMinuteOnTheFleetsNetwork: one rule runs one task of the autoscaler's
// family every minute, on the fleet's cluster, private subnets and security group, without a
// public IP, from the worker's image.
func TestAutoscalerRunsEveryMinuteOnTheFleetsNetwork(t *testing.T) {
	ruleID := logicalID(t, "AWS::Events::Rule", map[string]any{"Name": fx.names.Autoscaler})
	rule := resources("AWS::Events::Rule")[ruleID]
	if rule["ScheduleExpression"] != "rate(1 minute)" || rule["State"] != "ENABLED" {
		t.Errorf("autoscaler schedule %v, state %v: want rate(1 minute), ENABLED", rule["ScheduleExpression"], rule["State"])
	}
	targets := asList(rule["Targets"])
	if len(targets) != 1 {
		t.Fatalf("autoscaler rule has %d targets, want 1", len(targets))
	}
	target := targets[0].(map[string]any)
	cluster := logicalID(t, "AWS::ECS::Cluster", map[string]any{"ClusterName": fx.names.Cluster})
	if jsonOf(target["Arn"]) != jsonOf(getAtt(cluster, "Arn")) {
		t.Errorf("autoscaler runs on %s, want the fleet's cluster %s", jsonOf(target["Arn"]), cluster)
	}
	ecs := target["EcsParameters"].(map[string]any)
	var autoscalerTD string
	for id, props := range resources("AWS::ECS::TaskDefinition") {
		if props["Family"] == fx.names.Autoscaler {
			autoscalerTD = id
		}
	}
	if jsonOf(ecs["TaskDefinitionArn"]) != jsonOf(ref(autoscalerTD)) || ecs["TaskCount"] != float64(1) || ecs["LaunchType"] != "FARGATE" {
		t.Errorf("autoscaler target runs %s x%v (%v), want one Fargate task of %s", jsonOf(ecs["TaskDefinitionArn"]), ecs["TaskCount"], ecs["LaunchType"], autoscalerTD)
	}
	// The same network as the service: its subnets and security group, no public IP.
	var svc map[string]any
	for _, props := range resources("AWS::ECS::Service") {
		svc = props["NetworkConfiguration"].(map[string]any)["AwsvpcConfiguration"].(map[string]any)
	}
	net := ecs["NetworkConfiguration"].(map[string]any)["AwsVpcConfiguration"].(map[string]any)
	if net["AssignPublicIp"] != "DISABLED" {
		t.Errorf("autoscaler task AssignPublicIp = %v", net["AssignPublicIp"])
	}
	for _, k := range []string{"Subnets", "SecurityGroups"} {
		if jsonOf(net[k]) != jsonOf(svc[k]) || len(asList(net[k])) == 0 {
			t.Errorf("autoscaler task %s %s, want the workers' %s", k, jsonOf(net[k]), jsonOf(svc[k]))
		}
	}
	c := autoscalerContainerDef(t, &fx)
	if jsonOf(c["Image"]) != jsonOf(container(t, &fx, workerContainer)["Image"]) {
		t.Errorf("autoscaler image %s, want the worker's image (it ships kclctl)", jsonOf(c["Image"]))
	}
	if c["ReadonlyRootFilesystem"] != true || c["Essential"] != true {
		t.Errorf("autoscaler container: read-only root %v, essential %v", c["ReadonlyRootFilesystem"], c["Essential"])
	}
}

// TestAutoscalerCommandIsTheStagesAndKclctlTakesIt: the task runs kclctl's autoscaler once, with
// every stream of the stage, the fleet's ECS service and bounds, from the CloudWatch source; every
// flag is one `kclctl autoscale run` defines and every variable one kclctl reads; the Dockerfile
// puts kclctl where the command calls it.
func TestAutoscalerCommandIsTheStagesAndKclctlTakesIt(t *testing.T) {
	c := autoscalerContainerDef(t, &fx)
	if jsonOf(c["EntryPoint"]) != `["/bin/sh","-c"]` {
		t.Errorf("autoscaler entry point %s, want /bin/sh -c", jsonOf(c["EntryPoint"]))
	}
	cmd := strs(c["Command"])
	if len(cmd) != 1 || cmd[0] != fx.cfg.AutoscalerCommand(fx.names) {
		t.Fatalf("autoscaler command %v", cmd)
	}
	run, tail, ok := strings.Cut(cmd[0], " && ")
	if !ok || tail != `echo '{"msg":"`+autoscalerTickOK+`"}'` {
		t.Errorf("the success line must follow kclctl's exit status: %q", cmd[0])
	}
	args := strings.Fields(run)
	if len(args) < 5 || strings.Join(args[:5], " ") != autoscalerKclctl+" autoscale run --once --json" {
		t.Fatalf("autoscaler runs %v, want %s autoscale run --once --json ...", args, autoscalerKclctl)
	}
	flags := map[string]string{}
	for i := 5; i < len(args); i += 2 {
		if !strings.HasPrefix(args[i], "--") || i+1 == len(args) {
			t.Fatalf("argument %q of %v is not a --flag value pair", args[i], args)
		}
		flags[strings.TrimPrefix(args[i], "--")] = args[i+1]
	}
	var streams []string
	for _, s := range AllStreamNames() {
		streams = append(streams, "test-"+s)
	}
	want := map[string]string{
		"source": "cloudwatch", "streams": strings.Join(streams, ","), "id": "test-scheduled",
		"max-shards": strconv.Itoa(fx.cfg.AutoscalerMaxShards), "ecs-resource": "service/" + fx.names.Cluster + "/" + fx.names.WorkerService,
		"shards-per-worker": "1", "min-workers": strconv.Itoa(fx.cfg.MinWorkers), "max-workers": strconv.Itoa(fx.cfg.AutoscalerMaxShards),
	}
	if jsonOf(flags) != jsonOf(want) {
		t.Errorf("autoscaler flags\n got %v\nwant %v", flags, want)
	}
	// kclctl defines each flag (cobra: f.XxxVar(&v, "name", ...)) and reads each variable.
	src := goSources(t, "cmd/kclctl", "internal/kclctl")
	for _, f := range append([]string{"once", "json"}, keys(flags)...) {
		if !regexp.MustCompile(`\.(String|Bool|Int|Float64|Duration)Var\(&[^,]+, "` + f + `"`).MatchString(src) {
			t.Errorf("the autoscaler task passes --%s, which kclctl does not define", f)
		}
	}
	env := map[string]any{}
	for _, kv := range c["Environment"].([]any) {
		m := kv.(map[string]any)
		env[m["Name"].(string)] = m["Value"]
	}
	wantEnv := map[string]any{"RAW_STREAM": "test-" + RawStream, "LEASE_TABLE": "test-" + LeaseTable, "AWS_REGION": ref("AWS::Region")}
	if jsonOf(env) != jsonOf(wantEnv) {
		t.Errorf("autoscaler environment %v, want %v", env, wantEnv)
	}
	for n := range env {
		if n == "AWS_REGION" { // read by the AWS SDK's config.LoadDefaultConfig, which kclctl calls
			if !strings.Contains(src, "config.LoadDefaultConfig(") {
				t.Error("kclctl no longer loads the SDK's default config, which reads AWS_REGION")
			}
			continue
		}
		if !strings.Contains(src, `"`+n+`"`) {
			t.Errorf("the stack sets %s for the autoscaler, but kclctl never mentions it", n)
		}
	}
	// The image has kclctl where the command calls it.
	b, err := os.ReadFile(filepath.Join(repoRoot, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	copyBin := regexp.MustCompile(`(?m)^COPY --from=\S+ (.*)$`)
	shipped := false
	for _, m := range copyBin.FindAllStringSubmatch(string(b), -1) {
		parts := strings.Fields(m[1])
		dst := parts[len(parts)-1]
		for _, src := range parts[:len(parts)-1] {
			if path.Base(src) == "kclctl" && strings.TrimSuffix(dst, "/") == path.Dir(autoscalerKclctl) {
				shipped = true
			}
		}
	}
	if !shipped {
		t.Errorf("the Dockerfile does not copy kclctl to %s, which the autoscaler task runs", path.Dir(autoscalerKclctl))
	}
}

func keys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestAutoscalerTaskRoleIsScopedToExactArns: reshards on every stream, lag reads on the raw
// stream, the lease table's rows, the fleet's service; account-wide only what has no resource.
func TestAutoscalerTaskRoleIsScopedToExactArns(t *testing.T) {
	g := grants(fx.roleStatements(t, autoscalerRoleID(t, &fx)))
	lease := jsonOf(getAtt(logicalID(t, "AWS::DynamoDB::Table", map[string]any{"TableName": "test-" + LeaseTable}), "Arn"))
	var service string
	for id := range resources("AWS::ECS::Service") {
		service = jsonOf(ref(id))
	}
	all, raw := streamArnRefs(AllStreamNames()...), streamArnRefs(RawStream)
	star := []string{`"*"`}
	want := map[string][]string{
		"kinesis:DescribeStreamSummary":                   all,
		"kinesis:ListShards":                              all,
		"kinesis:UpdateShardCount":                        all,
		"kinesis:SplitShard":                              all,
		"kinesis:MergeShards":                             all,
		"kinesis:GetShardIterator":                        raw,
		"kinesis:GetRecords":                              raw,
		"dynamodb:GetItem":                                {lease},
		"dynamodb:PutItem":                                {lease},
		"dynamodb:Scan":                                   {lease},
		"kinesis:DescribeLimits":                          star,
		"cloudwatch:GetMetricData":                        star,
		"application-autoscaling:DescribeScalableTargets": star,
		"application-autoscaling:RegisterScalableTarget":  star,
		"ecs:DescribeServices":                            {service},
		"ecs:UpdateService":                               {service},
		"kms:Decrypt":                                     {jsonOf(fx.keyArn)},
		"kms:GenerateDataKey":                             {jsonOf(fx.keyArn)},
	}
	if jsonOf(g) != jsonOf(want) {
		t.Errorf("autoscaler task role grants:\n got %v\nwant %v", g, want)
	}
	if len(all) != len(AllStreamNames()) || service == "" {
		t.Errorf("%d stream ARNs, service %q", len(all), service)
	}
}

// TestAutoscalerOff: with autoscaler=false (alt) there is no autoscaler task, schedule, role,
// endpoint or alarm, and the fleet's maximum is rawShards, as before.
func TestAutoscalerOff(t *testing.T) {
	for id, props := range alt.resources("AWS::ECS::TaskDefinition") {
		if props["Family"] == alt.names.Autoscaler {
			t.Errorf("autoscaler=false still creates the autoscaler task %s", id)
		}
	}
	for id, props := range alt.resources("AWS::Events::Rule") {
		if props["Name"] == alt.names.Autoscaler || props["ScheduleExpression"] != nil {
			t.Errorf("autoscaler=false still creates the schedule %s", id)
		}
	}
	for _, props := range alt.resources("AWS::EC2::VPCEndpoint") {
		if b := jsonOf(props["ServiceName"]); strings.Contains(b, "monitoring") || strings.Contains(b, "application-autoscaling") {
			t.Errorf("autoscaler=false still creates the endpoint %s", b)
		}
	}
	for _, n := range AlarmNames(alt.cfg) {
		if strings.HasPrefix(n, "autoscaler") {
			t.Errorf("autoscaler=false still lists alarm %s", n)
		}
	}
	assert(t, "fleet maximum without the autoscaler", func() {
		alt.tpl.HasResourceProperties(jsii.String("AWS::ApplicationAutoScaling::ScalableTarget"), &map[string]any{
			"MaxCapacity": alt.cfg.RawShards, "MinCapacity": alt.cfg.MinWorkers,
		})
	})
	// And it is on by default.
	if !DefaultConfig().Autoscaler || !fx.cfg.Autoscaler {
		t.Error("the autoscaler is not on by default")
	}
}

// TestAutoscalerAlarmCountsTheSuccessLine: the alarm's metric counts the line the task logs only
// after kclctl exited 0, in the autoscaler's log group.
func TestAutoscalerAlarmCountsTheSuccessLine(t *testing.T) {
	logs := logicalID(t, "AWS::Logs::LogGroup", map[string]any{"LogGroupName": fx.names.LogGroupPrefix + "autoscaler"})
	assert(t, "autoscaler success metric filter", func() {
		fx.tpl.HasResourceProperties(jsii.String("AWS::Logs::MetricFilter"), &map[string]any{
			"LogGroupName":  ref(logs),
			"FilterPattern": `{ $.msg = "` + autoscalerTickOK + `" }`,
			"MetricTransformations": []any{map[string]any{
				"MetricNamespace": fx.names.MetricsNamespace, "MetricName": fx.names.AutoscalerMetric, "MetricValue": "1",
				"DefaultValue": assertions.Match_AnyValue(),
			}},
		})
	})
	lc := autoscalerContainerDef(t, &fx)["LogConfiguration"].(map[string]any)["Options"].(map[string]any)
	if jsonOf(lc["awslogs-group"]) != jsonOf(ref(logs)) {
		t.Errorf("autoscaler logs to %s, want %s", jsonOf(lc["awslogs-group"]), logs)
	}
}
