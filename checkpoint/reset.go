package checkpoint

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"
)

// PositionKind says where a reset shard resumes.
type PositionKind string

// Position kinds.
const (
	// PositionTrimHorizon removes the checkpoint: the worker starts at its initial position, which
	// in this project is TRIM_HORIZON (required anyway so that child shards lose nothing).
	PositionTrimHorizon PositionKind = "trim-horizon"
	// PositionLatest skips every record in the shard now: the checkpoint becomes the newest
	// record's sequence number (SHARD_END for a closed shard).
	PositionLatest PositionKind = "latest"
	// PositionAtTimestamp resumes at the first record that arrived at or after Timestamp: the
	// checkpoint becomes the last record before it (none: trim horizon).
	PositionAtTimestamp PositionKind = "timestamp"
	// PositionAfterSequence resumes after record Sequence (KCL checkpoint semantics).
	PositionAfterSequence PositionKind = "sequence"
)

// Position is where Reset moves a shard's checkpoint.
type Position struct {
	Kind      PositionKind
	Timestamp time.Time // PositionAtTimestamp
	Sequence  string    // PositionAfterSequence
}

// ResetResult describes a planned or applied reset.
type ResetResult struct {
	ShardID       string
	OldCheckpoint string // "" = none
	NewCheckpoint string // "" = none: the worker starts at its initial position
	Owner         string // owner in the row when read ("" none)
	LeaseLive     bool   // Owner's lease had not expired (by the row's LeaseTimeout)
	Applied       bool   // false for PlanReset
	At            time.Time
	Notes         []string // things the operator should know (e.g. a finished shard is being reopened)
}

// maxResolvePages bounds the GetRecords calls one timestamp/latest resolution may make.
const maxResolvePages = 500

// PlanReset resolves the position and reads the row, writing nothing (kclctl's dry run).
func PlanReset(ctx context.Context, ddb DynamoDBAPI, kin KinesisAPI, table, stream, shardID string, to Position, now time.Time) (ResetResult, error) {
	res, _, err := planReset(ctx, ddb, kin, table, stream, shardID, to, now)
	return res, err
}

// Reset moves shardID's checkpoint to the position, recording who and when (LastResetBy,
// LastResetAt, LastResetFrom). While a worker holds a live lease it refuses with ErrShardLeased
// unless force. The write is conditional on the row being unchanged since it was read, and bumps
// LeaseCounter and removes AssignedTo, so a worker that held the lease is fenced out (its next
// checkpoint fails with ErrLeaseLost and its processor stops) and the shard is taken again from
// the new position.
func Reset(ctx context.Context, ddb DynamoDBAPI, kin KinesisAPI, table, stream, shardID string, to Position, force bool, who string, now time.Time) (ResetResult, error) {
	if who == "" {
		return ResetResult{}, errors.New("reset: who is required")
	}
	res, row, err := planReset(ctx, ddb, kin, table, stream, shardID, to, now)
	if err != nil {
		return res, err
	}
	if res.LeaseLive && !force {
		return res, fmt.Errorf("shard %s: %w by %s until %s (use force)", shardID, ErrShardLeased, res.Owner, formatTime(row.LeaseTimeout))
	}
	u := &update{}
	u.condState(row)
	var counter int64 = 1
	if row != nil {
		counter = row.Counter + 1
	}
	u.set(attrCounter, nv(counter))
	if res.NewCheckpoint == "" {
		u.remove(attrCheckpoint)
	} else {
		u.set(attrCheckpoint, sv(res.NewCheckpoint))
	}
	from := res.OldCheckpoint
	if from == "" {
		from = "(none)"
	}
	u.set(attrResetBy, sv(who))
	u.set(attrResetAt, sv(formatTime(now)))
	u.set(attrResetFrom, sv(from))
	u.set(attrLeaseTimeout, sv(formatTime(now)))
	if row != nil && row.Owner != "" {
		u.remove(attrOwner)
	}
	cctx, cancel := context.WithTimeout(ctx, inspectCallTimeout)
	defer cancel()
	in := &dynamodb.UpdateItemInput{
		TableName: aws.String(table), Key: keyOf(shardID),
		UpdateExpression: aws.String(u.expression()), ConditionExpression: aws.String(u.condition()),
		ExpressionAttributeNames: u.names, ExpressionAttributeValues: u.values,
	}
	if _, err := ddb.UpdateItem(cctx, in); err != nil {
		if isConditionFailed(err) {
			return res, fmt.Errorf("shard %s: the lease row changed while resetting; nothing written, try again: %w", shardID, err)
		}
		return res, fmt.Errorf("shard %s: reset: %w", shardID, err)
	}
	res.Applied = true
	return res, nil
}

func planReset(ctx context.Context, ddb DynamoDBAPI, kin KinesisAPI, table, stream, shardID string, to Position, now time.Time) (ResetResult, *leaseRow, error) {
	res := ResetResult{ShardID: shardID, At: now}
	if IsReserved(shardID) {
		return res, nil, fmt.Errorf("reset %q: %w", shardID, ErrReservedKey)
	}
	shards, err := listShards(ctx, kin, stream, inspectCallTimeout)
	if err != nil {
		return res, nil, fmt.Errorf("reset: %w", err)
	}
	meta, ok := shards[shardID]
	if !ok {
		return res, nil, fmt.Errorf("shard %s: %w %s", shardID, ErrUnknownShard, stream)
	}
	cctx, cancel := context.WithTimeout(ctx, inspectCallTimeout)
	out, err := ddb.GetItem(cctx, &dynamodb.GetItemInput{TableName: aws.String(table), Key: keyOf(shardID), ConsistentRead: aws.Bool(true)})
	cancel()
	if err != nil {
		return res, nil, fmt.Errorf("shard %s: read lease row: %w", shardID, err)
	}
	row, err := decodeRow(out.Item)
	if err != nil {
		return res, nil, err
	}
	if row != nil {
		res.OldCheckpoint, res.Owner = row.Checkpoint, row.Owner
		res.LeaseLive = row.Owner != "" && now.Before(row.LeaseTimeout)
		if row.finished() {
			res.Notes = append(res.Notes, "the shard had finished (SHARD_END); its children may already have processed later records")
		}
	}
	res.NewCheckpoint, err = resolvePosition(ctx, kin, stream, meta, to)
	if err != nil {
		return res, row, err
	}
	return res, row, nil
}

func resolvePosition(ctx context.Context, kin KinesisAPI, stream string, meta shardMeta, to Position) (string, error) {
	switch to.Kind {
	case PositionTrimHorizon:
		return "", nil
	case PositionAfterSequence:
		n, ok := new(big.Int).SetString(to.Sequence, 10)
		if !ok || n.Sign() < 0 {
			return "", fmt.Errorf("shard %s: sequence %q is not a sequence number", meta.ID, to.Sequence)
		}
		if lo, ok := new(big.Int).SetString(meta.StartSeq, 10); ok && n.Cmp(lo) < 0 {
			return "", fmt.Errorf("shard %s: sequence %s is before the shard's range (starts %s)", meta.ID, to.Sequence, meta.StartSeq)
		}
		if hi, ok := new(big.Int).SetString(meta.EndSeq, 10); ok && n.Cmp(hi) > 0 {
			return "", fmt.Errorf("shard %s: sequence %s is after the shard's range (ends %s)", meta.ID, to.Sequence, meta.EndSeq)
		}
		return to.Sequence, nil
	case PositionLatest:
		if meta.Closed {
			return ShardEnd, nil
		}
		return lastRecordBefore(ctx, kin, stream, meta.ID, time.Time{})
	case PositionAtTimestamp:
		if to.Timestamp.IsZero() {
			return "", fmt.Errorf("shard %s: timestamp position without a timestamp", meta.ID)
		}
		return lastRecordBefore(ctx, kin, stream, meta.ID, to.Timestamp)
	}
	return "", fmt.Errorf("shard %s: unknown position kind %q", meta.ID, to.Kind)
}

// lastRecordBefore returns the sequence number of the last record that arrived before t (zero t:
// the newest record), or "" when the shard has none. It reads forward from AT_TIMESTAMP(t - w) for
// growing windows w, which is cheap on Kinesis; if an AT_TIMESTAMP iterator cannot be had (some
// emulators hang when no record follows the timestamp), it reads the shard from TRIM_HORIZON. At
// most maxResolvePages GetRecords calls are made in all.
func lastRecordBefore(ctx context.Context, kin KinesisAPI, stream, shardID string, t time.Time) (string, error) {
	pages := 0
	base := t
	if base.IsZero() {
		base = time.Now().Add(-time.Second)
	}
	for _, w := range []time.Duration{time.Minute, 15 * time.Minute, 2 * time.Hour, 24 * time.Hour, 7 * 24 * time.Hour, 400 * 24 * time.Hour} {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		it, err := kin.GetShardIterator(cctx, &kinesis.GetShardIteratorInput{
			StreamName: aws.String(stream), ShardId: aws.String(shardID),
			ShardIteratorType: ktypes.ShardIteratorTypeAtTimestamp, Timestamp: aws.Time(base.Add(-w)),
		})
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return "", ctx.Err()
			}
			break // fall back to reading from the trim horizon
		}
		last, err := readUntil(ctx, kin, shardID, it.ShardIterator, t, &pages)
		if err != nil || last != "" {
			return last, err
		}
	}
	cctx, cancel := context.WithTimeout(ctx, inspectCallTimeout)
	it, err := kin.GetShardIterator(cctx, &kinesis.GetShardIteratorInput{
		StreamName: aws.String(stream), ShardId: aws.String(shardID), ShardIteratorType: ktypes.ShardIteratorTypeTrimHorizon,
	})
	cancel()
	if err != nil {
		return "", fmt.Errorf("shard %s: resolve position: %w", shardID, err)
	}
	return readUntil(ctx, kin, shardID, it.ShardIterator, t, &pages)
}

// readUntil reads from iter until a record at or after t (zero: none), the end of the shard or its
// tip, and returns the last record before that.
func readUntil(ctx context.Context, kin KinesisAPI, shardID string, iter *string, t time.Time, pages *int) (string, error) {
	last := ""
	for iter != nil {
		if *pages++; *pages > maxResolvePages {
			return "", fmt.Errorf("shard %s: resolving the position needs more than %d reads; reset to a sequence number instead", shardID, maxResolvePages)
		}
		cctx, cancel := context.WithTimeout(ctx, inspectCallTimeout)
		out, err := kin.GetRecords(cctx, &kinesis.GetRecordsInput{ShardIterator: iter, Limit: aws.Int32(10000)})
		cancel()
		if err != nil {
			return "", fmt.Errorf("shard %s: resolve position: %w", shardID, err)
		}
		for _, r := range out.Records {
			if !t.IsZero() && r.ApproximateArrivalTimestamp != nil && !r.ApproximateArrivalTimestamp.Before(t) {
				return last, nil
			}
			last = aws.ToString(r.SequenceNumber)
		}
		if len(out.Records) == 0 && aws.ToInt64(out.MillisBehindLatest) == 0 {
			return last, nil
		}
		iter = out.NextShardIterator
	}
	return last, nil
}
