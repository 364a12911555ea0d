// Package poll waits for a condition in tests: it checks the condition at once and then at a fixed
// interval until it holds, the time bound passes, or the context ends, and says on failure what was
// awaited and the last state seen. It replaces sleeps that stand in for synchronisation: the
// condition is what the test waits for, the interval only how often it is looked at.
//
// Wait returns an error and suits goroutines and helpers that report their own failure; Until and
// True fail the test. The condition runs on the caller's goroutine, never concurrently with itself.
package poll

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

// ErrTimeout is returned (wrapped) by Wait when the time bound passed before the condition held.
var ErrTimeout = errors.New("condition not met in time")

// Wait calls cond at once and then every interval until it reports done, and returns nil then. It
// returns an error wrapping ErrTimeout when timeout passes first, or the context's cause when ctx
// ends first; the message names what and the last state cond described. cond's context is bounded
// by timeout, so a slow check cannot outlast it by much.
func Wait(ctx context.Context, timeout, interval time.Duration, what string, cond func(ctx context.Context) (done bool, state string)) error {
	if interval <= 0 {
		return fmt.Errorf("poll %s: interval %v: want > 0", what, interval)
	}
	start := time.Now()
	ctx, cancel := context.WithTimeoutCause(ctx, timeout, ErrTimeout)
	defer cancel()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		done, state := cond(ctx)
		if done {
			return nil
		}
		select {
		case <-ctx.Done():
			cause := context.Cause(ctx)
			if errors.Is(cause, ErrTimeout) {
				return fmt.Errorf("%s: %w within %v; last state: %s", what, ErrTimeout, timeout, orNone(state))
			}
			return fmt.Errorf("%s: stopped waiting after %v (%w); last state: %s", what, time.Since(start).Round(time.Millisecond), cause, orNone(state))
		case <-tick.C:
		}
	}
}

// Until is Wait under t's context that fails t (Fatalf) when the condition does not hold in time.
// It must be called from the test's goroutine.
func Until(t testing.TB, timeout, interval time.Duration, what string, cond func() (done bool, state string)) {
	t.Helper()
	if err := Wait(t.Context(), timeout, interval, what, func(context.Context) (bool, string) { return cond() }); err != nil {
		t.Fatal(err)
	}
}

// True is Until for a condition with no state worth reporting.
func True(t testing.TB, timeout, interval time.Duration, what string, cond func() bool) {
	t.Helper()
	Until(t, timeout, interval, what, func() (bool, string) { return cond(), "" })
}

func orNone(state string) string {
	if state == "" {
		return "(none reported)"
	}
	return state
}
