package ambiguous_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go/middleware"

	"github.com/kinesis-events/pipeline/internal/ambiguous"
)

// kinesisAt returns a Kinesis client for endpoint that makes one attempt per call, so each call's
// count of unknown outcomes is exact.
func kinesisAt(endpoint string) *kinesis.Client {
	return kinesis.New(kinesis.Options{
		Region:           "us-east-1",
		Credentials:      credentials.NewStaticCredentialsProvider("k", "s", ""),
		BaseEndpoint:     aws.String(endpoint),
		RetryMaxAttempts: 1,
		APIOptions:       []func(*middleware.Stack) error{ambiguous.Middleware("PutRecords")},
	})
}

func put(ctx context.Context, kc *kinesis.Client) error {
	_, err := kc.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String("s"),
		Records: []types.PutRecordsRequestEntry{{Data: []byte("x"), PartitionKey: aws.String("k")}}})
	return err
}

func TestMiddlewareCountsUnknownOutcomes(t *testing.T) {
	const okBody = `{"FailedRecordCount":0,"Records":[{"SequenceNumber":"1","ShardId":"shardId-000000000000"}]}`
	tests := []struct {
		name    string
		handler http.HandlerFunc
		wantErr bool
		unknown int
	}{
		{"answered", func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Type", "application/x-amz-json-1.1")
			fmt.Fprint(w, okBody)
		}, false, 0},
		{"200 cut off mid-body", func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body)
			conn, buf, err := http.NewResponseController(w).Hijack()
			if err != nil {
				t.Error(err)
				return
			}
			fmt.Fprintf(buf, "HTTP/1.1 200 OK\r\nContent-Type: application/x-amz-json-1.1\r\nContent-Length: %d\r\n\r\n%s", len(okBody), okBody[:20])
			buf.Flush()
			conn.Close()
		}, true, 1},
		{"500 internal failure", answer(http.StatusInternalServerError, `{"__type":"InternalFailure","message":"boom"}`), true, 1},
		{"400 refused", answer(http.StatusBadRequest, `{"__type":"ValidationException","message":"no"}`), true, 0},
		{"connection dropped before any answer", func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body)
			conn, _, err := http.NewResponseController(w).Hijack()
			if err != nil {
				t.Error(err)
				return
			}
			conn.Close()
		}, true, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var calls atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				calls.Add(1)
				tc.handler(w, r)
			}))
			defer srv.Close()
			ctx, tr := ambiguous.Track(t.Context())
			err := put(ctx, kinesisAt(srv.URL))
			if (err != nil) != tc.wantErr {
				t.Fatalf("PutRecords error = %v, want error %v", err, tc.wantErr)
			}
			if calls.Load() != 1 {
				t.Fatalf("server saw %d requests, want 1", calls.Load())
			}
			if got := tr.Unknown(); got != tc.unknown {
				t.Errorf("Unknown() = %d, want %d (err %v)", got, tc.unknown, err)
			}
		})
	}
}

// answer is a handler that reads the request and answers status with a JSON body.
func answer(status int, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		w.WriteHeader(status)
		fmt.Fprint(w, body)
	}
}

// A request that never left (nothing listens) is a definite failure.
func TestMiddlewareNothingSent(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	ctx, tr := ambiguous.Track(t.Context())
	if err := put(ctx, kinesisAt("http://"+addr)); err == nil {
		t.Fatal("PutRecords to a closed port succeeded")
	}
	if tr.Unknown() != 0 {
		t.Errorf("Unknown() = %d for a request that was never sent", tr.Unknown())
	}
}

// Without a Tracker in the context the middleware stays out of the way.
func TestMiddlewareWithoutTracker(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
	}))
	defer srv.Close()
	if err := put(context.Background(), kinesisAt(srv.URL)); err == nil {
		t.Fatal("want an error from a 500")
	}
	var nilTracker *ambiguous.Tracker
	if nilTracker.Unknown() != 0 {
		t.Fatal("nil Tracker")
	}
}

type statusErr int

func (e statusErr) Error() string       { return fmt.Sprintf("status %d", int(e)) }
func (e statusErr) HTTPStatusCode() int { return int(e) }

func TestUnknown(t *testing.T) {
	tests := []struct {
		err   error
		wrote bool
		want  bool
	}{
		{nil, true, false},
		{statusErr(200), true, true},
		{fmt.Errorf("wrapped: %w", statusErr(503)), true, true},
		{statusErr(400), true, false},
		{statusErr(429), true, false},
		{errors.New("reset"), true, true},
		{errors.New("dial"), false, false},
	}
	for _, tc := range tests {
		if got := ambiguous.Unknown(tc.err, tc.wrote); got != tc.want {
			t.Errorf("Unknown(%v, %v) = %v, want %v", tc.err, tc.wrote, got, tc.want)
		}
	}
}

// doerFunc is an HTTP client made of a function.
type doerFunc func(*http.Request) (*http.Response, error)

func (f doerFunc) Do(r *http.Request) (*http.Response, error) { return f(r) }

// closedBody yields part of a body, then the error Go's transport returns when the connection was
// closed under the reader.
type closedBody struct{ r io.Reader }

func (b *closedBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err == io.EOF {
		return n, fmt.Errorf("read tcp 127.0.0.1:1->127.0.0.1:2: %w", net.ErrClosed)
	}
	return n, err
}

func (b *closedBody) Close() error { return nil }

// TestSDKRetriesCutOffAnswer pins down the SDK behaviour this package exists for: a PutRecords whose
// 200 answer is cut off by a closed connection is sent again by the SDK's own retryer, and the call
// then succeeds, so the records were written twice while the caller sees one clean success. The
// Tracker is the only trace.
func TestSDKRetriesCutOffAnswer(t *testing.T) {
	const okBody = `{"FailedRecordCount":0,"Records":[{"SequenceNumber":"1","ShardId":"shardId-000000000000"}]}`
	var calls atomic.Int32
	client := doerFunc(func(r *http.Request) (*http.Response, error) {
		if r.Body != nil {
			io.Copy(io.Discard, r.Body)
		}
		resp := &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"application/x-amz-json-1.1"}}, Request: r}
		if calls.Add(1) == 1 {
			resp.Body = &closedBody{strings.NewReader(okBody[:20])}
		} else {
			resp.Body = io.NopCloser(strings.NewReader(okBody))
		}
		return resp, nil
	})
	kc := kinesis.New(kinesis.Options{
		Region:           "us-east-1",
		Credentials:      credentials.NewStaticCredentialsProvider("k", "s", ""),
		BaseEndpoint:     aws.String("http://127.0.0.1:1"),
		HTTPClient:       client,
		RetryMaxAttempts: 3,
		APIOptions:       []func(*middleware.Stack) error{ambiguous.Middleware("PutRecords")},
	})
	ctx, tr := ambiguous.Track(t.Context())
	if err := put(ctx, kc); err != nil {
		t.Fatalf("PutRecords: %v", err)
	}
	if calls.Load() != 2 || tr.Unknown() != 1 {
		t.Fatalf("%d requests sent, Unknown() = %d; want 2 and 1", calls.Load(), tr.Unknown())
	}
}
