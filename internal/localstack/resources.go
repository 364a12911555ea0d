package localstack

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	kintypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
)

// resourceTimeout bounds waiting for a stream or table to become ACTIVE when
// ctx has no earlier deadline.
const resourceTimeout = 60 * time.Second

// CreateStream creates a provisioned stream with shards shards and waits until
// it is ACTIVE. A stream that already exists is waited for, not recreated,
// whatever its shard count.
func (s *Stack) CreateStream(ctx context.Context, name string, shards int) error {
	if shards < 1 {
		return fmt.Errorf("create stream %s: shards %d, want at least 1", name, shards)
	}
	c := s.Kinesis()
	_, err := c.CreateStream(ctx, &kinesis.CreateStreamInput{
		StreamName: aws.String(name),
		ShardCount: aws.Int32(int32(shards)),
	})
	var inUse *kintypes.ResourceInUseException
	if err != nil && !errors.As(err, &inUse) {
		return fmt.Errorf("create stream %s: %w", name, err)
	}
	ctx, cancel := context.WithTimeout(ctx, resourceTimeout)
	defer cancel()
	return poll(ctx, 20*time.Millisecond, func(ctx context.Context) (bool, error) {
		out, err := c.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(name)})
		if err != nil {
			return false, err
		}
		return out.StreamDescriptionSummary.StreamStatus == kintypes.StreamStatusActive, nil
	}, func(last error) error {
		return fmt.Errorf("stream %s not ACTIVE: %w", name, last)
	})
}

// CreateTable creates an on-demand (PAY_PER_REQUEST) table whose hash key
// hashKey is a string, and waits until it is ACTIVE. A table that already
// exists is waited for, not recreated.
func (s *Stack) CreateTable(ctx context.Context, name, hashKey string) error {
	c := s.DynamoDB()
	_, err := c.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName:            aws.String(name),
		AttributeDefinitions: []ddbtypes.AttributeDefinition{{AttributeName: aws.String(hashKey), AttributeType: ddbtypes.ScalarAttributeTypeS}},
		KeySchema:            []ddbtypes.KeySchemaElement{{AttributeName: aws.String(hashKey), KeyType: ddbtypes.KeyTypeHash}},
		BillingMode:          ddbtypes.BillingModePayPerRequest,
	})
	var inUse *ddbtypes.ResourceInUseException
	if err != nil && !errors.As(err, &inUse) {
		return fmt.Errorf("create table %s: %w", name, err)
	}
	ctx, cancel := context.WithTimeout(ctx, resourceTimeout)
	defer cancel()
	return poll(ctx, 20*time.Millisecond, func(ctx context.Context) (bool, error) {
		out, err := c.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(name)})
		if err != nil {
			return false, err
		}
		return out.Table.TableStatus == ddbtypes.TableStatusActive, nil
	}, func(last error) error {
		return fmt.Errorf("table %s not ACTIVE: %w", name, last)
	})
}

// poll calls check every interval until it reports done. A check error is
// remembered and retried; when ctx ends, poll returns onTimeout(last error or
// ctx's cause). A check error of type permanent ends polling at once.
func poll(ctx context.Context, interval time.Duration, check func(context.Context) (bool, error), onTimeout func(last error) error) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	var last error
	for {
		done, err := check(ctx)
		if done {
			return nil
		}
		if err != nil {
			var p permanent
			if errors.As(err, &p) {
				return p.err
			}
			last = err
		}
		select {
		case <-ctx.Done():
			if last == nil {
				last = context.Cause(ctx)
			} else {
				last = fmt.Errorf("%w (after %v)", last, context.Cause(ctx))
			}
			return onTimeout(last)
		case <-t.C:
		}
	}
}

// permanent marks a check error that polling again cannot fix.
type permanent struct{ err error }

func (p permanent) Error() string { return p.err.Error() }
func (p permanent) Unwrap() error { return p.err }

// CreateQueue creates a standard queue on the SQS emulator (a queue that
// already exists is kept) and returns its URL. The stack must have been
// launched with Options.SQS.
func (s *Stack) CreateQueue(ctx context.Context, name string) (string, error) {
	c := s.SQS()
	if c == nil {
		return "", fmt.Errorf("create queue %s: the stack has no SQS emulator (Options.SQS)", name)
	}
	out, err := c.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(name)})
	if err != nil {
		return "", fmt.Errorf("create queue %s: %w", name, err)
	}
	return aws.ToString(out.QueueUrl), nil
}
