package checkpoint

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"go.uber.org/zap"
)

// ensureTable creates the lease table if it is missing (on-demand billing, hash key ShardID) and
// waits until it is ACTIVE, within wait. callTimeout bounds each call.
func ensureTable(ctx context.Context, ddb DynamoDBAPI, table string, callTimeout, wait time.Duration, log *zap.Logger) (created bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	status, err := describeTable(ctx, ddb, table, callTimeout)
	if errors.As(err, new(*types.ResourceNotFoundException)) {
		cctx, ccancel := context.WithTimeout(ctx, callTimeout)
		_, err = ddb.CreateTable(cctx, &dynamodb.CreateTableInput{
			TableName:            aws.String(table),
			BillingMode:          types.BillingModePayPerRequest,
			AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String(attrShardID), AttributeType: types.ScalarAttributeTypeS}},
			KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String(attrShardID), KeyType: types.KeyTypeHash}},
		})
		ccancel()
		switch {
		case err == nil:
			created = true
			log.Info("created lease table", zap.String("table", table))
		case errors.As(err, new(*types.ResourceInUseException)):
			// Another worker is creating it right now.
		default:
			return false, fmt.Errorf("create table %s: %w", table, err)
		}
		status = ""
	} else if err != nil {
		return false, err
	}
	delay := 50 * time.Millisecond
	for status != types.TableStatusActive {
		status, err = describeTable(ctx, ddb, table, callTimeout)
		if err != nil && !errors.As(err, new(*types.ResourceNotFoundException)) {
			return created, err
		}
		if status == types.TableStatusActive {
			break
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return created, fmt.Errorf("table %s not ACTIVE within %v (status %q): %w", table, wait, status, ctx.Err())
		case <-t.C:
		}
		delay = min(2*delay, time.Second)
	}
	return created, nil
}

func describeTable(ctx context.Context, ddb DynamoDBAPI, table string, callTimeout time.Duration) (types.TableStatus, error) {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	out, err := ddb.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(table)})
	if err != nil {
		return "", fmt.Errorf("describe table %s: %w", table, err)
	}
	if out.Table == nil {
		return "", fmt.Errorf("describe table %s: empty answer", table)
	}
	return out.Table.TableStatus, nil
}

func isTableMissing(err error) bool {
	return errors.As(err, new(*types.ResourceNotFoundException))
}

func isConditionFailed(err error) bool {
	return errors.As(err, new(*types.ConditionalCheckFailedException))
}
