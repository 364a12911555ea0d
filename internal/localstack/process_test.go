package localstack

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"
)

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := findRoot()
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// TestEarlyExit: a launcher that dies before its ready line is reported with
// its exit status and the tail of its log; exit status 98 reads as a taken port.
func TestEarlyExit(t *testing.T) {
	for _, c := range []struct {
		name, script string
		want         []string
	}{
		{"crash", `console.error("boom: cannot open store"); process.exit(3)`, []string{"exited during startup", "exit status 3", "boom: cannot open store"}},
		{"port taken", `console.error("EADDRINUSE"); process.exit(98)`, []string{"already in use", "EADDRINUSE"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			e, err := startEmulator(spec{flavor: KinesisLite, tool: "node", args: []string{"-e", c.script}},
				childEnv(), filepath.Join(t.TempDir(), "x.log"), zap.NewNop())
			if err != nil {
				t.Fatal(err)
			}
			defer stopOrFail(t, e)
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			_, err = e.waitReady(ctx)
			if err == nil {
				t.Fatal("waitReady succeeded for a process that exited")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

// TestLaunchersExitWithParent: every launcher exits by itself when its stdin
// closes (what happens when the test process dies), and the Node launchers on
// SIGTERM without needing SIGKILL (the JVM's own SIGTERM exit was checked by
// hand: status 143 within half a second; a second JVM start here costs more).
func TestLaunchersExitWithParent(t *testing.T) {
	root := repoRoot(t)
	for _, c := range []struct {
		flavor Flavor
		ways   []string
	}{
		{KinesisLite, []string{"stdin EOF", "SIGTERM"}},
		{KinesisMock, []string{"stdin EOF", "SIGTERM"}},
		{Dynalite, []string{"stdin EOF", "SIGTERM"}},
		{DynamoDBLocal, []string{"stdin EOF"}},
	} {
		f := c.flavor
		t.Run(string(f), func(t *testing.T) {
			if (f == KinesisMock || f == DynamoDBLocal) && testing.Short() {
				t.Skip("-short: the compatibility tier runs in the full suite")
			}
			t.Parallel()
			for _, how := range c.ways {
				sp, err := specFor(root, f, 0)
				if err != nil {
					t.Fatal(err)
				}
				e, err := startEmulator(sp, childEnv(), filepath.Join(t.TempDir(), "e.log"), zap.NewNop())
				if err != nil {
					t.Fatal(err)
				}
				ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
				if _, err := e.waitReady(ctx); err != nil {
					cancel()
					stopOrFail(t, e)
					t.Fatal(err)
				}
				if how == "stdin EOF" {
					e.stdin.Close()
				} else if err := e.signal(syscall.SIGTERM); err != nil {
					t.Fatal(err)
				}
				select {
				case <-e.exited:
				case <-ctx.Done():
					t.Errorf("%s: %s still running after %s:\n%s", how, f, how, e.tail())
				}
				cancel()
				stopOrFail(t, e)
				var ee *exec.ExitError
				if errors.As(e.waitErr, &ee) && ee.ExitCode() == -1 {
					t.Errorf("%s: %s ended by a signal (%v), want its own exit", how, f, e.waitErr)
				}
			}
		})
	}
}

func stopOrFail(t *testing.T, e *emulator) {
	t.Helper()
	if err := e.stop(5 * time.Second); err != nil {
		t.Errorf("stop %s: %v", e.flavor, err)
	}
}

func TestTailFile(t *testing.T) {
	dir := t.TempDir()
	var b strings.Builder
	for i := range 50 {
		fmt.Fprintf(&b, "line %02d\n", i)
	}
	full := filepath.Join(dir, "full.log")
	empty := filepath.Join(dir, "empty.log")
	for p, body := range map[string]string{full: b.String(), empty: ""} {
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		name     string
		path     string
		lines    int
		bytes    int64
		want     string
		wantNone string
	}{
		{"last lines", full, 3, 1 << 10, "  line 47\n  line 48\n  line 49", ""},
		{"byte bound drops the cut line", full, 10, 20, "  line 48\n  line 49", "ne 47"},
		{"empty", empty, 3, 100, "(log empty)", ""},
		{"missing", filepath.Join(dir, "none"), 3, 100, "(log unavailable", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := tailFile(c.path, c.lines, c.bytes)
			if !strings.HasPrefix(got, c.want) && got != c.want {
				t.Errorf("tailFile = %q, want %q", got, c.want)
			}
			if c.wantNone != "" && strings.Contains(got, c.wantNone) {
				t.Errorf("tailFile = %q, should not contain %q", got, c.wantNone)
			}
		})
	}
}
