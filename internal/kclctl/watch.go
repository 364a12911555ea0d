package kclctl

import (
	"context"
	"time"
)

// Watch calls refresh now and then every interval until ctx is done, and returns the exit code of
// the last refresh that completed before ctx ended (a refresh cut short by ctx does not count).
// Refreshes never overlap: a slow one delays the next tick instead of piling up.
func Watch(ctx context.Context, interval time.Duration, refresh func(ctx context.Context) int) int {
	code := refresh(ctx)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return code
		case <-t.C:
			c := refresh(ctx)
			if ctx.Err() != nil {
				return code
			}
			code = c
		}
	}
}
