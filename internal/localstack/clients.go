package localstack

import (
	"context"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
)

// AWSConfig returns an SDK configuration for this stack: static local
// credentials, the local region, a request timeout and the standard retryer
// without its client-side retry quota (a paused emulator must not exhaust it
// for the rest of a test run). It has no endpoint: every service has its own,
// so build clients with Kinesis/DynamoDB, or set BaseEndpoint from
// KinesisEndpoint/DynamoDBEndpoint. It reads no environment or shared files.
func (s *Stack) AWSConfig(ctx context.Context) (aws.Config, error) {
	if err := ctx.Err(); err != nil {
		return aws.Config{}, err
	}
	return s.awsConfig(), nil
}

func (s *Stack) awsConfig() aws.Config {
	return aws.Config{
		Region:      s.Region,
		Credentials: aws.NewCredentialsCache(credentials.NewStaticCredentialsProvider(AccessKeyID, SecretAccessKey, "")),
		HTTPClient:  awshttp.NewBuildableClient().WithTimeout(s.requestTimeout),
		Retryer: func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) { o.RateLimiter = ratelimit.None })
		},
	}
}

// Kinesis returns a client for the Kinesis emulator, shared by all callers.
func (s *Stack) Kinesis() *kinesis.Client {
	s.initClients()
	return s.kinClient
}

// DynamoDB returns a client for the DynamoDB emulator, shared by all callers.
func (s *Stack) DynamoDB() *dynamodb.Client {
	s.initClients()
	return s.ddbClient
}

// SQS returns a client for the SQS emulator, shared by all callers. It is nil
// unless the stack was launched with Options.SQS.
func (s *Stack) SQS() *sqs.Client {
	s.initClients()
	return s.sqsClient
}

func (s *Stack) initClients() {
	s.clientsOnce.Do(func() {
		cfg := s.awsConfig()
		s.kinClient = kinesis.NewFromConfig(cfg, func(o *kinesis.Options) { o.BaseEndpoint = aws.String(s.KinesisEndpoint) })
		s.ddbClient = dynamodb.NewFromConfig(cfg, func(o *dynamodb.Options) { o.BaseEndpoint = aws.String(s.DynamoDBEndpoint) })
		if s.SQSEndpoint != "" {
			s.sqsClient = sqs.NewFromConfig(cfg, func(o *sqs.Options) { o.BaseEndpoint = aws.String(s.SQSEndpoint) })
		}
	})
}
