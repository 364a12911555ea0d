package checkpoint

import (
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/kinesis-events/pipeline/internal/names"
)

// Config configures a Store. Zero values take the defaults documented per field.
type Config struct {
	// Table is the lease table (hash key ShardID, string). Default names.LeaseTable.
	Table string
	// WorkerID identifies this worker in AssignedTo. Required; must be unique per live process.
	WorkerID string
	// Stream is the Kinesis stream whose shards are leased. Required.
	Stream string
	// LeaseDuration is how long a lease lives without renewal. Default 10s. Renew (KCL
	// LeaseRefreshWaitTime) at most every LeaseDuration/3.
	LeaseDuration time.Duration
	// CallTimeout bounds every DynamoDB and Kinesis call. Default 3s.
	CallTimeout time.Duration
	// ScanInterval is how old the table scan behind fair-share decisions may get. Default
	// LeaseDuration/4.
	ScanInterval time.Duration
	// LineageRefresh is how old the ListShards lineage cache may get while a child waits on a
	// parent that may have left the stream. Unknown shard ids refresh it at once (at most every
	// CallTimeout). Default 30s.
	LineageRefresh time.Duration
	// HandOffTimeout is how long a processor that is not inside a batch (Store.Busy) may take to
	// answer a hand-off request (ErrLeaseHandedOff) before the store releases the lease itself. A
	// batch in flight is never cut: the period starts again when it ends. Default LeaseDuration.
	HandOffTimeout time.Duration
	// ClaimTTL is how long a ClaimRequest reserves a lease for its claimer. Default 2*LeaseDuration.
	ClaimTTL time.Duration
	// CheckpointRetryBudget bounds how long Checkpoint retries a write that keeps failing
	// transiently (timeouts, throttling, 5xx) while the lease is held: past it Checkpoint returns an
	// error wrapping ErrCheckpointStuck, and the processor stops the shard and abandons its lease
	// for a peer. Renewals that land keep a lease held however long checkpoints fail, so without a
	// bound a shard could stay on a worker that checkpoints nothing. Default 3*LeaseDuration; at
	// least LeaseDuration when set (shorter would stop shards over blips that renewals ride out).
	CheckpointRetryBudget time.Duration
	// BenchMax caps how long a worker keeps off a shard it abandoned (Abandon). The first abandon
	// benches the shard for one LeaseDuration; each further abandon of the same shard by this
	// worker, with no peer abandoning it in between and no checkpoint of it landing here, doubles
	// that, up to BenchMax. Default 10m; at least LeaseDuration when set.
	BenchMax time.Duration
	// TableWaitTimeout bounds waiting for the table to become ACTIVE after creating it. Default 60s.
	TableWaitTimeout time.Duration
	// DisableBalancing turns fair-share limits, hand-offs and claims off: every free lease is taken.
	DisableBalancing bool
	// Logger defaults to zap.NewNop().
	Logger *zap.Logger
	// Registerer receives the store's metrics. Default: a private registry (metrics not exported).
	Registerer prometheus.Registerer
	// Now defaults to time.Now.
	Now func() time.Time
	// OnLeaseLost, if set, is called (outside the store's locks) whenever a held lease's context is
	// cancelled: lost, handed off, or released. cause is the context cause.
	OnLeaseLost func(shardID string, cause error)
}

// defaultLeaseDuration is Config.LeaseDuration's default (Validate judges the bounds that depend on
// it against the effective value).
const defaultLeaseDuration = 10 * time.Second

// withDefaults returns c with every zero field set to its default: the one place they are defined.
func (c Config) withDefaults() Config {
	if c.Table == "" {
		c.Table = names.LeaseTable
	}
	if c.LeaseDuration == 0 {
		c.LeaseDuration = defaultLeaseDuration
	}
	if c.CallTimeout == 0 {
		c.CallTimeout = 3 * time.Second
	}
	if c.ScanInterval == 0 {
		c.ScanInterval = c.LeaseDuration / 4
	}
	if c.LineageRefresh == 0 {
		c.LineageRefresh = 30 * time.Second
	}
	if c.HandOffTimeout == 0 {
		c.HandOffTimeout = c.LeaseDuration
	}
	if c.ClaimTTL == 0 {
		c.ClaimTTL = 2 * c.LeaseDuration
	}
	if c.CheckpointRetryBudget == 0 {
		c.CheckpointRetryBudget = 3 * c.LeaseDuration
	}
	if c.BenchMax == 0 {
		c.BenchMax = 10 * time.Minute
	}
	if c.TableWaitTimeout == 0 {
		c.TableWaitTimeout = 60 * time.Second
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
	return c
}

// Validate reports every invalid field at once. It is pure and applies no defaults (a zero field
// means its default and is valid); New applies them, then validates.
func (c Config) Validate() error {
	var errs []error
	if c.WorkerID == "" {
		errs = append(errs, errors.New("WorkerID is required"))
	}
	if c.Stream == "" {
		errs = append(errs, errors.New("stream name (Stream) is required"))
	}
	for name, d := range map[string]time.Duration{
		"LeaseDuration": c.LeaseDuration, "CallTimeout": c.CallTimeout, "ScanInterval": c.ScanInterval,
		"LineageRefresh": c.LineageRefresh, "HandOffTimeout": c.HandOffTimeout, "ClaimTTL": c.ClaimTTL,
		"TableWaitTimeout": c.TableWaitTimeout, "CheckpointRetryBudget": c.CheckpointRetryBudget, "BenchMax": c.BenchMax,
	} {
		if d < 0 {
			errs = append(errs, fmt.Errorf("%s must not be negative, got %v", name, d))
		}
	}
	if c.LeaseDuration > 0 && c.CallTimeout > 0 && c.CallTimeout >= c.LeaseDuration {
		errs = append(errs, fmt.Errorf("CallTimeout (%v) must be shorter than LeaseDuration (%v)", c.CallTimeout, c.LeaseDuration))
	}
	// A zero LeaseDuration means its default; the bounds below compare against the effective one.
	lease := c.LeaseDuration
	if lease <= 0 {
		lease = defaultLeaseDuration
	}
	if c.CheckpointRetryBudget > 0 && c.CheckpointRetryBudget < lease {
		errs = append(errs, fmt.Errorf("CheckpointRetryBudget (%v) must be at least LeaseDuration (%v)", c.CheckpointRetryBudget, lease))
	}
	if c.BenchMax > 0 && c.BenchMax < lease {
		errs = append(errs, fmt.Errorf("BenchMax (%v) must be at least LeaseDuration (%v)", c.BenchMax, lease))
	}
	if len(errs) > 0 {
		return fmt.Errorf("checkpoint config: %w", errors.Join(errs...))
	}
	return nil
}
