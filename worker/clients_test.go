package worker

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go/middleware"
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
