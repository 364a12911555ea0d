package checkpoint

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"go.uber.org/zap"

	"github.com/kinesis-events/pipeline/internal/retry"
)

// ensureTable creates the lease table if it is missing (on-demand billing, hash key ShardID) and
// waits until it is ACTIVE, within wait. callTimeout bounds each call. Transient failures (a call
// that timed out, throttling, a server error) are retried with backoff until wait runs out: a busy
// DynamoDB at startup must not stop the worker. A client error (access denied, validation) is
// returned at once.
func ensureTable(ctx context.Context, ddb DynamoDBAPI, table string, callTimeout, wait time.Duration, log *zap.Logger) (created bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	b := retry.Policy{Initial: 50 * time.Millisecond, Max: time.Second}.Start()
	var status types.TableStatus
	for {
		status, err = describeTable(ctx, ddb, table, callTimeout)
		switch {
		case err == nil && status == types.TableStatusActive:
			return created, nil
		case isTableMissing(err):
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
				err = nil // another worker is creating it right now
			case !transient(err):
				return false, fmt.Errorf("create table %s: %w", table, err)
			default:
				// A create that timed out may have landed: the next describe tells.
				err = fmt.Errorf("create table %s: %w", table, err)
				log.Warn("creating the lease table failed; retrying", zap.String("table", table), zap.Error(err))
			}
		case err != nil && !transient(err):
			return created, err
		case err != nil:
			log.Warn("describing the lease table failed; retrying", zap.String("table", table), zap.Error(err))
		}
		if werr := b.Wait(ctx); werr != nil { // the policy is unbounded: ctx (wait) bounds it
			if err != nil {
				return created, fmt.Errorf("table %s not ACTIVE within %v: %w", table, wait, err)
			}
			return created, fmt.Errorf("table %s not ACTIVE within %v (status %q): %w", table, wait, status, werr)
		}
	}
}

// transient reports whether a failed DynamoDB call may succeed when retried: anything but an
// error the service attributes to the request itself, throttling excepted. An error the SDK does
// not model (AccessDeniedException, ValidationException, UnrecognizedClientException, ...) carries
// no fault: its HTTP status tells, a 4xx being the request's.
func transient(err error) bool {
	var api smithy.APIError
	if !errors.As(err, &api) {
		return true // timeouts, connection errors
	}
	switch api.ErrorCode() {
	case "ThrottlingException", "ProvisionedThroughputExceededException", "RequestLimitExceeded", "LimitExceededException":
		return true
	}
	switch api.ErrorFault() {
	case smithy.FaultClient:
		return false
	case smithy.FaultServer:
		return true
	}
	var resp *smithyhttp.ResponseError
	if errors.As(err, &resp) {
		status := resp.HTTPStatusCode()
		return status < 400 || status >= 500 || status == http.StatusTooManyRequests
	}
	return true
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
