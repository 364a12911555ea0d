package checkpoint

import "time"

// observation remembers since when this worker has seen a row's lease state unchanged.
type observation struct {
	version string
	since   time.Time
}

// observeLocked returns when row's owner's lease counts as expired for this worker: one
// LeaseDuration after it first saw the row's current lease state, or one LeaseDuration after the
// row's own LeaseTimeout, whichever is earlier. Zero when nobody owns it.
func (s *Store) observeLocked(row *leaseRow, now time.Time) time.Time {
	if row == nil || row.Owner == "" {
		return time.Time{}
	}
	v := row.version()
	o, ok := s.obs[row.ShardID]
	if !ok || o.version != v {
		o = observation{version: v, since: now}
		s.obs[row.ShardID] = o
	}
	exp := o.since.Add(s.cfg.LeaseDuration)
	if !row.LeaseTimeout.IsZero() {
		if alt := row.LeaseTimeout.Add(s.cfg.LeaseDuration); alt.Before(exp) {
			exp = alt
		}
	}
	return exp
}
