package fakeclock

import (
	"context"
	"sync"
	"time"
)

// Clock is a manual clock; see the package comment. Create it with New.
type Clock struct {
	// OnSleep, when set, runs after every sleep, with the duration slept.
	OnSleep func(d time.Duration)

	mu    sync.Mutex
	now   time.Time
	slept []time.Duration
}

// New returns a clock reading start.
func New(start time.Time) *Clock { return &Clock{now: start} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward by d without recording a sleep.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// Sleep returns ctx's error at once if ctx has ended; otherwise it moves the clock forward by d,
// records the sleep, runs OnSleep, and returns ctx's error (nil unless the hook ended it).
func (c *Clock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.slept = append(c.slept, d)
	hook := c.OnSleep
	c.mu.Unlock()
	if hook != nil {
		hook(d)
	}
	return ctx.Err()
}

// Sleeps returns every duration slept, in order.
func (c *Clock) Sleeps() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Duration(nil), c.slept...)
}

// Slept returns the total time slept.
func (c *Clock) Slept() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	var total time.Duration
	for _, d := range c.slept {
		total += d
	}
	return total
}
