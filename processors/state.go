package processors

import (
	"bytes"
	"crypto/md5"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"
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
	default:
		c.removePending(s)
	}
}

// day returns the state day of t.
func dayOf(t time.Time) uint32 { return uint32(t.Unix() / 86400) }

// shardState is the keyed state of one shard: every customer seen on it within the horizon.
type shardState struct {
	custs map[custKey]*cust
	dirty []*cust // changed since the last flush, each once
}

func newShardState() *shardState { return &shardState{custs: map[custKey]*cust{}} }

// get returns the state of the customer with key k, creating it (cursor 0) when it is new.
func (st *shardState) get(k custKey) *cust {
	c := st.custs[k]
	if c == nil {
		c = &cust{key: k}
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

// State encoding. An entry is one customer's durable state:
//
//	key [16] | uvarint cursor | hash uint32 LE | uvarint day | uvarint n | n x (uvarint lo-prev, uvarint hi-lo)
//
// where prev is the hi of the previous range (0 for the first). A chunk is stateVersion followed by
// entries; an entry never spans chunks.
const stateVersion = 1

func appendEntry(dst []byte, c *cust) []byte {
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

var errBadState = errors.New("undecodable state chunk")

// decodeChunk calls fn for every entry of a chunk. The cust it passes is reused: copy what you keep.
func decodeChunk(b []byte, fn func(c *cust)) error {
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
		fn(&c)
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
