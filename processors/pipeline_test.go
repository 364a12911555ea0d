package processors

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/kinesis-events/pipeline/event"
	"github.com/kinesis-events/pipeline/internal/kinesisfake"
	"github.com/kinesis-events/pipeline/internal/names"
)

func TestConfigValidate(t *testing.T) {
	ok := testConfig()
	cases := []struct {
		name string
		mut  func(c *Config)
		want string // substring of the error, "" for valid
	}{
		{"valid", func(c *Config) {}, ""},
		{"zero durations take defaults", func(c *Config) { c.ReorderWindow, c.RetryBase, c.RetryMax = 0, 0, 0 }, ""},
		{"no quarantine", func(c *Config) { c.QuarantineStream = "" }, "QuarantineStream"},
		{"no dlq", func(c *Config) { c.DLQStream = "" }, "DLQStream"},
		{"nothing routable", func(c *Config) { c.Routes, c.DefaultStream = nil, "" }, "nothing can be routed"},
		{"late stream policy without stream", func(c *Config) { c.LatePolicy, c.LateStream = LateStream, "" }, "LateStream"},
		{"unknown late policy", func(c *Config) { c.LatePolicy = "drop" }, "LatePolicy"},
		{"retry bounds inverted", func(c *Config) { c.RetryBase, c.RetryMax = time.Second, time.Millisecond }, "retry backoff"},
		{"fractional rate", func(c *Config) { c.OutputRatePerShard = 0.5 }, "OutputRatePerShard"},
		{"empty route", func(c *Config) { c.Routes = map[string]string{"x": ""} }, "non-empty"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := ok
			c.Routes = map[string]string{"page_view": names.AnalyticsStream("page_view")}
			tc.mut(&c)
			err := c.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to mention %q", err, tc.want)
			}
		})
	}
	if _, err := New(Config{}, Deps{}); err == nil {
		t.Fatal("New accepted an empty config")
	}
}

func TestConfigDefaultsOnce(t *testing.T) {
	c := testConfig()
	c.ReorderWindow, c.RetryBase, c.RetryMax = -1, 0, 0
	d := c.withDefaults()
	if d.ReorderWindow != -1 || d.RetryBase != 50*time.Millisecond || d.RetryMax != 5*time.Second || d.LatePolicy != LateFlag {
		t.Fatalf("withDefaults = %+v", d)
	}
	if !reflect.DeepEqual(d.withDefaults(), d) {
		t.Fatal("withDefaults applied twice changed the config")
	}
	if c.RetryBase != 0 {
		t.Fatal("withDefaults changed its receiver")
	}
	// A bound that only conflicts with another's default: Validate (pure) accepts it, New does not.
	c.RetryBase = 10 * time.Second
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate applied defaults: %v", err)
	}
	if _, err := New(c, Deps{}); err == nil || !strings.Contains(err.Error(), "retry backoff") {
		t.Fatalf("New with RetryBase 10s over the default RetryMax 5s = %v", err)
	}
}

// TestProcessRoutes checks the happy path: routing by type (and the default stream), the analytics
// record's fields, marks and cursors written, and the watermark at the last record.
func TestProcessRoutes(t *testing.T) {
	h := newHarness(t, testConfig())
	s := h.open("shardId-000000000001")
	recs := h.recs(
		ev{id: "e1", cust: "c1", seq: 1},
		ev{id: "e2", cust: "c1", seq: 2, typ: "purchase", props: `{"sku": "A-1", "price": 19.9}`},
		ev{id: "e3", cust: "c2", seq: 1, typ: "newsletter_signup"},
	)
	wm := h.process(s, recs)
	if wm != recs[2].SequenceNumber {
		t.Fatalf("watermark %q, want the last record %q", wm, recs[2].SequenceNumber)
	}
	pv := analytics(t, h.kin, names.AnalyticsStream("page_view"))
	pu := analytics(t, h.kin, names.AnalyticsStream("purchase"))
	other := analytics(t, h.kin, names.OtherStream)
	if len(pv) != 1 || len(pu) != 1 || len(other) != 1 {
		t.Fatalf("routed %d/%d/%d, want 1/1/1", len(pv), len(pu), len(other))
	}
	got := pu[0]
	want := event.Analytics{EventID: "e2", Type: "purchase", Source: "test", CustomerID: "c1", Seq: 2,
		OccurredAt: "2026-11-26T11:59:00Z", SourceShard: "shardId-000000000001", SourceSeq: recs[1].SequenceNumber,
		ForwardedAt: t0, ProcessedAt: t0}
	props := got.Properties
	got.Properties = nil
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("analytics record\n got %+v\nwant %+v", got, want)
	}
	if string(props) != `{"sku":"A-1","price":19.9}` { // as sent (the test producer compacts), not canonicalised
		t.Fatalf("properties %s, want the producer's bytes", props)
	}
	if other[0].Type != "newsletter_signup" {
		t.Fatalf("default stream got type %q", other[0].Type)
	}
	// The customers' state is durable: what a new owner of the shard loads.
	st := h.durable("shardId-000000000001")
	if cursorOf(st, "c1") != 2 || cursorOf(st, "c2") != 1 || len(st.custs) != 2 {
		t.Fatalf("durable state: c1 %d, c2 %d, %d customers", cursorOf(st, "c1"), cursorOf(st, "c2"), len(st.custs))
	}
	if c := st.custs[custKeyOf("c1")]; c.hash == 0 || c.day != dayOf(t0) || len(c.pending) != 0 {
		t.Fatalf("state of c1: %+v", c)
	}
	if n := h.counter("pipeline_records_out_total", "stream", names.AnalyticsStream("purchase"), "type", "purchase"); n != 1 {
		t.Fatalf("records_out{purchase} = %v", n)
	}
	if n := h.counter("pipeline_records_in_total"); n != 3 {
		t.Fatalf("records_in = %v", n)
	}
}

// TestQuarantine checks that every bad record is quarantined with its reason, is never routed or
// marked, and does not block the shard.
func TestQuarantine(t *testing.T) {
	h := newHarness(t, testConfig())
	good := raw(t, h.kr, ev{id: "g1", cust: "c1", seq: 1})
	tampered := bytes.Replace(raw(t, h.kr, ev{id: "t1", cust: "c1", seq: 2}), []byte(`{"n":2}`), []byte(`{"n":3}`), 1)
	cases := []struct {
		name string
		data []byte
		want event.Reason
	}{
		{"not json", []byte("hello"), event.ReasonNotJSON},
		{"array", []byte("[1,2]"), event.ReasonBadEnvelope},
		{"tampered properties", tampered, event.ReasonBadSignature},
		{"unknown key", raw(t, h.kr, ev{id: "u1", cust: "c1", seq: 2, key: "k9"}), event.ReasonUnknownKey},
		{"retired key", raw(t, h.kr, ev{id: "r1", cust: "c1", seq: 2, key: "old"}), event.ReasonKeyRetired},
		{"no signature", bytes.Replace(good, []byte(`"signature":"`), []byte(`"signaturX":"`), 1), event.ReasonNoSignature},
		{"missing seq", bytes.Replace(good, []byte(`"seq":1,`), nil, 1), event.ReasonMissingField},
		{"too large", append([]byte(`{"pad":"`), append(bytes.Repeat([]byte("a"), maxAcceptedRecord), `"}`...)...), event.ReasonTooLarge},
	}
	var recs []Record
	for _, tc := range cases {
		recs = append(recs, Record{SequenceNumber: h.gen.next(), Data: tc.data, ArrivedAt: t0})
	}
	after := h.recs(ev{id: "g2", cust: "c9", seq: 1})
	recs = append(recs, after...)
	s := h.open("shard-q")
	if wm := h.process(s, recs); wm != after[0].SequenceNumber {
		t.Fatalf("watermark %q, want past every quarantined record", wm)
	}
	qs := quarantine(t, h.kin, names.QuarantineStream)
	if len(qs) != len(cases) {
		t.Fatalf("%d quarantine records, want %d", len(qs), len(cases))
	}
	bySeq := map[string]event.Quarantine{}
	for _, q := range qs {
		bySeq[q.SourceSeq] = q
	}
	for i, tc := range cases {
		q, ok := bySeq[recs[i].SequenceNumber]
		switch {
		case !ok:
			t.Errorf("%s: not quarantined", tc.name)
		case q.Reason != tc.want:
			t.Errorf("%s: reason %q (%s), want %q", tc.name, q.Reason, q.Detail, tc.want)
		case q.Stage != "worker" || q.SourceShard != "shard-q":
			t.Errorf("%s: quarantine record %+v", tc.name, q)
		case tc.name != "too large" && !bytes.Equal(q.Original, tc.data):
			t.Errorf("%s: original not kept verbatim", tc.name)
		}
		if n := h.counter("pipeline_quarantined_total", "reason", string(tc.want)); n < 1 {
			t.Errorf("%s: quarantined_total{%s} = %v", tc.name, tc.want, n)
		}
	}
	if n := len(h.kin.Records(names.AnalyticsStream("page_view"))); n != 1 {
		t.Fatalf("%d analytics records, want only the good one", n)
	}
	found, _, _ := h.mem.Get(context.Background(), []string{"t1", "u1", "r1"})
	if len(found) != 0 {
		t.Fatalf("quarantined events were marked seen: %+v", found)
	}

	// Without a default stream an unknown type is unroutable.
	cfg := testConfig()
	cfg.DefaultStream = ""
	h2 := newHarness(t, cfg)
	h2.process(h2.open("s"), h2.recs(ev{id: "x", cust: "c", seq: 1, typ: "mystery"}))
	if qs := quarantine(t, h2.kin, names.QuarantineStream); len(qs) != 1 || qs[0].Reason != event.ReasonUnroutable {
		t.Fatalf("unknown type without default stream: %+v", qs)
	}
}

// TestReplayDoesNotQuarantineAgain: a new owner replaying records that were quarantined (bad input,
// conflicting duplicates) writes no second quarantine record, counts them, and passes them in the
// watermark; a record that arrives for the first time is still quarantined.
func TestReplayDoesNotQuarantineAgain(t *testing.T) {
	h := newHarness(t, testConfig())
	good := h.recs(ev{id: "a1", cust: "a", seq: 1})
	conflict := h.recs(ev{id: "a1", cust: "a", seq: 1, props: `{"other":true}`})
	recs := append(append(good, Record{SequenceNumber: h.gen.next(), Data: []byte("junk")}), conflict...)
	h.process(h.open("s"), recs)
	if qs := quarantine(t, h.kin, names.QuarantineStream); len(qs) != 2 {
		t.Fatalf("first owner: %d quarantine records, want 2", len(qs))
	}
	p2, err := New(testConfig(), Deps{Kinesis: h.kin, Dedupe: h.store, Keys: h.kr, Now: h.clock.Now, Sleep: h.clock.Sleep})
	if err != nil {
		t.Fatal(err)
	}
	s2 := openShard(t, p2, "s")
	fresh := Record{SequenceNumber: h.gen.next(), Data: []byte("more junk")}
	if wm := h.process(s2, append(recs, fresh)); wm != fresh.SequenceNumber {
		t.Fatalf("replay watermark %q, want %q", wm, fresh.SequenceNumber)
	}
	qs := quarantine(t, h.kin, names.QuarantineStream)
	if len(qs) != 3 || qs[2].SourceSeq != fresh.SequenceNumber {
		t.Fatalf("after the replay: %d quarantine records (%+v), want the first 2 and the new one", len(qs), qs)
	}
	if n := len(h.kin.Records(names.AnalyticsStream("page_view"))); n != 1 {
		t.Fatalf("%d analytics records, want 1", n)
	}
	if n := testutil.ToFloat64(p2.m.quarReplays); n != 2 {
		t.Fatalf("pipeline_quarantine_replays_total = %v, want 2", n)
	}
}

// TestDedupeLevels checks natural and conflicting duplicates at each level: in flight (same batch),
// level 1 (a later batch, and a new owner of the shard: the recent ids are part of the state), and
// the customer's state (a copy older than level 1 holds). The first is kept. Behind the customer's
// last delivered seq the state cannot compare content: such a copy is dropped as unverified.
func TestDedupeLevels(t *testing.T) {
	cfg := testConfig()
	cfg.L1Size = 4
	h := newHarness(t, cfg)
	s := h.open("s1")
	orig := ev{id: "e1", cust: "c1", seq: 1}
	conflicting := ev{id: "e1", cust: "c1", seq: 1, props: `{"n":"other"}`}
	last := ev{id: "e2", cust: "c1", seq: 2}
	// Same batch: the copy is a natural duplicate of the event in flight, the variant conflicts.
	h.process(s, h.recs(orig, orig, conflicting, last))
	// Later batch: level 1.
	h.process(s, h.recs(orig, conflicting))
	s.Close()
	// A new owner of the shard: level 1 again, restored from the state.
	s = h.open("s1")
	h.process(s, h.recs(conflicting))
	// Four more events push e1 and e2 out of level 1 (4 ids): from then on the customer's state.
	h.process(s, h.recs(ev{id: "x1", cust: "c1", seq: 3}, ev{id: "x2", cust: "c1", seq: 4}))
	h.process(s, h.recs(ev{id: "y1", cust: "c2", seq: 1}, ev{id: "y2", cust: "c2", seq: 2}, ev{id: "y3", cust: "c2", seq: 3}, ev{id: "y4", cust: "c2", seq: 4}))
	h.process(s, h.recs(ev{id: "x2", cust: "c1", seq: 4, props: `{"n":"other"}`})) // at c1's cursor: compared
	h.process(s, h.recs(orig, conflicting))                                        // behind it: unverified
	s.Close()
	if got := perCustomer(analytics(t, h.kin, names.AnalyticsStream("page_view"))); !slices.Equal(got, []string{"c1:1", "c1:2", "c1:3", "c1:4", "c2:1", "c2:2", "c2:3", "c2:4"}) {
		t.Fatalf("delivered %v, want each event once", got)
	}
	qs := quarantine(t, h.kin, names.QuarantineStream)
	if len(qs) != 4 {
		t.Fatalf("%d quarantined, want 4 conflicting duplicates", len(qs))
	}
	for _, q := range qs {
		if q.Reason != event.ReasonConflictingDupe || !strings.Contains(string(q.Original), `"other"`) {
			t.Fatalf("quarantine %+v: want the conflicting variant with its reason", q)
		}
	}
	for _, c := range []struct {
		level, kind string
		n           float64
	}{
		{"inflight", "natural", 1}, {"inflight", "conflicting", 1}, {"l1", "natural", 1}, {"l1", "conflicting", 2},
		{"state", "conflicting", 1}, {"state", "unverified", 2},
	} {
		if n := h.counter("pipeline_dedupe_hits_total", "level", c.level, "kind", c.kind); n != c.n {
			t.Errorf("dedupe_hits{%s,%s} = %v, want %v", c.level, c.kind, n, c.n)
		}
	}
	// A re-signature of the same content with another key is still the same event.
	k2, err := event.NewKeyring(testKey, event.Key{ID: "k2", Secret: []byte("another-secret-of-32-bytes......")})
	if err != nil {
		t.Fatal(err)
	}
	d := &event.Detail{EventID: "e2", CustomerID: "c1", Seq: 2, OccurredAt: "2026-11-26T11:59:00Z", Properties: []byte(`{"n":2}`)}
	if err := k2.Sign("page_view", d, "k2"); err != nil {
		t.Fatal(err)
	}
	h.p.keys = k2
	data := fmt.Appendf(nil, `{"v":1,"type":"page_view","source":"test","detail":{"event_id":"e2","customer_id":"c1","seq":2,"occurred_at":%q,"properties":{"n":2},"key_id":"k2","signature":%q}}`, d.OccurredAt, d.Signature)
	h.process(h.open("s1"), []Record{{SequenceNumber: h.gen.next(), Data: data}})
	if n := h.counter("pipeline_dedupe_hits_total", "level", "state", "kind", "unverified"); n != 3 {
		t.Fatalf("re-signed copy of e2 (behind c1's cursor, out of level 1): unverified hits %v, want 3", n)
	}
}

// TestMarkAfterWrite checks that an event is marked seen only once its write succeeded: while the
// destination fails, the store holds no mark, and a dead-lettered event is never marked.
func TestMarkAfterWrite(t *testing.T) {
	cfg := testConfig()
	cfg.BreakerOpenTimeout = time.Nanosecond // every retry probes
	h := newHarness(t, cfg)
	var marksDuringFailure []int
	h.kin.Set(func(f *kinesisfake.Fake) {
		f.CallErr = func(c kinesisfake.Call) error {
			if c.Stream == names.AnalyticsStream("page_view") && c.StreamN <= 3 {
				return errors.New("stream unavailable")
			}
			return nil
		}
		f.OnCall = func(_ context.Context, c kinesisfake.Call) {
			if c.Stream == names.AnalyticsStream("page_view") {
				marksDuringFailure = append(marksDuringFailure, h.mem.Len())
			}
		}
	})
	h.process(h.open("s"), h.recs(ev{id: "e1", cust: "c1", seq: 1}))
	// The store holds the shard's manifest from the open; nothing more until the write succeeded.
	if !slices.Equal(marksDuringFailure, []int{1, 1, 1, 1}) {
		t.Fatalf("store sizes seen at each write attempt: %v, want nothing marked before the write succeeded", marksDuringFailure)
	}
	if h.mem.Len() != 2 || cursorOf(h.durable("s"), "c1") != 1 { // the manifest and one log chunk
		t.Fatalf("store holds %d items after the write, want manifest + log chunk with c1's state", h.mem.Len())
	}
}

// TestReorderInPipeline checks order restoration end to end through Process: a held event pins the
// watermark; the window passing (fake clock, empty Process) releases with the gap; late events follow
// the policy.
func TestReorderInPipeline(t *testing.T) {
	for _, policy := range []LatePolicy{LateFlag, LateStream} {
		t.Run(string(policy), func(t *testing.T) {
			cfg := testConfig()
			cfg.LatePolicy = policy
			h := newHarness(t, cfg)
			s := h.open("s")
			b1 := h.recs(ev{id: "a1", cust: "a", seq: 1}, ev{id: "a3", cust: "a", seq: 3}, ev{id: "b1", cust: "b", seq: 1})
			wm := h.process(s, b1)
			if wm != b1[0].SequenceNumber || s.Held() != 1 {
				t.Fatalf("watermark %q held %d: want pinned at a:1 with a:3 held", wm, s.Held())
			}
			// Gap fills: a:2 releases a:3 right after it.
			b2 := h.recs(ev{id: "a2", cust: "a", seq: 2}, ev{id: "a5", cust: "a", seq: 5})
			if wm := h.process(s, b2); wm != b2[0].SequenceNumber {
				t.Fatalf("watermark %q, want %q (a:5 held)", wm, b2[0].SequenceNumber)
			}
			// Window passes with nothing new: the caller is caught up and calls Process(nil).
			h.clock.Advance(29 * time.Second)
			if h.process(s, nil); s.Held() != 1 {
				t.Fatal("released before the window passed")
			}
			h.clock.Advance(time.Second)
			if wm := h.process(s, nil); wm != b2[1].SequenceNumber || s.Held() != 0 {
				t.Fatalf("after the window: watermark %q held %d", wm, s.Held())
			}
			// a:4 is late now.
			h.process(s, h.recs(ev{id: "a4", cust: "a", seq: 4}))
			main := seqs(analytics(t, h.kin, names.AnalyticsStream("page_view")))
			want := []string{"a:1", "b:1", "a:2", "a:3", "a:5+gap1"}
			if policy == LateFlag {
				want = append(want, "a:4+late")
			} else if late := seqs(analytics(t, h.kin, names.LateStream)); !slices.Equal(late, []string{"a:4+late"}) {
				t.Fatalf("late stream %v", late)
			}
			if !slices.Equal(main, want) {
				t.Fatalf("delivered %v, want %v", main, want)
			}
			if h.counter("pipeline_reorder_gaps_total") != 1 || h.counter("pipeline_late_events_total") != 1 {
				t.Fatal("gap and late metrics not counted")
			}
		})
	}
}

// TestArrivalTimeWindow checks that the window is measured in arrival time: a backlog whose records
// arrived close together is reordered even though it is read much later.
func TestArrivalTimeWindow(t *testing.T) {
	h := newHarness(t, testConfig())
	s := h.open("s")
	h.clock.Advance(time.Hour) // reading an hour-old backlog
	old := t0
	r1 := h.gen.recs(t, h.kr, old, ev{id: "a2", cust: "a", seq: 2})
	r2 := h.gen.recs(t, h.kr, old.Add(10*time.Second), ev{id: "a1", cust: "a", seq: 1})
	h.process(s, r1)
	h.process(s, r2)
	if got := seqs(analytics(t, h.kin, names.AnalyticsStream("page_view"))); !slices.Equal(got, []string{"a:1", "a:2"}) {
		t.Fatalf("delivered %v", got)
	}
}

// TestHeldBound checks memory stays bounded: at MaxHeldPerShard the oldest held event is released
// with its gap.
func TestHeldBound(t *testing.T) {
	cfg := testConfig()
	cfg.MaxHeldPerShard = 10
	h := newHarness(t, cfg)
	s := h.open("s")
	maxHeld := 0
	for i := range 100 {
		h.process(s, h.recs(ev{id: fmt.Sprint("e", i), cust: fmt.Sprint("c", i), seq: 2}))
		maxHeld = max(maxHeld, s.Held())
		if g := h.counter("pipeline_reorder_held"); int(g) != s.Held() {
			t.Fatalf("held gauge %v, shard holds %d", g, s.Held())
		}
	}
	if maxHeld != 10 {
		t.Fatalf("max held %d, want the bound 10", maxHeld)
	}
	out := analytics(t, h.kin, names.AnalyticsStream("page_view"))
	if len(out) != 90 || out[0].CustomerID != "c0" || out[0].Gap != 1 {
		t.Fatalf("released %d (first %+v), want the 90 oldest with gap 1", len(out), out[0])
	}
	h.clock.Advance(time.Minute) // the window passes: a caught-up shard releases the rest
	wm := h.process(s, nil)
	if s.Held() != 0 || wm != fmt.Sprintf("%056d", 100) {
		t.Fatalf("after the window: watermark %q held %d", wm, s.Held())
	}
	if n := len(h.kin.Records(names.AnalyticsStream("page_view"))); n != 100 {
		t.Fatalf("%d delivered after the window", n)
	}
}

// TestReplayAfterFailover: the old owner wrote some events and held one; the new owner replays from
// the checkpoint. Already-written events are natural duplicates (not late, not rewritten), the held
// one is reordered correctly, and the cursor from the store means a returning customer is not held.
func TestReplayAfterFailover(t *testing.T) {
	h := newHarness(t, testConfig())
	old := h.open("s")
	recs := h.recs(
		ev{id: "a1", cust: "a", seq: 1},
		ev{id: "a3", cust: "a", seq: 3}, // held: pins the watermark
		ev{id: "b1", cust: "b", seq: 1},
		ev{id: "b2", cust: "b", seq: 2},
		ev{id: "c5", cust: "c", seq: 5}, // held
	)
	wm := h.process(old, recs)
	if wm != recs[0].SequenceNumber {
		t.Fatalf("old owner watermark %q", wm)
	}
	// The lease moves. The new owner (new pipeline process, same store) replays after the checkpoint.
	p2, err := New(testConfig(), Deps{Kinesis: h.kin, Dedupe: h.store, Keys: h.kr, Now: h.clock.Now, Sleep: h.clock.Sleep})
	if err != nil {
		t.Fatal(err)
	}
	s2 := openShard(t, p2, "s")
	h.process(s2, recs[1:])
	more := h.recs(ev{id: "a2", cust: "a", seq: 2}, ev{id: "b3", cust: "b", seq: 3}, ev{id: "c4", cust: "c", seq: 4})
	h.process(s2, more)
	got := perCustomer(analytics(t, h.kin, names.AnalyticsStream("page_view")))
	// b:3 right after b:2 with no hold, although the new owner never saw b before: its cursor is in
	// the store. a:2 releases a:3. c never had seq 1..4 released: c:4, c:5 stay held.
	want := []string{"a:1", "a:2", "a:3", "b:1", "b:2", "b:3"}
	if !slices.Equal(got, want) {
		t.Fatalf("delivered %v, want %v", got, want)
	}
	if s2.Held() != 2 {
		t.Fatalf("new owner holds %d, want c:4 and c:5", s2.Held())
	}
	if h.counter("pipeline_late_events_total") != 0 {
		t.Fatal("replayed events were flagged late")
	}
}

// TestRestartKnowsCursor: a restarted shard sees a customer's next seq and releases it at once, and a
// later seq is held; a customer never seen starting at 1 is released at once.
func TestRestartKnowsCursor(t *testing.T) {
	h := newHarness(t, testConfig())
	h.process(h.open("s"), h.recs(ev{id: "a1", cust: "a", seq: 1}, ev{id: "a2", cust: "a", seq: 2}))
	s := h.open("s") // restart: fresh state
	h.process(s, h.recs(ev{id: "a3", cust: "a", seq: 3}, ev{id: "n1", cust: "n", seq: 1}, ev{id: "a5", cust: "a", seq: 5}))
	if got := seqs(analytics(t, h.kin, names.AnalyticsStream("page_view"))); !slices.Equal(got, []string{"a:1", "a:2", "a:3", "n:1"}) {
		t.Fatalf("delivered %v", got)
	}
	if s.Held() != 1 {
		t.Fatalf("held %d, want a:5", s.Held())
	}
}

// TestRoundTrips counts dedupe-table round trips and write units per event: the state is in
// memory, so a batch reads nothing, and its changes go out packed (about 40 customers, or 80
// written ids, per write unit) in one call of up to 25 chunks.
func TestRoundTrips(t *testing.T) {
	h := newHarness(t, testConfig())
	s := h.open("s")
	opened := h.store.count("get") + h.store.count("put") + h.store.count("swap")
	if opened != 2 { // read the manifest, write the first
		t.Fatalf("open: %d round trips, want 2", opened)
	}
	batch := func(round int) []Record {
		var evs []ev
		for i := range 500 {
			c := i % 50
			evs = append(evs, ev{id: fmt.Sprintf("e%d-%d", round, i), cust: fmt.Sprint("c", c), seq: uint64(round*10 + i/50 + 1)})
		}
		return h.recs(evs...)
	}
	units := h.counter("pipeline_dedupe_write_units_total")
	for round := range 2 {
		gets, puts := h.store.count("get"), h.store.count("put")
		h.process(s, batch(round))
		gets, puts = h.store.count("get")-gets, h.store.count("put")-puts
		if gets != 0 || puts != 1 {
			t.Fatalf("batch %d: %d gets, %d puts; want 0 and 1", round, gets, puts)
		}
	}
	perEvent := (h.counter("pipeline_dedupe_write_units_total") - units) / 1000
	if perEvent > 0.02 {
		t.Fatalf("%.4f write units per event, want the 50 customers' changes and 500 ids packed: at most 0.02", perEvent)
	}
	t.Logf("steady state: 1 round trip and %.4f write units per event (500 events of 50 customers per batch)", perEvent)
}

// TestDedupeStoreDownBlocksThenResumes: with the store failing, Process retries with backoff, does
// not return a watermark past unmarked records, and completes by itself once the store is back.
func TestDedupeStoreDownBlocksThenResumes(t *testing.T) {
	for _, op := range []string{"get", "put"} {
		t.Run(op, func(t *testing.T) {
			h := newHarness(t, testConfig())
			h.store.setDown(func(o string, n int) error {
				if o == op && n <= 5 {
					return errors.New("dynamodb: connection refused")
				}
				return nil
			})
			recs := h.recs(ev{id: "e1", cust: "c", seq: 1})
			wm := h.process(h.open("s"), recs)
			if wm != recs[0].SequenceNumber || h.store.count(op) != 6 {
				t.Fatalf("watermark %q after %d %s calls", wm, h.store.count(op), op)
			}
			if h.clock.Slept() == 0 {
				t.Fatal("retried without backoff")
			}
			if n := h.counter("pipeline_dedupe_errors_total", "op", op); n != 5 {
				t.Fatalf("dedupe errors %v", n)
			}
			if len(h.kin.Records(names.AnalyticsStream("page_view"))) != 1 {
				t.Fatal("event not written exactly once")
			}
		})
	}
}

// TestUnprocessedItemsRetried: items and keys the store leaves unprocessed are sent again until
// durable, and read again until read: a new owner loads every customer.
func TestUnprocessedItemsRetried(t *testing.T) {
	h := newHarness(t, testConfig())
	partial := &partialStore{MemoryDedupe: h.mem}
	newPipe := func() *Pipeline {
		p, err := New(testConfig(), Deps{Kinesis: h.kin, Dedupe: partial, Keys: h.kr, Now: h.clock.Now, Sleep: h.clock.Sleep})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	var evs []ev
	for i := range 300 {
		evs = append(evs, ev{id: fmt.Sprint("e", i), cust: fmt.Sprint("c", i), seq: 1})
	}
	s := openShard(t, newPipe(), "s")
	if _, err := s.Process(context.Background(), h.recs(evs...)); err != nil {
		t.Fatal(err)
	}
	s.Close()
	st, _, err := newPipe().openState(context.Background(), "s", Lineage{})
	if err != nil {
		t.Fatal(err)
	}
	if len(st.custs) != 300 {
		t.Fatalf("a new owner loaded %d customers, want 300", len(st.custs))
	}
	if partial.skippedGets == 0 || partial.skippedPuts == 0 {
		t.Fatal("the partial store never left anything unprocessed")
	}
}

// partialStore processes only the first half of every call. Safe for concurrent use, like every
// DedupeStore (a shard's chunks go out concurrently).
type partialStore struct {
	*MemoryDedupe
	mu                       sync.Mutex
	skippedGets, skippedPuts int
}

func (s *partialStore) Get(ctx context.Context, keys []string) ([]Item, []string, error) {
	n := (len(keys) + 1) / 2
	found, _, err := s.MemoryDedupe.Get(ctx, keys[:n])
	s.mu.Lock()
	s.skippedGets += len(keys) - n
	s.mu.Unlock()
	return found, keys[n:], err
}

func (s *partialStore) Put(ctx context.Context, items []Item) ([]Item, error) {
	n := (len(items) + 1) / 2
	_, err := s.MemoryDedupe.Put(ctx, items[:n])
	s.mu.Lock()
	s.skippedPuts += len(items) - n
	s.mu.Unlock()
	return items[n:], err
}

// TestCloseReleasesGauge: a shard closed (lease handed over) drops its buffers from
// the held gauge and refuses further work; its held events stay after the watermark for the next owner.
func TestCloseReleasesGauge(t *testing.T) {
	h := newHarness(t, testConfig())
	s := h.open("s")
	recs := h.recs(ev{id: "a2", cust: "a", seq: 2})
	if wm := h.process(s, recs); wm != "" || h.counter("pipeline_reorder_held") != 1 {
		t.Fatalf("watermark %q held gauge %v", wm, h.counter("pipeline_reorder_held"))
	}
	s.Close()
	s.Close()
	if h.counter("pipeline_reorder_held") != 0 || s.Held() != 0 {
		t.Fatal("closed shard still counted as holding events")
	}
	if _, err := s.Process(context.Background(), nil); !errors.Is(err, ErrShardClosed) {
		t.Fatalf("Process after Close: %v", err)
	}
}

// TestReplayFromState: a new owner replaying written records drops them as duplicates from the
// customers' state it loaded, writes only the events it has not seen, and makes no dedupe-table
// call for any of it.
func TestReplayFromState(t *testing.T) {
	h := newHarness(t, testConfig())
	recs := h.recs(ev{id: "a1", cust: "a", seq: 1}, ev{id: "a2", cust: "a", seq: 2}, ev{id: "b1", cust: "b", seq: 1})
	old := h.open("s")
	h.process(old, recs)
	old.Close()
	s2 := h.open("s")
	gets := h.store.count("get")
	h.process(s2, append(recs, h.recs(ev{id: "a3", cust: "a", seq: 3})...))
	if got := perCustomer(analytics(t, h.kin, names.AnalyticsStream("page_view"))); !slices.Equal(got, []string{"a:1", "a:2", "a:3", "b:1"}) {
		t.Fatalf("delivered %v", got)
	}
	if h.store.count("get") != gets {
		t.Fatal("the replay read the dedupe table")
	}
}

// TestReplayedDuplicateKeepsStoredCursor: a new owner whose replay starts with a natural duplicate
// of an old event (a producer re-emitted a:2 after a:5 was delivered) must start the customer from
// its durable cursor (5), not from the duplicate's seq: otherwise a:6 waits for a:3..a:5, which were
// delivered before the checkpoint and never come again, and is released with a false gap.
func TestReplayedDuplicateKeepsStoredCursor(t *testing.T) {
	for _, tc := range []struct {
		name      string
		sameBatch bool // a:6 in the replayed batch, or in the next one
	}{
		{"same batch", true},
		{"next batch", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig()
			h := newHarness(t, cfg)
			old := h.open("s")
			h.process(old, h.recs(
				ev{id: "a1", cust: "a", seq: 1}, ev{id: "a2", cust: "a", seq: 2}, ev{id: "a3", cust: "a", seq: 3},
				ev{id: "a4", cust: "a", seq: 4}, ev{id: "a5", cust: "a", seq: 5},
			))
			replay := h.recs(
				ev{id: "z2", cust: "z", seq: 2}, // held: pins the checkpoint before the duplicate
				ev{id: "a2", cust: "a", seq: 2}, // natural duplicate, dropped by the old owner
			)
			h.process(old, replay)
			old.Close() // the lease moves; the new owner (same store) replays after the checkpoint

			p2, err := New(cfg, Deps{Kinesis: h.kin, Dedupe: h.store, Keys: h.kr, Now: h.clock.Now, Sleep: h.clock.Sleep})
			if err != nil {
				t.Fatal(err)
			}
			s2 := openShard(t, p2, "s")
			next := h.recs(ev{id: "a6", cust: "a", seq: 6})
			if tc.sameBatch {
				h.process(s2, append(replay, next...))
			} else {
				h.process(s2, replay)
				h.process(s2, next)
			}
			got := perCustomer(analytics(t, h.kin, names.AnalyticsStream("page_view")))
			want := []string{"a:1", "a:2", "a:3", "a:4", "a:5", "a:6"}
			if !slices.Equal(got, want) {
				t.Fatalf("delivered %v, want %v", got, want)
			}
			if s2.Held() != 1 {
				t.Fatalf("new owner holds %d, want only z:2", s2.Held())
			}
		})
	}
}

// TestRetiredKeyJudgedAtArrival: a key retired at T still verifies the events that arrived in the
// stream before T, however late they are read (a backlog, a replay); what arrived after T is
// quarantined as key_retired.
func TestRetiredKeyJudgedAtArrival(t *testing.T) {
	h := newHarness(t, testConfig())
	retiredAt := t0.Add(-time.Hour) // the "old" key of testKeyring
	signed := func(id string, seq uint64) []byte {
		d := &event.Detail{EventID: id, CustomerID: "c1", Seq: seq, OccurredAt: "2026-11-26T10:00:00Z", Properties: json.RawMessage(`{}`)}
		if err := h.kr.Sign("page_view", d, "old"); err != nil {
			t.Fatal(err)
		}
		detail, err := json.Marshal(d)
		if err != nil {
			t.Fatal(err)
		}
		b, err := json.Marshal(event.Raw{V: event.RawVersion, Type: "page_view", Source: "test", Detail: detail})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	recs := []Record{
		{SequenceNumber: h.gen.next(), Data: signed("before", 1), ArrivedAt: retiredAt.Add(-time.Minute)},
		{SequenceNumber: h.gen.next(), Data: signed("after", 2), ArrivedAt: retiredAt.Add(time.Minute)},
	}
	h.process(h.open("s"), recs)
	if got := seqs(analytics(t, h.kin, names.AnalyticsStream("page_view"))); !slices.Equal(got, []string{"c1:1"}) {
		t.Fatalf("delivered %v, want the event that arrived before the retirement", got)
	}
	qs := quarantine(t, h.kin, names.QuarantineStream)
	if len(qs) != 1 || qs[0].Reason != event.ReasonKeyRetired || qs[0].EventID != "after" {
		t.Fatalf("quarantined %+v, want the event that arrived after the retirement", qs)
	}
}

// TestContractEdgeCases: the README's outcomes for inputs at the edge of the contract, at the
// worker: an upper-case hex signature verifies, seq 2^64-1 is delivered, an empty record or one
// with a byte order mark is not JSON, seq 0 is missing.
func TestContractEdgeCases(t *testing.T) {
	h := newHarness(t, testConfig())
	good := string(raw(t, h.kr, ev{id: "u1", cust: "c1", seq: 1}))
	i := strings.Index(good, `"signature":"`) + len(`"signature":"`)
	upper := good[:i] + strings.ToUpper(good[i:i+64]) + good[i+64:]
	if upper == good {
		t.Fatal("the signature has no letter to upper-case")
	}
	top := raw(t, h.kr, ev{id: "max", cust: "c2", seq: 1<<64 - 1})
	s := h.open("s")
	for _, tc := range []struct {
		name string
		data string
		want event.Reason // "" delivered
	}{
		{"upper-case hex signature", upper, ""},
		{"seq 2^64-1", string(top), ""},
		{"empty record", "", event.ReasonNotJSON},
		{"byte order mark", "\xef\xbb\xbf" + good, event.ReasonNotJSON},
		{"seq zero", strings.Replace(good, `"seq":1`, `"seq":0`, 1), event.ReasonMissingField},
	} {
		e, q := s.decode(&Record{SequenceNumber: "1", Data: []byte(tc.data)}, 0, t0)
		switch {
		case tc.want == "" && q != nil:
			t.Errorf("%s: quarantined %s (%s), want delivered", tc.name, q.reason, q.detail)
		case tc.want != "" && (q == nil || q.reason != tc.want):
			t.Errorf("%s: %v %v, want %s", tc.name, e, q, tc.want)
		}
	}
}

// TestDedupeLastBatchAcrossOwners: the ids a shard's last batch wrote before its owner stopped (a
// lease moved, the KCL consumer ended) are in the durable state, so a new owner quarantines a
// conflicting copy of one of them even when its customer's cursor has moved past it. They used to
// reach the state log only with the next batch's flush, which never came: the copy was dropped as
// an unverified duplicate, never quarantined (found by TestChaosGetRecordsThrottled).
func TestDedupeLastBatchAcrossOwners(t *testing.T) {
	h := newHarness(t, testConfig())
	s := h.open("s1")
	h.process(s, h.recs(ev{id: "e1", cust: "c1", seq: 1}, ev{id: "e2", cust: "c1", seq: 2}))
	s.Close()
	s = h.open("s1")
	h.process(s, h.recs(ev{id: "e1", cust: "c1", seq: 1, props: `{"n":"other"}`}))
	s.Close()
	qs := quarantine(t, h.kin, "events-quarantine")
	if len(qs) != 1 || qs[0].Reason != event.ReasonConflictingDupe || !strings.Contains(string(qs[0].Original), `"other"`) {
		t.Fatalf("quarantined %+v: want the conflicting copy of e1, once, as conflicting_duplicate", qs)
	}
	if n := h.counter("pipeline_dedupe_hits_total", "level", "state", "kind", "unverified"); n != 0 {
		t.Errorf("unverified duplicates %v, want 0: e1's id was written by the last owner and must be known", n)
	}
	if n := h.counter("pipeline_dedupe_hits_total", "level", "l1", "kind", "conflicting"); n != 1 {
		t.Errorf("level-1 conflicting hits %v, want 1", n)
	}
}

// TestReorderHoldObserved: each released event's wait in its reorder buffer, in stream time, is
// observed: 0 for an event released as it came, the time until its gap filled for a held one.
func TestReorderHoldObserved(t *testing.T) {
	h := newHarness(t, testConfig())
	s := h.open("s")
	h.process(s, h.recs(ev{id: "a2", cust: "a", seq: 2})) // held: seq 1 is missing
	if n := h.counter("pipeline_reorder_hold_seconds"); n != 0 {
		t.Fatalf("hold observed before any release: %v", n)
	}
	h.clock.Advance(3 * time.Second)
	h.process(s, h.recs(ev{id: "a1", cust: "a", seq: 1}, ev{id: "b1", cust: "b", seq: 1}))
	// A batch whose records arrived 2 s apart: each is released as it comes, none waited.
	recs := h.recs(ev{id: "c1", cust: "c", seq: 1}, ev{id: "c2", cust: "c", seq: 2})
	recs[1].ArrivedAt = recs[0].ArrivedAt.Add(2 * time.Second)
	h.process(s, recs)
	mfs, err := h.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "pipeline_reorder_hold_seconds" {
			hist := mf.GetMetric()[0].GetHistogram()
			if hist.GetSampleCount() != 5 || hist.GetSampleSum() != 3 {
				t.Fatalf("hold histogram: %d events, %v s in all; want 5 events, 3 s (a2's wait)", hist.GetSampleCount(), hist.GetSampleSum())
			}
			return
		}
	}
	t.Fatal("no pipeline_reorder_hold_seconds")
}

// Every stage of every batch is timed, by stage name.
func TestStagesTimed(t *testing.T) {
	h := newHarness(t, testConfig())
	s := h.open("s")
	h.process(s, h.recs(ev{id: "a1", cust: "a", seq: 1}))
	h.process(s, h.recs(ev{id: "a2", cust: "a", seq: 2}))
	mfs, err := h.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]uint64{}
	for _, mf := range mfs {
		if mf.GetName() == "pipeline_stage_seconds" {
			for _, m := range mf.GetMetric() {
				got[m.GetLabel()[0].GetValue()] = m.GetHistogram().GetSampleCount()
			}
		}
	}
	for _, st := range []string{"verify", "dedupe", "reorder", "route", "quarantine", "write", "mark"} {
		if got[st] != 2 {
			t.Errorf("stage %s timed %d times, want 2 (one per batch): %v", st, got[st], got)
		}
	}
}

// A batch over slowBatch is logged with each stage's time and, per destination, its records and
// the most failed attempts any had.
func TestSlowBatchLogged(t *testing.T) {
	defer func(d time.Duration) { slowBatch = d }(slowBatch)
	slowBatch = 0 // every batch is slow
	core, logs := observer.New(zap.InfoLevel)
	h := newHarness(t, testConfig())
	p, err := New(testConfig(), Deps{Kinesis: h.kin, Dedupe: h.store, Keys: h.kr, Logger: zap.New(core), Registerer: prometheus.NewRegistry(), Now: h.clock.Now, Sleep: h.clock.Sleep})
	if err != nil {
		t.Fatal(err)
	}
	h.p = p
	h.process(h.open("s"), h.recs(ev{id: "a1", cust: "a", seq: 1}, ev{id: "b1", cust: "b", seq: 1}))
	slow := logs.FilterMessage("slow batch").All()
	if len(slow) != 1 {
		t.Fatalf("%d slow batch lines, want 1", len(slow))
	}
	f := slow[0].ContextMap()
	if f["shard"] != "s" || f["records"] != int64(2) || f["released"] != int64(2) {
		t.Fatalf("fields %v", f)
	}
	for _, st := range []string{"verify", "dedupe", "reorder", "route", "quarantine", "write", "mark"} {
		if _, ok := f[st]; !ok {
			t.Errorf("no time for stage %s: %v", st, f)
		}
	}
	found := false
	for k, v := range f {
		if strings.HasPrefix(k, "to_") && v == "2 records, at most 0 failed attempts" {
			found = true
		}
	}
	if !found {
		t.Errorf("no destination with its 2 records written at the first attempt: %v", f)
	}
}
