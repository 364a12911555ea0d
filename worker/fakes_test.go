package worker

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/prometheus/client_golang/prometheus"
	kcl "github.com/vmware/vmware-go-kcl-v2/clientlibrary/interfaces"
	"go.uber.org/zap"

	"github.com/kinesis-events/pipeline/checkpoint"
	"github.com/kinesis-events/pipeline/processors"
)

// fakeLease is one lease of fakeLeases: its two contexts, as checkpoint.Store hands them out.
type fakeLease struct {
	ctx       context.Context
	cancel    context.CancelCauseFunc
	own       context.Context
	ownCancel context.CancelCauseFunc
	// valid is closed while the lease is valid; a suspended lease has an open one.
	valid chan struct{}
}

// fakeLeases is a hand-written shardLeases: the test decides when a lease is handed off or lost.
type fakeLeases struct {
	mu        sync.Mutex
	leases    map[string]*fakeLease
	released  []string
	abandoned []string // reasons given to Abandon
	seqs      []string // checkpoints written
	cpErr     error    // Checkpoint fails with it when set
	cpLost    bool     // Checkpoint finds the lease lost when set
	busy      int      // batches marked in flight (Busy) and not done
	released0 int      // releases made while a batch was in flight
	finished  map[string][]checkpoint.TailSegment
	// finishRefused and finishErr are Finish's answer (default true, nil).
	finishRefused bool
	finishErr     error
}

func (f *fakeLeases) Busy(string) func() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.busy++
	var once sync.Once
	return func() {
		once.Do(func() {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.busy--
		})
	}
}

func (f *fakeLeases) inBatch() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.busy > 0
}

func newFakeLeases() *fakeLeases { return &fakeLeases{leases: map[string]*fakeLease{}} }

func (f *fakeLeases) lease(id string) *fakeLease {
	f.mu.Lock()
	defer f.mu.Unlock()
	l := f.leases[id]
	if l == nil {
		l = &fakeLease{}
		l.ctx, l.cancel = context.WithCancelCause(context.Background())
		l.own, l.ownCancel = context.WithCancelCause(context.Background())
		l.valid = make(chan struct{})
		close(l.valid)
		f.leases[id] = l
	}
	return l
}

func (f *fakeLeases) LeaseContext(id string) context.Context     { return f.lease(id).ctx }
func (f *fakeLeases) OwnershipContext(id string) context.Context { return f.lease(id).own }

// WaitValid mimics checkpoint.Store.WaitValid: nil while valid, blocking while suspended, the
// ownership context's cause once the lease ended.
func (f *fakeLeases) WaitValid(ctx context.Context, id string) error {
	l := f.lease(id)
	f.mu.Lock()
	valid := l.valid
	f.mu.Unlock()
	select {
	case <-l.own.Done():
		return context.Cause(l.own)
	default:
	}
	select {
	case <-valid:
		return nil
	case <-l.own.Done():
		return context.Cause(l.own)
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// suspend makes the lease run out locally; resume makes it valid again.
func (f *fakeLeases) suspend(id string) {
	l := f.lease(id)
	f.mu.Lock()
	defer f.mu.Unlock()
	l.valid = make(chan struct{})
}

func (f *fakeLeases) resume(id string) {
	l := f.lease(id)
	f.mu.Lock()
	defer f.mu.Unlock()
	select {
	case <-l.valid:
	default:
		close(l.valid)
	}
}

func (f *fakeLeases) Checkpoint(ctx context.Context, id, seq string) (bool, error) {
	l := f.lease(id)
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case f.cpErr != nil:
		return false, f.cpErr
	case l.own.Err() != nil || f.cpLost:
		return false, nil
	case ctx.Err() != nil:
		return false, ctx.Err()
	}
	f.seqs = append(f.seqs, seq)
	return true, nil
}

func (f *fakeLeases) written() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.seqs...)
}

func (f *fakeLeases) Abandon(_ context.Context, id, reason string) (bool, error) {
	l := f.lease(id)
	cause := fmt.Errorf("shard %s: %w: %s", id, checkpoint.ErrShardStopped, reason)
	l.cancel(cause)
	l.ownCancel(cause)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.abandoned = append(f.abandoned, reason)
	return true, nil
}

func (f *fakeLeases) abandons() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.abandoned...)
}

func (f *fakeLeases) Release(_ context.Context, id string) (bool, error) {
	l := f.lease(id)
	cause := fmt.Errorf("shard %s: %w", id, checkpoint.ErrLeaseReleased)
	if errors.Is(context.Cause(l.ctx), checkpoint.ErrLeaseHandedOff) {
		cause = context.Cause(l.ctx)
	}
	l.cancel(cause)
	l.ownCancel(cause)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.released = append(f.released, id)
	if f.busy > 0 {
		f.released0++
	}
	return true, nil
}

// handOff asks for the lease to go to a peer: the lease context ends, the ownership context stays.
func (f *fakeLeases) Finish(_ context.Context, id string, tail []checkpoint.TailSegment) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.finishErr != nil || f.finishRefused {
		return false, f.finishErr
	}
	if f.finished == nil {
		f.finished = map[string][]checkpoint.TailSegment{}
	}
	f.finished[id] = tail
	return true, nil
}

func (f *fakeLeases) finishedWith(id string) ([]checkpoint.TailSegment, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	t, ok := f.finished[id]
	return t, ok
}

func (f *fakeLeases) handOff(id string) {
	f.lease(id).cancel(fmt.Errorf("shard %s: %w", id, checkpoint.ErrLeaseHandedOff))
}

// lose fences the lease: both contexts end.
func (f *fakeLeases) lose(id string) {
	l := f.lease(id)
	cause := &checkpoint.LeaseLostError{ShardID: id, Reason: "fenced"}
	l.cancel(cause)
	l.ownCancel(cause)
}

func (f *fakeLeases) releases() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.released...)
}

// fakeShard is a hand-written batchProcessor: each Process returns the last sequence number of
// its batch as the watermark (or err), or wm when set.
type fakeShard struct {
	mu        sync.Mutex
	batches   [][]processors.Record
	err       error
	wm        *string
	held      int
	closed    bool
	processed func(ctx context.Context) // called inside Process, when set
}

func (s *fakeShard) Process(ctx context.Context, recs []processors.Record) (string, error) {
	if hook := s.processed; hook != nil {
		hook(ctx)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return "", processors.ErrShardClosed
	}
	if err := ctx.Err(); err != nil {
		s.closed = true
		return "", err
	}
	if s.err != nil {
		s.closed = true
		return "", s.err
	}
	s.batches = append(s.batches, recs)
	if s.wm != nil {
		return *s.wm, nil
	}
	if len(recs) == 0 {
		return "", nil
	}
	return recs[len(recs)-1].SequenceNumber, nil
}

// fakeOpener opens the fake shard, with the tail the test says it inherited.
type fakeOpener struct {
	shard     *fakeShard
	inherited []checkpoint.TailSegment
	err       error
	opened    int
}

func (o *fakeOpener) open(context.Context, string, string) (batchProcessor, []checkpoint.TailSegment, error) {
	o.opened++
	if o.err != nil {
		return nil, nil, o.err
	}
	return o.shard, o.inherited, nil
}

func (s *fakeShard) Held() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.held
}

func (s *fakeShard) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
}

func (s *fakeShard) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

func (s *fakeShard) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.batches)
}

// kclCheckpointerUnused is the KCL's per-shard checkpointer: the processor checkpoints through
// the lease store, so any call here fails the test.
type kclCheckpointerUnused struct{ t *testing.T }

func (c kclCheckpointerUnused) Checkpoint(*string) error {
	c.t.Errorf("the processor checkpointed through the KCL's checkpointer")
	return errors.New("unused")
}

func (c kclCheckpointerUnused) PrepareCheckpoint(*string) (kcl.IPreparedCheckpointer, error) {
	c.t.Errorf("the processor used the KCL's checkpointer")
	return nil, errors.New("unused")
}

// procHarness is one recordProcessor with fakes around it.
type procHarness struct {
	t      *testing.T
	leases *fakeLeases
	shard  *fakeShard
	opener *fakeOpener
	cp     kclCheckpointerUnused
	env    *processorEnv
	p      *recordProcessor
	hard   context.CancelFunc
}

const testShard = "shardId-000000000000"

func newProcHarness(t *testing.T) *procHarness {
	t.Helper()
	hard, cancel := context.WithCancel(t.Context())
	h := &procHarness{t: t, leases: newFakeLeases(), shard: &fakeShard{}, cp: kclCheckpointerUnused{t: t}, hard: cancel}
	h.opener = &fakeOpener{shard: h.shard}
	h.env = &processorEnv{
		log:      zap.NewNop(),
		leases:   h.leases,
		opener:   h.opener,
		shards:   &shardRegistry{now: time.Now, shards: map[string]*shardState{}},
		metrics:  newMetrics(prometheus.NewRegistry()),
		hardStop: hard,
	}
	h.p = factory{env: h.env}.CreateProcessor().(*recordProcessor)
	h.p.Initialize(&kcl.InitializationInput{ShardId: testShard,
		ExtendedSequenceNumber: &kcl.ExtendedSequenceNumber{SequenceNumber: aws.String("")}})
	t.Cleanup(cancel)
	return h
}

// batch hands the processor records with the given sequence numbers, as the KCL's consumer does.
func (h *procHarness) batch(behindMs int64, seqs ...string) {
	recs := make([]ktypes.Record, len(seqs))
	for i, s := range seqs {
		recs[i] = ktypes.Record{SequenceNumber: aws.String(s), Data: []byte(s), PartitionKey: aws.String("k")}
	}
	h.p.ProcessRecords(&kcl.ProcessRecordsInput{Records: recs, MillisBehindLatest: behindMs, Checkpointer: h.cp})
}

func (h *procHarness) registered() bool {
	_, ok := h.env.shards.snapshot()[testShard]
	return ok
}
