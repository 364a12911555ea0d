package worker

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
)

// The KCL's client lists a stream's shards once per shardListTTL however often the KCL asks;
// a paged or filtered call always goes through.
func TestShardListCache(t *testing.T) {
	var mu sync.Mutex
	calls := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		calls++
		mu.Unlock()
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		if strings.Contains(string(b), "NextToken") {
			_, _ = io.WriteString(w, `{"Shards":[]}`)
			return
		}
		_, _ = io.WriteString(w, `{"Shards":[{"ShardId":"shardId-000000000000","HashKeyRange":{"StartingHashKey":"0","EndingHashKey":"1"},"SequenceNumberRange":{"StartingSequenceNumber":"1"}}]}`)
	}))
	defer srv.Close()
	now := time.Unix(1000, 0)
	c := newShardListCache(time.Second, func() time.Time { return now })
	kc := kclClient(kinesis.New(kinesis.Options{Region: "us-east-1", BaseEndpoint: aws.String(srv.URL),
		Credentials: aws.AnonymousCredentials{}, RetryMaxAttempts: 1}), c)
	list := func(in *kinesis.ListShardsInput) {
		t.Helper()
		out, err := kc.ListShards(t.Context(), in)
		if err != nil {
			t.Fatal(err)
		}
		if in.NextToken == nil && (len(out.Shards) != 1 || aws.ToString(out.Shards[0].ShardId) != "shardId-000000000000") {
			t.Fatalf("ListShards = %+v", out.Shards)
		}
	}
	count := func() int { mu.Lock(); defer mu.Unlock(); return calls }
	for range 5 {
		list(&kinesis.ListShardsInput{StreamName: aws.String("raw")})
	}
	if n := count(); n != 1 {
		t.Fatalf("5 lists within the TTL made %d calls, want 1", n)
	}
	list(&kinesis.ListShardsInput{NextToken: aws.String("t")})
	if n := count(); n != 2 {
		t.Fatalf("a paged list was answered from the cache (%d calls, want 2)", n)
	}
	now = now.Add(time.Second)
	list(&kinesis.ListShardsInput{StreamName: aws.String("raw")})
	if n := count(); n != 3 {
		t.Fatalf("a list after the TTL made %d calls in all, want 3", n)
	}
}
