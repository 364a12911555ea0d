package e2e

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kinesis-events/pipeline/checkpoint"
	"github.com/kinesis-events/pipeline/internal/audit"
	"github.com/kinesis-events/pipeline/internal/fleet"
	"github.com/kinesis-events/pipeline/internal/kclctl"
	"github.com/kinesis-events/pipeline/internal/names"
	"github.com/kinesis-events/pipeline/internal/poll"
)

// opsFleet runs workers with their metrics servers on, so the operations tests can scrape them,
// stop them with SIGTERM and start them again under the same id.
type opsFleet struct {
	t     *testing.T
	d     *deployment
	host  string
	procs map[int]*fleet.Proc
	ports map[int]int
	extra []string
	// tail, when set, is polled by the long waits (at most every tailEvery), so its shard iterators
	// never sit unused long enough to expire (5 minutes).
	tail     *audit.Tail
	tailPoll time.Time
}

const tailEvery = 10 * time.Second

// keepTail polls the tail if it has not been polled for tailEvery.
func (f *opsFleet) keepTail() {
	f.t.Helper()
	if f.tail == nil || time.Since(f.tailPoll) < tailEvery {
		return
	}
	f.tailPoll = time.Now()
	if err := f.tail.Poll(f.t.Context()); err != nil {
		f.t.Fatalf("reading output streams: %v", err)
	}
}

func newOpsFleet(t *testing.T, d *deployment, extra ...string) *opsFleet {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "worker" // what the worker itself falls back to
	}
	return &opsFleet{t: t, d: d, host: host, procs: map[int]*fleet.Proc{}, ports: map[int]int{}, extra: extra}
}

// id is worker n's id as the worker derives it (hostname-w<n>).
func (f *opsFleet) id(n int) string { return f.host + "-w" + strconv.Itoa(n) }

// start starts worker n (again, after a stop: same id, same metrics port) and stops it at the end
// of the test.
func (f *opsFleet) start(n int) *fleet.Proc {
	f.t.Helper()
	port := f.ports[n]
	if port == 0 {
		p, err := fleet.FreePort()
		if err != nil {
			f.t.Fatal(err)
		}
		port, f.ports[n] = p, p
	}
	p, err := f.d.env.StartWorker(n, port, f.extra...)
	if err != nil {
		f.t.Fatal(err)
	}
	f.procs[n] = p
	f.t.Cleanup(func() {
		if err := p.Stop(20 * time.Second); err != nil {
			f.t.Logf("%s: %v", p.Name, err)
		}
		if f.t.Failed() {
			f.d.dumpLog(p.LogPath)
		}
	})
	return p
}

// stop sends SIGTERM to worker n and waits for a clean exit; it returns when the signal was sent.
func (f *opsFleet) stop(n int) time.Time {
	f.t.Helper()
	p := f.procs[n]
	sent := time.Now()
	if err := p.Signal(syscall.SIGTERM); err != nil {
		f.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(f.t.Context(), 60*time.Second)
	defer cancel()
	if err := p.Wait(ctx); err != nil {
		f.t.Fatalf("worker %d did not exit cleanly on SIGTERM: %v", n, err)
	}
	delete(f.procs, n)
	return sent
}

// metric sums the samples of one metric family scraped from worker n's /metrics (0 if absent).
func (f *opsFleet) metric(n int, name string) float64 {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(f.t.Context(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d/metrics", f.ports[n]), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatalf("scrape worker %d: %v", n, err)
	}
	defer resp.Body.Close()
	total := 0.0
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name) {
			continue
		}
		rest := line[len(name):]
		if rest == "" || (rest[0] != ' ' && rest[0] != '{') {
			continue
		}
		fields := strings.Fields(line)
		v, err := strconv.ParseFloat(fields[len(fields)-1], 64)
		if err == nil {
			total += v
		}
	}
	return total
}

// snapshot reads the lease table joined with the raw stream's shards. The workers create the
// table; until it exists (or while a read fails) it retries for up to a minute.
func (f *opsFleet) snapshot() checkpoint.Snapshot {
	f.t.Helper()
	var s checkpoint.Snapshot
	poll.Until(f.t, time.Minute, 250*time.Millisecond, "inspect lease table", func() (bool, string) {
		ctx, cancel := context.WithTimeout(f.t.Context(), 15*time.Second)
		defer cancel()
		var err error
		s, err = checkpoint.Inspect(ctx, f.d.stack.DynamoDB(), f.d.stack.Kinesis(), names.LeaseTable, names.RawStream, time.Now())
		if err != nil {
			return false, err.Error()
		}
		return true, ""
	})
	return s
}

// leaseState is the balance of the fleet as the lease table shows it.
type leaseState struct {
	Leasable int              // shards that need a worker: not finished, every parent finished
	Loads    map[string]int   // live leases per live worker (zero for a live worker holding none)
	Unowned  int              // leasable shards without a live lease of a live worker
	Switches int64            // sum of OwnerSwitches over every row
	PerShard map[string]int64 // OwnerSwitches per shard
	Finished int              // shards at SHARD_END
}

func (s leaseState) spread() int {
	lo, hi := -1, 0
	for _, n := range s.Loads {
		if lo < 0 || n < lo {
			lo = n
		}
		hi = max(hi, n)
	}
	return hi - max(lo, 0)
}

// converged: every leasable shard is held by a live worker and loads differ by at most one.
func (s leaseState) converged() bool { return s.Leasable > 0 && s.Unowned == 0 && s.spread() <= 1 }

func (s leaseState) String() string {
	ids := make([]string, 0, len(s.Loads))
	for id := range s.Loads {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	parts := make([]string, len(ids))
	for i, id := range ids {
		parts[i] = fmt.Sprintf("%s=%d", id, s.Loads[id])
	}
	return fmt.Sprintf("leasable=%d unowned=%d finished=%d loads[%s] switches=%d", s.Leasable, s.Unowned, s.Finished, strings.Join(parts, " "), s.Switches)
}

// leases computes the balance for the given live workers.
func (f *opsFleet) leases(live ...int) leaseState {
	snap := f.snapshot()
	st := leaseState{Loads: map[string]int{}, PerShard: map[string]int64{}}
	alive := map[string]bool{}
	for _, n := range live {
		alive[f.id(n)] = true
		st.Loads[f.id(n)] = 0
	}
	for _, sh := range snap.Shards {
		st.Switches += sh.OwnerSwitches
		st.PerShard[sh.ShardID] = sh.OwnerSwitches
		if sh.State == checkpoint.ShardFinished {
			st.Finished++
			continue
		}
		if sh.State == checkpoint.ShardGone || len(sh.WaitingOn) > 0 {
			continue
		}
		st.Leasable++
		if sh.Owner != "" && !sh.LeaseExpired && alive[sh.Owner] {
			st.Loads[sh.Owner]++
		} else {
			st.Unowned++
		}
	}
	return st
}

// convergence polls the lease table until the fleet of live workers is balanced, then holds for
// hold and fails if anything moves during it (thrash). It returns the time to converge, measured
// from since, and the ownership changes from base to convergence.
func (f *opsFleet) convergence(what string, since time.Time, base int64, timeout, hold time.Duration, live ...int) (time.Duration, int64, leaseState) {
	f.t.Helper()
	return f.convergenceWhen(what, since, base, timeout, hold, nil, live...)
}

// convergenceWhen is convergence with an extra condition on the lease state (nil: none).
func (f *opsFleet) convergenceWhen(what string, since time.Time, base int64, timeout, hold time.Duration, also func(leaseState) bool, live ...int) (time.Duration, int64, leaseState) {
	f.t.Helper()
	var st leaseState
	poll.Until(f.t, timeout, 100*time.Millisecond, what+": balanced", func() (bool, string) {
		st = f.leases(live...)
		if st.converged() && (also == nil || also(st)) {
			return true, ""
		}
		f.keepTail()
		return false, st.String()
	})
	took, moves := time.Since(since), st.Switches-base
	settled := st.Switches
	end := time.Now().Add(hold)
	for time.Now().Before(end) {
		now := f.leases(live...)
		if now.Switches != settled || !now.converged() {
			f.t.Fatalf("%s: lease moved after convergence (thrash): was %s, now %s", what, st, now)
		}
		f.keepTail()
		time.Sleep(250 * time.Millisecond) // polling interval
	}
	return took, moves, st
}

// caughtUp waits until every shard's checkpoint has passed every record in it (lag caught up or
// SHARD_END): from then on the fleet writes nothing more for what was sent, so a final read of the
// output streams sees every duplicate there will ever be.
func (f *opsFleet) caughtUp(timeout time.Duration) {
	f.t.Helper()
	c := &kclctl.Clients{DynamoDB: f.d.stack.DynamoDB(), Kinesis: f.d.stack.Kinesis()}
	poll.Until(f.t, timeout, 250*time.Millisecond, "fleet caught up", func() (bool, string) {
		ctx, cancel := context.WithTimeout(f.t.Context(), 15*time.Second)
		r, err := kclctl.InspectLive(ctx, c, names.LeaseTable, names.RawStream, time.Now())
		cancel()
		last := ""
		if err == nil {
			behind := []string{}
			for _, sh := range r.Shards {
				if sh.Lag.Status != kclctl.LagCaughtUp && sh.Lag.Status != kclctl.LagDone {
					behind = append(behind, sh.ShardID+":"+string(sh.Lag.Status))
				}
			}
			if len(behind) == 0 {
				return true, ""
			}
			last = strings.Join(behind, " ")
		} else {
			last = err.Error()
		}
		f.keepTail()
		return false, last
	})
}

// kclctl runs the kclctl binary against the deployment.
func (f *opsFleet) kclctl(args ...string) (int, string, string) {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(f.t.Context(), 6*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "kclctl"), args...)
	cmd.Env = append(os.Environ(), f.d.env.StackEnv...)
	cmd.Env = append(cmd.Env, "LEASE_TABLE="+names.LeaseTable, "RAW_STREAM="+names.RawStream, "DLQ_STREAM="+names.DLQStream)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		f.t.Fatalf("kclctl %v: %v", args, err)
	}
	return cmd.ProcessState.ExitCode(), out.String(), errb.String()
}

// record keeps a command's output for docs/operations.md when E2E_KCLCTL_OUT names a directory.
func record(t *testing.T, name, cmdline, out string) {
	t.Helper()
	t.Logf("$ %s\n%s", cmdline, out)
	dir := os.Getenv("E2E_KCLCTL_OUT")
	if dir == "" {
		return
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".txt"), []byte("$ "+cmdline+"\n"+out), 0o644); err != nil {
		t.Fatal(err)
	}
}

// settle waits until the load is sent and every unique event is delivered (within deliver), lets
// the fleet catch up, reads every output stream once more and returns the load's result with the
// audit of the whole run, logged under label.
func (f *opsFleet) settle(send *fleet.Send, tail *audit.Tail, deliver time.Duration, label string) (*fleet.SendResult, audit.Report) {
	f.t.Helper()
	res, err := send.Wait(f.t.Context())
	if err != nil {
		f.t.Fatal(err)
	}
	waitFor(f.t, tail, deliver, "every event delivered", func(s audit.Snapshot) bool { return s.Unique >= res.Manifest.Unique })
	f.caughtUp(2 * time.Minute)
	if err := tail.Poll(f.t.Context()); err != nil {
		f.t.Fatal(err)
	}
	rep := tail.Check(fleet.Expected(res.Manifest))
	f.t.Logf("%s run: sent %d lines (%d unique valid); %s", label, res.Manifest.Lines, res.Manifest.Unique, rep)
	return res, rep
}
