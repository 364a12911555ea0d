package checkpoint

import "time"

// bench is this worker's record of a shard it gave up with Abandon.
type bench struct {
	until time.Time // the shard is not taken here before then
	// strikes counts this worker's abandons of the shard in a row: with no peer abandoning it in
	// between and no checkpoint of it landing here. Each one doubles the bench.
	strikes int
	// counter is the lease counter this worker held when it abandoned the shard: a stop recorded
	// in the row with a higher counter, by another worker, came after ours.
	counter int64
}

// benchFor is how long a shard abandoned for the strikes-th time in a row stays benched: base for
// the first, doubled for each further strike, never more than max.
func benchFor(base, max time.Duration, strikes int) time.Duration {
	d := base
	for i := 1; i < strikes && d < max; i++ {
		d *= 2
	}
	return min(d, max)
}

// benchLocked records that this worker abandons shard id at now, holding its lease at counter.
// prevStopBy is the stop the row recorded when this worker took the shard: when a peer had stopped
// it before us, the fault is not this host's alone and the strikes start over. It returns the
// bench.
func (s *Store) benchLocked(id string, now time.Time, counter int64, prevStopBy string) time.Duration {
	b := s.benched[id]
	if prevStopBy != "" && prevStopBy != s.cfg.WorkerID {
		b.strikes = 0
	}
	b.strikes++
	d := benchFor(s.cfg.LeaseDuration, s.cfg.BenchMax, b.strikes)
	b.until, b.counter = now.Add(d), counter
	s.benched[id] = b
	return d
}

// benchedLocked reports whether shard id is benched here at now. A peer that took the shard after
// this worker abandoned it and had to stop it too (the row, as last read, records its stop with a
// newer lease counter) lifts the bench and its strikes: the fault is not this host's alone, and
// the shard must stay served by someone. A bench that ran out keeps its strikes for the next one.
func (s *Store) benchedLocked(id string, now time.Time) bool {
	b, ok := s.benched[id]
	if !ok {
		return false
	}
	if r := s.rows[id]; r != nil && r.StopBy != "" && r.StopBy != s.cfg.WorkerID && r.HasCounter && r.Counter > b.counter {
		delete(s.benched, id)
		return false
	}
	return now.Before(b.until)
}

// servedLocked forgets the strikes of shard id: a checkpoint of it landed here, so this worker
// can serve it.
func (s *Store) servedLocked(id string) {
	delete(s.benched, id)
}
