package checkpoint

import (
	"errors"
	"fmt"
	"sort"
	"testing"
	"time"
)

var t0 = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

// owned returns n live shards of owner, ids prefix-00..
func ownedBy(owner, prefix string, n int) []planShard {
	out := make([]planShard, n)
	for i := range out {
		out[i] = planShard{ID: fmt.Sprintf("%s-%02d", prefix, i), Owner: owner, Expires: t0.Add(time.Minute)}
	}
	return out
}

func ids(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%02d", prefix, i)
	}
	return out
}

func concat(parts ...[]planShard) []planShard {
	var out []planShard
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func TestPlanLeases(t *testing.T) {
	free := func(prefix string, n int) []planShard { return ownedBy("", prefix, n) }
	tests := []struct {
		name string
		view planView
		want decision // only the fields checked below
	}{
		{
			name: "alone with free shards takes everything",
			view: planView{Self: "a", Shards: free("s", 8)},
			want: decision{Leasable: 8, Workers: 1, Target: 8, MayAcquire: true},
		},
		{
			name: "3 workers on 8 shards, balanced 3-3-2, the 2 stays put",
			view: planView{Self: "c", Held: ids("c", 2), Shards: concat(ownedBy("a", "a", 3), ownedBy("b", "b", 3), ownedBy("c", "c", 2))},
			want: decision{Leasable: 8, Workers: 3, Target: 2},
		},
		{
			name: "3 workers on 8 shards, a 3 holder keeps its extra lease",
			view: planView{Self: "b", Held: ids("b", 3), Shards: concat(ownedBy("a", "a", 3), ownedBy("b", "b", 3), ownedBy("c", "c", 2))},
			want: decision{Leasable: 8, Workers: 3, Target: 3},
		},
		{
			name: "a claimer makes the holder of everything hand off the claimed lease",
			view: planView{Self: "a", Held: ids("a", 8), Shards: func() []planShard {
				s := ownedBy("a", "a", 8)
				s[5].Claim, s[5].ClaimExpires = "b", t0.Add(time.Minute)
				return s
			}()},
			want: decision{Leasable: 8, Workers: 2, Target: 4, HandOff: "a-05"},
		},
		{
			name: "a stale claim does not count",
			view: planView{Self: "a", Held: ids("a", 8), Shards: func() []planShard {
				s := ownedBy("a", "a", 8)
				s[5].Claim, s[5].ClaimExpires = "b", t0.Add(-time.Second)
				return s
			}()},
			want: decision{Leasable: 8, Workers: 1, Target: 8},
		},
		{
			name: "a newcomer with nothing free claims the lowest lease of the most loaded worker",
			view: planView{Self: "c", Shards: concat(ownedBy("a", "a", 4), ownedBy("b", "b", 4))},
			want: decision{Leasable: 8, Workers: 3, Target: 2, MayAcquire: true, Claim: "a-00"},
		},
		{
			name: "a newcomer with a free shard takes it instead of claiming",
			view: planView{Self: "c", Shards: concat(ownedBy("a", "a", 4), ownedBy("b", "b", 3), free("f", 1))},
			want: decision{Leasable: 8, Workers: 3, Target: 2, MayAcquire: true},
		},
		{
			name: "an outstanding claim is not repeated",
			view: planView{Self: "c", ClaimOutstanding: true, Shards: concat(ownedBy("a", "a", 4), ownedBy("b", "b", 4))},
			want: decision{Leasable: 8, Workers: 3, Target: 2, MayAcquire: true},
		},
		{
			name: "over target but free shards exist: no hand-off yet",
			view: planView{Self: "a", Held: ids("a", 6), Shards: concat(ownedBy("a", "a", 6), ownedBy("b", "b", 0), free("f", 2), func() []planShard {
				s := free("g", 1)
				s[0].Claim, s[0].ClaimExpires = "b", t0.Add(time.Minute)
				return s
			}())},
			want: decision{Leasable: 9, Workers: 2, Target: 5},
		},
		{
			name: "10 shards on 4 workers: the third 3-holder (by id) hands off its highest shard",
			view: planView{Self: "c", Held: ids("c", 3), Shards: concat(ownedBy("a", "a", 3), ownedBy("b", "b", 3), ownedBy("c", "c", 3), ownedBy("d", "d", 1))},
			want: decision{Leasable: 10, Workers: 4, Target: 2, HandOff: "c-02"},
		},
		{
			name: "10 shards on 4 workers: the 1-holder claims from the 3-holder that is over",
			view: planView{Self: "d", Held: ids("d", 1), Shards: concat(ownedBy("a", "a", 3), ownedBy("b", "b", 3), ownedBy("c", "c", 3), ownedBy("d", "d", 1))},
			want: decision{Leasable: 10, Workers: 4, Target: 2, MayAcquire: true, Claim: "c-00"},
		},
		{
			name: "a hand-off in flight blocks taking and a second hand-off",
			view: planView{Self: "a", Held: ids("a", 5), HandOffInFlight: true, Shards: concat(ownedBy("a", "a", 5), ownedBy("b", "b", 1))},
			want: decision{Leasable: 6, Workers: 2, Target: 3},
		},
		{
			name: "expired leases are free and their owner is not an active worker",
			view: planView{Self: "a", Held: ids("a", 2), Shards: concat(ownedBy("a", "a", 2), func() []planShard {
				s := ownedBy("dead", "x", 4)
				for i := range s {
					s[i].Expires = t0.Add(-time.Second)
				}
				return s
			}())},
			want: decision{Leasable: 6, Workers: 1, Target: 6, MayAcquire: true},
		},
		{
			name: "finished and blocked shards are not leasable",
			view: planView{Self: "a", Shards: []planShard{{ID: "p1", Finished: true}, {ID: "p2", Finished: true}, {ID: "c1"}, {ID: "c2", Blocked: true}}},
			want: decision{Leasable: 1, Workers: 1, Target: 1, MayAcquire: true},
		},
		{
			name: "a held shard the scan does not show yet still counts",
			view: planView{Self: "a", Held: []string{"new"}, Shards: ownedBy("b", "b", 1)},
			want: decision{Leasable: 2, Workers: 2, Target: 1},
		},
		{
			name: "a finished held shard does not count towards the load",
			view: planView{Self: "a", Held: []string{"p"}, Shards: concat([]planShard{{ID: "p", Owner: "a", Expires: t0.Add(time.Minute), Finished: true}}, free("c", 2))},
			want: decision{Leasable: 2, Workers: 1, Target: 2, MayAcquire: true},
		},
		{
			name: "fewer shards than workers: the holder keeps its one lease",
			view: planView{Self: "b", Held: []string{"b-00"}, Shards: concat(ownedBy("a", "a", 1), ownedBy("b", "b", 1), func() []planShard {
				s := free("z", 0)
				return s
			}(), []planShard{{ID: "q", Claim: "c", ClaimExpires: t0.Add(time.Minute), Finished: true}})},
			want: decision{Leasable: 2, Workers: 2, Target: 1},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := planLeases(t0, tc.view)
			if got.Leasable != tc.want.Leasable || got.Workers != tc.want.Workers || got.Target != tc.want.Target ||
				got.MayAcquire != tc.want.MayAcquire || got.HandOff != tc.want.HandOff || got.Claim != tc.want.Claim {
				t.Errorf("planLeases = {Leasable:%d Workers:%d Target:%d MayAcquire:%v HandOff:%q Claim:%q} loads=%v targets=%v\nwant {Leasable:%d Workers:%d Target:%d MayAcquire:%v HandOff:%q Claim:%q}",
					got.Leasable, got.Workers, got.Target, got.MayAcquire, got.HandOff, got.Claim, got.Loads, got.Targets,
					tc.want.Leasable, tc.want.Workers, tc.want.Target, tc.want.MayAcquire, tc.want.HandOff, tc.want.Claim)
			}
		})
	}
}

func TestGrantCheck(t *testing.T) {
	live, past := t0.Add(time.Second), t0.Add(-time.Second)
	tests := []struct {
		name                  string
		row                   *leaseRow
		expires, claimExpires time.Time // as observed (observe.go)
		want                  error
	}{
		{"never leased", nil, time.Time{}, time.Time{}, nil},
		{"unowned", &leaseRow{ShardID: "s"}, time.Time{}, time.Time{}, nil},
		{"finished", &leaseRow{ShardID: "s", Checkpoint: ShardEnd}, time.Time{}, time.Time{}, ErrShardFinished},
		{"live owner", &leaseRow{ShardID: "s", Owner: "b"}, live, time.Time{}, ErrLeaseHeld},
		{"expired owner", &leaseRow{ShardID: "s", Owner: "b"}, past, time.Time{}, nil},
		{"our own stale row is held until it expires", &leaseRow{ShardID: "s", Owner: "me"}, live, time.Time{}, ErrLeaseHeld},
		{"live owner whose LeaseTimeout lies in the past (a clock behind)", &leaseRow{ShardID: "s", Owner: "b", LeaseTimeout: t0.Add(-time.Hour)}, live, time.Time{}, ErrLeaseHeld},
		{"fresh claim by another", &leaseRow{ShardID: "s", Claim: "b", ClaimedAt: t0}, time.Time{}, live, ErrClaimedByOther},
		{"fresh claim by another with an old ClaimedAt (a clock behind)", &leaseRow{ShardID: "s", Claim: "b", ClaimedAt: t0.Add(-time.Hour)}, time.Time{}, live, ErrClaimedByOther},
		{"fresh claim by us", &leaseRow{ShardID: "s", Claim: "me", ClaimedAt: t0}, time.Time{}, live, nil},
		{"stale claim", &leaseRow{ShardID: "s", Claim: "b", ClaimedAt: t0}, time.Time{}, past, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := grantCheck(t0, tc.row, tc.expires, tc.claimExpires, "me"); !errors.Is(got, tc.want) || (got == nil) != (tc.want == nil) {
				t.Errorf("grantCheck = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestPlanConvergence runs planLeases for a fleet in lock-step rounds (every worker sees the same
// fresh view; hand-offs release at once; each worker takes at most one lease per round, as the KCL
// does per sync) through 1 -> 3 -> 2 workers on 8 shards, and checks that each phase reaches
// max-min <= 1 within a bounded number of rounds, stays there, and moves few leases.
func TestPlanConvergence(t *testing.T) {
	shards := ids("shard", 8)
	owner := map[string]string{}
	claim := map[string]string{}
	moves := 0
	round := func(workers []string) {
		for _, w := range workers {
			v := planView{Self: w}
			for _, id := range shards {
				ps := planShard{ID: id, Owner: owner[id], Claim: claim[id]}
				if ps.Owner != "" {
					ps.Expires = t0.Add(time.Hour)
				}
				if ps.Claim != "" {
					ps.ClaimExpires = t0.Add(time.Hour)
				}
				if ps.Owner == w {
					v.Held = append(v.Held, id)
				}
				if ps.Claim == w {
					v.ClaimOutstanding = true
				}
				v.Shards = append(v.Shards, ps)
			}
			d := planLeases(t0, v)
			if d.HandOff != "" {
				owner[d.HandOff] = "" // released after flush; the claim (if any) stays
			}
			if d.Claim != "" {
				claim[d.Claim] = w
			}
			if d.MayAcquire {
				for _, id := range shards {
					if owner[id] == "" && (claim[id] == "" || claim[id] == w) {
						owner[id], claim[id] = w, ""
						moves++
						break
					}
				}
			}
		}
	}
	spread := func(workers []string) int {
		loads := map[string]int{}
		for _, w := range workers {
			loads[w] = 0
		}
		for _, id := range shards {
			if owner[id] == "" {
				return 99
			}
			loads[owner[id]]++
		}
		var ls []int
		for _, l := range loads {
			ls = append(ls, l)
		}
		sort.Ints(ls)
		return ls[len(ls)-1] - ls[0]
	}
	phase := func(name string, workers []string, maxRounds, maxMoves int) {
		before := moves
		n := 0
		for ; n < maxRounds && spread(workers) > 1; n++ {
			round(workers)
		}
		if spread(workers) > 1 {
			t.Fatalf("%s: not balanced after %d rounds: %v", name, maxRounds, owner)
		}
		snapshot := fmt.Sprint(owner)
		for i := 0; i < 5; i++ { // stable: nothing moves once balanced
			round(workers)
		}
		if fmt.Sprint(owner) != snapshot {
			t.Fatalf("%s: owners kept moving after balance: %v -> %v", name, snapshot, owner)
		}
		if got := moves - before; got > maxMoves {
			t.Fatalf("%s: %d lease moves, want <= %d", name, got, maxMoves)
		}
		t.Logf("%s: balanced in %d rounds with %d moves: %v", name, n, moves-before, owner)
	}
	phase("start with 1 worker", []string{"w1"}, 10, 8)
	phase("join: 3 workers", []string{"w1", "w2", "w3"}, 30, 5)
	for id, o := range owner { // w3 leaves: its leases expire
		if o == "w3" {
			owner[id] = ""
		}
	}
	phase("leave: 2 workers", []string{"w1", "w2"}, 10, 3)
}

// A shard whose processor stopped on one worker (StoppedBy, recorded by Abandon) goes to another
// worker, whatever its share, and balancing never hands it back to the worker that stopped it.
func TestPlanStoppedShards(t *testing.T) {
	live := t0.Add(time.Minute)
	stopped := func(id, owner, by string) planShard {
		s := planShard{ID: id, Owner: owner, StoppedBy: by}
		if owner != "" {
			s.Expires = live
		}
		return s
	}
	tests := []struct {
		name    string
		view    planView
		rescue  []string // want d.Rescue
		may     bool
		handOff string
		claim   string
	}{
		{
			name:   "a peer at its share may take a free shard another worker stopped",
			view:   planView{Self: "b", Held: ids("b", 2), Shards: concat(ownedBy("a", "a", 1), ownedBy("b", "b", 2), []planShard{stopped("s", "", "a")})},
			rescue: []string{"s"},
		},
		{
			name:   "so may a peer above its share",
			view:   planView{Self: "b", Held: ids("b", 3), Shards: concat(ownedBy("a", "a", 1), ownedBy("b", "b", 3), []planShard{stopped("s", "", "a")})},
			rescue: []string{"s"},
		},
		{
			name: "the worker that stopped it gets no rescue, and it does not count as free for it",
			view: planView{Self: "a", Held: ids("a", 1), Shards: concat(ownedBy("a", "a", 1), ownedBy("b", "b", 4), []planShard{stopped("s", "", "a")})},
			may:  true, claim: "b-00", // b is above its share (4 of 3): a claims rather than wait for s
		},
		{
			name: "a claim of a third worker on the stopped shard reserves it: no rescue",
			view: planView{Self: "b", Held: ids("b", 2), Shards: concat(ownedBy("a", "a", 1), ownedBy("b", "b", 2), []planShard{{
				ID: "s", StoppedBy: "a", Claim: "c", ClaimExpires: live}})},
		},
		{
			name: "an owned stopped shard is nobody's to rescue",
			view: planView{Self: "c", Held: ids("c", 1), Shards: concat(ownedBy("a", "a", 1), ownedBy("c", "c", 1), []planShard{stopped("s", "b", "a")})},
		},
		{
			name: "the worker that stopped it never claims it back, even as its holder's lowest shard",
			view: planView{Self: "a", Held: ids("a", 1), Shards: concat(ownedBy("a", "a", 1), ownedBy("b", "b", 2), []planShard{stopped("a-01", "b", "a")})},
			may:  true, claim: "b-00",
		},
		{
			name:    "its holder above share never hands it off voluntarily, even as its highest shard",
			view:    planView{Self: "b", Held: append(ids("b", 2), "z"), Shards: concat(ownedBy("a", "a", 1), ownedBy("b", "b", 2), []planShard{stopped("z", "b", "a")})},
			handOff: "b-01",
		},
		{
			name: "nor to a claim of the worker that stopped it",
			view: planView{Self: "b", Held: append(ids("b", 2), "z"), Shards: concat(ownedBy("a", "a", 1), ownedBy("b", "b", 2), []planShard{{
				ID: "z", Owner: "b", Expires: live, StoppedBy: "a", Claim: "a", ClaimExpires: live}})},
			handOff: "b-01",
		},
		{
			name: "but to a claim of a third worker below its share",
			view: planView{Self: "b", Held: append(ids("b", 3), "z"), Shards: concat(ownedBy("a", "a", 1), ownedBy("b", "b", 3), []planShard{{
				ID: "z", Owner: "b", Expires: live, StoppedBy: "a", Claim: "c", ClaimExpires: live}})},
			handOff: "z",
		},
		{
			name: "a holder whose every extra shard was stopped by others keeps them",
			view: planView{Self: "b", Held: []string{"y", "z"}, Shards: concat(ownedBy("a", "a", 0), []planShard{
				stopped("y", "b", "a"), stopped("z", "b", "a"), {ID: "c-00", Owner: "c", Expires: live}, {ID: "d-00", Owner: "d", Expires: t0.Add(-time.Second)}})},
		},
		{
			name:    "a shard this worker itself stopped before, and took back, moves like any other",
			view:    planView{Self: "b", Held: append(ids("b", 2), "z"), Shards: concat(ownedBy("a", "a", 1), ownedBy("b", "b", 2), []planShard{stopped("z", "b", "b")})},
			handOff: "z",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := planLeases(t0, tc.view)
			var rescue []string
			for id, ok := range got.Rescue {
				if ok {
					rescue = append(rescue, id)
				}
			}
			sort.Strings(rescue)
			if fmt.Sprint(rescue) != fmt.Sprint(tc.rescue) || got.MayAcquire != tc.may || got.HandOff != tc.handOff || got.Claim != tc.claim {
				t.Errorf("planLeases = {Rescue:%v MayAcquire:%v HandOff:%q Claim:%q} loads=%v targets=%v\nwant {Rescue:%v MayAcquire:%v HandOff:%q Claim:%q}",
					rescue, got.MayAcquire, got.HandOff, got.Claim, got.Loads, got.Targets, tc.rescue, tc.may, tc.handOff, tc.claim)
			}
		})
	}
}
