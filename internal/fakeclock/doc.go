// Package fakeclock is the tests' clock for code that takes Now and a context-aware Sleep: time
// stands still until the code under test sleeps (or the test advances it), and then moves by
// exactly the duration slept, without waiting. Every sleep is recorded, and a hook may run after
// each one (to change a scripted fake, or to cancel a context, at a given point of a backoff).
//
// A Clock is safe for concurrent use; OnSleep is set before the clock is used and runs on the
// sleeping goroutine, without the clock's lock. internal/retry's own tests keep their clock: it
// must let the sleep that cancels a context complete and report the context's cause, which is a
// test of the policy itself.
package fakeclock
