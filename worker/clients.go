package worker

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/smithy-go/middleware"

	"github.com/kinesis-events/pipeline/internal/ambiguous"
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
// so that a conditional lease write the SDK resent after it landed is not taken for fencing.
func NewClients(ctx context.Context, region string, requestTimeout time.Duration) (*kinesis.Client, *dynamodb.Client, error) {
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
	kc := kinesis.NewFromConfig(cfg, func(o *kinesis.Options) {
		o.APIOptions = append(o.APIOptions, operationDeadline(readOps, readTimeout), ambiguous.Middleware("PutRecords", "PutRecord"))
	})
	// Lease and checkpoint writes are conditional: when the SDK resends one that landed (its answer
	// was lost), the resend fails the condition the first attempt changed. Marking such attempts lets
	// package checkpoint check the row instead of declaring the lease lost.
	dc := dynamodb.NewFromConfig(cfg, func(o *dynamodb.Options) {
		o.APIOptions = append(o.APIOptions, ambiguous.Middleware("UpdateItem", "PutItem", "DeleteItem"))
	})
	return kc, dc, nil
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
