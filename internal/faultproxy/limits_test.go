package faultproxy_test

import (
	"context"
	"crypto/md5"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/kinesis-events/pipeline/internal/faultproxy"
	"github.com/kinesis-events/pipeline/internal/kinesiswire"
	"github.com/kinesis-events/pipeline/internal/localstack"
	"github.com/kinesis-events/pipeline/internal/localstack/localstacktest"
	"github.com/kinesis-events/pipeline/internal/reshard"
)

// clock is a test clock the limiter's buckets refill on.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// limited starts the stack with one stream of shards shards and a proxy enforcing lim per shard on
// a frozen clock, and returns a client through the proxy making one attempt per call.
func limited(t *testing.T, stream string, shards int, lim faultproxy.ShardLimits) (context.Context, *localstack.Stack, *faultproxy.Proxy, *kinesis.Client, *clock) {
	return limitedWith(t, false, stream, shards, lim)
}

// limitedWith is limited with the client's PutRecords in CBOR (withCBOR) when cbor is set.
func limitedWith(t *testing.T, cbor bool, stream string, shards int, lim faultproxy.ShardLimits) (context.Context, *localstack.Stack, *faultproxy.Proxy, *kinesis.Client, *clock) {
	t.Helper()
	st := localstacktest.Start(t)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	t.Cleanup(cancel)
	if err := st.CreateStream(ctx, stream, shards); err != nil {
		t.Fatal(err)
	}
	clk := &clock{t: time.Unix(1_800_000_000, 0)}
	lim.Shards = st.Kinesis()
	p, err := faultproxy.Start(ctx, faultproxy.Config{Upstream: st.KinesisEndpoint, Now: clk.Now, ShardLimits: &lim})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	cfg, err := st.AWSConfig(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cfg.RetryMaxAttempts = 1
	// With kinesiswire, as the worker's and the forwarder's clients: the per-entry refusals are read
	// by its decoder.
	install := kinesiswire.Install
	if cbor {
		install = withCBOR(t)
	}
	return ctx, st, p, kinesis.NewFromConfig(cfg, func(o *kinesis.Options) { o.BaseEndpoint = aws.String(p.URL()) }, install), clk
}

// keysOn returns n partition keys whose MD5 falls in shard's hash key range.
func keysOn(t *testing.T, ctx context.Context, st *localstack.Stack, stream, shard, prefix string, n int) []string {
	t.Helper()
	all, err := reshard.ListAll(ctx, st.Kinesis(), stream)
	if err != nil {
		t.Fatal(err)
	}
	var r reshard.Range
	for _, o := range reshard.OpenRanges(all) {
		if o.ShardID == shard {
			r = o
		}
	}
	if r.Start == nil {
		t.Fatalf("no open shard %s", shard)
	}
	var keys []string
	for i := 0; len(keys) < n; i++ {
		k := fmt.Sprintf("%s-%d", prefix, i)
		sum := md5.Sum([]byte(k))
		h := new(big.Int).SetBytes(sum[:])
		if h.Cmp(r.Start) >= 0 && h.Cmp(r.End) <= 0 {
			keys = append(keys, k)
		}
	}
	return keys
}

func entries(keys []string, size int) []types.PutRecordsRequestEntry {
	es := make([]types.PutRecordsRequestEntry, len(keys))
	for i, k := range keys {
		es[i] = types.PutRecordsRequestEntry{Data: []byte(strings.Repeat("x", size-len(k))), PartitionKey: aws.String(k)}
	}
	return es
}

// TestShardLimitsOnKinesalite: entries over their shard's records/s or bytes/s limit are refused
// per entry with ProvisionedThroughputExceededException in an HTTP 200 answer, in request order,
// never reach the emulator, and pass once the bucket has refilled; the proxy's shard of every
// written entry is the one kinesalite chose; the load samples count what CloudWatch would.
// In CBOR (the forwarder's encoding) the split answers come back in CBOR.
func TestShardLimitsOnKinesalite(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the local emulators")
	}
	for _, c := range []struct {
		name string
		cbor bool
	}{{"json", false}, {"cbor", true}} {
		t.Run(c.name, func(t *testing.T) { testShardLimitsOnKinesalite(t, c.cbor) })
	}
}

func testShardLimitsOnKinesalite(t *testing.T, cbor bool) {
	ctx, st, p, kc, clk := limitedWith(t, cbor, "spiky", 2, faultproxy.ShardLimits{RecordsPerSecond: 10, BytesPerSecond: 1000})
	const s0, s1 = "shardId-000000000000", "shardId-000000000001"
	k0, k1 := keysOn(t, ctx, st, "spiky", s0, "a", 15), keysOn(t, ctx, st, "spiky", s1, "b", 15)
	// Interleave: 15 entries of 20 bytes for each shard, one call.
	var keys []string
	for i := range 15 {
		keys = append(keys, k0[i], k1[i])
	}
	out, err := kc.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String("spiky"), Records: entries(keys, 20)})
	if err != nil {
		t.Fatalf("a partly throttled PutRecords is a successful call: %v", err)
	}
	if got := aws.ToInt32(out.FailedRecordCount); got != 10 || len(out.Records) != 30 {
		t.Fatalf("FailedRecordCount %d of %d results, want 10 of 30", got, len(out.Records))
	}
	for i, r := range out.Records {
		want := s0
		if i%2 == 1 {
			want = s1
		}
		if i < 20 { // the first 10 of each shard fit
			if r.ErrorCode != nil || aws.ToString(r.ShardId) != want {
				t.Fatalf("entry %d: %+v, want written to %s (the proxy's shard is kinesalite's)", i, r, want)
			}
			continue
		}
		if aws.ToString(r.ErrorCode) != "ProvisionedThroughputExceededException" || !strings.Contains(aws.ToString(r.ErrorMessage), want) {
			t.Fatalf("entry %d: %+v, want ProvisionedThroughputExceededException on %s", i, r, want)
		}
	}
	recs, err := st.ReadAll(ctx, "spiky")
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 20 {
		t.Fatalf("stream holds %d records, want 20 (refused entries never reach the emulator)", len(recs))
	}

	// The same second: still refused. Half a second later: half a second's worth fits.
	out, err = kc.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String("spiky"), Records: entries(keys[20:], 20)})
	if err != nil || aws.ToInt32(out.FailedRecordCount) != 10 {
		t.Fatalf("retry in the same second: err %v, failed %d, want all 10 refused", err, aws.ToInt32(out.FailedRecordCount))
	}
	clk.Add(500 * time.Millisecond)
	out, err = kc.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String("spiky"), Records: entries(keys[20:], 20)})
	if err != nil || aws.ToInt32(out.FailedRecordCount) != 0 {
		t.Fatalf("retry after the refill: err %v, failed %d, want none", err, aws.ToInt32(out.FailedRecordCount))
	}

	// Bytes: 1000 bytes/s; 400-byte records: two fit a full bucket, the third does not.
	clk.Add(2 * time.Second)
	out, err = kc.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String("spiky"), Records: entries(k0[:3], 400)})
	if err != nil || aws.ToInt32(out.FailedRecordCount) != 1 || out.Records[2].ErrorCode == nil {
		t.Fatalf("bytes limit: err %v, %+v, want the third 400-byte entry refused", err, out)
	}

	// PutRecord over the limit is a 400 ProvisionedThroughputExceededException.
	var thr *types.ProvisionedThroughputExceededException
	_, err = kc.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String("spiky"), PartitionKey: aws.String(k0[3]), Data: []byte(strings.Repeat("y", 400))})
	if !errors.As(err, &thr) {
		t.Fatalf("PutRecord over the bytes limit: %v, want *types.ProvisionedThroughputExceededException", err)
	}

	// Load: per second, what was written and what was refused.
	load := p.Load(time.Unix(0, 0))
	got := load.Streams["spiky"]
	// Second 0: 20 + 10 written (the retry at +0.5 s is the same second), 10 + 10 refused.
	// Second 2: two 400-byte records written, one PutRecords entry and one PutRecord refused.
	want := []faultproxy.Sample{{At: 1_800_000_000, Records: 30, Bytes: 600, Throttled: 20}, {At: 1_800_000_002, Records: 2, Bytes: 800, Throttled: 2}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("load samples %+v, want %+v", got, want)
	}
	if c := p.Counts("PutRecords", "spiky"); c.Limited != 21 || c.Forwarded != 3 {
		t.Fatalf("Counts %+v, want 21 entries limited and 3 calls forwarded (the all-refused retry never was)", c)
	}
	resp, err := http.Get(p.URL() + faultproxy.LoadPath + "?since=1800000001")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var served faultproxy.LoadReport
	if err := json.NewDecoder(resp.Body).Decode(&served); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(served.Streams["spiky"]) != fmt.Sprint(want[1:]) {
		t.Fatalf("served load %+v, want %+v", served.Streams["spiky"], want[1:])
	}
}

// TestShardLimitsFollowReshard: after a split through the proxy the children have buckets of their
// own at once (the parent's exhausted bucket does not limit them), and refusals name the children.
func TestShardLimitsFollowReshard(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the local emulators")
	}
	ctx, st, _, kc, _ := limited(t, "grow", 1, faultproxy.ShardLimits{RecordsPerSecond: 4, BytesPerSecond: 1 << 20, Refresh: time.Hour})
	keys := keysOn(t, ctx, st, "grow", "shardId-000000000000", "k", 16)
	out, err := kc.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String("grow"), Records: entries(keys[:8], 10)})
	if err != nil || aws.ToInt32(out.FailedRecordCount) != 4 {
		t.Fatalf("before the split: err %v, failed %d, want 4 of 8", err, aws.ToInt32(out.FailedRecordCount))
	}
	if _, err := reshard.Run(ctx, kc, reshard.Options{Stream: "grow", Target: 2, Method: reshard.MethodAuto, Apply: true, Poll: 20 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	// The clock has not moved: only new buckets let anything through. 16 keys over two children:
	// at most 4 each pass.
	out, err = kc.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String("grow"), Records: entries(keys, 10)})
	if err != nil {
		t.Fatal(err)
	}
	written := map[string]int{}
	for _, r := range out.Records {
		if r.ErrorCode == nil {
			written[aws.ToString(r.ShardId)]++
		} else if m := aws.ToString(r.ErrorMessage); !strings.Contains(m, "shardId-000000000001") && !strings.Contains(m, "shardId-000000000002") {
			t.Fatalf("refusal %q does not name a child shard", m)
		}
	}
	if written["shardId-000000000000"] != 0 || written["shardId-000000000001"] == 0 || written["shardId-000000000002"] == 0 ||
		written["shardId-000000000001"] > 4 || written["shardId-000000000002"] > 4 {
		t.Fatalf("written per shard %v, want 1..4 on each child and none on the closed parent", written)
	}
}
