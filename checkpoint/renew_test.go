package checkpoint

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/kinesis-events/pipeline/internal/poll"
)

// slowUpdates fails the next n UpdateItem calls the way a call timeout does, without writing.
type slowUpdates struct {
	DynamoDBAPI
	mu sync.Mutex
	n  int
}

func (s *slowUpdates) fail(n int) {
	s.mu.Lock()
	s.n = n
	s.mu.Unlock()
}

func (s *slowUpdates) UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, o ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	s.mu.Lock()
	fail := s.n > 0
	if fail {
		s.n--
	}
	s.mu.Unlock()
	if fail {
		return nil, fmt.Errorf("operation error DynamoDB: UpdateItem, canceled: %w", context.DeadlineExceeded)
	}
	return s.DynamoDBAPI.UpdateItem(ctx, in, o...)
}

// A slow DynamoDB must not cost the lease while it is still valid: a renewal whose calls time out
// is retried within the lease's validity instead of waiting for the KCL's next renewal tick.
func TestRenewalRetriesWithinValidity(t *testing.T) {
	h := fakeHarness(t)
	h.kin.set(shardIDs(1)...)
	slow := &slowUpdates{DynamoDBAPI: h.raw}
	h.ddb.inner = slow
	a := h.store("a")
	st := "shardId-000000000000"
	if err := take(h.ctx, a, st); err != nil {
		t.Fatal(err)
	}
	before := h.row(st).LeaseTimeout
	slow.fail(3)
	if held, err := a.Renew(h.ctx, st); !held || err != nil {
		t.Fatalf("renewal after 3 timed-out calls = %v, %v, want renewed (true, nil)", held, err)
	}
	if after := h.row(st).LeaseTimeout; !after.After(before) {
		t.Fatalf("lease timeout %v not extended past %v: the retries did not renew", after, before)
	}
	if got := testutil.ToFloat64(a.m.renewals.WithLabelValues("failed")); got != 3 {
		t.Fatalf("failed renewal attempts = %v, want 3", got)
	}
	if r := h.row(st); r.Counter != 2 || r.Owner != "a" {
		t.Fatalf("row %+v, want counter 2 (one renewal written) owned by a", r)
	}
	if a.LeaseContext(st).Err() != nil {
		t.Fatal("lease context cancelled although a retry renewed the lease")
	}
}

// When no retry succeeds before the lease's local expiry, the lease is suspended, not lost: its
// contexts stay live, WaitValid blocks, and the next renewal that lands (a fenced write: nobody took
// the lease meanwhile) makes it valid again.
func TestRenewalFailingPastExpirySuspends(t *testing.T) {
	h := fakeHarness(t)
	h.kin.set(shardIDs(1)...)
	slow := &slowUpdates{DynamoDBAPI: h.raw}
	h.ddb.inner = slow
	const lease = 1500 * time.Millisecond
	a := h.store("a", func(c *Config) { c.LeaseDuration, c.CallTimeout, c.HandOffTimeout = lease, 500*time.Millisecond, lease })
	st := "shardId-000000000000"
	if err := take(h.ctx, a, st); err != nil {
		t.Fatal(err)
	}
	ctx := a.LeaseContext(st)
	slow.fail(1 << 30)
	held, err := a.Renew(h.ctx, st)
	if !held || err == nil {
		t.Fatalf("renewal that never lands = %v, %v, want (true, its error): still held", held, err)
	}
	poll.Until(t, h.tm.wait, 20*time.Millisecond, "suspended", func() (bool, string) { return a.Suspended(st), "valid" })
	if ctx.Err() != nil {
		t.Fatalf("lease context ended at the local expiry: %v; suspended is not lost", context.Cause(ctx))
	}
	poll.Until(t, h.tm.wait, 20*time.Millisecond, "suspended gauge", func() (bool, string) { // the lease's timer sets it
		got := testutil.ToFloat64(a.m.suspended)
		return got == 1, fmt.Sprint(got)
	})
	if held, err := a.Renew(h.ctx, st); !held || err == nil {
		t.Fatalf("renewal of a suspended lease while DynamoDB fails = %v, %v, want (true, its error)", held, err)
	}
	resumed := make(chan error, 1)
	go func() { resumed <- a.WaitValid(h.ctx, st) }()
	select {
	case err := <-resumed:
		t.Fatalf("WaitValid returned %v while suspended", err)
	case <-time.After(100 * time.Millisecond): // it blocks; the renewal below must wake it
	}
	slow.fail(0)
	if held, err := a.Renew(h.ctx, st); !held || err != nil {
		t.Fatalf("renewal of a suspended lease once DynamoDB answers = %v, %v, want (true, nil)", held, err)
	}
	select {
	case err := <-resumed:
		if err != nil {
			t.Fatalf("WaitValid after the renewal = %v, want nil", err)
		}
	case <-time.After(h.tm.wait):
		t.Fatal("WaitValid still blocked after a renewal landed")
	}
	if a.Suspended(st) || ctx.Err() != nil || testutil.ToFloat64(a.m.suspended) != 0 {
		t.Fatalf("after the renewal: suspended %v, context %v, gauge %v", a.Suspended(st), context.Cause(ctx), testutil.ToFloat64(a.m.suspended))
	}
	if r := h.row(st); r.Owner != "a" || r.Counter != 2 {
		t.Fatalf("row %+v, want a's lease renewed once", r)
	}
}

// failUpdates fails the next n UpdateItem calls with err, without writing.
type failUpdates struct {
	DynamoDBAPI
	mu  sync.Mutex
	n   int
	err error
}

func (f *failUpdates) UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, o ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	f.mu.Lock()
	fail := f.n > 0
	if fail {
		f.n--
	}
	f.mu.Unlock()
	if fail {
		return nil, f.err
	}
	return f.DynamoDBAPI.UpdateItem(ctx, in, o...)
}

// A checkpoint write that fails transiently (a call timeout, throttling, a 5xx) is retried while
// the lease is ours, instead of failing the caller (whose shard used to stop for good on one such
// error); an error the request itself causes is returned at once.
func TestCheckpointRetriesTransientErrors(t *testing.T) {
	timeout := fmt.Errorf("operation error DynamoDB: UpdateItem, https response error StatusCode: 0, canceled: %w", context.DeadlineExceeded)
	for _, tc := range []struct {
		name    string
		err     error
		n       int
		wantErr bool
	}{
		{"call timeout", timeout, 3, false},
		{"throttled", &types.ProvisionedThroughputExceededException{Message: aws.String("slow down")}, 2, false},
		{"request limit", &smithy.GenericAPIError{Code: "RequestLimitExceeded", Fault: smithy.FaultClient}, 2, false},
		{"server error", &smithy.GenericAPIError{Code: "InternalServerError", Fault: smithy.FaultServer}, 2, false},
		{"validation error", &smithy.GenericAPIError{Code: "ValidationException", Fault: smithy.FaultClient}, 1, true},
		// As the SDK builds an error it does not model: no fault, the HTTP status says whose it is.
		{"access denied", sdkError(400, "AccessDeniedException"), 1, true},
		{"unmodeled validation error", sdkError(400, "ValidationException"), 1, true},
		{"unmodeled throttle", sdkError(400, "ThrottlingException"), 2, false},
		{"unmodeled 5xx", sdkError(503, "ServiceUnavailable"), 2, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := fakeHarness(t)
			h.kin.set(shardIDs(1)...)
			f := &failUpdates{DynamoDBAPI: h.raw, err: tc.err}
			h.ddb.inner = f
			a := h.store("a")
			st := "shardId-000000000000"
			if err := take(h.ctx, a, st); err != nil {
				t.Fatal(err)
			}
			f.mu.Lock()
			f.n = tc.n
			f.mu.Unlock()
			ok, err := a.Checkpoint(h.ctx, st, "77")
			if tc.wantErr {
				if ok || !errors.Is(err, tc.err) {
					t.Fatalf("Checkpoint = %v, %v, want the request's error at once", ok, err)
				}
				if r := h.row(st); r.Checkpoint != "" || a.LeaseContext(st).Err() != nil {
					t.Fatalf("after a refused request: row %+v, lease context %v", r, context.Cause(a.LeaseContext(st)))
				}
				return
			}
			if !ok || err != nil {
				t.Fatalf("Checkpoint after %d transient failures = %v, %v, want (true, nil)", tc.n, ok, err)
			}
			if r := h.row(st); r.Checkpoint != "77" || r.Owner != "a" {
				t.Fatalf("row %+v", r)
			}
			if got := testutil.ToFloat64(a.m.checkpoints.WithLabelValues("retried")); got != float64(tc.n) {
				t.Fatalf("retried checkpoint attempts = %v, want %d", got, tc.n)
			}
		})
	}
	t.Run("the caller gives up", func(t *testing.T) {
		h := fakeHarness(t)
		h.kin.set(shardIDs(1)...)
		f := &failUpdates{DynamoDBAPI: h.raw, err: timeout}
		h.ddb.inner = f
		a := h.store("a")
		st := "shardId-000000000000"
		if err := take(h.ctx, a, st); err != nil {
			t.Fatal(err)
		}
		f.mu.Lock()
		f.n = 1 << 30
		f.mu.Unlock()
		ctx, cancel := context.WithTimeout(h.ctx, 500*time.Millisecond)
		defer cancel()
		if ok, err := a.Checkpoint(ctx, st, "77"); ok || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Checkpoint with the caller's deadline passing = %v, %v, want its deadline", ok, err)
		}
	})
}

// sdkError is a failed UpdateItem as the AWS SDK returns an error it does not model: a generic API
// error without a fault, inside the HTTP response error that carries the status.
func sdkError(status int, code string) error {
	return &smithy.OperationError{ServiceID: "DynamoDB", OperationName: "UpdateItem", Err: &awshttp.ResponseError{
		ResponseError: &smithyhttp.ResponseError{
			Response: &smithyhttp.Response{Response: &http.Response{StatusCode: status}},
			Err:      &smithy.GenericAPIError{Code: code, Message: "refused"},
		},
		RequestID: "test",
	}}
}

// clockedFailures fails every UpdateItem that writes a checkpoint with err, moving the clock by
// step each time (a call that takes that long to fail).
type clockedFailures struct {
	DynamoDBAPI
	clk  *manualClock
	step time.Duration
	err  error
}

func (f *clockedFailures) UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, o ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	for _, name := range in.ExpressionAttributeNames {
		if name == attrCheckpoint {
			f.clk.advance(f.step)
			return nil, f.err
		}
	}
	return f.DynamoDBAPI.UpdateItem(ctx, in, o...)
}

// A checkpoint write that keeps failing transiently while the lease is held (renewals land) is
// retried for CheckpointRetryBudget, then refused with ErrCheckpointStuck: the lease alone would
// never end the retries. The lease is still held: the caller decides (the processor abandons it).
func TestCheckpointRetryBudget(t *testing.T) {
	t.Parallel()
	h := fakeHarness(t)
	h.kin.set(shardIDs(1)...)
	clk := &manualClock{}
	server := &smithy.GenericAPIError{Code: "InternalServerError", Fault: smithy.FaultServer}
	h.ddb.inner = &clockedFailures{DynamoDBAPI: h.raw, clk: clk, step: 5 * time.Second, err: server}
	budget := 3 * h.tm.lease
	a := h.store("a", func(c *Config) { c.Now = clk.Now; c.CheckpointRetryBudget = budget })
	st := "shardId-000000000000"
	if err := take(h.ctx, a, st); err != nil {
		t.Fatal(err)
	}
	ok, err := a.Checkpoint(h.ctx, st, "77")
	if ok || !errors.Is(err, ErrCheckpointStuck) || !errors.Is(err, server) {
		t.Fatalf("Checkpoint failing for good = %v, %v, want ErrCheckpointStuck with the last failure", ok, err)
	}
	// Measured from the first failure, the attempts fail 0, 5, 10, 15 s into the trouble (each
	// retried) and 20 s into it, past the 18 s budget: given up.
	if got := testutil.ToFloat64(a.m.checkpoints.WithLabelValues("retried")); got != 4 {
		t.Errorf("retried = %v, want 4", got)
	}
	if got := testutil.ToFloat64(a.m.checkpoints.WithLabelValues("gave_up")); got != 1 {
		t.Errorf("gave_up = %v, want 1", got)
	}
	if !a.Holds(st) || a.LeaseContext(st).Err() != nil {
		t.Fatalf("the lease must still be held after the budget ran out (the caller abandons it): holds %v, context %v",
			a.Holds(st), context.Cause(a.LeaseContext(st)))
	}
	if r := h.row(st); r.Checkpoint != "" || r.Owner != "a" {
		t.Fatalf("row %+v", r)
	}
}
