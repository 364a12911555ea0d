// Command worker runs one member of the KCL worker fleet: it leases shards of the raw stream, runs
// each record through verify, dedupe, reorder and route, and writes the per-type analytics streams.
//
// Configuration comes from flags, each with an environment variable fallback (shown in -help); AWS
// endpoints, region and credentials come from the SDK's own conventions (AWS_REGION,
// AWS_ENDPOINT_URL_KINESIS, AWS_ENDPOINT_URL_DYNAMODB, the default credential chain).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/kinesis-events/pipeline/event"
	"github.com/kinesis-events/pipeline/event/secretsmgr"
	"github.com/kinesis-events/pipeline/processors"
	"github.com/kinesis-events/pipeline/worker"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		os.Exit(1)
	}
}

func run() error {
	cfg := worker.Defaults()
	var routes, keysFile, keysJSON, keysSecret, piiPaths, logLevel, latePolicy string
	dedupeLookup := "all"
	var routeStreams bool
	keysReload := time.Minute
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	str(fs, &cfg.Stream, "stream", "RAW_STREAM", "raw Kinesis stream to consume")
	str(fs, &cfg.LeaseTable, "lease-table", "LEASE_TABLE", "DynamoDB lease and checkpoint table")
	str(fs, &cfg.DedupeTable, "dedupe-table", "DEDUPE_TABLE", "DynamoDB dedupe table")
	str(fs, &cfg.Application, "application", "KCL_APPLICATION", "fleet name")
	str(fs, &cfg.WorkerID, "worker-id", "WORKER_ID", "stable, fleet-unique worker id (default hostname-<id-suffix>)")
	str(fs, &cfg.IDSuffix, "id-suffix", "WORKER_ID_SUFFIX", "suffix of the default worker id; give each worker on one host its own")
	str(fs, &cfg.MetricsAddr, "metrics-addr", "METRICS_ADDR", "address for /metrics, /healthz, /readyz (empty: off)")
	str(fs, &cfg.Region, "region", "AWS_REGION", "AWS region")
	str(fs, &routes, "routes", "ROUTES", `event type to stream map as JSON, e.g. {"purchase":"analytics-purchase","default":"analytics-other"} (default: the six standard types)`)
	str(fs, &cfg.Pipeline.QuarantineStream, "quarantine-stream", "QUARANTINE_STREAM", "stream for records that can never be processed")
	str(fs, &cfg.Pipeline.DLQStream, "dlq-stream", "DLQ_STREAM", "stream for records that could not be delivered")
	str(fs, &cfg.Pipeline.LateStream, "late-stream", "LATE_STREAM", "stream for late events when -late-policy=stream")
	str(fs, &latePolicy, "late-policy", "LATE_POLICY", "late events: flag (route with late=true) or stream (to -late-stream)")
	str(fs, &keysFile, "keys-file", "SIGNING_KEYS_FILE", "signing keys file: JSON [{id, secret (base64), retired_at}]")
	str(fs, &keysJSON, "keys", "SIGNING_KEYS", "signing keys inline, same JSON as -keys-file")
	str(fs, &keysSecret, "keys-secret-arn", "SIGNING_KEYS_SECRET_ARN", "AWS Secrets Manager secret holding the signing keys (same JSON); takes precedence over -keys-file and -keys")
	dur(fs, &keysReload, "keys-reload", "SIGNING_KEYS_RELOAD", "how often to re-read the keys from -keys-secret-arn or -keys-file (0: never)")
	str(fs, &dedupeLookup, "dedupe-lookup", "DEDUPE_LOOKUP", "no effect (kept so existing deployments start): the dedupe state of a shard is in memory and nothing is looked up per event")
	dur(fs, &cfg.Pipeline.DedupeHorizon, "dedupe-horizon", "DEDUPE_HORIZON", "how long a customer's dedupe state lives after its last event; at least the raw stream's retention plus a day (default: exactly that, read at start)")
	str(fs, &piiPaths, "pii-paths", "PII_PATHS", "comma-separated detail paths that must hold tokens, e.g. properties.email,customer_id; empty: PII policy off")
	str(fs, &logLevel, "log-level", "LOG_LEVEL", "debug, info, warn or error")
	dur(fs, &cfg.Pipeline.ReorderWindow, "reorder-window", "REORDER_WINDOW", "how long to hold an event waiting for a missing predecessor")
	dur(fs, &cfg.ShardSync, "shard-sync", "SHARD_SYNC", "shard and lease sync period")
	dur(fs, &cfg.LeaseDuration, "lease-duration", "LEASE_DURATION", "lease duration (failover time)")
	dur(fs, &cfg.IdleTime, "idle-time", "IDLE_TIME", "wait after an empty GetRecords")
	dur(fs, &cfg.RequestTimeout, "request-timeout", "REQUEST_TIMEOUT", "HTTP timeout of one AWS request")
	dur(fs, &cfg.ShutdownGrace, "shutdown-grace", "SHUTDOWN_GRACE", "bound on finishing in-flight work after SIGTERM")
	dur(fs, &cfg.TestLeaseClockSkew, "test-lease-clock-skew", "TEST_LEASE_CLOCK_SKEW", "TEST HOOK, never in production: offset the timestamps written into the lease table by this duration (e.g. -5m), as on a machine whose clock is off")
	fs.BoolVar(&cfg.StartAtLatest, "start-at-latest", envBool("START_AT_LATEST"), "start shards without a checkpoint at LATEST (default TRIM_HORIZON) [START_AT_LATEST]")
	boolean(fs, &cfg.Pipeline.AggregateKeys, "aggregate-keys", "AGGREGATE_KEYS", "write a customer's consecutive events of one write as one KPL aggregated record on the analytics streams (readers must de-aggregate; see the README), so a hot customer is not capped at one event per round trip")
	fs.BoolVar(&routeStreams, "print-config", false, "print the effective configuration and exit")
	if err := fs.Parse(os.Args[1:]); err != nil {
		return err
	}
	if err := errors.Join(envErrs...); err != nil {
		return err
	}

	cfg.Pipeline.LatePolicy = processors.LatePolicy(latePolicy)
	switch dedupeLookup {
	case "all", "behind-cursor":
	default:
		return fmt.Errorf("-dedupe-lookup %q: want all or behind-cursor (it has no effect any more)", dedupeLookup)
	}
	if piiPaths != "" {
		cfg.Pipeline.PIIPaths = strings.Split(piiPaths, ",")
	}
	if routes != "" {
		m := map[string]string{}
		if err := json.Unmarshal([]byte(routes), &m); err != nil {
			return fmt.Errorf("-routes: %w", err)
		}
		cfg.Pipeline.DefaultStream = m["default"]
		delete(m, "default")
		cfg.Pipeline.Routes = m
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	if routeStreams {
		return json.NewEncoder(os.Stdout).Encode(cfg)
	}

	log, err := newLogger(logLevel)
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	var src event.KeySource
	reload := keysReload > 0
	switch {
	case keysSecret != "":
		sm, err := secretsmgr.NewClient(ctx, cfg.Region, cfg.RequestTimeout)
		if err != nil {
			return err
		}
		if src, err = secretsmgr.New(sm, secretsmgr.Config{SecretID: keysSecret}); err != nil {
			return err
		}
	case keysJSON != "":
		keys, err := event.ParseKeys([]byte(keysJSON))
		if err != nil {
			return err
		}
		src, reload = event.StaticKeys(keys), false
	case keysFile != "":
		src = event.FileKeys(keysFile)
	default:
		return fmt.Errorf("no signing keys: set -keys-secret-arn (SIGNING_KEYS_SECRET_ARN), -keys-file (SIGNING_KEYS_FILE) or -keys (SIGNING_KEYS)")
	}
	ring, err := event.NewKeyring()
	if err != nil {
		return err
	}
	if err := ring.Load(ctx, src); err != nil {
		return err
	}
	log.Info("signing keys loaded", zap.String("keys", ring.Describe()), zap.Duration("reload", keysReload), zap.Bool("reloading", reload))
	if reload {
		go func() {
			if err := event.Reload(ctx, ring, src, event.ReloadConfig{Every: keysReload, Logger: log.Named("keys")}); err != nil {
				log.Error("signing keys will not be reloaded", zap.Error(err))
			}
		}()
	}
	kc, ddb, err := worker.NewClients(ctx, cfg.Region, cfg.RequestTimeout)
	if err != nil {
		return err
	}
	return worker.Run(ctx, cfg, worker.Deps{Kinesis: kc, KCLKinesis: kc, DynamoDB: ddb, Keys: ring, Logger: log})
}

func newLogger(level string) (*zap.Logger, error) {
	zc := zap.NewProductionConfig()
	if level != "" {
		lvl, err := zap.ParseAtomicLevel(level)
		if err != nil {
			return nil, fmt.Errorf("-log-level: %w", err)
		}
		zc.Level = lvl
	}
	zc.Sampling = nil
	return zc.Build()
}

func str(fs *flag.FlagSet, p *string, name, env, usage string) {
	if v, ok := os.LookupEnv(env); ok {
		*p = v
	}
	fs.StringVar(p, name, *p, usage+" ["+env+"]")
}

// envErrs collects environment values that do not parse; run reports them all.
var envErrs []error

func dur(fs *flag.FlagSet, p *time.Duration, name, env, usage string) {
	if v, ok := os.LookupEnv(env); ok {
		d, err := time.ParseDuration(v)
		if err != nil {
			envErrs = append(envErrs, fmt.Errorf("%s=%q: %w", env, v, err))
		}
		*p = d
	}
	fs.DurationVar(p, name, *p, usage+" ["+env+"]")
}

// boolean is a bool flag whose environment fallback must parse (strconv.ParseBool).
func boolean(fs *flag.FlagSet, p *bool, name, env, usage string) {
	if v, ok := os.LookupEnv(env); ok {
		b, err := strconv.ParseBool(v)
		if err != nil {
			envErrs = append(envErrs, fmt.Errorf("%s=%q: want true or false", env, v))
		}
		*p = b
	}
	fs.BoolVar(p, name, *p, usage+" ["+env+"]")
}

func envBool(env string) bool {
	b, _ := strconv.ParseBool(os.Getenv(env))
	return b
}
