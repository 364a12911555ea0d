package processors

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kinesis-events/pipeline/event"
	"github.com/kinesis-events/pipeline/internal/localstack"
	"github.com/kinesis-events/pipeline/internal/localstack/localstacktest"
	"github.com/kinesis-events/pipeline/internal/names"
)

// testDedupeContract is the contract every DedupeStore meets, run against the in-memory store and
// DynamoDB (dynalite), so the fake cannot drift from the real table.
func testDedupeContract(t *testing.T, store DedupeStore) {
	ctx := context.Background()
	exp := time.Now().Add(25 * time.Hour).Truncate(time.Second)
	t.Run("missing keys are not found", func(t *testing.T) {
		found, unprocessed, err := store.Get(ctx, []string{"nope-1", manifestKey("nobody")})
		if err != nil || len(found) != 0 || len(unprocessed) != 0 {
			t.Fatalf("found %v unprocessed %v err %v", found, unprocessed, err)
		}
	})
	t.Run("items round trip", func(t *testing.T) {
		items := []Item{
			{Key: QuarantineKey("shardId-1", "4960", 0), ExpiresAt: exp},
			{Key: logKey("shardId-1", "abc", 0), Data: []byte{stateVersion, 1, 2, 3, 0, 255}, ExpiresAt: exp},
			{Key: "st", Data: []byte("a key that looks like a prefix"), ExpiresAt: exp},
		}
		if un, err := store.Put(ctx, items); err != nil || len(un) != 0 {
			t.Fatalf("put: %v %v", un, err)
		}
		found, _, err := store.Get(ctx, []string{items[0].Key, items[1].Key, items[2].Key, "evt-2"})
		if err != nil {
			t.Fatal(err)
		}
		slices.SortFunc(found, func(a, b Item) int { return strings.Compare(a.Key, b.Key) })
		want := slices.Clone(items)
		slices.SortFunc(want, func(a, b Item) int { return strings.Compare(a.Key, b.Key) })
		if len(found) != 3 {
			t.Fatalf("found %+v", found)
		}
		for i := range want {
			if found[i].Key != want[i].Key || string(found[i].Data) != string(want[i].Data) || found[i].Version != 0 || !found[i].ExpiresAt.Equal(want[i].ExpiresAt) {
				t.Fatalf("item %d: %+v, want %+v", i, found[i], want[i])
			}
		}
	})
	t.Run("put replaces", func(t *testing.T) {
		k := logKey("shardId-1", "abc", 0)
		if _, err := store.Put(ctx, []Item{{Key: k, Data: []byte("v2"), ExpiresAt: exp}}); err != nil {
			t.Fatal(err)
		}
		found, _, err := store.Get(ctx, []string{k})
		if err != nil || len(found) != 1 || string(found[0].Data) != "v2" {
			t.Fatalf("after replace: %+v %v", found, err)
		}
	})
	t.Run("swap is conditional on the version", func(t *testing.T) {
		k := manifestKey("shardId-swap")
		it := func(data string) Item { return Item{Key: k, Data: []byte(data), ExpiresAt: exp} }
		steps := []struct {
			data string
			prev uint64
			ok   bool
		}{
			{"first", 1, false}, // nothing there yet: only prev 0 creates
			{"first", 0, true},
			{"again", 0, false}, // there now
			{"second", 2, false},
			{"second", 1, true},
			{"stale", 1, false},
			{"third", 2, true},
		}
		for i, st := range steps {
			ok, err := store.Swap(ctx, it(st.data), st.prev)
			if err != nil || ok != st.ok {
				t.Fatalf("step %d: Swap(%q, %d) = %v, %v; want %v", i, st.data, st.prev, ok, err, st.ok)
			}
		}
		found, _, err := store.Get(ctx, []string{k})
		if err != nil || len(found) != 1 || string(found[0].Data) != "third" || found[0].Version != 3 {
			t.Fatalf("after swaps: %+v %v", found, err)
		}
	})
	t.Run("full batches", func(t *testing.T) {
		var keys []string
		for b := range 4 {
			var items []Item
			for i := range MaxPutItems {
				k := fmt.Sprintf("full-%d-%d", b, i)
				items = append(items, Item{Key: k, Data: []byte(k), ExpiresAt: exp})
				keys = append(keys, k)
			}
			for len(items) > 0 {
				un, err := store.Put(ctx, items)
				if err != nil {
					t.Fatal(err)
				}
				items = un
			}
		}
		got := 0
		for pending := keys; len(pending) > 0; {
			found, un, err := store.Get(ctx, pending)
			if err != nil {
				t.Fatal(err)
			}
			got += len(found)
			pending = un
		}
		if len(keys) != MaxGetKeys || got != MaxGetKeys {
			t.Fatalf("read %d of %d", got, len(keys))
		}
	})
}

func TestMemoryDedupeContract(t *testing.T) {
	testDedupeContract(t, NewMemoryDedupe(nil))
}

// TestEmulators runs the DynamoDB store contract against dynalite, and one end-to-end Process run
// against kinesalite and dynalite.
func TestEmulators(t *testing.T) {
	st := localstacktest.Start(t)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	t.Run("dynamodb dedupe contract", func(t *testing.T) {
		if err := st.CreateTable(ctx, "contract-dedupe", "event_id"); err != nil {
			t.Fatal(err)
		}
		testDedupeContract(t, NewDynamoDedupe(st.DynamoDB(), "contract-dedupe"))
		if _, _, err := NewDynamoDedupe(st.DynamoDB(), "contract-dedupe").Get(ctx, make([]string, MaxGetKeys+1)); err == nil {
			t.Fatal("Get accepted more than MaxGetKeys")
		}
	})
	t.Run("process end to end", func(t *testing.T) { testEndToEnd(ctx, t, st) })
}

func testEndToEnd(ctx context.Context, t *testing.T, st *localstack.Stack) {
	cfg := testConfig()
	cfg.LatePolicy = LateStream
	for _, s := range []string{names.AnalyticsStream("page_view"), names.AnalyticsStream("purchase"), names.OtherStream, names.QuarantineStream, names.DLQStream, names.LateStream} {
		if err := st.CreateStream(ctx, s, 2); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.CreateTable(ctx, names.DedupeTable, "event_id"); err != nil {
		t.Fatal(err)
	}
	kr := testKeyring(t)
	newPipeline := func() *Pipeline {
		p, err := New(cfg, Deps{Kinesis: st.Kinesis(), Dedupe: NewDynamoDedupe(st.DynamoDB(), names.DedupeTable), Keys: kr})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	var g seqGen
	now := time.Now()
	var evs []ev
	for c := range 20 {
		for s := 1; s <= 10; s++ {
			typ := []string{"page_view", "purchase", "wishlist_add"}[(c+s)%3]
			evs = append(evs, ev{id: fmt.Sprintf("e-%d-%d", c, s), cust: fmt.Sprint("cust-", c), seq: uint64(s), typ: typ})
		}
	}
	// Reorder within each customer: swap seq 4 and 5; duplicate seq 7; a conflicting seq 8.
	var input []ev
	for i, e := range evs {
		switch e.seq {
		case 4:
			input = append(input, evs[i+1], e)
		case 5:
		case 7:
			input = append(input, e, e)
		case 8:
			input = append(input, e)
			c := e
			c.props = `{"tampered":"no, re-sent with other content"}`
			input = append(input, c)
		default:
			input = append(input, e)
		}
	}
	recs := g.recs(t, kr, now, input...)
	recs = append(recs, Record{SequenceNumber: g.next(), Data: []byte(`{"v":1,"type":"x"`), ArrivedAt: now})
	p := newPipeline()
	s, err := p.OpenShard(ctx, "shardId-000000000000", Lineage{})
	if err != nil {
		t.Fatal(err)
	}
	var wm string
	for start := 0; start < len(recs); start += 100 {
		var err error
		if wm, err = s.Process(ctx, recs[start:min(start+100, len(recs))]); err != nil {
			t.Fatal(err)
		}
	}
	if wm != recs[len(recs)-1].SequenceNumber || s.Held() != 0 {
		t.Fatalf("watermark %q held %d, want everything handled", wm, s.Held())
	}
	// A new owner replays everything from the start: nothing new may be written.
	s.Close()
	s2, err := newPipeline().OpenShard(ctx, "shardId-000000000000", Lineage{})
	if err != nil {
		t.Fatal(err)
	}
	if wm2, err := s2.Process(ctx, recs); err != nil || wm2 != wm {
		t.Fatalf("replay: %q %v", wm2, err)
	}

	delivered := map[string][]string{} // customer -> seqs in stream order, per stream
	total := 0
	for _, stream := range []string{names.AnalyticsStream("page_view"), names.AnalyticsStream("purchase"), names.OtherStream} {
		out, err := st.ReadAll(ctx, stream)
		if err != nil {
			t.Fatal(err)
		}
		perKey := map[string][]uint64{}
		for _, r := range out {
			var a event.Analytics
			if err := json.Unmarshal(r.Record.Data, &a); err != nil {
				t.Fatal(err)
			}
			if *r.Record.PartitionKey != a.CustomerID || a.Late || a.Gap != 0 {
				t.Fatalf("%s: record %+v (key %s)", stream, a, *r.Record.PartitionKey)
			}
			if ks := perKey[a.CustomerID]; len(ks) > 0 && ks[len(ks)-1] >= a.Seq {
				t.Fatalf("%s: customer %s seq %d after %d", stream, a.CustomerID, a.Seq, ks[len(ks)-1])
			}
			perKey[a.CustomerID] = append(perKey[a.CustomerID], a.Seq)
			delivered[a.EventID] = append(delivered[a.EventID], stream)
			total++
		}
	}
	if total != len(evs) || len(delivered) != len(evs) {
		t.Fatalf("%d records for %d distinct events, want %d once each", total, len(delivered), len(evs))
	}
	q, err := st.ReadAll(ctx, names.QuarantineStream)
	if err != nil {
		t.Fatal(err)
	}
	reasons := map[event.Reason]int{}
	for _, r := range q {
		var qr event.Quarantine
		if err := json.Unmarshal(r.Record.Data, &qr); err != nil {
			t.Fatal(err)
		}
		reasons[qr.Reason]++
	}
	// 20 conflicting duplicates and the malformed record in the first pass; the replay finds their
	// quarantine marks and writes none of them again.
	if reasons[event.ReasonConflictingDupe] != 20 || reasons[event.ReasonNotJSON] != 1 || len(q) != 21 {
		t.Fatalf("quarantine reasons %v", reasons)
	}
	for _, stream := range []string{names.LateStream, names.DLQStream} {
		if out, err := st.ReadAll(ctx, stream); err != nil || len(out) != 0 {
			t.Fatalf("%s: %d records, %v", stream, len(out), err)
		}
	}
}
