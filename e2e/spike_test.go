package e2e

import (
	"context"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestChaosSpike is a reduced `make spike`: the real localrun binary with per-shard write limits
// enforced by the fault proxy, a load that ramps x4 and falls back, a hot customer, the autoscaler
// and the fleet following the raw stream. It checks what the README promises under a spike:
// nothing lost, nothing processed twice, per-customer order kept, no dead letters; and that the
// raw stream was scaled out and back in, and workers were added, all by themselves. About five
// minutes, bounded at ten; part of `make chaos`.
func TestChaosSpike(t *testing.T) {
	skipUnlessChaos(t, true)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "localrun"), "--spike", "--bin", binDir, "--dir", t.TempDir(),
		"--profile", "100:15s,100-400:15s,400:1m,400-100:15s,100:2m30s", "--hot-rate", "20", "--duration", "9m",
		"--kinesis-port", "0", "--dynamodb-port", "0", "--metrics-port", "0")
	out, err := cmd.CombinedOutput()
	text := string(out)
	t.Logf("localrun --spike:\n%s", text)
	if ctx.Err() != nil {
		t.Fatalf("localrun --spike did not stop by itself within its bound: %v", ctx.Err())
	}
	if !strings.Contains(text, "== Spike") {
		t.Fatalf("no spike summary (exit %v)", err)
	}
	num := func(pattern string) int {
		t.Helper()
		m := regexp.MustCompile(pattern).FindStringSubmatch(text)
		if m == nil {
			t.Fatalf("output lacks %q", pattern)
		}
		n, _ := strconv.Atoi(m[1])
		return n
	}
	if up, down := num(`(?m)^  events-raw\s+(\d+)\s+\d+\s`), num(`(?m)^  events-raw\s+\d+\s+(\d+)\s`); up < 1 || down < 1 {
		t.Errorf("the raw stream was scaled out %d and in %d times, want at least once each", up, down)
	}
	if !regexp.MustCompile(`workers over time[^\n]*\n[^\n]*start w3`).MatchString(text) {
		t.Error("no worker was added for the raw stream's shards")
	}
	for _, c := range []struct {
		what, pattern string
	}{
		{"lost", `(?m)^lost\s+(\d+)$`},
		{"order violations", `(?m)^per-customer order violations\s+(\d+)$`},
		{"dead letters", `(?m)^dead letters: (\d+)$`},
	} {
		if n := num(c.pattern); n != 0 {
			t.Errorf("%s: %d, want 0", c.what, n)
		}
	}
	if dups, resent := num(`(?m)^duplicates delivered\s+(\d+)$`), resentWrites(text); dups != resent {
		t.Errorf("%d duplicates delivered, %d of them resent writes with an unknown outcome: %d processed twice", dups, resent, dups-resent)
	}
	if strings.Contains(text, "MISSING") {
		t.Error("expected quarantine records never arrived (see the summary's quarantine records line)")
	}
	if err != nil && !strings.Contains(text, "spike target MISSED") {
		t.Errorf("localrun --spike failed without a verdict: %v", err)
	}
}

// resentWrites reads "of them resent writes  N" from a summary (0 when absent).
func resentWrites(text string) int {
	m := regexp.MustCompile(`of them resent writes\s+(\d+)`).FindStringSubmatch(text)
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(m[1])
	return n
}
