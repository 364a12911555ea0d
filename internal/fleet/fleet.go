// Package fleet provisions the pipeline's streams and tables on a local stack and runs the real
// binaries (worker, forwarder, loadgen) as child processes. `make run` and the binary-level end-to-end
// and chaos tests are built on it, so what the tests prove is what a user runs.
//
// Processes are started in their own process group and are always stopped by Stop or Kill; a Proc's
// methods are safe for concurrent use.
package fleet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/kinesis-events/pipeline/internal/names"
)

// Types are the standard customer event types, each routed to its analytics stream.
var Types = names.StandardTypes

// Stream and table names used locally: the ones of internal/names, which defines them (this
// package's code uses those). These aliases remain for code written against them; use names.
const (
	RawStream        = names.RawStream
	QuarantineStream = names.QuarantineStream
	DLQStream        = names.DLQStream
	LateStream       = names.LateStream
	DefaultStream    = names.OtherStream
	LeaseTable       = names.LeaseTable
	DedupeTable      = names.DedupeTable
)

// Topology says how many shards each stream gets.
type Topology struct {
	RawShards       int
	AnalyticsShards int
	Types           []string
}

// DefaultTopology is the make-run layout: 4 raw shards, 2 per analytics stream.
func DefaultTopology() Topology {
	return Topology{RawShards: 4, AnalyticsShards: 2, Types: names.StandardTypes}
}

// Routes maps each type to its analytics stream.
func (t Topology) Routes() map[string]string {
	m := make(map[string]string, len(t.Types))
	for _, typ := range t.Types {
		m[typ] = names.AnalyticsStream(typ)
	}
	return m
}

// AnalyticsStreams lists the per-type streams and the default stream.
func (t Topology) AnalyticsStreams() []string {
	out := make([]string, 0, len(t.Types)+1)
	for _, typ := range t.Types {
		out = append(out, names.AnalyticsStream(typ))
	}
	return append(out, names.OtherStream)
}

// StackAPI is what Provision needs from the local stack.
type StackAPI interface {
	CreateStream(ctx context.Context, name string, shards int) error
	CreateTable(ctx context.Context, name, hashKey string) error
}

// Provision creates every stream and the dedupe table. The lease table is created by the workers'
// lease store itself (it also recreates it if it disappears).
func Provision(ctx context.Context, st StackAPI, t Topology) error {
	streams := map[string]int{names.RawStream: t.RawShards, names.QuarantineStream: 1, names.DLQStream: 1, names.LateStream: 1}
	for _, s := range t.AnalyticsStreams() {
		streams[s] = t.AnalyticsShards
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(streams)+1)
	for name, shards := range streams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := st.CreateStream(ctx, name, shards); err != nil {
				errs <- fmt.Errorf("create stream %s: %w", name, err)
			}
		}()
	}
	if err := st.CreateTable(ctx, names.DedupeTable, "event_id"); err != nil {
		errs <- fmt.Errorf("create table %s: %w", names.DedupeTable, err)
	}
	wg.Wait()
	close(errs)
	var all []error
	for err := range errs {
		all = append(all, err)
	}
	return errors.Join(all...)
}

// Proc is a running child process.
type Proc struct {
	Name    string
	LogPath string
	cmd     *exec.Cmd
	done    chan struct{}
	mu      sync.Mutex
	err     error
}

// Start runs bin with args and env (appended to the parent's environment), output to logPath.
func Start(name, bin string, args, env []string, logPath string) (*Proc, error) {
	logf, err := openLog(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	return startCmd(name, cmd, logPath, logf)
}

func openLog(logPath string) (*os.File, error) {
	if err := os.MkdirAll(filepath.Dir(logPath), 0o755); err != nil {
		return nil, err
	}
	return os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
}

// startCmd starts cmd in its own process group (killed with its parent) and closes closers after
// it exits.
func startCmd(name string, cmd *exec.Cmd, logPath string, closers ...io.Closer) (*Proc, error) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		for _, c := range closers {
			c.Close()
		}
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &Proc{Name: name, LogPath: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		err := cmd.Wait()
		for _, c := range closers {
			c.Close()
		}
		p.mu.Lock()
		p.err = err
		p.mu.Unlock()
		close(p.done)
	}()
	return p, nil
}

// PID is the process id.
func (p *Proc) PID() int { return p.cmd.Process.Pid }

// Done is closed when the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Err is the exit error once Done is closed.
func (p *Proc) Err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// CPU is the user and system CPU time the process used, known once it has exited (0 before).
func (p *Proc) CPU() time.Duration {
	select {
	case <-p.done:
		if st := p.cmd.ProcessState; st != nil {
			return st.UserTime() + st.SystemTime()
		}
	default:
	}
	return 0
}

// Signal sends sig to the process.
func (p *Proc) Signal(sig syscall.Signal) error {
	select {
	case <-p.done:
		return nil
	default:
	}
	return p.cmd.Process.Signal(sig)
}

// Stop sends SIGTERM and waits up to grace for the exit, then kills the process group. It returns
// the exit error of a process that had to be killed, and nil for a clean exit.
func (p *Proc) Stop(grace time.Duration) error {
	if err := p.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	select {
	case <-p.done:
		return p.Err()
	case <-time.After(grace):
		p.Kill()
		return fmt.Errorf("%s did not exit within %s of SIGTERM; killed", p.Name, grace)
	}
}

// Kill sends SIGKILL to the whole process group and waits for the exit.
func (p *Proc) Kill() {
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
}

// Wait blocks until the process exits or ctx ends.
func (p *Proc) Wait(ctx context.Context) error {
	select {
	case <-p.done:
		return p.Err()
	case <-ctx.Done():
		return ctx.Err()
	}
}

// FreePort returns a free TCP port on 127.0.0.1 (for a worker's metrics server).
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
