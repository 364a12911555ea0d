package faultproxy_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go"
	"go.uber.org/goleak"

	"github.com/kinesis-events/pipeline/internal/faultproxy"
	"github.com/kinesis-events/pipeline/internal/localstack"
	"github.com/kinesis-events/pipeline/internal/localstack/localstacktest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  faultproxy.Config
		ok   bool
	}{
		{"ok", faultproxy.Config{Upstream: "http://127.0.0.1:4567"}, true},
		{"missing upstream", faultproxy.Config{}, false},
		{"no scheme", faultproxy.Config{Upstream: "127.0.0.1:4567"}, false},
		{"negative body", faultproxy.Config{Upstream: "http://127.0.0.1:1", MaxBody: -1}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.cfg.Validate(); (err == nil) != tc.ok {
				t.Fatalf("Validate() = %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

// proxied starts the local stack with streams (one shard each) and a proxy in front of its Kinesis,
// and returns a context bounding the test, the stack, the proxy and a Kinesis client through the
// proxy that makes one attempt per call (each fault is seen as the proxy sends it).
func proxied(t *testing.T, streams ...string) (context.Context, *localstack.Stack, *faultproxy.Proxy, *kinesis.Client) {
	t.Helper()
	st := localstacktest.Start(t)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	t.Cleanup(cancel)
	for _, s := range streams {
		if err := st.CreateStream(ctx, s, 1); err != nil {
			t.Fatal(err)
		}
	}
	p, err := faultproxy.Start(ctx, faultproxy.Config{Upstream: st.KinesisEndpoint})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	cfg, err := st.AWSConfig(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cfg.RetryMaxAttempts = 1
	return ctx, st, p, kinesis.NewFromConfig(cfg, func(o *kinesis.Options) { o.BaseEndpoint = aws.String(p.URL()) })
}

// TestProxyOnKinesalite drives the proxy with the real SDK against kinesalite: faults on one stream
// leave the other untouched, a faulted call never reaches the emulator, and the SDK decodes the
// faults as Kinesis would send them.
func TestProxyOnKinesalite(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the local emulators")
	}
	ctx, st, p, kc := proxied(t, "broken", "healthy")
	put := func(stream string) (*kinesis.PutRecordsOutput, error) {
		return kc.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String(stream), Records: []types.PutRecordsRequestEntry{
			{Data: []byte("a"), PartitionKey: aws.String("k1")}, {Data: []byte("b"), PartitionKey: aws.String("k2")},
		}})
	}
	count := func(stream string) int {
		recs, err := st.ReadAll(ctx, stream)
		if err != nil {
			t.Fatal(err)
		}
		return len(recs)
	}

	p.Set("down", faultproxy.Rule{Operation: "PutRecords", Stream: "broken", Fault: faultproxy.FailCall})
	_, err := put("broken")
	var api smithy.APIError
	if !errors.As(err, &api) || api.ErrorCode() != "ServiceUnavailable" {
		t.Fatalf("PutRecords to a stream failed with 503: err = %v, want ServiceUnavailable", err)
	}
	if _, err := put("healthy"); err != nil {
		t.Fatalf("PutRecords to the healthy stream: %v", err)
	}

	p.Set("down", faultproxy.Rule{Operation: "PutRecords", Stream: "broken", Fault: faultproxy.FailCall,
		Status: 400, ErrorType: "ProvisionedThroughputExceededException"})
	_, err = put("broken")
	var thr *types.ProvisionedThroughputExceededException
	if !errors.As(err, &thr) {
		t.Fatalf("throttled call: err = %v, want *types.ProvisionedThroughputExceededException", err)
	}

	p.Set("down", faultproxy.Rule{Operation: "PutRecords", Stream: "broken", Fault: faultproxy.FailEntries})
	out, err := put("broken")
	if err != nil {
		t.Fatalf("entry-level throttling is a successful call: %v", err)
	}
	if aws.ToInt32(out.FailedRecordCount) != 2 || len(out.Records) != 2 || aws.ToString(out.Records[1].ErrorCode) != "ProvisionedThroughputExceededException" {
		t.Fatalf("FailEntries answer: %+v", out)
	}

	// An expired rule no longer applies; a delay forwards the call once.
	p.Set("down", faultproxy.Rule{Operation: "PutRecords", Stream: "broken", Fault: faultproxy.FailCall, Until: time.Now().Add(-time.Second)})
	p.Set("slow", faultproxy.Rule{Operation: "PutRecords", Stream: "broken", Delay: 50 * time.Millisecond})
	if _, err := put("broken"); err != nil {
		t.Fatalf("after the rule expired: %v", err)
	}
	p.Remove("slow")
	p.Remove("down")
	if _, err := put("broken"); err != nil {
		t.Fatalf("without rules: %v", err)
	}

	if n := count("broken"); n != 4 {
		t.Errorf("broken stream holds %d records, want 4 (2 forwarded calls of 2; faulted calls never forwarded)", n)
	}
	if n := count("healthy"); n != 2 {
		t.Errorf("healthy stream holds %d records, want 2", n)
	}
	c := p.Counts("PutRecords", "broken")
	want := faultproxy.Counts{Requests: 5, Forwarded: 2, Delayed: 1, Faulted: 3, Entries: 6}
	if c != want {
		t.Errorf("Counts(PutRecords, broken) = %+v, want %+v", c, want)
	}
	if c := p.Counts("", "healthy"); c.Forwarded != 1 || c.Faulted != 0 {
		t.Errorf("Counts(*, healthy) = %+v, want 1 forwarded, 0 faulted", c)
	}
	// Load as CloudWatch counts it: written records, and entries refused for throughput (the 400
	// ProvisionedThroughputExceededException call and the FailEntries call), not the 503.
	if n := sumLoad(p, "broken"); n != (faultproxy.Sample{Records: 4, Bytes: 12, Throttled: 4}) {
		t.Errorf("load of broken = %+v", n)
	}
	if n := sumLoad(p, "healthy"); n != (faultproxy.Sample{Records: 2, Bytes: 6}) {
		t.Errorf("load of healthy = %+v", n)
	}
}

// TestLoseAnswer: the call reaches the emulator and is applied, but the client gets a 200 whose body
// stops halfway, so it cannot tell whether its records landed.
func TestLoseAnswer(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the local emulators")
	}
	ctx, st, p, kc := proxied(t, "lossy")
	p.Set("lose", faultproxy.Rule{Operation: "PutRecords", Stream: "lossy", Fault: faultproxy.LoseAnswer, Times: 1})
	put := func() error {
		_, err := kc.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String("lossy"), Records: []types.PutRecordsRequestEntry{
			{Data: []byte("a"), PartitionKey: aws.String("k1")}, {Data: []byte("b"), PartitionKey: aws.String("k2")},
		}})
		return err
	}
	var status interface{ HTTPStatusCode() int }
	if err := put(); !errors.As(err, &status) || status.HTTPStatusCode() != 200 {
		t.Fatalf("PutRecords with its answer lost: err = %v, want a failure with status 200", err)
	}
	if err := put(); err != nil { // Times: 1, the rule is spent
		t.Fatalf("second PutRecords: %v", err)
	}
	recs, err := st.ReadAll(ctx, "lossy")
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 4 {
		t.Fatalf("stream holds %d records, want 4: the 2 the lost call wrote and the 2 of the next", len(recs))
	}
	if c := p.Counts("PutRecords", "lossy"); c != (faultproxy.Counts{Requests: 2, Forwarded: 2, Faulted: 1, Entries: 2}) {
		t.Errorf("Counts = %+v", c)
	}
	if n := sumLoad(p, "lossy"); n != (faultproxy.Sample{Records: 4, Bytes: 12}) {
		t.Errorf("load %+v, want the 4 records written (3 bytes each, data and key), the lost answer's included", n)
	}
}

// sumLoad adds up the load samples of stream (At left zero).
func sumLoad(p *faultproxy.Proxy, stream string) faultproxy.Sample {
	var s faultproxy.Sample
	for _, x := range p.Load(time.Unix(0, 0)).Streams[stream] {
		s.Records += x.Records
		s.Bytes += x.Bytes
		s.Throttled += x.Throttled
	}
	return s
}
