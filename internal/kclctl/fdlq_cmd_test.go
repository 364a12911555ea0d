package kclctl

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kinesis-events/pipeline/internal/names"
)

// runFDLQ runs kclctl with the fixture's queue and raw stream as the forwarder-dlq clients.
func (x *fdlqFixture) run(t *testing.T, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	var timeouts []time.Duration
	app := &App{
		Stdout: &out, Stderr: &errb,
		Getenv: func(k string) string { return env[k] },
		Now:    func() time.Time { return at },
		ConnectForwarderDLQ: func(_ context.Context, timeout time.Duration) (*FDLQClients, error) {
			timeouts = append(timeouts, timeout)
			return &FDLQClients{SQS: x.q, Kinesis: x.raw}, nil
		},
	}
	code := Main(t.Context(), app, args)
	if len(timeouts) > 1 {
		t.Fatalf("connected %d times", len(timeouts))
	}
	return code, out.String(), errb.String()
}

func TestFDLQCommandExitCodes(t *testing.T) {
	x := newFDLQFixture(t)
	x.q.name = "prod-kinesis-events-forwarder-dlq"
	env := map[string]string{EnvForwarderDLQ: x.q.name}
	x.q.add(lambdaRecord(bridgeEvent("e1", "c1", 1)), time.Hour, nil)
	x.q.add(bridgeEvent("e2", "c2", 1), time.Minute, ruleAttrs("SDK_CLIENT_ERROR"))

	code, out, errs := x.run(t, env, "forwarder-dlq", "list")
	if code != ExitOK || !strings.Contains(out, "2 message(s) listed from prod-kinesis-events-forwarder-dlq") || !strings.Contains(out, "oldest: sent") {
		t.Fatalf("list: exit %d\n%s\n%s", code, out, errs)
	}
	code, out, errs = x.run(t, env, "forwarder-dlq", "replay")
	if code != ExitOK || !strings.Contains(out, "would replay 2 into events-raw") || len(x.log.all()) != 0 {
		t.Fatalf("replay dry run: exit %d\n%s\n%s\nlog %v", code, out, errs, x.log.all())
	}

	// A message in neither format: list and replay warn (exit 3) and leave it.
	junk := x.q.add("junk", time.Minute, nil)
	if code, out, errs = x.run(t, env, "forwarder-dlq", "list"); code != ExitWarnings || !strings.Contains(out, "unparseable_message") {
		t.Fatalf("list with junk: exit %d\n%s\n%s", code, out, errs)
	}
	code, out, errs = x.run(t, env, "forwarder-dlq", "replay", "--apply", "--json")
	var r FDLQReplayReport
	if err := json.Unmarshal([]byte(out), &r); err != nil || code != ExitWarnings {
		t.Fatalf("replay --apply --json: exit %d, %v\n%s\n%s", code, err, out, errs)
	}
	if !r.Applied || r.Forwarded != 2 || r.Deleted != 2 || r.Unparseable != 1 || r.RawStream != names.RawStream || r.QuarantineStream != names.QuarantineStream {
		t.Fatalf("report %+v", r)
	}
	x.checkRemaining(t, junk)

	// An event the forwarder cannot write: exit 1, its message stays.
	x.q.add(bridgeEvent("e3", "c3", 1), time.Minute, nil)
	x.raw.fail = func(_, id string) error {
		if id == "e3" {
			return errors.New("ProvisionedThroughputExceededException")
		}
		return nil
	}
	code, out, errs = x.run(t, env, "forwarder-dlq", "replay", "--apply", "--stream", "raw-b", "--quarantine-stream", "quar-b")
	if code != ExitError || !strings.Contains(errs, "1 event(s) not written") || !strings.Contains(out, "failed (") || !strings.Contains(out, "2 message(s) left in the queue") {
		t.Fatalf("replay with a failure: exit %d\n%s\n%s", code, out, errs)
	}
	all, _ := x.q.remaining()
	if len(all) != 2 || slices.Contains(x.raw.puts("raw-b"), "e3") {
		t.Fatalf("left %v, raw-b %v", all, x.raw.puts("raw-b"))
	}
}

func TestFDLQCommandUsage(t *testing.T) {
	x := newFDLQFixture(t)
	for _, args := range [][]string{
		{"forwarder-dlq"},
		{"forwarder-dlq", "list", "--limit", "0"},
		{"forwarder-dlq", "list", "--wait", "1s"},
		{"forwarder-dlq", "replay", "--queue", ""},
		{"forwarder-dlq", "replay", "--pii-paths", "properties..email"},
		{"forwarder-dlq", "replay", "--quarantine-stream", names.RawStream},
		{"forwarder-dlq", "list", "extra"},
	} {
		if code, out, errs := x.run(t, nil, args...); code != ExitUsage {
			t.Errorf("%v: exit %d, want %d\n%s\n%s", args, code, ExitUsage, out, errs)
		}
	}
	// A queue that does not exist is an error, with the way out.
	if code, _, errs := x.run(t, nil, "forwarder-dlq", "list", "--queue", "nope"); code != ExitError || !strings.Contains(errs, EnvForwarderDLQ) {
		t.Fatalf("missing queue: exit %d\n%s", code, errs)
	}
	if x.q.calls["ReceiveMessage"] != 0 {
		t.Fatalf("usage errors received messages: %v", x.q.calls)
	}
}
