package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kinesis-events/pipeline/event"
	"github.com/kinesis-events/pipeline/internal/loadgen"
	"github.com/kinesis-events/pipeline/internal/localstack/localstacktest"
)

var fixedNow = func() time.Time { return time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC) }

func noEnv(string) string { return "" }

func envOf(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

// runMain runs Main and returns its exit code, stdout and stderr.
func runMain(t *testing.T, getenv func(string) string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Main(t.Context(), args, &out, &errb, getenv, fixedNow)
	return code, out.String(), errb.String()
}

// lastSummary decodes the summary line from stderr.
func lastSummary(t *testing.T, stderr string) summary {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.HasPrefix(lines[i], `{"type":"summary"`) {
			var s summary
			if err := json.Unmarshal([]byte(lines[i]), &s); err != nil {
				t.Fatalf("summary line %q: %v", lines[i], err)
			}
			return s
		}
	}
	t.Fatalf("no summary line on stderr:\n%s", stderr)
	return summary{}
}

func TestOutputAndManifestAreDeterministic(t *testing.T) {
	dir := t.TempDir()
	args := func(n string) []string {
		return []string{"--count", "400", "--seed", "11", "--customers", "7", "--dup-ratio", "0.1", "--ooo-ratio", "0.1",
			"--bad-ratio", "0.05", "--bad-kinds", "not_json,bad_signature", "--out", filepath.Join(dir, n+".ndjson"),
			"--manifest", filepath.Join(dir, n+".json")}
	}
	for _, n := range []string{"a", "b"} {
		code, stdout, stderr := runMain(t, noEnv, args(n)...)
		if code != ExitOK {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		if stdout != "" {
			t.Fatalf("stdout written despite --out: %q", stdout[:min(len(stdout), 80)])
		}
		if !strings.Contains(stderr, "WARNING: no signing keys configured") {
			t.Fatalf("no dev-key warning on stderr:\n%s", stderr)
		}
		if s := lastSummary(t, stderr); !s.OK || s.Lines != 400 || s.Seed != 11 || s.Start != "2026-11-26T12:00:00.000Z" {
			t.Fatalf("summary %+v", s)
		}
	}
	for _, ext := range []string{".ndjson", ".json"} {
		a, err := os.ReadFile(filepath.Join(dir, "a"+ext))
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(dir, "b"+ext))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a, b) || len(a) == 0 {
			t.Fatalf("%s files differ between identical runs (or are empty)", ext)
		}
	}
	var m loadgen.Manifest
	b, _ := os.ReadFile(filepath.Join(dir, "a.json"))
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	out, _ := os.ReadFile(filepath.Join(dir, "a.ndjson"))
	if n := bytes.Count(out, []byte("\n")); n != 400 || m.Lines != 400 || m.Requested != 400 {
		t.Fatalf("%d output lines, manifest lines %d requested %d", n, m.Lines, m.Requested)
	}
	if m.Unique != len(m.Events) || m.Unique == 0 || m.Duplicates.Natural == 0 || m.Bad[loadgen.BadNotJSON] == 0 || m.Bad[loadgen.BadSignature] == 0 {
		t.Fatalf("manifest %+v", m)
	}
}

func TestStdoutIsNDJSON(t *testing.T) {
	code, stdout, stderr := runMain(t, noEnv, "--count", "25", "--seed", "1")
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	sc := bufio.NewScanner(strings.NewReader(stdout))
	n := 0
	for sc.Scan() {
		var be event.BridgeEvent
		if err := json.Unmarshal(sc.Bytes(), &be); err != nil {
			t.Fatalf("line %d: %v", n, err)
		}
		n++
	}
	if n != 25 {
		t.Fatalf("%d lines, want 25", n)
	}
}

func TestRandomSeedIsReported(t *testing.T) {
	code, _, stderr := runMain(t, noEnv, "--count", "3")
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	s := lastSummary(t, stderr)
	if !strings.Contains(stderr, "reproduce with --seed ") || !strings.Contains(stderr, s.Start[:19]) {
		t.Fatalf("picked seed not reported:\n%s", stderr)
	}
}

func TestConfiguredKeys(t *testing.T) {
	secretOld := base64.StdEncoding.EncodeToString([]byte("old-secret-0123456789"))
	secretNew := base64.StdEncoding.EncodeToString([]byte("new-secret-0123456789"))
	keysJSON := `[{"id":"k-old","secret":"` + secretOld + `","retired_at":"2026-06-01T00:00:00Z"},{"id":"k-new","secret":"` + secretNew + `"}]`
	tokKey := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte("t"), 32))
	env := envOf(map[string]string{EnvSigningKeys: keysJSON, EnvTokenizerKey: tokKey})

	code, stdout, stderr := runMain(t, env, "--count", "20", "--seed", "2")
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if strings.Contains(stderr, "WARNING") {
		t.Fatalf("warning although keys are configured:\n%s", stderr)
	}
	keys, err := event.ParseKeys([]byte(keysJSON))
	if err != nil {
		t.Fatal(err)
	}
	ring, err := event.NewKeyring(keys...)
	if err != nil {
		t.Fatal(err)
	}
	tok, _ := event.NewTokenizer(bytes.Repeat([]byte("t"), 32))
	customers := map[string]bool{}
	for i := 1; i <= loadgen.DefaultCustomers; i++ {
		customers[tok.Token("customer", "customer-"+strconv.Itoa(i))] = true
	}
	for _, line := range strings.Split(strings.TrimSpace(stdout), "\n") {
		var be event.BridgeEvent
		if err := json.Unmarshal([]byte(line), &be); err != nil {
			t.Fatal(err)
		}
		d, err := event.ParseDetail(be.Detail)
		if err != nil {
			t.Fatal(err)
		}
		// The retired key is skipped: the first key still valid at the start signs.
		if d.KeyID != "k-new" {
			t.Fatalf("signed with %s, want k-new", d.KeyID)
		}
		if err := ring.Verify(be.DetailType, d, fixedNow()); err != nil {
			t.Fatal(err)
		}
		if !customers[d.CustomerID] {
			t.Fatalf("customer_id %s not tokenized with TOKENIZER_KEY", d.CustomerID)
		}
	}

	// A file overrides the environment; --key-id picks; a retired key is refused.
	dir := t.TempDir()
	kf := filepath.Join(dir, "keys.json")
	if err := os.WriteFile(kf, []byte(keysJSON), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := runMain(t, noEnv, "--count", "2", "--seed", "2", "--keys-file", kf, "--key-id", "k-old"); code != ExitUsage || !strings.Contains(stderr, "retired") {
		t.Fatalf("retired --key-id: exit %d: %s", code, stderr)
	}
	// SIGNING_KEYS_FILE is the --keys-file default and wins over SIGNING_KEYS, as for the worker.
	fileEnv := envOf(map[string]string{EnvSigningKeysFile: kf, EnvSigningKeys: "not even json"})
	if code, stdout, stderr := runMain(t, fileEnv, "--count", "2", "--seed", "2"); code != ExitOK || !strings.Contains(stdout, `"key_id":"k-new"`) {
		t.Fatalf("%s: exit %d: %s", EnvSigningKeysFile, code, stderr)
	}
}

func TestUsageErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte("not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"unknown flag", nil, []string{"--nope"}, "flag provided but not defined"},
		{"positional argument", nil, []string{"extra"}, "unexpected arguments"},
		{"zero count", nil, []string{"--count", "0"}, "--count"},
		{"ratios too large", nil, []string{"--dup-ratio", "0.6", "--bad-ratio", "0.5"}, "no room"},
		{"ooo too large", nil, []string{"--ooo-ratio", "0.5"}, "below 0.5"},
		{"bad start", nil, []string{"--start", "yesterday"}, "--start"},
		{"unknown bad kind", nil, []string{"--bad-ratio", "0.1", "--bad-kinds", "weird"}, "unknown bad kind"},
		{"bad keys file", nil, []string{"--keys-file", bad}, "signing keys"},
		{"missing keys file", nil, []string{"--keys-file", filepath.Join(dir, "none")}, "--keys-file"},
		{"bad env keys", map[string]string{EnvSigningKeys: "[]"}, nil, "no keys"},
		{"key id without keys", nil, []string{"--key-id", "k9"}, "no keys"},
		{"key id not in keys", map[string]string{EnvSigningKeys: `[{"id":"a","secret":"` + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte("a"), 16)) + `"}]`}, []string{"--key-id", "b"}, "not in the keyring"},
		{"short tokenizer key", map[string]string{EnvTokenizerKey: base64.StdEncoding.EncodeToString([]byte("short"))}, nil, "32 bytes"},
		{"bad profile", nil, []string{"--profile", "150"}, "--profile"},
		{"profile and rate", nil, []string{"--profile", "150:1s", "--rate", "5"}, "give one of them"},
		{"hot customer unpaced", nil, []string{"--hot-rate", "30"}, "needs a rate or a profile"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runMain(t, envOf(tc.env), tc.args...)
			if code != ExitUsage || !strings.Contains(stderr, tc.want) || stdout != "" {
				t.Fatalf("exit %d, stdout %q, stderr:\n%s\nwant exit %d mentioning %q", code, stdout, stderr, ExitUsage, tc.want)
			}
		})
	}
}

// TestProfile: --profile paces the run and sets the count; --hot-rate names the hot customer.
// writes records each Write call it gets.
type writes struct{ calls []string }

func (w *writes) Write(p []byte) (int, error) {
	w.calls = append(w.calls, string(p))
	return len(p), nil
}

// TestPacedLinesGoOutAsDue: a paced run, by rate or by profile, writes each line as it is emitted,
// not when a buffer fills: occurred_at is the line's due time, so a line held back would count the
// wait as the consumer's lag.
func TestPacedLinesGoOutAsDue(t *testing.T) {
	for _, pace := range [][]string{{"--profile", "100:200ms,100-300:200ms"}, {"--rate", "300", "--count", "60"}} {
		var out writes
		var errb bytes.Buffer
		if code := Main(t.Context(), append(pace, "--customers", "9", "--seed", "3"), &out, &errb, noEnv, fixedNow); code != ExitOK {
			t.Fatalf("%v: exit %d, stderr:\n%s", pace, code, errb.String())
		}
		if len(out.calls) != 60 {
			t.Fatalf("%v: 60 lines in %d writes, want one write per line", pace, len(out.calls))
		}
		for i, c := range out.calls {
			if strings.Count(c, "\n") != 1 || !strings.HasSuffix(c, "\n") {
				t.Fatalf("%v: write %d is not one line: %q", pace, i, c)
			}
		}
	}
}

func TestProfile(t *testing.T) {
	manifest := filepath.Join(t.TempDir(), "m.json")
	code, stdout, stderr := runMain(t, noEnv, "--profile", "100:200ms,100-300:200ms", "--hot-rate", "20", "--customers", "9", "--seed", "3", "--manifest", manifest)
	if code != ExitOK || strings.Count(stdout, "\n") != 60 {
		t.Fatalf("exit %d, %d lines (want 60), stderr:\n%s", code, strings.Count(stdout, "\n"), stderr)
	}
	b, err := os.ReadFile(manifest)
	if err != nil {
		t.Fatal(err)
	}
	var m loadgen.Manifest
	if err := json.Unmarshal(b, &m); err != nil || m.Requested != 60 || m.HotCustomer == "" {
		t.Fatalf("manifest %+v, %v", m, err)
	}
}

func TestPrintDevKeys(t *testing.T) {
	code, stdout, _ := runMain(t, noEnv, "--print-dev-keys")
	if code != ExitOK {
		t.Fatalf("exit %d", code)
	}
	keys, err := event.ParseKeys([]byte(stdout))
	if err != nil || len(keys) != 1 || keys[0].ID != loadgen.DevKeyID {
		t.Fatalf("dev keys %q: %v", stdout, err)
	}
}

func TestInterruptedRunKeepsManifest(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(t.Context())
	// The writer cancels after the first lines, like a Ctrl-C in the middle of a paced run.
	w := &cancelAfter{n: 3, cancel: cancel}
	var errb bytes.Buffer
	code := Main(ctx, []string{"--count", "1000", "--rate", "50", "--seed", "1", "--manifest", filepath.Join(dir, "m.json")}, w, &errb, noEnv, fixedNow)
	if code != ExitInterrupted {
		t.Fatalf("exit %d, want %d: %s", code, ExitInterrupted, errb.String())
	}
	var m loadgen.Manifest
	b, err := os.ReadFile(filepath.Join(dir, "m.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if m.Lines < 3 || m.Lines >= 1000 || m.Requested != 1000 || w.lines != m.Lines {
		t.Fatalf("manifest lines %d requested %d, %d lines written", m.Lines, m.Requested, w.lines)
	}
}

// cancelAfter counts lines written and cancels once n were.
type cancelAfter struct {
	n, lines int
	cancel   func()
}

func (c *cancelAfter) Write(p []byte) (int, error) {
	c.lines += bytes.Count(p, []byte("\n"))
	if c.lines >= c.n {
		c.cancel()
	}
	return len(p), nil
}

func TestForwardInProcess(t *testing.T) {
	st := localstacktest.Start(t)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	for _, kv := range st.Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	if err := st.CreateStream(ctx, "lg-raw", 2); err != nil {
		t.Fatal(err)
	}
	if err := st.CreateStream(ctx, "lg-quarantine", 1); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	mf := filepath.Join(dir, "m.json")
	code, stdout, stderr := runMain(t, os.Getenv, "--forward", "--raw-stream", "lg-raw", "--quarantine-stream", "lg-quarantine",
		"--count", "300", "--seed", "5", "--customers", "20", "--dup-ratio", "0.05", "--ooo-ratio", "0.1",
		"--bad-ratio", "0.1", "--bad-kinds", "not_json,missing_customer_id,bad_signature,oversize", "--manifest", mf)
	if code != ExitOK {
		t.Fatalf("exit %d:\n%s", code, stderr)
	}
	if stdout != "" {
		t.Fatal("--forward without --out wrote to stdout")
	}
	s := lastSummary(t, stderr)
	var m loadgen.Manifest
	b, _ := os.ReadFile(mf)
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	forwarderBad := m.Bad[loadgen.BadNotJSON] + m.Bad[loadgen.BadMissingCustomerID] + m.Bad[loadgen.BadOversize]
	if s.Forwarder == nil || s.Forwarder.Failed != 0 || s.Forwarder.Quarantined != int64(forwarderBad) ||
		s.Forwarder.Forwarded != int64(300-forwarderBad) || forwarderBad == 0 {
		t.Fatalf("forwarder result %+v for manifest bad %v", s.Forwarder, m.Bad)
	}

	raw, err := st.ReadAll(ctx, "lg-raw")
	if err != nil {
		t.Fatal(err)
	}
	if len(raw) != 300-forwarderBad {
		t.Fatalf("%d raw records, want %d", len(raw), 300-forwarderBad)
	}
	// Every unique valid event is on the raw stream, partitioned by customer, in seq order per
	// customer except where the generator displaced it on purpose.
	seen := map[string]bool{}
	for _, r := range raw {
		_, d, err := event.DecodeRaw(r.Record.Data)
		if err != nil {
			continue // the bad_signature lines decode fine; only verification rejects them
		}
		if *r.Record.PartitionKey != d.CustomerID {
			t.Fatalf("partition key %s for customer %s", *r.Record.PartitionKey, d.CustomerID)
		}
		seen[d.EventID] = true
	}
	for _, e := range m.Events {
		if !seen[e.EventID] {
			t.Fatalf("event %s (customer %s seq %d) not on the raw stream", e.EventID, e.CustomerID, e.Seq)
		}
	}
	q, err := st.ReadAll(ctx, "lg-quarantine")
	if err != nil {
		t.Fatal(err)
	}
	reasons := map[event.Reason]int{}
	for _, r := range q {
		var qr event.Quarantine
		if err := json.Unmarshal(r.Record.Data, &qr); err != nil {
			t.Fatal(err)
		}
		reasons[qr.Reason]++
	}
	for _, k := range loadgen.AllBadKinds {
		if k.Stage() == "forwarder" && reasons[k.Reason()] != m.Bad[k] {
			t.Errorf("quarantine reasons %v for bad inputs %v: %s should give %d x %s", reasons, m.Bad, k, m.Bad[k], k.Reason())
		}
	}
	if len(q) != forwarderBad {
		t.Errorf("%d quarantine records, want %d", len(q), forwarderBad)
	}
}

func TestForwardToMissingStreamFails(t *testing.T) {
	st := localstacktest.Start(t)
	for _, kv := range st.Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	code, _, stderr := runMain(t, os.Getenv, "--forward", "--raw-stream", "no-such-stream", "--count", "2000", "--seed", "1")
	if code != ExitError || !strings.Contains(stderr, "no-such-stream") {
		t.Fatalf("exit %d, want %d naming the stream:\n%s", code, ExitError, stderr)
	}
	if s := lastSummary(t, stderr); s.OK || s.Forwarder == nil || s.Forwarder.Forwarded != 0 {
		t.Fatalf("summary %+v", s)
	}
}
