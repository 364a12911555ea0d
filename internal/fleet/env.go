package fleet

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/kinesis-events/pipeline/internal/names"
)

// Env is one local deployment: the stack's endpoints, the binaries, a run directory for logs and
// the development signing key.
type Env struct {
	StackEnv []string // AWS_ENDPOINT_URL_* and credentials for child processes
	Bin      string   // directory holding worker, forwarder, loadgen, kclctl
	Dir      string   // run directory: logs, keys
	Topology Topology
	KeysFile string
}

// DevKeyID is the id of the signing key a local run generates.
const DevKeyID = "dev-1"

// NewEnv prepares dir and writes a fresh random development signing key to dir/keys.json (mode
// 0600; never printed).
func NewEnv(stackEnv []string, bin, dir string, t Topology) (*Env, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return nil, err
	}
	keys, _ := json.Marshal([]map[string]string{{"id": DevKeyID, "secret": base64.StdEncoding.EncodeToString(secret)}})
	keysFile := filepath.Join(dir, "keys.json")
	if err := os.WriteFile(keysFile, keys, 0o600); err != nil {
		return nil, err
	}
	for _, b := range []string{"worker", "forwarder", "loadgen"} {
		if _, err := os.Stat(filepath.Join(bin, b)); err != nil {
			return nil, fmt.Errorf("binary %s not built in %s (run `make build`): %w", b, bin, err)
		}
	}
	return &Env{StackEnv: stackEnv, Bin: bin, Dir: dir, Topology: t, KeysFile: keysFile}, nil
}

// WorkerEnv is the environment of a worker process.
func (e *Env) WorkerEnv() []string {
	routes := e.Topology.Routes()
	routes["default"] = names.OtherStream
	rj, _ := json.Marshal(routes)
	return append(append([]string(nil), e.StackEnv...),
		"RAW_STREAM="+names.RawStream,
		"LEASE_TABLE="+names.LeaseTable,
		"DEDUPE_TABLE="+names.DedupeTable,
		"QUARANTINE_STREAM="+names.QuarantineStream,
		"DLQ_STREAM="+names.DLQStream,
		"LATE_STREAM="+names.LateStream,
		"ROUTES="+string(rj),
		"SIGNING_KEYS_FILE="+e.KeysFile,
	)
}

// StartWorker starts worker number n (its id suffix is "w<n>", stable across restarts) with its
// metrics server on metricsPort (0: off) and extra flags.
func (e *Env) StartWorker(n, metricsPort int, extra ...string) (*Proc, error) {
	name := "worker-" + strconv.Itoa(n)
	addr := ""
	if metricsPort > 0 {
		addr = "127.0.0.1:" + strconv.Itoa(metricsPort)
	}
	args := append([]string{"-id-suffix", "w" + strconv.Itoa(n), "-metrics-addr", addr}, extra...)
	return Start(name, filepath.Join(e.Bin, "worker"), args, e.WorkerEnv(), filepath.Join(e.Dir, name+".log"))
}
