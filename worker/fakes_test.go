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
}

// fakeLeases is a hand-written shardLeases: the test decides when a lease is handed off or lost.
type fakeLeases struct {
	mu       sync.Mutex
	leases   map[string]*fakeLease
	released []string
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
		f.leases[id] = l
	}
	return l
}

func (f *fakeLeases) LeaseContext(id string) context.Context     { return f.lease(id).ctx }
func (f *fakeLeases) OwnershipContext(id string) context.Context { return f.lease(id).own }

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
	return true, nil
}

// handOff asks for the lease to go to a peer: the lease context ends, the ownership context stays.
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
// its batch as the watermark (or err), Drain returns drainWM (or drainErr).
type fakeShard struct {
	mu        sync.Mutex
	batches   [][]processors.Record
	err       error
	drainWM   string
	drainErr  error
	drained   bool
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
	if len(recs) == 0 {
		return "", nil
	}
	return recs[len(recs)-1].SequenceNumber, nil
}

func (s *fakeShard) Drain(ctx context.Context) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.drained = true
	if s.drainErr != nil {
		s.closed = true
		return "", s.drainErr
	}
	return s.drainWM, ctx.Err()
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

// fakeCheckpointer is the KCL's per-shard checkpointer: it records every Checkpoint (SHARD_END
// for nil) and fails with err when set.
type fakeCheckpointer struct {
	mu   sync.Mutex
	seqs []string
	err  error
}

func (c *fakeCheckpointer) Checkpoint(seq *string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return c.err
	}
	if seq == nil {
		c.seqs = append(c.seqs, checkpoint.ShardEnd)
	} else {
		c.seqs = append(c.seqs, *seq)
	}
	return nil
}

func (c *fakeCheckpointer) PrepareCheckpoint(*string) (kcl.IPreparedCheckpointer, error) {
	return nil, errors.New("fakeCheckpointer: PrepareCheckpoint not supported")
}

func (c *fakeCheckpointer) written() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.seqs...)
}

// procHarness is one recordProcessor with fakes around it.
type procHarness struct {
	t      *testing.T
	leases *fakeLeases
	shard  *fakeShard
	cp     *fakeCheckpointer
	env    *processorEnv
	p      *recordProcessor
	hard   context.CancelFunc
}

const testShard = "shardId-000000000000"

func newProcHarness(t *testing.T) *procHarness {
	t.Helper()
	hard, cancel := context.WithCancel(t.Context())
	h := &procHarness{t: t, leases: newFakeLeases(), shard: &fakeShard{}, cp: &fakeCheckpointer{}, hard: cancel}
	h.env = &processorEnv{
		log:      zap.NewNop(),
		leases:   h.leases,
		newShard: func(string) batchProcessor { return h.shard },
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
