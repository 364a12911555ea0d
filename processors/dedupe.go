package processors

import (
	"context"
)

// dedupe is one shard's duplicate filter, and the owner of its three steps:
//
//   - admit (level 1, as each record is decoded): an event whose id is in flight on this shard or
//     among the last L1Size written is a duplicate, decided at once from its content hash;
//   - resolve (level 2, once per batch): the marks of the batch's other events and the cursors of
//     their customers are read from the DedupeStore in one round of calls; an event with a mark is
//     a duplicate, the others go on to reorder, whose cursors are seeded from the store;
//   - mark (after the outputs are written): the cursors that moved, then the marks of the events
//     written and of the records quarantined.
//
// Same id and content is a natural duplicate (dropped, counted, handled); same id and other content
// is a conflicting duplicate (quarantined). Records read again after a lease moved that were
// quarantined before are dropped by skipQuarantined. Not safe for concurrent use.
type dedupe struct {
	p        *Pipeline
	shard    string
	ro       *reorder // whose cursors level 2 seeds and mark persists
	l1       *recent
	inflight map[string]uint64 // event_id -> content hash of events accepted but not yet handled

	// scratch of one batch
	keys    []string
	planned map[string]struct{}
	marks   map[string]uint64 // event_id -> content hash found in the level-2 store
	cursors map[string]uint64 // customer -> cursor found in the level-2 store
	dirty   map[string]uint64
}

func newDedupe(p *Pipeline, shard string, ro *reorder) *dedupe {
	return &dedupe{
		p:        p,
		shard:    shard,
		ro:       ro,
		l1:       newRecent(p.cfg.L1Size),
		inflight: map[string]uint64{},
		planned:  map[string]struct{}{},
		marks:    map[string]uint64{},
		cursors:  map[string]uint64{},
		dirty:    map[string]uint64{},
	}
}

// admit runs level 1 on a decoded event and reports whether it goes on to level 2 (it is then in
// flight). A duplicate is handled here: a natural one is done, a conflicting one quarantined.
func (d *dedupe) admit(e *rec, b *batch) bool {
	id := e.d.EventID
	if h, ok := d.inflight[id]; ok {
		d.duplicate(e, h, "inflight", b)
		return false
	}
	if h, ok := d.l1.get(id); ok {
		d.duplicate(e, h, "l1", b)
		return false
	}
	d.inflight[id] = e.hash
	return true
}

// duplicate handles an event whose id is already in flight or in the level-1 cache with hash h.
func (d *dedupe) duplicate(e *rec, h uint64, level string, b *batch) {
	if h == e.hash {
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

// resolve is the dedupe stage: level 1 (admit), then level 2 on what is left. It reads the marks of
// the candidates and their customers' cursors, seeds the reorder with the cursors, handles the
// duplicates, and leaves in b.cands, in order, the events to reorder.
func (d *dedupe) resolve(ctx context.Context, b *batch) error {
	ro := d.ro
	ro.ensureCapacity(len(b.in) + ro.held) // no customer of this batch can be evicted mid-batch
	kept := b.cands[:0]
	for _, e := range b.cands {
		if d.admit(e, b) {
			kept = append(kept, e)
		}
	}
	clear(b.cands[len(kept):])
	b.cands = kept
	if err := d.lookup(ctx, b.cands, ro); err != nil {
		return err
	}
	kept = b.cands[:0]
	for _, e := range b.cands {
		id, c := e.d.EventID, e.d.CustomerID
		if !ro.known(c) {
			// Before observe as well as add: a replayed duplicate of an old event (seq below the
			// durable cursor) must not become the customer's cursor on a new owner.
			ro.setCursor(c, d.cursors[c])
		}
		h, ok := d.marks[id]
		switch {
		case !ok:
			kept = append(kept, e)
			continue
		case h == e.hash:
			d.p.m.dedupeHits.WithLabelValues("l2", "natural").Inc()
			b.done = append(b.done, e.idx)
			d.l1.add(id, e.hash)
			ro.observe(c, e.d.Seq)
		default:
			d.p.m.dedupeHits.WithLabelValues("l2", "conflicting").Inc()
			b.quar = append(b.quar, conflict(e, "a different event with this event_id was already delivered"))
		}
		delete(d.inflight, id)
	}
	clear(b.cands[len(kept):])
	b.cands = kept
	return nil
}

// lookup plans and runs the level-2 reads for cands: the mark of every candidate and the cursor of
// every customer whose cursor ro does not know, in one round of calls.
//
// With LookupBehindCursorOnly a mark is read only for an event at or behind its customer's cursor,
// so for a customer whose cursor is not known the cursor is read first and the marks of that
// customer's events behind it in a second round (events of a customer new to the table cost no
// mark read at all).
func (d *dedupe) lookup(ctx context.Context, cands []*rec, ro *reorder) error {
	behindOnly := d.p.cfg.LookupBehindCursorOnly
	var later []*rec // behindOnly: events whose customer's cursor is being read
	for _, e := range cands {
		c := e.d.CustomerID
		cur, known := ro.cursor(c)
		if !known {
			if _, ok := d.planned[c]; !ok {
				d.planned[c] = struct{}{}
				d.keys = append(d.keys, CursorKey(c))
			}
		}
		switch {
		case !behindOnly:
			d.keys = append(d.keys, e.d.EventID)
		case !known:
			later = append(later, e)
		case e.d.Seq <= cur:
			d.keys = append(d.keys, e.d.EventID)
		}
	}
	if err := d.read(ctx, d.keys); err != nil {
		return err
	}
	d.keys = d.keys[:0]
	for _, e := range later {
		if cur, ok := d.cursors[e.d.CustomerID]; ok && e.d.Seq <= cur {
			d.keys = append(d.keys, e.d.EventID)
		}
	}
	return d.read(ctx, d.keys)
}

// read looks keys up in the level-2 store into the batch's cursors and marks.
func (d *dedupe) read(ctx context.Context, keys []string) error {
	if len(keys) == 0 {
		return nil
	}
	return d.p.lookup(ctx, d.shard, keys, func(it Item) {
		if c, ok := IsCursorKey(it.Key); ok {
			d.cursors[c] = it.LastSeq
			return
		}
		d.marks[it.Key] = it.Hash
	})
}

// skipQuarantined drops from b.quar every record whose quarantine mark is in the level-2 store (it
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
		keys[i] = QuarantineKey(d.shard, q.seqNum)
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

// mark writes the cursors that moved in the reorder, the marks of the events written and of the records
// quarantined, cursors first (with LookupBehindCursorOnly a written event's seq must not be ahead of
// its customer's durable cursor), and returns once all are durable (retrying while the store is
// down) or ctx ends.
func (d *dedupe) mark(ctx context.Context, b *batch) error {
	p, now := d.p, b.now
	d.ro.takeDirty(d.dirty)
	items := make([]Item, 0, len(d.dirty)+len(b.released))
	cursorExp := now.Add(p.cfg.CursorTTL)
	for c, v := range d.dirty {
		items = append(items, Item{Key: CursorKey(c), LastSeq: v, ExpiresAt: cursorExp})
	}
	cursors := len(items)
	markExp := now.Add(p.cfg.DedupeTTL)
	for _, e := range b.released {
		// Written events only: a dead-lettered one is not delivered, and a quarantined one never is.
		if e.out != nil && e.out.written {
			items = append(items, Item{Key: e.d.EventID, Hash: e.hash, ExpiresAt: markExp})
		}
	}
	for _, o := range b.byStream[p.cfg.QuarantineStream] {
		if o.kind == outQuarantine && o.written {
			items = append(items, Item{Key: QuarantineKey(d.shard, o.q.seqNum), ExpiresAt: markExp})
		}
	}
	// The calls that carry cursors (the last one topped up with marks, as one call of MaxPutItems
	// carries them) complete before the calls of marks alone start.
	first := min(len(items), (cursors+MaxPutItems-1)/MaxPutItems*MaxPutItems)
	if first > 0 {
		if err := p.storeItems(ctx, d.shard, items[:first]); err != nil {
			return err
		}
	}
	if len(items) > first {
		return p.storeItems(ctx, d.shard, items[first:])
	}
	return nil
}

// settle forgets a handled event (written, dead-lettered or quarantined after it went in flight);
// a written one joins the level-1 cache.
func (d *dedupe) settle(e *rec, written bool) {
	delete(d.inflight, e.d.EventID)
	if written {
		d.l1.add(e.d.EventID, e.hash)
	}
}

// reset clears the batch scratch.
func (d *dedupe) reset() {
	d.keys = d.keys[:0]
	clear(d.planned)
	clear(d.marks)
	clear(d.cursors)
	clear(d.dirty)
}

// recent is the level-1 dedupe cache of one shard: the content hashes of the last size event ids
// added, forgotten in the order they were added (a hit does not refresh an id: duplicates follow
// their original within a short time, and a plain map and ring cost no allocation per event, where
// an LRU list costs one). Not safe for concurrent use.
type recent struct {
	size int
	m    map[string]uint64
	ring []string // ids in the order added; ring[next] is the oldest once full
	next int
}

func newRecent(size int) *recent { return &recent{size: size, m: map[string]uint64{}} }

func (r *recent) get(id string) (uint64, bool) {
	h, ok := r.m[id]
	return h, ok
}

// add records id with content hash h; an id already present only has its hash replaced.
func (r *recent) add(id string, h uint64) {
	if _, ok := r.m[id]; ok {
		r.m[id] = h
		return
	}
	if len(r.ring) < r.size {
		r.ring = append(r.ring, id)
	} else {
		delete(r.m, r.ring[r.next])
		r.ring[r.next] = id
		r.next = (r.next + 1) % r.size
	}
	r.m[id] = h
}
