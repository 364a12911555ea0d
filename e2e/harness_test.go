package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/kinesis-events/pipeline/internal/audit"
	"github.com/kinesis-events/pipeline/internal/fleet"
	"github.com/kinesis-events/pipeline/internal/localstack"
	"github.com/kinesis-events/pipeline/internal/localstack/localstacktest"
	"github.com/kinesis-events/pipeline/internal/poll"
)

// binDir holds the real commands, built once for the package by TestMain.
var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	build := exec.Command("go", "build", "-o", dir+"/", "../cmd/worker", "../cmd/forwarder", "../cmd/loadgen", "../cmd/kclctl", "../cmd/localrun")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building the commands:", err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// deployment is one provisioned local stack with the binaries ready to run.
type deployment struct {
	t     *testing.T
	stack *localstack.Stack
	env   *fleet.Env
	// workers are the chaos workers started on it, for diagnostics.
	workers []*chaosWorker
}

func deploy(t *testing.T, topo fleet.Topology, o ...localstack.Options) *deployment {
	t.Helper()
	st := localstacktest.Start(t, o...)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	if err := fleet.Provision(ctx, st, topo); err != nil {
		t.Fatal(err)
	}
	env, err := fleet.NewEnv(st.Env(), binDir, t.TempDir(), topo)
	if err != nil {
		t.Fatal(err)
	}
	return &deployment{t: t, stack: st, env: env}
}

// worker starts worker n and stops it (SIGTERM, then kill) at the end of the test.
func (d *deployment) worker(n int, extra ...string) *fleet.Proc {
	d.t.Helper()
	p, err := d.env.StartWorker(n, 0, extra...)
	if err != nil {
		d.t.Fatal(err)
	}
	d.t.Cleanup(func() {
		if err := p.Stop(20 * time.Second); err != nil {
			d.t.Logf("%s: %v", p.Name, err)
		}
		if d.t.Failed() {
			d.dumpLog(p.LogPath)
		}
	})
	return p
}

func (d *deployment) dumpLog(path string) {
	b, err := os.ReadFile(path)
	if err != nil {
		return
	}
	// E2E_KEEP_LOGS=dir keeps the whole log of a failed run for a post-mortem.
	if keep := os.Getenv("E2E_KEEP_LOGS"); keep != "" {
		dst := filepath.Join(keep, d.t.Name(), filepath.Base(path))
		if os.MkdirAll(filepath.Dir(dst), 0o755) == nil && os.WriteFile(dst, b, 0o644) == nil {
			d.t.Logf("kept %s", dst)
		}
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 40 {
		lines = lines[len(lines)-40:]
	}
	d.t.Logf("--- last lines of %s:\n%s", filepath.Base(path), strings.Join(lines, "\n"))
}

// waitFor polls the tail until cond holds or the deadline passes.
func waitFor(t *testing.T, tail *audit.Tail, timeout time.Duration, what string, cond func(audit.Snapshot) bool) audit.Snapshot {
	t.Helper()
	return waitEvery(t, tail, timeout, 100*time.Millisecond, what, cond)
}

// waitEvery is waitFor with the given interval between polls.
func waitEvery(t *testing.T, tail *audit.Tail, timeout, interval time.Duration, what string, cond func(audit.Snapshot) bool) audit.Snapshot {
	t.Helper()
	var s audit.Snapshot
	err := poll.Wait(t.Context(), timeout, interval, what, func(ctx context.Context) (bool, string) {
		if err := tail.Poll(ctx); err != nil && ctx.Err() == nil {
			t.Fatalf("reading output streams: %v", err)
		}
		s = tail.Snapshot()
		return cond(s), fmt.Sprintf("delivered=%d unique=%d quarantined=%v dead=%v", s.Delivered, s.Unique, s.Quarantined, s.DeadLetters)
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
