package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kinesis-events/pipeline/event"
	"github.com/kinesis-events/pipeline/internal/loadgen"
	"github.com/kinesis-events/pipeline/internal/localstack/localstacktest"
	"github.com/kinesis-events/pipeline/internal/names"
)

func build(t *testing.T, dir, pkg string) string {
	t.Helper()
	bin := filepath.Join(dir, filepath.Base(pkg))
	cmd := exec.CommandContext(t.Context(), "go", "build", "-o", bin, pkg)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, out)
	}
	return bin
}

// TestPipeIntoForwarder runs `loadgen --count 1000 ... | forwarder` as processes against the emulators
// and checks the raw and quarantine streams against the manifest.
func TestPipeIntoForwarder(t *testing.T) {
	dir := t.TempDir()
	loadgenBin := build(t, dir, "github.com/kinesis-events/pipeline/cmd/loadgen")
	forwarderBin := build(t, dir, "github.com/kinesis-events/pipeline/cmd/forwarder")
	st := localstacktest.Start(t)
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	for _, s := range []string{names.RawStream, names.QuarantineStream} {
		if err := st.CreateStream(ctx, s, 2); err != nil {
			t.Fatal(err)
		}
	}
	env := append(os.Environ(), st.Env()...)
	manifest := filepath.Join(dir, "manifest.json")
	gen := exec.CommandContext(ctx, loadgenBin, "--count", "1000", "--seed", "42", "--customers", "50", "--dup-ratio", "0.05",
		"--conflict-ratio", "0.01", "--ooo-ratio", "0.1", "--bad-ratio", "0.04", "--bad-kinds", "not_json,missing_customer_id,bad_signature,unknown_key",
		"--manifest", manifest)
	fwd := exec.CommandContext(ctx, forwarderBin)
	gen.Env, fwd.Env = env, env
	pipe, err := gen.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	fwd.Stdin = pipe
	var genErr, fwdErr bytes.Buffer
	gen.Stderr, fwd.Stderr = &genErr, &fwdErr
	if err := fwd.Start(); err != nil {
		t.Fatal(err)
	}
	if err := gen.Start(); err != nil {
		t.Fatal(err)
	}
	if err := gen.Wait(); err != nil {
		t.Fatalf("loadgen: %v\n%s", err, genErr.String())
	}
	if err := fwd.Wait(); err != nil {
		t.Fatalf("forwarder: %v\n%s", err, fwdErr.String())
	}

	var m loadgen.Manifest
	b, err := os.ReadFile(manifest)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	atForwarder := m.Bad[loadgen.BadNotJSON] + m.Bad[loadgen.BadMissingCustomerID]
	raw, err := st.ReadAll(ctx, names.RawStream)
	if err != nil {
		t.Fatal(err)
	}
	if len(raw) != m.Lines-atForwarder {
		t.Fatalf("%d raw records for %d lines of which %d bad at the forwarder\nforwarder: %s", len(raw), m.Lines, atForwarder, fwdErr.String())
	}
	ids := map[string]int{}
	for _, r := range raw {
		_, d, err := event.DecodeRaw(r.Record.Data)
		if err != nil {
			t.Fatalf("raw record does not decode: %v", err)
		}
		ids[d.EventID]++
	}
	for _, e := range m.Events {
		if ids[e.EventID] == 0 {
			t.Fatalf("event %s missing from the raw stream", e.EventID)
		}
	}
	q, err := st.ReadAll(ctx, names.QuarantineStream)
	if err != nil {
		t.Fatal(err)
	}
	if len(q) != atForwarder || !strings.Contains(genErr.String(), `"type":"summary"`) {
		t.Fatalf("%d quarantined, want %d\nloadgen stderr:\n%s", len(q), atForwarder, genErr.String())
	}
}
