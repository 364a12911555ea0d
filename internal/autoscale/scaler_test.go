package autoscale

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/smithy-go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/kinesis-events/pipeline/internal/reshard/reshardtest"
)

// limitsKinesis adds DescribeLimits to the fake control plane: unknown (as on kinesalite), or
// a limit with the open shards counted across its streams.
type limitsKinesis struct {
	*reshardtest.Kinesis
	limit   int // 0: UnknownOperationException
	streams []string
}

func (k limitsKinesis) DescribeLimits(context.Context, *kinesis.DescribeLimitsInput, ...func(*kinesis.Options)) (*kinesis.DescribeLimitsOutput, error) {
	if k.limit == 0 {
		return nil, &smithy.GenericAPIError{Code: "UnknownOperationException"}
	}
	open := 0
	for _, s := range k.streams {
		open += k.Open(s)
	}
	return &kinesis.DescribeLimitsOutput{ShardLimit: aws.Int32(int32(k.limit)), OpenShardCount: aws.Int32(int32(open))}, nil
}

// scriptedSource serves a constant rate per stream, per second, over any window.
type scriptedSource struct {
	mu    sync.Mutex
	rates map[string]float64
}

func (s *scriptedSource) set(stream string, rate float64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rates[stream] = rate
}

func (s *scriptedSource) Load(_ context.Context, streams []string, from, to time.Time) (Window, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	w := Window{From: from, To: to, Samples: map[string][]Sample{}}
	for _, name := range streams {
		if r := s.rates[name]; r > 0 {
			w.Samples[name] = steady(to, to.Sub(from), r, 0)
		}
	}
	return w, nil
}

type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *testClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newScaler(t *testing.T, s Store, k Kinesis, src Source, ecs ScalingAPI, clk *testClock, id string, reg prometheus.Registerer, streams ...string) *Scaler {
	t.Helper()
	pol := LocalPolicy()
	pol.OutCooldown = 10 * time.Second
	cfg := Config{Table: s.Table, RawStream: "raw", Streams: streams, Policy: pol,
		Workers: WorkerPolicy{ShardsPerWorker: 1, MinWorkers: 2, MaxWorkers: 6}, ECS: ECSTarget{ResourceID: "service/c/s"},
		Interval: time.Second, ReshardPoll: time.Millisecond, ID: id, Now: clk.Now, Registerer: reg}
	sc, err := New(cfg, k, s.DDB, src, ecs)
	if err != nil {
		t.Fatal(err)
	}
	return sc
}

// TestScalerTick: decisions per stream, committed to the state rows before the reshard runs and
// completed after; cool-down respected; an on-demand stream only watched; the fleet maximum
// follows the raw stream; a second instance follows while the first leads.
func TestScalerTick(t *testing.T) {
	ctx, _, store := leaseTable(t)
	k := reshardtest.New()
	k.AddStream("raw", 2)
	k.AddStream("out", 1)
	k.AddStream("od", 4)
	k.SetOnDemand("od", true)
	src := &scriptedSource{rates: map[string]float64{"raw": 180, "od": 1000}}
	ecs := &fakeScaling{registered: true, min: 2, max: 2}
	clk := &testClock{t: t0}
	reg := prometheus.NewRegistry()
	lk := limitsKinesis{Kinesis: k}
	a := newScaler(t, store, lk, src, ecs, clk, "a", reg, "raw", "out", "od")

	rep, err := a.Tick(ctx)
	if err != nil {
		t.Fatal(err)
	}
	byStream := map[string]Decision{}
	for _, d := range rep.Decisions {
		byStream[d.Stream] = d
	}
	if d := byStream["raw"]; !rep.Leader || d.Action != ActionOut || d.To != 4 || !d.Applied || d.Method != "uniform" || d.Error != "" {
		t.Fatalf("raw: %+v (leader %v)", d, rep.Leader)
	}
	if d := byStream["out"]; d.Action != ActionHold {
		t.Fatalf("out: %+v", d)
	}
	if d := byStream["od"]; d.Action != ActionWatch || d.To != 20 {
		t.Fatalf("od: %+v", d)
	}
	if k.Open("raw") != 4 || k.Open("od") != 4 || k.Calls("UpdateShardCount") != 1 {
		t.Fatalf("open raw %d, od %d, %d UpdateShardCount calls", k.Open("raw"), k.Open("od"), k.Calls("UpdateShardCount"))
	}
	if rep.Fleet == nil || rep.Fleet.Workers != 4 || ecs.max != 4 || ecs.min != 2 {
		t.Fatalf("fleet %+v, ECS target %d..%d; want 4 workers for 4 raw shards", rep.Fleet, ecs.min, ecs.max)
	}
	h, _, err := store.Load(ctx, "raw")
	if err != nil {
		t.Fatal(err)
	}
	if len(h.Calls) != 1 || len(h.Decisions) != 1 || !h.Decisions[0].Applied || h.Method != "uniform" || h.LastReshard.IsZero() {
		t.Fatalf("raw state %+v", h)
	}

	// A second instance only follows.
	b := newScaler(t, store, lk, src, ecs, clk, "b", prometheus.NewRegistry(), "raw", "out", "od")
	clk.Add(time.Second)
	if rep, err := b.Tick(ctx); err != nil || rep.Leader || rep.LeaderID != "a" || len(rep.Decisions) != 0 {
		t.Fatalf("b: %+v, %v", rep, err)
	}

	// The load quadruples within the cool-down: blocked, recorded once.
	src.set("raw", 900)
	for range 2 {
		clk.Add(2 * time.Second)
		rep, err = a.Tick(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if d := rep.Decisions[0]; d.Action != ActionBlocked || !strings.Contains(d.Reason, "cool-down") {
			t.Fatalf("in the cool-down: %+v", d)
		}
	}
	// After it: doubles again (at most 2x per call).
	clk.Add(10 * time.Second)
	rep, err = a.Tick(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if d := rep.Decisions[0]; d.Action != ActionOut || d.From != 4 || d.To != 8 || !d.Applied {
		t.Fatalf("after the cool-down: %+v", d)
	}
	if ecs.max != 6 {
		t.Fatalf("ECS maximum %d, want the fleet maximum 6", ecs.max)
	}
	h, _, _ = store.Load(ctx, "raw")
	var actions []string
	for _, d := range h.Decisions {
		actions = append(actions, fmt.Sprintf("%s %d->%d", d.Action, d.From, d.To))
	}
	if got := strings.Join(actions, ", "); got != "scale-out 2->4, blocked 4->4, scale-out 4->8" || len(h.Calls) != 2 {
		t.Fatalf("raw history %q, %d calls", got, len(h.Calls))
	}
	if n := testutil.ToFloat64(a.m.reshards.WithLabelValues("raw", "out", "ok")); n != 2 {
		t.Fatalf("reshards_total{raw,out,ok} = %v", n)
	}
	if n := testutil.ToFloat64(a.m.decisions.WithLabelValues("raw", ActionBlocked)); n != 2 {
		t.Fatalf("decisions_total{raw,blocked} = %v", n)
	}
	if n := testutil.ToFloat64(a.m.callsLeft.WithLabelValues("raw")); n != 8 {
		t.Fatalf("calls_left{raw} = %v", n)
	}
}

// TestScalerAccountLimit: scale-outs share the account's headroom, in stream order.
func TestScalerAccountLimit(t *testing.T) {
	ctx, _, store := leaseTable(t)
	k := reshardtest.New()
	k.AddStream("raw", 2)
	k.AddStream("out", 2)
	src := &scriptedSource{rates: map[string]float64{"raw": 900, "out": 900}}
	clk := &testClock{t: t0}
	a := newScaler(t, store, limitsKinesis{Kinesis: k, limit: 7, streams: []string{"raw", "out"}}, src, &fakeScaling{}, clk, "a", prometheus.NewRegistry(), "raw", "out")
	rep, err := a.Tick(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if d := rep.Decisions[0]; d.Action != ActionOut || d.To != 4 {
		t.Fatalf("raw: %+v", d)
	}
	if d := rep.Decisions[1]; d.Action != ActionOut || d.To != 3 {
		t.Fatalf("out: %+v, want 2 -> 3 (the account's 7th shard)", d)
	}
}

// TestScalerRunReleases: Run gives the lease up when it stops, so another instance leads at once.
func TestScalerRunReleases(t *testing.T) {
	ctx, _, store := leaseTable(t)
	k := reshardtest.New()
	k.AddStream("raw", 2)
	src := &scriptedSource{rates: map[string]float64{}}
	clk := &testClock{t: t0}
	a := newScaler(t, store, limitsKinesis{Kinesis: k}, src, &fakeScaling{}, clk, "a", prometheus.NewRegistry(), "raw")
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- a.Run(runCtx) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, err := store.Read(ctx)
		if err == nil && st.Leader != nil && st.Leader.ID == "a" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a never led")
		}
		time.Sleep(20 * time.Millisecond)
	}
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	b := newScaler(t, store, limitsKinesis{Kinesis: k}, src, &fakeScaling{}, clk, "b", prometheus.NewRegistry(), "raw")
	if rep, err := b.Tick(ctx); err != nil || !rep.Leader {
		t.Fatalf("b after a stopped: %+v %v", rep, err)
	}
}

func TestConfigValidate(t *testing.T) {
	ok := Config{Streams: []string{"raw"}, ID: "x", Policy: AWSPolicy(), Workers: Defaults().Workers}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	bad := ok
	bad.Streams = []string{"raw", "raw", ""}
	bad.ID = ""
	bad.Policy.ScaleInBelow = 0.9
	bad.Policy.InCooldown = time.Second
	bad.Workers.MinWorkers = 0
	err := bad.Validate()
	for _, want := range []string{"listed twice", "ID", "scale-in below", "cool-down", "workers 0.."} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want it to report %q", err, want)
		}
	}
}

// TestScalerFleetFollowsLiveShards: with the fleet's view of the raw stream, the worker maximum
// counts the closed shards not yet finished (a backlog needs workers), and a quiet raw stream is
// not scaled in while they drain.
func TestScalerFleetFollowsLiveShards(t *testing.T) {
	ctx, _, store := leaseTable(t)
	k := reshardtest.New()
	k.AddStream("raw", 8)
	clk := &testClock{t: t0}
	pol := LocalPolicy()
	cfg := Config{Table: store.Table, RawStream: "raw", Streams: []string{"raw"}, Policy: pol, ID: "a", Now: clk.Now,
		Workers: WorkerPolicy{ShardsPerWorker: 2, MinWorkers: 1, MaxWorkers: 10}, Interval: time.Second, ReshardPoll: time.Millisecond,
		Registerer: prometheus.NewRegistry(),
		Fleet:      func(context.Context, string) (FleetView, error) { return FleetView{Live: 14, Draining: 6}, nil }}
	sc, err := New(cfg, limitsKinesis{Kinesis: k}, store.DDB, &scriptedSource{rates: map[string]float64{"raw": 10}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Seen for long enough, and no reshard for long: only the drain keeps it from scaling in.
	if ok, err := store.Save(ctx, "raw", History{Since: t0.Add(-time.Hour), LastReshard: t0.Add(-time.Hour)}, 0); !ok || err != nil {
		t.Fatal(ok, err)
	}
	rep, err := sc.Tick(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if d := rep.Decisions[0]; d.Action != ActionHold || !strings.Contains(d.Reason, "not finished 6 closed") {
		t.Fatalf("decision %+v", d)
	}
	if rep.Fleet == nil || rep.Fleet.OpenShards != 14 || rep.Fleet.Workers != 7 {
		t.Fatalf("fleet %+v, want 7 workers for 14 live shards", rep.Fleet)
	}
}
