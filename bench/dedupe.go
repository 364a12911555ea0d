package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/kinesis-events/pipeline/internal/loadgen"
)

// NaiveDedupeResult measures the scheme the batched dedupe replaces: one conditional PutItem per
// event, which checks and marks in one round trip.
type NaiveDedupeResult struct {
	Events, Calls int
	RoundTrips    float64 // Calls / Events
	Rate          float64 // events/s on dynalite
}

const naiveTable = "bench-naive-dedupe"

func naiveDedupe(ctx context.Context, d *deployment, cfg Config, m loadgen.Manifest) (NaiveDedupeResult, error) {
	res := NaiveDedupeResult{}
	if err := d.st.CreateTable(ctx, naiveTable, "event_id"); err != nil {
		return res, err
	}
	evs := m.Events
	if len(evs) > cfg.NaiveEvents {
		evs = evs[:cfg.NaiveEvents]
	}
	ddb := d.st.DynamoDB()
	exp := strconv.FormatInt(time.Now().Add(25*time.Hour).Unix(), 10)
	start := time.Now()
	for _, e := range evs {
		_, err := ddb.PutItem(ctx, &dynamodb.PutItemInput{
			TableName: aws.String(naiveTable),
			Item: map[string]types.AttributeValue{
				"event_id":   &types.AttributeValueMemberS{Value: e.EventID},
				"h":          &types.AttributeValueMemberS{Value: strconv.FormatUint(e.Seq, 16)},
				"expires_at": &types.AttributeValueMemberN{Value: exp},
			},
			ConditionExpression: aws.String("attribute_not_exists(event_id)"),
		})
		res.Calls++
		if err != nil {
			return res, fmt.Errorf("conditional put of %s: %w", e.EventID, err)
		}
	}
	el := time.Since(start)
	res.Events = len(evs)
	res.RoundTrips = float64(res.Calls) / float64(res.Events)
	res.Rate = float64(res.Events) / el.Seconds()
	d.log.Sugar().Infof("naive dedupe: %d conditional puts in %s", res.Calls, el.Round(time.Millisecond))
	return res, nil
}

// BehindCursorResult is a second worker pass over the throughput run's raw stream with
// -dedupe-lookup=behind-cursor: its own application (lease table), dedupe table and output streams,
// so it starts from nothing exactly as the strict pass did.
type BehindCursorResult struct {
	Events int
	// Delivered and Unique count the records in its output stream and their distinct event ids;
	// Resent the byte-identical copies among them, Unsure the records the worker counted as sent in
	// a write whose outcome was unknown (Resent may not exceed it).
	Delivered, Unique, Resent, Unsure int
	// Gets, Puts and RoundTrips are dedupe calls per event (the worker's counters).
	Gets, Puts, RoundTrips float64
	// SteadyRate is events / (last - first arrival in its output stream); SteadyRatio divides it by
	// the mean GetRecords loop rate of the throughput run.
	SteadyRate, SteadyRatio float64
	DynamoDBCPU             time.Duration
	OK                      bool
}

const behindApp = "bench-behind-cursor"

func behindCursor(ctx context.Context, d *deployment, cfg Config, floor float64) (BehindCursorResult, error) {
	res := BehindCursorResult{Events: cfg.Events}
	out, quar, dlq, table := behindApp+"-out", behindApp+"-quarantine", behindApp+"-dlq", behindApp+"-dedupe"
	for _, s := range []string{out, quar, dlq} {
		if err := d.st.CreateStream(ctx, s, d.env.Topology.RawShards); err != nil {
			return res, err
		}
	}
	if err := d.st.CreateTable(ctx, table, "event_id"); err != nil {
		return res, err
	}
	_, dc, cpu, err := d.deliver(ctx, cfg.Events, "-dedupe-lookup=behind-cursor", "-application="+behindApp,
		"-lease-table="+behindApp+"-leases", "-dedupe-table="+table, `-routes={"default":"`+out+`"}`,
		"-quarantine-stream="+quar, "-dlq-stream="+dlq)
	if err != nil {
		return res, err
	}
	res.Gets, res.Puts, res.RoundTrips = dc.Gets, dc.Puts, dc.Gets+dc.Puts
	res.DynamoDBCPU = cpu.DynamoDB

	recs, err := d.st.ReadAll(ctx, out)
	if err != nil {
		return res, err
	}
	ids := map[string]uint64{} // event id -> hash of its first record
	resent := 0
	var first, last time.Time
	for _, r := range recs {
		var a struct {
			EventID string `json:"event_id"`
		}
		if err := json.Unmarshal(r.Record.Data, &a); err != nil || a.EventID == "" {
			return res, fmt.Errorf("%s: record %s is not an analytics record: %v", out, aws.ToString(r.Record.SequenceNumber), err)
		}
		h := fnv.New64a()
		h.Write(r.Record.Data)
		if prev, ok := ids[a.EventID]; !ok {
			ids[a.EventID] = h.Sum64()
		} else if prev == h.Sum64() {
			resent++
		}
		at := aws.ToTime(r.Record.ApproximateArrivalTimestamp)
		if first.IsZero() || at.Before(first) {
			first = at
		}
		if at.After(last) {
			last = at
		}
	}
	res.Delivered, res.Unique = len(recs), len(ids)
	for _, s := range []string{quar, dlq} {
		rs, err := d.st.ReadAll(ctx, s)
		if err != nil {
			return res, err
		}
		if len(rs) > 0 {
			return res, fmt.Errorf("behind-cursor pass: %d records in %s, want none", len(rs), s)
		}
	}
	// A byte-identical copy is a write sent again after its outcome was unknown (the SDK retries a
	// PutRecords whose 200 answer was cut off); the worker counts those records, and only they may
	// appear twice.
	res.Resent, res.Unsure = resent, dc.Unsure
	res.OK = res.Unique == cfg.Events && res.Delivered-res.Unique == resent && resent <= dc.Unsure
	if !res.OK {
		return res, fmt.Errorf("behind-cursor pass delivered %d records of %d distinct event ids, want %d of each (%d byte-identical resent copies, %d records the worker counted as sent with an unknown outcome)",
			res.Delivered, res.Unique, cfg.Events, resent, dc.Unsure)
	}
	if d := last.Sub(first); d > 0 {
		res.SteadyRate = float64(cfg.Events-1) / d.Seconds()
		res.SteadyRatio = res.SteadyRate / floor
	}
	return res, nil
}
