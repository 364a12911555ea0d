package autoscale

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
)

// fakeCloudWatch answers GetMetricData from per-stream, per-metric, per-minute values, two
// results per page, and remembers the queries.
type fakeCloudWatch struct {
	values  map[string]map[string]map[time.Time]float64 // stream -> metric -> minute -> Sum
	queries []cwtypes.MetricDataQuery
	calls   int
	err     error
}

func (f *fakeCloudWatch) GetMetricData(_ context.Context, in *cloudwatch.GetMetricDataInput, _ ...func(*cloudwatch.Options)) (*cloudwatch.GetMetricDataOutput, error) {
	f.calls++
	if f.err != nil {
		return nil, f.err
	}
	if in.NextToken == nil {
		f.queries = append(f.queries, in.MetricDataQueries...)
	}
	var all []cwtypes.MetricDataResult
	for _, q := range in.MetricDataQueries {
		ms := q.MetricStat
		stream := aws.ToString(ms.Metric.Dimensions[0].Value)
		r := cwtypes.MetricDataResult{Id: q.Id, StatusCode: cwtypes.StatusCodeComplete}
		for at, v := range f.values[stream][aws.ToString(ms.Metric.MetricName)] {
			if !at.Before(*in.StartTime) && at.Before(*in.EndTime) {
				r.Timestamps = append(r.Timestamps, at)
				r.Values = append(r.Values, v)
			}
		}
		all = append(all, r)
	}
	page := 0
	if in.NextToken != nil {
		fmt.Sscan(*in.NextToken, &page)
	}
	out := &cloudwatch.GetMetricDataOutput{MetricDataResults: all[page*2 : min(len(all), page*2+2)]}
	if page*2+2 < len(all) {
		out.NextToken = aws.String(fmt.Sprint(page + 1))
	}
	return out, nil
}

func TestCloudWatchSource(t *testing.T) {
	base := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	minute := func(n int) time.Time { return base.Add(time.Duration(n) * time.Minute) }
	f := &fakeCloudWatch{values: map[string]map[string]map[time.Time]float64{
		"raw": {
			"IncomingRecords":                    {minute(0): 6000, minute(1): 12000, minute(2): 60000},
			"IncomingBytes":                      {minute(0): 6e6, minute(1): 12e6, minute(2): 6e7},
			"WriteProvisionedThroughputExceeded": {minute(2): 600},
		},
		"out": {"IncomingRecords": {minute(1): 60}, "IncomingBytes": {minute(1): 6000}},
	}}
	// Asked up to 12:04:30: minute 3 is not published yet, so the window ends at 12:03.
	w, err := CloudWatch{API: f}.Load(t.Context(), []string{"raw", "out", "idle"}, minute(0), minute(4).Add(30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if !w.From.Equal(minute(0)) || !w.To.Equal(minute(3)) {
		t.Fatalf("window %s..%s, want 12:00..12:03 (the last published minute)", w.From, w.To)
	}
	raw := w.Samples["raw"]
	if len(raw) != 3 || raw[2] != (Sample{At: minute(2), Period: time.Minute, Records: 60000, Bytes: 6e7, Throttled: 600}) || !raw[0].At.Before(raw[1].At) {
		t.Fatalf("raw samples %+v", raw)
	}
	if out := w.Samples["out"]; len(out) != 1 || out[0].Records != 60 || out[0].Bytes != 6000 {
		t.Fatalf("out samples %+v", out)
	}
	if len(w.Samples["idle"]) != 0 {
		t.Fatalf("idle stream has samples %+v", w.Samples["idle"])
	}
	if m := mean(raw, minute(2), minute(3)); m.Records != 1000 || m.Throttled != 10 {
		t.Fatalf("mean over the last minute %+v, want 1000 records/s, 10 throttled/s", m)
	}
	if len(f.queries) != 9 || f.calls < 5 {
		t.Fatalf("%d queries in %d calls, want 9 (3 streams x 3 metrics) over 5 pages", len(f.queries), f.calls)
	}
	for _, q := range f.queries {
		ms := q.MetricStat
		if aws.ToString(ms.Metric.Namespace) != "AWS/Kinesis" || aws.ToString(ms.Stat) != "Sum" || aws.ToInt32(ms.Period) != 60 ||
			aws.ToString(ms.Metric.Dimensions[0].Name) != "StreamName" || !strings.HasPrefix(aws.ToString(q.Id), "s") {
			t.Fatalf("query %+v", q)
		}
	}
	f.err = fmt.Errorf("AccessDenied")
	if _, err := (CloudWatch{API: f}).Load(t.Context(), []string{"raw"}, minute(0), minute(4)); err == nil || !strings.Contains(err.Error(), "AccessDenied") {
		t.Fatalf("err %v", err)
	}
}
