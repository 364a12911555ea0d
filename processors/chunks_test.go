package processors

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kinesis-events/pipeline/internal/poll"
)

// TestInChunks: every index is covered exactly once, at most dedupeCallsInFlight chunks run at once,
// the first error cancels the rest and is returned, and a single chunk needs no goroutine.
func TestInChunks(t *testing.T) {
	t.Run("bound and coverage", func(t *testing.T) {
		const n, size = 1000, 25
		var (
			inFlight, most atomic.Int64
			mu             sync.Mutex
			seen           = make([]int, n)
			gate           = make(chan struct{})
		)
		done := make(chan error, 1)
		go func() {
			done <- inChunks(t.Context(), n, size, func(_ context.Context, lo, hi int) error {
				cur := inFlight.Add(1)
				for {
					m := most.Load()
					if cur <= m || most.CompareAndSwap(m, cur) {
						break
					}
				}
				<-gate
				mu.Lock()
				for i := lo; i < hi; i++ {
					seen[i]++
				}
				mu.Unlock()
				inFlight.Add(-1)
				return nil
			})
		}()
		poll.Until(t, 10*time.Second, time.Millisecond, fmt.Sprintf("%d chunks in flight", dedupeCallsInFlight), func() (bool, string) {
			n := inFlight.Load()
			return n >= dedupeCallsInFlight, fmt.Sprintf("%d in flight", n)
		})
		close(gate)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if m := most.Load(); m > dedupeCallsInFlight {
			t.Fatalf("%d chunks in flight at once, bound %d", m, dedupeCallsInFlight)
		}
		for i, c := range seen {
			if c != 1 {
				t.Fatalf("index %d covered %d times", i, c)
			}
		}
	})
	t.Run("first error cancels the rest", func(t *testing.T) {
		boom := errors.New("boom")
		err := inChunks(t.Context(), 500, 25, func(ctx context.Context, lo, _ int) error {
			if lo == 0 {
				return boom
			}
			<-ctx.Done() // the others run until cancelled
			return ctx.Err()
		})
		if !errors.Is(err, boom) {
			t.Fatalf("err %v, want boom", err)
		}
	})
	t.Run("cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		err := inChunks(ctx, 500, 25, func(ctx context.Context, _, _ int) error { return ctx.Err() })
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err %v, want context.Canceled", err)
		}
	})
	t.Run("one chunk", func(t *testing.T) {
		calls := 0
		if err := inChunks(t.Context(), 25, 25, func(_ context.Context, lo, hi int) error {
			calls++
			if lo != 0 || hi != 25 {
				t.Errorf("chunk [%d, %d)", lo, hi)
			}
			return nil
		}); err != nil || calls != 1 {
			t.Fatalf("err %v after %d calls", err, calls)
		}
	})
}

// TestRecent: the level-1 cache keeps the last size ids added, forgets the oldest first, and a
// re-added id keeps its place with the new hash.
func TestRecent(t *testing.T) {
	r := newRecent(3)
	for i, id := range []string{"a", "b", "c"} {
		r.add(idHash(id), uint32(i))
	}
	r.add(idHash("a"), 10) // present: hash replaced, place kept
	if h, ok := r.get(idHash("a")); !ok || h != 10 {
		t.Fatalf("a = %d, %v", h, ok)
	}
	r.add(idHash("d"), 3) // evicts a, the first added
	r.add(idHash("e"), 4) // evicts b
	cases := []struct {
		id   string
		want bool
	}{{"a", false}, {"b", false}, {"c", true}, {"d", true}, {"e", true}}
	for _, c := range cases {
		if _, ok := r.get(idHash(c.id)); ok != c.want {
			t.Errorf("get(%s) present %v, want %v", c.id, ok, c.want)
		}
	}
	if len(r.m) != 3 {
		t.Fatalf("%d ids held, bound 3", len(r.m))
	}
	var last []uint32
	r.last(2, func(e idEntry) { last = append(last, e.hash) })
	if len(last) != 2 || last[0] != 3 || last[1] != 4 {
		t.Fatalf("last 2: %v, want the hashes of d and e, oldest first", last)
	}
}
