// Package localstacktest starts a local AWS stack (see package localstack) for
// one test. The stack is stopped by t.Cleanup; the emulators run as separate
// processes, so tests may use it from any goroutine. Emulators that are not
// installed make the test fail, never skip: run `make deps` (npm ci).
package localstacktest

import (
	"testing"

	"github.com/kinesis-events/pipeline/internal/localstack"
)

// Start launches a stack with the given options (at most one; default
// kinesalite + dynalite on free ports), bound to t.Context(), and stops it in
// t.Cleanup. Any failure is t.Fatal with the launcher's message. When the test
// has failed, the emulator log tails are written to the test log first.
func Start(t testing.TB, o ...localstack.Options) *localstack.Stack {
	t.Helper()
	if len(o) > 1 {
		t.Fatalf("localstacktest.Start: at most one Options, got %d", len(o))
	}
	var opts localstack.Options
	if len(o) == 1 {
		opts = o[0]
	}
	if opts.LogDir == "" {
		opts.LogDir = t.TempDir()
	}
	s, err := localstack.Launch(t.Context(), opts)
	if err != nil {
		t.Fatalf("start local AWS stack: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("local AWS stack logs:\n%s", s.LogTails())
		}
		if err := s.Close(); err != nil {
			t.Errorf("stop local AWS stack: %v", err)
		}
	})
	return s
}
