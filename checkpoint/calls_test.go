package checkpoint

import (
	"testing"

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
