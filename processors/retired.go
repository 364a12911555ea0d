package processors

import (
	"encoding/binary"
	"math/bits"
)

// retired remembers the customers whose state expired (their last event is older than the dedupe
// horizon), so that a customer coming back after a long silence is not taken for a new one whose
// first events are missing: its first event still waits the reorder window (a new customer's seq 1
// may be behind it), but it is released without a gap. A Bloom filter: a false positive only leaves
// the gap unrecorded for a new customer whose first seq never comes; the seqs before are pending
// either way, so nothing is dropped.
//
// Two generations, each covering about one horizon: a customer is remembered for one to two
// horizons after its state expired.
type retired struct {
	gens [2]*bloom
	// since is the day the current generation started.
	since uint32
}

func (r *retired) has(k custKey) bool {
	for _, g := range r.gens {
		if g != nil && g.has(k) {
			return true
		}
	}
	return false
}

// add records that k's state expired on day, sizing a new generation for expected customers when
// the current one has covered horizonDays.
func (r *retired) add(k custKey, day, horizonDays uint32, expected int) {
	if r.gens[0] == nil || day >= r.since+horizonDays {
		r.gens[1], r.gens[0] = r.gens[0], newBloom(expected)
		r.since = day
	}
	r.gens[0].add(k)
}

// bloom is a Bloom filter over customer keys (already MD5 hashes: the probes come from their bits).
type bloom struct{ words []uint64 }

const (
	bloomProbes  = 4
	bloomBitsPer = 10 // bits per expected customer: about 1% false positives
	bloomMinBits = 1 << 16
	bloomMaxBits = 1 << 26 // 8 MiB
)

func newBloom(expected int) *bloom {
	n := max(bloomMinBits, min(bloomMaxBits, expected*bloomBitsPer))
	n = 1 << bits.Len(uint(n-1)) // a power of two
	return &bloom{words: make([]uint64, n/64)}
}

func (b *bloom) probes(k custKey, fn func(bit uint64)) {
	h1, h2 := binary.LittleEndian.Uint64(k[:8]), binary.LittleEndian.Uint64(k[8:])|1
	mask := uint64(len(b.words)*64 - 1)
	for i := range uint64(bloomProbes) {
		fn((h1 + i*h2) & mask)
	}
}

func (b *bloom) add(k custKey) {
	b.probes(k, func(bit uint64) { b.words[bit/64] |= 1 << (bit % 64) })
}

func (b *bloom) has(k custKey) bool {
	all := true
	b.probes(k, func(bit uint64) { all = all && b.words[bit/64]&(1<<(bit%64)) != 0 })
	return all
}
