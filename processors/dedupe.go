package processors

import (
	"context"
)

// dedupe is one shard's duplicate filter and the owner of the shard's keyed state (state.go) and
// its durable log (statelog.go). Its two steps:
//
//   - resolve (before reorder): level 1, an event whose id is in flight on this shard or among the
//     last L1Size written (kept in the state too, so across a lease move) is a duplicate, decided
//     from its content hash; then the customer's
//     state: an event whose seq is at or below the customer's cursor and not pending was
//     delivered before. Same id and content is a natural duplicate (dropped, counted, handled);
//     same id and other content, or the seq of the last delivered event with other content, is a
//     conflicting duplicate (quarantined). An event behind the last delivered seq is a duplicate of
//     the event delivered at its seq whose content cannot be compared there: it is dropped and
//     counted as level "state", kind "unverified".
//   - mark (after the outputs are written): the customers' changed state goes to the state log;
//     seqs of events dead-lettered become pending (a DLQ replay delivers them); the records
//     quarantined get a quarantine mark, so a record read again after a lease moved is not
//     quarantined twice (skipQuarantined).
//
// The state is in memory: resolve makes no calls. Not safe for concurrent use.
type dedupe struct {
	p        *Pipeline
	shard    string
	st       *shardState
	log      *stateLog
	ro       *reorder
	inflight map[string]uint64 // event_id -> content hash of events accepted but not yet handled
}

func newDedupe(p *Pipeline, shard string, st *shardState, log *stateLog, ro *reorder) *dedupe {
	return &dedupe{p: p, shard: shard, st: st, log: log, ro: ro, inflight: map[string]uint64{}}
}

// resolve is the dedupe stage. It leaves in b.cands, in order, the events to reorder, each with its
// customer's state.
func (d *dedupe) resolve(_ context.Context, b *batch) error {
	d.ro.day = dayOf(b.now)
	kept := b.cands[:0]
	for _, e := range b.cands {
		if !d.admit(e, b) {
			continue
		}
		c := d.st.get(custKeyOf(e.d.CustomerID))
		e.cust = c
		s := e.d.Seq
		if !c.delivered(s) {
			kept = append(kept, e)
			continue
		}
		delete(d.inflight, e.d.EventID)
		if s == c.cursor && c.hash != 0 && c.hash != uint32(e.hash) {
			d.p.m.dedupeHits.WithLabelValues("state", "conflicting").Inc()
			b.quar = append(b.quar, conflict(e, "a different event with this customer and seq was already delivered"))
			continue
		}
		kind := "natural"
		if s != c.cursor || c.hash == 0 {
			kind = "unverified"
		}
		d.p.m.dedupeHits.WithLabelValues("state", kind).Inc()
		b.done = append(b.done, e.idx)
	}
	clear(b.cands[len(kept):])
	b.cands = kept
	return nil
}

// admit runs level 1 on a decoded event and reports whether it goes on (it is then in flight). A
// duplicate is handled here: a natural one is done, a conflicting one quarantined.
func (d *dedupe) admit(e *rec, b *batch) bool {
	id := e.d.EventID
	if h, ok := d.inflight[id]; ok {
		d.duplicate(e, h == e.hash, "inflight", b)
		return false
	}
	if h, ok := d.st.recent.get(idHash(id)); ok {
		d.duplicate(e, h == uint32(e.hash), "l1", b)
		return false
	}
	d.inflight[id] = e.hash
	return true
}

// duplicate handles an event whose id is already in flight or in the level-1 cache, with the same
// content or not.
func (d *dedupe) duplicate(e *rec, same bool, level string, b *batch) {
	if same {
		d.p.m.dedupeHits.WithLabelValues(level, "natural").Inc()
		b.done = append(b.done, e.idx)
		return
	}
	d.p.m.dedupeHits.WithLabelValues(level, "conflicting").Inc()
	msg := "another event with this event_id was already delivered"
	if level == "inflight" {
		msg = "another event with this event_id is in flight"
	}
	q := conflict(e, msg)
	q.ev = nil // e itself never went in flight
	b.quar = append(b.quar, q)
}

// skipQuarantined drops from b.quar every record whose quarantine mark is in the dedupe table (it
// was quarantined before and is read again after a lease moved) and counts it handled, so a replay
// does not quarantine a record twice.
func (d *dedupe) skipQuarantined(ctx context.Context, b *batch) error {
	if len(b.quar) == 0 {
		return nil
	}
	keys := make([]string, len(b.quar))
	uniq := make([]string, 0, len(b.quar))
	seen := make(map[string]bool, len(b.quar))
	for i, q := range b.quar {
		keys[i] = QuarantineKey(q.shard(d.shard), q.seqNum, q.subSeq)
		if !seen[keys[i]] {
			seen[keys[i]] = true
			uniq = append(uniq, keys[i])
		}
	}
	found := map[string]bool{}
	if err := d.p.lookup(ctx, d.shard, uniq, func(it Item) { found[it.Key] = true }); err != nil {
		return err
	}
	if len(found) == 0 {
		return nil
	}
	kept := b.quar[:0]
	for i, q := range b.quar {
		if !found[keys[i]] {
			kept = append(kept, q)
			continue
		}
		d.p.m.quarReplays.Inc()
		if q.ev != nil {
			delete(d.inflight, q.ev.d.EventID)
		}
		b.done = append(b.done, q.idx)
	}
	clear(b.quar[len(kept):])
	b.quar = kept
	return nil
}

// mark makes the batch's outcome durable once its outputs are written: dead-lettered events become
// pending, the written events join the level-1 cache, then the quarantine marks and the state log
// are written. It returns once all are durable (retrying while the store is down) or ctx ends.
//
// The written ids go into this batch's log entry, with the cursors they moved: were they logged
// with the next batch instead, a shard whose owner stops after this batch (a lease moved, the KCL
// consumer ended) would hand a new owner cursors past events whose ids it does not know, and a
// conflicting copy of one of them would be dropped as an unverified duplicate, not quarantined.
func (d *dedupe) mark(ctx context.Context, b *batch) error {
	p := d.p
	for _, e := range b.released {
		if e.out != nil && e.out.dead {
			e.cust.addPending(e.d.Seq, e.d.Seq)
			d.st.touch(e.cust, d.ro.day)
		}
	}
	for _, outs := range b.byStream {
		for _, o := range outs {
			if o.kind == outEvent && o.written {
				d.st.wrote(idHash(o.ev.d.EventID), uint32(o.ev.hash))
			}
		}
	}
	var marks []Item
	exp := d.log.expiry(b.now)
	for _, o := range b.byStream[p.cfg.QuarantineStream] {
		if o.kind == outQuarantine && o.written {
			marks = append(marks, Item{Key: QuarantineKey(o.q.shard(d.shard), o.q.seqNum, o.q.subSeq), ExpiresAt: exp})
		}
	}
	if len(marks) > 0 {
		if err := p.storeItems(ctx, d.shard, marks); err != nil {
			return err
		}
	}
	return d.log.flush(ctx, d.st, b.now)
}

// settle forgets a handled event (written, dead-lettered or quarantined after it went in flight).
// A written one joined the level-1 cache in mark, and the state log with it (a new owner of the
// shard still tells a conflicting copy of a recent event from a natural one).
func (d *dedupe) settle(e *rec) {
	delete(d.inflight, e.d.EventID)
}
