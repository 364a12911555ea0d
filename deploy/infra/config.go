package infra

import (
	"errors"
	"fmt"
	"math"
	"net/url"
	"regexp"
	"strconv"
	"strings"
)

// MetricsPort is where the worker serves /metrics, /healthz and /readyz.
const MetricsPort = 9090

// Config is everything the stack can be told from outside, through CDK context (`-c key=value`
// on the cdk CLI, or CDK_CONTEXT_JSON for `go run .`). The context key of each field is given in
// its comment. Stage, PIIPaths and an alarm subscriber (AlarmEmail or AlarmWebhookURL) have no
// default: synth fails until they are given.
type Config struct {
	// Stage (stage, required) prefixes every resource name ("prod" -> "prod-events-raw") and the
	// stack name, so stages share an account without colliding: lower-case letters, digits and
	// '-', starting with a letter, at most 12 characters.
	Stage string
	// PIIPaths (piiPaths, required; comma-separated or a JSON array) are the detail paths that
	// must hold tokens, e.g. "customer_id,properties.email". The forwarder (FORWARDER_PII_PATHS)
	// and the worker (PII_PATHS) get the same list; it must include customer_id, which the
	// producer contract requires to be a token.
	PIIPaths []string

	// RawShards (rawShards) is the shard count of the raw stream in provisioned mode, and in every
	// mode the upper bound of the worker fleet: a KCL worker without a lease has nothing to do.
	RawShards int
	// AnalyticsShards (analyticsShards) is the shard count of each per-type analytics stream
	// (provisioned mode).
	AnalyticsShards int
	// SideShards (sideShards) is the shard count of the quarantine, DLQ and late streams
	// (provisioned mode).
	SideShards int
	// OnDemand (onDemand) switches every stream to on-demand capacity; the shard counts then only
	// bound the fleet.
	OnDemand bool
	// RetentionHours (retentionHours) is the record retention of every stream, 24..8760. It
	// bounds how long the fleet may be down without losing data.
	RetentionHours int
	// AggregateKeys (aggregateKeys, default false) makes the worker write a customer's
	// consecutive events as KPL aggregated records on the analytics streams (AGGREGATE_KEYS), so
	// a hot customer is not capped at one event per round trip. Consumers must de-aggregate
	// (README, "Analytics record").
	AggregateKeys bool

	// Autoscaler (autoscaler, default true) deploys the stream autoscaler: a scheduled ECS task
	// running `kclctl autoscale run --once` every minute, which reshards every stream from its
	// write load and sets the fleet's task maximum to the raw stream's live shards. Off: the
	// shard counts change only by hand and the fleet's maximum stays RawShards. With OnDemand the
	// autoscaler only watches the streams (AWS sizes them) and still sets the fleet's maximum.
	Autoscaler bool
	// AutoscalerMaxShards (autoscalerMaxShards) bounds every stream the autoscaler sizes, and so
	// the fleet's maximum (a task per raw shard): the cost ceiling of a spike.
	AutoscalerMaxShards int

	// EventSourcePrefix (eventSourcePrefix), when set, restricts forwarding to events whose
	// `source` starts with it; events from other sources go to the unrouted-events queue.
	EventSourcePrefix string
	// ArchiveRetentionDays (archiveRetentionDays) is how long the bus's archive keeps every event
	// for replay, 1..3650.
	ArchiveRetentionDays int

	// ForwarderAssetDir (forwarderAssetDir) holds the Lambda `bootstrap` binary; relative paths
	// are resolved against the working directory of the CDK app (deploy/), so the default is the
	// Makefile's build output.
	ForwarderAssetDir string
	// ForwarderReservedConcurrency (forwarderReservedConcurrency) caps the forwarder so a burst
	// cannot starve the account's Lambda concurrency.
	ForwarderReservedConcurrency int

	// WorkerImageDir (workerImageDir) is the Docker build context holding the Dockerfile (the
	// repository root).
	WorkerImageDir string
	// CollectorImage (collectorImage) is the metrics sidecar's base image (the ADOT collector);
	// it is rebuilt into the CDK asset repository so tasks pull it through the ECR endpoints.
	CollectorImage string
	// CollectorImageDir (collectorImageDir) is the Docker build context of that rebuild
	// (deploy/collector, relative to deploy/).
	CollectorImageDir string
	// MinWorkers (minWorkers) is the fleet floor; the ceiling is RawShards.
	MinWorkers int
	// WorkerCPU (workerCpu, CPU units) and WorkerMemoryMiB (workerMemoryMiB) size each Fargate
	// task; they must be a valid Fargate combination.
	WorkerCPU       int
	WorkerMemoryMiB int
	// NatGateways (natGateways) is 0 (the default: private subnets reach AWS through VPC
	// endpoints only) or MaxAZs (one NAT gateway per AZ, for code that must reach the internet).
	NatGateways int

	// LogRetentionDays (logRetentionDays): one of 7, 14, 30, 90, 180, 365.
	LogRetentionDays int
	// AlarmEmail (alarmEmail) is subscribed to the alarm topic; AlarmWebhookURL
	// (alarmWebhookUrl, https) too. At least one of them is required.
	AlarmEmail      string
	AlarmWebhookURL string
	// IteratorAgeAlarmMillis (iteratorAgeAlarmMillis): alarm when the oldest unread record of the
	// raw stream is older than this.
	IteratorAgeAlarmMillis int
	// QuarantineAlarmRecords (quarantineAlarmRecords): alarm when more records than this reach the
	// quarantine stream in five minutes.
	QuarantineAlarmRecords int
	// ZeroTrafficAlarmMinutes (zeroTrafficAlarmMinutes): alarm when the raw stream takes no record
	// for this long, 5..1440.
	ZeroTrafficAlarmMinutes int
	// AsyncEventAgeAlarmSeconds (asyncEventAgeAlarmSeconds): alarm when an event waits this long
	// in Lambda's asynchronous queue before the forwarder runs it.
	AsyncEventAgeAlarmSeconds int
	// ForwarderDLQAgeAlarmSeconds (forwarderDlqAgeAlarmSeconds): alarm when the oldest message of
	// the forwarder's failure queue is older than this (it keeps messages 14 days).
	ForwarderDLQAgeAlarmSeconds int
	// BreakerOpenLogPattern (breakerOpenLogPattern) is the CloudWatch Logs filter pattern matching
	// the worker's log line for a breaker opening.
	BreakerOpenLogPattern string

	// AuditDataEvents (auditDataEvents) adds CloudTrail data events for every stream and every
	// forwarder invocation to the trail: a per-record audit, charged per event (deploy/README.md).
	AuditDataEvents bool
}

// MaxAZs is how many availability zones the VPC spans.
const MaxAZs = 2

// DefaultConfig returns the defaults. It is not valid on its own: Stage, PIIPaths and an alarm
// subscriber must be given.
func DefaultConfig() Config {
	return Config{
		RawShards:                    4,
		AnalyticsShards:              1,
		SideShards:                   1,
		RetentionHours:               24,
		Autoscaler:                   true,
		AutoscalerMaxShards:          64,
		ArchiveRetentionDays:         7,
		ForwarderAssetDir:            "../bin/forwarder-lambda",
		ForwarderReservedConcurrency: 50,
		WorkerImageDir:               "..",
		CollectorImage:               "public.ecr.aws/aws-observability/aws-otel-collector:v0.49.0",
		CollectorImageDir:            "collector",
		MinWorkers:                   2,
		WorkerCPU:                    512,
		WorkerMemoryMiB:              1024,
		NatGateways:                  0,
		LogRetentionDays:             30,
		IteratorAgeAlarmMillis:       60_000,
		QuarantineAlarmRecords:       100,
		ZeroTrafficAlarmMinutes:      30,
		AsyncEventAgeAlarmSeconds:    600,
		ForwarderDLQAgeAlarmSeconds:  3600,
		BreakerOpenLogPattern:        `{ ($.msg = "circuit breaker state change") && ($.to = "open") }`,
	}
}

// Name is a base resource name (names.go) with the stage prefix.
func (c Config) Name(base string) string { return c.Stage + "-" + base }

// StackName is the CloudFormation stack of the stage.
func (c Config) StackName() string { return StackID + "-" + c.Stage }

var (
	stageRE   = regexp.MustCompile(`^[a-z][a-z0-9-]{0,11}$`)
	piiPathRE = regexp.MustCompile(`^[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*$`)
)

// validRetention lists the log retentions the stack accepts (CloudWatch accepts more; these are
// the ones worth choosing between).
var validRetention = map[int]bool{7: true, 14: true, 30: true, 90: true, 180: true, 365: true}

// fargateMemoryOK reports whether Fargate accepts mem MiB with cpu units.
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

// Validate reports every problem with the configuration at once. It is pure.
func (c Config) Validate() error {
	var errs []error
	check := func(ok bool, format string, args ...any) {
		if !ok {
			errs = append(errs, fmt.Errorf(format, args...))
		}
	}
	check(c.Stage != "", "stage: required (e.g. -c stage=prod): it prefixes every resource name")
	check(c.Stage == "" || stageRE.MatchString(c.Stage), "stage %q: want lower-case letters, digits and '-', starting with a letter, at most 12 characters", c.Stage)
	check(len(c.PIIPaths) > 0, "piiPaths: required (e.g. -c piiPaths=customer_id,properties.email): the detail paths that must hold tokens, given to the forwarder and the worker")
	hasCustomer := false
	for _, p := range c.PIIPaths {
		check(piiPathRE.MatchString(p), "piiPaths: %q is not a dotted detail path", p)
		hasCustomer = hasCustomer || p == "customer_id"
	}
	check(len(c.PIIPaths) == 0 || hasCustomer, "piiPaths %v: must include customer_id, which the producer contract requires to be a token", c.PIIPaths)
	check(c.AlarmEmail != "" || c.AlarmWebhookURL != "", "alarmEmail or alarmWebhookUrl: required: alarms must reach someone")
	check(c.AlarmEmail == "" || strings.Count(c.AlarmEmail, "@") == 1 && !strings.ContainsAny(c.AlarmEmail, " ,"), "alarmEmail %q: not an address", c.AlarmEmail)
	if c.AlarmWebhookURL != "" {
		u, err := url.Parse(c.AlarmWebhookURL)
		check(err == nil && u.Scheme == "https" && u.Host != "", "alarmWebhookUrl %q: want an https URL", c.AlarmWebhookURL)
	}
	check(c.RawShards >= 1 && c.RawShards <= 500, "rawShards %d: want 1..500", c.RawShards)
	check(c.AnalyticsShards >= 1 && c.AnalyticsShards <= 500, "analyticsShards %d: want 1..500", c.AnalyticsShards)
	check(c.SideShards >= 1 && c.SideShards <= 500, "sideShards %d: want 1..500", c.SideShards)
	check(c.RetentionHours >= 24 && c.RetentionHours <= 8760, "retentionHours %d: want 24..8760", c.RetentionHours)
	check(c.ArchiveRetentionDays >= 1 && c.ArchiveRetentionDays <= 3650, "archiveRetentionDays %d: want 1..3650", c.ArchiveRetentionDays)
	check(c.ForwarderAssetDir != "", "forwarderAssetDir: empty")
	check(c.ForwarderReservedConcurrency >= 1, "forwarderReservedConcurrency %d: want >= 1", c.ForwarderReservedConcurrency)
	check(c.WorkerImageDir != "", "workerImageDir: empty")
	check(c.CollectorImage != "" && !strings.ContainsAny(c.CollectorImage, " \n"), "collectorImage %q: want an image reference", c.CollectorImage)
	check(c.CollectorImageDir != "", "collectorImageDir: empty")
	if c.Autoscaler {
		check(c.AutoscalerMaxShards >= 1 && c.AutoscalerMaxShards <= 500, "autoscalerMaxShards %d: want 1..500", c.AutoscalerMaxShards)
		check(c.AutoscalerMaxShards >= max(c.RawShards, c.AnalyticsShards, c.SideShards),
			"autoscalerMaxShards %d is below a stream's starting shards (rawShards %d, analyticsShards %d, sideShards %d)",
			c.AutoscalerMaxShards, c.RawShards, c.AnalyticsShards, c.SideShards)
	}
	check(c.MinWorkers >= 1, "minWorkers %d: want >= 1", c.MinWorkers)
	check(c.MinWorkers <= c.RawShards, "minWorkers %d exceeds rawShards %d: the extra workers would hold no lease", c.MinWorkers, c.RawShards)
	check(fargateMemoryOK(c.WorkerCPU, c.WorkerMemoryMiB), "workerCpu %d / workerMemoryMiB %d: not a Fargate size", c.WorkerCPU, c.WorkerMemoryMiB)
	check(c.NatGateways == 0 || c.NatGateways == MaxAZs, "natGateways %d: want 0 (VPC endpoints only) or %d (one per AZ)", c.NatGateways, MaxAZs)
	check(validRetention[c.LogRetentionDays], "logRetentionDays %d: want one of 7, 14, 30, 90, 180, 365", c.LogRetentionDays)
	check(c.IteratorAgeAlarmMillis >= 1000, "iteratorAgeAlarmMillis %d: want >= 1000", c.IteratorAgeAlarmMillis)
	check(c.QuarantineAlarmRecords >= 0, "quarantineAlarmRecords %d: want >= 0", c.QuarantineAlarmRecords)
	check(c.ZeroTrafficAlarmMinutes >= 5 && c.ZeroTrafficAlarmMinutes <= 1440, "zeroTrafficAlarmMinutes %d: want 5..1440", c.ZeroTrafficAlarmMinutes)
	check(c.AsyncEventAgeAlarmSeconds >= 60, "asyncEventAgeAlarmSeconds %d: want >= 60", c.AsyncEventAgeAlarmSeconds)
	check(c.ForwarderDLQAgeAlarmSeconds >= 60 && c.ForwarderDLQAgeAlarmSeconds < dlqRetentionDays*86400, "forwarderDlqAgeAlarmSeconds %d: want 60 s up to the queue's %d-day retention", c.ForwarderDLQAgeAlarmSeconds, dlqRetentionDays)
	check(c.BreakerOpenLogPattern != "", "breakerOpenLogPattern: empty")
	return errors.Join(errs...)
}

// ContextGetter reads one CDK context value; constructs.Node.TryGetContext fits.
type ContextGetter func(key string) any

// ConfigFromContext overlays the context values that are set on DefaultConfig and validates the
// result. Values may arrive as JSON numbers/booleans/arrays (cdk.json, CDK_CONTEXT_JSON) or as
// strings (`cdk -c key=value`).
func ConfigFromContext(get ContextGetter) (Config, error) {
	c := DefaultConfig()
	var errs []error
	ints := map[string]*int{
		"rawShards": &c.RawShards, "analyticsShards": &c.AnalyticsShards, "sideShards": &c.SideShards,
		"retentionHours": &c.RetentionHours, "archiveRetentionDays": &c.ArchiveRetentionDays,
		"forwarderReservedConcurrency": &c.ForwarderReservedConcurrency,
		"minWorkers":                   &c.MinWorkers, "workerCpu": &c.WorkerCPU, "workerMemoryMiB": &c.WorkerMemoryMiB,
		"natGateways": &c.NatGateways, "logRetentionDays": &c.LogRetentionDays,
		"iteratorAgeAlarmMillis": &c.IteratorAgeAlarmMillis, "quarantineAlarmRecords": &c.QuarantineAlarmRecords,
		"zeroTrafficAlarmMinutes": &c.ZeroTrafficAlarmMinutes, "asyncEventAgeAlarmSeconds": &c.AsyncEventAgeAlarmSeconds,
		"forwarderDlqAgeAlarmSeconds": &c.ForwarderDLQAgeAlarmSeconds,
		"autoscalerMaxShards":         &c.AutoscalerMaxShards,
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
		"stage": &c.Stage, "eventSourcePrefix": &c.EventSourcePrefix, "forwarderAssetDir": &c.ForwarderAssetDir,
		"workerImageDir": &c.WorkerImageDir, "collectorImage": &c.CollectorImage, "collectorImageDir": &c.CollectorImageDir, "alarmEmail": &c.AlarmEmail,
		"alarmWebhookUrl": &c.AlarmWebhookURL, "breakerOpenLogPattern": &c.BreakerOpenLogPattern,
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
	bools := map[string]*bool{"onDemand": &c.OnDemand, "auditDataEvents": &c.AuditDataEvents, "aggregateKeys": &c.AggregateKeys, "autoscaler": &c.Autoscaler}
	for key, dst := range bools {
		v := get(key)
		if v == nil {
			continue
		}
		b, err := toBool(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("context %s: %w", key, err))
			continue
		}
		*dst = b
	}
	if v := get("piiPaths"); v != nil {
		paths, err := toList(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("context piiPaths: %w", err))
		}
		c.PIIPaths = paths
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

// toList reads a comma-separated string or a JSON array of strings; blanks are dropped.
func toList(v any) ([]string, error) {
	var raw []string
	switch x := v.(type) {
	case string:
		raw = strings.Split(x, ",")
	case []any:
		for _, e := range x {
			s, ok := e.(string)
			if !ok {
				return nil, fmt.Errorf("want strings, got %T", e)
			}
			raw = append(raw, s)
		}
	default:
		return nil, fmt.Errorf("want a comma-separated string or an array of strings, got %T", v)
	}
	var out []string
	for _, s := range raw {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out, nil
}
