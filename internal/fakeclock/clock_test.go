package fakeclock

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

var start = time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC)

func TestSleepAdvancesAndRecords(t *testing.T) {
	c := New(start)
	var hooked []time.Duration
	c.OnSleep = func(d time.Duration) { hooked = append(hooked, d) }
	for _, d := range []time.Duration{time.Second, 3 * time.Millisecond} {
		if err := c.Sleep(t.Context(), d); err != nil {
			t.Fatal(err)
		}
	}
	c.Advance(time.Minute)
	if got, want := c.Now(), start.Add(time.Minute+time.Second+3*time.Millisecond); !got.Equal(want) {
		t.Fatalf("now %v, want %v", got, want)
	}
	if s := c.Sleeps(); len(s) != 2 || s[0] != time.Second || s[1] != 3*time.Millisecond {
		t.Fatalf("sleeps %v", s)
	}
	if c.Slept() != time.Second+3*time.Millisecond || len(hooked) != 2 {
		t.Fatalf("slept %v, hook ran %d times", c.Slept(), len(hooked))
	}
}

func TestSleepEndsWithContext(t *testing.T) {
	c := New(start)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := c.Sleep(ctx, time.Second); !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v", err)
	}
	if !c.Now().Equal(start) || len(c.Sleeps()) != 0 {
		t.Fatalf("an ended context still slept: now %v, sleeps %v", c.Now(), c.Sleeps())
	}

	// A hook that ends the context: the sleep is recorded and its error returned.
	ctx, cancel = context.WithCancel(t.Context())
	c.OnSleep = func(time.Duration) { cancel() }
	if err := c.Sleep(ctx, time.Second); !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v", err)
	}
	if len(c.Sleeps()) != 1 {
		t.Fatalf("sleeps %v", c.Sleeps())
	}
}

func TestConcurrentSleeps(t *testing.T) {
	c := New(start)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				if err := c.Sleep(t.Context(), time.Millisecond); err != nil {
					t.Error(err)
				}
				if c.Now().Before(start) {
					t.Error("the clock went back")
				}
			}
		})
	}
	wg.Wait()
	if c.Slept() != 800*time.Millisecond || !c.Now().Equal(start.Add(800*time.Millisecond)) {
		t.Fatalf("slept %v, now %v", c.Slept(), c.Now())
	}
}
