package e2e

import (
	"context"
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestMakeRun runs the `make run` command itself (bin/localrun) as a user would, small and on free
// ports, and checks that it completes by itself with a clean summary and stops what it started.
func TestMakeRun(t *testing.T) {
	if testing.Short() {
		t.Skip("binary-level run; not in -short")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "localrun"), "--bin", binDir, "--dir", t.TempDir(),
		"--events", "3000", "--rate", "0", "--kinesis-port", "0", "--dynamodb-port", "0", "--metrics-port", "0")
	out, err := cmd.CombinedOutput()
	text := string(out)
	if err != nil {
		t.Fatalf("localrun failed: %v\n%s", err, text)
	}
	for _, want := range []string{"== Summary", "result", "OK: every event exactly once, in per-customer order", "stopping workers", "stopping emulators … ok"} {
		if !strings.Contains(text, want) {
			t.Errorf("output lacks %q:\n%s", want, text)
		}
	}
}

// TestMakeRunPortInUse: a taken emulator port is a clear, fast error, not a hang.
func TestMakeRunPortInUse(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "localrun"), "--bin", binDir, "--dir", t.TempDir(),
		"--kinesis-port", strconv.Itoa(port), "--dynamodb-port", "0", "--metrics-port", "0")
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("localrun succeeded with its port taken:\n%s", out)
	}
	if ctx.Err() != nil {
		t.Fatalf("localrun hung on a taken port:\n%s", out)
	}
	if want := "port " + strconv.Itoa(port) + " on 127.0.0.1 is already in use"; !strings.Contains(string(out), want) {
		t.Fatalf("output lacks %q:\n%s", want, out)
	}
}
