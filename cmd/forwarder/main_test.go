package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/kinesis-events/pipeline/event"
	"github.com/kinesis-events/pipeline/forwarder"
	"github.com/kinesis-events/pipeline/internal/localstack"
	"github.com/kinesis-events/pipeline/internal/localstack/localstacktest"
	"github.com/kinesis-events/pipeline/internal/names"
	"github.com/kinesis-events/pipeline/internal/poll"
)

// rieModule is the AWS Lambda Runtime Interface Emulator, at the only version the module proxy serves.
const rieModule = "github.com/aws/aws-lambda-runtime-interface-emulator/cmd/aws-lambda-rie@v0.0.0-20261030222936-bef5c4ba774d"

var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "forwarder-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// goCmd runs the go tool; its absence fails the test.
func goCmd(t *testing.T, dir string, env []string, args ...string) {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go tool is needed to build the binaries: %v", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, goBin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// buildForwarder builds this command once per test binary.
func buildForwarder(t *testing.T) string {
	t.Helper()
	path := filepath.Join(binDir, "forwarder")
	if _, err := os.Stat(path); err == nil {
		return path
	}
	goCmd(t, ".", nil, "build", "-o", path, ".")
	return path
}

// buildRIE installs the Runtime Interface Emulator into binDir. Not being able to is a failure.
func buildRIE(t *testing.T) string {
	t.Helper()
	path := filepath.Join(binDir, "aws-lambda-rie")
	if _, err := os.Stat(path); err == nil {
		return path
	}
	goCmd(t, binDir, []string{"GOBIN=" + binDir, "GOFLAGS=-buildvcs=false"}, "install", rieModule)
	return path
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startProcess starts cmd in its own process group and ends that group at cleanup.
func startProcess(t *testing.T, cmd *exec.Cmd) <-chan error {
	t.Helper()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", cmd.Path, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) // the group may be gone already
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
	})
	return exited
}

func setupStack(t *testing.T) *localstack.Stack {
	t.Helper()
	st := localstacktest.Start(t)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	for _, s := range []struct {
		name   string
		shards int
	}{{names.RawStream, 2}, {names.QuarantineStream, 1}} {
		if err := st.CreateStream(ctx, s.name, s.shards); err != nil {
			t.Fatal(err)
		}
	}
	return st
}

func readStream(t *testing.T, st *localstack.Stack, stream string) []localstack.ShardRecord {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	recs, err := st.ReadAll(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

func bridgeEvent(eventID, customer string, seq int) string {
	return fmt.Sprintf(`{"version":"0","id":"eb-%s","detail-type":"page_view","source":"shop.web","account":"123456789012",`+
		`"time":"2026-11-26T10:00:00Z","region":"us-east-1","resources":[],`+
		`"detail":{"event_id":%q,"customer_id":%q,"seq":%d,"occurred_at":"2026-11-26T09:59:59Z","properties":{"path":"/a b <c>"},"key_id":"k1","signature":"c2ln"}}`,
		eventID, eventID, customer, seq)
}

// TestLambdaUnderRuntimeInterfaceEmulator runs the built binary as a Lambda function under the AWS
// Lambda Runtime Interface Emulator and invokes it over HTTP, as EventBridge would.
func TestLambdaUnderRuntimeInterfaceEmulator(t *testing.T) {
	rie := buildRIE(t)
	bin := buildForwarder(t)
	st := setupStack(t)

	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	cmd := exec.Command(rie,
		"--runtime-interface-emulator-address", addr,
		"--runtime-api-address", fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		"--log-level", "warn",
		bin)
	cmd.Dir = t.TempDir()
	cmd.Env = append(os.Environ(), st.Env()...)
	cmd.Env = append(cmd.Env, "AWS_LAMBDA_FUNCTION_TIMEOUT=30", forwarder.EnvLogLevel+"=info")
	var logs lockedBuffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	exited := startProcess(t, cmd)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("emulator and function output:\n%s", logs.String())
		}
	})
	waitListening(t, addr, exited)

	invoke := func(payload string) (int, []byte) {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+"/2015-03-31/functions/function/invocations", strings.NewReader(payload))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("invoke: %v", err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, body
	}

	good := bridgeEvent("e-rie-1", "tok_customer1", 1)
	code, body := invoke(good)
	var o forwarder.Outcome
	if err := json.Unmarshal(body, &o); err != nil || code != http.StatusOK || o.Status != forwarder.StatusForwarded {
		t.Fatalf("good event: HTTP %d %s (%v)", code, body, err)
	}
	code, body = invoke(`{"detail-type":"page_view","source":"shop.web","detail":{"event_id":"e-rie-2","seq":1}}`)
	if err := json.Unmarshal(body, &o); err != nil || code != http.StatusOK || o.Status != forwarder.StatusQuarantined || o.Reason != event.ReasonMissingField {
		t.Fatalf("bad event: HTTP %d %s (%v)", code, body, err)
	}

	raw := readStream(t, st, names.RawStream)
	if len(raw) != 1 || aws.ToString(raw[0].Record.PartitionKey) != "tok_customer1" {
		t.Fatalf("raw stream: %+v", raw)
	}
	r, d, err := event.DecodeRaw(raw[0].Record.Data)
	if err != nil || d.EventID != "e-rie-1" || r.BridgeID != "eb-e-rie-1" || r.Type != "page_view" {
		t.Fatalf("raw record %s: %v", raw[0].Record.Data, err)
	}
	wantDetail := good[strings.Index(good, `"detail":`)+len(`"detail":`) : len(good)-1]
	if string(r.Detail) != wantDetail {
		t.Fatalf("detail not verbatim:\n got %s\nwant %s", r.Detail, wantDetail)
	}
	quar := readStream(t, st, names.QuarantineStream)
	if len(quar) != 1 {
		t.Fatalf("quarantine stream has %d records", len(quar))
	}
	var q event.Quarantine
	if err := json.Unmarshal(quar[0].Record.Data, &q); err != nil || q.Reason != event.ReasonMissingField || q.Stage != forwarder.StageForwarder {
		t.Fatalf("quarantine record %s: %v", quar[0].Record.Data, err)
	}

	// Kinesis refusing the write is an invocation error, so EventBridge would retry.
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if _, err := st.Kinesis().DeleteStream(ctx, &kinesis.DeleteStreamInput{StreamName: aws.String(names.RawStream)}); err != nil {
		t.Fatal(err)
	}
	code, body = invoke(bridgeEvent("e-rie-3", "tok_customer1", 2))
	var fnErr struct {
		ErrorMessage string `json:"errorMessage"`
		ErrorType    string `json:"errorType"`
	}
	if err := json.Unmarshal(body, &fnErr); err != nil || !strings.Contains(fnErr.ErrorMessage, forwarder.ErrNotWritten.Error()) {
		t.Fatalf("write failure: HTTP %d %s (%v)", code, body, err)
	}
}

func waitListening(t *testing.T, addr string, exited <-chan error) {
	t.Helper()
	poll.Until(t, 30*time.Second, 20*time.Millisecond, "emulator listening on "+addr, func() (bool, string) {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return true, ""
		}
		select {
		case err := <-exited:
			t.Fatalf("emulator exited before listening: %v", err)
		default:
		}
		return false, err.Error()
	})
}

// TestLocalMode runs the binary on two NDJSON files with --progress and checks the streams, the JSON
// lines on stderr and the exit status; then on a missing stream, which must exit non-zero.
func TestLocalMode(t *testing.T) {
	bin := buildForwarder(t)
	st := setupStack(t)
	dir := t.TempDir()
	var a, b strings.Builder
	for i := range 300 {
		fmt.Fprintln(&a, bridgeEvent(fmt.Sprintf("a%d", i), fmt.Sprintf("c%d", i%20), i/20+1))
	}
	fmt.Fprintln(&b, `{"detail-type":`) // line 1: not JSON
	fmt.Fprintln(&b)                    // line 2: blank
	fmt.Fprintln(&b, bridgeEvent("b0", "c0", 16))
	fileA, fileB := filepath.Join(dir, "a.ndjson"), filepath.Join(dir, "b.ndjson")
	for p, s := range map[string]string{fileA: a.String(), fileB: b.String()} {
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}

	run := func(args ...string) (int, []map[string]any, string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Env = append(os.Environ(), st.Env()...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err := cmd.Run()
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		text := stderr.String()
		var lines []map[string]any
		sc := bufio.NewScanner(strings.NewReader(text))
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var m map[string]any
			if json.Unmarshal(sc.Bytes(), &m) == nil && m["type"] != nil {
				lines = append(lines, m)
			}
		}
		return code, lines, text
	}

	code, lines, stderr := run("--progress", "--stats-every", "20ms", "--batch-size", "50", fileA, fileB)
	if code != 0 || len(lines) == 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	sum := lines[len(lines)-1]
	if sum["type"] != "summary" || sum["ok"] != true || sum["forwarded"] != 301.0 || sum["quarantined"] != 1.0 || sum["failed"] != 0.0 {
		t.Fatalf("summary %v\n%s", sum, stderr)
	}
	if raw := readStream(t, st, names.RawStream); len(raw) != 301 {
		t.Fatalf("raw stream has %d records", len(raw))
	}
	quar := readStream(t, st, names.QuarantineStream)
	var q event.Quarantine
	if len(quar) != 1 || json.Unmarshal(quar[0].Record.Data, &q) != nil || q.Reason != event.ReasonNotJSON || !strings.HasPrefix(q.Detail, fileB+":1: ") {
		t.Fatalf("quarantine %+v", q)
	}

	code, lines, stderr = run("--raw-stream", "missing-stream", "--max-attempts", "2", fileA)
	if code == 0 || len(lines) == 0 {
		t.Fatalf("exit %d on a missing stream\n%s", code, stderr)
	}
	if sum := lines[len(lines)-1]; sum["ok"] != false || sum["forwarded"] != 0.0 || sum["failed"].(float64) < 1 {
		t.Fatalf("summary %v", sum)
	}
	if !strings.Contains(stderr, forwarder.ErrFatalPut.Error()) {
		t.Fatalf("stderr does not say why:\n%s", stderr)
	}
}

// lockedBuffer collects a child's output while the test may read it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
