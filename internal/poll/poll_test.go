package poll

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestWaitReturnsOnceTheConditionHolds(t *testing.T) {
	var calls atomic.Int32
	err := Wait(t.Context(), 10*time.Second, time.Millisecond, "third call", func(context.Context) (bool, string) {
		return calls.Add(1) >= 3, "not yet"
	})
	if err != nil {
		t.Fatalf("Wait = %v, want nil", err)
	}
	if n := calls.Load(); n != 3 {
		t.Fatalf("cond called %d times, want 3 (stop as soon as it holds)", n)
	}
}

func TestWaitChecksAtOnce(t *testing.T) {
	// An interval far beyond the timeout: only the first, immediate check can succeed.
	if err := Wait(t.Context(), time.Second, time.Hour, "immediate", func(context.Context) (bool, string) { return true, "" }); err != nil {
		t.Fatalf("Wait = %v, want nil from the first check", err)
	}
}

func TestWaitTimeoutNamesWhatAndLastState(t *testing.T) {
	n := 0
	err := Wait(t.Context(), 30*time.Millisecond, time.Millisecond, "the answer", func(ctx context.Context) (bool, string) {
		n++
		if ctx.Err() != nil && n == 1 {
			t.Error("cond's context ended before the first check")
		}
		return false, "checked " + strings.Repeat("x", min(n, 3))
	})
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("Wait = %v, want ErrTimeout", err)
	}
	for _, want := range []string{"the answer", "30ms", "last state: checked xxx"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

func TestWaitStopsWithItsContext(t *testing.T) {
	ctx, cancel := context.WithCancelCause(t.Context())
	cause := errors.New("test over")
	err := Wait(ctx, time.Minute, time.Millisecond, "never", func(context.Context) (bool, string) {
		cancel(cause)
		return false, ""
	})
	if !errors.Is(err, cause) || errors.Is(err, ErrTimeout) {
		t.Fatalf("Wait = %v, want the context's cause and not a timeout", err)
	}
	if !strings.Contains(err.Error(), "(none reported)") {
		t.Errorf("error %q: an empty state must read as none reported", err)
	}
}

func TestWaitRejectsAZeroInterval(t *testing.T) {
	if err := Wait(t.Context(), time.Second, 0, "x", func(context.Context) (bool, string) { return true, "" }); err == nil {
		t.Fatal("Wait with interval 0 = nil, want an error")
	}
}

// fatalTB records Fatal instead of ending the test, so Until's failure path can be checked.
type fatalTB struct {
	testing.TB
	msg string
}

func (f *fatalTB) Helper() {}

func (f *fatalTB) Fatal(args ...any) { f.msg = fmt.Sprint(args...) }

func TestUntilFailsTheTest(t *testing.T) {
	f := &fatalTB{TB: t}
	True(f, 20*time.Millisecond, time.Millisecond, "a flag", func() bool { return false })
	if !strings.Contains(f.msg, "a flag") || !strings.Contains(f.msg, "condition not met in time") {
		t.Fatalf("Until reported %q, want what was awaited and the timeout", f.msg)
	}
	f.msg = ""
	True(f, time.Second, time.Millisecond, "a set flag", func() bool { return true })
	if f.msg != "" {
		t.Fatalf("Until failed a condition that held: %q", f.msg)
	}
}
