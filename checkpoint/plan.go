package checkpoint

import (
	"sort"
	"time"
)

// planShard is one shard as the lease planner sees it.
type planShard struct {
	ID           string
	Owner        string    // "" when nobody owns the lease
	Expires      time.Time // when Owner's lease counts as expired for this observer (zero: no owner; observe.go)
	Finished     bool      // Checkpoint == SHARD_END
	Blocked      bool      // a parent has not finished: nobody may lease it yet
	Claim        string    // worker that posted a ClaimRequest ("" none)
	ClaimExpires time.Time // when the claim counts as stale for this observer (observe.go)
	StoppedBy    string    // the worker whose processor last stopped the shard (Abandon; "" none)
}

// planView is everything planLeases looks at. Held is the local truth about this worker's leases
// (the scan may be older); Shards comes from the last table scan and ListShards.
type planView struct {
	Self             string
	Held             []string
	HandOffInFlight  bool // a hand-off of ours has been signalled and not released yet
	ClaimOutstanding bool // our last ClaimRequest is still fresh
	Shards           []planShard
}

// decision is what planLeases concludes for this worker.
type decision struct {
	Leasable   int            // shards that need a worker (not finished, not blocked)
	Workers    int            // active workers, this one included
	Target     int            // this worker's share
	Load       int            // leasable leases this worker holds
	Loads      map[string]int // leasable leases per active worker (this one from Held)
	Targets    map[string]int
	MayAcquire bool   // Load < Target: take a free lease if one is grantable
	HandOff    string // a held shard to hand to a peer now ("" none)
	Claim      string // a shard to post a ClaimRequest on ("" none)
	// Rescue lists free shards another worker stopped (Abandon): this worker may take them even
	// at or above its share, because the worker that stopped one could not serve it.
	Rescue map[string]bool
}

// planLeases decides fair shares. Active workers are this one, every owner of an unexpired lease
// and every worker with a fresh claim. With L leasable shards and W workers, the L%W workers
// holding the most (ties: lower id) get ceil(L/W), the rest floor(L/W): every worker computes the
// same targets from the same view, the busiest keep their extra lease (fewest moves), and the
// result has max-min <= 1. A worker above target hands off one lease, and only when no lease is
// free (free leases are taken first) and some worker is below target; a worker below target with
// nothing free to take claims a lease of the most loaded worker. One hand-off and one claim at a
// time per worker keeps convergence linear and free of flip-flops.
//
// A shard whose processor stopped on worker X (StoppedBy, recorded by Abandon) is kept away from X
// and handed to anyone else: while free, any other worker may take it whatever its share
// (Rescue); X does not count it as free for itself (so X claims elsewhere instead of waiting for
// it) and never claims it; and its holder never hands it off voluntarily, nor to a claim of X's.
// Balancing then evens the load out by moving other shards.
func planLeases(now time.Time, v planView) decision {
	held := make(map[string]bool, len(v.Held))
	for _, id := range v.Held {
		held[id] = true
	}
	d := decision{Loads: map[string]int{}, Targets: map[string]int{}, Rescue: map[string]bool{}}
	stoppedBy := map[string]string{}
	seenHeld := map[string]bool{}
	freeAny, freeForSelf := 0, 0
	owned := map[string][]string{} // worker -> its leasable shards (not ours)
	claimedBy := map[string]string{}
	for _, s := range v.Shards {
		if s.StoppedBy != "" {
			stoppedBy[s.ID] = s.StoppedBy
		}
		if held[s.ID] {
			seenHeld[s.ID] = true
			if !s.Finished {
				d.Load++
				d.Leasable++
			}
			if s.Claim != "" && now.Before(s.ClaimExpires) {
				claimedBy[s.ID] = s.Claim
				d.Loads[s.Claim] += 0
			}
			continue
		}
		if s.Finished || s.Blocked {
			continue
		}
		d.Leasable++
		live := s.Owner != "" && now.Before(s.Expires)
		if live && s.Owner != v.Self {
			d.Loads[s.Owner]++
			owned[s.Owner] = append(owned[s.Owner], s.ID)
		}
		claimLive := s.Claim != "" && now.Before(s.ClaimExpires)
		if claimLive {
			claimedBy[s.ID] = s.Claim
			d.Loads[s.Claim] += 0
		}
		if !live {
			freeAny++
			if (!claimLive || s.Claim == v.Self) && s.StoppedBy != v.Self {
				freeForSelf++
			}
			if s.StoppedBy != "" && s.StoppedBy != v.Self && (!claimLive || s.Claim == v.Self) {
				d.Rescue[s.ID] = true
			}
		}
	}
	for id := range held { // held shards the view does not know yet still need us
		if !seenHeld[id] {
			d.Load++
			d.Leasable++
		}
	}
	d.Loads[v.Self] = d.Load

	workers := make([]string, 0, len(d.Loads))
	for w := range d.Loads {
		workers = append(workers, w)
	}
	sort.Slice(workers, func(i, j int) bool {
		if d.Loads[workers[i]] != d.Loads[workers[j]] {
			return d.Loads[workers[i]] > d.Loads[workers[j]]
		}
		return workers[i] < workers[j]
	})
	d.Workers = len(workers)
	base, extra := d.Leasable/d.Workers, d.Leasable%d.Workers
	under := false
	for i, w := range workers {
		d.Targets[w] = base
		if i < extra {
			d.Targets[w]++
		}
		if d.Loads[w] < d.Targets[w] && w != v.Self {
			under = true
		}
	}
	d.Target = d.Targets[v.Self]
	d.MayAcquire = d.Load < d.Target && !v.HandOffInFlight

	if !v.HandOffInFlight && d.Load > d.Target && freeAny == 0 && under {
		d.HandOff = pickHandOff(v, held, claimedBy, stoppedBy, d)
	}
	if !v.ClaimOutstanding && d.Load < d.Target && freeForSelf == 0 {
		d.Claim = pickClaim(v.Self, workers, owned, claimedBy, stoppedBy, d)
	}
	return d
}

// pickHandOff prefers a lease claimed by a worker below its target, then the highest shard id
// (deterministic, and the opposite end from pickClaim's choice, so a claim and a voluntary
// hand-off of the same worker rarely move two leases where one would do). A shard another worker
// stopped goes only to a claimer other than that worker, never voluntarily: released, it could
// land back on the worker that could not serve it.
func pickHandOff(v planView, held map[string]bool, claimedBy, stoppedBy map[string]string, d decision) string {
	ids := make([]string, 0, len(held))
	for id := range held {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	finished := map[string]bool{}
	for _, s := range v.Shards {
		if s.Finished {
			finished[s.ID] = true
		}
	}
	best := ""
	for _, id := range ids {
		if finished[id] {
			continue
		}
		if c := claimedBy[id]; c != "" && c != v.Self && d.Loads[c] < d.Targets[c] && stoppedBy[id] != c {
			return id
		}
		if by := stoppedBy[id]; by == "" || by == v.Self {
			best = id
		}
	}
	return best
}

// pickClaim picks the lowest unclaimed shard of the worker furthest above its target, never one
// this worker stopped.
func pickClaim(self string, workers []string, owned map[string][]string, claimedBy, stoppedBy map[string]string, d decision) string {
	victim, excess := "", 0
	for _, w := range workers { // sorted: most loaded first, ties by id
		if w == self {
			continue
		}
		if e := d.Loads[w] - d.Targets[w]; e > excess {
			victim, excess = w, e
		}
	}
	if victim == "" {
		return ""
	}
	ids := append([]string(nil), owned[victim]...)
	sort.Strings(ids)
	for _, id := range ids {
		if claimedBy[id] == "" && stoppedBy[id] != self {
			return id
		}
	}
	return ""
}

// grantCheck decides whether this worker may take the lease on row now (row nil: never leased).
// expires and claimExpires are when the row's owner's lease and its claim count as expired for
// this observer (observe.go), never derived from the row's own timestamps.
func grantCheck(now time.Time, row *leaseRow, expires, claimExpires time.Time, self string) error {
	if row == nil {
		return nil
	}
	if row.finished() {
		return ErrShardFinished
	}
	if row.Owner != "" && now.Before(expires) {
		return ErrLeaseHeld
	}
	if row.Claim != "" && row.Claim != self && now.Before(claimExpires) {
		return ErrClaimedByOther
	}
	return nil
}
