package retry

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// fakeClock advances only when the policy sleeps, so tests need no real waiting.
type fakeClock struct {
	now    time.Time
	slept  []time.Duration
	cancel context.CancelFunc // cancels the operation's context after the nth sleep, when set
	after  int
}

func (c *fakeClock) Now() time.Time { return c.now }

func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := context.Cause(ctx); err != nil {
		return err
	}
	c.slept = append(c.slept, d)
	c.now = c.now.Add(d)
	if c.cancel != nil && len(c.slept) == c.after {
		c.cancel()
	}
	return nil
}

func policy(c *fakeClock, p Policy) Policy {
	p.Now, p.Sleep = c.Now, c.Sleep
	return p
}

func TestDelaysGrowWithinJitterAndCap(t *testing.T) {
	c := &fakeClock{now: time.Unix(0, 0)}
	b := policy(c, Policy{Initial: 100 * time.Millisecond, Max: time.Second, Jitter: 0.5}).Start()
	want := []time.Duration{100, 200, 400, 800, 1000, 1000}
	for i, base := range want {
		d, err := b.Next()
		if err != nil {
			t.Fatalf("attempt %d: %v", i, err)
		}
		lo, hi := base*time.Millisecond/2, base*time.Millisecond*3/2+1
		if d < lo || d > hi {
			t.Errorf("attempt %d: delay %v outside [%v, %v]", i, d, lo, hi)
		}
	}
	b.Reset()
	if d, _ := b.Next(); d > 150*time.Millisecond+1 {
		t.Errorf("after Reset: delay %v, want about the initial 100ms", d)
	}
}

func TestNoJitterIsExact(t *testing.T) {
	c := &fakeClock{now: time.Unix(0, 0)}
	b := policy(c, Policy{Initial: 10 * time.Millisecond, Max: 40 * time.Millisecond, Jitter: -1}).Start()
	for i, want := range []time.Duration{10, 20, 40, 40} {
		if d, _ := b.Next(); d != want*time.Millisecond {
			t.Errorf("attempt %d: %v, want %v", i, d, want*time.Millisecond)
		}
	}
}

func TestBounds(t *testing.T) {
	boom := errors.New("boom")
	tests := []struct {
		name  string
		p     Policy
		calls int
	}{
		{"max attempts counts the first", Policy{MaxAttempts: 3}, 3},
		{"max elapsed on the policy's clock", Policy{Initial: time.Second, Max: time.Second, Jitter: -1, MaxElapsed: 2500 * time.Millisecond}, 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := &fakeClock{now: time.Unix(0, 0)}
			calls := 0
			err := Do(context.Background(), policy(c, tc.p), func(context.Context) error { calls++; return boom }, nil)
			if !errors.Is(err, boom) || !errors.Is(err, ErrExhausted) {
				t.Fatalf("err = %v, want the last error and ErrExhausted", err)
			}
			if calls != tc.calls {
				t.Errorf("calls = %d, want %d", calls, tc.calls)
			}
		})
	}
}

func TestDoStopsOnSuccessPermanentAndContext(t *testing.T) {
	boom := errors.New("boom")
	t.Run("success after failures", func(t *testing.T) {
		c := &fakeClock{now: time.Unix(0, 0)}
		calls, notified := 0, 0
		err := Do(context.Background(), policy(c, Policy{}), func(context.Context) error {
			calls++
			if calls < 3 {
				return boom
			}
			return nil
		}, func(err error, attempts int) {
			notified++
			if attempts != notified || !errors.Is(err, boom) {
				t.Errorf("notify(%v, %d) at call %d", err, attempts, notified)
			}
		})
		if err != nil || calls != 3 || notified != 2 || len(c.slept) != 2 {
			t.Fatalf("err=%v calls=%d notified=%d sleeps=%d", err, calls, notified, len(c.slept))
		}
	})
	t.Run("permanent", func(t *testing.T) {
		c := &fakeClock{now: time.Unix(0, 0)}
		calls := 0
		err := Do(context.Background(), policy(c, Policy{}), func(context.Context) error { calls++; return Permanent(boom) }, nil)
		if err != boom || calls != 1 || len(c.slept) != 0 {
			t.Fatalf("err=%v calls=%d sleeps=%d", err, calls, len(c.slept))
		}
	})
	t.Run("context ends", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		c := &fakeClock{now: time.Unix(0, 0), cancel: cancel, after: 2}
		calls := 0
		err := Do(ctx, policy(c, Policy{}), func(context.Context) error { calls++; return boom }, nil)
		if !errors.Is(err, context.Canceled) || calls != 2 {
			t.Fatalf("err=%v calls=%d", err, calls)
		}
	})
}

func TestSleepEndsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancelCause(context.Background())
	stop := errors.New("stop")
	cancel(stop)
	if err := Sleep(ctx, time.Hour); err != stop {
		t.Fatalf("Sleep = %v, want the cause", err)
	}
	if err := Sleep(context.Background(), time.Millisecond); err != nil {
		t.Fatalf("Sleep = %v", err)
	}
}

func TestValidate(t *testing.T) {
	if err := (Policy{}).Validate(); err != nil {
		t.Fatalf("zero policy: %v", err)
	}
	err := Policy{Initial: 2 * time.Second, Max: time.Second, Multiplier: 0.5, Jitter: 1, MaxAttempts: -1}.Validate()
	if err == nil {
		t.Fatal("want errors")
	}
	for _, want := range []string{"Initial", "Multiplier", "Jitter", "MaxAttempts"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
}
