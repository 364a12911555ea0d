package worker

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go/middleware"
	"github.com/prometheus/client_golang/prometheus"
)

// TestReadOperationsHaveADeadline: a GetRecords called without a deadline (as the KCL does, with a
// context that never ends) against an endpoint that never answers returns within the operation deadline,
// while PutRecords is not cut short by it.
func TestReadOperationsHaveADeadline(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	kc := kinesis.New(kinesis.Options{
		Region: "us-east-1", BaseEndpoint: aws.String(srv.URL), RetryMaxAttempts: 1,
		Credentials: aws.AnonymousCredentials{},
		APIOptions:  append([]func(*middleware.Stack) error(nil), operationDeadline(readOps, 200*time.Millisecond)),
	})
	done := make(chan error, 1)
	go func() {
		_, err := kc.GetRecords(context.Background(), &kinesis.GetRecordsInput{ShardIterator: aws.String("it")})
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("GetRecords against a silent endpoint succeeded")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("GetRecords without a caller deadline did not give up")
	}

	ctx, cancel := context.WithTimeout(t.Context(), 600*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := kc.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String("s"),
		Records: []types.PutRecordsRequestEntry{{Data: []byte("x"), PartitionKey: aws.String("k")}}})
	if err == nil {
		t.Fatal("PutRecords against a silent endpoint succeeded")
	}
	if waited := time.Since(start); waited < 500*time.Millisecond {
		t.Fatalf("PutRecords gave up after %s: the read deadline must not apply to writes", waited)
	}
}

// TestNewClientsCountsCallsAndBytes: with a registerer, every HTTP attempt is counted by service and
// operation with its bytes on the wire; the request's body alone is a lower bound of what was sent.
func TestNewClientsCountsCallsAndBytes(t *testing.T) {
	const answer = `{"StreamDescriptionSummary":{"StreamName":"s","StreamARN":"arn:aws:kinesis:us-east-1:000000000000:stream/s","StreamStatus":"ACTIVE","RetentionPeriodHours":24,"StreamCreationTimestamp":1,"OpenShardCount":1,"EnhancedMonitoring":[]}}`
	var bodies atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		bodies.Add(int64(len(b)))
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		_, _ = io.WriteString(w, answer)
	}))
	defer srv.Close()
	t.Setenv("AWS_ENDPOINT_URL_KINESIS", srv.URL)
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
	reg := prometheus.NewRegistry()
	kc, _, err := NewClients(t.Context(), "us-east-1", 5*time.Second, reg)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := kc.DescribeStreamSummary(t.Context(), &kinesis.DescribeStreamSummaryInput{StreamName: aws.String("s")}); err != nil {
			t.Fatal(err)
		}
	}
	labels := prometheus.Labels{"service": "Kinesis", "operation": "DescribeStreamSummary"}
	get := func(name string) float64 {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() != name {
				continue
			}
			for _, m := range mf.GetMetric() {
				match := 0
				for _, lp := range m.GetLabel() {
					if labels[lp.GetName()] == lp.GetValue() {
						match++
					}
				}
				if match == len(labels) {
					return m.GetCounter().GetValue()
				}
			}
		}
		t.Fatalf("no %s%v", name, labels)
		return 0
	}
	if n := get("aws_requests_total"); n != 3 {
		t.Errorf("aws_requests_total = %v, want 3", n)
	}
	if sent := get("aws_request_bytes_total"); sent <= float64(bodies.Load()) {
		t.Errorf("aws_request_bytes_total = %v, want more than the %d bytes of bodies (headers count too)", sent, bodies.Load())
	}
	if recv := get("aws_response_bytes_total"); recv <= float64(3*len(answer)) {
		t.Errorf("aws_response_bytes_total = %v, want more than 3 answers of %d bytes", recv, len(answer))
	}
}
