package faultproxy_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/kinesis-events/pipeline/internal/faultproxy"
)

// TestCallCounts checks the figures the spike summary prints per operation: the records the
// writes carried, and the records and empty answers of GetRecords.
func TestCallCounts(t *testing.T) {
	answers := map[string]string{
		"PutRecords": `{"FailedRecordCount":0,"Records":[{"SequenceNumber":"1","ShardId":"shardId-000000000000"},{"SequenceNumber":"2","ShardId":"shardId-000000000000"},{"SequenceNumber":"3","ShardId":"shardId-000000000000"}]}`,
		"PutRecord":  `{"SequenceNumber":"4","ShardId":"shardId-000000000000"}`,
	}
	gets := []string{
		`{"Records":[{"SequenceNumber":"1","Data":"eA==","PartitionKey":"k"},{"SequenceNumber":"2","Data":"eA==","PartitionKey":"k"}],"NextShardIterator":"it2","MillisBehindLatest":0}`,
		`{"Records":[],"NextShardIterator":"it3","MillisBehindLatest":0}`,
	}
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		op := r.Header.Get("X-Amz-Target")
		op = op[strings.LastIndexByte(op, '.')+1:]
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		if op == "GetRecords" {
			b, _ := io.ReadAll(r.Body)
			if strings.Contains(string(b), "it2") {
				_, _ = io.WriteString(w, gets[1])
				return
			}
			_, _ = io.WriteString(w, gets[0])
			return
		}
		_, _ = io.WriteString(w, answers[op])
	}))
	defer up.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	p, err := faultproxy.Start(ctx, faultproxy.Config{Upstream: up.URL})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	call := func(op, body string) {
		t.Helper()
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.URL(), strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("X-Amz-Target", "Kinesis_20131202."+op)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: status %d", op, resp.StatusCode)
		}
	}
	call("PutRecords", `{"StreamName":"s","Records":[{"Data":"eA==","PartitionKey":"a"},{"Data":"eA==","PartitionKey":"b"},{"Data":"eA==","PartitionKey":"c"}]}`)
	call("PutRecord", `{"StreamName":"s","Data":"eA==","PartitionKey":"a"}`)
	call("GetRecords", `{"ShardIterator":"it1"}`)
	call("GetRecords", `{"ShardIterator":"it2"}`)

	byOp := p.ByOperation()
	if got := byOp["PutRecords"]; got.Requests != 1 || got.Records != 3 {
		t.Errorf("PutRecords: %+v, want 1 request of 3 records", got)
	}
	if got := byOp["PutRecord"]; got.Requests != 1 || got.Records != 1 {
		t.Errorf("PutRecord: %+v, want 1 request of 1 record", got)
	}
	if got := byOp["GetRecords"]; got.Requests != 2 || got.Got != 2 || got.Empty != 1 {
		t.Errorf("GetRecords: %+v, want 2 requests, 2 records, 1 empty answer", got)
	}
}
