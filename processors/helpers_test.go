package processors

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kinesis-events/pipeline/event"
	"github.com/kinesis-events/pipeline/internal/fakeclock"
	"github.com/kinesis-events/pipeline/internal/kinesisfake"
	"github.com/kinesis-events/pipeline/internal/names"
)

var t0 = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

// newClock is the pipeline's clock in tests: Sleep advances it instead of waiting.
func newClock() *fakeclock.Clock { return fakeclock.New(t0) }

// stored is one record a fake stream accepted.
type stored = kinesisfake.Record

// analytics decodes the analytics records of a stream.
func analytics(t testing.TB, kin *kinesisfake.Fake, stream string) []event.Analytics {
	t.Helper()
	var out []event.Analytics
	for _, r := range kin.Records(stream) {
		var a event.Analytics
		if err := json.Unmarshal(r.Data, &a); err != nil {
			t.Fatalf("stream %s: record is not an analytics record: %v: %s", stream, err, r.Data)
		}
		if r.Key != a.CustomerID {
			t.Fatalf("stream %s: partition key %q, customer %q", stream, r.Key, a.CustomerID)
		}
		out = append(out, a)
	}
	return out
}

func quarantine(t testing.TB, kin *kinesisfake.Fake, stream string) []event.Quarantine {
	t.Helper()
	var out []event.Quarantine
	for _, r := range kin.Records(stream) {
		var q event.Quarantine
		if err := json.Unmarshal(r.Data, &q); err != nil {
			t.Fatalf("stream %s: %v", stream, err)
		}
		out = append(out, q)
	}
	return out
}

func deadLetters(t testing.TB, kin *kinesisfake.Fake, stream string) []event.DeadLetter {
	t.Helper()
	var out []event.DeadLetter
	for _, r := range kin.Records(stream) {
		var d event.DeadLetter
		if err := json.Unmarshal(r.Data, &d); err != nil {
			t.Fatalf("stream %s: %v", stream, err)
		}
		out = append(out, d)
	}
	return out
}

// flakyStore wraps a DedupeStore and fails calls while down is set, counting calls.
type flakyStore struct {
	DedupeStore
	mu       sync.Mutex
	down     func(op string, n int) error // n counts calls of op from 1
	calls    map[string]int
	putItems [][]Item
}

func newFlakyStore(inner DedupeStore) *flakyStore {
	return &flakyStore{DedupeStore: inner, calls: map[string]int{}}
}

func (s *flakyStore) hit(op string) error {
	s.mu.Lock()
	s.calls[op]++
	n, down := s.calls[op], s.down
	s.mu.Unlock()
	if down != nil {
		return down(op, n)
	}
	return nil
}

func (s *flakyStore) Get(ctx context.Context, keys []string) ([]Item, []string, error) {
	if err := s.hit("get"); err != nil {
		return nil, nil, err
	}
	return s.DedupeStore.Get(ctx, keys)
}

func (s *flakyStore) Put(ctx context.Context, items []Item) ([]Item, error) {
	if err := s.hit("put"); err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.putItems = append(s.putItems, append([]Item(nil), items...))
	s.mu.Unlock()
	return s.DedupeStore.Put(ctx, items)
}

func (s *flakyStore) Swap(ctx context.Context, it Item, prev uint64) (bool, error) {
	if err := s.hit("swap"); err != nil {
		return false, err
	}
	return s.DedupeStore.Swap(ctx, it, prev)
}

func (s *flakyStore) count(op string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[op]
}

func (s *flakyStore) setDown(fn func(op string, n int) error) {
	s.mu.Lock()
	s.down = fn
	s.mu.Unlock()
}

var testKey = event.Key{ID: "k1", Secret: []byte("0123456789abcdef0123456789abcdef")}

func testKeyring(t testing.TB) *event.Keyring {
	t.Helper()
	k, err := event.NewKeyring(testKey, event.Key{ID: "old", Secret: []byte("fedcba9876543210fedcba"), RetiredAt: t0.Add(-time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// ev describes one test event.
type ev struct {
	id, typ, cust string
	seq           uint64
	props         string // JSON object, default {"n":<seq>}
	key           string // signing key id, default k1
}

// raw builds the signed raw record of e, as the forwarder writes it.
func raw(t testing.TB, kr *event.Keyring, e ev) []byte {
	t.Helper()
	if e.typ == "" {
		e.typ = "page_view"
	}
	if e.props == "" {
		e.props = `{"n":` + strconv.FormatUint(e.seq, 10) + `}`
	}
	if e.key == "" {
		e.key = "k1"
	}
	d := &event.Detail{EventID: e.id, CustomerID: e.cust, Seq: e.seq, OccurredAt: "2026-11-26T11:59:00Z", Properties: json.RawMessage(e.props)}
	if err := kr.Sign(e.typ, d, "k1"); err != nil {
		t.Fatal(err)
	}
	d.KeyID = e.key
	detail, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(event.Raw{V: event.RawVersion, Type: e.typ, Source: "test", ForwardedAt: t0, Detail: detail})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// seqGen numbers records of a test shard.
type seqGen struct{ n int }

func (g *seqGen) next() string {
	g.n++
	return fmt.Sprintf("%056d", g.n)
}

func (g *seqGen) recs(t testing.TB, kr *event.Keyring, at time.Time, evs ...ev) []Record {
	t.Helper()
	out := make([]Record, len(evs))
	for i, e := range evs {
		out[i] = Record{SequenceNumber: g.next(), Data: raw(t, kr, e), PartitionKey: e.cust, ArrivedAt: at}
	}
	return out
}

func testConfig() Config {
	return Config{
		Routes:           map[string]string{"page_view": names.AnalyticsStream("page_view"), "purchase": names.AnalyticsStream("purchase")},
		DefaultStream:    names.OtherStream,
		QuarantineStream: names.QuarantineStream,
		DLQStream:        names.DLQStream,
		LateStream:       names.LateStream,
		ReorderWindow:    30 * time.Second,
		RetryBase:        100 * time.Millisecond,
		RetryMax:         time.Second,
	}
}

// harness is a pipeline on fakes.
type harness struct {
	t     testing.TB
	p     *Pipeline
	kin   *kinesisfake.Fake
	store *flakyStore
	mem   *MemoryDedupe
	clock *fakeclock.Clock
	kr    *event.Keyring
	reg   *prometheus.Registry
	gen   seqGen
}

func newHarness(t testing.TB, cfg Config) *harness {
	t.Helper()
	h := &harness{t: t, kin: kinesisfake.New(), clock: newClock(), kr: testKeyring(t), reg: prometheus.NewRegistry()}
	// Every write through the harness keeps to the Kinesis limits and the per-key rule.
	t.Cleanup(func() { h.kin.CheckViolations(t) })
	h.mem = NewMemoryDedupe(h.clock.Now)
	h.store = newFlakyStore(h.mem)
	p, err := New(cfg, Deps{Kinesis: h.kin, Dedupe: h.store, Keys: h.kr, Registerer: h.reg, Now: h.clock.Now, Sleep: h.clock.Sleep})
	if err != nil {
		t.Fatal(err)
	}
	h.p = p
	return h
}

// open opens a shard of the harness's pipeline (a new shard, no parents).
func (h *harness) open(id string) *Shard { return openShard(h.t, h.p, id) }

func openShard(t testing.TB, p *Pipeline, id string) *Shard {
	t.Helper()
	s, err := p.OpenShard(context.Background(), id, Lineage{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// durable reads a shard's state as the store holds it (what a new owner would load), without
// registering a writer.
func (h *harness) durable(shard string) *shardState {
	h.t.Helper()
	l := &stateLog{p: h.p, shard: shard}
	st := newShardState(h.p.cfg.L1Size)
	m, _, found, err := l.readManifest(context.Background(), shard)
	if err != nil {
		h.t.Fatal(err)
	}
	if found {
		if _, err := l.load(context.Background(), shard, m, st, nil); err != nil {
			h.t.Fatal(err)
		}
	}
	return st
}

// cursorOf returns a customer's cursor in st (0 when unknown).
func cursorOf(st *shardState, customer string) uint64 {
	if c := st.custs[custKeyOf(customer)]; c != nil {
		return c.cursor
	}
	return 0
}

func (h *harness) recs(evs ...ev) []Record { return h.gen.recs(h.t, h.kr, h.clock.Now(), evs...) }

func (h *harness) process(s *Shard, recs []Record) string {
	h.t.Helper()
	wm, err := s.Process(context.Background(), recs)
	if err != nil {
		h.t.Fatalf("Process: %v", err)
	}
	return wm
}

func (h *harness) counter(name string, labels ...string) float64 {
	h.t.Helper()
	mfs, err := h.reg.Gather()
	if err != nil {
		h.t.Fatal(err)
	}
	total := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				ok := false
				for _, lp := range m.GetLabel() {
					if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
						ok = true
					}
				}
				if !ok {
					continue next
				}
			}
			switch {
			case m.Counter != nil:
				total += m.Counter.GetValue()
			case m.Gauge != nil:
				total += m.Gauge.GetValue()
			case m.Histogram != nil:
				total += m.Histogram.GetSampleSum()
			}
		}
	}
	return total
}

// seqs lists (customer:seq) of analytics records, for order assertions.
func seqs(as []event.Analytics) []string {
	out := make([]string, len(as))
	for i, a := range as {
		out[i] = fmt.Sprintf("%s:%d", a.CustomerID, a.Seq)
		if a.Gap > 0 {
			out[i] += fmt.Sprintf("+gap%d", a.Gap)
		}
		if a.Late {
			out[i] += "+late"
		}
	}
	return out
}

// perCustomer is seqs grouped by customer, each customer's records in stream order: the order that
// matters (records of different customers may interleave in any order).
func perCustomer(as []event.Analytics) []string {
	as = slices.Clone(as)
	slices.SortStableFunc(as, func(a, b event.Analytics) int { return strings.Compare(a.CustomerID, b.CustomerID) })
	return seqs(as)
}
