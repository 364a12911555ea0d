package kclctl

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/applicationautoscaling"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/kinesis-events/pipeline/internal/ambiguous"
	"github.com/kinesis-events/pipeline/internal/kinesiswire"
)

// Clients are the AWS clients the commands use.
type Clients struct {
	DynamoDB *dynamodb.Client
	Kinesis  *kinesis.Client
	// CloudWatch and Scaling (Application Auto Scaling) are used by `autoscale run` only.
	CloudWatch *cloudwatch.Client
	Scaling    *applicationautoscaling.Client
}

// ConnectAWS builds the clients the SDK's way: region, endpoints (AWS_ENDPOINT_URL_DYNAMODB,
// AWS_ENDPOINT_URL_KINESIS) and credentials from the environment and shared config. Every HTTP
// request times out after requestTimeout; the SDK retries at most 3 attempts, since an operator
// tool should answer promptly rather than wait out a long outage.
func ConnectAWS(ctx context.Context, requestTimeout time.Duration) (*Clients, error) {
	cfg, err := config.LoadDefaultConfig(ctx,
		config.WithHTTPClient(awshttp.NewBuildableClient().WithTimeout(requestTimeout)),
		config.WithRetryer(func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) { o.MaxAttempts = 3 })
		}),
	)
	if err != nil {
		return nil, fmt.Errorf("AWS config: %w", err)
	}
	if cfg.Region == "" {
		return nil, errors.New("AWS region not set: set AWS_REGION (us-east-1 locally)")
	}
	// Replayed PutRecords attempts with an unknown outcome are counted (ReplayReport.Unknown).
	kin := kinesis.NewFromConfig(cfg, func(o *kinesis.Options) {
		o.APIOptions = append(o.APIOptions, ambiguous.Middleware("PutRecords"))
	}, kinesiswire.Install)
	return &Clients{DynamoDB: dynamodb.NewFromConfig(cfg), Kinesis: kin,
		CloudWatch: cloudwatch.NewFromConfig(cfg), Scaling: applicationautoscaling.NewFromConfig(cfg)}, nil
}
