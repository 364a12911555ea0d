package infra

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Event types that get their own analytics stream. Any other type goes to
// the default stream (StreamOther). Names match the rest of the project.
var EventTypes = []string{
	"page_view", "product_view", "add_to_cart", "remove_from_cart", "checkout_started", "purchase",
}

// Stream and table names shared with the worker, forwarder and local stack.
const (
	StreamRaw        = "events-raw"
	StreamQuarantine = "events-quarantine"
	StreamDLQ        = "events-dlq"
	StreamLate       = "events-late"
	StreamOther      = "analytics-other"
	// MetricsPort is where the worker serves /metrics, /healthz and /readyz.
	MetricsPort = 9090
)

// AnalyticsStreamName is the per-type analytics stream for an event type.
func AnalyticsStreamName(eventType string) string { return "analytics-" + eventType }

// Config is everything the stack can be told from outside, through CDK
// context (`-c key=value` on the cdk CLI, or CDK_CONTEXT_JSON for `go run .`).
// The context key of each field is given in its comment.
type Config struct {
	// RawShards (rawShards) is the shard count of the raw stream in provisioned
	// mode, and in every mode the upper bound of the worker fleet: a KCL worker
	// without a lease has nothing to do.
	RawShards int
	// AnalyticsShards (analyticsShards) is the shard count of each per-type
	// analytics stream (provisioned mode).
	AnalyticsShards int
	// SideShards (sideShards) is the shard count of the quarantine, DLQ and
	// late streams (provisioned mode).
	SideShards int
	// OnDemand (onDemand) switches every stream to on-demand capacity; the shard
	// counts then only bound the fleet.
	OnDemand bool
	// RetentionHours (retentionHours) is the record retention of every stream,
	// 24..8760. It bounds how long the fleet may be down without losing data.
	RetentionHours int

	// LeaseTable (leaseTable) and DedupeTable (dedupeTable) name the DynamoDB tables.
	LeaseTable  string
	DedupeTable string

	// EventBusName (eventBusName) is the custom EventBridge bus producers put to.
	EventBusName string
	// EventSourcePrefix (eventSourcePrefix), when set, restricts the forwarding
	// rule to events whose `source` starts with it.
	EventSourcePrefix string

	// ForwarderAssetDir (forwarderAssetDir) holds the Lambda `bootstrap`
	// binary; relative paths are resolved against the working directory of the
	// CDK app (deploy/), so the default is the Makefile's build output.
	ForwarderAssetDir string
	// ForwarderReservedConcurrency (forwarderReservedConcurrency) caps the
	// forwarder so a burst cannot starve the account's Lambda concurrency.
	ForwarderReservedConcurrency int

	// WorkerImageDir (workerImageDir) is the Docker build context holding the
	// Dockerfile (the repository root).
	WorkerImageDir string
	// MinWorkers (minWorkers) is the fleet floor; the ceiling is RawShards.
	MinWorkers int
	// WorkerCPU (workerCpu, CPU units) and WorkerMemoryMiB (workerMemoryMiB)
	// size each Fargate task; they must be a valid Fargate combination.
	WorkerCPU       int
	WorkerMemoryMiB int
	// NatGateways (natGateways) is how many NAT gateways the VPC gets (1..2).
	NatGateways int

	// LogRetentionDays (logRetentionDays): one of 7, 14, 30, 90, 180, 365.
	LogRetentionDays int
	// AlarmEmail (alarmEmail), when set, is subscribed to the alarm topic.
	AlarmEmail string
	// IteratorAgeAlarmMillis (iteratorAgeAlarmMillis): alarm when the oldest
	// unread record of the raw stream is older than this.
	IteratorAgeAlarmMillis int
	// QuarantineAlarmRecords (quarantineAlarmRecords): alarm when more records
	// than this reach the quarantine stream in five minutes.
	QuarantineAlarmRecords int
	// BreakerOpenLogPattern (breakerOpenLogPattern) is the CloudWatch Logs
	// filter pattern matching the worker's log line for a breaker opening.
	BreakerOpenLogPattern string
}

// DefaultConfig returns the configuration `make synth` uses when no context is given.
func DefaultConfig() Config {
	return Config{
		RawShards:                    4,
		AnalyticsShards:              1,
		SideShards:                   1,
		RetentionHours:               24,
		LeaseTable:                   "kcl-leases",
		DedupeTable:                  "events-dedupe",
		EventBusName:                 "customer-events",
		ForwarderAssetDir:            "../bin/forwarder-lambda",
		ForwarderReservedConcurrency: 50,
		WorkerImageDir:               "..",
		MinWorkers:                   2,
		WorkerCPU:                    512,
		WorkerMemoryMiB:              1024,
		NatGateways:                  1,
		LogRetentionDays:             30,
		IteratorAgeAlarmMillis:       60_000,
		QuarantineAlarmRecords:       100,
		BreakerOpenLogPattern:        `{ ($.msg = "circuit breaker state change") && ($.to = "open") }`,
	}
}

// validRetention lists the log retentions the stack accepts (CloudWatch accepts
// more; these are the ones worth choosing between).
var validRetention = map[int]bool{7: true, 14: true, 30: true, 90: true, 180: true, 365: true}

// fargateMemory lists, per CPU value, the memory sizes (MiB) Fargate accepts.
func fargateMemoryOK(cpu, mem int) bool {
	switch cpu {
	case 256:
		return mem == 512 || mem == 1024 || mem == 2048
	case 512:
		return mem >= 1024 && mem <= 4096 && mem%1024 == 0
	case 1024:
		return mem >= 2048 && mem <= 8192 && mem%1024 == 0
	case 2048:
		return mem >= 4096 && mem <= 16384 && mem%1024 == 0
	case 4096:
		return mem >= 8192 && mem <= 30720 && mem%1024 == 0
	}
	return false
}

// Validate reports every problem with the configuration at once.
func (c Config) Validate() error {
	var errs []error
	check := func(ok bool, format string, args ...any) {
		if !ok {
			errs = append(errs, fmt.Errorf(format, args...))
		}
	}
	check(c.RawShards >= 1 && c.RawShards <= 500, "rawShards %d: want 1..500", c.RawShards)
	check(c.AnalyticsShards >= 1 && c.AnalyticsShards <= 500, "analyticsShards %d: want 1..500", c.AnalyticsShards)
	check(c.SideShards >= 1 && c.SideShards <= 500, "sideShards %d: want 1..500", c.SideShards)
	check(c.RetentionHours >= 24 && c.RetentionHours <= 8760, "retentionHours %d: want 24..8760", c.RetentionHours)
	check(c.LeaseTable != "", "leaseTable: empty")
	check(c.DedupeTable != "", "dedupeTable: empty")
	check(c.LeaseTable != c.DedupeTable, "leaseTable and dedupeTable are both %q", c.LeaseTable)
	check(c.EventBusName != "" && c.EventBusName != "default", "eventBusName %q: want a custom bus name", c.EventBusName)
	check(c.ForwarderAssetDir != "", "forwarderAssetDir: empty")
	check(c.ForwarderReservedConcurrency >= 1, "forwarderReservedConcurrency %d: want >= 1", c.ForwarderReservedConcurrency)
	check(c.WorkerImageDir != "", "workerImageDir: empty")
	check(c.MinWorkers >= 1, "minWorkers %d: want >= 1", c.MinWorkers)
	check(c.MinWorkers <= c.RawShards, "minWorkers %d exceeds rawShards %d: the extra workers would hold no lease", c.MinWorkers, c.RawShards)
	check(fargateMemoryOK(c.WorkerCPU, c.WorkerMemoryMiB), "workerCpu %d / workerMemoryMiB %d: not a Fargate size", c.WorkerCPU, c.WorkerMemoryMiB)
	check(c.NatGateways >= 1 && c.NatGateways <= 2, "natGateways %d: want 1..2", c.NatGateways)
	check(validRetention[c.LogRetentionDays], "logRetentionDays %d: want one of 7, 14, 30, 90, 180, 365", c.LogRetentionDays)
	check(c.AlarmEmail == "" || strings.Contains(c.AlarmEmail, "@"), "alarmEmail %q: not an address", c.AlarmEmail)
	check(c.IteratorAgeAlarmMillis >= 1000, "iteratorAgeAlarmMillis %d: want >= 1000", c.IteratorAgeAlarmMillis)
	check(c.QuarantineAlarmRecords >= 0, "quarantineAlarmRecords %d: want >= 0", c.QuarantineAlarmRecords)
	check(c.BreakerOpenLogPattern != "", "breakerOpenLogPattern: empty")
	return errors.Join(errs...)
}

// ContextGetter reads one CDK context value; constructs.Node.TryGetContext fits.
type ContextGetter func(key string) any

// ConfigFromContext overlays the context values that are set on DefaultConfig
// and validates the result. Values may arrive as JSON numbers/booleans
// (cdk.json, CDK_CONTEXT_JSON) or as strings (`cdk -c key=value`).
func ConfigFromContext(get ContextGetter) (Config, error) {
	c := DefaultConfig()
	var errs []error
	ints := map[string]*int{
		"rawShards": &c.RawShards, "analyticsShards": &c.AnalyticsShards, "sideShards": &c.SideShards,
		"retentionHours": &c.RetentionHours, "forwarderReservedConcurrency": &c.ForwarderReservedConcurrency,
		"minWorkers": &c.MinWorkers, "workerCpu": &c.WorkerCPU, "workerMemoryMiB": &c.WorkerMemoryMiB,
		"natGateways": &c.NatGateways, "logRetentionDays": &c.LogRetentionDays,
		"iteratorAgeAlarmMillis": &c.IteratorAgeAlarmMillis, "quarantineAlarmRecords": &c.QuarantineAlarmRecords,
	}
	for key, dst := range ints {
		v := get(key)
		if v == nil {
			continue
		}
		n, err := toInt(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("context %s: %w", key, err))
			continue
		}
		*dst = n
	}
	strs := map[string]*string{
		"leaseTable": &c.LeaseTable, "dedupeTable": &c.DedupeTable, "eventBusName": &c.EventBusName,
		"eventSourcePrefix": &c.EventSourcePrefix, "forwarderAssetDir": &c.ForwarderAssetDir,
		"workerImageDir": &c.WorkerImageDir, "alarmEmail": &c.AlarmEmail,
		"breakerOpenLogPattern": &c.BreakerOpenLogPattern,
	}
	for key, dst := range strs {
		v := get(key)
		if v == nil {
			continue
		}
		s, ok := v.(string)
		if !ok {
			errs = append(errs, fmt.Errorf("context %s: want a string, got %T", key, v))
			continue
		}
		*dst = s
	}
	if v := get("onDemand"); v != nil {
		b, err := toBool(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("context onDemand: %w", err))
		}
		c.OnDemand = b
	}
	if err := errors.Join(errs...); err != nil {
		return Config{}, err
	}
	if err := c.Validate(); err != nil {
		return Config{}, fmt.Errorf("invalid deploy configuration: %w", err)
	}
	return c, nil
}

func toInt(v any) (int, error) {
	switch x := v.(type) {
	case float64:
		if x != math.Trunc(x) {
			return 0, fmt.Errorf("%v is not a whole number", x)
		}
		return int(x), nil
	case int:
		return x, nil
	case string:
		n, err := strconv.Atoi(strings.TrimSpace(x))
		if err != nil {
			return 0, fmt.Errorf("%q is not a whole number", x)
		}
		return n, nil
	}
	return 0, fmt.Errorf("want a number, got %T", v)
}

func toBool(v any) (bool, error) {
	switch x := v.(type) {
	case bool:
		return x, nil
	case string:
		b, err := strconv.ParseBool(strings.TrimSpace(x))
		if err != nil {
			return false, fmt.Errorf("%q is not true/false", x)
		}
		return b, nil
	}
	return false, fmt.Errorf("want a boolean, got %T", v)
}
