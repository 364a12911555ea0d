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

// withDefaults returns c with every zero duration and size set to its default: the one place the
// defaults are defined. A negative ReorderWindow stays negative (no waiting), so applying it twice
// changes nothing.
func (c Config) withDefaults() Config {
	if c.LatePolicy == "" {
		c.LatePolicy = LateFlag
	}
	if c.ReorderWindow == 0 {
		c.ReorderWindow = 30 * time.Second
	}
	if c.MaxHeldPerShard == 0 {
		c.MaxHeldPerShard = 10000
	}
	if c.MaxHeldBytesPerShard == 0 {
		c.MaxHeldBytesPerShard = 64 << 20
	}
	if c.DedupeHorizon == 0 {
		c.DedupeHorizon = 8 * 24 * time.Hour
	}
	if c.L1Size == 0 {
		c.L1Size = defaultL1Size
	}
	if c.BreakerFailures == 0 {
		c.BreakerFailures = 5
	}
	if c.BreakerOpenTimeout == 0 {
		c.BreakerOpenTimeout = 5 * time.Second
	}
	if c.BreakerHold == 0 {
		c.BreakerHold = 60 * time.Second
	}
	if c.RetryBase == 0 {
		c.RetryBase = 50 * time.Millisecond
	}
	if c.RetryMax == 0 {
		c.RetryMax = 5 * time.Second
	}
	return c
}

// Validate reports every problem of c as it is, at once. It is pure and applies no defaults: a zero
// duration or size means its default and is valid. New validates c with its defaults applied, so a
// bound that only conflicts with another's default (RetryBase above the default RetryMax) is
// reported there.
func (c Config) Validate() error {
	var errs []error
	if c.QuarantineStream == "" {
		errs = append(errs, errors.New("QuarantineStream is required"))
	}
	if c.DLQStream == "" {
		errs = append(errs, errors.New("DLQStream is required"))
	}
	if len(c.Routes) == 0 && c.DefaultStream == "" {
		errs = append(errs, errors.New("no Routes and no DefaultStream: nothing can be routed"))
	}
	for typ, s := range c.Routes {
		if typ == "" || s == "" {
			errs = append(errs, fmt.Errorf("route %q -> %q: type and stream must be non-empty", typ, s))
		}
	}
	switch c.LatePolicy {
	case "", LateFlag:
	case LateStream:
		if c.LateStream == "" {
			errs = append(errs, errors.New("LatePolicy stream needs LateStream"))
		}
	default:
		errs = append(errs, fmt.Errorf("LatePolicy %q: want %q or %q", c.LatePolicy, LateFlag, LateStream))
	}
	if c.MaxHeldPerShard < 0 || c.MaxHeldBytesPerShard < 0 || c.L1Size < 0 {
		errs = append(errs, errors.New("MaxHeldPerShard, MaxHeldBytesPerShard and L1Size must not be negative"))
	}
	if c.DedupeHorizon != 0 && c.DedupeHorizon < 24*time.Hour {
		errs = append(errs, fmt.Errorf("DedupeHorizon %s: want at least 24h (the shortest Kinesis retention)", c.DedupeHorizon))
	}
	if c.BreakerOpenTimeout < 0 || c.BreakerHold < 0 {
		errs = append(errs, errors.New("BreakerOpenTimeout and BreakerHold must not be negative"))
	}
	if c.RetryBase < 0 || c.RetryMax < 0 || (c.RetryBase > 0 && c.RetryMax > 0 && c.RetryMax < c.RetryBase) {
		errs = append(errs, fmt.Errorf("retry backoff %s..%s: want 0 < RetryBase <= RetryMax", c.RetryBase, c.RetryMax))
	}
	if c.OutputRatePerShard < 0 || (c.OutputRatePerShard > 0 && c.OutputRatePerShard < 1) {
		errs = append(errs, fmt.Errorf("OutputRatePerShard %v: want 0 (unlimited) or >= 1", c.OutputRatePerShard))
	}
	if c.OutputBytesPerShard < 0 {
		errs = append(errs, fmt.Errorf("OutputBytesPerShard %d: want 0 (unlimited) or > 0", c.OutputBytesPerShard))
	}
	if _, err := event.NewPIIPolicy(c.PIIPaths); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("processors config: %w", err)
	}
	return nil
}
