package kclctl

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/kinesis-events/pipeline/checkpoint"
)

// InspectLive builds the checkpoints report from AWS: checkpoint.Inspect for the lease table joined
// with the stream's shards and its warnings, then MeasureLag for every shard. It only reads.
func InspectLive(ctx context.Context, c *Clients, table, stream string, now time.Time) (Report, error) {
	snap, err := checkpoint.Inspect(ctx, c.DynamoDB, c.Kinesis, table, stream, now)
	if err != nil {
		return Report{}, fmt.Errorf("table %s, stream %s: %w", table, stream, err)
	}
	r := FromSnapshot(snap)
	r.Warnings = append(r.Warnings, MeasureLag(ctx, c.Kinesis, stream, r.Shards, now)...)
	sort.SliceStable(r.Warnings, func(i, j int) bool { return r.Warnings[i].Shard < r.Warnings[j].Shard })
	return r, nil
}

// FromSnapshot converts checkpoint's snapshot into the report kclctl prints (lag not yet measured).
func FromSnapshot(s checkpoint.Snapshot) Report {
	r := Report{Table: s.Table, Stream: s.Stream, At: s.At, Shards: make([]Shard, 0, len(s.Shards)), Warnings: []Warning{}}
	for _, in := range s.Shards {
		sh := Shard{
			ShardID:        in.ShardID,
			State:          string(in.State),
			Parents:        []string{},
			Owner:          in.Owner,
			LeaseCounter:   in.LeaseCounter,
			Checkpoint:     in.Checkpoint,
			HasLease:       in.HasRow,
			WaitingOn:      in.WaitingOn,
			CheckpointedAt: in.CheckpointedAt,
			LastRenewal:    in.LastRenewal,
			OwnerSwitches:  in.OwnerSwitches,
			ClaimRequest:   in.ClaimRequest,
			LastResetBy:    in.LastResetBy,
			LastResetAt:    in.LastResetAt,
			LastResetFrom:  in.LastResetFrom,
			LastStopBy:     in.LastStopBy,
			LastStopReason: in.LastStopReason,
		}
		if !in.LastStopAt.IsZero() {
			sh.LastStopAt = in.LastStopAt.UTC()
		}
		if in.HasMillisBehind {
			sh.Behind = &Behind{MS: in.MillisBehindLatest, At: in.MillisBehindAt.UTC()}
		}
		for _, p := range []string{in.ParentShardID, in.AdjacentParentShardID} {
			if p != "" {
				sh.Parents = append(sh.Parents, p)
			}
		}
		if in.Owner != "" && !in.LeaseExpiresAt.IsZero() {
			sh.LeaseExpiry = in.LeaseExpiresAt.UTC()
			d := in.LeaseExpiresAt.Sub(s.At).Milliseconds()
			sh.LeaseExpiresInMS = &d
		}
		r.Shards = append(r.Shards, sh)
	}
	for _, w := range s.Warnings {
		r.Warnings = append(r.Warnings, Warning{Shard: w.ShardID, Kind: string(w.Kind), Message: w.Message})
	}
	return r
}
