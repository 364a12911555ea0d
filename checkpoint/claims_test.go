package checkpoint

import (
	"fmt"
	"testing"
	"time"

	"github.com/kinesis-events/pipeline/internal/poll"
)

// TestClaimsWithdrawn: a claim counts its worker as active and reserves the claimed lease for it
// until ClaimTTL, so a claim the worker no longer needs must go: on ReleaseAll (a graceful exit:
// otherwise peers hold back from the departed worker's share for up to ClaimTTL, seen as a 14 s
// stall after a SIGTERM in the e2e balance run), and when the worker reaches its share by taking
// another lease.
func TestClaimsWithdrawn(t *testing.T) {
	const wait = 30 * time.Second
	h := fakeHarness(t)
	h.kin.set(shardIDs(2)...)
	a, bs := h.store("a"), h.store("b")
	s0, s1 := "shardId-000000000000", "shardId-000000000001"
	takeEventually(t, a, s0, wait)
	takeEventually(t, a, s1, wait)
	claimOn := func(id string) string {
		if r := h.row(id); r != nil {
			return r.Claim
		}
		return ""
	}
	claimsLease := func() (bool, string) {
		err := take(h.ctx, bs, s0)
		return claimOn(s0) == "b" || claimOn(s1) == "b", fmt.Sprintf("Acquire: %v; claims %q %q", err, claimOn(s0), claimOn(s1))
	}
	// b holds nothing and sees no free lease: it claims one of a's.
	poll.Until(t, wait, 50*time.Millisecond, "b claims a lease of a", claimsLease)
	if err := bs.ReleaseAll(h.ctx); err != nil {
		t.Fatal(err)
	}
	if c0, c1 := claimOn(s0), claimOn(s1); c0 != "" || c1 != "" {
		t.Fatalf("claims after ReleaseAll: %q %q", c0, c1)
	}

	// b claims again; a frees the other lease; b takes it, reaches its share (1 of 2) and withdraws
	// the claim it no longer needs, without touching a's lease.
	poll.Until(t, wait, 50*time.Millisecond, "b claims again", claimsLease)
	claimed, other := s0, s1
	if claimOn(s1) == "b" {
		claimed, other = s1, s0
	}
	if _, err := a.Release(h.ctx, other); err != nil {
		t.Fatal(err)
	}
	takeEventually(t, bs, other, wait)
	if c := claimOn(claimed); c != "" {
		t.Fatalf("b holds its share but its claim on %s stays: %q", claimed, c)
	}
	if r := h.row(claimed); r.Owner != "a" {
		t.Fatalf("withdrawing the claim touched the lease: %+v", r)
	}
}
