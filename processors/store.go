package processors

import (
	"context"
	"strings"
	"sync"
	"time"
)

// Level-2 dedupe store batch limits (DynamoDB BatchGetItem and BatchWriteItem).
const (
	MaxGetKeys  = 100
	MaxPutItems = 25
)

// DedupeStore is the level-2 dedupe table: event marks keyed by event_id, per-customer cursors
// keyed by CursorKey(customer_id), and marks of quarantined records keyed by QuarantineKey. Every call is one round trip. Implementations: DynamoDedupe
// (production) and MemoryDedupe.
type DedupeStore interface {
	// Get reads at most MaxGetKeys distinct keys. It returns the items found and the keys the store
	// did not process this time (the caller retries them); a key in neither does not exist.
	Get(ctx context.Context, keys []string) (found []Item, unprocessed []string, err error)
	// Put writes (replaces) at most MaxPutItems items with distinct keys and returns the items the
	// store did not process this time. When err is nil every other item is durable.
	Put(ctx context.Context, items []Item) (unprocessed []Item, err error)
}

// Item is one entry of the dedupe table: a mark (Key = event_id, Hash set) or a customer cursor
// (Key = CursorKey(customer), LastSeq set).
type Item struct {
	Key       string
	Hash      uint64 // content hash of the event that was written, for marks
	LastSeq   uint64 // last released seq, for cursors
	ExpiresAt time.Time
}

// cursorPrefix contains a space, which an event_id never does (event ids are printable without white
// space), so no event's mark can collide with a cursor.
const cursorPrefix = "cust# "

// CursorKey is the dedupe-table key of a customer's cursor.
func CursorKey(customerID string) string { return cursorPrefix + customerID }

// quarantinePrefix, like cursorPrefix, contains a space, so it collides with no event id.
const quarantinePrefix = "quar# "

// QuarantineKey is the dedupe-table key marking that the raw record at sequence number seqNum of
// shard was quarantined, so a replay of the record after a lease moved does not quarantine it again.
func QuarantineKey(shard, seqNum string) string { return quarantinePrefix + shard + " " + seqNum }

// IsCursorKey reports whether key is a cursor key, and for which customer.
func IsCursorKey(key string) (customerID string, ok bool) {
	return strings.CutPrefix(key, cursorPrefix)
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
		for _, it := range found {
			fn(it)
		}
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
	return retryChunk(ctx, p, shard, "put", chunk, p.store.Put)
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
