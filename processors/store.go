package processors

import (
	"bytes"
	"context"
	"strconv"
	"sync"
	"time"
)

// Dedupe table batch limits (DynamoDB BatchGetItem and BatchWriteItem).
const (
	MaxGetKeys  = 100
	MaxPutItems = 25
)

// DedupeStore is the dedupe table (hash key event_id, TTL attribute expires_at). It holds the
// shards' keyed state (statelog.go: a manifest, snapshot chunks and log chunks per shard) and a
// mark per quarantined record (QuarantineKey). Every call is one round trip. Implementations:
// DynamoDedupe (production) and MemoryDedupe.
type DedupeStore interface {
	// Get reads at most MaxGetKeys distinct keys with strongly consistent reads. It returns the
	// items found and the keys the store did not process this time (the caller retries them); a
	// key in neither does not exist.
	Get(ctx context.Context, keys []string) (found []Item, unprocessed []string, err error)
	// Put writes (replaces) at most MaxPutItems items with distinct keys and returns the items the
	// store did not process this time. When err is nil every other item is durable.
	Put(ctx context.Context, items []Item) (unprocessed []Item, err error)
	// Swap writes it with version prev+1 if the stored item at it.Key has version prev (prev 0:
	// if there is none). It returns false, nil when another version is there: an expected outcome
	// (someone else wrote it), not an error. it.Version is ignored.
	Swap(ctx context.Context, it Item, prev uint64) (bool, error)
}

// Item is one item of the dedupe table.
type Item struct {
	Key       string
	Data      []byte // a state chunk or manifest; empty for a quarantine mark
	Version   uint64 // set by Swap; 0 for items written by Put
	ExpiresAt time.Time
}

// Item sizes as DynamoDB bills them: the attribute names and values of the item.
const (
	attrNamesSize = len("event_id") + len("expires_at")
	kilobyte      = 1024
)

// size returns it's size as DynamoDB counts it for billing: every attribute's name and value (a
// number costs one byte per two significant digits, plus one).
func (it Item) size() int {
	n := attrNamesSize + len(it.Key) + numberSize(uint64(max(0, it.ExpiresAt.Unix())))
	if len(it.Data) > 0 {
		n += len("d") + len(it.Data)
	}
	if it.Version > 0 {
		n += len("v") + numberSize(it.Version)
	}
	return n
}

func numberSize(v uint64) int {
	digits := 1
	for v >= 10 {
		v /= 10
		digits++
	}
	return (digits+1)/2 + 1
}

// writeUnits is what writing it costs: one unit per started kilobyte.
func (it Item) writeUnits() int { return (it.size() + kilobyte - 1) / kilobyte }

// readUnits is what a strongly consistent read of it costs: one unit per started 4 KB.
func (it Item) readUnits() int { return (it.size() + 4*kilobyte - 1) / (4 * kilobyte) }

// quarantinePrefix contains a space, which an event_id never does, so it collides with no event id
// (state keys, statelog.go, do the same).
const quarantinePrefix = "quar# "

// QuarantineKey is the dedupe-table key marking that the raw record at sequence number seqNum of
// shard was quarantined, so a replay of the record after a lease moved does not quarantine it again.
//
// The records of one KPL aggregate share its sequence number: sub, the record's place inside it
// (Record.SubSequence), tells them apart; a plain record (sub 0) keeps the key it always had.
func QuarantineKey(shard, seqNum string, sub int) string {
	if sub == 0 {
		return quarantinePrefix + shard + " " + seqNum
	}
	return quarantinePrefix + shard + " " + seqNum + "/" + strconv.Itoa(sub)
}

// MemoryDedupe is an in-memory DedupeStore for tests and a single-process local run. Expired items
// are dropped lazily. Safe for concurrent use.
type MemoryDedupe struct {
	mu    sync.Mutex
	items map[string]Item
	now   func() time.Time
	puts  int
}

// NewMemoryDedupe returns an empty store; now (default time.Now) decides expiry.
func NewMemoryDedupe(now func() time.Time) *MemoryDedupe {
	if now == nil {
		now = time.Now
	}
	return &MemoryDedupe{items: map[string]Item{}, now: now}
}

// Get implements DedupeStore.
func (m *MemoryDedupe) Get(ctx context.Context, keys []string) ([]Item, []string, error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	var found []Item
	for _, k := range keys {
		if it, ok := m.items[k]; ok && now.Before(it.ExpiresAt) {
			found = append(found, it)
		}
	}
	return found, nil, nil
}

// Put implements DedupeStore.
func (m *MemoryDedupe) Put(ctx context.Context, items []Item) ([]Item, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, it := range items {
		it.Data = bytes.Clone(it.Data)
		it.Version = 0
		m.items[it.Key] = it
	}
	m.puts++
	if m.puts%1024 == 0 {
		now := m.now()
		for k, it := range m.items {
			if !now.Before(it.ExpiresAt) {
				delete(m.items, k)
			}
		}
	}
	return nil, nil
}

// Swap implements DedupeStore.
func (m *MemoryDedupe) Swap(ctx context.Context, it Item, prev uint64) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	cur, ok := m.items[it.Key]
	if ok && !m.now().Before(cur.ExpiresAt) {
		ok = false // expired: as if DynamoDB had deleted it
	}
	if (ok && cur.Version != prev) || (!ok && prev != 0) {
		return false, nil
	}
	it.Data = bytes.Clone(it.Data)
	it.Version = prev + 1
	m.items[it.Key] = it
	return true, nil
}

// Len returns the number of items stored (expired ones included until swept).
func (m *MemoryDedupe) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.items)
}

// dedupeCallsInFlight bounds the level-2 store calls one shard has in flight at once. A batch's keys
// (and its items) go out as concurrent chunks, so a 2,000-record batch waits for a few round trips
// rather than for a hundred one after the other; the number of calls is the same.
const dedupeCallsInFlight = 4

// inChunks runs fn over [0, n) in chunks of size, at most dedupeCallsInFlight at once, and returns
// the first error (the others are cancelled). A single chunk runs on the caller's goroutine.
func inChunks(ctx context.Context, n, size int, fn func(ctx context.Context, lo, hi int) error) error {
	if n <= size {
		return fn(ctx, 0, n)
	}
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg    sync.WaitGroup
		once  sync.Once
		first error
	)
	sem := make(chan struct{}, dedupeCallsInFlight)
	for lo := 0; lo < n && cctx.Err() == nil; lo += size {
		select {
		case sem <- struct{}{}:
		case <-cctx.Done():
			continue
		}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := fn(cctx, lo, min(lo+size, n)); err != nil {
				once.Do(func() { first = err; cancel() })
			}
		})
	}
	wg.Wait()
	if first != nil {
		return first
	}
	return ctx.Err()
}

// lookup reads keys from the level-2 store in batches of MaxGetKeys (concurrently, see inChunks),
// retrying errors and unprocessed keys with backoff until they are read or ctx ends, and calls fn
// for every item found, one call at a time.
func (p *Pipeline) lookup(ctx context.Context, shard string, keys []string, fn func(Item)) error {
	var mu sync.Mutex
	return inChunks(ctx, len(keys), MaxGetKeys, func(ctx context.Context, lo, hi int) error {
		return p.lookupChunk(ctx, shard, keys[lo:hi], func(it Item) {
			mu.Lock()
			fn(it)
			mu.Unlock()
		})
	})
}

// lookupChunk reads at most MaxGetKeys keys, retrying until they are read or ctx ends.
func (p *Pipeline) lookupChunk(ctx context.Context, shard string, chunk []string, fn func(Item)) error {
	return retryChunk(ctx, p, shard, "get", chunk, func(ctx context.Context, keys []string) ([]string, error) {
		found, unprocessed, err := p.store.Get(ctx, keys)
		if err != nil {
			return nil, err
		}
		units := 0
		for _, it := range found {
			units += it.readUnits()
			fn(it)
		}
		p.m.readUnits.Add(float64(units))
		return unprocessed, nil
	})
}

// storeItems writes items in batches of MaxPutItems (concurrently, see inChunks), retrying errors and
// unprocessed items with backoff until all are durable or ctx ends. Items of one call are in no
// order: a caller that needs some items durable before others makes two calls.
func (p *Pipeline) storeItems(ctx context.Context, shard string, items []Item) error {
	return inChunks(ctx, len(items), MaxPutItems, func(ctx context.Context, lo, hi int) error {
		return p.storeChunk(ctx, shard, items[lo:hi])
	})
}

// storeChunk writes at most MaxPutItems items, retrying until they are durable or ctx ends.
func (p *Pipeline) storeChunk(ctx context.Context, shard string, chunk []Item) error {
	return retryChunk(ctx, p, shard, "put", chunk, func(ctx context.Context, items []Item) ([]Item, error) {
		unprocessed, err := p.store.Put(ctx, items)
		if err != nil {
			return nil, err
		}
		units := 0
		for _, it := range items {
			units += it.writeUnits()
		}
		for _, it := range unprocessed {
			units -= it.writeUnits()
		}
		p.m.writeUnits.Add(float64(units))
		return unprocessed, nil
	})
}

// swap writes it conditionally on the stored version prev (DedupeStore.Swap), retrying errors with
// backoff until it is decided or ctx ends. An attempt that failed without an answer may have
// landed: if a later attempt then finds the condition false, the stored item is read, and the swap
// counts as done when it holds what this one wrote.
func (p *Pipeline) swap(ctx context.Context, shard string, it Item, prev uint64) (bool, error) {
	bo := p.retry.Start()
	unsure := false
	for {
		ok, err := p.store.Swap(ctx, it, prev)
		p.m.dedupeCalls.WithLabelValues("swap").Inc()
		switch {
		case err == nil && ok:
			p.m.writeUnits.Add(float64(Item{Key: it.Key, Data: it.Data, Version: prev + 1, ExpiresAt: it.ExpiresAt}.writeUnits()))
			return true, nil
		case err == nil && !unsure:
			return false, nil
		case err == nil:
			landed := false
			if lerr := p.lookup(ctx, shard, []string{it.Key}, func(got Item) {
				landed = got.Version == prev+1 && bytes.Equal(got.Data, it.Data)
			}); lerr != nil {
				return false, lerr
			}
			return landed, nil
		}
		if cerr := ctx.Err(); cerr != nil {
			return false, cerr
		}
		unsure = true
		p.m.dedupeErrors.WithLabelValues("swap").Inc()
		p.log.Warn("dedupe store conditional write failed, retrying", zapShard(shard), zapErr(err), zapAttempt(bo.Attempts()))
		if werr := bo.Wait(ctx); werr != nil {
			return false, werr
		}
	}
}

// retryChunk makes one level-2 store call (op "get" or "put") for chunk, then again for what the
// store left unprocessed or for all of it after an error, backing off in between, until nothing is
// left or ctx ends. It counts calls, keys and errors under op.
func retryChunk[T any](ctx context.Context, p *Pipeline, shard, op string, chunk []T, call func(context.Context, []T) ([]T, error)) error {
	what := "write"
	if op == "get" {
		what = "read"
	}
	bo := p.retry.Start()
	for len(chunk) > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		unprocessed, err := call(ctx, chunk)
		p.m.dedupeCalls.WithLabelValues(op).Inc()
		if err != nil {
			if cerr := ctx.Err(); cerr != nil {
				return cerr
			}
			p.m.dedupeErrors.WithLabelValues(op).Inc()
			p.log.Warn("dedupe store "+what+" failed, retrying", zapShard(shard), zapErr(err), zapAttempt(bo.Attempts()))
		} else {
			p.m.dedupeKeys.WithLabelValues(op).Add(float64(len(chunk) - len(unprocessed)))
			if len(unprocessed) == 0 {
				return nil
			}
			chunk = unprocessed
		}
		if err := bo.Wait(ctx); err != nil {
			return err
		}
	}
	return nil
}
