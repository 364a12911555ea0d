package processors

import (
	"errors"
	"fmt"
	"time"

	"github.com/kinesis-events/pipeline/event"
)

// LatePolicy says where a late event (one whose customer already had a later seq released) goes.
type LatePolicy string

const (
	// LateFlag routes a late event to its type's stream with Late=true.
	LateFlag LatePolicy = "flag"
	// LateStream routes a late event to Config.LateStream with Late=true.
	LateStream LatePolicy = "stream"
)

// Kinesis PutRecords limits.
const (
	MaxPutRecords    = 500
	MaxPutBytes      = 5 << 20
	maxKinesisRecord = 1 << 20 // data + partition key of one record
	maxPartitionKey  = 256
	defaultL1Size    = 1 << 16
)

// Config configures a Pipeline. The zero value of every duration and size means its default.
type Config struct {
	// Routes maps an event type to its analytics stream.
	Routes map[string]string
	// DefaultStream receives events whose type has no route. Empty: such events are quarantined
	// with event.ReasonUnroutable.
	DefaultStream string
	// QuarantineStream receives event.Quarantine records. Required.
	QuarantineStream string
	// DLQStream receives event.DeadLetter records. Required.
	DLQStream string
	// LateStream receives late events when LatePolicy is LateStream.
	LateStream string
	// LatePolicy, default LateFlag.
	LatePolicy LatePolicy

	// ReorderWindow is how long (in record arrival time) an event waits for a missing predecessor.
	// Zero means the default 30 s; a negative value disables waiting (gaps are released at once).
	ReorderWindow time.Duration
	// MaxHeldPerShard bounds the events held for reordering per shard; at the bound the oldest held
	// event is released with its gap recorded. Default 10,000.
	MaxHeldPerShard int

	// MaxHeldBytesPerShard bounds the bytes of the records held for reordering per shard; at the
	// bound the oldest held event is released with its gap recorded. Default 64 MiB.
	MaxHeldBytesPerShard int

	// DedupeHorizon is how long a customer's dedupe state (its last delivered seq, the seqs still
	// pending) lives after the customer's last event, and how long a quarantine mark lives: a
	// duplicate (a replay, a producer retry, a rewind of the checkpoint) is caught while it is
	// inside. It must be at least the raw stream's retention, which bounds every replay; the worker
	// derives it from the retention it reads at start, and refuses a shorter one. Default 8 days.
	DedupeHorizon time.Duration
	// L1Size is the per-shard recent event-id cache size. Default 65,536.
	L1Size int

	// BreakerFailures is the number of consecutive failed calls that opens a destination's breaker.
	// Default 5.
	BreakerFailures uint32
	// BreakerOpenTimeout is how long a breaker stays open before it lets one probe through.
	// Default 5 s.
	BreakerOpenTimeout time.Duration
	// BreakerHold is how long a destination may stay broken (no successful write) before the
	// records waiting for it are dead-lettered. Default 60 s. The DLQ itself is never given up on.
	BreakerHold time.Duration
	// RetryBase and RetryMax bound the jittered exponential backoff between attempts (writes and
	// dedupe store calls). Defaults 50 ms and 5 s.
	RetryBase time.Duration
	RetryMax  time.Duration

	// OutputRatePerShard limits records/s that one source shard writes to one destination stream.
	// 0 = unlimited. Kinesis accepts 1,000 records/s per destination shard.
	OutputRatePerShard float64
	// OutputBytesPerShard limits bytes/s that one source shard writes to one destination stream.
	// 0 = unlimited. Kinesis accepts 1 MiB/s per destination shard.
	OutputBytesPerShard int

	// AggregateKeys packs a customer's consecutive events of one write to one stream into one
	// Kinesis record in the KPL aggregated format (ordered.DefaultAggregation: at most 500 events,
	// 1 MiB with the key), so a hot customer is not capped at one event per PutRecords round trip.
	// Only the streams of analytics records (Routes, DefaultStream, LateStream); the quarantine and
	// DLQ streams stay plain. Off by default: a consumer that does not de-aggregate (a bare
	// GetRecords loop, a Lambda trigger without the aggregation library) would see aggregates
	// instead of analytics records (README, "Analytics record"). The rate limits above count an
	// aggregate once, as Kinesis does.
	AggregateKeys bool

	// PIIPaths turns the PII policy on when not empty: dotted detail paths (for example
	// "properties.email", "customer_id") whose values must be tokens, null or "" (event.PIIPolicy).
	// A verified event with anything else there is quarantined with event.ReasonRawPII, and no
	// quarantine record or dead letter keeps a raw value at these paths (see pii.go).
	PIIPaths []string
}

func (c *Config) withDefaults() Config {
	o := *c
	if o.LatePolicy == "" {
		o.LatePolicy = LateFlag
	}
	if o.ReorderWindow == 0 {
		o.ReorderWindow = 30 * time.Second
	}
	if o.ReorderWindow < 0 {
		o.ReorderWindow = 0
	}
	if o.MaxHeldPerShard == 0 {
		o.MaxHeldPerShard = 10000
	}
	if o.MaxHeldBytesPerShard == 0 {
		o.MaxHeldBytesPerShard = 64 << 20
	}
	if o.DedupeHorizon == 0 {
		o.DedupeHorizon = 8 * 24 * time.Hour
	}
	if o.L1Size == 0 {
		o.L1Size = defaultL1Size
	}
	if o.BreakerFailures == 0 {
		o.BreakerFailures = 5
	}
	if o.BreakerOpenTimeout == 0 {
		o.BreakerOpenTimeout = 5 * time.Second
	}
	if o.BreakerHold == 0 {
		o.BreakerHold = 60 * time.Second
	}
	if o.RetryBase == 0 {
		o.RetryBase = 50 * time.Millisecond
	}
	if o.RetryMax == 0 {
		o.RetryMax = 5 * time.Second
	}
	return o
}

// Validate reports a configuration that cannot work. Defaults are applied first, so a zero duration
// or size is valid.
func (c Config) Validate() error {
	d := c.withDefaults()
	var errs []error
	if d.QuarantineStream == "" {
		errs = append(errs, errors.New("QuarantineStream is required"))
	}
	if d.DLQStream == "" {
		errs = append(errs, errors.New("DLQStream is required"))
	}
	if len(d.Routes) == 0 && d.DefaultStream == "" {
		errs = append(errs, errors.New("no Routes and no DefaultStream: nothing can be routed"))
	}
	for typ, s := range d.Routes {
		if typ == "" || s == "" {
			errs = append(errs, fmt.Errorf("route %q -> %q: type and stream must be non-empty", typ, s))
		}
	}
	switch d.LatePolicy {
	case LateFlag:
	case LateStream:
		if d.LateStream == "" {
			errs = append(errs, errors.New("LatePolicy stream needs LateStream"))
		}
	default:
		errs = append(errs, fmt.Errorf("LatePolicy %q: want %q or %q", d.LatePolicy, LateFlag, LateStream))
	}
	if d.MaxHeldPerShard < 0 || d.MaxHeldBytesPerShard < 0 || d.L1Size < 0 {
		errs = append(errs, errors.New("MaxHeldPerShard, MaxHeldBytesPerShard and L1Size must not be negative"))
	}
	if d.DedupeHorizon < 24*time.Hour {
		errs = append(errs, fmt.Errorf("DedupeHorizon %s: want at least 24h (the shortest Kinesis retention)", d.DedupeHorizon))
	}
	if d.BreakerOpenTimeout < 0 || d.BreakerHold < 0 {
		errs = append(errs, errors.New("BreakerOpenTimeout and BreakerHold must not be negative"))
	}
	if d.RetryBase < 0 || d.RetryMax < d.RetryBase {
		errs = append(errs, fmt.Errorf("retry backoff %s..%s: want 0 < RetryBase <= RetryMax", d.RetryBase, d.RetryMax))
	}
	if d.OutputRatePerShard < 0 || (d.OutputRatePerShard > 0 && d.OutputRatePerShard < 1) {
		errs = append(errs, fmt.Errorf("OutputRatePerShard %v: want 0 (unlimited) or >= 1", d.OutputRatePerShard))
	}
	if d.OutputBytesPerShard < 0 {
		errs = append(errs, fmt.Errorf("OutputBytesPerShard %d: want 0 (unlimited) or > 0", d.OutputBytesPerShard))
	}
	if _, err := event.NewPIIPolicy(d.PIIPaths); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("processors config: %w", err)
	}
	return nil
}
