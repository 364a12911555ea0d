// Package retry is the project's one backoff: a bounded, jittered exponential delay between
// attempts (the policy of github.com/cenkalti/backoff/v5), waits that end with the context, a clock
// and a sleep that tests replace, and a reason when it gives up. Every retry loop of the pipeline
// (Kinesis writes, dedupe store calls, lease writes, table recreation, DLQ replay) uses it.
//
// A Backoff is one operation's retry state and is not safe for concurrent use; a Policy is a value
// and may be shared.
package retry

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cenkalti/backoff/v5"
)

// ErrExhausted is returned (wrapped, with the bound that was reached) by Backoff.Wait and Do when
// the policy's MaxAttempts or MaxElapsed is used up.
var ErrExhausted = errors.New("retries exhausted")

// Policy is a bounded exponential backoff. Zero fields take the defaults documented per field.
type Policy struct {
	// Initial is the first delay (before jitter). Default 50ms.
	Initial time.Duration
	// Max caps every delay (before jitter). Default 5s.
	Max time.Duration
	// Multiplier grows the delay after each attempt. Default 2.
	Multiplier float64
	// Jitter is the randomization factor: each delay is drawn from [d*(1-Jitter), d*(1+Jitter)].
	// Default 0.5; negative means none.
	Jitter float64
	// MaxAttempts bounds the attempts (the first included); 0 means unbounded.
	MaxAttempts int
	// MaxElapsed bounds the time from the first attempt to the start of the next one; 0 means
	// unbounded.
	MaxElapsed time.Duration
	// Now is the clock MaxElapsed is measured on. Default time.Now.
	Now func() time.Time
	// Sleep waits d or until ctx ends, returning ctx's cause then. Default Sleep.
	Sleep func(ctx context.Context, d time.Duration) error
}

// Validate reports every field that cannot work.
func (p Policy) Validate() error {
	var errs []error
	if p.Initial < 0 || p.Max < 0 || p.MaxElapsed < 0 {
		errs = append(errs, errors.New("retry: durations must not be negative"))
	}
	if p.Initial > 0 && p.Max > 0 && p.Initial > p.Max {
		errs = append(errs, fmt.Errorf("retry: Initial %v above Max %v", p.Initial, p.Max))
	}
	if p.Multiplier != 0 && p.Multiplier < 1 {
		errs = append(errs, fmt.Errorf("retry: Multiplier %v below 1", p.Multiplier))
	}
	if p.Jitter >= 1 {
		errs = append(errs, fmt.Errorf("retry: Jitter %v must be below 1", p.Jitter))
	}
	if p.MaxAttempts < 0 {
		errs = append(errs, fmt.Errorf("retry: MaxAttempts %d is negative", p.MaxAttempts))
	}
	return errors.Join(errs...)
}

func (p Policy) withDefaults() Policy {
	if p.Initial == 0 {
		p.Initial = 50 * time.Millisecond
	}
	if p.Max == 0 {
		p.Max = max(5*time.Second, p.Initial)
	}
	if p.Multiplier == 0 {
		p.Multiplier = 2
	}
	switch {
	case p.Jitter == 0:
		p.Jitter = 0.5
	case p.Jitter < 0:
		p.Jitter = 0
	}
	if p.Now == nil {
		p.Now = time.Now
	}
	if p.Sleep == nil {
		p.Sleep = Sleep
	}
	return p
}

// Start returns the retry state of one operation whose first attempt starts now.
func (p Policy) Start() *Backoff {
	p = p.withDefaults()
	b := &Backoff{p: p, exp: &backoff.ExponentialBackOff{
		InitialInterval:     p.Initial,
		RandomizationFactor: p.Jitter,
		Multiplier:          p.Multiplier,
		MaxInterval:         p.Max,
	}}
	b.Reset()
	return b
}

// Backoff is the retry state of one operation.
type Backoff struct {
	p       Policy
	exp     *backoff.ExponentialBackOff
	start   time.Time
	attempt int // failed attempts since the start or the last Reset
}

// Reset starts the delays over, as after progress: the next Wait waits Initial again, and the
// attempt and elapsed bounds count from now.
func (b *Backoff) Reset() {
	b.exp.Reset()
	b.start = b.p.Now()
	b.attempt = 0
}

// Attempts returns how many times Wait has been called since the start or the last Reset: the
// failed attempts so far.
func (b *Backoff) Attempts() int { return b.attempt }

// Elapsed returns the time since the start or the last Reset.
func (b *Backoff) Elapsed() time.Duration { return b.p.Now().Sub(b.start) }

// Next returns the delay Wait would sleep next and advances the state, without sleeping; for
// callers that schedule the retry themselves. It returns an ErrExhausted error instead when a
// bound is reached.
func (b *Backoff) Next() (time.Duration, error) {
	b.attempt++
	if b.p.MaxAttempts > 0 && b.attempt >= b.p.MaxAttempts {
		return 0, fmt.Errorf("%w: %d attempts", ErrExhausted, b.attempt)
	}
	d := b.exp.NextBackOff()
	if b.p.MaxElapsed > 0 && b.Elapsed()+d > b.p.MaxElapsed {
		return 0, fmt.Errorf("%w: %v elapsed, bound %v", ErrExhausted, b.Elapsed().Round(time.Millisecond), b.p.MaxElapsed)
	}
	return d, nil
}

// Wait sleeps before the next attempt. It returns an ErrExhausted error, without sleeping, when a
// bound is reached, and ctx's cause when ctx ends first.
func (b *Backoff) Wait(ctx context.Context) error {
	d, err := b.Next()
	if err != nil {
		return err
	}
	return b.p.Sleep(ctx, d)
}

// permanent marks an error Do must not retry.
type permanent struct{ err error }

func (p *permanent) Error() string { return p.err.Error() }
func (p *permanent) Unwrap() error { return p.err }

// Permanent wraps err so that Do returns it at once instead of retrying. Nil stays nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanent{err: err}
}

// Do calls op until it returns nil, returns an error wrapped by Permanent (Do returns the inner
// error), the policy's bound is reached (Do returns op's last error joined with the ErrExhausted
// reason), or ctx ends (Do returns op's last error joined with ctx's cause). notify, when not nil,
// is called after each failed attempt that will be retried, before the wait, with the failed
// attempts so far.
func Do(ctx context.Context, p Policy, op func(ctx context.Context) error, notify func(err error, attempts int)) error {
	b := p.Start()
	for {
		if err := context.Cause(ctx); err != nil {
			return err
		}
		err := op(ctx)
		if err == nil {
			return nil
		}
		var perm *permanent
		if errors.As(err, &perm) {
			return perm.err
		}
		d, nerr := b.Next()
		if nerr != nil {
			return errors.Join(err, nerr)
		}
		if notify != nil {
			notify(err, b.Attempts())
		}
		if serr := b.p.Sleep(ctx, d); serr != nil {
			return errors.Join(err, serr)
		}
	}
}

// Sleep waits d, or until ctx ends and returns its cause.
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return context.Cause(ctx)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-t.C:
		return nil
	}
}
