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
)

// NewClients loads the AWS configuration the SDK's usual way (AWS_REGION, the default credential
// chain, AWS_ENDPOINT_URL_KINESIS / AWS_ENDPOINT_URL_DYNAMODB for local emulators), so the same
// binary runs against AWS unchanged, and returns clients whose every request is bounded by timeout.
func NewClients(ctx context.Context, region string, timeout time.Duration) (*kinesis.Client, *dynamodb.Client, error) {
	opts := []func(*config.LoadOptions) error{
		config.WithHTTPClient(awshttp.NewBuildableClient().WithTimeout(timeout)),
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
	return kinesis.NewFromConfig(cfg), dynamodb.NewFromConfig(cfg), nil
}
