package kclctl

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kinesis-events/pipeline/internal/names"
)

// fakeApp runs commands against scripted reports instead of AWS.
type fakeApp struct {
	mu       sync.Mutex
	reports  []Report // returned in turn; the last one repeats
	errs     []error  // error of the i-th call, when set
	calls    int
	tables   []string
	streams  []string
	timeout  time.Duration
	connects int
	onCall   func(n int) // after the n-th Inspect (1-based)
	env      map[string]string
	terminal bool
}

func (f *fakeApp) app(stdout, stderr *bytes.Buffer) *App {
	return &App{
		Stdout: stdout, Stderr: stderr,
		Getenv: func(k string) string { return f.env[k] },
		Now:    func() time.Time { return at },
		Connect: func(_ context.Context, timeout time.Duration) (*Clients, error) {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.connects++
			f.timeout = timeout
			return &Clients{}, nil
		},
		Inspect: func(ctx context.Context, _ *Clients, table, stream string, now time.Time) (Report, error) {
			f.mu.Lock()
			f.calls++
			n := f.calls
			f.tables = append(f.tables, table)
			f.streams = append(f.streams, stream)
			r := f.reports[min(n, len(f.reports))-1]
			var err error
			if n-1 < len(f.errs) {
				err = f.errs[n-1]
			}
			f.mu.Unlock()
			if f.onCall != nil {
				f.onCall(n)
			}
			if err := ctx.Err(); err != nil { // like a real AWS call interrupted mid-flight
				return Report{}, err
			}
			if _, ok := ctx.Deadline(); !ok {
				return Report{}, errors.New("inspect called without a deadline")
			}
			r.At, r.Table, r.Stream = now, table, stream
			return r, err
		},
		Terminal: func() bool { return f.terminal },
	}
}

func (f *fakeApp) run(t *testing.T, ctx context.Context, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Main(ctx, f.app(&out, &errb), args)
	return code, out.String(), errb.String()
}

func cleanReport() Report {
	r := sampleReport()
	r.Warnings = nil
	return r
}

func TestCheckpointsExitCodes(t *testing.T) {
	cases := []struct {
		name     string
		args     []string
		reports  []Report
		errs     []error
		wantCode int
		wantOut  string // substring of stdout
		wantErr  string // substring of stderr
	}{
		{name: "clean table", args: []string{"checkpoints"}, reports: []Report{cleanReport()}, wantCode: ExitOK, wantOut: "LEASE EXPIRES IN"},
		{name: "warnings", args: []string{"checkpoints"}, reports: []Report{sampleReport()}, wantCode: ExitWarnings, wantOut: "WARNINGS (2)"},
		{name: "json warnings", args: []string{"checkpoints", "--json"}, reports: []Report{sampleReport()}, wantCode: ExitWarnings, wantOut: `"kind": "expired_lease"`},
		{name: "inspect fails", args: []string{"checkpoints"}, reports: []Report{{}}, errs: []error{errors.New("table kcl-leases: ResourceNotFoundException")},
			wantCode: ExitError, wantErr: "ResourceNotFoundException"},
		{name: "unknown flag", args: []string{"checkpoints", "--nope"}, wantCode: ExitUsage, wantErr: "unknown flag: --nope"},
		{name: "unknown command", args: []string{"nope"}, wantCode: ExitUsage, wantErr: `unknown command "nope"`},
		{name: "no command", args: nil, wantCode: ExitUsage, wantOut: "Available Commands", wantErr: "a command is required"},
		{name: "positional argument", args: []string{"checkpoints", "x"}, wantCode: ExitUsage, wantErr: "takes no arguments"},
		{name: "bad timeout", args: []string{"checkpoints", "--timeout", "0s"}, wantCode: ExitUsage, wantErr: "--timeout"},
		{name: "bad duration", args: []string{"checkpoints", "--timeout", "soon"}, wantCode: ExitUsage, wantErr: "invalid argument"},
		{name: "bad interval", args: []string{"checkpoints", "--watch", "--interval", "0s"}, wantCode: ExitUsage, wantErr: "--interval"},
		{name: "help", args: []string{"checkpoints", "--help"}, wantCode: ExitOK, wantOut: "Exit codes"},
		{name: "root help", args: []string{"--help"}, wantCode: ExitOK, wantOut: "4  refused"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeApp{reports: tc.reports, errs: tc.errs}
			if tc.name == "help" {
				tc.wantOut = "any warning makes the exit"
			}
			code, out, errOut := f.run(t, t.Context(), tc.args...)
			if code != tc.wantCode || !strings.Contains(out, tc.wantOut) || !strings.Contains(errOut, tc.wantErr) {
				t.Fatalf("exit %d (want %d)\nstdout:\n%s\nstderr:\n%s\nwant stdout containing %q, stderr containing %q", code, tc.wantCode, out, errOut, tc.wantOut, tc.wantErr)
			}
			if tc.wantCode == ExitUsage && f.calls != 0 {
				t.Fatal("a usage error still inspected")
			}
		})
	}
}

func TestGlobalFlagsAndEnvironment(t *testing.T) {
	f := &fakeApp{reports: []Report{cleanReport()}, env: map[string]string{EnvLeaseTable: "env-table", EnvRawStream: "env-stream"}}
	if code, _, errOut := f.run(t, t.Context(), "checkpoints", "--timeout", "3s"); code != ExitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if f.tables[0] != "env-table" || f.streams[0] != "env-stream" || f.timeout != 3*time.Second {
		t.Fatalf("table %v stream %v timeout %v", f.tables, f.streams, f.timeout)
	}
	f = &fakeApp{reports: []Report{cleanReport()}, env: map[string]string{EnvLeaseTable: "env-table"}}
	if code, _, _ := f.run(t, t.Context(), "--table", "flag-table", "checkpoints", "--stream", "flag-stream"); code != ExitOK {
		t.Fatal(code)
	}
	if f.tables[0] != "flag-table" || f.streams[0] != "flag-stream" || f.timeout != DefaultTimeout {
		t.Fatalf("table %v stream %v timeout %v", f.tables, f.streams, f.timeout)
	}
	f = &fakeApp{reports: []Report{cleanReport()}}
	if code, _, _ := f.run(t, t.Context(), "checkpoints"); code != ExitOK || f.tables[0] != names.LeaseTable || f.streams[0] != names.RawStream {
		t.Fatalf("defaults: exit %d table %v stream %v", code, f.tables, f.streams)
	}
}

func TestCheckpointsJSONIsStable(t *testing.T) {
	r := cleanReport()
	r.Shards[0].Parents = nil
	f := &fakeApp{reports: []Report{r}}
	code, out, _ := f.run(t, t.Context(), "checkpoints", "--json")
	if code != ExitOK {
		t.Fatal(code)
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("%v:\n%s", err, out)
	}
	// Empty lists are [] rather than null, so scripts can iterate without checks.
	if w, ok := got["warnings"].([]any); !ok || len(w) != 0 {
		t.Fatalf("warnings = %#v", got["warnings"])
	}
	if p, ok := got["shards"].([]any)[0].(map[string]any)["parents"].([]any); !ok || len(p) != 0 {
		t.Fatalf("parents = %#v", got["shards"].([]any)[0])
	}
}

func TestWatchRefreshesUntilCancelled(t *testing.T) {
	for _, tc := range []struct {
		name     string
		json     bool
		terminal bool
	}{{"table", false, false}, {"terminal", false, true}, {"json", true, false}} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			// Refresh 1 is clean, 2 has warnings, 3 fails, 4 is clean and then Ctrl-C comes.
			f := &fakeApp{reports: []Report{cleanReport(), sampleReport(), cleanReport(), cleanReport()},
				errs: []error{nil, nil, errors.New("throttled")}, terminal: tc.terminal}
			f.onCall = func(n int) {
				if n == 4 {
					cancel()
				}
			}
			args := []string{"checkpoints", "--watch", "--interval", "1ms"}
			if tc.json {
				args = append(args, "--json")
			}
			code, out, errOut := f.run(t, ctx, args...)
			// Refresh 4 was cut short by the interrupt, so the exit code is refresh 3's.
			if code != ExitError || f.calls != 4 || f.connects != 1 {
				t.Fatalf("exit %d after %d refreshes, %d connects; stderr:\n%s", code, f.calls, f.connects, errOut)
			}
			if !strings.Contains(errOut, "throttled") || strings.Count(errOut, "kclctl: checkpoints:") != 1 {
				t.Fatalf("stderr:\n%s", errOut)
			}
			switch {
			case tc.json:
				lines := strings.Split(strings.TrimSpace(out), "\n")
				if len(lines) != 2 {
					t.Fatalf("%d JSON lines, want 2 (refreshes 1 and 2; 3 failed, 4 was interrupted):\n%s", len(lines), out)
				}
				for _, l := range lines {
					var r Report
					if err := json.Unmarshal([]byte(l), &r); err != nil {
						t.Fatalf("%v: %s", err, l)
					}
				}
			case tc.terminal:
				if strings.Count(out, clearScreen) != 4 || strings.Count(out, "Every 1ms: kclctl checkpoints") != 4 {
					t.Fatalf("terminal output:\n%q", out)
				}
			default:
				if strings.Contains(out, clearScreen) || strings.Count(out, "SHARD  ") != 2 || strings.Count(out, "Every 1ms") != 4 {
					t.Fatalf("output:\n%s", out)
				}
			}
		})
	}
}

func TestWatchReturnsLastCompletedCode(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	codes := []int{ExitOK, ExitWarnings, ExitOK}
	n := 0
	got := Watch(ctx, time.Millisecond, func(context.Context) int {
		n++
		if n == len(codes) {
			cancel()
		}
		return codes[n-1]
	})
	if got != ExitWarnings || n != 3 {
		t.Fatalf("Watch = %d after %d refreshes, want %d after 3", got, n, ExitWarnings)
	}
}
