package checkpoint

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"go.uber.org/zap"

	"github.com/kinesis-events/pipeline/internal/localstack"
	"github.com/kinesis-events/pipeline/internal/localstack/localstacktest"
)

// The contract suite against the real emulators on 127.0.0.1 (started per test by localstacktest;
// a missing emulator fails the test, run `make deps`).

// The emulator suites, like the fake's, run in parallel (and so do their subtests, see TestMain):
// most of their time is spent waiting for leases to expire; run one after the other they would
// take minutes.

func TestStoreContractDynalite(t *testing.T) {
	t.Parallel()
	runStoreContract(t, emulatorBackend(localstack.Dynalite))
}

func TestStoreContractDynamoDBLocal(t *testing.T) {
	t.Parallel()
	runStoreContract(t, emulatorBackend(localstack.DynamoDBLocal))
}

func emulatorBackend(flavor localstack.Flavor) func(t *testing.T) contractBackend {
	return func(t *testing.T) contractBackend {
		// Starting a JVM on a loaded 2-core machine can take minutes; that is not under test.
		stack := localstacktest.Start(t, localstack.Options{DynamoDB: flavor, StartTimeout: 3 * time.Minute})
		ddb := stack.DynamoDB()
		warmUp(t, ddb)
		return contractBackend{ddb: ddb, tm: emulatorTiming, deleteTable: func(ctx context.Context, table string) error {
			_, err := ddb.DeleteTable(ctx, &dynamodb.DeleteTableInput{TableName: aws.String(table)})
			return err
		}}
	}
}

// warmUp runs the store's kinds of calls once with generous timeouts, so the first subtests do not
// measure a cold JVM (DynamoDB Local compiles its request paths on first use).
func warmUp(t *testing.T, ddb *dynamodb.Client) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*emulatorTiming.wait)
	defer cancel()
	const table = "warm-up"
	if _, err := ensureTable(ctx, ddb, table, 20*time.Second, 40*time.Second, zap.NewNop()); err != nil {
		t.Fatalf("warm up: %v", err)
	}
	for i := range 20 {
		u := &update{}
		u.notExists(attrOwner)
		u.set(attrCounter, nv(int64(i)))
		id := fmt.Sprint(i % 4)
		if _, err := ddb.UpdateItem(ctx, &dynamodb.UpdateItemInput{TableName: aws.String(table), Key: keyOf(id),
			UpdateExpression: aws.String(u.expression()), ConditionExpression: aws.String(u.condition()),
			ExpressionAttributeNames: u.names, ExpressionAttributeValues: u.values}); err != nil {
			t.Fatalf("warm up: %v", err)
		}
		if _, err := ddb.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(table), Key: keyOf(id), ConsistentRead: aws.Bool(true)}); err != nil {
			t.Fatalf("warm up: %v", err)
		}
		if _, err := scanRows(ctx, ddb, table, 20*time.Second); err != nil {
			t.Fatalf("warm up: %v", err)
		}
	}
	if _, err := ddb.DeleteTable(ctx, &dynamodb.DeleteTableInput{TableName: aws.String(table)}); err != nil {
		t.Fatalf("warm up: %v", err)
	}
}
