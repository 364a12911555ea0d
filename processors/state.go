package processors

import (
	"bytes"
	"crypto/md5"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/cespare/xxhash/v2"
)

// custKey identifies a customer in a shard's state: the MD5 of its customer id. That is also the
// customer's place in the Kinesis hash key space (the raw stream's partition key is the customer
// id), so a reshard splits the state by the children's hash key ranges without knowing the ids.
type custKey [16]byte

func custKeyOf(customerID string) custKey { return md5.Sum([]byte(customerID)) }

// seqRange is an inclusive range of a customer's sequence numbers.
type seqRange struct{ lo, hi uint64 }

// maxPending bounds the pending ranges kept per customer. Past it the two oldest ranges merge: the
// seqs delivered between them count as pending again, so a replay of one of those would be
// delivered a second time (late) rather than an undelivered event being dropped.
const maxPending = 256

// cust is the state of one customer on its shard: the keyed state that dedupe and reorder share.
//
// Every seq at or below cursor was released, except the pending ones: skipped by a gap (the
// reorder window ran out before they arrived) or dead-lettered. An event at or below the cursor
// that is not pending is a duplicate; a pending one is delivered late and stops being pending.
// cursor, hash, day and pending are durable (the state log, statelog.go); held is not: held
// events are after the checkpoint and the next owner reads them again.
type cust struct {
	key     custKey
	cursor  uint64     // last released seq; 0 before the first
	hash    uint32     // low 32 bits of the content hash of the event released at cursor; 0 unknown
	day     uint32     // day (Unix time / 24 h) of the customer's last event: the state expires after
	pending []seqRange // at or below cursor and not delivered; sorted, disjoint

	held  []*rec // events held for reordering, sorted by seq (memory only)
	dirty bool   // in shardState.dirty: changed since the last flush to the state log
	// returning is set on a new state for a customer whose earlier state expired (retired.go): its
	// first release records no gap.
	returning bool
}

// delivered reports whether seq s of c was released and delivered (or given up as a duplicate).
func (c *cust) delivered(s uint64) bool {
	if s > c.cursor {
		return false
	}
	i, found := c.findPending(s)
	return !found && i >= 0
}

// findPending returns the index of the pending range holding s and true, or false.
func (c *cust) findPending(s uint64) (int, bool) {
	i, _ := slices.BinarySearchFunc(c.pending, s, func(r seqRange, s uint64) int {
		switch {
		case r.hi < s:
			return -1
		case r.lo > s:
			return 1
		}
		return 0
	})
	if i < len(c.pending) && c.pending[i].lo <= s && s <= c.pending[i].hi {
		return i, true
	}
	return i, false
}

// addPending records lo..hi (at or below the cursor) as not delivered.
func (c *cust) addPending(lo, hi uint64) {
	if lo > hi {
		return
	}
	i, _ := slices.BinarySearchFunc(c.pending, lo, func(r seqRange, s uint64) int {
		if r.lo < s {
			return -1
		}
		if r.lo > s {
			return 1
		}
		return 0
	})
	c.pending = slices.Insert(c.pending, i, seqRange{lo, hi})
	// Merge with neighbours that touch or overlap.
	out := c.pending[:0]
	for _, r := range c.pending {
		if n := len(out); n > 0 && (out[n-1].hi == ^uint64(0) || r.lo <= out[n-1].hi+1) {
			out[n-1].hi = max(out[n-1].hi, r.hi)
			continue
		}
		out = append(out, r)
	}
	c.pending = out
	for len(c.pending) > maxPending {
		c.pending[1].lo = c.pending[0].lo
		c.pending = c.pending[1:]
	}
}

// removePending records seq s as delivered; it must be pending.
func (c *cust) removePending(s uint64) {
	i, ok := c.findPending(s)
	if !ok {
		return
	}
	r := c.pending[i]
	switch {
	case r.lo == s && r.hi == s:
		c.pending = slices.Delete(c.pending, i, i+1)
	case r.lo == s:
		c.pending[i].lo++
	case r.hi == s:
		c.pending[i].hi--
	default:
		c.pending = slices.Insert(c.pending, i+1, seqRange{s + 1, r.hi})
		c.pending[i].hi = s - 1
	}
}

// released records that e (seq s) was released by the reorder. Seqs skipped on the way become
// pending; a late one stops being pending.
func (c *cust) released(s uint64, hash uint64) {
	switch {
	case s > c.cursor:
		c.addPending(c.cursor+1, s-1)
		c.cursor = s
		c.hash = uint32(hash)
		c.returning = false
	default:
		c.removePending(s)
	}
}

// day returns the state day of t.
func dayOf(t time.Time) uint32 { return uint32(t.Unix() / 86400) }

// shardState is the keyed state of one shard: every customer seen on it within the horizon, and
// the ids of the events it wrote last (the level-1 dedupe cache).
type shardState struct {
	custs   map[custKey]*cust
	dirty   []*cust // changed since the last flush, each once
	recent  *recent
	fresh   []idEntry // written since the last flush
	retired retired   // customers whose state expired
}

func newShardState(recentSize int) *shardState {
	return &shardState{custs: map[custKey]*cust{}, recent: newRecent(recentSize)}
}

// idEntry is one written event in the level-1 cache: the hash of its id and the low 32 bits of its
// content hash.
type idEntry struct {
	id   uint64
	hash uint32
}

// idHash is the key of an event id in the level-1 cache (a 64-bit hash: the cache holds tens of
// thousands of ids, and two ids colliding would take 2^32 of them).
func idHash(eventID string) uint64 { return xxhash.Sum64String(eventID) }

// wrote records a written event in the level-1 cache and for the next flush.
func (st *shardState) wrote(id uint64, hash uint32) {
	st.recent.add(id, hash)
	st.fresh = append(st.fresh, idEntry{id, hash})
}

// recent is the level-1 dedupe cache of one shard: the content hashes of the last size event ids
// written, forgotten in the order they were added (a hit does not refresh an id: duplicates follow
// their original within a short time, and a map and a ring cost no allocation per event, where an
// LRU list costs one). Not safe for concurrent use.
type recent struct {
	size int
	m    map[uint64]uint32
	ring []uint64 // ids in the order added; ring[next] is the oldest once full
	next int
}

func newRecent(size int) *recent { return &recent{size: size, m: map[uint64]uint32{}} }

func (r *recent) get(id uint64) (uint32, bool) {
	h, ok := r.m[id]
	return h, ok
}

// add records id with content hash h; an id already present only has its hash replaced.
func (r *recent) add(id uint64, h uint32) {
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

// last calls fn for the last n ids added, oldest first.
func (r *recent) last(n int, fn func(idEntry)) {
	n = min(n, len(r.ring))
	for i := range n {
		j := (r.next + len(r.ring) - n + i) % len(r.ring)
		fn(idEntry{r.ring[j], r.m[r.ring[j]]})
	}
}

// get returns the state of the customer with key k, creating it (cursor 0) when it is new.
func (st *shardState) get(k custKey) *cust {
	c := st.custs[k]
	if c == nil {
		c = &cust{key: k, returning: st.retired.has(k)}
		st.custs[k] = c
	}
	return c
}

// touch records that c changed (or saw an event) on day: it goes to the next flush, once.
func (st *shardState) touch(c *cust, day uint32) {
	if day > c.day {
		c.day = day
	}
	if !c.dirty {
		c.dirty = true
		st.dirty = append(st.dirty, c)
	}
}

// State encoding. A chunk is stateVersion followed by entries, each a kind byte and its body; an
// entry never spans chunks.
//
//	kind 0, one customer: key [16] | uvarint cursor | hash uint32 LE | uvarint day | uvarint n |
//	        n x (uvarint lo-prev, uvarint hi-lo), prev the hi of the previous range (0 first)
//	kind 1, written event ids: uvarint n | n x (id uint64 LE | hash uint32 LE), oldest first
//	kind 2, a piece of a retired-customer filter: uvarint generation | uvarint since (day) |
//	        uvarint words in the filter | uvarint offset | uvarint n | n x uint64 LE
const stateVersion = 2

const (
	entryCust    = 0
	entryIDs     = 1
	entryRetired = 2
	idSize       = 12
	// wordsPerEntry bounds the filter words of one entry, so that it fits a chunk.
	wordsPerEntry = 96
)

// retiredPiece is one entry of kind 2.
type retiredPiece struct {
	gen, since, total, offset int
	words                     []uint64
}

func appendRetired(dst []byte, p retiredPiece) []byte {
	dst = append(dst, entryRetired)
	for _, v := range []int{p.gen, p.since, p.total, p.offset, len(p.words)} {
		dst = binary.AppendUvarint(dst, uint64(v))
	}
	for _, w := range p.words {
		dst = binary.LittleEndian.AppendUint64(dst, w)
	}
	return dst
}

// pieces yields the entries of the retired filter.
func (r *retired) pieces(yield func(retiredPiece) bool) {
	for gen, b := range r.gens {
		if b == nil {
			continue
		}
		for off := 0; off < len(b.words); off += wordsPerEntry {
			if !yield(retiredPiece{gen: gen, since: int(r.since), total: len(b.words), offset: off, words: b.words[off:min(off+wordsPerEntry, len(b.words))]}) {
				return
			}
		}
	}
}

// apply takes one piece of a stored filter.
func (r *retired) apply(p retiredPiece) error {
	if p.gen > 1 || p.total == 0 || p.total > bloomMaxBits/64 || p.total&(p.total-1) != 0 || p.offset+len(p.words) > p.total {
		return fmt.Errorf("%w: retired filter piece %d/%d of %d words", errBadState, p.offset, len(p.words), p.total)
	}
	b := r.gens[p.gen]
	if b == nil || len(b.words) != p.total {
		b = &bloom{words: make([]uint64, p.total)}
		r.gens[p.gen] = b
	}
	copy(b.words[p.offset:], p.words)
	if p.gen == 0 {
		r.since = uint32(p.since)
	}
	return nil
}

func appendEntry(dst []byte, c *cust) []byte {
	dst = append(dst, entryCust)
	dst = append(dst, c.key[:]...)
	dst = binary.AppendUvarint(dst, c.cursor)
	dst = binary.LittleEndian.AppendUint32(dst, c.hash)
	dst = binary.AppendUvarint(dst, uint64(c.day))
	dst = binary.AppendUvarint(dst, uint64(len(c.pending)))
	var prev uint64
	for _, r := range c.pending {
		dst = binary.AppendUvarint(dst, r.lo-prev)
		dst = binary.AppendUvarint(dst, r.hi-r.lo)
		prev = r.hi
	}
	return dst
}

func appendIDs(dst []byte, ids []idEntry) []byte {
	dst = append(dst, entryIDs)
	dst = binary.AppendUvarint(dst, uint64(len(ids)))
	for _, e := range ids {
		dst = binary.LittleEndian.AppendUint64(dst, e.id)
		dst = binary.LittleEndian.AppendUint32(dst, e.hash)
	}
	return dst
}

var errBadState = errors.New("undecodable state chunk")

// decodeChunk calls onCust for every customer entry of a chunk, onID for every event id and onRetired
// (nil: such entries are skipped) for every piece of a retired filter, in order. What it passes is
// reused: copy what you keep.
func decodeChunk(b []byte, onCust func(c *cust), onID func(idEntry), onRetired func(retiredPiece) error) error {
	if len(b) == 0 || b[0] != stateVersion {
		return fmt.Errorf("%w: version %v", errBadState, b[:min(1, len(b))])
	}
	b = b[1:]
	var c cust
	uv := func() (uint64, error) {
		v, n := binary.Uvarint(b)
		if n <= 0 {
			return 0, errBadState
		}
		b = b[n:]
		return v, nil
	}
	for len(b) > 0 {
		kind := b[0]
		b = b[1:]
		switch kind {
		case entryIDs:
			n, err := uv()
			if err != nil || n > uint64(len(b)/idSize) {
				return errBadState
			}
			for range n {
				onID(idEntry{binary.LittleEndian.Uint64(b), binary.LittleEndian.Uint32(b[8:])})
				b = b[idSize:]
			}
			continue
		case entryRetired:
			var f [5]uint64
			for i := range f {
				v, err := uv()
				if err != nil || v > bloomMaxBits {
					return errBadState
				}
				f[i] = v
			}
			if f[4] > uint64(len(b)/8) {
				return errBadState
			}
			words := make([]uint64, f[4])
			for i := range words {
				words[i] = binary.LittleEndian.Uint64(b[8*i:])
			}
			b = b[8*len(words):]
			if onRetired != nil {
				if err := onRetired(retiredPiece{gen: int(f[0]), since: int(f[1]), total: int(f[2]), offset: int(f[3]), words: words}); err != nil {
					return err
				}
			}
			continue
		case entryCust:
		default:
			return fmt.Errorf("%w: entry kind %d", errBadState, kind)
		}
		if len(b) < 16 {
			return errBadState
		}
		copy(c.key[:], b[:16])
		b = b[16:]
		var err error
		if c.cursor, err = uv(); err != nil {
			return err
		}
		if len(b) < 4 {
			return errBadState
		}
		c.hash = binary.LittleEndian.Uint32(b)
		b = b[4:]
		day, err := uv()
		if err != nil {
			return err
		}
		c.day = uint32(day)
		n, err := uv()
		if err != nil || n > maxPending {
			return errBadState
		}
		c.pending = c.pending[:0]
		var prev uint64
		for range n {
			d, err := uv()
			if err != nil {
				return err
			}
			w, err := uv()
			if err != nil {
				return err
			}
			lo := prev + d
			c.pending = append(c.pending, seqRange{lo, lo + w})
			prev = lo + w
		}
		onCust(&c)
	}
	return nil
}

// apply replaces the state of c's customer with c (a later entry wins).
func (st *shardState) apply(c *cust) {
	cc := st.get(c.key)
	cc.cursor, cc.hash, cc.day = c.cursor, c.hash, c.day
	cc.pending = append(cc.pending[:0], c.pending...)
}

// inRange reports whether k lies in the inclusive hash key range [lo, hi].
func inRange(k custKey, lo, hi custKey) bool {
	return bytes.Compare(k[:], lo[:]) >= 0 && bytes.Compare(k[:], hi[:]) <= 0
}
