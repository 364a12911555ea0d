package kclctl

import "time"

// Shard states shown by `kclctl checkpoints`.
const (
	StateOpen     = "open"      // the shard still takes writes
	StateClosed   = "closed"    // split or merged away; records remain to be processed or marked done
	StateShardEnd = "SHARD_END" // every record processed and the lease table says so
	StateGone     = "gone"      // a lease row whose shard is no longer in the stream (past retention)
)

// Checkpoint values that are positions rather than sequence numbers (the KCL's sentinels).
const (
	CheckpointTrimHorizon = "TRIM_HORIZON"
	CheckpointLatest      = "LATEST"
	CheckpointAtTimestamp = "AT_TIMESTAMP"
	CheckpointShardEnd    = "SHARD_END"
)

// Report is what `kclctl checkpoints` shows: one row per shard of the stream or lease of the table,
// plus the warnings found. Its JSON form is the --json output (field names are stable).
type Report struct {
	Table    string    `json:"table"`
	Stream   string    `json:"stream"`
	At       time.Time `json:"at"`
	Shards   []Shard   `json:"shards"`
	Warnings []Warning `json:"warnings"`
}

// Shard is one row of the lease table joined with the stream's view of the shard.
type Shard struct {
	ShardID string   `json:"shard_id"`
	State   string   `json:"state"`
	Parents []string `json:"parents"`
	// Owner is the worker holding the lease; empty when nobody does (or there is no lease row yet).
	Owner        string `json:"owner"`
	LeaseCounter int64  `json:"lease_counter"`
	// LeaseExpiry is the lease's LeaseTimeout; zero when there is none.
	LeaseExpiry time.Time `json:"lease_expiry,omitzero"`
	// LeaseExpiresInMS is LeaseExpiry - At in milliseconds (negative: expired); absent without a lease.
	LeaseExpiresInMS *int64 `json:"lease_expires_in_ms,omitempty"`
	// Checkpoint is the full sequence number, a sentinel (TRIM_HORIZON, LATEST, SHARD_END), or empty
	// when the shard has no lease row yet.
	Checkpoint string `json:"checkpoint"`
	// HasLease is false for a shard of the stream the table has no row for.
	HasLease bool `json:"has_lease"`
	Lag      Lag  `json:"lag"`

	// WaitingOn lists unfinished parents that keep the shard from being leased.
	WaitingOn []string `json:"waiting_on,omitempty"`
	// CheckpointedAt and LastRenewal are the owner's last checkpoint and lease renewal.
	CheckpointedAt time.Time `json:"checkpointed_at,omitzero"`
	LastRenewal    time.Time `json:"last_renewal,omitzero"`
	// OwnerSwitches counts how often the lease changed hands; ClaimRequest is a worker asking for it.
	OwnerSwitches int64  `json:"owner_switches"`
	ClaimRequest  string `json:"claim_request,omitempty"`

	// Behind is the MillisBehindLatest the shard's owner last published in the lease row (it rides on
	// every lease renewal and checkpoint); nil when no worker has published one.
	Behind *Behind `json:"worker_millis_behind_latest,omitempty"`
	// LastReset* record the last `kclctl reset --apply` of the shard: who, when, and the checkpoint
	// it replaced.
	LastResetBy   string    `json:"last_reset_by,omitempty"`
	LastResetAt   time.Time `json:"last_reset_at,omitzero"`
	LastResetFrom string    `json:"last_reset_from,omitempty"`
	// LastStop* record the last worker whose processor had to stop the shard and released its lease
	// for a peer (the "stopped" warning while nobody holds the shard); they stay after a worker takes
	// it, as history (the lease planners keep the shard away from that worker).
	LastStopBy     string    `json:"last_stop_by,omitempty"`
	LastStopAt     time.Time `json:"last_stop_at,omitzero"`
	LastStopReason string    `json:"last_stop_reason,omitempty"`
}

// Behind is a MillisBehindLatest a worker published, and when it observed it.
type Behind struct {
	MS int64     `json:"ms"`
	At time.Time `json:"at"`
}

// LagStatus says what Lag measured.
type LagStatus string

// Lag statuses.
const (
	LagCaughtUp LagStatus = "caught_up" // no record after the checkpoint
	LagBehind   LagStatus = "behind"    // AgeMS is the age of the oldest unprocessed record
	LagDone     LagStatus = "done"      // SHARD_END: nothing left to process
	LagUnknown  LagStatus = "unknown"   // not measurable (LATEST start, shard gone, read error): see Reason
)

// Lag is the age of the oldest unprocessed record of a shard: the ApproximateArrivalTimestamp of the
// first record after the checkpoint, measured against Report.At.
type Lag struct {
	Status LagStatus `json:"status"`
	// AgeMS is the lag in milliseconds: 0 when caught up or done, the age when behind.
	AgeMS int64 `json:"age_ms"`
	// OldestUnprocessed is the arrival time of the first record after the checkpoint (when behind).
	OldestUnprocessed time.Time `json:"oldest_unprocessed,omitzero"`
	// MillisBehindLatest is what Kinesis reported with the read, when it reported it.
	MillisBehindLatest *int64 `json:"millis_behind_latest,omitempty"`
	// Reason explains LagUnknown.
	Reason string `json:"reason,omitempty"`
}

// Warning is one problem found; any warning makes the command exit with ExitWarnings.
type Warning struct {
	Shard   string `json:"shard,omitempty"`
	Kind    string `json:"kind"`
	Message string `json:"message"`
}

// Warning kinds kclctl adds itself. checkpoint's kinds (expired_lease, orphaned_lease,
// waiting_on_parent, no_progress, unleased) are passed through unchanged.
const (
	WarnLagUnknown = "lag_unavailable"
)
