package checkpoint

import (
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/kinesis-events/pipeline/internal/retry"
)

// tableLost handles a ResourceNotFoundException: every lease is dropped (the rows that fenced
// them are gone), Healthy reports the outage, and the table is recreated in the background.
func (s *Store) tableLost(cause error) {
	s.mu.Lock()
	if s.recovering || s.closed {
		s.mu.Unlock()
		return
	}
	s.recovering = true
	s.tableErr = fmt.Errorf("%w: table %s missing, recreating: %v", ErrTableUnavailable, s.cfg.Table, cause)
	var fire []func()
	for _, h := range s.held {
		fire = append(fire, s.finishLocked(h, leaseLost(h.id, "lease table missing"), "table_lost"))
	}
	s.rows = map[string]*leaseRow{}
	s.scanAt = time.Time{}
	s.mu.Unlock()
	for _, f := range fire {
		f()
	}
	s.m.tableRecreate.Inc()
	s.log.Error("LEASE TABLE MISSING: all leases dropped and checkpoints lost; recreating it, shards restart from their initial position",
		zap.String("table", s.cfg.Table), zap.Error(cause))
	s.wg.Add(1)
	go s.recreate()
}

func (s *Store) recreate() {
	defer s.wg.Done()
	b := retry.Policy{Initial: s.cfg.CallTimeout, Max: time.Minute}.Start()
	for {
		_, err := ensureTable(s.life, s.ddb, s.cfg.Table, s.cfg.CallTimeout, s.cfg.TableWaitTimeout, s.log)
		if err == nil {
			s.mu.Lock()
			s.tableErr, s.recovering = nil, false
			s.mu.Unlock()
			s.log.Warn("lease table recreated", zap.String("table", s.cfg.Table))
			return
		}
		s.mu.Lock()
		s.tableErr = fmt.Errorf("%w: table %s missing and recreation failed: %v", ErrTableUnavailable, s.cfg.Table, err)
		s.mu.Unlock()
		s.log.Error("lease table recreation failed; retrying", zap.String("table", s.cfg.Table), zap.Error(err))
		if b.Wait(s.life) != nil { // unbounded policy: only the store's end stops it
			return
		}
	}
}
