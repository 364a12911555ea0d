package localstack

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.uber.org/zap"
)

// exitPortInUse is the exit status the launchers use when their port is taken.
const exitPortInUse = 98

// emulator is one running emulator process. Its stdout and stderr go to one
// log file; the stdout copy also watches for the launcher's "ready <port>".
type emulator struct {
	flavor  Flavor
	log     *zap.Logger
	cmd     *exec.Cmd
	stdin   *os.File // write end; closing it (or our death) makes the launcher exit
	logPath string
	logFile *os.File

	ready      chan int      // receives the bound port once
	exited     chan struct{} // closed when the process has been reaped
	waitErr    error         // set before exited is closed
	readerDone chan struct{} // closed when stdout reached EOF

	stopOnce sync.Once
	stopErr  error
}

// startEmulator starts sp in its own process group (so a signal reaches a
// whole Java or Node tree) with stdio wired for the launcher protocol.
func startEmulator(sp spec, env []string, logPath string, log *zap.Logger) (*emulator, error) {
	tool, err := exec.LookPath(sp.tool)
	if err != nil {
		return nil, fmt.Errorf("%s emulator needs %s on PATH: %w", sp.flavor, sp.tool, err)
	}
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("%s log: %w", sp.flavor, err)
	}
	inR, inW, err := os.Pipe()
	if err != nil {
		logFile.Close()
		return nil, fmt.Errorf("%s stdin pipe: %w", sp.flavor, err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		logFile.Close()
		inR.Close()
		inW.Close()
		return nil, fmt.Errorf("%s stdout pipe: %w", sp.flavor, err)
	}

	cmd := exec.Command(tool, sp.args...)
	cmd.Dir = sp.dir
	cmd.Env = env
	cmd.Stdin = inR
	cmd.Stdout = outW
	cmd.Stderr = logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	fmt.Fprintf(logFile, "# %s: %s %s\n", time.Now().Format(time.RFC3339Nano), tool, strings.Join(sp.args, " "))

	startErr := cmd.Start()
	// The child holds its own copies; ours would keep the pipes open forever.
	inR.Close()
	outW.Close()
	if startErr != nil {
		inW.Close()
		outR.Close()
		logFile.Close()
		return nil, fmt.Errorf("start %s: %w", sp.flavor, startErr)
	}

	e := &emulator{
		flavor:     sp.flavor,
		log:        log,
		cmd:        cmd,
		stdin:      inW,
		logPath:    logPath,
		logFile:    logFile,
		ready:      make(chan int, 1),
		exited:     make(chan struct{}),
		readerDone: make(chan struct{}),
	}
	go e.copyStdout(outR)
	go func() {
		e.waitErr = cmd.Wait()
		close(e.exited)
	}()
	return e, nil
}

// copyStdout appends the launcher's stdout to the log and reports the first
// "ready <port>" line.
func (e *emulator) copyStdout(r *os.File) {
	defer close(e.readerDone)
	defer r.Close()
	br := bufio.NewReader(r)
	reported, logFailed := false, false
	for {
		line, err := br.ReadString('\n')
		if line != "" {
			// A failed log write must not stall the child on a full pipe: keep draining.
			if _, werr := io.WriteString(e.logFile, line); werr != nil && !logFailed {
				e.log.Warn("emulator log write failed", zap.String("flavor", string(e.flavor)), zap.Error(werr))
				logFailed = true
			}
			if !reported {
				if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "ready "); ok {
					if port, perr := strconv.Atoi(rest); perr == nil && port > 0 {
						e.ready <- port
						reported = true
					}
				}
			}
		}
		if err != nil {
			return
		}
	}
}

// waitReady waits for the launcher's ready line. It fails when the process
// exits first (with the tail of its log), or when ctx ends.
func (e *emulator) waitReady(ctx context.Context) (int, error) {
	select {
	case port := <-e.ready:
		return port, nil
	case <-e.exited:
		// The ready line may have raced the exit.
		select {
		case port := <-e.ready:
			return port, fmt.Errorf("%s exited right after starting (%v); last lines of %s:\n%s",
				e.flavor, e.waitErr, e.logPath, e.tail())
		default:
		}
		<-e.readerDone
		return 0, e.exitError()
	case <-ctx.Done():
		return 0, fmt.Errorf("%s not listening yet: %w; last lines of %s:\n%s",
			e.flavor, context.Cause(ctx), e.logPath, e.tail())
	}
}

// exitError describes an early exit; a launcher that could not bind its port
// exits with exitPortInUse.
func (e *emulator) exitError() error {
	var ee *exec.ExitError
	if errors.As(e.waitErr, &ee) && ee.ExitCode() == exitPortInUse {
		return fmt.Errorf("%s exited during startup: its port on 127.0.0.1 is already in use; last lines of %s:\n%s",
			e.flavor, e.logPath, e.tail())
	}
	return fmt.Errorf("%s exited during startup (%v); last lines of %s:\n%s", e.flavor, e.waitErr, e.logPath, e.tail())
}

// running reports whether the process has not exited yet.
func (e *emulator) running() bool {
	select {
	case <-e.exited:
		return false
	default:
		return true
	}
}

// signal sends sig to the emulator's whole process group.
func (e *emulator) signal(sig syscall.Signal) error {
	if !e.running() {
		return fmt.Errorf("%s is not running (%v)", e.flavor, e.waitErr)
	}
	if err := syscall.Kill(-e.cmd.Process.Pid, sig); err != nil {
		return fmt.Errorf("%s: send %v to process group %d: %w", e.flavor, sig, e.cmd.Process.Pid, err)
	}
	return nil
}

// pid is the emulator's process id (also its process group id).
func (e *emulator) pid() int { return e.cmd.Process.Pid }

// stop ends the emulator: stdin EOF and SIGTERM (plus SIGCONT, in case it is
// paused), then SIGKILL to the group after grace. Safe to call repeatedly.
func (e *emulator) stop(grace time.Duration) error {
	e.stopOnce.Do(func() {
		e.stdin.Close()
		if e.running() {
			pg := -e.cmd.Process.Pid
			for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGCONT} {
				// ESRCH only means it exited in between.
				if err := syscall.Kill(pg, sig); err != nil && !errors.Is(err, syscall.ESRCH) && e.stopErr == nil {
					e.stopErr = fmt.Errorf("%s: send %v to process group: %w", e.flavor, sig, err)
				}
			}
			timer := time.NewTimer(grace)
			select {
			case <-e.exited:
				timer.Stop()
			case <-timer.C:
				e.log.Warn("emulator ignored SIGTERM; killing it",
					zap.String("flavor", string(e.flavor)), zap.Int("pid", e.cmd.Process.Pid), zap.Duration("grace", grace))
				if err := syscall.Kill(pg, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
					e.stopErr = fmt.Errorf("%s: kill process group: %w", e.flavor, err)
				}
				<-e.exited
			}
		}
		// The stdout pipe closes when the group is gone; bound the wait in case
		// a stray grandchild still holds it.
		timer := time.NewTimer(grace)
		select {
		case <-e.readerDone:
			timer.Stop()
		case <-timer.C:
		}
		if err := e.logFile.Close(); err != nil && e.stopErr == nil {
			e.stopErr = fmt.Errorf("%s log: %w", e.flavor, err)
		}
	})
	return e.stopErr
}

// tail returns the last lines of the emulator's log, for error messages.
func (e *emulator) tail() string {
	return tailFile(e.logPath, 30, 8<<10)
}

// tailFile returns up to maxLines final lines from the last maxBytes of path.
func tailFile(path string, maxLines int, maxBytes int64) string {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Sprintf("(log unavailable: %v)", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Sprintf("(log unavailable: %v)", err)
	}
	off := max(st.Size()-maxBytes, 0)
	buf := make([]byte, st.Size()-off)
	if _, err := f.ReadAt(buf, off); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Sprintf("(log unavailable: %v)", err)
	}
	lines := bytes.Split(bytes.TrimRight(buf, "\n"), []byte("\n"))
	if off > 0 && len(lines) > 1 {
		lines = lines[1:] // first line is probably cut
	}
	if len(lines) > maxLines {
		lines = lines[len(lines)-maxLines:]
	}
	if len(lines) == 0 || (len(lines) == 1 && len(lines[0]) == 0) {
		return "(log empty)"
	}
	return "  " + string(bytes.Join(lines, []byte("\n  ")))
}
