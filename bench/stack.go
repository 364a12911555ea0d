package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/kinesis-events/pipeline/internal/fleet"
	"github.com/kinesis-events/pipeline/internal/loadgen"
	"github.com/kinesis-events/pipeline/internal/localstack"
)

// deployment is one fresh local stack with every stream and table provisioned and a run directory.
type deployment struct {
	st      *localstack.Stack
	env     *fleet.Env
	dir     string
	log     *zap.Logger
	name    string
	profile string // Config.ProfileDir
	runs    int    // processes started, for profile names
}

func deploy(ctx context.Context, cfg Config, name string) (*deployment, error) {
	dir := filepath.Join(cfg.Dir, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	o := cfg.Stack
	o.LogDir = dir
	st, err := localstack.Launch(ctx, o)
	if err != nil {
		return nil, fmt.Errorf("%s: start the local stack: %w", name, err)
	}
	topo := fleet.DefaultTopology()
	if err := fleet.Provision(ctx, st, topo); err != nil {
		st.Close()
		return nil, fmt.Errorf("%s: provision: %w", name, err)
	}
	env, err := fleet.NewEnv(st.Env(), cfg.Bin, dir, topo)
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if cfg.ProfileDir != "" {
		if err := os.MkdirAll(cfg.ProfileDir, 0o755); err != nil {
			st.Close()
			return nil, err
		}
	}
	return &deployment{st: st, env: env, dir: dir, log: cfg.Logger.With(zap.String("scenario", name)), name: name, profile: cfg.ProfileDir}, nil
}

func (d *deployment) close() { d.st.Close() }

// worker is a running worker process with its metrics endpoint.
type worker struct {
	proc    *fleet.Proc
	started time.Time
	metrics string // http://127.0.0.1:port
	hc      *http.Client
}

// profileArgs returns the flags that make a process write its profiles as <ProfileDir>/<name>.cpu.pprof
// and .mem.pprof ("-cpuprofile" style; prefix "--" for the forwarder), none when profiling is off.
func (d *deployment) profileArgs(dash, name string) []string {
	if d.profile == "" {
		return nil
	}
	base := filepath.Join(d.profile, name)
	return []string{dash + "cpuprofile=" + base + ".cpu.pprof", dash + "memprofile=" + base + ".mem.pprof"}
}

// startWorker starts worker n with its metrics server on a free port.
func (d *deployment) startWorker(n int, env []string, flags ...string) (*worker, error) {
	port, err := fleet.FreePort()
	if err != nil {
		return nil, err
	}
	d.runs++
	flags = append(flags, d.profileArgs("-", fmt.Sprintf("worker-%s-%d", d.name, d.runs))...)
	started := time.Now()
	p, err := d.env.StartWorkerWith(n, fleet.WorkerOptions{MetricsPort: port, Env: env, Flags: flags})
	if err != nil {
		return nil, err
	}
	return &worker{proc: p, started: started, metrics: "http://127.0.0.1:" + strconv.Itoa(port), hc: &http.Client{Timeout: 5 * time.Second}}, nil
}

// workerRun is one worker process from start to stop, with what it reported.
type workerRun struct {
	w *worker
	// last is the scrape that showed every event delivered; idle the one after IdleFor more
	// seconds with nothing to do (nil when not asked for).
	last, idle samples
	idleFor    time.Duration
	cpu        cpuPerEvent
	// Unsure is the worker's count of records sent in a PutRecords attempt whose outcome was
	// unknown (pipeline_put_unknown_outcome_total): at most this many may be in the output twice.
	Unsure int
	// LogBytes is the size of the worker's log (stdout and stderr) when it stopped; MetricsBytes
	// the size of one uncompressed /metrics answer once every event was delivered.
	LogBytes, MetricsBytes int64
}

// deliver starts worker 1 with flags, waits until it has delivered want events, then, when idle
// is positive, leaves it running with nothing to do for that long (its time-driven calls: lease
// renewals, shard syncs, scans), stops it, and returns what it reported.
func (d *deployment) deliver(ctx context.Context, want int, idle time.Duration, flags ...string) (workerRun, error) {
	var run workerRun
	w, err := d.startWorker(1, nil, flags...)
	if err != nil {
		return run, err
	}
	run.w = w
	s, cpu, err := w.waitDeliveredCPU(ctx, d, want)
	if err == nil {
		run.MetricsBytes, err = w.metricsSize(ctx)
	}
	if err == nil && idle > 0 {
		select {
		case <-ctx.Done():
			err = ctx.Err()
		case <-w.proc.Done():
			err = fmt.Errorf("worker exited while idle: %v; log tail:\n%s", w.proc.Err(), logTail(w.proc.LogPath, 20))
		case <-time.After(idle): // a measuring window, not a wait for something to happen
		}
		if err == nil {
			run.idle, err = w.scrape(ctx)
			run.idleFor = idle
		}
	}
	if err := errors.Join(err, w.stop()); err != nil {
		return run, err
	}
	run.last, run.cpu = s, cpu
	run.Unsure = int(s.sum("pipeline_put_unknown_outcome_total"))
	if fi, err := os.Stat(w.proc.LogPath); err == nil {
		run.LogBytes = fi.Size()
	}
	return run, nil
}

// stop ends the worker (SIGTERM, then kill) and returns its log's last lines when it did not exit
// cleanly.
func (w *worker) stop() error {
	if err := w.proc.Stop(20 * time.Second); err != nil {
		return fmt.Errorf("%w; log tail:\n%s", err, logTail(w.proc.LogPath, 20))
	}
	return nil
}

// samples is one scrape of a Prometheus text endpoint: metric name -> label set -> value.
type samples map[string]map[string]float64

// sum adds every sample of name whose labels contain each of match ("k=\"v\"").
func (s samples) sum(name string, match ...string) float64 {
	var total float64
	for labels, v := range s[name] {
		ok := true
		for _, m := range match {
			ok = ok && strings.Contains(labels, m)
		}
		if ok {
			total += v
		}
	}
	return total
}

func (w *worker) scrape(ctx context.Context) (samples, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, w.metrics+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	// Uncompressed: the worker would otherwise gzip every answer, CPU that a scrape every minute
	// (the fleet's collector) does not cost but polling does.
	req.Header.Set("Accept-Encoding", "identity")
	resp, err := w.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scrape %s: %s", w.metrics, resp.Status)
	}
	return parseMetrics(resp.Body)
}

// metricsSize is the size of one uncompressed /metrics answer.
func (w *worker) metricsSize(ctx context.Context) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, w.metrics+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Accept-Encoding", "identity")
	resp, err := w.hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	return io.Copy(io.Discard, resp.Body)
}

// parseMetrics reads the Prometheus text format (only sample lines; comments skipped).
func parseMetrics(r io.Reader) (samples, error) {
	out := samples{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		sp := strings.LastIndexByte(line, ' ')
		if sp < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[sp+1:], 64)
		if err != nil {
			continue
		}
		name, labels := line[:sp], ""
		if i := strings.IndexByte(name, '{'); i >= 0 {
			name, labels = name[:i], name[i:]
		}
		if out[name] == nil {
			out[name] = map[string]float64{}
		}
		out[name][labels] = v
	}
	return out, sc.Err()
}

// ready reports whether the worker's /readyz answers 200 with at least shards shards held.
func (w *worker) ready(ctx context.Context, shards int) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, w.metrics+"/readyz", nil)
	if err != nil {
		return false
	}
	resp, err := w.hc.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	var body struct {
		Ready  bool                       `json:"ready"`
		Shards map[string]json.RawMessage `json:"shards"`
	}
	return resp.StatusCode == http.StatusOK && json.NewDecoder(resp.Body).Decode(&body) == nil && body.Ready && len(body.Shards) >= shards
}

// poll calls cond every interval until it returns true, ctx ends (ctx's error) or the process dies.
func poll(ctx context.Context, interval time.Duration, proc *fleet.Proc, what string, cond func() (bool, error)) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		ok, err := cond()
		if err != nil {
			return fmt.Errorf("waiting for %s: %w", what, err)
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w", what, ctx.Err())
		case <-proc.Done():
			return fmt.Errorf("waiting for %s: %s exited: %v; log tail:\n%s", what, proc.Name, proc.Err(), logTail(proc.LogPath, 20))
		case <-t.C:
		}
	}
}

// waitDelivered polls the worker's counters until want events were written to the analytics
// streams, quarantined or dead-lettered, and returns the last scrape.
func (w *worker) waitDelivered(ctx context.Context, want int) (samples, error) {
	var last samples
	err := poll(ctx, 100*time.Millisecond, w.proc, fmt.Sprintf("%d events out of the worker", want), func() (bool, error) {
		s, err := w.scrape(ctx)
		if err != nil {
			return false, nil // the metrics server is not up yet
		}
		last = s
		done := s.sum("pipeline_records_out_total") + s.sum("pipeline_quarantined_total") + s.sum("pipeline_dead_lettered_total")
		return done >= float64(want), nil
	})
	return last, err
}

// waitDeliveredCPU is waitDelivered that also returns the CPU time per event of the worker and of
// each emulator between the first scrape that showed a delivery and the last one (start-up
// excluded).
func (w *worker) waitDeliveredCPU(ctx context.Context, d *deployment, want int) (samples, cpuPerEvent, error) {
	var (
		last              samples
		firstCPU, lastCPU time.Duration
		firstEm, lastEm   cpuMeter
		firstOut, out     float64
	)
	err := poll(ctx, cpuPollInterval, w.proc, fmt.Sprintf("%d events out of the worker", want), func() (bool, error) {
		s, err := w.scrape(ctx)
		if err != nil {
			return false, nil // the metrics server is not up yet
		}
		ps, err := readProcStat(w.proc.PID())
		if err != nil {
			return false, err
		}
		em, err := d.emulatorCPU()
		if err != nil {
			return false, err
		}
		last = s
		out = s.sum("pipeline_records_out_total") + s.sum("pipeline_quarantined_total") + s.sum("pipeline_dead_lettered_total")
		if firstOut == 0 && out > 0 {
			firstOut, firstCPU, firstEm = out, ps.CPU, em
		}
		lastCPU, lastEm = ps.CPU, em
		return out >= float64(want), nil
	})
	if err != nil {
		return last, cpuPerEvent{}, err
	}
	if out <= firstOut {
		return last, cpuPerEvent{}, fmt.Errorf("all %d events appeared in one scrape: no CPU figure", want)
	}
	n := time.Duration(out - firstOut)
	return last, cpuPerEvent{Worker: (lastCPU - firstCPU) / n, Kinesis: (lastEm.kin - firstEm.kin) / n, DynamoDB: (lastEm.ddb - firstEm.ddb) / n}, nil
}

// cpuPollInterval is how often waitDeliveredCPU scrapes the worker. Each scrape costs the worker
// CPU (formatting every metric), which lands in the measured window: a tenth of a second made that
// several microseconds per event, a quarter of one costs well under one.
const cpuPollInterval = 250 * time.Millisecond

// cpuPerEvent splits the CPU time one event costs between the processes of the stack.
type cpuPerEvent struct {
	Worker, Kinesis, DynamoDB time.Duration
}

// procStat is a process's resource use read from /proc.
type procStat struct {
	RSS, HWM int64         // bytes: resident now, peak resident
	CPU      time.Duration // user + system, all threads
}

// userHZ is the unit of utime and stime in /proc/<pid>/stat (USER_HZ, 100 on every Linux ABI Go
// supports).
const userHZ = 100

func readProcStat(pid int) (procStat, error) {
	var ps procStat
	status, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return ps, err
	}
	for _, line := range strings.Split(string(status), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		kb, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmRSS:":
			ps.RSS = kb << 10
		case "VmHWM:":
			ps.HWM = kb << 10
		}
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return ps, err
	}
	// Fields after the command name (which may hold spaces, inside parentheses).
	rest := string(stat)
	if i := strings.LastIndexByte(rest, ')'); i >= 0 {
		rest = rest[i+1:]
	}
	f := strings.Fields(rest)
	if len(f) < 13 {
		return ps, fmt.Errorf("short /proc/%d/stat", pid)
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64) // field 14 of the whole line
	stime, _ := strconv.ParseInt(f[12], 10, 64) // field 15
	ps.CPU = time.Duration(utime+stime) * time.Second / userHZ
	return ps, nil
}

// groupCPU is the CPU time (user + system) of the live processes of process group pgid.
func groupCPU(pgid int) (time.Duration, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	var ticks int64
	found := false
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue // exited meanwhile
		}
		rest := string(b)
		if i := strings.LastIndexByte(rest, ')'); i >= 0 {
			rest = rest[i+1:]
		}
		f := strings.Fields(rest)
		if len(f) < 13 || f[2] != strconv.Itoa(pgid) { // f[2]: field 5, the process group
			continue
		}
		u, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		ticks += u + st
		found = true
	}
	if !found {
		return 0, fmt.Errorf("no process in group %d", pgid)
	}
	return time.Duration(ticks) * time.Second / userHZ, nil
}

// cpuMeter reads the CPU time of the emulators while a scenario runs.
type cpuMeter struct{ kin, ddb time.Duration }

func (d *deployment) emulatorCPU() (cpuMeter, error) {
	k, err := groupCPU(d.st.KinesisPID())
	if err != nil {
		return cpuMeter{}, err
	}
	dd, err := groupCPU(d.st.DynamoDBPID())
	return cpuMeter{kin: k, ddb: dd}, err
}

// generate writes count signed events from loadgen to a file and returns its path and manifest.
func (d *deployment) generate(ctx context.Context, name string, count, customers int, seed int64) (string, loadgen.Manifest, error) {
	var m loadgen.Manifest
	out, mpath := filepath.Join(d.dir, name+".ndjson"), filepath.Join(d.dir, name+".manifest.json")
	p, err := fleet.Start("loadgen", filepath.Join(d.env.Bin, "loadgen"), []string{
		"-count", strconv.Itoa(count), "-customers", strconv.Itoa(customers), "-seed", strconv.FormatInt(seed, 10),
		"-keys-file", d.env.KeysFile, "-out", out, "-manifest", mpath,
	}, d.env.StackEnv, filepath.Join(d.dir, name+".loadgen.log"))
	if err != nil {
		return "", m, err
	}
	if err := p.Wait(ctx); err != nil {
		p.Kill()
		return "", m, fmt.Errorf("loadgen: %w; log tail:\n%s", err, logTail(p.LogPath, 10))
	}
	b, err := os.ReadFile(mpath)
	if err != nil {
		return "", m, err
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return "", m, fmt.Errorf("manifest %s: %w", mpath, err)
	}
	return out, m, nil
}

func logTail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
