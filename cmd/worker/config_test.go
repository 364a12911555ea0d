package main

import (
	"bytes"
	"errors"
	"flag"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"

	"github.com/kinesis-events/pipeline/processors"
	"github.com/kinesis-events/pipeline/worker"
)

const testKeys = `[{"id":"k1","secret":"c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0"}]`

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func hostname(name string, err error) func() (string, error) {
	return func() (string, error) { return name, err }
}

// parseOK parses with the keys given inline (parse requires a key source) and fails on an error.
func parseOK(t *testing.T, args []string, vars map[string]string) options {
	t.Helper()
	if vars == nil {
		vars = map[string]string{}
	}
	if _, ok := vars["SIGNING_KEYS"]; !ok {
		vars["SIGNING_KEYS"] = testKeys
	}
	var usage bytes.Buffer
	o, err := parse(args, env(vars), hostname("host", nil), &usage)
	if err != nil {
		t.Fatalf("parse(%q) = %v; usage output: %s", args, err, usage.String())
	}
	return o
}

func TestParseDefaults(t *testing.T) {
	o := parseOK(t, nil, nil)
	want := worker.Defaults()
	want.WorkerID = "host-0"
	if !reflect.DeepEqual(o.Worker, want) {
		t.Fatalf("no flags: %+v\nwant worker.Defaults with id host-0: %+v", o.Worker, want)
	}
	if o.KeysReload != time.Minute || o.LogLevel.Level() != zapcore.InfoLevel || o.PrintConfig || len(o.Keys) != 1 {
		t.Fatalf("no flags: reload %v, level %v, print %v, keys %v", o.KeysReload, o.LogLevel.Level(), o.PrintConfig, o.Keys)
	}
}

// Every flag and its environment variable, each checked on its own: the flag sets the field, the
// variable sets it, and the flag wins over the variable.
func TestParseEveryFlagAndVariable(t *testing.T) {
	cases := []struct {
		flag, env, value, other string
		ok                      func(o options, v string) bool
	}{
		{"stream", "RAW_STREAM", "raw-a", "raw-b", func(o options, v string) bool { return o.Worker.Stream == v }},
		{"lease-table", "LEASE_TABLE", "lt-a", "lt-b", func(o options, v string) bool { return o.Worker.LeaseTable == v }},
		{"dedupe-table", "DEDUPE_TABLE", "dt-a", "dt-b", func(o options, v string) bool { return o.Worker.DedupeTable == v }},
		{"application", "KCL_APPLICATION", "app-a", "app-b", func(o options, v string) bool { return o.Worker.Application == v }},
		{"worker-id", "WORKER_ID", "w-a", "w-b", func(o options, v string) bool { return o.Worker.WorkerID == v }},
		{"id-suffix", "WORKER_ID_SUFFIX", "s1", "s2", func(o options, v string) bool { return o.Worker.WorkerID == "host-"+v }},
		{"metrics-addr", "METRICS_ADDR", ":1234", ":5678", func(o options, v string) bool { return o.Worker.MetricsAddr == v }},
		{"region", "AWS_REGION", "eu-west-1", "eu-central-1", func(o options, v string) bool { return o.Worker.Region == v }},
		{"routes", "ROUTES", `{"a":"s-a","default":"other-a"}`, `{"b":"s-b"}`, func(o options, v string) bool {
			p := o.Worker.Pipeline
			if strings.Contains(v, `"a"`) {
				return reflect.DeepEqual(p.Routes, map[string]string{"a": "s-a"}) && p.DefaultStream == "other-a"
			}
			return reflect.DeepEqual(p.Routes, map[string]string{"b": "s-b"}) && p.DefaultStream == ""
		}},
		{"quarantine-stream", "QUARANTINE_STREAM", "q-a", "q-b", func(o options, v string) bool { return o.Worker.Pipeline.QuarantineStream == v }},
		{"dlq-stream", "DLQ_STREAM", "d-a", "d-b", func(o options, v string) bool { return o.Worker.Pipeline.DLQStream == v }},
		{"late-stream", "LATE_STREAM", "l-a", "l-b", func(o options, v string) bool { return o.Worker.Pipeline.LateStream == v }},
		{"late-policy", "LATE_POLICY", "stream", "flag", func(o options, v string) bool { return o.Worker.Pipeline.LatePolicy == processors.LatePolicy(v) }},
		{"keys-file", "SIGNING_KEYS_FILE", "/a.json", "/b.json", func(o options, v string) bool { return o.KeysFile == v }},
		{"keys", "SIGNING_KEYS", `[{"id":"ka","secret":"c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0"}]`, `{"id":"kb","secret":"c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0"}`, func(o options, v string) bool {
			return len(o.Keys) == 1 && strings.Contains(v, `"`+o.Keys[0].ID+`"`)
		}},
		{"keys-secret-arn", "SIGNING_KEYS_SECRET_ARN", "arn:a", "arn:b", func(o options, v string) bool { return o.KeysSecret == v }},
		{"keys-reload", "SIGNING_KEYS_RELOAD", "5m", "0s", func(o options, v string) bool { d, _ := time.ParseDuration(v); return o.KeysReload == d }},
		{"dedupe-lookup", "DEDUPE_LOOKUP", "behind-cursor", "all", func(o options, v string) bool { return true }}, // accepted, no effect
		{"dedupe-horizon", "DEDUPE_HORIZON", "240h", "48h", func(o options, v string) bool {
			d, _ := time.ParseDuration(v)
			return o.Worker.Pipeline.DedupeHorizon == d
		}},
		{"pii-paths", "PII_PATHS", "customer_id,properties.email", "properties.phone", func(o options, v string) bool {
			return strings.Join(o.Worker.Pipeline.PIIPaths, ",") == v
		}},
		{"log-level", "LOG_LEVEL", "debug", "warn", func(o options, v string) bool { return o.LogLevel.Level().String() == v }},
		{"reorder-window", "REORDER_WINDOW", "10s", "-1s", func(o options, v string) bool {
			d, _ := time.ParseDuration(v)
			return o.Worker.Pipeline.ReorderWindow == d
		}},
		{"shard-sync", "SHARD_SYNC", "1s", "2s", func(o options, v string) bool { d, _ := time.ParseDuration(v); return o.Worker.ShardSync == d }},
		{"lease-duration", "LEASE_DURATION", "20s", "30s", func(o options, v string) bool { d, _ := time.ParseDuration(v); return o.Worker.LeaseDuration == d }},
		{"idle-time", "IDLE_TIME", "1s", "2s", func(o options, v string) bool { d, _ := time.ParseDuration(v); return o.Worker.IdleTime == d }},
		{"request-timeout", "REQUEST_TIMEOUT", "10s", "20s", func(o options, v string) bool { d, _ := time.ParseDuration(v); return o.Worker.RequestTimeout == d }},
		{"shutdown-grace", "SHUTDOWN_GRACE", "5s", "15s", func(o options, v string) bool { d, _ := time.ParseDuration(v); return o.Worker.ShutdownGrace == d }},
		{"checkpoint-retry-budget", "CHECKPOINT_RETRY_BUDGET", "40s", "50s", func(o options, v string) bool {
			d, _ := time.ParseDuration(v)
			return o.Worker.CheckpointRetryBudget == d
		}},
		{"test-lease-clock-skew", "TEST_LEASE_CLOCK_SKEW", "-5m", "5m", func(o options, v string) bool { d, _ := time.ParseDuration(v); return o.Worker.TestLeaseClockSkew == d }},
		{"start-at-latest", "START_AT_LATEST", "true", "false", func(o options, v string) bool { return o.Worker.StartAtLatest == (v == "true") }},
	}
	for _, c := range cases {
		t.Run(c.flag, func(t *testing.T) {
			base := map[string]string{}
			if c.flag == "late-policy" {
				base["LATE_STREAM"] = "late" // -late-policy=stream needs a late stream
			}
			with := func(m map[string]string) map[string]string {
				out := map[string]string{}
				for k, v := range base {
					out[k] = v
				}
				for k, v := range m {
					out[k] = v
				}
				return out
			}
			if o := parseOK(t, []string{"-" + c.flag + "=" + c.value}, with(nil)); !c.ok(o, c.value) {
				t.Errorf("-%s=%s not applied: %+v", c.flag, c.value, o)
			}
			if o := parseOK(t, nil, with(map[string]string{c.env: c.value})); !c.ok(o, c.value) {
				t.Errorf("%s=%s not applied: %+v", c.env, c.value, o)
			}
			if o := parseOK(t, []string{"-" + c.flag + "=" + c.value}, with(map[string]string{c.env: c.other})); !c.ok(o, c.value) {
				t.Errorf("-%s=%s must win over %s=%s: %+v", c.flag, c.value, c.env, c.other, o)
			}
		})
	}
	if o := parseOK(t, []string{"-print-config"}, nil); !o.PrintConfig {
		t.Error("-print-config not applied")
	}
	if o := parseOK(t, []string{"-start-at-latest"}, nil); !o.Worker.StartAtLatest {
		t.Error("-start-at-latest without a value must set it")
	}
	if o := parseOK(t, nil, map[string]string{"START_AT_LATEST": ""}); o.Worker.StartAtLatest {
		t.Error("START_AT_LATEST= (empty) is unset, not true")
	}
	if o := parseOK(t, nil, map[string]string{"METRICS_ADDR": ""}); o.Worker.MetricsAddr != "" {
		t.Error("METRICS_ADDR= (empty) turns the metrics server off")
	}
}

func TestParseDefaultWorkerID(t *testing.T) {
	vars := map[string]string{"SIGNING_KEYS": testKeys}
	o, err := parse([]string{"-id-suffix", "w2"}, env(vars), hostname("", errors.New("no host name")), &bytes.Buffer{})
	if err != nil || o.Worker.WorkerID != "worker-w2" {
		t.Fatalf("host name unknown: id %q, %v; want worker-w2", o.Worker.WorkerID, err)
	}
}

// Bad values, of flags and of variables alike, are reported all at once, never ignored.
func TestParseReportsEveryBadValue(t *testing.T) {
	vars := map[string]string{"START_AT_LATEST": "maybe", "LEASE_DURATION": "ten", "SIGNING_KEYS_RELOAD": "soon"}
	args := []string{"-reorder-window", "abc", "-start-at-latest=nah", "-routes", "{", "-log-level", "loud",
		"-dedupe-lookup", "some", "-keys", "[", "-late-policy", "drop", "-worker-id", "a b", "extra"}
	_, err := parse(args, env(vars), hostname("host", nil), &bytes.Buffer{})
	if err == nil {
		t.Fatal("parse = nil for a dozen bad values")
	}
	for _, want := range []string{`START_AT_LATEST="maybe"`, `LEASE_DURATION="ten"`, `SIGNING_KEYS_RELOAD="soon"`,
		`-reorder-window "abc"`, `-start-at-latest="nah"`, "-routes:", "-log-level:", `-dedupe-lookup "some"`, "-keys:",
		"LatePolicy", "white space", `unexpected arguments ["extra"]`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("parse error lacks %q:\n%v", want, err)
		}
	}
}

func TestParseNeedsSigningKeys(t *testing.T) {
	_, err := parse(nil, env(map[string]string{}), hostname("host", nil), &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "no signing keys") {
		t.Fatalf("parse without keys = %v, want no signing keys", err)
	}
}

func TestParseConfigIsValidated(t *testing.T) {
	_, err := parse([]string{"-lease-duration", "2s"}, env(map[string]string{"SIGNING_KEYS": testKeys}), hostname("host", nil), &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "under half the lease duration") {
		t.Fatalf("renewal 2s with a 2s lease = %v, want worker.Config.Validate's error", err)
	}
}

func TestParseUnknownFlagAndHelp(t *testing.T) {
	var usage bytes.Buffer
	if _, err := parse([]string{"-nope"}, env(nil), hostname("host", nil), &usage); err == nil || !strings.Contains(err.Error(), "-nope") {
		t.Fatalf("unknown flag = %v", err)
	}
	usage.Reset()
	_, err := parse([]string{"-h"}, env(nil), hostname("host", nil), &usage)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("-h = %v, want flag.ErrHelp", err)
	}
	// -h lists every flag with its variable, durations as durations, and the defaults.
	for _, want := range []string{"[RAW_STREAM]", "[WORKER_ID_SUFFIX]", "[START_AT_LATEST]", "[TEST_LEASE_CLOCK_SKEW]",
		"-reorder-window duration", `(default "events-raw")`, "(default 30s)", "-start-at-latest\n"} {
		if !strings.Contains(usage.String(), want) {
			t.Errorf("-h output lacks %q:\n%s", want, usage.String())
		}
	}
}
