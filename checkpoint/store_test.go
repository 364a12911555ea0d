package checkpoint

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// Idle keep-alive connections of the SDK's HTTP client to the emulators.
		goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
	)
}

func TestStoreContractFake(t *testing.T) {
	t.Parallel()
	runStoreContract(t, func(t *testing.T) contractBackend {
		f := newFakeDDB()
		return contractBackend{ddb: f, deleteTable: func(ctx context.Context, table string) error {
			_, err := f.DeleteTable(ctx, &dynamodb.DeleteTableInput{TableName: aws.String(table)})
			return err
		}}
	})
}
