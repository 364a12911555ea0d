package ordered

import (
	"bytes"
	"context"
	"crypto/md5"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/awslabs/kinesis-aggregation/go/v2/deaggregator"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
	"pgregory.net/rapid"

	"github.com/kinesis-events/pipeline/internal/kinesisfake"
)

// deaggregated is one entry the fake stored, expanded by kinesis-aggregation's own de-aggregator
// (the one the Go KCL uses): the records inside an aggregate, in order, or the entry itself.
type deaggregated struct {
	key     string
	records []string
	size    int  // the entry's size as Kinesis counts it
	agg     bool // the entry was an aggregate
}

func deaggregate(t interface{ Fatalf(string, ...any) }, got []stored) []deaggregated {
	out := make([]deaggregated, 0, len(got))
	for _, s := range got {
		key := s.key
		recs, err := deaggregator.DeaggregateRecords([]types.Record{{Data: []byte(s.data), PartitionKey: &key}})
		if err != nil {
			t.Fatalf("de-aggregating an entry of key %s: %v", s.key, err)
		}
		d := deaggregated{key: s.key, size: len(s.data) + len(s.key), agg: strings.HasPrefix(s.data, string(AggregateMagic[:]))}
		for _, r := range recs {
			if *r.PartitionKey != s.key {
				t.Fatalf("record of key %s inside an entry of key %s", *r.PartitionKey, s.key)
			}
			d.records = append(d.records, string(r.Data))
		}
		if d.agg && len(d.records) < 2 {
			t.Fatalf("entry of key %s has the aggregate magic but de-aggregates into %d record(s)", s.key, len(d.records))
		}
		out = append(out, d)
	}
	return out
}

// TestAggregateEncoding: for records of any size (across the protobuf length boundaries) and keys
// of any length, the aggregate's size is the one computed before encoding (the bounds are checked
// against it), it is magic + protobuf + MD5 of the protobuf, and kinesis-aggregation's
// de-aggregator gives back every record, in order, under the key.
func TestAggregateEncoding(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		key := strings.Repeat("k", rapid.IntRange(1, MaxKeyChars).Draw(rt, "key_len"))
		lens := rapid.SliceOfN(rapid.OneOf(rapid.SampledFrom([]int{0, 1, 116, 117, 125, 126, 127, 128, 129, 16370, 16383, 16384}), rapid.IntRange(0, 70000)), 2, 12).Draw(rt, "lengths")
		recs := make([]*Record, len(lens))
		size := len(key) + aggFixed + aggKeySize(key)
		for i, n := range lens {
			data := bytes.Repeat([]byte{byte('a' + i)}, n)
			if n == 0 && i%2 == 0 {
				data = nil
			}
			recs[i] = &Record{Key: key, Data: data, ID: fmt.Sprint(i)}
			size += aggRecordSize(n)
		}
		a, err := aggregate(key, recs, size)
		if err != nil {
			rt.Fatal(err)
		}
		if !bytes.HasPrefix(a.Data, AggregateMagic[:]) || a.Key != key || a.Records() != len(recs) || a.ID != "0" {
			rt.Fatalf("aggregate: key %q, %d records, id %q, starts % x", a.Key, a.Records(), a.ID, a.Data[:4])
		}
		pb := a.Data[4 : len(a.Data)-md5.Size]
		if sum := md5.Sum(pb); !bytes.Equal(sum[:], a.Data[len(a.Data)-md5.Size:]) {
			rt.Fatalf("MD5 trailer does not match")
		}
		got := deaggregate(rt, []stored{{key: key, data: string(a.Data)}})[0]
		if len(got.records) != len(recs) {
			rt.Fatalf("%d records de-aggregated, want %d", len(got.records), len(recs))
		}
		for i, r := range recs {
			if got.records[i] != string(r.Data) {
				rt.Fatalf("record %d: %d bytes de-aggregated, want %d", i, len(got.records[i]), len(r.Data))
			}
		}
	})
}

// TestWriteAggregatesHotKey: a hot key with 300 records waiting among 100 keys with one each goes
// out in one call: the hot key's records as one aggregate, in order, each other key's record
// plain. Every record is Written with the aggregate's shard and sequence number, and the results
// and metrics count records, not entries.
func TestWriteAggregatesHotKey(t *testing.T) {
	kin := kinesisfake.New()
	var aggregated, calls counter
	var entries []float64
	clock := newClock()
	step := NewStream(kin, "s", nil, Metrics{Aggregated: &aggregated, Calls: &calls, Entries: observerFunc(func(v float64) { entries = append(entries, v) })}).Put
	var results []Result
	w, err := NewWriter[*rec](step, WriterConfig{Aggregation: DefaultAggregation, Now: clock.Now, Sleep: clock.Sleep,
		Policy: Policy{Backoff: testBackoff()}, After: func(res Result, _ time.Time) bool { results = append(results, res); return false }})
	if err != nil {
		t.Fatal(err)
	}
	var recs, hot []*rec
	for i := range 300 {
		r := newRec("hot", fmt.Sprintf("hot/%03d", i))
		hot = append(hot, r)
		recs = append(recs, r)
		if i < 100 {
			recs = append(recs, newRec(fmt.Sprint("cold", i), fmt.Sprint("cold/", i)))
		}
	}
	if err := w.Write(t.Context(), recs); err != nil {
		t.Fatal(err)
	}
	kin.CheckViolations(t)
	if calls.value() != 1 || len(entries) != 1 || entries[0] != 101 || aggregated.value() != 300 {
		t.Fatalf("%v calls of %v entries, %v records aggregated; want 1 call of 101 entries, 300 aggregated", calls.value(), entries, aggregated.value())
	}
	if len(results) != 1 || results[0].Sent != 400 || results[0].Written != 400 || results[0].Failed != 0 {
		t.Fatalf("results %+v", results)
	}
	got := deaggregate(t, written(kin))
	var hotGot []string
	for _, d := range got {
		if d.key == "hot" {
			if !d.agg {
				t.Fatalf("the hot key's records went out plain")
			}
			hotGot = append(hotGot, d.records...)
		} else if d.agg || len(d.records) != 1 {
			t.Fatalf("key %s with one record went out aggregated", d.key)
		}
	}
	for i, r := range hot {
		if i >= len(hotGot) || hotGot[i] != string(r.r.Data) {
			t.Fatalf("hot record %d: got %v", i, hotGot[min(i, len(hotGot)):min(i+3, len(hotGot))])
		}
		if r.r.State != Written || r.r.SequenceNumber != hot[0].r.SequenceNumber || r.r.ShardID == "" || r.r.agg != nil {
			t.Fatalf("hot record %d: %+v", i, r.r)
		}
	}
	for _, r := range recs {
		if r.r.State != Written {
			t.Fatalf("%s: %v", r.r.Data, r.r.State)
		}
	}
}

type observerFunc func(float64)

func (f observerFunc) Observe(v float64) { f(v) }

// TestWriteAggregateBounds: an aggregate never carries more records than Aggregation.MaxRecords, nor
// more bytes (with the key) than Aggregation.MaxBytes, the call's MaxBytes or the byte rate allow;
// a key's records go out in consecutive aggregates, in order, one per call.
func TestWriteAggregateBounds(t *testing.T) {
	for _, tc := range []struct {
		name        string
		cfg         WriterConfig
		n, size     int
		maxRecs     int // per aggregate
		maxBytes    int // per aggregate, with the key
		wantEntries int // the key's entries
	}{
		{"records", WriterConfig{Aggregation: Aggregation{MaxRecords: 100}}, 250, 10, 100, MaxRecordBytes, 3},
		{"kinesis record limit", WriterConfig{Aggregation: DefaultAggregation}, 40, 100 << 10, 500, MaxRecordBytes, 4},
		{"aggregation bytes", WriterConfig{Aggregation: Aggregation{MaxRecords: 500, MaxBytes: 50 << 10}}, 100, 1000, 500, 50 << 10, 0},
		{"call bytes", WriterConfig{Aggregation: DefaultAggregation, MaxBytes: 20 << 10}, 100, 1000, 500, 20 << 10, 0},
		{"byte rate", WriterConfig{Aggregation: DefaultAggregation, BytesPerSecond: 30 << 10}, 100, 1000, 500, 30 << 10, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kin := kinesisfake.New()
			w := testWriter(t, kin, newClock(), tc.cfg)
			var recs []*rec
			for i := range tc.n {
				data := fmt.Sprintf("%05d", i) + strings.Repeat("x", tc.size-5)
				recs = append(recs, newRec("hot", data))
			}
			if err := w.Write(t.Context(), recs); err != nil {
				t.Fatal(err)
			}
			kin.CheckViolations(t)
			got := deaggregate(t, written(kin))
			var all []string
			for _, d := range got {
				if len(d.records) > tc.maxRecs || d.size > tc.maxBytes {
					t.Fatalf("entry of %d records, %d bytes: over %d records or %d bytes", len(d.records), d.size, tc.maxRecs, tc.maxBytes)
				}
				all = append(all, d.records...)
			}
			if tc.wantEntries > 0 && len(got) != tc.wantEntries {
				t.Fatalf("%d entries, want %d", len(got), tc.wantEntries)
			}
			if len(got) >= tc.n/2 {
				t.Fatalf("%d entries for %d records: hardly aggregated", len(got), tc.n)
			}
			if kin.Calls() != len(got) {
				t.Fatalf("%d calls for %d entries of one key", kin.Calls(), len(got))
			}
			for i, r := range recs {
				if all[i] != string(r.r.Data) || r.r.State != Written {
					t.Fatalf("record %d out of order or not written (%v)", i, r.r.State)
				}
			}
		})
	}
}

// TestWriteAggregateOutcomes: the records of an aggregate share its outcome. A failed aggregate is
// sent again as it was, byte for byte (so its records share every attempt) until written; given up
// on, each of its records fails with the cause and the records behind fail as CauseEarlier; an
// unknown outcome counts and logs every record inside.
func TestWriteAggregateOutcomes(t *testing.T) {
	hotRecs := func(n int) []*rec {
		var recs []*rec
		for i := range n {
			recs = append(recs, newRec("hot", fmt.Sprintf("hot/%d", i)))
		}
		return recs
	}
	t.Run("retried as it was", func(t *testing.T) {
		var sent [][]byte
		kin := kinesisfake.New()
		kin.EntryErr = func(e kinesisfake.Entry) string {
			if e.N <= 2 {
				return "InternalFailure"
			}
			return ""
		}
		spy := putterFunc(func(ctx context.Context, in *kinesis.PutRecordsInput) (*kinesis.PutRecordsOutput, error) {
			sent = append(sent, bytes.Clone(in.Records[0].Data))
			return kin.PutRecords(ctx, in)
		})
		w := testWriter(t, spy, newClock(), WriterConfig{Aggregation: Aggregation{MaxRecords: 3}})
		recs := hotRecs(5) // an aggregate of 3 (failing twice), then one of 2
		if err := w.Write(t.Context(), recs); err != nil {
			t.Fatal(err)
		}
		if len(sent) != 4 || !bytes.Equal(sent[0], sent[1]) || !bytes.Equal(sent[1], sent[2]) || bytes.Equal(sent[2], sent[3]) {
			t.Fatalf("%d calls; the failed aggregate was not sent again as it was", len(sent))
		}
		for i, r := range recs {
			want := 2
			if i >= 3 {
				want = 0
			}
			if r.r.State != Written || r.r.Attempts != want || (i < 3 && r.r.LastError != "InternalFailure: scripted") {
				t.Fatalf("record %d: %+v", i, r.r)
			}
		}
		if got := deaggregate(t, written(kin)); len(got) != 2 || len(got[0].records) != 3 || len(got[1].records) != 2 {
			t.Fatalf("written %+v", got)
		}
	})
	t.Run("given up together", func(t *testing.T) {
		for _, tc := range []struct {
			name  string
			cfg   WriterConfig
			code  string
			cause Cause
		}{
			{"attempts", WriterConfig{Policy: Policy{MaxAttempts: 2}}, "InternalFailure", CauseAttempts},
			{"fatal", WriterConfig{}, "KMSDisabledException", CauseFatal},
		} {
			t.Run(tc.name, func(t *testing.T) {
				kin := kinesisfake.New()
				kin.EntryErr = func(e kinesisfake.Entry) string {
					if e.Key == "hot" {
						return tc.code
					}
					return ""
				}
				tc.cfg.Aggregation = Aggregation{MaxRecords: 3}
				w := testWriter(t, kin, newClock(), tc.cfg)
				recs := append(hotRecs(5), newRec("cold", "cold/0"))
				if err := w.Write(t.Context(), recs); err != nil {
					t.Fatal(err)
				}
				for i, r := range recs[:5] {
					want := tc.cause
					if i >= 3 {
						want = CauseEarlier
					}
					if r.r.State != Failed || r.r.Cause != want || (i < 3 && !strings.HasPrefix(r.r.LastError, tc.code)) {
						t.Fatalf("hot record %d: %v %v %q, want failed %v", i, r.r.State, r.r.Cause, r.r.LastError, want)
					}
				}
				if recs[5].r.State != Written {
					t.Fatalf("the other key: %v", recs[5].r.State)
				}
			})
		}
	})
	t.Run("stopped while out", func(t *testing.T) {
		q := NewQueue[*rec](Policy{}, nil, nil)
		q.agg = Aggregation{MaxRecords: 3}
		recs := hotRecs(5)
		for _, r := range recs {
			q.Add(r)
		}
		b := q.Take(10, MaxCallBytes, nil)
		if len(b) != 1 || b[0].r.wire().Records() != 3 {
			t.Fatalf("took %d, first an aggregate of %d", len(b), b[0].r.wire().Records())
		}
		q.Stop(CauseStopped)
		b[0].r.wire().Outcome = OK
		q.Complete(b, Result{Written: 3}, time.Now())
		for i, r := range recs {
			want := Written
			if i >= 3 {
				want = Failed
			}
			if r.r.State != want || (i == 3 && r.r.Cause != CauseStopped) || (i == 4 && r.r.Cause != CauseEarlier) {
				t.Fatalf("record %d: %v %v", i, r.r.State, r.r.Cause)
			}
		}
		if q.Len() != 0 {
			t.Fatalf("%d held", q.Len())
		}
	})
	t.Run("unknown outcome", func(t *testing.T) {
		kin := kinesisfake.New()
		kin.LoseAnswer = func(c kinesisfake.Call) bool { return c.N == 1 }
		var unknown counter
		core, logs := observer.New(zap.WarnLevel)
		clock := newClock()
		w, err := NewWriter[*rec](NewStream(kin, "s", zap.New(core), Metrics{Unknown: &unknown}).Put,
			WriterConfig{Aggregation: DefaultAggregation, Policy: Policy{Backoff: testBackoff()}, Now: clock.Now, Sleep: clock.Sleep})
		if err != nil {
			t.Fatal(err)
		}
		recs := append(hotRecs(4), newRec("cold", "cold/0"))
		if err := w.Write(t.Context(), recs); err != nil {
			t.Fatal(err)
		}
		if unknown.value() != 5 {
			t.Fatalf("unknown outcome counted for %v records, want 5 (4 inside the aggregate, 1 plain)", unknown.value())
		}
		entries := logs.FilterMessage(LogUnknownOutcome).All()
		if len(entries) != 1 {
			t.Fatalf("%d warnings", len(entries))
		}
		ids, _ := entries[0].ContextMap()["event_ids"].([]any)
		var got []string
		for _, id := range ids {
			got = append(got, fmt.Sprint(id))
		}
		if !slices.Equal(got, []string{"hot/0", "hot/1", "hot/2", "hot/3", "cold/0"}) || entries[0].ContextMap()["records"] != int64(5) {
			t.Fatalf("warning lists %v, records %v", got, entries[0].ContextMap()["records"])
		}
		// Both attempts landed: every record twice, byte for byte, within the count.
		var all []string
		for _, d := range deaggregate(t, written(kin)) {
			all = append(all, d.records...)
		}
		if len(all) != 10 {
			t.Fatalf("%d records in the stream, want 10 (two copies of each)", len(all))
		}
	})
}

// putterFunc is a Putter made of a function.
type putterFunc func(ctx context.Context, in *kinesis.PutRecordsInput) (*kinesis.PutRecordsOutput, error)

func (f putterFunc) PutRecords(ctx context.Context, in *kinesis.PutRecordsInput, _ ...func(*kinesis.Options)) (*kinesis.PutRecordsOutput, error) {
	return f(ctx, in)
}

// TestWriteOrderAggregated is TestWriteOrderUnderPartialFailures with aggregation on, under any
// bounds: whatever fails, every record is written, each key's records land in the order they were
// given (read through kinesis-aggregation's de-aggregator), no entry is over its bounds, no key is
// twice in a call, and the only records in the stream twice are copies counted as unknown.
func TestWriteOrderAggregated(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		nKeys := rapid.IntRange(1, 6).Draw(rt, "keys")
		nRecs := rapid.IntRange(1, 120).Draw(rt, "records")
		agg := Aggregation{MaxRecords: rapid.IntRange(2, 20).Draw(rt, "aggregate_records"), MaxBytes: rapid.IntRange(0, 4000).Draw(rt, "aggregate_bytes")}
		entryPct := rapid.IntRange(0, 90).Draw(rt, "entry_fail_pct")
		callPct := rapid.IntRange(0, 30).Draw(rt, "call_fail_pct")
		losePct := rapid.IntRange(0, 20).Draw(rt, "lose_pct")
		maxN := rapid.IntRange(1, 10).Draw(rt, "max_records_per_call")
		rnd := &splitMix{rapid.Uint64().Draw(rt, "seed")}
		kin := kinesisfake.New()
		kin.EntryErr = func(kinesisfake.Entry) string {
			if rnd.pct(entryPct) {
				return []string{"ProvisionedThroughputExceededException", "InternalFailure"}[rnd.next()%2]
			}
			return ""
		}
		kin.CallErr = func(kinesisfake.Call) error {
			if rnd.pct(callPct) {
				return errors.New("injected call failure")
			}
			return nil
		}
		kin.LoseAnswer = func(kinesisfake.Call) bool { return rnd.pct(losePct) }
		var unknown counter
		clock := newClock()
		w, err := NewWriter[*rec](NewStream(kin, "s", nil, Metrics{Unknown: &unknown}).Put, WriterConfig{
			MaxRecords: maxN, Aggregation: agg, Policy: Policy{Backoff: testBackoff()}, Now: clock.Now, Sleep: clock.Sleep,
		})
		if err != nil {
			rt.Fatal(err)
		}
		recs := make([]*rec, nRecs)
		for i := range recs {
			key := fmt.Sprint("k", rnd.next()%uint64(nKeys))
			recs[i] = newRec(key, fmt.Sprintf("%s/%03d/%s", key, i, strings.Repeat("x", int(rnd.next()%300))))
		}
		if err := w.Write(context.Background(), recs); err != nil {
			rt.Fatal(err)
		}
		for _, r := range recs {
			if r.r.State != Written {
				rt.Fatalf("%s: %v (%v)", r.r.Data, r.r.State, r.r.Cause)
			}
		}
		kin.CheckViolations(rt)
		maxBytes := agg.MaxBytes
		if maxBytes == 0 {
			maxBytes = MaxRecordBytes
		}
		last := map[string]string{}
		seen := map[string]bool{}
		copies := 0
		for _, d := range deaggregate(rt, written(kin)) {
			if d.agg && (len(d.records) > agg.MaxRecords || d.size > maxBytes) {
				rt.Fatalf("aggregate of %d records, %d bytes, over %+v", len(d.records), d.size, agg)
			}
			for _, data := range d.records {
				if seen[data] {
					copies++
					continue
				}
				seen[data] = true
				if prev, ok := last[d.key]; ok && prev > data {
					rt.Fatalf("key %s: %.8s landed after %.8s", d.key, data, prev)
				}
				last[d.key] = data
			}
		}
		if len(seen) != nRecs {
			rt.Fatalf("%d distinct records written, want %d", len(seen), nRecs)
		}
		if float64(copies) > unknown.value() {
			rt.Fatalf("%d copies in the stream, but only %v records counted with an unknown outcome", copies, unknown.value())
		}
	})
}

func TestAggregationValidate(t *testing.T) {
	err := WriterConfig{Aggregation: Aggregation{MaxRecords: -1, MaxBytes: MaxRecordBytes + 1}}.Validate()
	for _, want := range []string{"MaxRecords -1", "MaxBytes 1048577"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate: %v, want it to name %s", err, want)
		}
	}
	if err := (WriterConfig{Aggregation: DefaultAggregation}).Validate(); err != nil {
		t.Fatal(err)
	}
}
