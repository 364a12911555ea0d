package checkpoint

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/kinesis-events/pipeline/internal/localstack"
	"github.com/kinesis-events/pipeline/internal/localstack/localstacktest"
)

// The contract suite against the real emulators on 127.0.0.1 (started per test by localstacktest;
// a missing emulator fails the test, run `make deps`).

func TestStoreContractDynalite(t *testing.T) {
	runStoreContract(t, emulatorBackend(localstack.Dynalite))
}

func TestStoreContractDynamoDBLocal(t *testing.T) {
	runStoreContract(t, emulatorBackend(localstack.DynamoDBLocal))
}

func emulatorBackend(flavor localstack.Flavor) func(t *testing.T) contractBackend {
	return func(t *testing.T) contractBackend {
		stack := localstacktest.Start(t, localstack.Options{DynamoDB: flavor})
		ddb := stack.DynamoDB()
		return contractBackend{ddb: ddb, deleteTable: func(ctx context.Context, table string) error {
			_, err := ddb.DeleteTable(ctx, &dynamodb.DeleteTableInput{TableName: aws.String(table)})
			return err
		}}
	}
}
