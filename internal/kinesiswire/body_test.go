package kinesiswire

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
)

func okAnswer(n int) string {
	var b strings.Builder
	b.WriteString(`{"FailedRecordCount":0,"Records":[`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"SequenceNumber":"%d","ShardId":"shardId-000000000000"}`, i+1)
	}
	b.WriteString(`]}`)
	return b.String()
}

func protocolOf(t *testing.T, c *kinesis.Client) *Protocol {
	t.Helper()
	p, ok := c.Options().Protocol.(*Protocol)
	if !ok {
		t.Fatalf("protocol %T, want *Protocol", c.Options().Protocol)
	}
	return p
}

// TestBodyKeptOnlyAfterSuccess: a call's body is kept for the next call only when the call
// succeeded; after an error answer the transport may still hold it.
func TestBodyKeptOnlyAfterSuccess(t *testing.T) {
	s, srv := start(t)
	_, wire := clients(t, srv)
	p := protocolOf(t, wire)
	in := &kinesis.PutRecordsInput{StreamName: aws.String("s"), Records: []types.PutRecordsRequestEntry{{Data: []byte("x"), PartitionKey: aws.String("k")}}}
	call := func(status int, answer string, wantErr bool, wantFree int) {
		t.Helper()
		s.set(status, answer)
		_, err := wire.PutRecords(context.Background(), in)
		if (err != nil) != wantErr {
			t.Fatalf("status %d: error %v", status, err)
		}
		if len(p.free) != wantFree {
			t.Fatalf("status %d: %d bodies kept, want %d", status, len(p.free), wantFree)
		}
	}
	call(200, okAnswer(1), false, 1)
	call(200, okAnswer(1), false, 1) // the same body, taken and given back
	call(400, `{"__type":"ProvisionedThroughputExceededException","message":"Rate exceeded"}`, true, 0)
	call(500, `{"__type":"InternalFailure"}`, true, 0)
	call(200, `{"Records":[`, true, 0) // malformed answer: an unknown outcome, not a success
	call(200, okAnswer(1), false, 1)
}

// TestReusedBodiesStayIntact: concurrent calls, some answered with errors, each body as sent holds
// exactly its own records (run with -race: a body reused while still read shows here).
func TestReusedBodiesStayIntact(t *testing.T) {
	var calls, bad atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		n := calls.Add(1)
		var req struct {
			Records []struct {
				Data         []byte
				PartitionKey string
			}
		}
		if err := json.Unmarshal(body, &req); err != nil {
			bad.Add(1)
			t.Errorf("call %d: body does not decode: %v", n, err)
		}
		for i, rec := range req.Records {
			if want := bytes.Repeat([]byte(rec.PartitionKey+"|"), 1+len(rec.PartitionKey)%7+i%3); !bytes.Equal(rec.Data, want) {
				bad.Add(1)
				t.Errorf("call %d record %d: data %q for key %q", n, i, rec.Data, rec.PartitionKey)
			}
		}
		w.Header().Set("Content-Type", ContentType)
		if n%5 == 0 {
			w.WriteHeader(400)
			_, _ = io.WriteString(w, `{"__type":"ProvisionedThroughputExceededException","message":"Rate exceeded"}`)
			return
		}
		_, _ = io.WriteString(w, okAnswer(len(req.Records)))
	}))
	t.Cleanup(srv.Close)
	_, wire := clients(t, srv)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for c := range 40 {
				in := &kinesis.PutRecordsInput{StreamName: aws.String("s")}
				for i := range 1 + (g*7+c)%60 {
					key := fmt.Sprintf("g%d-c%d-r%d", g, c, i)
					in.Records = append(in.Records, types.PutRecordsRequestEntry{
						Data: bytes.Repeat([]byte(key+"|"), 1+len(key)%7+i%3), PartitionKey: aws.String(key)})
				}
				_, _ = wire.PutRecords(context.Background(), in)
			}
		})
	}
	wg.Wait()
	if calls.Load() != 320 || bad.Load() != 0 {
		t.Fatalf("%d calls, %d bad", calls.Load(), bad.Load())
	}
}
