package infra

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/jsii-runtime-go"
)

// The stack is synthesised once per test binary (about 25 s of jsii work) in
// TestMain and shared, read-only, by every test below.
var fx struct {
	cfg   Config
	stack awscdk.Stack
	tpl   assertions.Template
	ann   assertions.Annotations
	// res is the synthesised template's Resources section as plain Go values.
	res map[string]any
	// keyArn is how the template refers to the customer-managed key's ARN.
	keyArn map[string]any
}

func TestMain(m *testing.M) { os.Exit(runTests(m)) }

func runTests(m *testing.M) int {
	defer jsii.Close()
	tmp, err := os.MkdirTemp("", "deploy-infra-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(tmp)
	// A stand-in for the forwarder binary: the Lambda asset only has to be a
	// directory CDK can stage. The template is under test here, not the
	// binary (which `make bin/forwarder-lambda/bootstrap` builds).
	fwd := filepath.Join(tmp, "forwarder-lambda")
	if err := os.MkdirAll(fwd, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := os.WriteFile(filepath.Join(fwd, "bootstrap"), []byte("stand-in, not a Lambda binary\n"), 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}

	ctx := map[string]any{}
	for k, v := range FeatureFlags {
		ctx[k] = v
	}
	// Context arrives the way the cdk CLI passes it; the image asset is the
	// real repository root with its Dockerfile and .dockerignore.
	ctx["forwarderAssetDir"] = fwd
	ctx["workerImageDir"] = "../.."
	app := awscdk.NewApp(&awscdk.AppProps{Outdir: jsii.String(filepath.Join(tmp, "cdk.out")), Context: &ctx})
	cfg, err := ConfigFromContext(func(k string) any { return app.Node().TryGetContext(jsii.String(k)) })
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	p, err := NewPipeline(app, StackID, nil, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	CheckWithNag(app)

	fx.cfg = cfg
	fx.stack = p.Stack
	fx.tpl = assertions.Template_FromStack(p.Stack, nil)
	fx.ann = assertions.Annotations_FromStack(p.Stack)
	fx.res = (*fx.tpl.ToJSON())["Resources"].(map[string]any)
	fx.keyArn = map[string]any{"Fn::GetAtt": []any{*fx.tpl.GetResourceId(jsii.String("AWS::KMS::Key"), nil), "Arn"}}
	return m.Run()
}

// assert runs a CDK assertion, which reports a mismatch by panicking with
// the assertion library's message, and turns that into a test error.
func assert(t *testing.T, what string, f func()) {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			t.Errorf("%s:\n%v", what, r)
		}
	}()
	f()
}

// resources returns logical ID -> properties for every resource of a type.
func resources(typ string) map[string]map[string]any {
	out := map[string]map[string]any{}
	for id, r := range fx.res {
		rm := r.(map[string]any)
		if rm["Type"] == typ {
			props, _ := rm["Properties"].(map[string]any)
			out[id] = props
		}
	}
	return out
}

func logicalID(t *testing.T, typ string, props map[string]any) string {
	t.Helper()
	var id string
	assert(t, "find "+typ, func() { id = *fx.tpl.GetResourceId(jsii.String(typ), &map[string]any{"Properties": props}) })
	return id
}

func getAtt(id, attr string) map[string]any {
	return map[string]any{"Fn::GetAtt": []any{id, attr}}
}

func ref(id string) map[string]any { return map[string]any{"Ref": id} }

func TestStreamsNamedAndEncryptedWithTheKey(t *testing.T) {
	streams := resources("AWS::Kinesis::Stream")
	var names []string
	for _, props := range streams {
		names = append(names, props["Name"].(string))
	}
	sort.Strings(names)
	want := AllStreamNames()
	sort.Strings(want)
	if !slices.Equal(names, want) {
		t.Errorf("streams = %v, want %v", names, want)
	}
	assert(t, "every stream encrypted with the customer-managed key", func() {
		fx.tpl.AllResourcesProperties(jsii.String("AWS::Kinesis::Stream"), &map[string]any{
			"StreamEncryption": map[string]any{"EncryptionType": "KMS", "KeyId": fx.keyArn},
		})
	})
	assert(t, "raw stream shard count from config", func() {
		fx.tpl.HasResourceProperties(jsii.String("AWS::Kinesis::Stream"), &map[string]any{
			"Name": StreamRaw, "ShardCount": fx.cfg.RawShards,
			"StreamModeDetails": map[string]any{"StreamMode": "PROVISIONED"},
		})
	})
	assert(t, "key rotation", func() {
		fx.tpl.AllResourcesProperties(jsii.String("AWS::KMS::Key"), &map[string]any{"EnableKeyRotation": true})
	})
}

// TestEverythingAtRestEncrypted checks every resource of each type that
// stores data: all of them, not only the ones this test knows by name.
func TestEverythingAtRestEncrypted(t *testing.T) {
	tests := []struct {
		typ   string
		props map[string]any
	}{
		{"AWS::DynamoDB::Table", map[string]any{
			"SSESpecification":                 map[string]any{"SSEEnabled": true, "SSEType": "KMS", "KMSMasterKeyId": fx.keyArn},
			"PointInTimeRecoverySpecification": map[string]any{"PointInTimeRecoveryEnabled": true},
			"BillingMode":                      "PAY_PER_REQUEST",
		}},
		{"AWS::SQS::Queue", map[string]any{"KmsMasterKeyId": fx.keyArn}},
		{"AWS::SNS::Topic", map[string]any{"KmsMasterKeyId": fx.keyArn}},
		{"AWS::SecretsManager::Secret", map[string]any{"KmsKeyId": fx.keyArn}},
		{"AWS::Logs::LogGroup", map[string]any{"KmsKeyId": fx.keyArn, "RetentionInDays": fx.cfg.LogRetentionDays}},
		{"AWS::CloudTrail::Trail", map[string]any{"KMSKeyId": fx.keyArn, "EnableLogFileValidation": true}},
		{"AWS::S3::Bucket", map[string]any{
			"BucketEncryption": map[string]any{"ServerSideEncryptionConfiguration": assertions.Match_ArrayWith(&[]any{
				assertions.Match_ObjectLike(&map[string]any{
					"ServerSideEncryptionByDefault": map[string]any{"SSEAlgorithm": assertions.Match_AnyValue()},
				}),
			})},
			"PublicAccessBlockConfiguration": map[string]any{
				"BlockPublicAcls": true, "BlockPublicPolicy": true, "IgnorePublicAcls": true, "RestrictPublicBuckets": true,
			},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.typ, func(t *testing.T) {
			if len(resources(tc.typ)) == 0 {
				t.Fatalf("no %s in the template", tc.typ)
			}
			assert(t, "every "+tc.typ, func() {
				fx.tpl.AllResourcesProperties(jsii.String(tc.typ), &tc.props)
			})
		})
	}
	t.Run("audit bucket uses the key and is access-logged", func(t *testing.T) {
		assert(t, "audit bucket", func() {
			fx.tpl.HasResourceProperties(jsii.String("AWS::S3::Bucket"), &map[string]any{
				"BucketEncryption": map[string]any{"ServerSideEncryptionConfiguration": []any{
					map[string]any{
						"BucketKeyEnabled":              true,
						"ServerSideEncryptionByDefault": map[string]any{"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": fx.keyArn},
					},
				}},
				"LoggingConfiguration": map[string]any{"DestinationBucketName": assertions.Match_AnyValue()},
			})
		})
	})
}

func TestTables(t *testing.T) {
	assert(t, "lease table", func() {
		fx.tpl.HasResourceProperties(jsii.String("AWS::DynamoDB::Table"), &map[string]any{
			"TableName":            "kcl-leases",
			"KeySchema":            []any{map[string]any{"AttributeName": "ShardID", "KeyType": "HASH"}},
			"AttributeDefinitions": []any{map[string]any{"AttributeName": "ShardID", "AttributeType": "S"}},
		})
	})
	assert(t, "dedupe table with TTL", func() {
		fx.tpl.HasResourceProperties(jsii.String("AWS::DynamoDB::Table"), &map[string]any{
			"TableName":               "events-dedupe",
			"KeySchema":               []any{map[string]any{"AttributeName": "event_id", "KeyType": "HASH"}},
			"TimeToLiveSpecification": map[string]any{"AttributeName": "expires_at", "Enabled": true},
		})
	})
}

// Wildcards that AWS requires. Everything else in an Allow statement must
// name exact actions and resources.
var (
	// Actions without resource-level permissions: Resource must be "*".
	starResourceActions = map[string]string{
		"ecr:GetAuthorizationToken": "ECR authorisation tokens are account-wide; the action has no resource-level permissions (added by CDK to the task execution role for the image pull, which itself is scoped to the asset repository)",
	}
	// Wildcard actions allowed in key policies, by principal.
	keyPolicyWildcardActions = map[string]string{
		"root":       "the account root principal in a key policy delegates to IAM (CDK's default key policy, and the Secrets Manager via-service statement CDK adds); IAM policies are what this test checks",
		"cloudtrail": "kms:GenerateDataKey* is the grant CloudTrail documents and validates on trail creation, pinned by aws:SourceArn to this trail",
	}
)

type statement struct {
	resource, where string
	st              map[string]any
}

// policyStatements returns every statement of every policy document in the
// template: IAM policies, role inline policies, bucket/queue/topic policies
// and key policies. Trust policies (AssumeRolePolicyDocument) are skipped:
// they name principals, not permissions.
func policyStatements() []statement {
	var out []statement
	var walk func(id, typ, path string, v any)
	walk = func(id, typ, path string, v any) {
		switch x := v.(type) {
		case map[string]any:
			if sts, ok := x["Statement"].([]any); ok {
				for _, s := range sts {
					out = append(out, statement{resource: typ, where: id + path, st: s.(map[string]any)})
				}
				return
			}
			for k, c := range x {
				if k == "AssumeRolePolicyDocument" {
					continue
				}
				walk(id, typ, path+"."+k, c)
			}
		case []any:
			for i, c := range x {
				walk(id, typ, fmt.Sprintf("%s[%d]", path, i), c)
			}
		}
	}
	for id, r := range fx.res {
		rm := r.(map[string]any)
		walk(id, rm["Type"].(string), "", rm["Properties"])
	}
	return out
}

func strs(v any) []string {
	switch x := v.(type) {
	case string:
		return []string{x}
	case []any:
		var out []string
		for _, e := range x {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil // tokens (Fn::GetAtt, Fn::Join...) name specific resources
}

// principalKind classifies a key-policy principal for the allowlist.
func principalKind(p any) string {
	b, _ := json.Marshal(p)
	s := string(b)
	switch {
	case strings.Contains(s, ":root"):
		return "root"
	case strings.Contains(s, "cloudtrail.amazonaws.com"):
		return "cloudtrail"
	}
	return s
}

// wildcardViolations lists Allow statements with a wildcard action or
// resource that is not on the allowlists above.
func wildcardViolations(sts []statement) []string {
	var bad []string
	for _, s := range sts {
		if s.st["Effect"] != "Allow" {
			continue // Deny statements with wildcards (enforce-SSL) only restrict
		}
		for _, k := range []string{"NotAction", "NotResource", "NotPrincipal"} {
			if _, ok := s.st[k]; ok {
				bad = append(bad, fmt.Sprintf("%s: Allow with %s", s.where, k))
			}
		}
		actions := strs(s.st["Action"])
		isKey := s.resource == "AWS::KMS::Key"
		for _, a := range actions {
			if !strings.Contains(a, "*") {
				continue
			}
			if _, ok := keyPolicyWildcardActions[principalKind(s.st["Principal"])]; isKey && ok {
				continue
			}
			bad = append(bad, fmt.Sprintf("%s (%s): wildcard action %q", s.where, s.resource, a))
		}
		if isKey {
			continue // in a key policy, Resource "*" means this key: AWS requires it
		}
		if slices.Contains(strs(s.st["Resource"]), "*") {
			for _, a := range actions {
				if _, ok := starResourceActions[a]; !ok {
					bad = append(bad, fmt.Sprintf("%s (%s): action %q on Resource \"*\"", s.where, s.resource, a))
				}
			}
		}
	}
	return bad
}

func TestNoWildcardPermissions(t *testing.T) {
	sts := policyStatements()
	if len(sts) < 10 {
		t.Fatalf("found only %d policy statements; the walk is broken", len(sts))
	}
	for _, v := range wildcardViolations(sts) {
		t.Error(v)
	}
	for id, props := range resources("AWS::IAM::Role") {
		if _, ok := props["ManagedPolicyArns"]; ok {
			t.Errorf("role %s attaches managed policies; scope its permissions inline", id)
		}
	}
}

// TestWildcardCheckCatches feeds the checker statements it must reject, so a
// checker that accepts everything cannot pass.
func TestWildcardCheckCatches(t *testing.T) {
	tests := []struct {
		name string
		s    statement
		bad  bool
	}{
		{"star action", statement{"AWS::IAM::Policy", "p", map[string]any{"Effect": "Allow", "Action": "*", "Resource": "arn:x"}}, true},
		{"service wildcard", statement{"AWS::IAM::Policy", "p", map[string]any{"Effect": "Allow", "Action": []any{"kinesis:*"}, "Resource": "arn:x"}}, true},
		{"star resource", statement{"AWS::IAM::Policy", "p", map[string]any{"Effect": "Allow", "Action": "kinesis:PutRecord", "Resource": "*"}}, true},
		{"NotResource", statement{"AWS::IAM::Policy", "p", map[string]any{"Effect": "Allow", "Action": "s3:GetObject", "NotResource": "arn:x"}}, true},
		{"wildcard for a service in a key policy", statement{"AWS::KMS::Key", "k", map[string]any{"Effect": "Allow", "Action": "kms:*", "Principal": map[string]any{"Service": "events.amazonaws.com"}, "Resource": "*"}}, true},
		{"allowed: GetAuthorizationToken", statement{"AWS::IAM::Policy", "p", map[string]any{"Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"}}, false},
		{"allowed: deny with wildcards", statement{"AWS::S3::BucketPolicy", "b", map[string]any{"Effect": "Deny", "Action": "s3:*", "Resource": "*"}}, false},
		{"allowed: exact", statement{"AWS::IAM::Policy", "p", map[string]any{"Effect": "Allow", "Action": "kinesis:PutRecord", "Resource": map[string]any{"Fn::GetAtt": []any{"S", "Arn"}}}}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := len(wildcardViolations([]statement{tc.s})) > 0; got != tc.bad {
				t.Errorf("violation = %v, want %v", got, tc.bad)
			}
		})
	}
}

// roleStatements returns the statements of the inline policies attached to a role.
func roleStatements(t *testing.T, roleID string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, props := range resources("AWS::IAM::Policy") {
		roles, _ := props["Roles"].([]any)
		if !slices.ContainsFunc(roles, func(r any) bool { b, _ := json.Marshal(r); return string(b) == `{"Ref":"`+roleID+`"}` }) {
			continue
		}
		for _, s := range props["PolicyDocument"].(map[string]any)["Statement"].([]any) {
			out = append(out, s.(map[string]any))
		}
	}
	if len(out) == 0 {
		t.Fatalf("role %s has no policy statements", roleID)
	}
	return out
}

// grants flattens statements to "action -> resources" with resources as JSON.
func grants(sts []map[string]any) map[string][]string {
	out := map[string][]string{}
	for _, s := range sts {
		var res []string
		switch r := s["Resource"].(type) {
		case []any:
			for _, e := range r {
				b, _ := json.Marshal(e)
				res = append(res, string(b))
			}
		default:
			b, _ := json.Marshal(r)
			res = append(res, string(b))
		}
		for _, a := range strs(s["Action"]) {
			out[a] = append(out[a], res...)
		}
	}
	for a := range out {
		sort.Strings(out[a])
	}
	return out
}

func jsonOf(v any) string { b, _ := json.Marshal(v); return string(b) }

func streamArnRefs(names ...string) []string {
	var out []string
	for _, n := range names {
		for id, props := range resources("AWS::Kinesis::Stream") {
			if props["Name"] == n {
				out = append(out, jsonOf(getAtt(id, "Arn")))
			}
		}
	}
	sort.Strings(out)
	return out
}

func TestForwarderPermissionsAreExact(t *testing.T) {
	fnID := logicalID(t, "AWS::Lambda::Function", map[string]any{"FunctionName": forwarderName})
	role := resources("AWS::Lambda::Function")[fnID]["Role"].(map[string]any)["Fn::GetAtt"].([]any)[0].(string)
	g := grants(roleStatements(t, role))
	dlq := logicalID(t, "AWS::SQS::Queue", map[string]any{"QueueName": forwarderDLQName})
	logs := logicalID(t, "AWS::Logs::LogGroup", map[string]any{"LogGroupName": logGroupPrefix + "forwarder"})
	want := map[string][]string{
		"kinesis:PutRecord":    streamArnRefs(StreamRaw, StreamQuarantine),
		"kinesis:PutRecords":   streamArnRefs(StreamRaw, StreamQuarantine),
		"kms:GenerateDataKey":  {jsonOf(fx.keyArn)},
		"kms:Decrypt":          {jsonOf(fx.keyArn)},
		"sqs:SendMessage":      {jsonOf(getAtt(dlq, "Arn"))},
		"logs:CreateLogStream": {jsonOf(getAtt(logs, "Arn"))},
		"logs:PutLogEvents":    {jsonOf(getAtt(logs, "Arn"))},
	}
	if jsonOf(g) != jsonOf(want) {
		t.Errorf("forwarder role grants:\n got %v\nwant %v", g, want)
	}
}

func TestWorkerTaskRoleIsScopedToExactArns(t *testing.T) {
	var td map[string]any
	for _, props := range resources("AWS::ECS::TaskDefinition") {
		td = props
	}
	role := td["TaskRoleArn"].(map[string]any)["Fn::GetAtt"].([]any)[0].(string)
	g := grants(roleStatements(t, role))
	lease := logicalID(t, "AWS::DynamoDB::Table", map[string]any{"TableName": "kcl-leases"})
	dedupe := logicalID(t, "AWS::DynamoDB::Table", map[string]any{"TableName": "events-dedupe"})
	secret := logicalID(t, "AWS::SecretsManager::Secret", map[string]any{"Name": signingSecretName})
	tables := []string{jsonOf(getAtt(lease, "Arn")), jsonOf(getAtt(dedupe, "Arn"))}
	sort.Strings(tables)
	raw := streamArnRefs(StreamRaw)
	outputs := streamArnRefs(OutputStreamNames()...)
	both := append(append([]string{}, raw...), outputs...)
	sort.Strings(both)
	want := map[string][]string{
		"kinesis:GetRecords":            raw,
		"kinesis:GetShardIterator":      raw,
		"kinesis:DescribeStream":        raw,
		"kinesis:ListShards":            raw,
		"kinesis:DescribeStreamSummary": both,
		"kinesis:PutRecord":             outputs,
		"kinesis:PutRecords":            outputs,
		"secretsmanager:GetSecretValue": {jsonOf(ref(secret))},
		"secretsmanager:DescribeSecret": {jsonOf(ref(secret))},
		"kms:Decrypt":                   {jsonOf(fx.keyArn)},
		"kms:GenerateDataKey":           {jsonOf(fx.keyArn)},
		"kms:DescribeKey":               {jsonOf(fx.keyArn)},
	}
	for _, a := range []string{"GetItem", "BatchGetItem", "PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "ConditionCheckItem", "Query", "Scan", "DescribeTable"} {
		want["dynamodb:"+a] = tables
	}
	if jsonOf(g) != jsonOf(want) {
		t.Errorf("worker task role grants:\n got %v\nwant %v", g, want)
	}
	if len(outputs) != len(OutputStreamNames()) || len(raw) != 1 {
		t.Errorf("stream ARNs: %d raw, %d outputs", len(raw), len(outputs))
	}
}

func TestForwarderFunction(t *testing.T) {
	assert(t, "forwarder function", func() {
		fx.tpl.HasResourceProperties(jsii.String("AWS::Lambda::Function"), &map[string]any{
			"FunctionName":                 forwarderName,
			"Runtime":                      "provided.al2023",
			"Architectures":                []any{"arm64"},
			"Handler":                      "bootstrap",
			"ReservedConcurrentExecutions": fx.cfg.ForwarderReservedConcurrency,
			"Environment": map[string]any{"Variables": map[string]any{
				"FORWARDER_RAW_STREAM": StreamRaw, "FORWARDER_QUARANTINE_STREAM": StreamQuarantine,
			}},
		})
	})
	fnID := logicalID(t, "AWS::Lambda::Function", map[string]any{"FunctionName": forwarderName})
	dlq := logicalID(t, "AWS::SQS::Queue", map[string]any{"QueueName": forwarderDLQName})
	assert(t, "failed async invocations go to the DLQ", func() {
		fx.tpl.HasResourceProperties(jsii.String("AWS::Lambda::EventInvokeConfig"), &map[string]any{
			"FunctionName":         ref(fnID),
			"MaximumRetryAttempts": lambdaRetryAttempts,
			"DestinationConfig":    map[string]any{"OnFailure": map[string]any{"Destination": getAtt(dlq, "Arn")}},
		})
	})
}

func TestRulesInvokeForwarderWithRetryAndDLQ(t *testing.T) {
	fnID := logicalID(t, "AWS::Lambda::Function", map[string]any{"FunctionName": forwarderName})
	dlq := logicalID(t, "AWS::SQS::Queue", map[string]any{"QueueName": forwarderDLQName})
	bus := logicalID(t, "AWS::Events::EventBus", map[string]any{"Name": "customer-events"})
	exists := func(b bool) []any { return []any{map[string]any{"exists": b}} }
	patterns := map[string]map[string]any{
		forwardRuleName: {"detail": map[string]any{"event_id": exists(true), "customer_id": exists(true)}},
		malformedRuleName: {"detail": map[string]any{"$or": []any{
			map[string]any{"event_id": exists(false)}, map[string]any{"customer_id": exists(false)},
		}}},
	}
	if n := len(resources("AWS::Events::Rule")); n != len(patterns) {
		t.Errorf("%d rules, want %d", n, len(patterns))
	}
	for name, pattern := range patterns {
		t.Run(name, func(t *testing.T) {
			assert(t, "rule wiring", func() {
				fx.tpl.HasResourceProperties(jsii.String("AWS::Events::Rule"), &map[string]any{
					"Name":         name,
					"EventBusName": ref(bus),
					"EventPattern": assertions.Match_ObjectEquals(&pattern),
					"Targets": []any{map[string]any{
						"Arn":              getAtt(fnID, "Arn"),
						"DeadLetterConfig": map[string]any{"Arn": getAtt(dlq, "Arn")},
						"RetryPolicy": map[string]any{
							"MaximumRetryAttempts": ruleRetryAttempts, "MaximumEventAgeInSeconds": ruleMaxEventAge * 3600,
						},
					}},
				})
			})
			ruleID := logicalID(t, "AWS::Events::Rule", map[string]any{"Name": name})
			assert(t, "EventBridge may invoke the forwarder for this rule", func() {
				fx.tpl.HasResourceProperties(jsii.String("AWS::Lambda::Permission"), &map[string]any{
					"Action": "lambda:InvokeFunction", "FunctionName": getAtt(fnID, "Arn"),
					"Principal": "events.amazonaws.com", "SourceArn": getAtt(ruleID, "Arn"),
				})
			})
			assert(t, "EventBridge may dead-letter this rule's events", func() {
				fx.tpl.HasResourceProperties(jsii.String("AWS::SQS::QueuePolicy"), &map[string]any{
					"PolicyDocument": map[string]any{"Statement": assertions.Match_ArrayWith(&[]any{assertions.Match_ObjectLike(&map[string]any{
						"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": getAtt(dlq, "Arn"),
						"Principal": map[string]any{"Service": "events.amazonaws.com"},
						"Condition": map[string]any{"ArnEquals": map[string]any{"aws:SourceArn": getAtt(ruleID, "Arn")}},
					})})},
				})
			})
		})
	}
	assert(t, "EventBridge may use the key for the encrypted DLQ", func() {
		fx.tpl.HasResourceProperties(jsii.String("AWS::KMS::Key"), &map[string]any{
			"KeyPolicy": map[string]any{"Statement": assertions.Match_ArrayWith(&[]any{assertions.Match_ObjectLike(&map[string]any{
				"Sid": "EventBridgeToEncryptedDLQ", "Effect": "Allow",
				"Principal": map[string]any{"Service": "events.amazonaws.com"},
				"Action":    []any{"kms:Decrypt", "kms:GenerateDataKey"},
				"Condition": map[string]any{"ArnEquals": map[string]any{"aws:SourceArn": assertions.Match_AnyValue()}},
			})})},
		})
	})
}

func TestWorkerService(t *testing.T) {
	var containers []any
	for _, props := range resources("AWS::ECS::TaskDefinition") {
		if props["RuntimePlatform"].(map[string]any)["CpuArchitecture"] != "ARM64" {
			t.Errorf("task definition platform %v, want ARM64", props["RuntimePlatform"])
		}
		containers = props["ContainerDefinitions"].([]any)
	}
	if len(containers) != 1 {
		t.Fatalf("%d containers, want 1", len(containers))
	}
	c := containers[0].(map[string]any)
	env := map[string]any{}
	for _, kv := range c["Environment"].([]any) {
		m := kv.(map[string]any)
		env[m["Name"].(string)] = m["Value"]
	}
	secret := logicalID(t, "AWS::SecretsManager::Secret", map[string]any{"Name": signingSecretName})
	want := map[string]any{
		"RAW_STREAM": StreamRaw, "LEASE_TABLE": "kcl-leases", "DEDUPE_TABLE": "events-dedupe",
		"QUARANTINE_STREAM": StreamQuarantine, "DLQ_STREAM": StreamDLQ, "LATE_STREAM": StreamLate,
		"SIGNING_KEYS_SECRET_ARN": ref(secret), "METRICS_ADDR": ":9090",
		"AWS_REGION": ref("AWS::Region"), "ROUTES": env["ROUTES"],
	}
	if jsonOf(env) != jsonOf(want) {
		t.Errorf("worker environment:\n got %v\nwant %v", env, want)
	}
	if got, want := jsonOf(c["Secrets"]), jsonOf([]any{map[string]any{"Name": "SIGNING_KEYS", "ValueFrom": ref(secret)}}); got != want {
		t.Errorf("worker secrets = %s, want %s", got, want)
	}
	var routes map[string]string
	if err := json.Unmarshal([]byte(env["ROUTES"].(string)), &routes); err != nil {
		t.Fatalf("ROUTES is not JSON: %v", err)
	}
	if routes["default"] != StreamOther || routes["purchase"] != "analytics-purchase" || len(routes) != len(EventTypes)+1 {
		t.Errorf("ROUTES = %v", routes)
	}
	hc := jsonOf(c["HealthCheck"].(map[string]any)["Command"])
	if hc != jsonOf(WorkerHealthCheck) || !strings.Contains(hc, "127.0.0.1:9090/readyz") {
		t.Errorf("health check = %s", hc)
	}
	assert(t, "fleet bounds tied to the shard count", func() {
		fx.tpl.HasResourceProperties(jsii.String("AWS::ApplicationAutoScaling::ScalableTarget"), &map[string]any{
			"MinCapacity": fx.cfg.MinWorkers, "MaxCapacity": fx.cfg.RawShards,
			"ScalableDimension": "ecs:service:DesiredCount",
		})
	})
	assert(t, "service in private subnets, no public IP", func() {
		fx.tpl.HasResourceProperties(jsii.String("AWS::ECS::Service"), &map[string]any{
			"LaunchType": "FARGATE",
			// Autoscaling owns the count; a DesiredCount would reset it on every deploy.
			"DesiredCount":         assertions.Match_Absent(),
			"NetworkConfiguration": map[string]any{"AwsvpcConfiguration": map[string]any{"AssignPublicIp": "DISABLED"}},
		})
	})
}

func TestAlarms(t *testing.T) {
	topic := logicalID(t, "AWS::SNS::Topic", map[string]any{"TopicName": alarmTopicName})
	for _, name := range AlarmNames {
		assert(t, "alarm "+name, func() {
			fx.tpl.HasResourceProperties(jsii.String("AWS::CloudWatch::Alarm"), &map[string]any{
				"AlarmName": name, "AlarmActions": []any{ref(topic)},
			})
		})
	}
	named := 0 // the step-scaling policy adds an unnamed alarm of its own
	for _, props := range resources("AWS::CloudWatch::Alarm") {
		if name, ok := props["AlarmName"].(string); ok && strings.HasPrefix(name, alarmPrefix) {
			named++
		}
	}
	if named != len(AlarmNames) {
		t.Errorf("%d named alarms, want %d", named, len(AlarmNames))
	}
	metricOf := map[string]map[string]any{
		"raw-iterator-age":    {"Namespace": "AWS/Kinesis", "MetricName": "GetRecords.IteratorAgeMilliseconds"},
		"dlq-records":         {"Namespace": "AWS/Kinesis", "MetricName": "IncomingRecords"},
		"quarantine-records":  {"Namespace": "AWS/Kinesis", "MetricName": "IncomingRecords"},
		"breaker-open":        {"Namespace": metricsNamespace, "MetricName": breakerMetricName},
		"forwarder-errors":    {"Namespace": "AWS/Lambda", "MetricName": "Errors"},
		"forwarder-throttles": {"Namespace": "AWS/Lambda", "MetricName": "Throttles"},
	}
	for name, m := range metricOf {
		m["AlarmName"] = alarmPrefix + name
		assert(t, "alarm metric "+name, func() {
			fx.tpl.HasResourceProperties(jsii.String("AWS::CloudWatch::Alarm"), &m)
		})
	}
	assert(t, "breaker metric filter on the worker log group", func() {
		fx.tpl.HasResourceProperties(jsii.String("AWS::Logs::MetricFilter"), &map[string]any{
			"FilterPattern": fx.cfg.BreakerOpenLogPattern,
			"MetricTransformations": []any{map[string]any{
				"MetricNamespace": metricsNamespace, "MetricName": breakerMetricName, "MetricValue": "1",
			}},
		})
	})
}

func TestAuditTrailCoversStreamsAndFunction(t *testing.T) {
	trails := resources("AWS::CloudTrail::Trail")
	if len(trails) != 1 {
		t.Fatalf("%d trails, want 1", len(trails))
	}
	var sel []any
	for _, props := range trails {
		sel = props["AdvancedEventSelectors"].([]any)
	}
	fnID := logicalID(t, "AWS::Lambda::Function", map[string]any{"FunctionName": forwarderName})
	covered := map[string][]string{}
	for _, s := range sel {
		var typ string
		var arns []string
		for _, f := range s.(map[string]any)["FieldSelectors"].([]any) {
			fm := f.(map[string]any)
			switch fm["Field"] {
			case "resources.type":
				typ = fm["Equals"].([]any)[0].(string)
			case "resources.ARN":
				for _, a := range fm["Equals"].([]any) {
					arns = append(arns, jsonOf(a))
				}
			}
		}
		sort.Strings(arns)
		covered[typ] = arns
	}
	if got, want := covered["AWS::Kinesis::Stream"], streamArnRefs(AllStreamNames()...); !slices.Equal(got, want) {
		t.Errorf("stream data events cover %v, want every stream %v", got, want)
	}
	if got := covered["AWS::Lambda::Function"]; !slices.Equal(got, []string{jsonOf(getAtt(fnID, "Arn"))}) {
		t.Errorf("function data events cover %v", got)
	}
	if _, ok := covered[""]; !ok {
		t.Error("no management-event selector")
	}
}

func TestNagHasNoUnsuppressedFindings(t *testing.T) {
	for _, level := range []string{"error", "warning"} {
		var msgs []string
		assert(t, "read nag "+level+"s", func() {
			pattern := assertions.Match_StringLikeRegexp(jsii.String("AwsSolutions-.*"))
			if level == "error" {
				for _, m := range *fx.ann.FindError(jsii.String("*"), pattern) {
					msgs = append(msgs, fmt.Sprintf("%s: %v", *m.Id, m.Entry.Data))
				}
			} else {
				for _, m := range *fx.ann.FindWarning(jsii.String("*"), pattern) {
					msgs = append(msgs, fmt.Sprintf("%s: %v", *m.Id, m.Entry.Data))
				}
			}
		})
		for _, m := range msgs {
			t.Errorf("unsuppressed cdk-nag %s: %s", level, m)
		}
	}
	// Every suppression carries a written reason.
	n := 0
	for id, r := range fx.res {
		md, _ := r.(map[string]any)["Metadata"].(map[string]any)
		nag, _ := md["cdk_nag"].(map[string]any)
		rules, _ := nag["rules_to_suppress"].([]any)
		for _, rule := range rules {
			rm := rule.(map[string]any)
			n++
			if reason, _ := rm["reason"].(string); len(strings.Fields(reason)) < 10 {
				t.Errorf("%s: suppression of %v has no real reason: %q", id, rm["id"], reason)
			}
		}
	}
	if n == 0 {
		t.Error("no suppressions found in the template metadata; the check above is not looking at the right place")
	}
}
