package faultproxy

import (
	"context"
	"crypto/md5"
	"errors"
	"fmt"
	"math/big"
	"sort"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/kinesis-events/pipeline/internal/reshard"
)

// ShardLimits are the per-shard write limits the proxy enforces, as Kinesis does: an entry over
// its shard's limit is refused with ProvisionedThroughputExceededException (per entry in a
// PutRecords answer, HTTP 200; a 400 for PutRecord) and never reaches the emulator. A record's
// size is its data plus its partition key. Each shard has a bucket of one second's worth of
// records and bytes, refilled continuously; a record larger than a second's worth of bytes passes
// when the bucket is full and leaves it in debt.
type ShardLimits struct {
	// RecordsPerSecond per shard (Kinesis: 1,000). Required.
	RecordsPerSecond float64
	// BytesPerSecond per shard (Kinesis: 1 MiB). Required.
	BytesPerSecond float64
	// Refresh is the longest the proxy uses a stream's shard map before listing its shards again
	// (default 2s). A reshard through the proxy (SplitShard, MergeShards, UpdateShardCount)
	// refreshes it at once.
	Refresh time.Duration
	// Shards lists a stream's shards on the emulator (a Kinesis client pointed at Upstream, not at
	// the proxy). Required.
	Shards ShardLister
}

// ShardLister is the Kinesis call the proxy maps records to shards with.
type ShardLister interface {
	ListShards(ctx context.Context, in *kinesis.ListShardsInput, optFns ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error)
}

func (l *ShardLimits) validate() error {
	var errs []error
	if l.RecordsPerSecond <= 0 || l.BytesPerSecond <= 0 {
		errs = append(errs, fmt.Errorf("faultproxy: ShardLimits need positive RecordsPerSecond and BytesPerSecond, got %v and %v", l.RecordsPerSecond, l.BytesPerSecond))
	}
	if l.Refresh < 0 {
		errs = append(errs, fmt.Errorf("faultproxy: ShardLimits.Refresh %v is negative", l.Refresh))
	}
	if l.Shards == nil {
		errs = append(errs, errors.New("faultproxy: ShardLimits.Shards is required (a Kinesis client of the upstream)"))
	}
	return errors.Join(errs...)
}

// limiter holds every stream's shard map and the shards' buckets.
type limiter struct {
	cfg ShardLimits
	now func() time.Time

	mu      sync.Mutex
	streams map[string]*shardMap
}

type shardMap struct {
	mu      sync.Mutex // serialises refreshes of this stream
	at      time.Time  // when ranges were listed; zero: stale
	ranges  []reshard.Range
	buckets map[string]*bucket // by shard id; kept across refreshes
}

// bucket is one shard's token bucket of records and bytes.
type bucket struct {
	records, bytes float64
	last           time.Time
}

func newLimiter(cfg ShardLimits, now func() time.Time) *limiter {
	if cfg.Refresh == 0 {
		cfg.Refresh = 2 * time.Second
	}
	return &limiter{cfg: cfg, now: now, streams: map[string]*shardMap{}}
}

func (l *limiter) stream(name string) *shardMap {
	l.mu.Lock()
	defer l.mu.Unlock()
	m := l.streams[name]
	if m == nil {
		m = &shardMap{buckets: map[string]*bucket{}}
		l.streams[name] = m
	}
	return m
}

// invalidate makes the next write to stream list its shards again (after a reshard).
func (l *limiter) invalidate(stream string) {
	m := l.stream(stream)
	m.mu.Lock()
	m.at = time.Time{}
	m.mu.Unlock()
}

// entry is one record of a write, as the limiter sees it.
type entry struct {
	key      string // partition key
	explicit string // ExplicitHashKey, when given
	size     int    // data + partition key bytes
}

// hashKey is the record's position in the hash key space: ExplicitHashKey, or the MD5 of the
// partition key read as a 128-bit big-endian integer (what Kinesis and kinesalite do).
func (e entry) hashKey() *big.Int {
	if e.explicit != "" {
		if h, ok := new(big.Int).SetString(e.explicit, 10); ok {
			return h
		}
	}
	sum := md5.Sum([]byte(e.key))
	return new(big.Int).SetBytes(sum[:])
}

// admit decides, in order, which entries fit their shard's limits now; it returns one verdict
// per entry (true: admitted, its tokens taken) and the shard of each entry ("" when the stream's
// shards could not be listed: then every entry is admitted, and the error is returned).
func (l *limiter) admit(ctx context.Context, stream string, es []entry) ([]bool, []string, error) {
	ok := make([]bool, len(es))
	shards := make([]string, len(es))
	m := l.stream(stream)
	m.mu.Lock()
	defer m.mu.Unlock()
	now := l.now()
	if m.at.IsZero() || now.Sub(m.at) >= l.cfg.Refresh {
		if err := m.refresh(ctx, l.cfg.Shards, stream, now); err != nil && len(m.ranges) == 0 {
			for i := range ok {
				ok[i] = true
			}
			return ok, shards, err
		}
	}
	for i, e := range es {
		id := m.shardOf(e.hashKey())
		shards[i] = id
		if id == "" {
			ok[i] = true
			continue
		}
		b := m.buckets[id]
		if b == nil {
			b = &bucket{records: l.cfg.RecordsPerSecond, bytes: l.cfg.BytesPerSecond, last: now}
			m.buckets[id] = b
		}
		ok[i] = b.take(now, l.cfg.RecordsPerSecond, l.cfg.BytesPerSecond, e.size)
	}
	return ok, shards, nil
}

func (m *shardMap) refresh(ctx context.Context, lister ShardLister, stream string, now time.Time) error {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	all, err := reshard.ListAll(cctx, lister, stream)
	if err != nil {
		return fmt.Errorf("faultproxy: shard map of %s: %w", stream, err)
	}
	m.ranges, m.at = reshard.OpenRanges(all), now
	live := map[string]bool{}
	for _, r := range m.ranges {
		live[r.ShardID] = true
	}
	for id := range m.buckets {
		if !live[id] {
			delete(m.buckets, id)
		}
	}
	return nil
}

// shardOf finds the open shard whose range holds h ("" if none).
func (m *shardMap) shardOf(h *big.Int) string {
	i := sort.Search(len(m.ranges), func(i int) bool { return m.ranges[i].End.Cmp(h) >= 0 })
	if i < len(m.ranges) && m.ranges[i].Start.Cmp(h) <= 0 {
		return m.ranges[i].ShardID
	}
	return ""
}

// take refills the bucket to now and takes one record and size bytes if both are there.
func (b *bucket) take(now time.Time, recRate, byteRate float64, size int) bool {
	if dt := now.Sub(b.last).Seconds(); dt > 0 {
		b.records = min(recRate, b.records+dt*recRate)
		b.bytes = min(byteRate, b.bytes+dt*byteRate)
		b.last = now
	}
	need := float64(size)
	if need > byteRate {
		need = byteRate // a record over a second's worth passes on a full bucket, leaving debt
	}
	if b.records < 1 || b.bytes < need {
		return false
	}
	b.records--
	b.bytes -= float64(size)
	return true
}
