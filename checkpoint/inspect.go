package checkpoint

import (
	"context"
	"fmt"
	"sort"
	"time"
)

// ShardState is a shard's processing state as kclctl shows it.
type ShardState string

// Shard states.
const (
	ShardOpen     ShardState = "open"      // in the stream and accepting records
	ShardClosed   ShardState = "closed"    // closed by a reshard, records left to process
	ShardFinished ShardState = "SHARD_END" // every record processed (checkpoint SHARD_END)
	ShardGone     ShardState = "gone"      // no longer in ListShards (past retention); only its row remains
)

// NoProgressAfter is how long a leased shard may go without a checkpoint before Inspect warns.
// Idle shards do not checkpoint either: kclctl's lag column tells the two apart.
const NoProgressAfter = 5 * time.Minute

// inspectCallTimeout bounds each call Inspect and Reset make (ctx bounds the whole).
const inspectCallTimeout = 5 * time.Second

// ShardInfo is one shard in a Snapshot.
type ShardInfo struct {
	ShardID                string
	State                  ShardState
	ParentShardID          string
	AdjacentParentShardID  string
	StartingSequenceNumber string
	EndingSequenceNumber   string
	HasRow                 bool   // the lease table has a row for it
	Owner                  string // AssignedTo, "" when not leased
	LeaseCounter           int64
	LeaseExpiresAt         time.Time // LeaseTimeout (the writer's clock: for display)
	// LeaseExpired: Owner set and LeaseExpiresAt before now. An estimate for display: it compares
	// the writer's clock with the caller's, which the lease store itself never does.
	LeaseExpired    bool
	LastRenewal     time.Time // LeaseRenewedAt
	LeaseAcquiredAt time.Time
	Checkpoint      string // sequence number, SHARD_END, or "" (start at the initial position)
	CheckpointedAt  time.Time
	OwnerSwitches   int64
	ClaimRequest    string
	LastResetBy     string
	LastResetAt     time.Time
	LastResetFrom   string
	// MillisBehindLatest is what the shard's last owner published with its latest renewal or
	// checkpoint (Store.NoteMillisBehindLatest), observed at MillisBehindAt; HasMillisBehind is
	// false when no worker has published it.
	MillisBehindLatest int64
	MillisBehindAt     time.Time
	HasMillisBehind    bool
	// LastStop* record a worker whose processor had to stop the shard and gave its lease up
	// (Store.Abandon), until a worker takes the shard again.
	LastStopBy     string
	LastStopAt     time.Time
	LastStopReason string
	WaitingOn      []string // parents that have not finished: the shard cannot be leased yet
}

// WorkerInfo is one worker that holds at least one lease row.
type WorkerInfo struct {
	WorkerID    string
	Shards      []string  // shards whose row names it as owner (live or expired leases)
	Live        int       // how many of those leases are unexpired
	LastRenewal time.Time // latest LeaseRenewedAt over its rows
}

// WarningKind classifies a Snapshot warning.
type WarningKind string

// Warning kinds.
const (
	WarnExpiredLease    WarningKind = "expired_lease"     // owner set but the lease ran out: a dead or stuck worker
	WarnOrphanedLease   WarningKind = "orphaned_lease"    // row of a shard that left the stream, unfinished or still owned
	WarnWaitingOnParent WarningKind = "waiting_on_parent" // child shard blocked by an unfinished parent
	WarnNoProgress      WarningKind = "no_progress"       // leased, no checkpoint for NoProgressAfter
	WarnUnleased        WarningKind = "unleased"          // processable shard that no worker holds
	WarnStopped         WarningKind = "stopped"           // a worker's processor stopped the shard; nobody took it since
)

// Warning is something an operator should look at.
type Warning struct {
	Kind    WarningKind
	ShardID string
	Message string
}

// Snapshot is a read-only picture of the lease table joined with the stream's shards.
type Snapshot struct {
	Table    string
	Stream   string
	At       time.Time
	Shards   []ShardInfo  // sorted by shard id
	Workers  []WorkerInfo // sorted by worker id
	Warnings []Warning    // sorted by shard id, then kind
}

// Inspect reads the lease table (consistent scan) and the stream's shards and reports per shard,
// per worker, and what looks wrong, as of now. It writes nothing.
func Inspect(ctx context.Context, ddb DynamoDBAPI, kin KinesisAPI, table, stream string, now time.Time) (Snapshot, error) {
	rows, err := scanRows(ctx, ddb, table, inspectCallTimeout)
	if err != nil {
		return Snapshot{}, fmt.Errorf("inspect: %w", err)
	}
	shards, err := listShards(ctx, kin, stream, inspectCallTimeout)
	if err != nil {
		return Snapshot{}, fmt.Errorf("inspect: %w", err)
	}
	snap := Snapshot{Table: table, Stream: stream, At: now}
	ids := map[string]bool{}
	for id := range rows {
		ids[id] = true
	}
	for id := range shards {
		ids[id] = true
	}
	workers := map[string]*WorkerInfo{}
	warn := func(kind WarningKind, id, format string, args ...any) {
		snap.Warnings = append(snap.Warnings, Warning{Kind: kind, ShardID: id, Message: fmt.Sprintf(format, args...)})
	}
	for id := range ids {
		meta, inStream := shards[id]
		r := rows[id]
		info := ShardInfo{ShardID: id, ParentShardID: meta.Parent, AdjacentParentShardID: meta.Adjacent,
			StartingSequenceNumber: meta.StartSeq, EndingSequenceNumber: meta.EndSeq}
		if r != nil {
			info.HasRow = true
			info.Owner, info.LeaseCounter, info.LeaseExpiresAt = r.Owner, r.Counter, r.LeaseTimeout
			info.LeaseExpired = r.Owner != "" && now.After(r.LeaseTimeout)
			info.LastRenewal, info.LeaseAcquiredAt = r.RenewedAt, r.AcquiredAt
			info.Checkpoint, info.CheckpointedAt, info.OwnerSwitches = r.Checkpoint, r.CheckpointedAt, r.OwnerSwitches
			info.ClaimRequest, info.LastResetBy, info.LastResetAt, info.LastResetFrom = r.Claim, r.ResetBy, r.ResetAt, r.ResetFrom
			info.MillisBehindLatest, info.MillisBehindAt, info.HasMillisBehind = r.Behind, r.BehindAt, r.HasBehind
			info.LastStopBy, info.LastStopAt, info.LastStopReason = r.StopBy, r.StopAt, r.StopReason
			if !inStream {
				info.ParentShardID, info.AdjacentParentShardID = r.Parent, r.Adjacent
			}
		}
		switch {
		case r != nil && r.finished():
			info.State = ShardFinished
		case !inStream:
			info.State = ShardGone
		case meta.Closed:
			info.State = ShardClosed
		default:
			info.State = ShardOpen
		}
		for _, p := range (shardMeta{Parent: info.ParentShardID, Adjacent: info.AdjacentParentShardID}).parents() {
			pr := rows[p]
			if pr != nil && pr.finished() {
				continue
			}
			if _, present := shards[p]; !present && (pr == nil || pr.Owner == "" || now.After(pr.LeaseTimeout)) {
				continue
			}
			info.WaitingOn = append(info.WaitingOn, p)
		}
		if info.State != ShardFinished && inStream && len(info.WaitingOn) > 0 {
			warn(WarnWaitingOnParent, id, "waiting for parent(s) %v to reach SHARD_END", info.WaitingOn)
		}
		if info.LastStopBy != "" && info.Owner == "" && info.State != ShardFinished {
			warn(WarnStopped, id, "stopped by %s %s ago and released for a peer: %s", info.LastStopBy,
				now.Sub(info.LastStopAt).Round(time.Second), info.LastStopReason)
		}
		if info.LeaseExpired {
			warn(WarnExpiredLease, id, "lease of %s expired %s ago", info.Owner, now.Sub(info.LeaseExpiresAt).Round(time.Second))
		}
		if info.State == ShardGone && (info.Owner != "" || info.Checkpoint != ShardEnd) {
			warn(WarnOrphanedLease, id, "shard left the stream; row owner %q checkpoint %q", info.Owner, info.Checkpoint)
		}
		if info.Owner != "" && !info.LeaseExpired && info.State != ShardFinished {
			since := info.CheckpointedAt
			if since.IsZero() || info.LeaseAcquiredAt.After(since) {
				since = info.LeaseAcquiredAt
			}
			if !since.IsZero() && now.Sub(since) > NoProgressAfter {
				warn(WarnNoProgress, id, "leased by %s, no checkpoint for %s", info.Owner, now.Sub(since).Round(time.Second))
			}
		}
		if inStream && info.State != ShardFinished && len(info.WaitingOn) == 0 && (info.Owner == "" || info.LeaseExpired) {
			warn(WarnUnleased, id, "no worker holds this shard")
		}
		if info.Owner != "" {
			w := workers[info.Owner]
			if w == nil {
				w = &WorkerInfo{WorkerID: info.Owner}
				workers[info.Owner] = w
			}
			w.Shards = append(w.Shards, id)
			if !info.LeaseExpired {
				w.Live++
			}
			if info.LastRenewal.After(w.LastRenewal) {
				w.LastRenewal = info.LastRenewal
			}
		}
		snap.Shards = append(snap.Shards, info)
	}
	sort.Slice(snap.Shards, func(i, j int) bool { return snap.Shards[i].ShardID < snap.Shards[j].ShardID })
	for _, w := range workers {
		sort.Strings(w.Shards)
		snap.Workers = append(snap.Workers, *w)
	}
	sort.Slice(snap.Workers, func(i, j int) bool { return snap.Workers[i].WorkerID < snap.Workers[j].WorkerID })
	sort.Slice(snap.Warnings, func(i, j int) bool {
		if snap.Warnings[i].ShardID != snap.Warnings[j].ShardID {
			return snap.Warnings[i].ShardID < snap.Warnings[j].ShardID
		}
		return snap.Warnings[i].Kind < snap.Warnings[j].Kind
	})
	return snap, nil
}
