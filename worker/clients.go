package worker

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/kinesis-events/pipeline/internal/ambiguous"
	"github.com/kinesis-events/pipeline/internal/kinesiswire"
)

// readTimeout bounds one read-side Kinesis operation, all SDK retries included. The KCL calls
// GetRecords, GetShardIterator and ListShards with a context that never ends; without this a
// stalled endpoint would hold a shard consumer (and a graceful shutdown) for as long as the HTTP
// backstop allows, times the retries. Reads are idempotent, so giving up early is always safe.
const readTimeout = 10 * time.Second

var readOps = map[string]bool{
	"GetRecords": true, "GetShardIterator": true, "ListShards": true,
	"DescribeStream": true, "DescribeStreamSummary": true,
}

// NewClients loads the AWS configuration the SDK's usual way (AWS_REGION, the default credential
// chain, AWS_ENDPOINT_URL_KINESIS / AWS_ENDPOINT_URL_DYNAMODB for local emulators), so the same
// binary runs against AWS unchanged, and returns clients whose every request is bounded: each HTTP
// attempt by requestTimeout, and each Kinesis read operation (retries included) by readTimeout.
// Writes keep the long backstop: a PutRecords that times out after landing would be retried into
// duplicates. Every PutRecords attempt whose outcome is unknown is marked (package ambiguous), so the
// pipeline can count and log the records that may appear twice; so is every DynamoDB item write,
// so that a conditional lease write the SDK resent after it landed is not taken for fencing. With a
// registerer (nil: none), every HTTP attempt is counted by service and operation, with its bytes
// (aws_requests_total, aws_request_bytes_total, aws_response_bytes_total): what the fleet's calls
// cost, and what `make bench`'s cost model reads.
func NewClients(ctx context.Context, region string, requestTimeout time.Duration, reg prometheus.Registerer) (*kinesis.Client, *dynamodb.Client, error) {
	opts := []func(*config.LoadOptions) error{
		config.WithHTTPClient(awshttp.NewBuildableClient().WithTimeout(requestTimeout)),
	}
	if region != "" {
		opts = append(opts, config.WithRegion(region))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("load AWS config: %w", err)
	}
	if cfg.Region == "" {
		return nil, nil, fmt.Errorf("no AWS region: set AWS_REGION")
	}
	cfg.RetryMaxAttempts = 3
	cfg.RetryMode = aws.RetryModeStandard
	if reg != nil {
		cfg.APIOptions = append(cfg.APIOptions, newCallCounter(reg).middleware)
	}
	// PutRecords requests and answers go through kinesiswire, not the SDK's generic codec.
	kc := kinesis.NewFromConfig(cfg, func(o *kinesis.Options) {
		o.APIOptions = append(o.APIOptions, operationDeadline(readOps, readTimeout), ambiguous.Middleware("PutRecords", "PutRecord"))
	}, kinesiswire.Install)
	// Lease and checkpoint writes are conditional: when the SDK resends one that landed (its answer
	// was lost), the resend fails the condition the first attempt changed. Marking such attempts lets
	// package checkpoint check the row instead of declaring the lease lost.
	dc := dynamodb.NewFromConfig(cfg, func(o *dynamodb.Options) {
		o.APIOptions = append(o.APIOptions, ambiguous.Middleware("UpdateItem", "PutItem", "DeleteItem"))
	})
	return kc, dc, nil
}

// callCounter counts HTTP attempts and their bytes on the wire (request line, headers and body;
// status line, headers and body of the answer) by service and operation.
type callCounter struct {
	calls, sent, received *prometheus.CounterVec
}

func newCallCounter(reg prometheus.Registerer) *callCounter {
	f := promauto.With(reg)
	labels := []string{"service", "operation"}
	return &callCounter{
		calls: f.NewCounterVec(prometheus.CounterOpts{Name: "aws_requests_total",
			Help: "AWS API HTTP attempts (retries included), by service and operation."}, labels),
		sent: f.NewCounterVec(prometheus.CounterOpts{Name: "aws_request_bytes_total",
			Help: "Bytes of AWS API requests: request line, headers and body, by service and operation."}, labels),
		received: f.NewCounterVec(prometheus.CounterOpts{Name: "aws_response_bytes_total",
			Help: "Bytes of AWS API answers: status line, headers and body (as sent, before decompression), by service and operation."}, labels),
	}
}

// middleware adds the counter to a client's stack, innermost in the deserialize step: it sees
// every attempt the retryer makes, and the raw answer.
func (c *callCounter) middleware(stack *middleware.Stack) error {
	return stack.Deserialize.Add(middleware.DeserializeMiddlewareFunc("CallCounter",
		func(ctx context.Context, in middleware.DeserializeInput, next middleware.DeserializeHandler) (middleware.DeserializeOutput, middleware.Metadata, error) {
			out, md, err := next.HandleDeserialize(ctx, in)
			svc, op := awsmiddleware.GetServiceID(ctx), awsmiddleware.GetOperationName(ctx)
			c.calls.WithLabelValues(svc, op).Inc()
			if req, ok := in.Request.(*smithyhttp.Request); ok {
				c.sent.WithLabelValues(svc, op).Add(float64(requestBytes(req)))
			}
			if resp, ok := out.RawResponse.(*smithyhttp.Response); ok && resp != nil && resp.Response != nil {
				c.received.WithLabelValues(svc, op).Add(float64(responseBytes(resp)))
			}
			return out, md, err
		}), middleware.After)
}

// requestBytes is the size of req on the wire, HTTP/1.1 framing included.
func requestBytes(req *smithyhttp.Request) int64 {
	n := int64(len(req.Method)+len(req.URL.RequestURI())+len(" HTTP/1.1\r\n")+len("Host: \r\n")+len(req.URL.Host)) + headerBytes(req.Header)
	if req.ContentLength > 0 {
		n += req.ContentLength
	}
	return n + 2
}

// responseBytes is the size of resp on the wire, HTTP/1.1 framing included (0 body when its length
// is unknown).
func responseBytes(resp *smithyhttp.Response) int64 {
	n := int64(len("HTTP/1.1 200 OK\r\n")) + headerBytes(resp.Header)
	if resp.ContentLength > 0 {
		n += resp.ContentLength
	}
	return n + 2
}

func headerBytes(h map[string][]string) int64 {
	var n int64
	for k, vs := range h {
		for _, v := range vs {
			n += int64(len(k) + len(v) + 4) // "k: v\r\n"
		}
	}
	return n
}

// operationDeadline adds a deadline of d to the operations named in ops when the caller's context
// has none.
func operationDeadline(ops map[string]bool, d time.Duration) func(*middleware.Stack) error {
	return func(stack *middleware.Stack) error {
		if !ops[stack.ID()] {
			return nil
		}
		return stack.Initialize.Add(middleware.InitializeMiddlewareFunc("OperationDeadline",
			func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
				if _, ok := ctx.Deadline(); ok {
					return next.HandleInitialize(ctx, in)
				}
				ctx, cancel := context.WithTimeout(ctx, d)
				defer cancel()
				return next.HandleInitialize(ctx, in)
			}), middleware.Before)
	}
}
