package infra

import (
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// repoRoot is the main module, two levels above this package.
const repoRoot = "../.."

// goSources returns the text of the non-test Go files under the given
// directories of the main module, failing the test if there are none.
func goSources(t *testing.T, dirs ...string) string {
	t.Helper()
	var b strings.Builder
	for _, d := range dirs {
		err := filepath.WalkDir(filepath.Join(repoRoot, d), func(path string, e os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if e.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return nil
			}
			src, err := os.ReadFile(path)
			b.Write(src)
			return err
		})
		if err != nil {
			t.Fatalf("reading %s: %v", d, err)
		}
	}
	if b.Len() == 0 {
		t.Fatalf("no Go sources under %v", dirs)
	}
	return b.String()
}

// The stack configures the binaries through environment variables; a name
// the binary does not read is a silent misconfiguration on AWS (the binary
// falls back to its default). These tests read the binaries' sources, which
// live in the main module (deploy/ is a separate module and does not import
// it), and check every name the stack sets is one they read.
func TestWorkerReadsEveryVariableTheStackSets(t *testing.T) {
	src := goSources(t, "cmd/worker", "worker")
	// Read by the AWS SDK rather than by name in our code, or kept for a
	// future reader: each with the reason it is exempt.
	exempt := map[string]string{
		"SIGNING_KEYS_SECRET_ARN": "the secret's ARN for a worker that loads keys from Secrets Manager itself; today's worker gets the same key set as SIGNING_KEYS from ECS",
	}
	var c map[string]any
	for _, props := range resources("AWS::ECS::TaskDefinition") {
		c = props["ContainerDefinitions"].([]any)[0].(map[string]any)
	}
	var names []string
	for _, list := range []string{"Environment", "Secrets"} {
		for _, kv := range c[list].([]any) {
			names = append(names, kv.(map[string]any)["Name"].(string))
		}
	}
	for _, n := range names {
		if _, ok := exempt[n]; ok {
			continue
		}
		if !strings.Contains(src, `"`+n+`"`) {
			t.Errorf("the stack sets %s for the worker, but cmd/worker and worker/ never mention it", n)
		}
	}
	if !strings.Contains(src, `"/readyz"`) {
		t.Error(`the health check probes /readyz, but worker/ serves no "/readyz"`)
	}
}

func TestForwarderReadsEveryVariableTheStackSets(t *testing.T) {
	src := goSources(t, "cmd/forwarder", "forwarder")
	for _, props := range resources("AWS::Lambda::Function") {
		vars := props["Environment"].(map[string]any)["Variables"].(map[string]any)
		if len(vars) == 0 {
			t.Fatal("forwarder has no environment")
		}
		for n := range vars {
			if !strings.Contains(src, `"`+n+`"`) {
				t.Errorf("the stack sets %s for the forwarder, but cmd/forwarder and forwarder/ never mention it", n)
			}
		}
	}
}

func TestBreakerAlarmMatchesTheWorkersLogLine(t *testing.T) {
	src := goSources(t, "processors", "worker")
	msg := regexp.MustCompile(`\$\.msg = "([^"]+)"`).FindStringSubmatch(fx.cfg.BreakerOpenLogPattern)
	if msg == nil {
		t.Fatalf("pattern %q has no $.msg clause", fx.cfg.BreakerOpenLogPattern)
	}
	if !strings.Contains(src, `"`+msg[1]+`"`) {
		t.Errorf("breaker alarm filters on log message %q, which processors/ and worker/ never log", msg[1])
	}
	if !strings.Contains(fx.cfg.BreakerOpenLogPattern, `$.to = "open"`) || !strings.Contains(src, `zap.String("to"`) {
		t.Errorf("breaker alarm expects a \"to\" field equal to \"open\" on that line")
	}
}

// TestInitialSigningKeysParse checks the seeded secret has the worker's
// key-file format: a JSON array of {id, secret (base64)}. The generated part
// (a dynamic reference resolved by CloudFormation) is replaced by what Secrets
// Manager generates for it: 64 alphanumeric characters.
func TestInitialSigningKeysParse(t *testing.T) {
	var join []any
	for _, props := range resources("AWS::SecretsManager::Secret") {
		if props["Name"] == signingSecretName {
			join = props["SecretString"].(map[string]any)["Fn::Join"].([]any)[1].([]any)
		}
	}
	if join == nil {
		t.Fatal("signing keys secret has no joined SecretString")
	}
	var s strings.Builder
	for _, part := range join {
		if str, ok := part.(string); ok {
			s.WriteString(str)
		} else {
			s.WriteString("SEED-ARN")
		}
	}
	generated := strings.Repeat("aZ09", 16)
	value := regexp.MustCompile(`\{\{resolve:secretsmanager:SEED-ARN:SecretString:::\}\}`).ReplaceAllString(s.String(), generated)
	if value == s.String() {
		t.Fatalf("no dynamic reference to the seed secret in %s", s.String())
	}
	var keys []struct {
		ID     string `json:"id"`
		Secret string `json:"secret"`
	}
	if err := json.Unmarshal([]byte(value), &keys); err != nil {
		t.Fatalf("initial key set %s is not a JSON array of keys: %v", value, err)
	}
	if len(keys) != 1 || keys[0].ID != signingKeyInitialID {
		t.Fatalf("initial key set = %+v", keys)
	}
	if b, err := base64.StdEncoding.DecodeString(keys[0].Secret); err != nil || len(b) != 48 {
		t.Errorf("initial secret decodes to %d bytes, err %v; want 48 bytes of base64", len(b), err)
	}
	assert(t, "seed is 64 alphanumeric characters", func() {
		fx.tpl.HasResourceProperties(strp("AWS::SecretsManager::Secret"), &map[string]any{
			"Name": signingSeedName,
			"GenerateSecretString": map[string]any{
				"PasswordLength": 64, "ExcludePunctuation": true, "IncludeSpace": false,
			},
		})
	})
}

func strp(s string) *string { return &s }
