// Package ambiguous tells a write whose outcome is unknown from one that failed cleanly.
//
// Kinesis PutRecords is not idempotent. When an attempt fails after its request was written and
// without a definite answer (a 200 whose body was cut off, a 5xx, a reset or timeout while waiting),
// the records may have landed, and sending them again can write them twice. The AWS SDK retries such
// attempts on its own (it treats a connection closed while reading a 200 body as retryable), so the
// caller cannot see them in the call's result. Middleware marks them on a Tracker carried by the
// call's context; the caller then knows which records may appear twice downstream.
//
// A Tracker is safe for concurrent use. Nothing here changes what is sent or retried.
package ambiguous

import (
	"context"
	"errors"
	"net/http/httptrace"
	"sync/atomic"

	"github.com/aws/smithy-go/middleware"
)

// Tracker counts the attempts of one call whose outcome was unknown.
type Tracker struct{ n atomic.Int32 }

// Unknown returns how many attempts ended without a definite answer.
func (t *Tracker) Unknown() int {
	if t == nil {
		return 0
	}
	return int(t.n.Load())
}

type key struct{}

// Track returns a context that carries a new Tracker, and the Tracker.
func Track(ctx context.Context) (context.Context, *Tracker) {
	t := &Tracker{}
	return context.WithValue(ctx, key{}, t), t
}

// Note records one attempt with an unknown outcome on ctx's Tracker, if it has one. Middleware calls
// it; a fake client in tests may call it too.
func Note(ctx context.Context) {
	if t, ok := ctx.Value(key{}).(*Tracker); ok {
		t.n.Add(1)
	}
}

// Unknown reports whether an attempt that ended with err, after it started (wrote) or before it
// started writing its request, left its outcome unknown: a response with a 2xx or 5xx status that
// still failed (the body could not be read, or the service failed internally), or no response at all
// once the request was being written. A 4xx answer is definite (nothing was applied), and so is a
// failure before the request started.
func Unknown(err error, wrote bool) bool {
	if err == nil {
		return false
	}
	var status interface{ HTTPStatusCode() int }
	if errors.As(err, &status) {
		if c := status.HTTPStatusCode(); c != 0 {
			return c < 400 || c >= 500
		}
	}
	return wrote
}

// Middleware returns an SDK API option that watches every attempt of the operations named in ops
// (for example "PutRecords", "PutRecord") and calls Note when one ends with an unknown outcome. It
// sits after the SDK's retry middleware, so it sees each attempt, including those the SDK retries.
func Middleware(ops ...string) func(*middleware.Stack) error {
	want := map[string]bool{}
	for _, op := range ops {
		want[op] = true
	}
	return func(stack *middleware.Stack) error {
		if !want[stack.ID()] {
			return nil
		}
		return stack.Finalize.Add(middleware.FinalizeMiddlewareFunc("AmbiguousOutcome",
			func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
				if _, ok := ctx.Value(key{}).(*Tracker); !ok {
					return next.HandleFinalize(ctx, in)
				}
				// Once the headers are out, the rest of the request may reach the service even if this
				// side sees the write fail or time out: count the attempt as sent from then on.
				var wrote atomic.Bool
				tctx := httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
					WroteHeaders: func() { wrote.Store(true) },
				})
				out, md, err := next.HandleFinalize(tctx, in)
				if Unknown(err, wrote.Load()) {
					Note(ctx)
				}
				return out, md, err
			}), middleware.After)
	}
}
