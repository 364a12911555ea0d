package worker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	kcl "github.com/vmware/vmware-go-kcl-v2/clientlibrary/interfaces"
	"go.uber.org/zap"

	"github.com/kinesis-events/pipeline/checkpoint"
	"github.com/kinesis-events/pipeline/internal/retry"
	"github.com/kinesis-events/pipeline/processors"
)

// shardLeases is what a shard's processor needs of the lease store; *checkpoint.Store satisfies it.
type shardLeases interface {
	LeaseContext(shardID string) context.Context
	OwnershipContext(shardID string) context.Context
	// WaitValid returns nil while the lease is valid, blocks while it is suspended (ran out
	// locally, not taken), and returns an error once it is lost.
	WaitValid(ctx context.Context, shardID string) error
	// Checkpoint writes the checkpoint, fenced, retrying transient failures while the lease is
	// ours: (false, nil) means the lease is lost.
	Checkpoint(ctx context.Context, shardID, seq string) (bool, error)
	Release(ctx context.Context, shardID string) (bool, error)
	// Finish writes SHARD_END with the shard's tail, fenced: (false, nil) means the lease is lost.
	Finish(ctx context.Context, shardID string, tail []checkpoint.TailSegment) (bool, error)
	// Abandon releases the lease of a shard whose processor had to stop, recording why.
	Abandon(ctx context.Context, shardID, reason string) (bool, error)
	// Busy marks a batch in flight until done is called: no hand-off timer releases the lease then.
	Busy(shardID string) (done func())
}

// batchProcessor is one shard's pipeline state; *processors.Shard satisfies it.
type batchProcessor interface {
	Process(ctx context.Context, recs []processors.Record) (string, error)
	Held() int
	Close()
}

// processorEnv is what every recordProcessor of a worker shares.
type processorEnv struct {
	log     *zap.Logger
	leases  shardLeases
	opener  opener
	shards  *shardRegistry
	metrics *metrics
	// hardStop is cancelled when the shutdown grace runs out.
	hardStop context.Context

	mu     sync.Mutex
	active map[string]*recordProcessor // the running processor of each shard, by shard id
}

// released finishes the processor of shardID, if one is still running: the KCL's consumer is
// giving the lease up (kclCheckpointer.RemoveLeaseOwner). It does that without calling Shutdown
// when GetRecords failed past its retries or a renewal found the lease lost; the processor's
// buffers, gauges and context hooks would otherwise stay behind.
func (e *processorEnv) released(shardID string) {
	e.mu.Lock()
	p := e.active[shardID]
	e.mu.Unlock()
	if p != nil {
		p.finish()
	}
}

func (e *processorEnv) register(p *recordProcessor) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.active == nil {
		e.active = map[string]*recordProcessor{}
	}
	e.active[p.shardID] = p
}

func (e *processorEnv) unregister(p *recordProcessor) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.active[p.shardID] == p {
		delete(e.active, p.shardID)
	}
}

func (w *Worker) processorEnv() *processorEnv {
	return &processorEnv{
		log:    w.log,
		leases: w.leases,
		opener: &shardOpener{pipeline: w.pipeline, leases: w.leases, kin: w.tails, stream: w.cfg.Stream,
			log: w.log, retry: retry.Policy{Initial: 100 * time.Millisecond, Max: 5 * time.Second, MaxElapsed: w.cfg.LeaseDuration}},
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
// goroutine per shard, so its fields need no lock (finish, which the adapter may call when the KCL
// releases the lease without Shutdown, has its own); the shard registry is shared.
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

	last     string // last checkpointed sequence number
	lastRead string // sequence number of the last record read
	// inherited is the parents' tail this shard took over when it opened (open.go).
	inherited []checkpoint.TailSegment
	// dead is set when the lease is gone or the shard was abandoned: from then on nothing is
	// processed or checkpointed; the KCL ends this consumer at its next lease renewal.
	dead bool
	// stopLeaseHook unregisters the hook on the lease context.
	stopLeaseHook func() bool
	finishMu      sync.Mutex
	finished      bool
}

func (p *recordProcessor) Initialize(in *kcl.InitializationInput) {
	p.shardID = in.ShardId
	p.log = p.w.log.With(zap.String("shard", p.shardID))
	p.lease = p.w.leases.LeaseContext(p.shardID)
	p.ctx, p.cancel = mergeCancel(p.w.leases.OwnershipContext(p.shardID), p.w.hardStop)
	// The KCL ends a consumer whose lease renewal failed without calling Shutdown; take the shard
	// off the registry then, so /readyz does not report it as stalled.
	p.stopLeaseHook = context.AfterFunc(p.lease, func() {
		if !errors.Is(context.Cause(p.lease), checkpoint.ErrLeaseHandedOff) {
			p.w.shards.stop(p.shardID)
		}
	})
	p.w.register(p)
	if in.ExtendedSequenceNumber != nil {
		p.last = aws.ToString(in.ExtendedSequenceNumber.SequenceNumber)
	}
	p.w.shards.start(p.shardID)
	p.log.Info("shard started", zap.String("checkpoint", p.last))
}

func (p *recordProcessor) ProcessRecords(in *kcl.ProcessRecordsInput) {
	p.w.shards.behind(p.shardID, in.MillisBehindLatest)
	if p.dead || p.handOff() || !p.valid() {
		return
	}
	// From here until the batch is checkpointed no hand-off timer releases the lease: a hand-off
	// asked for meanwhile takes effect at the next call, after the batch was written, marked and
	// checkpointed (handOff above), never in the middle of its writes. Opening the shard (its
	// state, and a new child's parent tails, which it writes) counts as a batch.
	defer p.w.leases.Busy(p.shardID)()
	if !p.open() {
		return
	}
	if len(in.Records) == 0 && in.MillisBehindLatest > 0 {
		// Kinesis can return an empty page while the shard is still behind (a gap in the stream).
		// An empty batch tells the pipeline the shard is caught up and moves its reorder clock to
		// the wall clock; a new owner replaying a backlog would then release held events early.
		p.w.shards.progress(p.shardID, p.shard.Held())
		return
	}
	recs := toRecords(in.Records, "") // de-aggregated by the KCL's client (kclClient)
	if len(recs) > 0 {
		p.lastRead = recs[len(recs)-1].SequenceNumber
		if at := recs[0].ArrivedAt; !at.IsZero() {
			p.w.metrics.recordAge.Observe(float64(time.Since(at).Milliseconds()))
		}
	}
	wm, err := p.shard.Process(p.ctx, recs)
	if err != nil {
		p.stop("process", err)
		return
	}
	p.checkpoint(wm)
	p.w.shards.progress(p.shardID, p.shard.Held())
}

func (p *recordProcessor) Shutdown(in *kcl.ShutdownInput) {
	defer p.finish()
	if p.dead {
		return
	}
	switch in.ShutdownReason {
	case kcl.TERMINATE:
		// The shard is closed and fully read. Events still held are not drained: the shard finishes
		// with its tail (where its unhandled records begin), and the children (both after a split,
		// the one after a merge once both parents are done) read the tail before their own records,
		// so the held events keep waiting where their predecessors will arrive.
		if !p.valid() {
			return
		}
		defer p.w.leases.Busy(p.shardID)()
		if !p.open() {
			return
		}
		tail := p.tail()
		switch ok, err := p.w.leases.Finish(p.ctx, p.shardID, tail); {
		case err != nil:
			p.stop("finish shard", err)
			return
		case !ok:
			p.stop("finish shard", lostError(p.shardID, "finish shard"))
			return
		}
		p.log.Info("shard finished (SHARD_END)", zap.Int("held_for_children", p.shard.Held()), zap.Stringers("tail", tail))
	default:
		// Requested (SIGTERM) or zombie: every batch was already checkpointed up to the watermark.
		// Events held for reordering were not written and stay behind the checkpoint, so the next
		// owner replays them: nothing lost, nothing written twice.
		p.log.Info("shard released", zap.Int("held_not_written", p.held()))
	}
}

// open opens the shard's pipeline on first use (open.go): its state, and the parents' tails of a
// new child. It reports whether the shard is usable.
func (p *recordProcessor) open() bool {
	if p.shard != nil {
		return true
	}
	shard, inherited, err := p.w.opener.open(p.ctx, p.shardID, p.last)
	if err != nil {
		p.stop("open", err)
		return false
	}
	p.shard, p.inherited = shard, inherited
	return true
}

// tail is where the records this shard has not handled begin, for its children: after its
// checkpoint; or, while it has none, the tail it inherited and all of its own records. Nil when
// everything read is handled.
func (p *recordProcessor) tail() []checkpoint.TailSegment {
	switch {
	case p.last == "":
		return append(slices.Clone(p.inherited), checkpoint.TailSegment{Shard: p.shardID})
	case p.last == p.lastRead && p.shard.Held() == 0:
		return nil
	}
	return []checkpoint.TailSegment{{Shard: p.shardID, After: p.last}}
}

// held is the number of events the shard's pipeline holds (0 before it opened).
func (p *recordProcessor) held() int {
	if p.shard == nil {
		return 0
	}
	return p.shard.Held()
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
		p.log.Info("shard handed off for balance", zap.String("checkpoint", p.last), zap.Int("held_not_written", p.held()))
	}
	p.finish()
	return true
}

// valid waits while the lease is suspended (it ran out locally and a fenced renewal has not landed
// yet: a peer may be about to take it), so that no batch starts writing then. It reports whether
// the shard may go on; a lease lost meanwhile stops it.
func (p *recordProcessor) valid() bool {
	if err := p.w.leases.WaitValid(p.ctx, p.shardID); err != nil {
		p.stop("lease check", err)
		return false
	}
	return true
}

// checkpoint moves the shard's checkpoint to wm when it advanced, straight through the lease
// store under the processor's context (not through the KCL's checkpointer, whose calls cannot be
// cancelled): a transient failure is retried there while the lease is ours. It reports whether
// the shard is still alive.
func (p *recordProcessor) checkpoint(wm string) bool {
	if wm == "" || wm == p.last {
		return true
	}
	switch ok, err := p.w.leases.Checkpoint(p.ctx, p.shardID, wm); {
	case err != nil:
		p.stop("checkpoint", err)
		return false
	case !ok:
		p.stop("checkpoint", lostError(p.shardID, "checkpoint"))
		return false
	}
	p.last = wm
	p.w.shards.checkpointed(p.shardID)
	return true
}

// stop ends the shard's processing: nothing more is processed or checkpointed. Why decides the
// rest. At the shutdown deadline, or when the lease is gone (lost, released, handed off), the
// next owner replays from the checkpoint and there is nothing to give up. Any other failure
// (a checkpoint write that cannot succeed, a drain that failed) leaves this worker holding a lease
// it cannot serve: the lease is abandoned (released, with the reason in the row) so a peer takes
// the shard, and the shard is shown as stopped on /readyz and worker_shard_stopped until a worker
// holds it again.
func (p *recordProcessor) stop(what string, err error) {
	p.dead = true
	switch {
	case p.w.hardStop.Err() != nil:
		p.log.Warn("shard stopped by shutdown deadline", zap.String("during", what), zap.Error(err))
	case p.leaseGone(err):
		p.log.Warn("shard lost; dropping its buffers, the next owner replays from the checkpoint",
			zap.String("during", what), zap.Error(err))
	default:
		reason := what + ": " + err.Error()
		p.w.shards.markStopped(p.shardID, reason)
		released, rerr := p.w.leases.Abandon(p.ctx, p.shardID, reason)
		p.log.Error("shard stopped: dropping its buffers and releasing its lease so a peer takes it from the checkpoint",
			zap.String("during", what), zap.Error(err), zap.Bool("released", released), zap.NamedError("release_error", rerr))
	}
	p.w.metrics.shardStops.WithLabelValues(what).Inc()
	p.finish()
}

// leaseGone reports whether err (or the processor's ownership context) says the lease is no longer
// this worker's to serve.
func (p *recordProcessor) leaseGone(err error) bool {
	return p.ctx.Err() != nil || errors.Is(err, checkpoint.ErrLeaseLost) || errors.Is(err, checkpoint.ErrLeaseReleased) ||
		errors.Is(err, checkpoint.ErrLeaseHandedOff) || errors.Is(err, checkpoint.ErrShardStopped)
}

// lostError is the error of a fenced write the store refused: the lease is someone else's.
func lostError(shardID, during string) error {
	return fmt.Errorf("shard %s: %s: %w", shardID, during, checkpoint.ErrLeaseLost)
}

// finish drops the shard's state; it runs once, at Shutdown or as soon as the shard is dead.
func (p *recordProcessor) finish() {
	p.finishMu.Lock()
	defer p.finishMu.Unlock()
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
	if p.stopLeaseHook != nil {
		p.stopLeaseHook()
	}
	p.w.shards.stop(p.shardID)
	p.w.unregister(p)
}

// mergeCancel returns a context cancelled when either parent is.
func mergeCancel(a, b context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(a)
	stop := context.AfterFunc(b, func() { cancel(context.Cause(b)) })
	return ctx, func() { stop(); cancel(context.Canceled) }
}

// shardRegistry tracks the shards this worker is processing, and those its processors had to stop,
// for /readyz and metrics.
type shardRegistry struct {
	mu      sync.Mutex
	now     func() time.Time
	shards  map[string]*shardState
	stopped map[string]stoppedShard
}

// stoppedShard is a shard whose processor had to stop (not a lost lease, not a shutdown): its lease
// was abandoned for a peer. It stays listed until a worker holds the shard again.
type stoppedShard struct {
	Reason string    `json:"reason"`
	At     time.Time `json:"at"`
	// TakenBy is the worker seen holding the shard since ("" while it waits for a new owner).
	TakenBy string `json:"taken_by,omitempty"`
}

// stoppedKeep is how long a stopped shard a peer took stays listed on /readyz (not as a problem).
const stoppedKeep = 10 * time.Minute

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
	delete(r.stopped, id)
}

// markStopped lists id as stopped by its processor.
func (r *shardRegistry) markStopped(id, reason string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopped == nil {
		r.stopped = map[string]stoppedShard{}
	}
	r.stopped[id] = stoppedShard{Reason: reason, At: r.now()}
}

// takenBy records that worker holds the stopped shard id now; it returns the entry.
func (r *shardRegistry) takenBy(id, worker string) stoppedShard {
	r.mu.Lock()
	defer r.mu.Unlock()
	s, ok := r.stopped[id]
	if ok && s.TakenBy == "" {
		s.TakenBy = worker
		r.stopped[id] = s
	}
	return s
}

// clearStopped forgets a stopped shard.
func (r *shardRegistry) clearStopped(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.stopped, id)
}

// stoppedShards returns the shards stopped by their processor, by id.
func (r *shardRegistry) stoppedShards() map[string]stoppedShard {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]stoppedShard, len(r.stopped))
	for id, s := range r.stopped {
		out[id] = s
	}
	return out
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
