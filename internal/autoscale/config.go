package autoscale

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/kinesis-events/pipeline/internal/reshard"
)

// Policy is how every stream is sized. Loads are measured in shards: a stream's records/s over
// RecordsPerShard, or its bytes/s over BytesPerShard, whichever is more.
type Policy struct {
	// RecordsPerShard and BytesPerShard are a shard's write limits (Kinesis: 1,000 records/s and
	// 1 MiB/s; `make spike` enforces a tenth of that locally).
	RecordsPerShard float64
	BytesPerShard   float64
	// TargetUtilisation is what a reshard sizes for: load over capacity after it. The rest is
	// headroom for the next burst while the next reshard is not allowed yet.
	TargetUtilisation float64
	// ScaleOutAbove: scale out when the load over OutWindow is above this share of the capacity.
	ScaleOutAbove float64
	// ThrottledAbove: also scale out when more than this share of the write attempts over
	// OutWindow were throttled (and at least MinThrottledPerSecond were), though the load is below
	// ScaleOutAbove: bursts, or a hot shard. Only while the capacity is below ThrottledUpTo times
	// the shards the load needs at TargetUtilisation: past that it is a hot key or bursts, which
	// more shards do not fix and writers' retries absorb. At 1 (the default) the rule never adds
	// shards past the count a scale-in sizes for, so the two cannot undo each other at one load.
	// Throttles counted partly before the last reshard (within OutWindow of it) do not count.
	ThrottledAbove        float64
	MinThrottledPerSecond float64
	ThrottledUpTo         float64
	// ScaleInBelow: scale in when the busiest OutWindow within InWindow stayed below this share of
	// the capacity. Scale-in is slower than scale-out on purpose: the band between ScaleInBelow and
	// ScaleOutAbove (hysteresis), a longer window, a longer cool-down, and a reserve of calls.
	ScaleInBelow float64
	OutWindow    time.Duration
	InWindow     time.Duration
	// OutCooldown and InCooldown are the least time after the stream's last reshard before the
	// next scale-out or scale-in.
	OutCooldown time.Duration
	InCooldown  time.Duration
	// MinShards and MaxShards bound every stream.
	MinShards, MaxShards int
	// CallsPerDay is Kinesis's bound on UpdateShardCount calls per stream in a rolling 24 h (10).
	// A split/merge reshard counts as one call too, so the autoscaler behaves the same locally.
	CallsPerDay int
	// ReserveCalls are kept for scale-out: a scale-in needs more than this many calls left.
	ReserveCalls int
}

// WorkerPolicy sizes the worker fleet from the raw stream's open shards:
// desired = clamp(ceil(open shards / ShardsPerWorker), MinWorkers, MaxWorkers).
type WorkerPolicy struct {
	ShardsPerWorker        int
	MinWorkers, MaxWorkers int
}

// Workers is the worker count p wants for openShards open raw shards.
func (p WorkerPolicy) Workers(openShards int) int {
	n := (openShards + p.ShardsPerWorker - 1) / p.ShardsPerWorker
	return min(max(n, p.MinWorkers), p.MaxWorkers)
}

// Validate reports every problem of p.
func (p WorkerPolicy) Validate() error {
	var errs []error
	if p.ShardsPerWorker < 1 {
		errs = append(errs, fmt.Errorf("shards per worker %d: want at least 1", p.ShardsPerWorker))
	}
	if p.MinWorkers < 1 || p.MaxWorkers < p.MinWorkers {
		errs = append(errs, fmt.Errorf("workers %d..%d: want 1 <= min <= max", p.MinWorkers, p.MaxWorkers))
	}
	return errors.Join(errs...)
}

// ECSTarget names the ECS service whose Application Auto Scaling maximum follows the raw stream.
type ECSTarget struct {
	// ResourceID is "service/<cluster>/<service>". Empty: no ECS service is managed.
	ResourceID string
}

// Config configures a Scaler.
type Config struct {
	// Table is the lease table the state rows and the leader lease live in.
	Table string
	// RawStream is the stream the fleet consumes; the ECS maximum follows its open shards.
	RawStream string
	// Streams are every stream the autoscaler sizes, the raw stream included.
	Streams []string
	Policy  Policy
	Workers WorkerPolicy
	ECS     ECSTarget
	// AccountShardLimit bounds the open shards of the whole account. 0: ask Kinesis
	// (DescribeLimits), and size without an account bound where the endpoint lacks it.
	AccountShardLimit int
	// Interval is the time between two ticks of Run.
	Interval time.Duration
	// LeaderTTL is how long a leader lease lasts without renewal (at least 3 intervals). The
	// leader renews it every tick; another instance takes over once it ran out.
	LeaderTTL time.Duration
	// ID names this instance in the leader lease (e.g. host and pid).
	ID string
	// TickTimeout bounds one tick, reshards included.
	TickTimeout time.Duration
	// Method is how reshards are done: reshard.MethodAuto (UpdateShardCount, split/merge where
	// the endpoint lacks it) or one of the others.
	Method string
	// History is how many decisions per stream the state row keeps (the last reshards, refusals
	// and errors; the latest decision is kept apart).
	History int
	// ReshardPoll is how often a reshard checks whether the stream is ACTIVE again.
	ReshardPoll time.Duration
	// Fleet, when set, tells how the worker fleet stands on the raw stream (FleetView). The worker
	// maximum follows its live shards (a backlog in closed shards needs workers too); the raw
	// stream is not scaled in while closed shards are unfinished, and no stream is scaled in while
	// the fleet is behind. Nil: open shards only, and neither rule.
	Fleet func(ctx context.Context, stream string) (FleetView, error)

	Logger     *zap.Logger
	Registerer prometheus.Registerer
	Now        func() time.Time
}

// FleetView is how the worker fleet stands on the raw stream, from the lease table.
type FleetView struct {
	// Live counts the shards the fleet must read: open ones, and closed ones not yet finished
	// (SHARD_END); Draining counts the closed ones among them.
	Live, Draining int
	// Behind is the age of the oldest record the fleet has not processed (0: caught up).
	Behind time.Duration
}

// AWSPolicy is the policy for AWS's limits: 1,000 records/s and 1 MiB/s per shard, CloudWatch's
// one-minute periods, scale-in after 15 quiet minutes.
func AWSPolicy() Policy {
	return Policy{
		RecordsPerShard: 1000, BytesPerShard: 1 << 20,
		TargetUtilisation: 0.5, ScaleOutAbove: 0.8, ScaleInBelow: 0.25,
		ThrottledAbove: 0.01, MinThrottledPerSecond: 1, ThrottledUpTo: 1,
		OutWindow: 3 * time.Minute, InWindow: 15 * time.Minute,
		OutCooldown: 2 * time.Minute, InCooldown: 30 * time.Minute,
		MinShards: 1, MaxShards: 512, CallsPerDay: 10, ReserveCalls: 2,
	}
}

// LocalPolicy is the policy of `make spike`: a tenth of AWS's shard limits (what the fault proxy
// enforces), and every window compressed to fit a ten-minute run.
func LocalPolicy() Policy {
	p := AWSPolicy()
	p.RecordsPerShard, p.BytesPerShard = 100, 100<<10
	p.OutWindow, p.InWindow = 10*time.Second, 60*time.Second
	p.OutCooldown, p.InCooldown = 5*time.Second, 60*time.Second
	p.MaxShards = 64
	return p
}

// Defaults returns the configuration for AWS, without streams.
func Defaults() Config {
	return Config{
		Table: "kcl-leases", RawStream: "events-raw",
		Policy:   AWSPolicy(),
		Workers:  WorkerPolicy{ShardsPerWorker: 1, MinWorkers: 2, MaxWorkers: 512}, // as the deployed stack: at most a task per shard
		Interval: time.Minute, LeaderTTL: 5 * time.Minute, TickTimeout: 10 * time.Minute,
		Method: reshard.MethodAuto, History: 20, ReshardPoll: 5 * time.Second,
	}
}

func (c *Config) setDefaults() {
	d := Defaults()
	if c.Table == "" {
		c.Table = d.Table
	}
	if c.RawStream == "" {
		c.RawStream = d.RawStream
	}
	if c.Interval == 0 {
		c.Interval = d.Interval
	}
	if c.LeaderTTL == 0 {
		c.LeaderTTL = max(d.LeaderTTL, 3*c.Interval)
	}
	if c.TickTimeout == 0 {
		c.TickTimeout = d.TickTimeout
	}
	if c.Method == "" {
		c.Method = d.Method
	}
	if c.History == 0 {
		c.History = d.History
	}
	if c.ReshardPoll == 0 {
		c.ReshardPoll = d.ReshardPoll
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	if c.Registerer == nil {
		c.Registerer = prometheus.NewRegistry()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Validate reports every problem of c (after defaults).
func (c Config) Validate() error {
	c.setDefaults()
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if len(c.Streams) == 0 {
		add("autoscale: no streams to size")
	}
	seen := map[string]bool{}
	for _, s := range c.Streams {
		if s == "" || seen[s] {
			add("autoscale: stream %q is empty or listed twice", s)
		}
		seen[s] = true
	}
	if c.ID == "" {
		add("autoscale: ID (this instance's name in the leader lease) is required")
	}
	if c.Interval <= 0 || c.TickTimeout <= 0 || c.ReshardPoll <= 0 {
		add("autoscale: Interval, TickTimeout and ReshardPoll must be positive")
	}
	if c.LeaderTTL < 3*c.Interval {
		add("autoscale: LeaderTTL %v below 3 intervals (%v)", c.LeaderTTL, 3*c.Interval)
	}
	switch c.Method {
	case reshard.MethodAuto, reshard.MethodUniform, reshard.MethodSplitMerge:
	default:
		add("autoscale: method %q: want auto, uniform or split-merge", c.Method)
	}
	if c.History < 1 {
		add("autoscale: History %d: want at least 1", c.History)
	}
	if c.AccountShardLimit < 0 {
		add("autoscale: AccountShardLimit %d is negative", c.AccountShardLimit)
	}
	if err := c.Policy.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.Workers.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("autoscale: %w", err))
	}
	return errors.Join(errs...)
}

// Validate reports every problem of p.
func (p Policy) Validate() error {
	var errs []error
	add := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("autoscale policy: "+format, args...))
	}
	if p.RecordsPerShard <= 0 || p.BytesPerShard <= 0 {
		add("records and bytes per shard must be positive")
	}
	if !(0 < p.ScaleInBelow && p.ScaleInBelow < p.TargetUtilisation && p.TargetUtilisation < p.ScaleOutAbove) {
		add("want 0 < scale-in below (%v) < target utilisation (%v) < scale-out above (%v)", p.ScaleInBelow, p.TargetUtilisation, p.ScaleOutAbove)
	}
	if p.ThrottledAbove < 0 || p.ThrottledAbove >= 1 || p.MinThrottledPerSecond < 0 || p.ThrottledUpTo < 1 {
		add("throttled above %v must be in [0, 1), min throttled/s %v not negative, throttled up to %v at least 1",
			p.ThrottledAbove, p.MinThrottledPerSecond, p.ThrottledUpTo)
	}
	if p.OutWindow <= 0 || p.InWindow < p.OutWindow {
		add("want 0 < out window (%v) <= in window (%v)", p.OutWindow, p.InWindow)
	}
	if p.OutCooldown < 0 || p.InCooldown < p.OutCooldown {
		add("want 0 <= out cool-down (%v) <= in cool-down (%v): scale in slower than out", p.OutCooldown, p.InCooldown)
	}
	if p.MinShards < 1 || p.MaxShards < p.MinShards {
		add("shards %d..%d: want 1 <= min <= max", p.MinShards, p.MaxShards)
	}
	if p.CallsPerDay < 1 || p.ReserveCalls < 0 || p.ReserveCalls >= p.CallsPerDay {
		add("calls per day %d and reserve %d: want 0 <= reserve < calls", p.CallsPerDay, p.ReserveCalls)
	}
	return errors.Join(errs...)
}
