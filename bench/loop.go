package bench

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/kinesis-events/pipeline/internal/fleet"
)

// callMix is what one worker run asked of Kinesis and DynamoDB per event, from its own counters
// over the whole run (start-up included): the calls a loop must make to make "the same calls".
type callMix struct {
	// PutCalls is PutRecords calls per event, PutRecords the records they carried per event
	// (analytics, quarantine and dead-letter records; about 1 on a clean stream).
	PutCalls, PutRecords float64
	// DedupeGets, DedupePuts and DedupeSwaps are the dedupe table's round trips per event by
	// operation: BatchGetItem, BatchWriteItem, conditional PutItem.
	DedupeGets, DedupePuts, DedupeSwaps float64
	// KeysPerGet is the keys each BatchGetItem asked for; WriteUnits the dedupe table's write
	// units per event as DynamoDB bills them, ReadUnits its read units.
	KeysPerGet             float64
	WriteUnits, ReadUnits  float64
	CheckpointsPerEvent    float64 `json:",omitempty"` // informational: the worker's checkpoint writes per event
	RecordsIn, RecordsDone float64
}

// mixOf reads a worker's call mix from its last scrape.
func mixOf(s samples) callMix {
	in := s.sum("pipeline_records_in_total")
	if in == 0 {
		return callMix{}
	}
	done := s.sum("pipeline_records_out_total") + s.sum("pipeline_quarantined_total") + s.sum("pipeline_dead_lettered_total")
	m := callMix{
		RecordsIn:   in,
		RecordsDone: done,
		PutCalls:    s.sum("pipeline_put_calls_total") / in,
		PutRecords:  done / in,
		DedupeGets:  s.sum("pipeline_dedupe_round_trips_total", `op="get"`) / in,
		DedupePuts:  s.sum("pipeline_dedupe_round_trips_total", `op="put"`) / in,
		DedupeSwaps: s.sum("pipeline_dedupe_round_trips_total", `op="swap"`) / in,
		WriteUnits:  s.sum("pipeline_dedupe_write_units_total") / in,
		ReadUnits:   s.sum("pipeline_dedupe_read_units_total") / in,
	}
	if gets := s.sum("pipeline_dedupe_round_trips_total", `op="get"`); gets > 0 {
		m.KeysPerGet = s.sum("pipeline_dedupe_keys_total", `op="get"`) / gets
	}
	return m
}

// RoundTrips is the dedupe table's round trips per event.
func (m callMix) RoundTrips() float64 { return m.DedupeGets + m.DedupePuts + m.DedupeSwaps }

// loopRun is one run of the same-calls loop.
type loopRun struct {
	Records int
	Elapsed time.Duration
	// CPU is this process's CPU time over the loop (user + system, every goroutine: the SDK's
	// request building, signing, encoding and decoding, the HTTP client, GC).
	CPU time.Duration
	// Calls made: GetRecords, PutRecords, BatchWriteItem, BatchGetItem, conditional PutItem.
	Gets, Puts, DedupePuts, DedupeGets, DedupeSwaps int
	// WriteUnits are the dedupe items written, each under 1 KB (one write unit).
	WriteUnits int
}

// CPUPerEvent is the loop's CPU time per record read.
func (r loopRun) CPUPerEvent() time.Duration { return r.CPU / time.Duration(max(1, r.Records)) }

// loopItemBytes is the payload of each dedupe item the loop writes: with its key and TTL the item
// stays under 1 KB, so it costs one write unit, as the worker's packed state chunks do.
const loopItemBytes = 900

// sameCallsLoop reads every shard of the raw stream from TRIM_HORIZON as the worker's KCL consumer
// does (one goroutine per shard, GetRecords with the worker's limit, no pause while records come)
// and, for each page, makes the calls mix says the worker made for that many events: PutRecords of
// the page's records (split into as many calls, at most 500 records each, failed entries sent
// again) into stream out, and BatchWriteItem (items under 1 KB, as many as the write units),
// BatchGetItem and conditional PutItem calls on table. Owed fractions carry over from page to page,
// so over the run the calls per event match mix. It runs in this process with the stack's plain SDK
// clients and measures this process's CPU.
func sameCallsLoop(ctx context.Context, d *deployment, mix callMix, limit int32, out, table string) (loopRun, error) {
	var res loopRun
	if err := d.st.CreateStream(ctx, out, d.env.Topology.RawShards); err != nil {
		return res, err
	}
	if err := d.st.CreateTable(ctx, table, "event_id"); err != nil {
		return res, err
	}
	kc, ddb := d.st.Kinesis(), d.st.DynamoDB()
	payload := make([]byte, loopItemBytes)
	if _, err := rand.Read(payload); err != nil {
		return res, err
	}
	exp := strconv.FormatInt(time.Now().Add(24*time.Hour).Unix(), 10)
	var mu sync.Mutex
	add := func(r loopRun) {
		mu.Lock()
		defer mu.Unlock()
		res.Gets += r.Gets
		res.Puts += r.Puts
		res.DedupePuts += r.DedupePuts
		res.DedupeGets += r.DedupeGets
		res.DedupeSwaps += r.DedupeSwaps
		res.WriteUnits += r.WriteUnits
	}
	c0 := selfCPU()
	n, el, err := shardLoop(ctx, kc, fleet.RawStream, limit, func(shard string) func([]types.Record) error {
		var owed owedCalls
		item := 0
		key := func() string {
			item++
			return "loop#" + shard + "#" + strconv.Itoa(item)
		}
		return func(recs []types.Record) error {
			var r loopRun
			r.Gets = 1
			defer func() { add(r) }()
			if len(recs) == 0 {
				return nil
			}
			e := float64(len(recs))
			calls := max(owed.take(&owed.puts, e*mix.PutCalls), (len(recs)+putBatch-1)/putBatch)
			for _, part := range split(recs, calls) {
				if err := putPart(ctx, kc, out, part); err != nil {
					return err
				}
				r.Puts++
			}
			puts := owed.take(&owed.dedupePuts, e*mix.DedupePuts)
			items := owed.take(&owed.units, e*mix.WriteUnits)
			puts = max(puts, (items+maxBatchWriteItems-1)/maxBatchWriteItems)
			items = max(items, puts)
			for c := range puts {
				k := items / puts
				if c < items%puts {
					k++
				}
				reqs := make([]ddbtypes.WriteRequest, k)
				for i := range reqs {
					reqs[i] = ddbtypes.WriteRequest{PutRequest: &ddbtypes.PutRequest{Item: loopItem(key(), payload, exp)}}
				}
				for len(reqs) > 0 {
					o, err := ddb.BatchWriteItem(ctx, &dynamodb.BatchWriteItemInput{RequestItems: map[string][]ddbtypes.WriteRequest{table: reqs}})
					if err != nil {
						return fmt.Errorf("batch write to %s: %w", table, err)
					}
					r.DedupePuts++
					r.WriteUnits += len(reqs) - len(o.UnprocessedItems[table])
					reqs = o.UnprocessedItems[table]
				}
			}
			for range owed.take(&owed.dedupeGets, e*mix.DedupeGets) {
				keys := make([]map[string]ddbtypes.AttributeValue, max(1, int(math.Round(mix.KeysPerGet))))
				for i := range keys {
					keys[i] = map[string]ddbtypes.AttributeValue{"event_id": &ddbtypes.AttributeValueMemberS{Value: "loop#" + shard + "#" + strconv.Itoa(max(1, item-i))}}
				}
				if _, err := ddb.BatchGetItem(ctx, &dynamodb.BatchGetItemInput{RequestItems: map[string]ddbtypes.KeysAndAttributes{
					table: {Keys: keys, ConsistentRead: aws.Bool(true)}}}); err != nil {
					return fmt.Errorf("batch get from %s: %w", table, err)
				}
				r.DedupeGets++
			}
			for range owed.take(&owed.swaps, e*mix.DedupeSwaps) {
				if _, err := ddb.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(table), Item: loopItem(key(), payload, exp),
					ConditionExpression: aws.String("attribute_not_exists(event_id)")}); err != nil {
					return fmt.Errorf("conditional put to %s: %w", table, err)
				}
				r.DedupeSwaps++
				r.WriteUnits++
			}
			return nil
		}
	})
	res.CPU = selfCPU() - c0
	res.Records, res.Elapsed = n, el
	return res, err
}

// maxBatchWriteItems is DynamoDB's limit of items per BatchWriteItem call.
const maxBatchWriteItems = 25

// owedCalls carries the fractions of calls per shard from page to page.
type owedCalls struct{ puts, dedupePuts, units, dedupeGets, swaps float64 }

// take adds x to *acc and returns the whole calls now owed, keeping the fraction.
func (owedCalls) take(acc *float64, x float64) int {
	*acc += x
	n := math.Floor(*acc)
	*acc -= n
	return int(n)
}

func loopItem(key string, payload []byte, exp string) map[string]ddbtypes.AttributeValue {
	return map[string]ddbtypes.AttributeValue{
		"event_id":   &ddbtypes.AttributeValueMemberS{Value: key},
		"d":          &ddbtypes.AttributeValueMemberB{Value: payload},
		"expires_at": &ddbtypes.AttributeValueMemberN{Value: exp},
	}
}

// split cuts recs into n parts of nearly equal size (n >= 1, at most len(recs)).
func split(recs []types.Record, n int) [][]types.Record {
	n = min(max(n, 1), len(recs))
	parts := make([][]types.Record, 0, n)
	for i := range n {
		lo, hi := i*len(recs)/n, (i+1)*len(recs)/n
		parts = append(parts, recs[lo:hi])
	}
	return parts
}

// putPart writes recs to stream in one PutRecords call, sending failed entries again.
func putPart(ctx context.Context, kc *kinesis.Client, stream string, recs []types.Record) error {
	b := make([]types.PutRecordsRequestEntry, len(recs))
	for i, r := range recs {
		b[i] = types.PutRecordsRequestEntry{Data: r.Data, PartitionKey: r.PartitionKey}
	}
	for len(b) > 0 {
		o, err := kc.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String(stream), Records: b})
		if err != nil {
			return fmt.Errorf("put records into %s: %w", stream, err)
		}
		var failed []types.PutRecordsRequestEntry
		for k, e := range o.Records {
			if e.ErrorCode != nil {
				failed = append(failed, b[k])
			}
		}
		b = failed
	}
	return nil
}

var errNoMix = errors.New("the worker's counters show no records: no call mix for the loop")
