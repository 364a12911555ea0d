package processors

// watermark tracks the records received on a shard, in the order processed, and which are handled.
// The checkpoint watermark is the sequence number of the last of the shard's own records in the
// longest handled prefix: a record still held for reordering (or not yet written) pins it,
// whatever is handled behind it. Records of a parent's tail, which a new shard processes before
// its own, take part in the prefix but are never the watermark: they are not the shard's.
type watermark struct {
	entries []wmEntry // entries[head:] are the records after the watermark
	head    int
	base    uint64 // index of entries[0]
	last    string // current watermark; "" until the first record is handled
}

type wmEntry struct {
	seq     string
	done    bool
	foreign bool // a parent's record
}

// add registers the next record and returns its index; foreign marks a parent's record.
func (w *watermark) add(seq string, foreign bool) uint64 {
	if w.head > 1024 && w.head*2 > len(w.entries) {
		n := copy(w.entries, w.entries[w.head:])
		clear(w.entries[n:])
		w.entries = w.entries[:n]
		w.base += uint64(w.head)
		w.head = 0
	}
	w.entries = append(w.entries, wmEntry{seq: seq, foreign: foreign})
	return w.base + uint64(len(w.entries)-1)
}

// done marks record idx handled. Marking a record twice, or one already behind the watermark, is a
// no-op.
func (w *watermark) done(idx uint64) {
	if idx < w.base+uint64(w.head) {
		return
	}
	w.entries[idx-w.base].done = true
}

// advance moves the watermark over the handled prefix and returns it.
//
// The records of one KPL aggregate share its sequence number and are added together (one batch
// holds the whole aggregate). The watermark names a sequence number only once every record
// carrying it is handled: a checkpoint at an aggregate's number means the whole aggregate is done,
// and a restart reads on after it. So over an aggregate handled in part it stays at the record
// before the aggregate, and a crash replays the whole aggregate (its handled records are then
// duplicates the dedupe state drops) instead of skipping the rest.
func (w *watermark) advance() string {
	for w.head < len(w.entries) && w.entries[w.head].done {
		e := w.entries[w.head]
		next := w.head + 1
		if !e.foreign && (next == len(w.entries) || w.entries[next].seq != e.seq) {
			w.last = e.seq
		}
		w.entries[w.head] = wmEntry{}
		w.head++
	}
	return w.last
}

// pending is the number of records after the watermark (handled or not).
func (w *watermark) pending() int { return len(w.entries) - w.head }
