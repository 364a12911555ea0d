package checkpoint

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/prometheus/client_golang/prometheus/testutil"
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

// When no retry succeeds before the lease's local expiry, the lease is lost, not kept: the
// renewal ends and the lease context is cancelled by the expiry.
func TestRenewalGivesUpAtExpiry(t *testing.T) {
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
	if held && err == nil {
		t.Fatal("renewal that never succeeds reported a renewal")
	}
	select {
	case <-ctx.Done():
	case <-time.After(h.tm.wait):
		t.Fatal("lease context not cancelled after the lease expired without a renewal")
	}
	if !errors.Is(context.Cause(ctx), ErrLeaseLost) {
		t.Fatalf("cause %v, want ErrLeaseLost", context.Cause(ctx))
	}
	if held, err := a.Renew(h.ctx, st); held || err != nil {
		t.Fatalf("renewal after the expiry = %v, %v, want (false, nil): lost", held, err)
	}
}
