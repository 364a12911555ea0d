package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/kinesis-events/pipeline/event"
	"github.com/kinesis-events/pipeline/internal/profile"
	"github.com/kinesis-events/pipeline/processors"
	"github.com/kinesis-events/pipeline/worker"
)

// options is what the command line and the environment ask for: the worker's configuration and
// what main sets up around it (signing keys, logging).
type options struct {
	Worker worker.Config
	// KeysSecret, KeysFile and Keys are the signing keys' sources, in that precedence; Keys is
	// parsed already (SIGNING_KEYS / -keys).
	KeysSecret string
	KeysFile   string
	Keys       []event.Key
	// KeysReload is how often keys from KeysSecret or KeysFile are re-read; 0: never.
	KeysReload  time.Duration
	LogLevel    zap.AtomicLevel
	PrintConfig bool
	// Profile names the pprof profiles to write (-cpuprofile, -memprofile); empty: none.
	Profile profile.Files
}

// parse reads args (without the program name) over the environment (lookupEnv, like os.LookupEnv:
// a flag wins over its variable) into options, starting from worker.Defaults. hostname names the
// machine for the default worker id, hostname-<id-suffix>. Every bad flag value, environment value
// and setting is reported in one joined error; a flag the command does not know stops parsing
// (the flag package's rule) and -h returns flag.ErrHelp after printing the usage to usage.
func parse(args []string, lookupEnv func(string) (string, bool), hostname func() (string, error), usage io.Writer) (options, error) {
	o := options{Worker: worker.Defaults(), KeysReload: time.Minute, LogLevel: zap.NewAtomicLevel()}
	cfg := &o.Worker
	var routes, keysJSON, piiPaths, logLevel, latePolicy string
	idSuffix := "0"
	dedupeLookup := "all"
	p := &parser{fs: flag.NewFlagSet("worker", flag.ContinueOnError), env: lookupEnv}
	p.fs.SetOutput(usage)
	p.str(&cfg.Stream, "stream", "RAW_STREAM", "raw Kinesis stream to consume")
	p.str(&cfg.LeaseTable, "lease-table", "LEASE_TABLE", "DynamoDB lease and checkpoint table")
	p.str(&cfg.DedupeTable, "dedupe-table", "DEDUPE_TABLE", "DynamoDB dedupe table")
	p.str(&cfg.Application, "application", "KCL_APPLICATION", "fleet name")
	p.str(&cfg.WorkerID, "worker-id", "WORKER_ID", "stable, fleet-unique worker id (default hostname-<id-suffix>)")
	p.str(&idSuffix, "id-suffix", "WORKER_ID_SUFFIX", "suffix of the default worker id; give each worker on one host its own")
	p.str(&cfg.MetricsAddr, "metrics-addr", "METRICS_ADDR", "address for /metrics, /healthz, /readyz (empty: off)")
	p.str(&cfg.Region, "region", "AWS_REGION", "AWS region")
	p.str(&routes, "routes", "ROUTES", `event type to stream map as JSON, e.g. {"purchase":"analytics-purchase","default":"analytics-other"} (default: the six standard types)`)
	p.str(&cfg.Pipeline.QuarantineStream, "quarantine-stream", "QUARANTINE_STREAM", "stream for records that can never be processed")
	p.str(&cfg.Pipeline.DLQStream, "dlq-stream", "DLQ_STREAM", "stream for records that could not be delivered")
	p.str(&cfg.Pipeline.LateStream, "late-stream", "LATE_STREAM", "stream for late events when -late-policy=stream")
	p.str(&latePolicy, "late-policy", "LATE_POLICY", "late events: flag (route with late=true) or stream (to -late-stream)")
	p.str(&o.KeysFile, "keys-file", "SIGNING_KEYS_FILE", "signing keys file: JSON [{id, secret (base64), retired_at}]")
	p.str(&keysJSON, "keys", "SIGNING_KEYS", "signing keys inline, same JSON as -keys-file")
	p.str(&o.KeysSecret, "keys-secret-arn", "SIGNING_KEYS_SECRET_ARN", "AWS Secrets Manager secret holding the signing keys (same JSON); takes precedence over -keys-file and -keys")
	p.dur(&o.KeysReload, "keys-reload", "SIGNING_KEYS_RELOAD", "how often to re-read the keys from -keys-secret-arn or -keys-file (0: never)")
	p.str(&dedupeLookup, "dedupe-lookup", "DEDUPE_LOOKUP", "no effect (kept so existing deployments start): the dedupe state of a shard is in memory and nothing is looked up per event")
	p.dur(&cfg.Pipeline.DedupeHorizon, "dedupe-horizon", "DEDUPE_HORIZON", "how long a customer's dedupe state lives after its last event; at least the raw stream's retention plus a day (default: exactly that, read at start)")
	p.str(&piiPaths, "pii-paths", "PII_PATHS", "comma-separated detail paths that must hold tokens, e.g. properties.email,customer_id; empty: PII policy off")
	p.str(&logLevel, "log-level", "LOG_LEVEL", "debug, info, warn or error")
	p.dur(&cfg.Pipeline.ReorderWindow, "reorder-window", "REORDER_WINDOW", "how long to hold an event waiting for a missing predecessor")
	p.dur(&cfg.ShardSync, "shard-sync", "SHARD_SYNC", "shard and lease sync period")
	p.dur(&cfg.LeaseDuration, "lease-duration", "LEASE_DURATION", "lease duration (failover time)")
	p.dur(&cfg.IdleTime, "idle-time", "IDLE_TIME", "wait after an empty GetRecords")
	p.dur(&cfg.RequestTimeout, "request-timeout", "REQUEST_TIMEOUT", "HTTP timeout of one AWS request")
	p.dur(&cfg.ShutdownGrace, "shutdown-grace", "SHUTDOWN_GRACE", "bound on finishing in-flight work after SIGTERM")
	p.dur(&cfg.CheckpointRetryBudget, "checkpoint-retry-budget", "CHECKPOINT_RETRY_BUDGET", "how long a checkpoint write that keeps failing transiently is retried before the shard stops here and its lease goes to a peer (default 3 lease durations; at least one)")
	p.dur(&cfg.TestLeaseClockSkew, "test-lease-clock-skew", "TEST_LEASE_CLOCK_SKEW", "TEST HOOK, never in production: offset the timestamps written into the lease table by this duration (e.g. -5m), as on a machine whose clock is off")
	p.bool(&cfg.StartAtLatest, "start-at-latest", "START_AT_LATEST", "start shards without a checkpoint at LATEST (default TRIM_HORIZON)")
	p.bool(&cfg.Pipeline.AggregateKeys, "aggregate-keys", "AGGREGATE_KEYS", "write a customer's consecutive events of one write as one KPL aggregated record on the analytics streams (readers must de-aggregate; see the README), so a hot customer is not capped at one event per round trip")
	p.str(&o.Profile.CPU, "cpuprofile", "CPU_PROFILE", "write a pprof CPU profile of the whole run to this file (for profiling; costs a little CPU)")
	p.str(&o.Profile.Mem, "memprofile", "MEM_PROFILE", "write a pprof allocation profile to this file when the worker stops")
	p.fs.BoolVar(&o.PrintConfig, "print-config", false, "print the effective configuration and exit")
	if err := p.fs.Parse(args); err != nil {
		return o, err // flag.ErrHelp, or a flag the command does not know
	}
	errs := p.errs
	if rest := p.fs.Args(); len(rest) > 0 {
		errs = append(errs, fmt.Errorf("unexpected arguments %q: the worker takes flags only", rest))
	}

	cfg.Pipeline.LatePolicy = processors.LatePolicy(latePolicy)
	switch dedupeLookup {
	case "all", "behind-cursor":
	default:
		errs = append(errs, fmt.Errorf("-dedupe-lookup %q: want all or behind-cursor (it has no effect any more)", dedupeLookup))
	}
	if piiPaths != "" {
		cfg.Pipeline.PIIPaths = strings.Split(piiPaths, ",")
	}
	if routes != "" {
		m := map[string]string{}
		if err := json.Unmarshal([]byte(routes), &m); err != nil {
			errs = append(errs, fmt.Errorf("-routes: %w", err))
		} else {
			cfg.Pipeline.DefaultStream = m["default"]
			delete(m, "default")
			cfg.Pipeline.Routes = m
		}
	}
	if logLevel != "" {
		lvl, err := zap.ParseAtomicLevel(logLevel)
		if err != nil {
			errs = append(errs, fmt.Errorf("-log-level: %w", err))
		} else {
			o.LogLevel = lvl
		}
	}
	if keysJSON != "" {
		keys, err := event.ParseKeys([]byte(keysJSON))
		if err != nil {
			errs = append(errs, fmt.Errorf("-keys: %w", err))
		}
		o.Keys = keys
	}
	if o.KeysSecret == "" && keysJSON == "" && o.KeysFile == "" {
		errs = append(errs, errors.New("no signing keys: set -keys-secret-arn (SIGNING_KEYS_SECRET_ARN), -keys-file (SIGNING_KEYS_FILE) or -keys (SIGNING_KEYS)"))
	}
	if o.KeysReload < 0 {
		errs = append(errs, fmt.Errorf("-keys-reload %s: want 0 (never) or more", o.KeysReload))
	}
	if cfg.WorkerID == "" {
		host, err := hostname()
		if err != nil || host == "" {
			host = "worker"
		}
		cfg.WorkerID = host + "-" + idSuffix
	}
	if err := cfg.Validate(); err != nil {
		errs = append(errs, err)
	}
	return o, errors.Join(errs...)
}

// parser registers flags with an environment fallback and collects the values that do not parse,
// so that parse reports them all at once.
type parser struct {
	fs   *flag.FlagSet
	env  func(string) (string, bool)
	errs []error
}

func (p *parser) str(dst *string, name, env, usage string) {
	if v, ok := p.env(env); ok {
		*dst = v
	}
	p.fs.StringVar(dst, name, *dst, usage+" ["+env+"]")
}

func (p *parser) dur(dst *time.Duration, name, env, usage string) {
	if v, ok := p.env(env); ok {
		d, err := time.ParseDuration(v)
		if err != nil {
			p.errs = append(p.errs, fmt.Errorf("%s=%q: %w", env, v, err))
		} else {
			*dst = d
		}
	}
	// The backquotes name the argument in -h ("-reorder-window duration"), as for a DurationVar.
	p.fs.Var(&durValue{dst: dst, name: name, errs: &p.errs}, name, usage+" ["+env+"] (`duration`)")
}

// bool reads env with strconv.ParseBool; an empty value is unset.
func (p *parser) bool(dst *bool, name, env, usage string) {
	if v, ok := p.env(env); ok && v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			p.errs = append(p.errs, fmt.Errorf("%s=%q: want true or false: %w", env, v, err))
		} else {
			*dst = b
		}
	}
	p.fs.Var(&boolValue{dst: dst, name: name, errs: &p.errs}, name, usage+" ["+env+"]")
}

// durValue is a duration flag that records a bad value instead of stopping the parse.
type durValue struct {
	dst  *time.Duration
	name string
	errs *[]error
}

func (v *durValue) String() string {
	if v == nil || v.dst == nil {
		return "0s"
	}
	return v.dst.String()
}

func (v *durValue) Set(s string) error {
	d, err := time.ParseDuration(s)
	if err != nil {
		*v.errs = append(*v.errs, fmt.Errorf("-%s %q: %w", v.name, s, err))
		return nil
	}
	*v.dst = d
	return nil
}

// boolValue is a boolean flag that records a bad value instead of stopping the parse.
type boolValue struct {
	dst  *bool
	name string
	errs *[]error
}

func (v *boolValue) IsBoolFlag() bool { return true }

func (v *boolValue) String() string {
	if v == nil || v.dst == nil {
		return "false"
	}
	return strconv.FormatBool(*v.dst)
}

func (v *boolValue) Set(s string) error {
	b, err := strconv.ParseBool(s)
	if err != nil {
		*v.errs = append(*v.errs, fmt.Errorf("-%s=%q: want true or false: %w", v.name, s, err))
		return nil
	}
	*v.dst = b
	return nil
}
