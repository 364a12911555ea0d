package faultproxy_test

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go"
	"go.uber.org/goleak"

	"github.com/kinesis-events/pipeline/internal/faultproxy"
	"github.com/kinesis-events/pipeline/internal/kinesiswire"
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
	return proxiedWith(t, false, streams...)
}

// codecs are the ways a client sends PutRecords through the proxy: the SDK's own JSON codec, and
// kinesiswire's CBOR (the forwarder's), each answer of which must come back in CBOR.
var codecs = []struct {
	name string
	cbor bool
}{{"sdk-json", false}, {"cbor", true}}

// answerTypes records the Content-Type of every PutRecords answer a client receives.
type answerTypes struct {
	base interface {
		Do(*http.Request) (*http.Response, error)
	}
	mu    sync.Mutex
	types []string
}

func (a *answerTypes) Do(r *http.Request) (*http.Response, error) {
	resp, err := a.base.Do(r)
	if err == nil && strings.HasSuffix(r.Header.Get("X-Amz-Target"), ".PutRecords") {
		a.mu.Lock()
		a.types = append(a.types, resp.Header.Get("Content-Type"))
		a.mu.Unlock()
	}
	return resp, err
}

// withCBOR installs kinesiswire's CBOR codec on a client, and fails t at its end unless every
// PutRecords answer the client received was in CBOR. (PutRecord, which kinesiswire leaves to the
// SDK's JSON codec, is not counted.)
func withCBOR(t *testing.T) func(*kinesis.Options) {
	return func(o *kinesis.Options) {
		kinesiswire.InstallCBOR(o)
		rec := &answerTypes{base: o.HTTPClient}
		o.HTTPClient = rec
		t.Cleanup(func() {
			rec.mu.Lock()
			defer rec.mu.Unlock()
			for i, ct := range rec.types {
				if ct != kinesiswire.ContentTypeCBOR {
					t.Errorf("PutRecords answer %d of %d in %q, want CBOR", i, len(rec.types), ct)
				}
			}
			if len(rec.types) == 0 {
				t.Error("no PutRecords answer recorded")
			}
		})
	}
}

// proxiedWith is proxied with the client's PutRecords in CBOR (withCBOR) when cbor is set.
func proxiedWith(t *testing.T, cbor bool, streams ...string) (context.Context, *localstack.Stack, *faultproxy.Proxy, *kinesis.Client) {
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
	opts := []func(*kinesis.Options){func(o *kinesis.Options) { o.BaseEndpoint = aws.String(p.URL()) }}
	if cbor {
		opts = append(opts, withCBOR(t))
	}
	return ctx, st, p, kinesis.NewFromConfig(cfg, opts...)
}

// TestProxyOnKinesalite drives the proxy with the real SDK against kinesalite: faults on one stream
// leave the other untouched, a faulted call never reaches the emulator, and the SDK decodes the
// faults as Kinesis would send them.
// In CBOR, every answer, the proxy's faults included, comes back in CBOR, and the records hold
// the bytes sent.
func TestProxyOnKinesalite(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the local emulators")
	}
	for _, c := range codecs {
		t.Run(c.name, func(t *testing.T) { testProxyOnKinesalite(t, c.cbor) })
	}
}

func testProxyOnKinesalite(t *testing.T, cbor bool) {
	ctx, st, p, kc := proxiedWith(t, cbor, "broken", "healthy")
	put := func(stream string) (*kinesis.PutRecordsOutput, error) {
		return kc.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String(stream), Records: []types.PutRecordsRequestEntry{
			{Data: []byte("a\x00"), PartitionKey: aws.String("k1")}, {Data: []byte("b\xff"), PartitionKey: aws.String("k2")},
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
	recs, err := st.ReadAll(ctx, "healthy")
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) == 2 && (string(recs[0].Record.Data)+string(recs[1].Record.Data) != "a\x00b\xff" || aws.ToString(recs[1].Record.PartitionKey) != "k2") {
		t.Errorf("healthy stream holds %q %q, want the bytes sent", recs[0].Record.Data, recs[1].Record.Data)
	}
	c := p.Counts("PutRecords", "broken")
	want := faultproxy.Counts{Requests: 5, Forwarded: 2, Delayed: 1, Faulted: 3, Entries: 6, Records: 10}
	if c != want {
		t.Errorf("Counts(PutRecords, broken) = %+v, want %+v", c, want)
	}
	if c := p.Counts("", "healthy"); c.Forwarded != 1 || c.Faulted != 0 {
		t.Errorf("Counts(*, healthy) = %+v, want 1 forwarded, 0 faulted", c)
	}
	// Load as CloudWatch counts it: written records, and entries refused for throughput (the 400
	// ProvisionedThroughputExceededException call and the FailEntries call), not the 503.
	if n := sumLoad(p, "broken"); n != (faultproxy.Sample{Records: 4, Bytes: 16, Throttled: 4}) {
		t.Errorf("load of broken = %+v", n)
	}
	if n := sumLoad(p, "healthy"); n != (faultproxy.Sample{Records: 2, Bytes: 8}) {
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
	testLoseAnswer(t, ctx, st, p, kc)
}

// TestLoseAnswerCBOR: the same in CBOR (the half answer is the emulator's, as it was).
func TestLoseAnswerCBOR(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the local emulators")
	}
	ctx, st, p, kc := proxiedWith(t, false, "lossy")
	kc = kinesis.New(kc.Options(), kinesiswire.InstallCBOR)
	testLoseAnswer(t, ctx, st, p, kc)
}

func testLoseAnswer(t *testing.T, ctx context.Context, st *localstack.Stack, p *faultproxy.Proxy, kc *kinesis.Client) {
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
	if c := p.Counts("PutRecords", "lossy"); c != (faultproxy.Counts{Requests: 2, Forwarded: 2, Faulted: 1, Entries: 2, Records: 4}) {
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

// TestGetRecordsByShard: a GetRecords call names only an iterator; the proxy learned its shard from
// the GetShardIterator call (and each answer's NextShardIterator) it forwarded, so a throttle on
// one shard leaves the other readable, and the SDK decodes the throttle as Kinesis sends it.
func TestGetRecordsByShard(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the local emulators")
	}
	st := localstacktest.Start(t)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	if err := st.CreateStream(ctx, "two", 2); err != nil {
		t.Fatal(err)
	}
	p, err := faultproxy.Start(ctx, faultproxy.Config{Upstream: st.KinesisEndpoint})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	cfg, err := st.AWSConfig(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cfg.RetryMaxAttempts = 1
	kc := kinesis.NewFromConfig(cfg, func(o *kinesis.Options) { o.BaseEndpoint = aws.String(p.URL()) })
	shards, err := kc.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String("two")})
	if err != nil || len(shards.Shards) != 2 {
		t.Fatalf("list shards: %v (%d)", err, len(shards.Shards))
	}
	s0, s1 := aws.ToString(shards.Shards[0].ShardId), aws.ToString(shards.Shards[1].ShardId)
	iter := func(shard string) *string {
		out, err := kc.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String("two"), ShardId: aws.String(shard),
			ShardIteratorType: types.ShardIteratorTypeTrimHorizon})
		if err != nil {
			t.Fatal(err)
		}
		return out.ShardIterator
	}
	it0, it1 := iter(s0), iter(s1)

	p.Set("throttle", faultproxy.Rule{Operation: "GetRecords", Shard: s0, Fault: faultproxy.FailCall,
		Status: 400, ErrorType: "ProvisionedThroughputExceededException"})
	_, err = kc.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: it0})
	var thr *types.ProvisionedThroughputExceededException
	if !errors.As(err, &thr) {
		t.Fatalf("GetRecords on the throttled shard: err = %v, want *types.ProvisionedThroughputExceededException", err)
	}
	out, err := kc.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: it1})
	if err != nil {
		t.Fatalf("GetRecords on the other shard: %v", err)
	}
	// The next iterator of shard 1 is known too: a rule on shard 1 now applies to it.
	p.Set("throttle", faultproxy.Rule{Operation: "GetRecords", Shard: s1, Fault: faultproxy.FailCall,
		Status: 400, ErrorType: "ProvisionedThroughputExceededException"})
	if _, err := kc.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: out.NextShardIterator}); !errors.As(err, &thr) {
		t.Fatalf("GetRecords with shard 1's next iterator: err = %v, want a throttle", err)
	}
	if _, err := kc.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: it0}); err != nil {
		t.Fatalf("GetRecords on shard 0 after the rule moved to shard 1: %v", err)
	}
	if n := p.Applied("throttle"); n != 1 {
		t.Errorf("Applied(throttle) = %d, want 1 (set again for shard 1, applied once since)", n)
	}
	c := p.Counts("GetRecords", "two")
	if want := (faultproxy.Counts{Requests: 4, Forwarded: 2, Faulted: 2, Empty: 2}); c != want {
		t.Errorf("Counts(GetRecords, two) = %+v, want %+v", c, want)
	}

	// The upstream's own error answers are counted by type.
	_, err = kc.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String("absent")})
	var nf *types.ResourceNotFoundException
	if !errors.As(err, &nf) {
		t.Fatalf("DescribeStreamSummary of a missing stream: %v", err)
	}
	if got := p.UpstreamErrors("DescribeStreamSummary", "absent"); got["ResourceNotFoundException"] != 1 || len(got) != 1 {
		t.Errorf("UpstreamErrors(DescribeStreamSummary, absent) = %v, want ResourceNotFoundException: 1", got)
	}
	if got := p.UpstreamErrors("GetRecords", ""); len(got) != 0 {
		t.Errorf("UpstreamErrors(GetRecords) = %v: the proxy's own faults are not the upstream's", got)
	}
}

// TestDynamoDBByTableAndBody: rules pick DynamoDB calls by table and by strings in the body (an
// attribute name and a key), e.g. the checkpoint writes of one lease row; Hang holds a call
// without an answer until the client times out, and the emulator never sees it.
func TestDynamoDBByTableAndBody(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the local emulators")
	}
	st := localstacktest.Start(t)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	for _, tbl := range []string{"leases", "other"} {
		if err := st.CreateTable(ctx, tbl, "ShardID"); err != nil {
			t.Fatal(err)
		}
	}
	p, err := faultproxy.Start(ctx, faultproxy.Config{Upstream: st.DynamoDBEndpoint})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	cfg, err := st.AWSConfig(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cfg.RetryMaxAttempts = 1
	db := dynamodb.NewFromConfig(cfg, func(o *dynamodb.Options) { o.BaseEndpoint = aws.String(p.URL()) })
	update := func(ctx context.Context, table, key, attr string) error {
		_, err := db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
			TableName:                 aws.String(table),
			Key:                       map[string]ddbtypes.AttributeValue{"ShardID": &ddbtypes.AttributeValueMemberS{Value: key}},
			UpdateExpression:          aws.String("SET #a = :v"),
			ExpressionAttributeNames:  map[string]string{"#a": attr},
			ExpressionAttributeValues: map[string]ddbtypes.AttributeValue{":v": &ddbtypes.AttributeValueMemberS{Value: "x"}},
		})
		return err
	}
	p.Set("checkpoint", faultproxy.Rule{Operation: "UpdateItem", Table: "leases", Match: []string{`"Checkpoint"`, `"shard-1"`},
		Fault: faultproxy.FailCall, Status: 500, ErrorType: "InternalServerError"})
	var api smithy.APIError
	if err := update(ctx, "leases", "shard-1", "Checkpoint"); !errors.As(err, &api) || api.ErrorCode() != "InternalServerError" {
		t.Fatalf("checkpoint write of shard-1: err = %v, want InternalServerError", err)
	}
	for _, c := range []struct{ table, key, attr string }{
		{"leases", "shard-1", "CheckpointedAt"}, // another attribute: "Checkpoint" with its quotes does not match it
		{"leases", "shard-2", "Checkpoint"},
		{"other", "shard-1", "Checkpoint"},
	} {
		if err := update(ctx, c.table, c.key, c.attr); err != nil {
			t.Errorf("UpdateItem %+v: %v", c, err)
		}
	}
	if n := p.Applied("checkpoint"); n != 1 {
		t.Errorf("Applied(checkpoint) = %d, want 1", n)
	}

	p.Set("checkpoint", faultproxy.Rule{Operation: "UpdateItem", Table: "leases", Match: []string{`"shard-3"`}, Fault: faultproxy.Hang})
	hctx, hcancel := context.WithTimeout(ctx, 300*time.Millisecond)
	err = update(hctx, "leases", "shard-3", "Checkpoint")
	hcancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("held UpdateItem: err = %v, want the client's deadline", err)
	}
	got, err := st.DynamoDB().GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String("leases"),
		Key: map[string]ddbtypes.AttributeValue{"ShardID": &ddbtypes.AttributeValueMemberS{Value: "shard-3"}}, ConsistentRead: aws.Bool(true)})
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Item) != 0 {
		t.Errorf("the held write reached the emulator: %v", got.Item)
	}
	if c := p.Counts("UpdateItem", "leases"); c != (faultproxy.Counts{Requests: 4, Forwarded: 2, Faulted: 2}) {
		t.Errorf("Counts(UpdateItem, leases) = %+v", c)
	}
	if c := p.Counts("", "other"); c.Forwarded != 1 || c.Faulted != 0 {
		t.Errorf("Counts(*, other) = %+v, want 1 forwarded", c)
	}
}

// TestHangReleasedOnClose: a held request is let go when the proxy closes (no goroutine stays).
func TestHangReleasedOnClose(t *testing.T) {
	up := httptest.NewServer(http.NotFoundHandler())
	defer up.Close()
	p, err := faultproxy.Start(t.Context(), faultproxy.Config{Upstream: up.URL})
	if err != nil {
		t.Fatal(err)
	}
	p.Set("hang", faultproxy.Rule{Fault: faultproxy.Hang})
	done := make(chan error, 1)
	go func() {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, p.URL(), strings.NewReader(`{}`))
		req.Header.Set("X-Amz-Target", "DynamoDB_20120810.GetItem")
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			err = fmt.Errorf("answered %s", resp.Status)
		}
		done <- err
	}()
	deadline := time.Now().Add(10 * time.Second)
	for p.Applied("hang") == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the request never reached the proxy")
		}
		time.Sleep(10 * time.Millisecond) // polling interval
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err == nil || strings.Contains(err.Error(), "answered") {
			t.Fatalf("held request: %v, want the connection closed without an answer", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the held request was not let go when the proxy closed")
	}
}

// TestFaultAnswerChecksum: the proxy's own answers carry the CRC32 of their body, as DynamoDB's
// do (its SDK checks it, and warns on every answer without it).
func TestFaultAnswerChecksum(t *testing.T) {
	up := httptest.NewServer(http.NotFoundHandler())
	defer up.Close()
	p, err := faultproxy.Start(t.Context(), faultproxy.Config{Upstream: up.URL})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	p.Set("fail", faultproxy.Rule{Operation: "UpdateItem", Fault: faultproxy.FailCall, Status: 500, ErrorType: "InternalServerError"})
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, p.URL(), strings.NewReader(`{"TableName":"t"}`))
	req.Header.Set("X-Amz-Target", "DynamoDB_20120810.UpdateItem")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := resp.Header.Get("X-Amz-Crc32"), strconv.FormatUint(uint64(crc32.ChecksumIEEE(body)), 10); resp.StatusCode != 500 || got != want {
		t.Fatalf("answer %d with X-Amz-Crc32 %q, want 500 with %q (body %s)", resp.StatusCode, got, want, body)
	}
}
