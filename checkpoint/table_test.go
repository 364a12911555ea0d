package checkpoint

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"
	"go.uber.org/zap"
)

// flakyDescribe fails the first n DescribeTable calls with err.
type flakyDescribe struct {
	DynamoDBAPI
	mu    sync.Mutex
	n     int
	err   error
	calls int
}

func (f *flakyDescribe) DescribeTable(ctx context.Context, in *dynamodb.DescribeTableInput, o ...func(*dynamodb.Options)) (*dynamodb.DescribeTableOutput, error) {
	f.mu.Lock()
	f.calls++
	fail := f.calls <= f.n
	f.mu.Unlock()
	if fail {
		return nil, f.err
	}
	return f.DynamoDBAPI.DescribeTable(ctx, in, o...)
}

// A busy DynamoDB at startup (a DescribeTable that times out, throttling, a 500) must not fail
// Init: ensureTable retries within its wait. A client error fails at once.
func TestEnsureTableRetriesTransientErrors(t *testing.T) {
	timeout := fmt.Errorf("operation error DynamoDB: DescribeTable, https response error StatusCode: 0, canceled: %w", context.DeadlineExceeded)
	for _, tc := range []struct {
		name    string
		err     error
		n       int
		wantErr bool
	}{
		{"call timeout", timeout, 3, false},
		{"throttled", &types.LimitExceededException{Message: aws.String("slow down")}, 2, false},
		{"server error", &smithy.GenericAPIError{Code: "InternalServerError", Fault: smithy.FaultServer}, 2, false},
		{"access denied", &smithy.GenericAPIError{Code: "AccessDeniedException", Fault: smithy.FaultClient}, 1, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ddb := &flakyDescribe{DynamoDBAPI: newFakeDDB(), n: tc.n, err: tc.err}
			created, err := ensureTable(t.Context(), ddb, "leases", time.Second, 30*time.Second, zap.NewNop())
			if tc.wantErr {
				if err == nil || !errors.Is(err, tc.err) {
					t.Fatalf("ensureTable = %v, want %v at once", err, tc.err)
				}
				if ddb.calls != 1 {
					t.Fatalf("%d DescribeTable calls for a client error, want 1", ddb.calls)
				}
				return
			}
			if err != nil {
				t.Fatalf("ensureTable after %d transient failures: %v", tc.n, err)
			}
			if !created {
				t.Fatal("table not created")
			}
			if ddb.calls <= tc.n {
				t.Fatalf("%d DescribeTable calls, want more than the %d failures", ddb.calls, tc.n)
			}
		})
	}
}

// Transient failures that outlast the wait are reported with the last error.
func TestEnsureTableGivesUpAfterWait(t *testing.T) {
	ddb := &flakyDescribe{DynamoDBAPI: newFakeDDB(), n: 1 << 30, err: context.DeadlineExceeded}
	_, err := ensureTable(t.Context(), ddb, "leases", 50*time.Millisecond, 300*time.Millisecond, zap.NewNop())
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("ensureTable = %v, want the last call's error after the wait", err)
	}
}
