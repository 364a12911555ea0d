package infra

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
)

// TestShutdownGraceFitsTheStopTimeout: the worker gets SHUTDOWN_GRACE, and grace plus the
// worker's bounded tail after it (a KCL call's read deadline, releasing the leases within twice
// the call timeout, closing the metrics server), read from the worker's code, fits the container's
// stopTimeout: ECS must not SIGKILL a worker that is finishing a batch whose records are written
// but not checkpointed (their replay would be duplicates).
func TestShutdownGraceFitsTheStopTimeout(t *testing.T) {
	env := containerEnv(t, &fx, workerContainer)
	grace, ok := env[envWorkerShutdownGrace].(string)
	if !ok || grace != strconv.Itoa(workerShutdownGrace)+"s" {
		t.Fatalf("worker %s = %v, want %ds", envWorkerShutdownGrace, env[envWorkerShutdownGrace], workerShutdownGrace)
	}
	seconds := func(file, pattern string) int {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(repoRoot, file))
		if err != nil {
			t.Fatal(err)
		}
		m := regexp.MustCompile(pattern).FindStringSubmatch(string(b))
		if m == nil {
			t.Fatalf("%s no longer matches %q: read the worker's shutdown bound again and update this test", file, pattern)
		}
		n, _ := strconv.Atoi(m[1])
		return n
	}
	readTimeout := seconds("worker/clients.go", `const readTimeout = (\d+) \* time\.Second`)
	callTimeout := seconds("worker/config.go", `CallTimeout:\s+(\d+) \* time\.Second`)
	release := seconds("worker/worker.go", `context\.WithTimeout\(context\.WithoutCancel\(ctx\), (\d+)\*cfg\.CallTimeout\)`)
	server := seconds("worker/worker.go", `srv != nil \{\s+sctx, cancel := context\.WithTimeout\(context\.WithoutCancel\(ctx\), (\d+)\*time\.Second\)`)
	bound := workerShutdownGrace + readTimeout + release*callTimeout + server
	stop := container(t, &fx, workerContainer)["StopTimeout"]
	if stop != float64(workerStopTimeout) || bound > workerStopTimeout {
		t.Errorf("shutdown grace %d s + read deadline %d s + lease release %d x %d s + server %d s = %d s; the container's stopTimeout is %v s",
			workerShutdownGrace, readTimeout, release, callTimeout, server, bound, stop)
	}
	if workerShutdownGrace < 60 {
		t.Errorf("shutdown grace %d s: a batch of a throttled stream needs its retries; the 10 s default cut batches (duplicates)", workerShutdownGrace)
	}
}
