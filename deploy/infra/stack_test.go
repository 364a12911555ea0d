package infra

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/jsii-runtime-go"
)

func TestStreamsNamedAndEncryptedWithTheKey(t *testing.T) {
	var names []string
	for _, props := range resources("AWS::Kinesis::Stream") {
		names = append(names, props["Name"].(string))
	}
	sort.Strings(names)
	var want []string
	for _, n := range AllStreamNames() {
		want = append(want, "test-"+n)
	}
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
			"Name": "test-" + RawStream, "ShardCount": fx.cfg.RawShards,
			"StreamModeDetails": map[string]any{"StreamMode": "PROVISIONED"},
		})
	})
	assert(t, "on-demand option", func() {
		alt.tpl.AllResourcesProperties(jsii.String("AWS::Kinesis::Stream"), &map[string]any{
			"StreamModeDetails": map[string]any{"StreamMode": "ON_DEMAND"}, "ShardCount": assertions.Match_Absent(),
		})
	})
	assert(t, "key rotation", func() {
		fx.tpl.AllResourcesProperties(jsii.String("AWS::KMS::Key"), &map[string]any{"EnableKeyRotation": true})
	})
}

// TestEverythingAtRestEncrypted checks every resource of each type that stores data: all of
// them, not only the ones this test knows by name.
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
			"TableName":            "test-" + LeaseTable,
			"KeySchema":            []any{map[string]any{"AttributeName": "ShardID", "KeyType": "HASH"}},
			"AttributeDefinitions": []any{map[string]any{"AttributeName": "ShardID", "AttributeType": "S"}},
		})
	})
	assert(t, "dedupe table with TTL", func() {
		fx.tpl.HasResourceProperties(jsii.String("AWS::DynamoDB::Table"), &map[string]any{
			"TableName":               "test-" + DedupeTable,
			"KeySchema":               []any{map[string]any{"AttributeName": "event_id", "KeyType": "HASH"}},
			"TimeToLiveSpecification": map[string]any{"AttributeName": "expires_at", "Enabled": true},
		})
	})
}

// TestDataSurvivesUpdatesAndDeletesButNotAFailedCreate: every resource that holds data or
// carries a stage name is kept when the stack is updated or deleted (DeletionPolicy
// RetainExceptOnCreate, UpdateReplacePolicy Retain), but deleted when the create that made it
// rolls back, so a failed first deploy can be run again; the tables are also protected from a
// delete by hand.
func TestDataSurvivesUpdatesAndDeletesButNotAFailedCreate(t *testing.T) {
	types := []string{
		"AWS::KMS::Key", "AWS::Kinesis::Stream", "AWS::DynamoDB::Table", "AWS::SecretsManager::Secret",
		"AWS::SQS::Queue", "AWS::Logs::LogGroup",
	}
	for _, typ := range types {
		n := 0
		for id, r := range fx.res {
			rm := r.(map[string]any)
			if rm["Type"] != typ {
				continue
			}
			n++
			if rm["DeletionPolicy"] != "RetainExceptOnCreate" || rm["UpdateReplacePolicy"] != "Retain" {
				t.Errorf("%s (%s): DeletionPolicy %v, UpdateReplacePolicy %v; want RetainExceptOnCreate and Retain",
					id, typ, rm["DeletionPolicy"], rm["UpdateReplacePolicy"])
			}
		}
		if n == 0 {
			t.Errorf("no %s in the template", typ)
		}
	}
	for id, props := range resources("AWS::DynamoDB::Table") {
		if props["DeletionProtectionEnabled"] != true {
			t.Errorf("table %s: DeletionProtectionEnabled = %v, want true", id, props["DeletionProtectionEnabled"])
		}
	}
	// Audit evidence outlives the stack; buckets are named by CloudFormation, so a retained
	// bucket never blocks a retry.
	for id, r := range fx.res {
		rm := r.(map[string]any)
		if rm["Type"] != "AWS::S3::Bucket" {
			continue
		}
		if rm["DeletionPolicy"] != "Retain" {
			t.Errorf("bucket %s: DeletionPolicy %v, want Retain", id, rm["DeletionPolicy"])
		}
		if props, _ := rm["Properties"].(map[string]any); props["BucketName"] != nil {
			t.Errorf("bucket %s has a fixed name %v: a retained bucket would block a retry", id, props["BucketName"])
		}
	}
}

// Wildcards that AWS requires. Everything else in an Allow statement must name exact actions
// and resources.
var (
	// Actions without resource-level permissions: Resource must be "*".
	starResourceActions = map[string]string{
		"ecr:GetAuthorizationToken": "ECR authorisation tokens are account-wide; the action has no resource-level permissions (added by CDK to the task execution role for the image pull, which itself is scoped to the asset repository)",
		// The autoscaler's role (autoscaler.go).
		"kinesis:DescribeLimits":                          "the account's shard limit and open shards: no resource-level permissions",
		"cloudwatch:GetMetricData":                        "CloudWatch metric reads have no resource-level permissions",
		"application-autoscaling:DescribeScalableTargets": "Describe actions of Application Auto Scaling have no resource-level permissions",
		"application-autoscaling:RegisterScalableTarget":  "scoped by a scalable-target ARN, which CloudFormation does not expose for the fleet's target; the ECS grants beside it name the fleet's service only",
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

// policyStatements returns every statement of every policy document in a template: IAM
// policies, role inline policies, bucket/queue/topic policies and key policies. Trust policies
// (AssumeRolePolicyDocument) are skipped: they name principals, not permissions.
func (s *synthed) policyStatements() []statement {
	var out []statement
	var walk func(id, typ, path string, v any)
	walk = func(id, typ, path string, v any) {
		switch x := v.(type) {
		case map[string]any:
			if sts, ok := x["Statement"].([]any); ok {
				for _, st := range sts {
					out = append(out, statement{resource: typ, where: id + path, st: st.(map[string]any)})
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
	for id, r := range s.res {
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

// wildcardViolations lists Allow statements with a wildcard action or resource that is not on
// the allowlists above.
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

// anyonePrincipal reports whether a statement's principal is everyone: "*" or {"AWS": "*"}
// (alone or in a list).
func anyonePrincipal(p any) bool {
	switch x := p.(type) {
	case string:
		return x == "*"
	case map[string]any:
		for _, v := range x {
			if slices.Contains(strs(v), "*") {
				return true
			}
		}
	}
	return false
}

// starPrincipalViolations lists Allow statements whose principal is anyone and that carry no
// condition: a grant to the whole world.
func starPrincipalViolations(sts []statement) []string {
	var bad []string
	for _, s := range sts {
		if s.st["Effect"] != "Allow" || !anyonePrincipal(s.st["Principal"]) {
			continue
		}
		if c, ok := s.st["Condition"].(map[string]any); !ok || len(c) == 0 {
			bad = append(bad, fmt.Sprintf("%s (%s): Allow %v to principal %v without a condition", s.where, s.resource, s.st["Action"], jsonOf(s.st["Principal"])))
		}
	}
	return bad
}

func TestNoWildcardPermissions(t *testing.T) {
	for _, s := range []*synthed{&fx, &alt} {
		sts := s.policyStatements()
		if len(sts) < 10 {
			t.Fatalf("%s: found only %d policy statements; the walk is broken", s.cfg.Stage, len(sts))
		}
		for _, v := range wildcardViolations(sts) {
			t.Errorf("%s: %s", s.cfg.Stage, v)
		}
		for id, props := range s.resources("AWS::IAM::Role") {
			if _, ok := props["ManagedPolicyArns"]; ok {
				t.Errorf("%s: role %s attaches managed policies; scope its permissions inline", s.cfg.Stage, id)
			}
		}
	}
}

// TestNoStarPrincipalWithoutCondition: no policy anywhere (key, queue, topic, bucket, IAM) grants
// anything to "*" unless a condition narrows it.
func TestNoStarPrincipalWithoutCondition(t *testing.T) {
	for _, s := range []*synthed{&fx, &alt} {
		for _, v := range starPrincipalViolations(s.policyStatements()) {
			t.Errorf("%s: %s", s.cfg.Stage, v)
		}
	}
}

// TestPolicyCheckersCatch feeds the checkers statements they must reject, so a checker that
// accepts everything cannot pass.
func TestPolicyCheckersCatch(t *testing.T) {
	allow := func(typ string, st map[string]any) statement {
		st["Effect"] = "Allow"
		return statement{typ, "x", st}
	}
	tests := []struct {
		name     string
		s        statement
		wildcard bool
		anyone   bool
	}{
		{"star action", allow("AWS::IAM::Policy", map[string]any{"Action": "*", "Resource": "arn:x"}), true, false},
		{"service wildcard", allow("AWS::IAM::Policy", map[string]any{"Action": []any{"kinesis:*"}, "Resource": "arn:x"}), true, false},
		{"star resource", allow("AWS::IAM::Policy", map[string]any{"Action": "kinesis:PutRecord", "Resource": "*"}), true, false},
		{"NotResource", allow("AWS::IAM::Policy", map[string]any{"Action": "s3:GetObject", "NotResource": "arn:x"}), true, false},
		{"wildcard for a service in a key policy", allow("AWS::KMS::Key", map[string]any{"Action": "kms:*", "Principal": map[string]any{"Service": "events.amazonaws.com"}, "Resource": "*"}), true, false},
		{"any AWS principal may decrypt", allow("AWS::KMS::Key", map[string]any{"Action": "kms:Decrypt", "Principal": map[string]any{"AWS": "*"}, "Resource": "*"}), false, true},
		{"anyone may receive from the queue", allow("AWS::SQS::QueuePolicy", map[string]any{"Action": []any{"sqs:ReceiveMessage", "sqs:DeleteMessage"}, "Principal": "*", "Resource": map[string]any{"Fn::GetAtt": []any{"Q", "Arn"}}}), false, true},
		{"anyone in a list", allow("AWS::SNS::TopicPolicy", map[string]any{"Action": "sns:Publish", "Principal": map[string]any{"AWS": []any{"arn:aws:iam::1:root", "*"}}, "Resource": "arn:x"}), false, true},
		{"allowed: star principal with a condition", allow("AWS::KMS::Key", map[string]any{"Action": "kms:Decrypt", "Principal": map[string]any{"AWS": "*"}, "Resource": "*", "Condition": map[string]any{"StringEquals": map[string]any{"kms:CallerAccount": "1"}}}), false, false},
		{"allowed: GetAuthorizationToken", allow("AWS::IAM::Policy", map[string]any{"Action": "ecr:GetAuthorizationToken", "Resource": "*"}), false, false},
		{"allowed: deny with wildcards", statement{"AWS::S3::BucketPolicy", "b", map[string]any{"Effect": "Deny", "Action": "s3:*", "Principal": map[string]any{"AWS": "*"}, "Resource": "*"}}, false, false},
		{"allowed: exact", allow("AWS::IAM::Policy", map[string]any{"Action": "kinesis:PutRecord", "Resource": map[string]any{"Fn::GetAtt": []any{"S", "Arn"}}}), false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := len(wildcardViolations([]statement{tc.s})) > 0; got != tc.wildcard {
				t.Errorf("wildcard violation = %v, want %v", got, tc.wildcard)
			}
			if got := len(starPrincipalViolations([]statement{tc.s})) > 0; got != tc.anyone {
				t.Errorf("star-principal violation = %v, want %v", got, tc.anyone)
			}
		})
	}
}

// TestKeyPolicyAdmitsOnlyTheseServices: the key policy names the account root (delegating to
// IAM) and the services that encrypt on the stack's behalf, each pinned by a condition; nothing
// else, so a grant to another principal fails here even with a condition.
func TestKeyPolicyAdmitsOnlyTheseServices(t *testing.T) {
	allowed := map[string]bool{
		"cloudtrail.amazonaws.com": true, "events.amazonaws.com": true, "cloudwatch.amazonaws.com": true,
	}
	for _, props := range resources("AWS::KMS::Key") {
		for _, st := range props["KeyPolicy"].(map[string]any)["Statement"].([]any) {
			s := st.(map[string]any)
			p, _ := s["Principal"].(map[string]any)
			if principalKind(s["Principal"]) == "root" {
				continue
			}
			svc := strings.Trim(jsonOf(p["Service"]), `"`)
			if strings.Contains(svc, `"logs.",`) { // logs.<region>.amazonaws.com, a token
				svc = "logs"
			}
			switch {
			case p["Service"] == nil:
				t.Errorf("key policy statement %v: principal %s is neither the account root nor a service", s["Sid"], jsonOf(s["Principal"]))
			case !allowed[svc] && svc != "logs":
				t.Errorf("key policy statement %v: service %s is not one that encrypts for this stack", s["Sid"], svc)
			case s["Condition"] == nil:
				t.Errorf("key policy statement %v: service %s without a condition", s["Sid"], svc)
			}
		}
	}
}

// roleStatements returns the statements of the inline policies attached to a role.
func (s *synthed) roleStatements(t *testing.T, roleID string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, props := range s.resources("AWS::IAM::Policy") {
		roles, _ := props["Roles"].([]any)
		if !slices.ContainsFunc(roles, func(r any) bool { return jsonOf(r) == `{"Ref":"`+roleID+`"}` }) {
			continue
		}
		for _, st := range props["PolicyDocument"].(map[string]any)["Statement"].([]any) {
			out = append(out, st.(map[string]any))
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
				res = append(res, jsonOf(e))
			}
		default:
			res = append(res, jsonOf(r))
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
			if props["Name"] == fx.cfg.Name(n) {
				out = append(out, jsonOf(getAtt(id, "Arn")))
			}
		}
	}
	sort.Strings(out)
	return out
}

func forwarderRoleID(t *testing.T, s *synthed) string {
	fnID := s.logicalID(t, "AWS::Lambda::Function", map[string]any{"FunctionName": s.names.Forwarder})
	return s.resources("AWS::Lambda::Function")[fnID]["Role"].(map[string]any)["Fn::GetAtt"].([]any)[0].(string)
}

func workerTask(t *testing.T, s *synthed) map[string]any {
	t.Helper()
	return taskOfFamily(t, s, s.names.WorkerService)
}

// taskOfFamily returns the one task definition of that family.
func taskOfFamily(t *testing.T, s *synthed, family string) map[string]any {
	t.Helper()
	var found []map[string]any
	for _, props := range s.resources("AWS::ECS::TaskDefinition") {
		if props["Family"] == family {
			found = append(found, props)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%s: %d task definitions of family %s, want 1", s.cfg.Stage, len(found), family)
	}
	return found[0]
}

func workerRoleID(t *testing.T, s *synthed) string {
	return workerTask(t, s)["TaskRoleArn"].(map[string]any)["Fn::GetAtt"].([]any)[0].(string)
}

// container returns the task's container definition of that name.
func container(t *testing.T, s *synthed, name string) map[string]any {
	t.Helper()
	for _, c := range workerTask(t, s)["ContainerDefinitions"].([]any) {
		if cm := c.(map[string]any); cm["Name"] == name {
			return cm
		}
	}
	t.Fatalf("no container %q", name)
	return nil
}

func containerEnv(t *testing.T, s *synthed, name string) map[string]any {
	env := map[string]any{}
	for _, kv := range container(t, s, name)["Environment"].([]any) {
		m := kv.(map[string]any)
		env[m["Name"].(string)] = m["Value"]
	}
	return env
}

func TestForwarderPermissionsAreExact(t *testing.T) {
	g := grants(fx.roleStatements(t, forwarderRoleID(t, &fx)))
	dlq := logicalID(t, "AWS::SQS::Queue", map[string]any{"QueueName": fx.names.ForwarderDLQ})
	logs := logicalID(t, "AWS::Logs::LogGroup", map[string]any{"LogGroupName": fx.names.LogGroupPrefix + "forwarder"})
	want := map[string][]string{
		"kinesis:PutRecords":   streamArnRefs(RawStream, QuarantineStream),
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
	g := grants(fx.roleStatements(t, workerRoleID(t, &fx)))
	lease := jsonOf(getAtt(logicalID(t, "AWS::DynamoDB::Table", map[string]any{"TableName": "test-" + LeaseTable}), "Arn"))
	dedupe := jsonOf(getAtt(logicalID(t, "AWS::DynamoDB::Table", map[string]any{"TableName": "test-" + DedupeTable}), "Arn"))
	secret := jsonOf(ref(logicalID(t, "AWS::SecretsManager::Secret", map[string]any{"Name": fx.names.SigningSecret})))
	metrics := jsonOf(getAtt(logicalID(t, "AWS::Logs::LogGroup", map[string]any{"LogGroupName": fx.names.LogGroupPrefix + "worker-metrics"}), "Arn"))
	raw := streamArnRefs(RawStream)
	outputs := streamArnRefs(OutputStreamNames()...)
	want := map[string][]string{
		"kinesis:GetRecords":            raw,
		"kinesis:GetShardIterator":      raw,
		"kinesis:ListShards":            raw,
		"kinesis:DescribeStreamSummary": raw,
		"kinesis:PutRecords":            outputs,
		"dynamodb:DescribeTable":        {lease},
		"dynamodb:GetItem":              {lease},
		"dynamodb:UpdateItem":           {lease},
		"dynamodb:DeleteItem":           {lease},
		"dynamodb:Scan":                 {lease},
		"dynamodb:BatchGetItem":         {dedupe},
		"dynamodb:BatchWriteItem":       {dedupe},
		"dynamodb:PutItem":              {dedupe},
		"secretsmanager:GetSecretValue": {secret},
		"kms:Decrypt":                   {jsonOf(fx.keyArn)},
		"kms:GenerateDataKey":           {jsonOf(fx.keyArn)},
		"logs:CreateLogStream":          {metrics},
		"logs:PutLogEvents":             {metrics},
	}
	if jsonOf(g) != jsonOf(want) {
		t.Errorf("worker task role grants:\n got %v\nwant %v", g, want)
	}
	if len(outputs) != len(OutputStreamNames()) || len(raw) != 1 {
		t.Errorf("stream ARNs: %d raw, %d outputs", len(raw), len(outputs))
	}
}

// TestOneSettingForPIIPaths: the forwarder and the worker enforce the same PII paths, both
// from Config.PIIPaths.
func TestOneSettingForPIIPaths(t *testing.T) {
	for _, s := range []*synthed{&fx, &alt} {
		want := strings.Join(s.cfg.PIIPaths, ",")
		var fwd any
		for _, props := range s.resources("AWS::Lambda::Function") {
			if props["FunctionName"] == s.names.Forwarder {
				fwd = props["Environment"].(map[string]any)["Variables"].(map[string]any)[envForwarderPII]
			}
		}
		worker := containerEnv(t, s, workerContainer)[envWorkerPII]
		if fwd != want || worker != want {
			t.Errorf("%s: forwarder %s=%v, worker %s=%v; want both %q", s.cfg.Stage, envForwarderPII, fwd, envWorkerPII, worker, want)
		}
	}
}

// TestAggregateKeysSetting: the worker aggregates only when the aggregateKeys context says so.
func TestAggregateKeysSetting(t *testing.T) {
	for s, want := range map[*synthed]string{&fx: "false", &alt: "true"} {
		if got := containerEnv(t, s, workerContainer)["AGGREGATE_KEYS"]; got != want {
			t.Errorf("%s: worker AGGREGATE_KEYS=%v, want %q", s.cfg.Stage, got, want)
		}
	}
}

func TestForwarderFunction(t *testing.T) {
	assert(t, "forwarder function", func() {
		fx.tpl.HasResourceProperties(jsii.String("AWS::Lambda::Function"), &map[string]any{
			"FunctionName":                 fx.names.Forwarder,
			"Runtime":                      "provided.al2023",
			"Architectures":                []any{"arm64"},
			"Handler":                      "bootstrap",
			"ReservedConcurrentExecutions": fx.cfg.ForwarderReservedConcurrency,
			// The cost model (bench/cost.go, PlatformLogBytes 0) counts on no per-invocation system lines.
			"LoggingConfig": map[string]any{"LogFormat": "JSON", "SystemLogLevel": "WARN"},
			"Environment": map[string]any{"Variables": map[string]any{
				envForwarderRaw: "test-" + RawStream, envForwarderQuarantine: "test-" + QuarantineStream,
				envForwarderPII: "customer_id,properties.email", envForwarderNamespace: fx.names.MetricsNamespace,
			}},
		})
	})
	fnID := logicalID(t, "AWS::Lambda::Function", map[string]any{"FunctionName": fx.names.Forwarder})
	dlq := logicalID(t, "AWS::SQS::Queue", map[string]any{"QueueName": fx.names.ForwarderDLQ})
	assert(t, "failed async invocations go to the DLQ", func() {
		fx.tpl.HasResourceProperties(jsii.String("AWS::Lambda::EventInvokeConfig"), &map[string]any{
			"FunctionName":         ref(fnID),
			"MaximumRetryAttempts": lambdaRetryAttempts,
			"DestinationConfig":    map[string]any{"OnFailure": map[string]any{"Destination": getAtt(dlq, "Arn")}},
		})
	})
}

// TestForwarderInvokePermissionsAreExact: exactly one invoke permission per rule that targets
// the forwarder, each for EventBridge and pinned to that rule's ARN; no other permission.
func TestForwarderInvokePermissionsAreExact(t *testing.T) {
	for _, s := range []*synthed{&fx, &alt} {
		fnID := s.logicalID(t, "AWS::Lambda::Function", map[string]any{"FunctionName": s.names.Forwarder})
		var got []string
		for id, props := range s.resources("AWS::Lambda::Permission") {
			got = append(got, jsonOf(props))
			if props["Principal"] != "events.amazonaws.com" || props["Action"] != "lambda:InvokeFunction" || props["SourceArn"] == nil {
				t.Errorf("%s: permission %s = %s: want lambda:InvokeFunction for events.amazonaws.com with a SourceArn", s.cfg.Stage, id, jsonOf(props))
			}
		}
		var want []string
		for _, rule := range []string{s.names.ForwardRule, s.names.MalformedRule} {
			ruleID := s.logicalID(t, "AWS::Events::Rule", map[string]any{"Name": rule})
			want = append(want, jsonOf(map[string]any{
				"Action": "lambda:InvokeFunction", "FunctionName": getAtt(fnID, "Arn"),
				"Principal": "events.amazonaws.com", "SourceArn": getAtt(ruleID, "Arn"),
			}))
		}
		sort.Strings(got)
		sort.Strings(want)
		if !slices.Equal(got, want) {
			t.Errorf("%s: invoke permissions:\n got %v\nwant %v", s.cfg.Stage, got, want)
		}
	}
}

// TestQueuePoliciesAreExact: the failure and unrouted queues admit EventBridge's SendMessage
// for this stack's rules only, and deny plain HTTP; no other Allow.
func TestQueuePoliciesAreExact(t *testing.T) {
	ruleArns := map[string]bool{}
	for id := range resources("AWS::Events::Rule") {
		ruleArns[jsonOf(getAtt(id, "Arn"))] = true
	}
	policies := resources("AWS::SQS::QueuePolicy")
	if len(policies) != 2 {
		t.Errorf("%d queue policies, want 2 (failure queue, unrouted queue)", len(policies))
	}
	for id, props := range policies {
		for _, st := range props["PolicyDocument"].(map[string]any)["Statement"].([]any) {
			s := st.(map[string]any)
			if s["Effect"] == "Deny" {
				cond := jsonOf(s["Condition"])
				if !strings.Contains(cond, `"aws:SecureTransport":"false"`) {
					t.Errorf("%s: Deny statement that is not the TLS-only rule: %s", id, jsonOf(s))
				}
				continue
			}
			cond, _ := s["Condition"].(map[string]any)
			arn, _ := cond["ArnEquals"].(map[string]any)
			if jsonOf(s["Principal"]) != `{"Service":"events.amazonaws.com"}` || s["Action"] != "sqs:SendMessage" || arn == nil || !ruleArns[jsonOf(arn["aws:SourceArn"])] {
				t.Errorf("%s: Allow statement beyond EventBridge's SendMessage for this stack's rules: %s", id, jsonOf(s))
			}
		}
	}
}

// TestRulesPartitionTheBus: every event on the bus matches exactly one rule. With a source
// prefix, the forward and malformed rules take that prefix (split on the two ids) and the
// unrouted rule takes every other source to a queue; without one, the two rules are complements.
func TestRulesPartitionTheBus(t *testing.T) {
	exists := func(b bool) []any { return []any{map[string]any{"exists": b}} }
	forward := map[string]any{"event_id": exists(true), "customer_id": exists(true)}
	malformed := map[string]any{"$or": []any{map[string]any{"event_id": exists(false)}, map[string]any{"customer_id": exists(false)}}}
	prefix := []any{map[string]any{"prefix": "shop."}}
	for _, tc := range []struct {
		s        *synthed
		patterns map[string]map[string]any
	}{
		{&fx, map[string]map[string]any{
			fx.names.ForwardRule:   {"detail": forward, "source": prefix},
			fx.names.MalformedRule: {"detail": malformed, "source": prefix},
			fx.names.UnroutedRule:  {"source": []any{map[string]any{"anything-but": map[string]any{"prefix": "shop."}}}},
		}},
		{&alt, map[string]map[string]any{
			alt.names.ForwardRule:   {"detail": forward},
			alt.names.MalformedRule: {"detail": malformed},
		}},
	} {
		s := tc.s
		onBus := 0 // the autoscaler's schedule is a rule on the default bus
		for _, props := range s.resources("AWS::Events::Rule") {
			if props["EventBusName"] != nil {
				onBus++
			}
		}
		if onBus != len(tc.patterns) {
			t.Errorf("%s: %d rules on the bus, want %d", s.cfg.Stage, onBus, len(tc.patterns))
		}
		fnID := s.logicalID(t, "AWS::Lambda::Function", map[string]any{"FunctionName": s.names.Forwarder})
		dlq := s.logicalID(t, "AWS::SQS::Queue", map[string]any{"QueueName": s.names.ForwarderDLQ})
		bus := s.logicalID(t, "AWS::Events::EventBus", map[string]any{"Name": s.cfg.Name(EventBus)})
		for name, pattern := range tc.patterns {
			target := getAtt(fnID, "Arn")
			if name == s.names.UnroutedRule {
				target = getAtt(s.logicalID(t, "AWS::SQS::Queue", map[string]any{"QueueName": s.names.UnroutedQueue}), "Arn")
			}
			assert(t, s.cfg.Stage+" rule "+name, func() {
				s.tpl.HasResourceProperties(jsii.String("AWS::Events::Rule"), &map[string]any{
					"Name":         name,
					"EventBusName": ref(bus),
					"EventPattern": assertions.Match_ObjectEquals(&pattern),
					"Targets": []any{assertions.Match_ObjectLike(&map[string]any{
						"Arn":              target,
						"DeadLetterConfig": map[string]any{"Arn": getAtt(dlq, "Arn")},
						"RetryPolicy": map[string]any{
							"MaximumRetryAttempts": ruleRetryAttempts, "MaximumEventAgeInSeconds": ruleMaxEventAge * 3600,
						},
					})},
				})
			})
		}
		assert(t, s.cfg.Stage+" archive of every event", func() {
			s.tpl.HasResourceProperties(jsii.String("AWS::Events::Archive"), &map[string]any{
				"ArchiveName":   s.names.Archive,
				"SourceArn":     getAtt(bus, "Arn"),
				"RetentionDays": s.cfg.ArchiveRetentionDays,
				"EventPattern":  map[string]any{"account": []any{ref("AWS::AccountId")}},
			})
		})
	}
	assert(t, "EventBridge may use the key for the encrypted queues of these rules only", func() {
		fx.tpl.HasResourceProperties(jsii.String("AWS::KMS::Key"), &map[string]any{
			"KeyPolicy": map[string]any{"Statement": assertions.Match_ArrayWith(&[]any{assertions.Match_ObjectLike(&map[string]any{
				"Sid": "EventBridgeToEncryptedQueues", "Effect": "Allow",
				"Principal": map[string]any{"Service": "events.amazonaws.com"},
				"Action":    []any{"kms:Decrypt", "kms:GenerateDataKey"},
				"Condition": map[string]any{"ArnEquals": map[string]any{"aws:SourceArn": assertions.Match_AnyValue()}},
			})})},
		})
	})
}

// TestSigningKeysGeneratedOnceNotOwned: the secret's first value is generated by Secrets Manager
// from the template (no value in it), in a form the worker parses; so CloudFormation never writes
// the value again and rotation does not drift.
func TestSigningKeysGeneratedOnceNotOwned(t *testing.T) {
	id := logicalID(t, "AWS::SecretsManager::Secret", map[string]any{"Name": fx.names.SigningSecret})
	props := resources("AWS::SecretsManager::Secret")[id]
	if _, ok := props["SecretString"]; ok {
		t.Fatalf("the template sets the secret's value: CloudFormation would own it and every rotation would drift")
	}
	if n := len(resources("AWS::SecretsManager::Secret")); n != 1 {
		t.Errorf("%d secrets, want 1 (no seed or copy)", n)
	}
	gen, _ := props["GenerateSecretString"].(map[string]any)
	want := map[string]any{
		"SecretStringTemplate": `{"id":"` + signingKeyInitialID + `"}`, "GenerateStringKey": "secret",
		"PasswordLength": float64(64), "ExcludePunctuation": true, "IncludeSpace": false,
	}
	if jsonOf(gen) != jsonOf(want) {
		t.Fatalf("GenerateSecretString = %s, want %s", jsonOf(gen), jsonOf(want))
	}
	// What Secrets Manager generates: the template with the key added, 64 alphanumerics.
	var value map[string]string
	if err := json.Unmarshal([]byte(gen["SecretStringTemplate"].(string)), &value); err != nil {
		t.Fatal(err)
	}
	value["secret"] = strings.Repeat("aZ09", 16)
	b, _ := json.Marshal(value)
	var key struct{ ID, Secret string }
	if err := json.Unmarshal(b, &key); err != nil || key.ID != signingKeyInitialID {
		t.Fatalf("generated value %s: %v", b, err)
	}
	if raw, err := base64.StdEncoding.DecodeString(key.Secret); err != nil || len(raw) != 48 {
		t.Errorf("generated secret decodes to %d bytes, err %v; want 48 bytes of base64", len(raw), err)
	}
}

func TestWorkerService(t *testing.T) {
	td := workerTask(t, &fx)
	if td["RuntimePlatform"].(map[string]any)["CpuArchitecture"] != "ARM64" {
		t.Errorf("task definition platform %v, want ARM64", td["RuntimePlatform"])
	}
	if n := len(td["ContainerDefinitions"].([]any)); n != 2 {
		t.Fatalf("%d containers, want 2 (worker, metrics collector)", n)
	}
	env := containerEnv(t, &fx, workerContainer)
	secret := logicalID(t, "AWS::SecretsManager::Secret", map[string]any{"Name": fx.names.SigningSecret})
	want := map[string]any{
		"RAW_STREAM": "test-" + RawStream, "LEASE_TABLE": "test-" + LeaseTable, "DEDUPE_TABLE": "test-" + DedupeTable,
		"QUARANTINE_STREAM": "test-" + QuarantineStream, "DLQ_STREAM": "test-" + DLQStream, "LATE_STREAM": "test-" + LateStream,
		"KCL_APPLICATION": "test-" + Application, envWorkerKeysARN: ref(secret), envWorkerPII: "customer_id,properties.email",
		"METRICS_ADDR": ":9090", "AWS_REGION": ref("AWS::Region"), "ROUTES": env["ROUTES"], "AGGREGATE_KEYS": "false",
		envWorkerShutdownGrace: "70s",
	}
	if jsonOf(env) != jsonOf(want) {
		t.Errorf("worker environment:\n got %v\nwant %v", env, want)
	}
	c := container(t, &fx, workerContainer)
	if s, ok := c["Secrets"]; ok {
		t.Errorf("the worker gets an injected copy of a secret (%s): the signing keys have one source, the secret read by ARN", jsonOf(s))
	}
	var routes map[string]string
	if err := json.Unmarshal([]byte(env["ROUTES"].(string)), &routes); err != nil {
		t.Fatalf("ROUTES is not JSON: %v", err)
	}
	if routes["default"] != "test-"+OtherStream || routes["purchase"] != "test-analytics-purchase" || len(routes) != len(StandardTypes)+1 {
		t.Errorf("ROUTES = %v", routes)
	}
	if c["Essential"] != true {
		t.Error("the worker container is not essential")
	}
	if col := container(t, &fx, collectorContainer); col["Essential"] != false {
		t.Errorf("the metrics collector is essential (%v): its failure would stop the worker", col["Essential"])
	}
	assert(t, "service in private subnets, no public IP, no desired count", func() {
		fx.tpl.HasResourceProperties(jsii.String("AWS::ECS::Service"), &map[string]any{
			"LaunchType": "FARGATE",
			// Autoscaling owns the count; a DesiredCount would reset it on every deploy.
			"DesiredCount":         assertions.Match_Absent(),
			"NetworkConfiguration": map[string]any{"AwsvpcConfiguration": map[string]any{"AssignPublicIp": "DISABLED"}},
		})
	})
}

// TestHealthCheckIsLiveness: the container health check probes /healthz, never /readyz (a
// readiness failure, such as a destination outage, must never make ECS kill the fleet).
func TestHealthCheckIsLiveness(t *testing.T) {
	hc := jsonOf(container(t, &fx, workerContainer)["HealthCheck"].(map[string]any)["Command"])
	if hc != jsonOf(WorkerHealthCheck) || !strings.Contains(hc, "127.0.0.1:9090/healthz") || strings.Contains(hc, "readyz") {
		t.Errorf("health check = %s, want the liveness probe %v", hc, WorkerHealthCheck)
	}
}

// TestDeploymentSettings: rolling deploys keep every task until its replacement is healthy,
// roll back by themselves, and each task gets the time its SIGTERM hand-off needs.
func TestDeploymentSettings(t *testing.T) {
	assert(t, "deployment configuration", func() {
		fx.tpl.HasResourceProperties(jsii.String("AWS::ECS::Service"), &map[string]any{
			"DeploymentConfiguration": map[string]any{
				"DeploymentCircuitBreaker": map[string]any{"Enable": true, "Rollback": true},
				"MinimumHealthyPercent":    100,
				"MaximumPercent":           200,
			},
		})
	})
	if got := container(t, &fx, workerContainer)["StopTimeout"]; got != float64(workerStopTimeout) {
		t.Errorf("worker StopTimeout = %v, want %d s for the SIGTERM hand-off", got, workerStopTimeout)
	}
}

// TestScalingPolicies: the fleet scales between MinWorkers and RawShards on CPU (target
// tracking) and on the raw stream's iterator age (steps).
func TestScalingPolicies(t *testing.T) {
	targets := resources("AWS::ApplicationAutoScaling::ScalableTarget")
	if len(targets) != 1 {
		t.Fatalf("%d scalable targets, want 1", len(targets))
	}
	var targetID string
	for id := range targets {
		targetID = id
	}
	assert(t, "fleet bounds tied to the shard count", func() {
		fx.tpl.HasResourceProperties(jsii.String("AWS::ApplicationAutoScaling::ScalableTarget"), &map[string]any{
			"MinCapacity": fx.cfg.MinWorkers, "MaxCapacity": fx.cfg.RawShards,
			"ScalableDimension": "ecs:service:DesiredCount",
		})
	})
	kinds := map[string]int{}
	for id, props := range resources("AWS::ApplicationAutoScaling::ScalingPolicy") {
		if jsonOf(props["ScalingTargetId"]) != jsonOf(ref(targetID)) {
			t.Errorf("scaling policy %s is not attached to the fleet's scalable target", id)
		}
		kinds[props["PolicyType"].(string)]++
	}
	if kinds["TargetTrackingScaling"] != 1 || kinds["StepScaling"] < 1 {
		t.Errorf("scaling policies by type %v: want a CPU target-tracking policy and the iterator-age step policies", kinds)
	}
	assert(t, "CPU target tracking", func() {
		fx.tpl.HasResourceProperties(jsii.String("AWS::ApplicationAutoScaling::ScalingPolicy"), &map[string]any{
			"PolicyType": "TargetTrackingScaling",
			"TargetTrackingScalingPolicyConfiguration": assertions.Match_ObjectLike(&map[string]any{
				"PredefinedMetricSpecification": map[string]any{"PredefinedMetricType": "ECSServiceAverageCPUUtilization"},
				"TargetValue":                   60,
			}),
		})
	})
	// The step policies act through alarms on the raw stream's iterator age.
	stepActions := 0
	for _, props := range resources("AWS::CloudWatch::Alarm") {
		if props["MetricName"] != "GetRecords.IteratorAgeMilliseconds" || props["AlarmName"] != nil {
			continue
		}
		for _, a := range asList(props["AlarmActions"]) {
			for id, pol := range resources("AWS::ApplicationAutoScaling::ScalingPolicy") {
				if pol["PolicyType"] == "StepScaling" && jsonOf(a) == jsonOf(ref(id)) {
					stepActions++
				}
			}
		}
	}
	if stepActions == 0 {
		t.Error("no iterator-age alarm triggers a step-scaling policy")
	}
}

// TestEgress: no security group may send all traffic anywhere; the workers send HTTPS only, the
// endpoints take HTTPS from the workers only, and nothing takes traffic from the internet.
func TestEgress(t *testing.T) {
	for _, s := range []*synthed{&fx, &alt} {
		sgs := s.resources("AWS::EC2::SecurityGroup")
		if len(sgs) < 2 {
			t.Fatalf("%s: %d security groups, want the workers' and the endpoints'", s.cfg.Stage, len(sgs))
		}
		for id, props := range sgs {
			for _, e := range asList(props["SecurityGroupEgress"]) {
				em := e.(map[string]any)
				if em["IpProtocol"] == "-1" {
					t.Errorf("%s: security group %s allows all outbound traffic: %s", s.cfg.Stage, id, jsonOf(em))
				}
			}
			for _, in := range asList(props["SecurityGroupIngress"]) {
				if im := in.(map[string]any); im["CidrIp"] == "0.0.0.0/0" || im["CidrIpv6"] == "::/0" {
					t.Errorf("%s: security group %s takes traffic from anywhere: %s", s.cfg.Stage, id, jsonOf(im))
				}
			}
		}
		for id, props := range s.resources("AWS::EC2::SecurityGroupEgress") {
			if props["IpProtocol"] == "-1" {
				t.Errorf("%s: egress rule %s allows all traffic", s.cfg.Stage, id)
			}
		}
		assert(t, s.cfg.Stage+" worker egress is HTTPS only", func() {
			s.tpl.HasResourceProperties(jsii.String("AWS::EC2::SecurityGroup"), &map[string]any{
				"GroupDescription": assertions.Match_StringLikeRegexp(jsii.String("^Kinesis events workers")),
				"SecurityGroupEgress": []any{map[string]any{
					"CidrIp": "0.0.0.0/0", "IpProtocol": "tcp", "FromPort": 443, "ToPort": 443,
					"Description": assertions.Match_AnyValue(),
				}},
			})
		})
	}
}

func asList(v any) []any {
	l, _ := v.([]any)
	return l
}

// TestNetworkNeedsNoNAT: the data path reaches every AWS API the tasks call through VPC
// endpoints; by default there is no NAT gateway at all (isolated subnets), and where NAT is
// chosen there is one per AZ.
func TestNetworkNeedsNoNAT(t *testing.T) {
	services := map[string]string{}
	for _, props := range resources("AWS::EC2::VPCEndpoint") {
		b := jsonOf(props["ServiceName"])
		typ, _ := props["VpcEndpointType"].(string)
		if typ == "" {
			typ = "Gateway"
		}
		for _, svc := range []string{"kinesis-streams", "kms", "secretsmanager", "logs", "ecr.api", "ecr.dkr", "s3", "dynamodb", "monitoring", "application-autoscaling"} {
			if strings.Contains(b, "."+svc+`"`) || strings.HasSuffix(strings.Trim(b, `"`), "."+svc) {
				services[svc] = typ
			}
		}
	}
	want := map[string]string{
		"kinesis-streams": "Interface", "kms": "Interface", "secretsmanager": "Interface", "logs": "Interface",
		"ecr.api": "Interface", "ecr.dkr": "Interface", "s3": "Gateway", "dynamodb": "Gateway",
		// The autoscaler's: the streams' load and the fleet's scalable target.
		"monitoring": "Interface", "application-autoscaling": "Interface",
	}
	if jsonOf(services) != jsonOf(want) {
		t.Errorf("VPC endpoints = %v, want %v", services, want)
	}
	if n := len(resources("AWS::EC2::NatGateway")); n != 0 {
		t.Errorf("%d NAT gateways by default, want 0", n)
	}
	if n := len(resources("AWS::EC2::InternetGateway")); n != 0 {
		t.Errorf("%d internet gateways by default, want 0", n)
	}
	if n := len(alt.resources("AWS::EC2::NatGateway")); n != MaxAZs {
		t.Errorf("natGateways=%d gives %d NAT gateways, want one per AZ", MaxAZs, n)
	}
	assert(t, "interface endpoints with private DNS", func() {
		fx.tpl.AllResourcesProperties(jsii.String("AWS::EC2::VPCEndpoint"), &map[string]any{"VpcId": assertions.Match_AnyValue()})
	})
}

func TestAlarms(t *testing.T) {
	for _, s := range []*synthed{&fx, &alt} {
		topic := s.logicalID(t, "AWS::SNS::Topic", map[string]any{"TopicName": s.names.AlarmTopic})
		names := AlarmNames(s.cfg)
		for _, name := range names {
			assert(t, s.cfg.Stage+" alarm "+name, func() {
				s.tpl.HasResourceProperties(jsii.String("AWS::CloudWatch::Alarm"), &map[string]any{
					"AlarmName": s.names.AlarmPrefix + name, "AlarmActions": []any{ref(topic)}, "OKActions": []any{ref(topic)},
				})
			})
		}
		named := 0 // the step-scaling policy adds unnamed alarms of its own
		for _, props := range s.resources("AWS::CloudWatch::Alarm") {
			if name, ok := props["AlarmName"].(string); ok && strings.HasPrefix(name, s.names.AlarmPrefix) {
				named++
			}
		}
		if named != len(names) {
			t.Errorf("%s: %d named alarms, want %d", s.cfg.Stage, named, len(names))
		}
	}
	metricOf := map[string]map[string]any{
		"raw-iterator-age":                        {"Namespace": "AWS/Kinesis", "MetricName": "GetRecords.IteratorAgeMilliseconds"},
		"raw-write-throttled":                     {"Namespace": "AWS/Kinesis", "MetricName": "WriteProvisionedThroughputExceeded", "Dimensions": []any{map[string]any{"Name": "StreamName", "Value": "test-" + RawStream}}},
		"zero-traffic":                            {"Namespace": "AWS/Kinesis", "MetricName": "IncomingRecords", "TreatMissingData": "breaching", "ComparisonOperator": "LessThanThreshold"},
		"dlq-records":                             {"Namespace": "AWS/Kinesis", "MetricName": "IncomingRecords"},
		"quarantine-records":                      {"Namespace": "AWS/Kinesis", "MetricName": "IncomingRecords"},
		"breaker-open":                            {"Namespace": fx.names.MetricsNamespace, "MetricName": fx.names.BreakerMetric},
		"forwarder-errors":                        {"Namespace": "AWS/Lambda", "MetricName": "Errors"},
		"forwarder-throttles":                     {"Namespace": "AWS/Lambda", "MetricName": "Throttles"},
		"forwarder-async-event-age":               {"Namespace": "AWS/Lambda", "MetricName": "AsyncEventAge", "Threshold": fx.cfg.AsyncEventAgeAlarmSeconds * 1000},
		"forwarder-destination-delivery-failures": {"Namespace": "AWS/Lambda", "MetricName": "DestinationDeliveryFailures"},
		"forwarder-async-events-dropped":          {"Namespace": "AWS/Lambda", "MetricName": "AsyncEventsDropped"},
		"forwarder-dlq-not-empty":                 {"Namespace": "AWS/SQS", "MetricName": "ApproximateNumberOfMessagesVisible"},
		"forwarder-dlq-oldest-message":            {"Namespace": "AWS/SQS", "MetricName": "ApproximateAgeOfOldestMessage", "Threshold": fx.cfg.ForwarderDLQAgeAlarmSeconds},
		"forward-rule-failed-invocations":         {"Namespace": "AWS/Events", "MetricName": "FailedInvocations"},
		"unrouted-events":                         {"Namespace": "AWS/SQS", "MetricName": "ApproximateNumberOfMessagesVisible", "Dimensions": []any{map[string]any{"Name": "QueueName", "Value": assertions.Match_AnyValue()}}},
		"workers-below-minimum":                   {"Namespace": "ECS/ContainerInsights", "MetricName": "RunningTaskCount", "TreatMissingData": "breaching"},
		"autoscaler-not-running":                  {"Namespace": fx.names.MetricsNamespace, "MetricName": fx.names.AutoscalerMetric, "TreatMissingData": "breaching", "ComparisonOperator": "LessThanThreshold", "Threshold": 1, "EvaluationPeriods": autoscalerSilentMinutes / 5},
	}
	for name, m := range metricOf {
		m["AlarmName"] = fx.names.AlarmPrefix + name
		assert(t, "alarm metric "+name, func() {
			fx.tpl.HasResourceProperties(jsii.String("AWS::CloudWatch::Alarm"), &m)
		})
	}
	// The metric-math alarms add up every stream or table of their kind.
	mathOf := map[string]struct {
		metric string
		n      int
	}{
		"analytics-write-throttled":    {"WriteProvisionedThroughputExceeded", len(StandardTypes) + 1},
		"side-streams-write-throttled": {"WriteProvisionedThroughputExceeded", 3},
		"table-throttles":              {"ThrottleEvents", 4},
		"rules-dlq-delivery-failures":  {"InvocationsFailedToBeSentToDlq", 3},
	}
	for _, props := range resources("AWS::CloudWatch::Alarm") {
		name, _ := props["AlarmName"].(string)
		want, ok := mathOf[strings.TrimPrefix(name, fx.names.AlarmPrefix)]
		if !ok {
			continue
		}
		delete(mathOf, strings.TrimPrefix(name, fx.names.AlarmPrefix))
		n := 0
		var expr string
		for _, q := range props["Metrics"].([]any) {
			qm := q.(map[string]any)
			if strings.Contains(jsonOf(qm), want.metric) {
				n++
			}
			if e, ok := qm["Expression"].(string); ok {
				expr = e
			}
		}
		if n != want.n {
			t.Errorf("alarm %s sums %d %s metrics, want %d", name, n, want.metric, want.n)
		}
		// Sparse metrics: a term without FILL leaves the sum empty whenever that stream or table
		// published nothing, and the alarm would never fire.
		if got := strings.Count(expr, "FILL("); got != want.n {
			t.Errorf("alarm %s: expression %q fills %d of its %d metrics with 0", name, expr, got, want.n)
		}
	}
	if len(mathOf) > 0 {
		t.Errorf("metric-math alarms missing: %v", mathOf)
	}
	assert(t, "breaker metric filter on the worker log group", func() {
		fx.tpl.HasResourceProperties(jsii.String("AWS::Logs::MetricFilter"), &map[string]any{
			"FilterPattern": fx.cfg.BreakerOpenLogPattern,
			"MetricTransformations": []any{map[string]any{
				"MetricNamespace": fx.names.MetricsNamespace, "MetricName": fx.names.BreakerMetric, "MetricValue": "1",
			}},
		})
	})
	for _, sub := range []map[string]any{
		{"Protocol": "email", "Endpoint": "ops@example.com"},
		{"Protocol": "https", "Endpoint": "https://hooks.example.com/alarms"},
	} {
		assert(t, "alarm topic subscriber "+jsonOf(sub), func() {
			fx.tpl.HasResourceProperties(jsii.String("AWS::SNS::Subscription"), &sub)
		})
	}
}

// TestAuditTrail: management events by default (routing changes, key reads: no per-event
// charge); per-record data events for every stream and the function only when asked.
func TestAuditTrail(t *testing.T) {
	for _, s := range []*synthed{&fx, &alt} {
		trails := s.resources("AWS::CloudTrail::Trail")
		if len(trails) != 1 {
			t.Fatalf("%s: %d trails, want 1", s.cfg.Stage, len(trails))
		}
		var sel []any
		for _, props := range trails {
			sel = props["AdvancedEventSelectors"].([]any)
			if props["IsMultiRegionTrail"] != true || props["IncludeGlobalServiceEvents"] != true {
				t.Errorf("%s: trail is not multi-region with global service events", s.cfg.Stage)
			}
		}
		covered := map[string][]string{}
		management := false
		for _, sl := range sel {
			var typ string
			var arns []string
			for _, f := range sl.(map[string]any)["FieldSelectors"].([]any) {
				fm := f.(map[string]any)
				switch fm["Field"] {
				case "eventCategory":
					management = management || slices.Contains(strs(fm["Equals"]), "Management")
				case "resources.type":
					typ = fm["Equals"].([]any)[0].(string)
				case "resources.ARN":
					for _, a := range fm["Equals"].([]any) {
						arns = append(arns, jsonOf(a))
					}
				}
			}
			if typ != "" {
				sort.Strings(arns)
				covered[typ] = arns
			}
		}
		if !management {
			t.Errorf("%s: no management-event selector", s.cfg.Stage)
		}
		if !s.cfg.AuditDataEvents {
			if len(covered) != 0 {
				t.Errorf("%s: data events %v recorded without auditDataEvents", s.cfg.Stage, covered)
			}
			continue
		}
		var streams []string
		for id := range s.resources("AWS::Kinesis::Stream") {
			streams = append(streams, jsonOf(getAtt(id, "Arn")))
		}
		sort.Strings(streams)
		fnID := s.logicalID(t, "AWS::Lambda::Function", map[string]any{"FunctionName": s.names.Forwarder})
		if got := covered["AWS::Kinesis::Stream"]; !slices.Equal(got, streams) || len(streams) != len(AllStreamNames()) {
			t.Errorf("%s: stream data events cover %v, want every stream %v", s.cfg.Stage, got, streams)
		}
		if got := covered["AWS::Lambda::Function"]; !slices.Equal(got, []string{jsonOf(getAtt(fnID, "Arn"))}) {
			t.Errorf("%s: function data events cover %v", s.cfg.Stage, got)
		}
	}
}

func TestNagHasNoUnsuppressedFindings(t *testing.T) {
	for _, s := range []*synthed{&fx, &alt} {
		for _, level := range []string{"error", "warning"} {
			var msgs []string
			assert(t, "read nag "+level+"s", func() {
				pattern := assertions.Match_StringLikeRegexp(jsii.String("AwsSolutions-.*"))
				if level == "error" {
					for _, m := range *s.ann.FindError(jsii.String("*"), pattern) {
						msgs = append(msgs, fmt.Sprintf("%s: %v", *m.Id, m.Entry.Data))
					}
				} else {
					for _, m := range *s.ann.FindWarning(jsii.String("*"), pattern) {
						msgs = append(msgs, fmt.Sprintf("%s: %v", *m.Id, m.Entry.Data))
					}
				}
			})
			for _, m := range msgs {
				t.Errorf("%s: unsuppressed cdk-nag %s: %s", s.cfg.Stage, level, m)
			}
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

// TestResourceCount logs the template's size by type (the figure deploy/README.md quotes).
func TestResourceCount(t *testing.T) {
	for _, s := range []*synthed{&fx, &alt} {
		counts := map[string]int{}
		for _, r := range s.res {
			counts[r.(map[string]any)["Type"].(string)]++
		}
		t.Logf("%s: %d resources: %v", s.cfg.Stage, len(s.res), counts)
	}
}
