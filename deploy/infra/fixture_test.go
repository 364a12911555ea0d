package infra

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/jsii-runtime-go"
)

// synthed is one synthesised stack, read-only for the tests.
type synthed struct {
	cfg   Config
	names Names
	stack awscdk.Stack
	tpl   assertions.Template
	ann   assertions.Annotations
	// res is the template's Resources section as plain Go values.
	res map[string]any
	// keyArn is how the template refers to the customer-managed key's ARN.
	keyArn map[string]any
}

// Both stacks are synthesised once per test binary (jsii work of about half a minute) in TestMain
// and shared by every test. fx is the main one: an event source prefix (so the unrouted rule and
// queue exist), an email and a webhook subscriber, no NAT gateway, management-event audit. alt
// differs where the options change the template: no prefix, per-record audit data events, one
// NAT gateway per AZ, on-demand streams, webhook only, aggregated analytics records, no
// autoscaler (its switch off).
var fx, alt synthed

// fixtureContexts are the CDK contexts of fx and alt, passed the way the cdk CLI passes them.
var fixtureContexts = map[string]map[string]any{
	"test": {
		"stage": "test", "piiPaths": "customer_id,properties.email", "eventSourcePrefix": "shop.",
		"alarmEmail": "ops@example.com", "alarmWebhookUrl": "https://hooks.example.com/alarms",
	},
	"alt": {
		"stage": "alt", "piiPaths": []any{"customer_id"}, "auditDataEvents": true, "natGateways": float64(MaxAZs),
		"onDemand": true, "alarmWebhookUrl": "https://hooks.example.com/alarms", "aggregateKeys": true,
		"autoscaler": "false",
	},
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
	// A stand-in for the forwarder binary: the Lambda asset only has to be a directory CDK can
	// stage. The template is under test here, not the binary (which `make forwarder-lambda`
	// builds).
	fwd := filepath.Join(tmp, "forwarder-lambda")
	if err := os.MkdirAll(fwd, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := os.WriteFile(filepath.Join(fwd, "bootstrap"), []byte("stand-in, not a Lambda binary\n"), 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	// Asset directories are absolute: CDK resolves relative ones against the working directory
	// of its Node.js process, not this one's.
	root, err := filepath.Abs(repoRoot)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	// One app per stack: context is per app.
	for stage, dst := range map[string]*synthed{"test": &fx, "alt": &alt} {
		ctx := map[string]any{}
		for k, v := range FeatureFlags {
			ctx[k] = v
		}
		for k, v := range fixtureContexts[stage] {
			ctx[k] = v
		}
		// The image asset is the real repository root with its Dockerfile and .dockerignore.
		ctx["forwarderAssetDir"] = fwd
		ctx["workerImageDir"] = root
		ctx["collectorImageDir"] = filepath.Join(root, "deploy", "collector")
		app := awscdk.NewApp(&awscdk.AppProps{Outdir: jsii.String(filepath.Join(tmp, "cdk.out-"+stage)), Context: &ctx})
		cfg, err := ConfigFromContext(func(k string) any { return app.Node().TryGetContext(jsii.String(k)) })
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		p, err := NewPipeline(app, cfg.StackName(), nil, cfg)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		CheckWithNag(app)
		dst.cfg, dst.names, dst.stack = cfg, p.Names, p.Stack
		dst.tpl = assertions.Template_FromStack(p.Stack, nil)
		dst.ann = assertions.Annotations_FromStack(p.Stack)
		dst.res = (*dst.tpl.ToJSON())["Resources"].(map[string]any)
		dst.keyArn = map[string]any{"Fn::GetAtt": []any{*dst.tpl.GetResourceId(jsii.String("AWS::KMS::Key"), nil), "Arn"}}
	}
	return m.Run()
}

// assert runs a CDK assertion, which reports a mismatch by panicking with the assertion
// library's message, and turns that into a test error.
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
func (s *synthed) resources(typ string) map[string]map[string]any {
	out := map[string]map[string]any{}
	for id, r := range s.res {
		rm := r.(map[string]any)
		if rm["Type"] == typ {
			props, _ := rm["Properties"].(map[string]any)
			out[id] = props
		}
	}
	return out
}

func resources(typ string) map[string]map[string]any { return fx.resources(typ) }

func (s *synthed) logicalID(t *testing.T, typ string, props map[string]any) string {
	t.Helper()
	var id string
	assert(t, "find "+typ, func() { id = *s.tpl.GetResourceId(jsii.String(typ), &map[string]any{"Properties": props}) })
	return id
}

func logicalID(t *testing.T, typ string, props map[string]any) string {
	t.Helper()
	return fx.logicalID(t, typ, props)
}

func getAtt(id, attr string) map[string]any {
	return map[string]any{"Fn::GetAtt": []any{id, attr}}
}

func ref(id string) map[string]any { return map[string]any{"Ref": id} }
