package autoscale

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
)

// CloudWatchAPI is the CloudWatch call the CloudWatch source uses. *cloudwatch.Client implements it.
type CloudWatchAPI interface {
	GetMetricData(ctx context.Context, in *cloudwatch.GetMetricDataInput, optFns ...func(*cloudwatch.Options)) (*cloudwatch.GetMetricDataOutput, error)
}

// The stream-level Kinesis metrics the CloudWatch source reads (Sum per period).
var cloudWatchMetrics = []string{"IncomingRecords", "IncomingBytes", "WriteProvisionedThroughputExceeded"}

// CloudWatch reads the streams' write load from CloudWatch with GetMetricData: the Sum of
// IncomingRecords, IncomingBytes and WriteProvisionedThroughputExceeded per stream and period.
// Kinesis publishes them a minute or two late, so the window it answers ends with the last period
// any stream has a datapoint for (a period with no datapoint at all is taken as not yet
// published, unless no stream has any).
type CloudWatch struct {
	API CloudWatchAPI
	// Period of the datapoints (default one minute, the stream metrics' resolution).
	Period time.Duration
}

// Load implements Source.
func (c CloudWatch) Load(ctx context.Context, streams []string, from, to time.Time) (Window, error) {
	period := c.Period
	if period <= 0 {
		period = time.Minute
	}
	start, end := from.Truncate(period), to.Truncate(period)
	w := Window{From: start, To: end, Samples: map[string][]Sample{}}
	if !end.After(start) {
		return w, nil
	}
	var queries []cwtypes.MetricDataQuery
	for i, s := range streams {
		for k, m := range cloudWatchMetrics {
			queries = append(queries, cwtypes.MetricDataQuery{
				Id: aws.String("s" + strconv.Itoa(i) + "m" + strconv.Itoa(k)),
				MetricStat: &cwtypes.MetricStat{
					Metric: &cwtypes.Metric{Namespace: aws.String("AWS/Kinesis"), MetricName: aws.String(m),
						Dimensions: []cwtypes.Dimension{{Name: aws.String("StreamName"), Value: aws.String(s)}}},
					Period: aws.Int32(int32(period / time.Second)),
					Stat:   aws.String("Sum"),
				},
				ReturnData: aws.Bool(true),
			})
		}
	}
	type key struct{ stream, at int64 }
	points := map[key]*Sample{}
	var latest time.Time
	for lo := 0; lo < len(queries); lo += 500 { // GetMetricData takes at most 500 queries
		in := &cloudwatch.GetMetricDataInput{MetricDataQueries: queries[lo:min(lo+500, len(queries))],
			StartTime: aws.Time(start), EndTime: aws.Time(end), ScanBy: cwtypes.ScanByTimestampAscending}
		for {
			out, err := c.API.GetMetricData(ctx, in)
			if err != nil {
				return Window{}, fmt.Errorf("cloudwatch GetMetricData: %w", err)
			}
			for _, r := range out.MetricDataResults {
				var si, mi int
				if _, err := fmt.Sscanf(aws.ToString(r.Id), "s%dm%d", &si, &mi); err != nil || si >= len(streams) || mi >= len(cloudWatchMetrics) {
					continue
				}
				for j, ts := range r.Timestamps {
					if j >= len(r.Values) {
						break
					}
					k := key{int64(si), ts.Unix()}
					p := points[k]
					if p == nil {
						p = &Sample{At: ts.UTC(), Period: period}
						points[k] = p
					}
					switch mi {
					case 0:
						p.Records = r.Values[j]
					case 1:
						p.Bytes = r.Values[j]
					case 2:
						p.Throttled = r.Values[j]
					}
					if e := ts.Add(period); e.After(latest) {
						latest = e
					}
				}
			}
			if out.NextToken == nil {
				break
			}
			in.NextToken = out.NextToken
		}
	}
	if !latest.IsZero() && latest.Before(end) {
		w.To = latest
	}
	for k, p := range points {
		if p.At.Before(w.To) {
			w.Samples[streams[k.stream]] = append(w.Samples[streams[k.stream]], *p)
		}
	}
	for _, ss := range w.Samples {
		sortSamples(ss)
	}
	return w, nil
}

func sortSamples(ss []Sample) {
	sort.Slice(ss, func(i, j int) bool { return ss[i].At.Before(ss[j].At) })
}
