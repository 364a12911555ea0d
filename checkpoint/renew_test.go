package checkpoint

import (
	"context"
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
	eventually(t, h.tm.wait, 20*time.Millisecond, "suspended", func() (bool, string) { return a.Suspended(st), "valid" })
	if ctx.Err() != nil {
		t.Fatalf("lease context ended at the local expiry: %v; suspended is not lost", context.Cause(ctx))
	}
	eventually(t, h.tm.wait, 20*time.Millisecond, "suspended gauge", func() (bool, string) { // the lease's timer sets it
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
