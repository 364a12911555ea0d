package worker

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/kinesis-events/pipeline/event"
	"github.com/kinesis-events/pipeline/internal/names"
	"github.com/kinesis-events/pipeline/processors"
)

// Config is everything one worker process needs. Zero values take the defaults in Defaults (Run
// applies them), except WorkerID, which is required.
type Config struct {
	// Application names the fleet; workers with the same application share leases.
	Application string
	Stream      string // raw stream
	LeaseTable  string
	DedupeTable string
	Region      string
	// WorkerID must be stable across restarts and unique within the fleet. Required: this package
	// reads no host name; cmd/worker defaults it to the host name plus -id-suffix ("hostname-0").
	WorkerID string

	// StartAtLatest starts shards without a checkpoint at LATEST instead of TRIM_HORIZON.
	StartAtLatest bool

	ShardSync     time.Duration // how often the shard list and free leases are checked
	LeaseDuration time.Duration // a lease not renewed for this long may be taken by another worker
	LeaseRenew    time.Duration // renewal period; well under LeaseDuration
	IdleTime      time.Duration // wait after an empty GetRecords
	MaxRecords    int           // per GetRecords call
	// CallTimeout bounds lease-store calls and readiness probes. RequestTimeout is the HTTP
	// backstop of every AWS request; it is long because a PutRecords that times out but landed is
	// retried and then arrives twice (Kinesis has no idempotent put), so it must only fire when the
	// endpoint is really gone.
	CallTimeout    time.Duration
	RequestTimeout time.Duration
	ShutdownGrace  time.Duration // bound on finishing in-flight work after SIGTERM
	// CheckpointRetryBudget bounds how long a checkpoint write that keeps failing transiently is
	// retried while the lease is held; past it the shard stops here and its lease is abandoned for
	// a peer (checkpoint.Config.CheckpointRetryBudget). At least LeaseDuration; 0 (also in
	// Defaults) means three lease durations, so it follows a lease duration set on its own.
	CheckpointRetryBudget time.Duration

	MetricsAddr string // ":9090"; "" disables the HTTP server

	// TestLeaseClockSkew is a test hook: it offsets the wall clock the lease store writes into the
	// lease table's timestamps (LeaseTimeout, LeaseRenewedAt, ClaimedAt, ...), as on a machine whose
	// clock is that far off, to prove that no lease decision depends on another machine's clock.
	// The store's own timing is unaffected (it runs on the monotonic clock). Never set it in
	// production: kclctl would show wrong expiry times.
	TestLeaseClockSkew time.Duration

	Pipeline processors.Config
}

// Defaults returns a Config with every default filled in; tuned so a new worker picks up shards in
// well under a second, not the library's one lease per 60 s.
func Defaults() Config {
	return Config{
		Application:    names.Application,
		Stream:         names.RawStream,
		LeaseTable:     names.LeaseTable,
		DedupeTable:    names.DedupeTable,
		Region:         "us-east-1",
		ShardSync:      250 * time.Millisecond,
		LeaseDuration:  10 * time.Second,
		LeaseRenew:     2 * time.Second,
		IdleTime:       250 * time.Millisecond,
		MaxRecords:     2000,
		CallTimeout:    3 * time.Second,
		RequestTimeout: 30 * time.Second,
		ShutdownGrace:  10 * time.Second,
		MetricsAddr:    ":9090",
		Pipeline: processors.Config{
			Routes:           event.DefaultRoutes(),
			DefaultStream:    names.OtherStream,
			QuarantineStream: names.QuarantineStream,
			DLQStream:        names.DLQStream,
			LateStream:       names.LateStream,
		},
	}
}

// withDefaults returns c with every zero field of the worker's own set from Defaults. The pipeline's
// zero fields take processors' defaults when the pipeline is built.
func (c Config) withDefaults() Config {
	d := Defaults()
	set := func(dst *string, v string) {
		if *dst == "" {
			*dst = v
		}
	}
	setD := func(dst *time.Duration, v time.Duration) {
		if *dst == 0 {
			*dst = v
		}
	}
	set(&c.Application, d.Application)
	set(&c.Stream, d.Stream)
	set(&c.LeaseTable, d.LeaseTable)
	set(&c.DedupeTable, d.DedupeTable)
	set(&c.Region, d.Region)
	setD(&c.ShardSync, d.ShardSync)
	setD(&c.LeaseDuration, d.LeaseDuration)
	setD(&c.LeaseRenew, d.LeaseRenew)
	setD(&c.IdleTime, d.IdleTime)
	setD(&c.CallTimeout, d.CallTimeout)
	setD(&c.RequestTimeout, d.RequestTimeout)
	setD(&c.ShutdownGrace, d.ShutdownGrace)
	if c.CheckpointRetryBudget == 0 {
		// Three lease durations: a DynamoDB blip or a throttled stretch is ridden out, while a
		// checkpoint that cannot land from this host moves the shard to a peer within half a minute.
		c.CheckpointRetryBudget = 3 * c.LeaseDuration
	}
	if c.MaxRecords == 0 {
		c.MaxRecords = d.MaxRecords
	}
	return c
}

// Validate reports every problem of c as it is, at once. It is pure: it applies no defaults (a zero
// field means its default and is valid, except WorkerID) and reads nothing from the machine.
func (c Config) Validate() error {
	var errs []error
	switch {
	case c.WorkerID == "":
		errs = append(errs, errors.New("worker id is required"))
	case strings.ContainsAny(c.WorkerID, " \n\t"):
		errs = append(errs, fmt.Errorf("worker id %q contains white space", c.WorkerID))
	}
	for _, f := range []struct {
		name string
		d    time.Duration
	}{
		{"shard sync", c.ShardSync}, {"lease duration", c.LeaseDuration}, {"lease renew period", c.LeaseRenew},
		{"idle time", c.IdleTime}, {"call timeout", c.CallTimeout}, {"request timeout", c.RequestTimeout},
		{"shutdown grace", c.ShutdownGrace}, {"checkpoint retry budget", c.CheckpointRetryBudget},
	} {
		if f.d < 0 {
			errs = append(errs, fmt.Errorf("%s %s must not be negative", f.name, f.d))
		}
	}
	if c.LeaseRenew > 0 && c.LeaseDuration > 0 && c.LeaseRenew >= c.LeaseDuration/2 {
		errs = append(errs, fmt.Errorf("lease renew period %s must be under half the lease duration %s", c.LeaseRenew, c.LeaseDuration))
	}
	if c.CheckpointRetryBudget > 0 && c.LeaseDuration > 0 && c.CheckpointRetryBudget < c.LeaseDuration {
		errs = append(errs, fmt.Errorf("checkpoint retry budget %s must be at least the lease duration %s", c.CheckpointRetryBudget, c.LeaseDuration))
	}
	if c.TestLeaseClockSkew < -24*time.Hour || c.TestLeaseClockSkew > 24*time.Hour {
		errs = append(errs, fmt.Errorf("test lease clock skew %s outside ±24h", c.TestLeaseClockSkew))
	}
	if c.MaxRecords < 0 || c.MaxRecords > 10000 {
		errs = append(errs, fmt.Errorf("max records %d outside 1..10000", c.MaxRecords))
	}
	if err := c.Pipeline.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("pipeline: %w", err))
	}
	return errors.Join(errs...)
}
