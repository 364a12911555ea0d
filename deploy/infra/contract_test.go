package infra

import (
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
	for _, s := range []*synthed{&fx, &alt} {
		c := container(t, s, workerContainer)
		var names []string
		for _, list := range []string{"Environment", "Secrets"} {
			for _, kv := range asList(c[list]) {
				names = append(names, kv.(map[string]any)["Name"].(string))
			}
		}
		if len(names) < 10 {
			t.Fatalf("%s: worker environment %v: the lookup is broken", s.cfg.Stage, names)
		}
		for _, n := range names {
			if !strings.Contains(src, `"`+n+`"`) {
				t.Errorf("the stack sets %s for the worker, but cmd/worker and worker/ never mention it", n)
			}
		}
	}
	if !strings.Contains(src, `"/healthz"`) {
		t.Error(`the health check probes /healthz, but worker/ serves no "/healthz"`)
	}
}

func TestForwarderReadsEveryVariableTheStackSets(t *testing.T) {
	src := goSources(t, "cmd/forwarder", "forwarder")
	for _, props := range resources("AWS::Lambda::Function") {
		vars := props["Environment"].(map[string]any)["Variables"].(map[string]any)
		if len(vars) < 4 {
			t.Fatalf("forwarder environment %v: want its streams, PII paths and metrics namespace", vars)
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
