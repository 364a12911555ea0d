package processors

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/kinesis-events/pipeline/event"
	"github.com/kinesis-events/pipeline/internal/names"
)

// Benchmarks of the in-process pipeline (issue 7 part 1). Run with -cpu 1; each op is one event, so
// ns/op is ns/event and allocs/op is allocs/event. BenchmarkFloor is the baseline of the same run:
// a bare encoding/json decode of the raw record plus an HMAC-SHA256 over the same bytes.

const (
	benchBatch     = 500 // records per Process call, like one GetRecords page
	benchCustomers = 1000
)

var benchTypes = []string{"page_view", "product_view", "add_to_cart", "remove_from_cart", "checkout_started", "purchase"}

var (
	benchMu   sync.Mutex
	benchPool []Record // clean: distinct events, in order per customer
	benchKR   *event.Keyring
)

// benchRecords returns n distinct signed records (generated once, extended as needed).
func benchRecords(b *testing.B, n int) ([]Record, *event.Keyring) {
	benchMu.Lock()
	defer benchMu.Unlock()
	if benchKR == nil {
		benchKR = testKeyring(b)
	}
	for i := len(benchPool); i < n; i++ {
		c := i % benchCustomers
		e := ev{id: fmt.Sprintf("evt-%08d", i), cust: fmt.Sprintf("tok_cust%022d", c), seq: uint64(i/benchCustomers + 1),
			typ:   benchTypes[i%len(benchTypes)],
			props: fmt.Sprintf(`{"page":"/products/%d","referrer":"https://example.com/search?q=shoes","sku":"SKU-%05d","price":%d.99,"qty":%d,"currency":"EUR"}`, i%977, i%50000, i%200, 1+i%3)}
		benchPool = append(benchPool, Record{SequenceNumber: fmt.Sprintf("4963%052d", i), Data: raw(b, benchKR, e), PartitionKey: e.cust, ArrivedAt: t0})
	}
	return benchPool[:n], benchKR
}

// benchPutter accepts everything at once.
type benchPutter struct{ ok []types.PutRecordsResultEntry }

func newBenchPutter() *benchPutter {
	p := &benchPutter{ok: make([]types.PutRecordsResultEntry, MaxPutRecords)}
	sn, shard := "1", "shardId-000000000000"
	for i := range p.ok {
		p.ok[i] = types.PutRecordsResultEntry{SequenceNumber: &sn, ShardId: &shard}
	}
	return p
}

var zero32 int32

func (p *benchPutter) PutRecords(_ context.Context, in *kinesis.PutRecordsInput, _ ...func(*kinesis.Options)) (*kinesis.PutRecordsOutput, error) {
	return &kinesis.PutRecordsOutput{Records: p.ok[:len(in.Records)], FailedRecordCount: &zero32}, nil
}

// benchStore is the fake dedupe table: it finds nothing (the shard is new) and accepts every write
// at once, counting round trips and write units as DynamoDB bills them.
type benchStore struct{ gets, puts, units atomic.Int64 }

func (s *benchStore) Get(context.Context, []string) ([]Item, []string, error) {
	s.gets.Add(1)
	return nil, nil, nil
}

func (s *benchStore) Put(_ context.Context, items []Item) ([]Item, error) {
	s.puts.Add(1)
	for _, it := range items {
		s.units.Add(int64(it.writeUnits()))
	}
	return nil, nil
}

func (s *benchStore) Swap(_ context.Context, it Item, prev uint64) (bool, error) {
	s.puts.Add(1)
	it.Version = prev + 1
	s.units.Add(int64(it.writeUnits()))
	return true, nil
}

func benchConfig() Config {
	routes := map[string]string{}
	for _, t := range benchTypes {
		routes[t] = names.AnalyticsPrefix + t
	}
	return Config{Routes: routes, DefaultStream: names.OtherStream, QuarantineStream: names.QuarantineStream, DLQStream: names.DLQStream}
}

// BenchmarkPipeline runs decode + verify + dedupe (L1, in-flight, the shard's keyed state) +
// reorder + route + encode + write (fake Putter) + mark (the state log on a fake store), in batches
// of 500.
//
//	clean: distinct events, in order per customer.
//	mixed: 5% natural duplicates and 10% of events displaced a few positions (reordered).
//
// 1,000 customers in round robin and 500 records per batch is the worst case for the state log:
// every event changes a customer's state, and no customer twice in a batch.
func BenchmarkPipeline(b *testing.B) {
	for _, mode := range []string{"clean", "mixed"} {
		b.Run(mode, func(b *testing.B) {
			pool, kr := benchRecords(b, b.N)
			recs := pool
			if mode == "mixed" {
				recs = mix(pool)
			}
			cfg := benchConfig()
			counted := &benchStore{}
			p, err := New(cfg, Deps{Kinesis: newBenchPutter(), Dedupe: counted, Keys: kr, Now: func() time.Time { return t0 }})
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			s, err := p.OpenShard(ctx, "shardId-000000000000", Lineage{})
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			cpu := startCPU()
			for start := 0; start < len(recs); start += benchBatch {
				if _, err := s.Process(ctx, recs[start:min(start+benchBatch, len(recs))]); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			cpu.report(b, len(recs))
			el := b.Elapsed()
			b.ReportMetric(float64(len(recs))/el.Seconds(), "events/s")
			b.ReportMetric(float64(counted.gets.Load()+counted.puts.Load())/float64(len(recs)), "roundtrips/event")
			b.ReportMetric(float64(counted.units.Load())/float64(len(recs)), "writeunits/event")
		})
	}
}

// mix returns pool with every 20th event duplicated right after itself and every 10th event moved
// three positions later (so it arrives after its customer's successor only when they are close).
func mix(pool []Record) []Record {
	out := make([]Record, 0, len(pool)+len(pool)/20)
	var delayed []Record
	var delay []int
	for i, r := range pool {
		if i%10 == 3 {
			delayed = append(delayed, r)
			delay = append(delay, 3)
		} else {
			out = append(out, r)
			if i%20 == 7 {
				out = append(out, r)
			}
		}
		for k := 0; k < len(delayed); {
			delay[k]--
			if delay[k] <= 0 {
				out = append(out, delayed[k])
				delayed = append(delayed[:k], delayed[k+1:]...)
				delay = append(delay[:k], delay[k+1:]...)
				continue
			}
			k++
		}
	}
	return append(out, delayed...)
}

// cpuMeter reports process CPU time (user + system, all threads, GC included) per event: on a shared,
// busy machine it is a steadier figure than wall time, which also counts time spent waiting for a core.
type cpuMeter struct{ start time.Duration }

func cpuNow() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func startCPU() cpuMeter { return cpuMeter{start: cpuNow()} }

func (m cpuMeter) report(b *testing.B, events int) {
	b.ReportMetric(float64(cpuNow()-m.start)/float64(events), "cpu-ns/event")
}

// floorRaw mirrors event.Raw with its detail decoded into a typed struct, as a plain consumer would.
type floorRaw struct {
	V           int       `json:"v"`
	Type        string    `json:"type"`
	Source      string    `json:"source"`
	ForwardedAt time.Time `json:"forwarded_at"`
	Detail      struct {
		EventID    string          `json:"event_id"`
		CustomerID string          `json:"customer_id"`
		Seq        uint64          `json:"seq"`
		OccurredAt string          `json:"occurred_at"`
		Properties json.RawMessage `json:"properties"`
		KeyID      string          `json:"key_id"`
		Signature  string          `json:"signature"`
	} `json:"detail"`
}

// BenchmarkFloor is the baseline: encoding/json decode of the raw record + HMAC-SHA256 over the same
// bytes, per event.
func BenchmarkFloor(b *testing.B) {
	pool, _ := benchRecords(b, b.N)
	mac := hmac.New(sha256.New, testKey.Secret)
	var sum [sha256.Size]byte
	b.ReportAllocs()
	b.ResetTimer()
	cpu := startCPU()
	for i := range pool {
		var r floorRaw
		if err := json.Unmarshal(pool[i].Data, &r); err != nil {
			b.Fatal(err)
		}
		mac.Reset()
		mac.Write(pool[i].Data)
		mac.Sum(sum[:0])
	}
	b.StopTimer()
	cpu.report(b, len(pool))
	b.ReportMetric(float64(len(pool))/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkDecodeVerify isolates the event package's share of the pipeline:
//
//	raw:         event.DecodeRaw + Keyring.VerifyBuf, what the pipeline runs per record;
//	detail_only: event.ParseDetail of the detail bytes + VerifyBuf, i.e. the cost DecodeRaw would have
//	             if it did not first canonicalise the whole detail object only to find where it ends.
func BenchmarkDecodeVerify(b *testing.B) {
	b.Run("raw", func(b *testing.B) {
		pool, kr := benchRecords(b, b.N)
		scratch := make([]byte, 0, 1024)
		b.ReportAllocs()
		b.ResetTimer()
		cpu := startCPU()
		for i := range pool {
			r, d, err := event.DecodeRaw(pool[i].Data)
			if err != nil {
				b.Fatal(err)
			}
			if err := kr.VerifyBuf(scratch, r.Type, d, t0); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		cpu.report(b, len(pool))
	})
	b.Run("detail_only", func(b *testing.B) {
		pool, kr := benchRecords(b, b.N)
		details := make([][]byte, len(pool))
		types := make([]string, len(pool))
		for i := range pool {
			r, _, err := event.DecodeRaw(pool[i].Data)
			if err != nil {
				b.Fatal(err)
			}
			details[i], types[i] = r.Detail, r.Type
		}
		scratch := make([]byte, 0, 1024)
		b.ReportAllocs()
		b.ResetTimer()
		cpu := startCPU()
		for i := range details {
			d, err := event.ParseDetail(details[i])
			if err != nil {
				b.Fatal(err)
			}
			if err := kr.VerifyBuf(scratch, types[i], d, t0); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		cpu.report(b, len(details))
	})
}

// BenchmarkDedupeState measures what the dedupe state costs in the dedupe table, as DynamoDB bills
// it: write units per event (one per started kilobyte of each item written: the state log, its
// snapshots, the manifest) and round trips per event, for b.N events spread over a number of
// customers (round robin, in seq order per customer, batches of 500 as GetRecords pages). Run it
// with -benchtime Nx, N a few times the customers, so that compactions are counted in.
func BenchmarkDedupeState(b *testing.B) {
	for _, customers := range []int{10_000, 1_000_000} {
		b.Run(fmt.Sprintf("customers=%d", customers), func(b *testing.B) {
			kr := testKeyring(b)
			counted := &benchStore{}
			p, err := New(benchConfig(), Deps{Kinesis: newBenchPutter(), Dedupe: counted, Keys: kr, Now: func() time.Time { return t0 }})
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			s, err := p.OpenShard(ctx, "shardId-000000000000", Lineage{})
			if err != nil {
				b.Fatal(err)
			}
			batch := make([]Record, 0, benchBatch)
			b.ResetTimer()
			for i := range b.N {
				c := i % customers
				e := ev{id: fmt.Sprintf("evt-%010d", i), cust: fmt.Sprintf("tok_%026d", c), seq: uint64(i/customers + 1), props: `{"page":"/p"}`}
				batch = append(batch, Record{SequenceNumber: fmt.Sprintf("4963%052d", i), Data: raw(b, kr, e), ArrivedAt: t0})
				if len(batch) == benchBatch || i == b.N-1 {
					if _, err := s.Process(ctx, batch); err != nil {
						b.Fatal(err)
					}
					batch = batch[:0]
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(counted.units.Load())/float64(b.N), "writeunits/event")
			b.ReportMetric(float64(counted.gets.Load()+counted.puts.Load())/float64(b.N), "roundtrips/event")
			b.ReportMetric(0, "ns/op")
		})
	}
}
