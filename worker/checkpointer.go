package worker

import (
	"context"
	"errors"
	"fmt"

	chk "github.com/vmware/vmware-go-kcl-v2/clientlibrary/checkpoint"
	par "github.com/vmware/vmware-go-kcl-v2/clientlibrary/partition"

	"github.com/kinesis-events/pipeline/checkpoint"
)

// kclLeases is what the KCL adapter needs of the lease store; *checkpoint.Store satisfies it.
type kclLeases interface {
	Init(ctx context.Context) error
	Acquire(ctx context.Context, shardID string) (checkpoint.Acquisition, error)
	Renew(ctx context.Context, shardID string) (bool, error)
	Checkpoint(ctx context.Context, shardID, seq string) (bool, error)
	Release(ctx context.Context, shardID string) (bool, error)
	Read(ctx context.Context, shardID string) (*checkpoint.ShardLease, error)
	Peek(ctx context.Context, shardID string) (*checkpoint.ShardLease, error)
	Leases(ctx context.Context) (map[string]checkpoint.ShardLease, error)
	Forget(ctx context.Context, shardID string) error
	Claim(ctx context.Context, shardID string) (bool, error)
	Holds(shardID string) bool
}

// kclCheckpointer adapts the context-first lease store to vmware-go-kcl-v2's chk.Checkpointer,
// plugged in with Worker.WithCheckpointer. It is the only place that speaks the library's lease
// interface: the library calls it without a context, so every call runs under ctx, the worker's
// lifetime, and each store call bounds itself with the store's CallTimeout.
type kclCheckpointer struct {
	ctx    context.Context
	store  kclLeases
	worker string
	// released, when set, is called by RemoveLeaseOwner before the lease is released: the KCL's
	// consumer is ending, with or without having called its processor's Shutdown.
	released func(shardID string)
}

var _ chk.Checkpointer = (*kclCheckpointer)(nil)

// notAcquiredError is a lease the store (expectedly) did not grant. It satisfies
// errors.As(err, &chk.ErrLeaseNotAcquired{}), so the KCL moves on quietly, and errors.Is with the
// store's reason (checkpoint.ErrLeaseHeld, ErrWaitingOnParent, ...).
type notAcquiredError struct {
	shardID string
	acq     checkpoint.Acquisition
}

func (e *notAcquiredError) Error() string {
	if e.acq.Detail != "" {
		return fmt.Sprintf("shard %s: lease not acquired: %v (%s)", e.shardID, e.acq.Reason, e.acq.Detail)
	}
	return fmt.Sprintf("shard %s: lease not acquired: %v", e.shardID, e.acq.Reason)
}

func (e *notAcquiredError) Unwrap() []error {
	return []error{chk.ErrLeaseNotAcquired{}, e.acq.Reason}
}

// Init creates the lease table if needed and loads the stream's lineage.
func (c *kclCheckpointer) Init() error { return c.store.Init(c.ctx) }

// GetLease takes the lease on shard, or renews it when the KCL already records this worker as the
// owner (the consumer's renewal loop calls GetLease that way). A refusal is a notAcquiredError; a
// lease found lost on renewal is an error wrapping checkpoint.ErrLeaseLost, which ends the KCL's
// consumer. A renewal that did not land while the lease is still valid is not an error: the store
// logged it and the KCL renews again after LeaseRefreshWaitTime.
func (c *kclCheckpointer) GetLease(shard *par.ShardStatus, assignTo string) error {
	if assignTo != c.worker {
		return fmt.Errorf("shard %s: GetLease for %q on the store of worker %q", shard.ID, assignTo, c.worker)
	}
	if shard.GetLeaseOwner() == c.worker {
		held, _ := c.store.Renew(c.ctx, shard.ID)
		if !held {
			return lostError(shard.ID, "renewal")
		}
		return nil
	}
	acq, err := c.store.Acquire(c.ctx, shard.ID)
	if err != nil {
		return err
	}
	if !acq.Acquired {
		return &notAcquiredError{shardID: shard.ID, acq: acq}
	}
	shard.SetLeaseOwner(c.worker)
	shard.SetCheckpoint(acq.Checkpoint)
	return nil
}

// CheckpointSequence writes shard.Checkpoint (a sequence number or SHARD_END), fenced on this
// worker still owning the lease. An error wrapping checkpoint.ErrLeaseLost means the write did
// not happen and never will.
func (c *kclCheckpointer) CheckpointSequence(shard *par.ShardStatus) error {
	ok, err := c.store.Checkpoint(c.ctx, shard.ID, shard.GetCheckpoint())
	switch {
	case err != nil:
		return err
	case !ok:
		return lostError(shard.ID, "checkpoint")
	}
	return nil
}

// FetchCheckpoint loads shard's checkpoint, owner and lease timeout. It returns
// chk.ErrSequenceIDNotFound (and clears shard.Checkpoint) when there is no checkpoint. A row that
// names this worker as owner without the store holding the lease (an earlier incarnation) is
// reported as unowned, so the KCL tries to take it instead of skipping it forever.
//
// The KCL calls it for every shard this worker does not hold on every shard sync (ShardSync, a
// quarter second), to skip finished shards and pick ones to try (GetLease then decides on
// consistent reads), and for the parents of a shard it starts: those answers come from the
// store's cached view (Peek: one table scan per ScanInterval instead of a consistent read per
// shard per sync, which on a 60-shard lineage was most of the lease table's traffic). Only a shard
// this worker holds is read as it is now: that answer is where its reading starts.
func (c *kclCheckpointer) FetchCheckpoint(shard *par.ShardStatus) error {
	read := c.store.Peek
	if c.store.Holds(shard.ID) {
		read = c.store.Read
	}
	row, err := read(c.ctx, shard.ID)
	if err != nil {
		return err
	}
	if row == nil {
		shard.SetCheckpoint("")
		return chk.ErrSequenceIDNotFound
	}
	owner := row.Owner
	if owner == c.worker && !c.store.Holds(shard.ID) {
		owner = ""
	}
	shard.SetLeaseOwner(owner)
	shard.SetLeaseTimeout(row.LeaseTimeout)
	shard.SetCheckpoint(row.Checkpoint)
	if row.Checkpoint == "" {
		return chk.ErrSequenceIDNotFound
	}
	return nil
}

// RemoveLeaseInfo deletes the row of a shard that left the stream (the KCL calls it when ListShards
// no longer reports the shard).
func (c *kclCheckpointer) RemoveLeaseInfo(shardID string) error {
	return c.store.Forget(c.ctx, shardID)
}

// RemoveLeaseOwner releases this worker's lease on shardID (the KCL's consumer calls it whenever
// it ends). It first finishes the shard's processor (released), which the KCL's consumer does not
// do when it ends after GetRecords failed past its retries or a renewal found the lease lost: the
// processor's buffers go, and only then the lease, while no new consumer can have started for the
// shard yet. The release writes only while this worker still owns the lease, so a worker that lost
// it never wipes the new owner.
func (c *kclCheckpointer) RemoveLeaseOwner(shardID string) error {
	if c.released != nil {
		c.released(shardID)
	}
	_, err := c.store.Release(c.ctx, shardID)
	return err
}

// GetLeaseOwner returns the shard's current owner, or chk.NoLeaseOwnerErr.
func (c *kclCheckpointer) GetLeaseOwner(shardID string) (string, error) {
	row, err := c.store.Read(c.ctx, shardID)
	if err != nil {
		return "", err
	}
	if row == nil || row.Owner == "" {
		return "", chk.NoLeaseOwnerErr
	}
	return row.Owner, nil
}

// ListActiveWorkers maps owners to the unfinished shards they hold, from a fresh scan. Only the
// KCL's lease stealing calls it; the worker keeps it off because the store balances by itself.
func (c *kclCheckpointer) ListActiveWorkers(shards map[string]*par.ShardStatus) (map[string][]*par.ShardStatus, error) {
	rows, err := c.store.Leases(c.ctx)
	if err != nil {
		return nil, err
	}
	workers := map[string][]*par.ShardStatus{}
	for id, sh := range shards {
		r, ok := rows[id]
		if !ok {
			return nil, chk.ErrShardNotAssigned
		}
		sh.SetCheckpoint(r.Checkpoint)
		if r.Checkpoint == checkpoint.ShardEnd {
			continue
		}
		if r.Owner == "" {
			return nil, chk.ErrShardNotAssigned
		}
		sh.SetLeaseOwner(r.Owner)
		workers[r.Owner] = append(workers[r.Owner], sh)
	}
	return workers, nil
}

// ClaimShard posts a ClaimRequest for claimID (which must be this worker) on shard. Only the KCL's
// lease stealing calls it.
func (c *kclCheckpointer) ClaimShard(shard *par.ShardStatus, claimID string) error {
	if claimID != c.worker {
		return fmt.Errorf("shard %s: claim for %q on the store of worker %q", shard.ID, claimID, c.worker)
	}
	ok, err := c.store.Claim(c.ctx, shard.ID)
	if err != nil {
		return err
	}
	if !ok {
		return errors.New(chk.ErrShardClaimed)
	}
	return nil
}
