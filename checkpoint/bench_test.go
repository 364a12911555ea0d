package checkpoint

import (
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestBenchFor(t *testing.T) {
	const base, max = 10 * time.Second, 10 * time.Minute
	for _, tc := range []struct {
		strikes int
		want    time.Duration
	}{
		{1, 10 * time.Second}, {2, 20 * time.Second}, {3, 40 * time.Second}, {4, 80 * time.Second},
		{6, 320 * time.Second}, {7, 10 * time.Minute}, {8, 10 * time.Minute}, {1000, 10 * time.Minute},
	} {
		if got := benchFor(base, max, tc.strikes); got != tc.want {
			t.Errorf("benchFor(%v, %v, %d) = %v, want %v", base, max, tc.strikes, got, tc.want)
		}
	}
	if got := benchFor(base, 15*time.Second, 2); got != 15*time.Second {
		t.Errorf("benchFor capped at 15s, 2 strikes = %v, want 15s", got)
	}
}

// A worker that abandons the same shard again and again benches it for one lease duration, then
// two, four, ... up to BenchMax; a checkpoint of the shard landing here starts the strikes over,
// and so does a peer that took the shard and had to stop it too (the fault is not this host's
// alone: the bench is lifted at once).
func TestAbandonBenchGrows(t *testing.T) {
	t.Parallel()
	h := fakeHarness(t)
	h.kin.set(shardIDs(1)...)
	lease := h.tm.lease
	clk := &manualClock{}
	// The manual clock is real time plus its offset: "just before a bench ends" is margin before
	// it, more than this test's own delays between an Abandon and the take that follows under a
	// loaded -race run (1 ms was not: CI failed it).
	margin := lease / 4
	a := h.store("a", noBalance, func(c *Config) { c.Now = clk.Now; c.BenchMax = 3 * lease })
	bs := h.store("b", noBalance)
	st := "shardId-000000000000"

	// abandon takes the shard and abandons it, then checks how long a keeps off it.
	abandon := func(want time.Duration) {
		t.Helper()
		if err := take(h.ctx, a, st); err != nil {
			t.Fatalf("take before abandon #%v: %v", testutil.ToFloat64(a.m.abandoned)+1, err)
		}
		if ok, err := a.Abandon(h.ctx, st, "checkpoint: refused"); !ok || err != nil {
			t.Fatalf("Abandon = %v, %v", ok, err)
		}
		clk.advance(want - margin)
		if err := take(h.ctx, a, st); !errors.Is(err, ErrStoppedHere) {
			t.Fatalf("take just before the %v bench ends: %v, want ErrStoppedHere", want, err)
		}
		clk.advance(margin)
	}
	abandon(lease)
	abandon(2 * lease)
	abandon(3 * lease) // 4 leases, capped at BenchMax
	abandon(3 * lease)

	// A checkpoint landing here: the shard can be served from this worker; the strikes start over.
	if err := take(h.ctx, a, st); err != nil {
		t.Fatal(err)
	}
	if err := checkpoint(h.ctx, a, st, "5"); err != nil {
		t.Fatal(err)
	}
	if ok, err := a.Release(h.ctx, st); !ok || err != nil {
		t.Fatalf("Release = %v, %v", ok, err)
	}
	abandon(lease)
	abandon(2 * lease)

	// a abandons again (bench: 4 leases, capped to 3); b takes the shard and has to stop it too.
	if err := take(h.ctx, a, st); err != nil {
		t.Fatal(err)
	}
	if ok, err := a.Abandon(h.ctx, st, "checkpoint: refused"); !ok || err != nil {
		t.Fatalf("Abandon = %v, %v", ok, err)
	}
	if err := take(h.ctx, a, st); !errors.Is(err, ErrStoppedHere) {
		t.Fatalf("take right after the abandon: %v, want ErrStoppedHere", err)
	}
	if err := take(h.ctx, bs, st); err != nil {
		t.Fatalf("b takes the abandoned shard: %v", err)
	}
	if r := h.row(st); r.Owner != "b" || r.StopBy != "a" {
		t.Fatalf("row after b took it: %+v, want owner b and the stop by a kept", r)
	}
	if ok, err := bs.Abandon(h.ctx, st, "checkpoint: refused"); !ok || err != nil {
		t.Fatalf("b's Abandon = %v, %v", ok, err)
	}
	if _, err := a.Read(h.ctx, st); err != nil { // as the KCL's FetchCheckpoint does before a take
		t.Fatal(err)
	}
	if err := take(h.ctx, a, st); err != nil {
		t.Fatalf("a takes the shard b stopped too, within its own bench: %v, want the bench lifted", err)
	}
	// ... and the strikes started over: the next abandon benches for one lease.
	if ok, err := a.Abandon(h.ctx, st, "checkpoint: refused"); !ok || err != nil {
		t.Fatalf("Abandon = %v, %v", ok, err)
	}
	clk.advance(lease - margin)
	if err := take(h.ctx, a, st); !errors.Is(err, ErrStoppedHere) {
		t.Fatalf("take within the first bench after the strikes started over: %v", err)
	}
	clk.advance(margin)
	if err := take(h.ctx, a, st); err != nil {
		t.Fatalf("take after one lease: %v, want the strikes started over", err)
	}
}
