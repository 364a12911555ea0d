package fleet

import (
	"path/filepath"
	"strconv"
)

// WorkerOptions are the knobs of StartWorkerWith.
type WorkerOptions struct {
	// MetricsPort serves /metrics, /healthz and /readyz on 127.0.0.1 (0: off).
	MetricsPort int
	// Env is appended to the worker's environment; later entries win, so
	// AWS_ENDPOINT_URL_KINESIS=<fault proxy URL> routes the worker's Kinesis calls through a proxy.
	Env []string
	// Flags are extra command-line flags.
	Flags []string
	// CPUProfileDir, when set, has worker n write a CPU profile of its run to worker-n.cpu.prof there.
	CPUProfileDir string
}

// StartWorkerWith starts worker number n like StartWorker, with extra environment.
func (e *Env) StartWorkerWith(n int, o WorkerOptions) (*Proc, error) {
	name := "worker-" + strconv.Itoa(n)
	addr := ""
	if o.MetricsPort > 0 {
		addr = "127.0.0.1:" + strconv.Itoa(o.MetricsPort)
	}
	args := append([]string{"-id-suffix", "w" + strconv.Itoa(n), "-metrics-addr", addr}, o.Flags...)
	if o.CPUProfileDir != "" {
		args = append(args, "-cpuprofile", filepath.Join(o.CPUProfileDir, name+".cpu.prof"))
	}
	env := append(e.WorkerEnv(), o.Env...)
	return Start(name, filepath.Join(e.Bin, "worker"), args, env, filepath.Join(e.Dir, name+".log"))
}
