package checkpoint

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kinesis-events/pipeline/internal/poll"
)

// A hand-off never cuts a batch: while the lease's processor is inside a batch (Busy), the
// hand-off's fallback timer does not release the lease, however long the batch takes (a batch can
// wait the breaker hold, 60 s by default, on one broken destination). Once the batch is over the
// processor releases it at its next call; the fallback fires HandOffTimeout after the batch ended
// only if it does not.
func TestHandOffFallbackWaitsForTheBatch(t *testing.T) {
	t.Parallel()
	h := fakeHarness(t)
	h.kin.set(shardIDs(2)...)
	var handedOff atomic.Value
	handOffTimeout := h.tm.lease / 4
	a := h.store("a", func(c *Config) {
		c.HandOffTimeout = handOffTimeout
		c.OnLeaseLost = func(id string, cause error) {
			if errors.Is(cause, ErrLeaseHandedOff) {
				handedOff.Store(id)
			}
		}
	})
	b := h.store("b")
	ids := []string{"shardId-000000000000", "shardId-000000000001"}
	for _, id := range ids {
		if err := take(h.ctx, a, id); err != nil {
			t.Fatalf("a takes %s: %v", id, err)
		}
	}
	// Both of a's processors are inside a batch from here on.
	done := map[string]func(){}
	for _, id := range ids {
		done[id] = a.Busy(id)
	}
	if err := take(h.ctx, b, ids[0]); !isRefused(err) {
		t.Fatalf("b Acquire = %v", err)
	}
	var id string
	poll.Until(t, h.tm.wait, 20*time.Millisecond, "hand-off signalled", func() (bool, string) {
		for _, st := range ids {
			if err := renew(h.ctx, a, st); err != nil {
				return false, err.Error()
			}
		}
		id, _ = handedOff.Load().(string)
		return id != "", ""
	})
	signalled := time.Now()
	own := a.OwnershipContext(id)
	// Three fallback periods inside the batch: the lease stays (renewed, as the KCL does).
	for time.Since(signalled) < 3*handOffTimeout {
		if err := renew(h.ctx, a, id); err != nil {
			t.Fatalf("renewal during the batch: %v", err)
		}
		time.Sleep(h.tm.renew) // the renewal cadence, not synchronisation
	}
	if own.Err() != nil || !a.Holds(id) || h.row(id).Owner != "a" {
		t.Fatalf("the fallback released the lease while its batch was in flight: ownership %v, row %+v", context.Cause(own), h.row(id))
	}
	// The batch writes and checkpoints under the lease, then ends.
	if err := checkpoint(h.ctx, a, id, "42"); err != nil {
		t.Fatalf("checkpoint at the end of the batch: %v", err)
	}
	ended := time.Now()
	done[id]()
	select {
	case <-own.Done():
	case <-time.After(handOffTimeout + h.tm.wait):
		t.Fatal("the lease was not released after the batch ended")
	}
	if after := time.Since(ended); after < handOffTimeout-100*time.Millisecond {
		t.Fatalf("released %v after the batch ended, before the fallback period %v", after, handOffTimeout)
	}
	if r := h.row(id); r.Owner != "" || r.Checkpoint != "42" {
		t.Fatalf("row after the fallback release: %+v", r)
	}
}
