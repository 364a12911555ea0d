package bench

import (
	"context"
	"fmt"
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
