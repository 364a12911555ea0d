package checkpoint

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// Every lease-store call counts in checkpoint_calls_total by operation, whatever its outcome: the
// spike summary adds them up to show the lease table's traffic.
func TestCallsCounted(t *testing.T) {
	t.Parallel()
	h := fakeHarness(t)
	h.kin.set(shardIDs(1)...)
	s := h.store("a", noBalance)
	before := testutil.ToFloat64(s.m.calls.WithLabelValues("GetItem"))
	for range 3 {
		if _, err := s.Read(h.ctx, "shardId-000000000000"); err != nil {
			t.Fatal(err)
		}
	}
	if got := testutil.ToFloat64(s.m.calls.WithLabelValues("GetItem")) - before; got != 3 {
		t.Fatalf("GetItem calls counted %v, want 3", got)
	}
}

// Peek answers from the cached scan: many peeks at other workers' rows cost at most one Scan per
// ScanInterval and no GetItem at all.
func TestPeekServesTheScan(t *testing.T) {
	t.Parallel()
	h := fakeHarness(t)
	h.kin.set(shardIDs(2)...)
	b := h.store("b", noBalance)
	st := "shardId-000000000000"
	if err := take(h.ctx, b, st); err != nil {
		t.Fatal(err)
	}
	if err := checkpoint(h.ctx, b, st, "7"); err != nil {
		t.Fatal(err)
	}
	a := h.store("a", noBalance, func(c *Config) { c.ScanInterval = time.Hour })
	gets := testutil.ToFloat64(a.m.calls.WithLabelValues("GetItem"))
	scans := testutil.ToFloat64(a.m.calls.WithLabelValues("Scan"))
	for range 5 {
		row, err := a.Peek(h.ctx, st)
		if err != nil || row == nil || row.Owner != "b" || row.Checkpoint != "7" {
			t.Fatalf("Peek = %+v, %v; want b's row at 7", row, err)
		}
		if row, err := a.Peek(h.ctx, "shardId-000000000001"); err != nil || row != nil {
			t.Fatalf("Peek of a shard without a row = %+v, %v", row, err)
		}
	}
	if n := testutil.ToFloat64(a.m.calls.WithLabelValues("GetItem")) - gets; n != 0 {
		t.Errorf("10 peeks made %v GetItem calls, want 0", n)
	}
	if n := testutil.ToFloat64(a.m.calls.WithLabelValues("Scan")) - scans; n > 1 {
		t.Errorf("10 peeks made %v scans, want at most 1", n)
	}
}
