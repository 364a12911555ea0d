package checkpoint

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/kinesis-events/pipeline/internal/poll"
)

// skewed offsets a store's wall clock: the timestamps it writes into rows move by d, its own
// timing does not (time.Now().Add keeps the monotonic reading), as on a machine whose clock is off.
func skewed(d time.Duration) func(*Config) {
	return func(c *Config) { c.Now = func() time.Time { return time.Now().Add(d) } }
}

// A lease is judged expired only by watching it unchanged for a lease duration on the observer's
// own clock, never by comparing the holder's LeaseTimeout with the observer's clock: with either
// machine 5 minutes off, a peer never takes a lease that is being renewed.
func TestClockSkewNoDoubleOwnership(t *testing.T) {
	for _, tc := range []struct {
		name             string
		holder, observer time.Duration
	}{
		{"holder 5m behind", -5 * time.Minute, 0},
		{"holder 5m ahead", 5 * time.Minute, 0},
		{"observer 5m behind", 0, -5 * time.Minute},
		{"observer 5m ahead", 0, 5 * time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := fakeHarness(t)
			h.kin.set(shardIDs(1)...)
			a := h.store("a", noBalance, skewed(tc.holder))
			b := h.store("b", noBalance, skewed(tc.observer))
			id := "shardId-000000000000"
			if err := take(h.ctx, a, id); err != nil {
				t.Fatal(err)
			}
			ctx := a.LeaseContext(id)
			// The holder renews at its cadence for one and a half lease durations; the peer keeps asking.
			for start := time.Now(); time.Since(start) < h.tm.lease+h.tm.lease/2; {
				if err := renew(h.ctx, a, id); err != nil {
					t.Fatalf("holder's renewal: %v", err)
				}
				if err := take(h.ctx, b, id); !errors.Is(err, ErrLeaseHeld) {
					t.Fatalf("peer Acquire of a renewed lease = %v, want ErrLeaseHeld", err)
				}
				time.Sleep(h.tm.renew) // the renewal cadence under test, not synchronisation
			}
			if ctx.Err() != nil || len(b.Held()) != 0 || h.row(id).Owner != "a" {
				t.Fatalf("holder's context %v, peer holds %v, row owner %q", context.Cause(ctx), b.Held(), h.row(id).Owner)
			}
		})
	}
}

// A balanced fleet with one worker whose clock is 5 minutes off converges and then holds still: no
// lease changes hands, nobody claims a lease for ever (a claim is judged by watching it, not by its
// ClaimedAt).
func TestClockSkewBalancedFleetHoldsStill(t *testing.T) {
	for _, skew := range []time.Duration{-5 * time.Minute, 5 * time.Minute} {
		t.Run(fmt.Sprint("skew ", skew), func(t *testing.T) {
			t.Parallel()
			h := fakeHarness(t)
			shards := shardIDs(4)
			h.kin.set(shards...)
			var all []string
			for _, s := range shards {
				all = append(all, s.ID)
			}
			// The normal worker takes everything first, so the skewed one must get its share through
			// a claim and a hand-off.
			d1 := newKCLDriver(h.store("w1"), all, h.tm)
			t.Cleanup(d1.stop)
			poll.Until(t, h.tm.wait, h.tm.sync, "w1 alone takes all", func() (bool, string) {
				return len(d1.s.Held()) == 4, fmt.Sprint(d1.s.Held())
			})
			d2 := newKCLDriver(h.store("w2", skewed(skew)), all, h.tm)
			t.Cleanup(d2.stop)
			loads := func() (bool, string) {
				n := map[string]int{}
				for _, r := range h.rows() {
					n[r.Owner]++
				}
				l1, l2 := len(d1.s.Held()), len(d2.s.Held())
				return n["w1"] == 2 && n["w2"] == 2 && l1 == 2 && l2 == 2, fmt.Sprintf("rows %v, held %d/%d", n, l1, l2)
			}
			poll.Until(t, h.tm.wait, h.tm.sync, "the fleet balances 2/2", loads)
			switches := func() int64 {
				var n int64
				for _, r := range h.rows() {
					n += r.OwnerSwitches
				}
				return n
			}
			settled := switches()
			for hold := time.Now().Add(h.tm.lease + h.tm.lease/2); time.Now().Before(hold); {
				if ok, state := loads(); !ok {
					t.Fatalf("balance lost: %s", state)
				}
				overlap := map[string]bool{}
				for _, id := range d1.s.Held() {
					overlap[id] = true
				}
				for _, id := range d2.s.Held() {
					if overlap[id] {
						t.Fatalf("both workers hold %s", id)
					}
				}
				time.Sleep(h.tm.sync) // sampling interval
			}
			if moved := switches() - settled; moved != 0 {
				ids := d1.s.Held()
				sort.Strings(ids)
				t.Fatalf("%d ownership changes after convergence (churn); w1 holds %v", moved, ids)
			}
		})
	}
}

// An observer counts a lease's unchanged time only across successful reads: when its own reads
// fail (DynamoDB paused or unreachable for it), the watch starts over at the next read that
// succeeds, so it cannot take the lease a full lease duration after it first saw it if its reads
// failed in between.
func TestObservationRestartsAfterFailedReads(t *testing.T) {
	t.Parallel()
	h := fakeHarness(t)
	h.kin.set(shardIDs(1)...)
	id := "shardId-000000000000"
	a := h.store("a", noBalance)
	gate := &gatedDDB{inner: h.raw}
	b := h.storeOn(gate, "b", noBalance)
	if err := take(h.ctx, a, id); err != nil {
		t.Fatal(err)
	}
	// a renews no more (its process is stuck): the lease state stays the same from here on.
	if err := take(h.ctx, b, id); !errors.Is(err, ErrLeaseHeld) {
		t.Fatalf("peer Acquire of a live lease = %v, want ErrLeaseHeld", err)
	}
	watched := time.Now()
	gate.close()
	for time.Since(watched) < h.tm.lease*3/5 {
		if err := take(h.ctx, b, id); err == nil || isRefused(err) {
			t.Fatalf("Acquire through a closed gate = %v, want a failed call", err)
		}
	}
	gate.open()
	opened := time.Now()
	takeEventually(t, b, id, h.tm.wait)
	if after := time.Since(opened); after < h.tm.lease-200*time.Millisecond {
		t.Fatalf("took the lease %v after its reads came back (%v after it first saw the state): the watch did not restart (lease %v)",
			after, time.Since(watched), h.tm.lease)
	}
}
