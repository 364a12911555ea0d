package processors

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"go.uber.org/zap"
)

// The state log keeps a shard's keyed state (state.go) durable in the dedupe table, the way stream
// processors keep keyed state: a snapshot plus a log of changes since, per shard.
//
//	"st# <shard>"                      manifest: which snapshot, which logs (JSON), versioned
//	"st# <shard> s <snapshot> <k>"     snapshot chunk k
//	"st# <shard> l <epoch> <n>"        log chunk n of one lease's writer (its epoch)
//
// Chunks are packed to one write unit (1 KB) each, so a batch's changes cost one unit per 40 or so
// customers instead of one item per event. A lease's writer has an epoch of its own, so chunks of
// two writers (a zombie and the new owner) never overwrite each other; the manifest is written
// conditionally on its version, and a writer that finds another version there has been taken over.
//
// Order of writes: the outputs of a batch, then its changes to the log, then the checkpoint. A crash
// between the outputs and the log loses the changes of that batch only: the next owner delivers
// its events again (the duplicates a crash between write and mark always had).
//
// Opening a shard reads its manifest, snapshot and logs. A shard without a manifest (a new child of
// a reshard) starts from its parents' states, each filtered to its own hash key range, and writes
// that as its first snapshot. Compaction writes a new snapshot once the log is twice as large as the
// last one (or the snapshot is half a horizon old) and drops the customers whose state expired.

// ErrStateTakenOver is returned (wrapped) when the shard's state manifest was written by another
// writer: another worker owns the shard now, and this one must stop.
var ErrStateTakenOver = errors.New("shard state taken over by another writer")

const (
	statePrefix = "st# "
	// chunkTarget is the state a chunk carries: the item, key and attributes included, stays within
	// one write unit.
	chunkTarget = kilobyte
	// logWindow is how many log chunk keys one read asks for.
	logWindow = MaxGetKeys
	// compactMin is the least log size that triggers a compaction.
	compactMin = 64 << 10
	// maxEpochs bounds the logs a manifest lists before the next open compacts.
	maxEpochs = 4
	// compactRatio is how much larger than the snapshot the log grows before a compaction: each
	// snapshot costs its size once per compactRatio snapshots' worth of log, and a new owner reads
	// at most that much log.
	compactRatio = 2
)

func manifestKey(shard string) string { return statePrefix + shard }
func snapKey(shard, snap string, k int) string {
	return statePrefix + shard + " s " + snap + " " + strconv.Itoa(k)
}
func logKey(shard, epoch string, n int) string {
	return statePrefix + shard + " l " + epoch + " " + strconv.Itoa(n)
}

// manifest says where a shard's state is.
type manifest struct {
	Snap   string    `json:"snap,omitempty"` // snapshot id; "" for none (empty state)
	Chunks int       `json:"chunks"`         // snapshot chunks
	Bytes  int       `json:"bytes"`          // snapshot size, to decide compaction
	At     time.Time `json:"at"`             // when the snapshot was taken
	Logs   []logRef  `json:"logs"`           // logs after the snapshot, in order
	// Horizon is the dedupe horizon of the writer (seconds): for kclctl, which warns when a rewind
	// reaches past it.
	Horizon int64 `json:"horizon_s,omitempty"`
}

// logRef is one writer's log: its chunks from From on follow the snapshot.
type logRef struct {
	Epoch string `json:"epoch"`
	From  int    `json:"from"`
}

// Lineage is where a shard sits in the stream, for its state: a new shard (a reshard's child)
// starts from its parents' states, filtered to its hash key range.
type Lineage struct {
	Parents []string
	// HashLo and HashHi bound the shard's hash key range (inclusive), as 16 big-endian bytes. Both
	// zero means the whole key space.
	HashLo, HashHi [16]byte
}

// Covers reports whether a record with partitionKey falls in the shard's hash key range (Kinesis
// places a record by the MD5 of its partition key).
func (l Lineage) Covers(partitionKey string) bool { return l.covers(custKeyOf(partitionKey)) }

func (l Lineage) covers(k custKey) bool {
	if l.HashLo == ([16]byte{}) && l.HashHi == ([16]byte{}) {
		return true
	}
	return inRange(k, l.HashLo, l.HashHi)
}

// stateLog is the durable side of one shard's state, as written by this lease.
type stateLog struct {
	p       *Pipeline
	shard   string
	epoch   string
	m       manifest
	version uint64
	next    int // next log chunk of this epoch
	logSize int // bytes logged since the snapshot (all epochs)
	gen     int // snapshots taken by this epoch
}

func newEpoch() string {
	var b [6]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b[:])
}

// openState loads shard's state, or its parents' for a shard without one, and registers this
// lease's log in the manifest.
func (p *Pipeline) openState(ctx context.Context, shard string, lin Lineage) (*shardState, *stateLog, error) {
	l := &stateLog{p: p, shard: shard, epoch: newEpoch()}
	st := newShardState(p.cfg.L1Size)
	now := p.now()
	m, version, found, err := l.readManifest(ctx, shard)
	if err != nil {
		return nil, nil, err
	}
	if !found {
		for _, parent := range lin.Parents {
			pm, _, ok, err := l.readManifest(ctx, parent)
			if err != nil {
				return nil, nil, err
			}
			if !ok {
				p.log.Warn("parent shard has no state (never processed, or its state expired)", zapShard(shard), zap.String("parent", parent))
				continue
			}
			if _, err := l.load(ctx, parent, pm, st, lin.covers); err != nil {
				return nil, nil, fmt.Errorf("state of parent %s: %w", parent, err)
			}
		}
		l.expire(st, now)
		if err := l.compact(ctx, st, now); err != nil {
			return nil, nil, err
		}
		p.log.Info("shard state started", zapShard(shard), zap.Strings("parents", lin.Parents), zap.Int("customers", len(st.custs)))
		return st, l, nil
	}
	size, err := l.load(ctx, shard, m, st, nil)
	if err != nil {
		return nil, nil, err
	}
	l.m, l.version, l.logSize = m, version, size
	l.expire(st, now)
	if len(m.Logs) >= maxEpochs || size >= max(compactRatio*m.Bytes, compactMin) {
		err = l.compact(ctx, st, now)
	} else {
		l.m.Logs = append(slices.Clone(m.Logs), logRef{Epoch: l.epoch})
		err = l.writeManifest(ctx, now)
	}
	if err != nil {
		return nil, nil, err
	}
	p.log.Info("shard state loaded", zapShard(shard), zap.Int("customers", len(st.custs)),
		zap.Int("snapshot_chunks", m.Chunks), zap.Int("logs", len(m.Logs)), zap.Int("log_bytes", size))
	return st, l, nil
}

func (l *stateLog) readManifest(ctx context.Context, shard string) (manifest, uint64, bool, error) {
	var (
		m     manifest
		v     uint64
		found bool
		derr  error
	)
	err := l.p.lookup(ctx, l.shard, []string{manifestKey(shard)}, func(it Item) {
		found, v = true, it.Version
		derr = json.Unmarshal(it.Data, &m)
	})
	if err != nil {
		return m, 0, false, fmt.Errorf("read state manifest of %s: %w", shard, err)
	}
	if derr != nil {
		return m, 0, false, fmt.Errorf("state manifest of %s: %w", shard, derr)
	}
	return m, v, found, nil
}

// load applies shard's snapshot and logs (as listed by m) to st, keeping only the customers keep
// accepts (nil: all). It returns the bytes of log read.
func (l *stateLog) load(ctx context.Context, shard string, m manifest, st *shardState, keep func(custKey) bool) (int, error) {
	apply := func(c *cust) {
		if keep == nil || keep(c.key) {
			st.apply(c)
		}
	}
	// A parent's recent ids are kept whole: an id does not say which customer it belongs to, and
	// an id of the other child's range only costs a slot. Its retired filter is not: it covers both
	// children's customers and cannot be split (a customer of it back after the horizon then gets
	// its gap recorded, as a new one).
	addID := func(e idEntry) { st.recent.add(e.id, e.hash) }
	var onRetired func(retiredPiece) error
	if keep == nil {
		onRetired = st.retired.apply
	}
	if m.Chunks > 0 {
		keys := make([]string, m.Chunks)
		for k := range keys {
			keys[k] = snapKey(shard, m.Snap, k)
		}
		chunks, err := l.readChunks(ctx, keys)
		if err != nil {
			return 0, err
		}
		for k, c := range chunks {
			if c == nil {
				l.p.m.stateMissing.Inc()
				l.p.log.Error("state snapshot chunk missing: customers in it start over", zapShard(shard), zap.String("key", keys[k]))
				continue
			}
			if err := decodeChunk(c, apply, addID, onRetired); err != nil {
				return 0, fmt.Errorf("%s: %w", keys[k], err)
			}
		}
	}
	size := 0
	for _, ref := range m.Logs {
		for n := ref.From; ; n += logWindow {
			keys := make([]string, logWindow)
			for i := range keys {
				keys[i] = logKey(shard, ref.Epoch, n+i)
			}
			chunks, err := l.readChunks(ctx, keys)
			if err != nil {
				return 0, err
			}
			any := false
			for i, c := range chunks {
				if c == nil {
					continue
				}
				any = true
				size += len(c)
				if err := decodeChunk(c, apply, addID, nil); err != nil {
					return 0, fmt.Errorf("%s: %w", keys[i], err)
				}
			}
			if !any {
				break
			}
		}
	}
	return size, nil
}

// readChunks reads keys and returns their data in the order of keys (nil for a missing key).
func (l *stateLog) readChunks(ctx context.Context, keys []string) ([][]byte, error) {
	at := make(map[string]int, len(keys))
	for i, k := range keys {
		at[k] = i
	}
	out := make([][]byte, len(keys))
	err := l.p.lookup(ctx, l.shard, keys, func(it Item) {
		if i, ok := at[it.Key]; ok {
			out[i] = it.Data
		}
	})
	return out, err
}

// expire drops the customers whose last event is older than the horizon, and remembers them as
// retired.
func (l *stateLog) expire(st *shardState, now time.Time) {
	today := dayOf(now)
	oldest := dayOf(now.Add(-l.p.cfg.DedupeHorizon))
	horizonDays := max(1, uint32(l.p.cfg.DedupeHorizon/(24*time.Hour)))
	n := 0
	for k, c := range st.custs {
		if c.day < oldest && len(c.held) == 0 && !c.dirty {
			st.retired.add(k, today, horizonDays, len(st.custs))
			delete(st.custs, k)
			n++
		}
	}
	if n > 0 {
		l.p.m.stateExpired.Add(float64(n))
	}
}

// pack packs entries (each one whole, as appendEntry or appendIDs encode it; the slice is reused
// after the yield) into chunks of about one write unit each, under keyOf(i).
func (l *stateLog) pack(entries func(yield func([]byte) bool), keyOf func(i int) string, exp time.Time) ([]Item, int) {
	var (
		items []Item
		size  int
		buf   = []byte{stateVersion}
	)
	flush := func() {
		if len(buf) > 1 {
			items = append(items, Item{Key: keyOf(len(items)), Data: buf, ExpiresAt: exp})
			size += len(buf)
			buf = []byte{stateVersion}
		}
	}
	budget := func() int {
		return chunkTarget - (Item{Key: keyOf(len(items)), ExpiresAt: exp}.size() + len("d"))
	}
	limit := budget()
	for entry := range entries {
		if len(buf) > 1 && len(buf)+len(entry) > limit {
			flush()
			limit = budget()
		}
		buf = append(buf, entry...)
	}
	flush()
	return items, size
}

// idsPerEntry bounds the ids of one entry, so that it fits a chunk.
const idsPerEntry = 64

// snapshotIDs is how many of the last written ids a snapshot keeps (the log since keeps the rest).
const snapshotIDs = 16384

// entriesOf yields the entries of custs, then of ids in blocks, then of the retired filter (nil:
// none).
func entriesOf(custs func(yield func(*cust) bool), ids []idEntry, ret *retired) func(yield func([]byte) bool) {
	return func(yield func([]byte) bool) {
		var scratch []byte
		if ret != nil {
			for p := range ret.pieces {
				scratch = appendRetired(scratch[:0], p)
				if !yield(scratch) {
					return
				}
			}
		}
		for c := range custs {
			scratch = appendEntry(scratch[:0], c)
			if !yield(scratch) {
				return
			}
		}
		for len(ids) > 0 {
			n := min(len(ids), idsPerEntry)
			scratch = appendIDs(scratch[:0], ids[:n])
			if !yield(scratch) {
				return
			}
			ids = ids[n:]
		}
	}
}

// flush appends the changes of the batch (the dirty customers, the ids written) to this lease's
// log, then compacts when the log has grown to compactRatio times the snapshot, or the snapshot is
// half a horizon old.
func (l *stateLog) flush(ctx context.Context, st *shardState, now time.Time) error {
	if len(st.dirty) > 0 || len(st.fresh) > 0 {
		first := l.next
		items, size := l.pack(entriesOf(func(yield func(*cust) bool) {
			for _, c := range st.dirty {
				if !yield(c) {
					return
				}
			}
		}, st.fresh, nil), func(i int) string { return logKey(l.shard, l.epoch, first+i) }, l.expiry(now))
		if err := l.p.storeItems(ctx, l.shard, items); err != nil {
			return err
		}
		for _, c := range st.dirty {
			c.dirty = false
		}
		clear(st.dirty)
		st.dirty = st.dirty[:0]
		st.fresh = st.fresh[:0]
		l.next += len(items)
		l.logSize += size
	}
	if l.logSize >= max(compactRatio*l.m.Bytes, compactMin) || now.Sub(l.m.At) >= l.p.cfg.DedupeHorizon/2 {
		l.expire(st, now)
		return l.compact(ctx, st, now)
	}
	return nil
}

// compact writes st as a new snapshot and points the manifest at it, with this lease's log going
// on from its next chunk.
func (l *stateLog) compact(ctx context.Context, st *shardState, now time.Time) error {
	l.gen++
	snap := l.epoch + "." + strconv.Itoa(l.gen)
	var ids []idEntry
	st.recent.last(snapshotIDs, func(e idEntry) { ids = append(ids, e) })
	items, size := l.pack(entriesOf(func(yield func(*cust) bool) {
		for _, c := range st.custs {
			if !yield(c) {
				return
			}
		}
	}, ids, &st.retired), func(i int) string { return snapKey(l.shard, snap, i) }, l.expiry(now))
	if err := l.p.storeItems(ctx, l.shard, items); err != nil {
		return err
	}
	l.m = manifest{Snap: snap, Chunks: len(items), Bytes: size, At: now, Logs: []logRef{{Epoch: l.epoch, From: l.next}}}
	if len(items) == 0 {
		l.m.Snap = ""
	}
	if err := l.writeManifest(ctx, now); err != nil {
		return err
	}
	l.logSize = 0
	l.p.m.stateSnapshots.Inc()
	return nil
}

func (l *stateLog) writeManifest(ctx context.Context, now time.Time) error {
	l.m.Horizon = int64(l.p.cfg.DedupeHorizon / time.Second)
	data, err := json.Marshal(l.m)
	if err != nil {
		return err
	}
	it := Item{Key: manifestKey(l.shard), Data: data, ExpiresAt: l.expiry(now)}
	ok, err := l.p.swap(ctx, l.shard, it, l.version)
	if err != nil {
		return err
	}
	if !ok && l.version > 0 {
		// Another version is there, or none: the manifest of a shard idle past the horizon may have
		// expired (DynamoDB's TTL deleted it). Only a writer that registered itself can have
		// written another version.
		_, _, found, err := l.readManifest(ctx, l.shard)
		if err != nil {
			return err
		}
		if !found {
			l.version = 0
			if ok, err = l.p.swap(ctx, l.shard, it, 0); err != nil {
				return err
			}
		}
	}
	if !ok {
		return fmt.Errorf("shard %s: %w", l.shard, ErrStateTakenOver)
	}
	l.version++
	return nil
}

// expiry is when state written now may go: the horizon and a day, so that a customer's entry
// outlives the customer's expiry (judged by day).
func (l *stateLog) expiry(now time.Time) time.Time {
	return now.Add(l.p.cfg.DedupeHorizon + 24*time.Hour)
}

// ReadHorizon returns the dedupe horizon the last writer of shard's state ran with, read from the
// shard's state manifest in store; false when the shard has no state (never processed) or its
// writer did not record one.
func ReadHorizon(ctx context.Context, store DedupeStore, shard string) (time.Duration, bool, error) {
	found, _, err := store.Get(ctx, []string{manifestKey(shard)})
	if err != nil {
		return 0, false, fmt.Errorf("read the state manifest of %s: %w", shard, err)
	}
	if len(found) == 0 {
		return 0, false, nil
	}
	var m manifest
	if err := json.Unmarshal(found[0].Data, &m); err != nil {
		return 0, false, fmt.Errorf("state manifest of %s: %w", shard, err)
	}
	return time.Duration(m.Horizon) * time.Second, m.Horizon > 0, nil
}
