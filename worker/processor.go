package worker

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	kcl "github.com/vmware/vmware-go-kcl-v2/clientlibrary/interfaces"
	"go.uber.org/zap"

	"github.com/kinesis-events/pipeline/checkpoint"
	"github.com/kinesis-events/pipeline/processors"
)

// shardLeases is what a shard's processor needs of the lease store; *checkpoint.Store satisfies it.
type shardLeases interface {
	LeaseContext(shardID string) context.Context
	OwnershipContext(shardID string) context.Context
	Release(ctx context.Context, shardID string) (bool, error)
}

// batchProcessor is one shard's pipeline state; *processors.Shard satisfies it.
type batchProcessor interface {
	Process(ctx context.Context, recs []processors.Record) (string, error)
	Drain(ctx context.Context) (string, error)
	Held() int
	Close()
}

// processorEnv is what every recordProcessor of a worker shares.
type processorEnv struct {
	log      *zap.Logger
	leases   shardLeases
	newShard func(shardID string) batchProcessor
	shards   *shardRegistry
	metrics  *metrics
	// hardStop is cancelled when the shutdown grace runs out.
	hardStop context.Context
}

func (w *Worker) processorEnv() *processorEnv {
	return &processorEnv{
		log:      w.log,
		leases:   w.leases,
		newShard: func(id string) batchProcessor { return w.pipeline.Shard(id) },
		shards:   w.shards,
		metrics:  w.metrics,
		hardStop: w.hardStop,
	}
}

// factory creates one recordProcessor per shard assignment, as the KCL asks.
type factory struct {
	env *processorEnv
}

func (f factory) CreateProcessor() kcl.IRecordProcessor { return &recordProcessor{w: f.env} }

// recordProcessor adapts one shard's KCL callbacks to a processors.Shard. The KCL calls it from one
// goroutine per shard, so its fields need no lock; the shard registry is shared.
type recordProcessor struct {
	w       *processorEnv
	shardID string
	shard   batchProcessor
	// lease is cancelled when the lease is lost or handed off for rebalancing (context.Cause says
	// which). ctx is the ownership context merged with the worker's hard-stop context: it stays live
	// during a hand-off so the in-flight batch can finish and checkpoint under the lease.
	lease  context.Context
	ctx    context.Context
	cancel context.CancelFunc
	log    *zap.Logger

	last string // last checkpointed sequence number
	// dead is set when the lease is gone or the shard was abandoned: from then on nothing is
	// processed or checkpointed; the KCL ends this consumer at its next lease renewal.
	dead     bool
	finished bool
}

func (p *recordProcessor) Initialize(in *kcl.InitializationInput) {
	p.shardID = in.ShardId
	p.log = p.w.log.With(zap.String("shard", p.shardID))
	p.lease = p.w.leases.LeaseContext(p.shardID)
	p.ctx, p.cancel = mergeCancel(p.w.leases.OwnershipContext(p.shardID), p.w.hardStop)
	p.shard = p.w.newShard(p.shardID)
	// The KCL ends a consumer whose lease renewal failed without calling Shutdown; take the shard
	// off the registry then, so /readyz does not report it as stalled.
	context.AfterFunc(p.lease, func() {
		if !errors.Is(context.Cause(p.lease), checkpoint.ErrLeaseHandedOff) {
			p.w.shards.stop(p.shardID)
		}
	})
	if in.ExtendedSequenceNumber != nil {
		p.last = aws.ToString(in.ExtendedSequenceNumber.SequenceNumber)
	}
	p.w.shards.start(p.shardID)
	p.log.Info("shard started", zap.String("checkpoint", p.last))
}

func (p *recordProcessor) ProcessRecords(in *kcl.ProcessRecordsInput) {
	p.w.shards.behind(p.shardID, in.MillisBehindLatest)
	if p.dead || p.handOff() {
		return
	}
	if len(in.Records) == 0 && in.MillisBehindLatest > 0 {
		// Kinesis can return an empty page while the shard is still behind (a gap in the stream).
		// An empty batch tells the pipeline the shard is caught up and moves its reorder clock to
		// the wall clock; a new owner replaying a backlog would then release held events early.
		p.w.shards.progress(p.shardID, p.shard.Held())
		return
	}
	recs := make([]processors.Record, len(in.Records))
	for i, r := range in.Records {
		recs[i] = processors.Record{
			SequenceNumber: aws.ToString(r.SequenceNumber),
			Data:           r.Data,
			PartitionKey:   aws.ToString(r.PartitionKey),
			ArrivedAt:      aws.ToTime(r.ApproximateArrivalTimestamp),
		}
	}
	wm, err := p.shard.Process(p.ctx, recs)
	if err != nil {
		p.stop("process", err)
		return
	}
	p.checkpoint(in.Checkpointer, wm)
	p.w.shards.progress(p.shardID, p.shard.Held())
}

func (p *recordProcessor) Shutdown(in *kcl.ShutdownInput) {
	defer p.finish()
	if p.dead {
		return
	}
	switch in.ShutdownReason {
	case kcl.TERMINATE:
		// The shard is closed and fully read: release everything still held, write it, and only then
		// mark SHARD_END, which lets the children (both of them after a split, the one after a merge
		// once both parents are done) start.
		wm, err := p.shard.Drain(p.ctx)
		if err != nil {
			p.stop("drain at shard end", err)
			return
		}
		if !p.checkpoint(in.Checkpointer, wm) {
			return
		}
		if err := in.Checkpointer.Checkpoint(nil); err != nil {
			p.stop("checkpoint SHARD_END", err)
			return
		}
		p.log.Info("shard finished (SHARD_END)")
	default:
		// Requested (SIGTERM) or zombie: every batch was already checkpointed up to the watermark.
		// Events held for reordering were not written and stay behind the checkpoint, so the next
		// owner replays them: nothing lost, nothing written twice.
		p.log.Info("shard released", zap.Int("held_not_written", p.shard.Held()))
	}
}

// handOff reports whether the lease context is done. When the store asked for the lease to be
// handed to a peer, every batch so far is written and checkpointed (the previous ProcessRecords
// returned), so the records of this batch are simply not processed: they are behind the checkpoint
// and the next owner reads them. Events held for reordering were not written either. Then the lease
// is released so the peer can take it at once.
func (p *recordProcessor) handOff() bool {
	if p.lease.Err() == nil {
		return false
	}
	cause := context.Cause(p.lease)
	if !errors.Is(cause, checkpoint.ErrLeaseHandedOff) {
		p.stop("lease check", cause)
		return true
	}
	p.dead = true
	if _, err := p.w.leases.Release(p.ctx, p.shardID); err != nil {
		p.log.Warn("hand-off release failed; the lease will expire instead", zap.Error(err))
	} else {
		p.log.Info("shard handed off for balance", zap.String("checkpoint", p.last), zap.Int("held_not_written", p.shard.Held()))
	}
	p.finish()
	return true
}

// checkpoint moves the shard's checkpoint to wm when it advanced. It reports whether the shard is
// still alive.
func (p *recordProcessor) checkpoint(c kcl.IRecordProcessorCheckpointer, wm string) bool {
	if wm == "" || wm == p.last {
		return true
	}
	if err := c.Checkpoint(aws.String(wm)); err != nil {
		p.stop("checkpoint", err)
		return false
	}
	p.last = wm
	p.w.shards.checkpointed(p.shardID)
	return true
}

func (p *recordProcessor) stop(what string, err error) {
	p.dead = true
	switch {
	case errors.Is(err, context.Canceled) && p.w.hardStop.Err() != nil:
		p.log.Warn("shard stopped by shutdown deadline", zap.String("during", what), zap.Error(err))
	default:
		p.log.Warn("shard lost; dropping its buffers, the next owner replays from the checkpoint",
			zap.String("during", what), zap.Error(err))
	}
	p.w.metrics.shardStops.WithLabelValues(what).Inc()
	p.finish()
}

// finish drops the shard's state; it runs once, at Shutdown or as soon as the shard is dead.
func (p *recordProcessor) finish() {
	if p.finished {
		return
	}
	p.finished = true
	if p.shard != nil {
		p.shard.Close() // drops anything still held; it stays behind the checkpoint for the next owner
	}
	if p.cancel != nil {
		p.cancel()
	}
	p.w.shards.stop(p.shardID)
}

// mergeCancel returns a context cancelled when either parent is.
func mergeCancel(a, b context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(a)
	stop := context.AfterFunc(b, func() { cancel(context.Cause(b)) })
	return ctx, func() { stop(); cancel(context.Canceled) }
}

// shardRegistry tracks the shards this worker is processing, for /readyz and metrics.
type shardRegistry struct {
	mu     sync.Mutex
	now    func() time.Time
	shards map[string]*shardState
}

type shardState struct {
	started, lastProgress, lastCheckpoint time.Time
	held                                  int
	behindMs                              int64
}

func (r *shardRegistry) with(id string, f func(s *shardState)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if s := r.shards[id]; s != nil {
		f(s)
	}
}

func (r *shardRegistry) start(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	r.shards[id] = &shardState{started: now, lastProgress: now}
}

func (r *shardRegistry) stop(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.shards, id)
}

func (r *shardRegistry) progress(id string, held int) {
	r.with(id, func(s *shardState) { s.lastProgress = r.now(); s.held = held })
}

func (r *shardRegistry) checkpointed(id string) {
	r.with(id, func(s *shardState) { s.lastCheckpoint = r.now() })
}

func (r *shardRegistry) behind(id string, ms int64) {
	r.with(id, func(s *shardState) { s.behindMs = ms })
}

// stalled lists shards whose processor has not completed a batch for longer than limit.
func (r *shardRegistry) stalled(limit time.Duration) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	now := r.now()
	for id, s := range r.shards {
		if now.Sub(s.lastProgress) > limit {
			out = append(out, id)
		}
	}
	return out
}

func (r *shardRegistry) snapshot() map[string]shardState {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]shardState, len(r.shards))
	for id, s := range r.shards {
		out[id] = *s
	}
	return out
}
