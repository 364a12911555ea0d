package checkpoint

import "time"

// Expiry is observed, never computed from a timestamp another machine wrote (the KCL Java rule): a
// worker counts a peer's lease as expired only after it has seen the row's lease state (owner,
// counter) unchanged for one LeaseDuration of its own clock, and a peer's claim as stale only after
// seeing it unchanged for ClaimTTL. Time counts only across successful reads: a failed DynamoDB
// call of this store, or a gap of more than obsGap between two reads of the row, starts the
// observation over at the next read. So after a DynamoDB pause every observer starts watching
// afresh and the holder, which renews within its renewal period, keeps its lease.
//
// The holder itself stops writing (Store.WaitValid) at the send time of its last successful owner
// write plus LeaseDuration. An observer's watch of that state starts after the write landed, so the
// holder's lease runs out locally before any observer can count it as expired, whatever the two
// machines' clocks say.

// observation is one row's lease (or claim) state as this worker has watched it.
type observation struct {
	version  string    // the watched state: any change restarts the watch
	since    time.Time // when this worker first read the state (after the read returned)
	lastRead time.Time // the latest read that saw it
	gen      uint64    // Store.failGen at lastRead: a failed call since breaks the watch
	// own marks the watch of this worker's own former lease, started from its own last write's send
	// time: no read or failure restarts it (nobody else writes that state).
	own bool
}

// obsGap is the longest interval between two reads of a row across which a watch continues.
func (s *Store) obsGap() time.Duration { return s.cfg.LeaseDuration / 2 }

// seeLocked records that this worker just read row (nil: shardID has no row) at at, the instant the
// read returned. Every path that reads a row or gets one back from a write calls it.
func (s *Store) seeLocked(shardID string, row *leaseRow, at time.Time) {
	if row == nil {
		delete(s.obs, shardID)
		delete(s.claimObs, shardID)
		return
	}
	s.watchLocked(s.obs, shardID, row.version(), at)
	if row.Claim == "" {
		delete(s.claimObs, shardID)
	} else {
		s.watchLocked(s.claimObs, shardID, row.claimVersion(), at)
	}
}

func (s *Store) watchLocked(m map[string]observation, id, version string, at time.Time) {
	o, ok := m[id]
	switch {
	case ok && o.version == version && o.own:
	case !ok || o.version != version || o.gen != s.failGen || at.Sub(o.lastRead) > s.obsGap():
		o = observation{version: version, since: at}
	}
	o.lastRead, o.gen = at, s.failGen
	m[id] = o
}

// expiresLocked returns when row's owner's lease counts as expired for this worker: one
// LeaseDuration after it began watching the row's current lease state without interruption. Zero
// when nobody owns it. A state not under an unbroken watch (never read, or a call failed since the
// last read) is not expired: the returned instant is a LeaseDuration from now.
func (s *Store) expiresLocked(row *leaseRow) time.Time {
	if row == nil || row.Owner == "" {
		return time.Time{}
	}
	return s.watchedUntilLocked(s.obs, row.ShardID, row.version(), s.cfg.LeaseDuration)
}

// claimExpiresLocked is the same for row's ClaimRequest, with ClaimTTL. Zero when there is none.
func (s *Store) claimExpiresLocked(row *leaseRow) time.Time {
	if row == nil || row.Claim == "" {
		return time.Time{}
	}
	return s.watchedUntilLocked(s.claimObs, row.ShardID, row.claimVersion(), s.cfg.ClaimTTL)
}

func (s *Store) watchedUntilLocked(m map[string]observation, id, version string, d time.Duration) time.Time {
	o, ok := m[id]
	if !ok || o.version != version || (!o.own && o.gen != s.failGen) {
		return s.now().Add(d)
	}
	return o.since.Add(d)
}
