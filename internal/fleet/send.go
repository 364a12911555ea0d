package fleet

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/kinesis-events/pipeline/forwarder"
	"github.com/kinesis-events/pipeline/internal/audit"
	"github.com/kinesis-events/pipeline/internal/loadgen"
	"github.com/kinesis-events/pipeline/internal/names"
)

// Load describes a load-generator run.
type Load struct {
	Count     int
	Customers int
	Rate      float64 // events/s; 0 = as fast as possible
	Seed      int64
	// Ratios of natural duplicates, conflicting duplicates, displaced (out-of-order) events and
	// malformed inputs.
	DupRatio, ConflictRatio, OOORatio, BadRatio float64
	// Profile paces the load by a rate over time instead of Rate (loadgen -profile); Count 0 then
	// means the profile's lines. HotRate makes customer 1 send about that many events per second.
	Profile string
	HotRate float64
	Extra   []string // more loadgen flags
	// ForwarderFlags are more forwarder flags (e.g. -max-attempts).
	ForwarderFlags []string
}

// Send is a running `loadgen | forwarder` pipeline: the real binaries, connected by a pipe.
type Send struct {
	loadgen, forwarder *Proc
	manifestPath       string

	mu      sync.Mutex
	stats   forwarder.Stats
	summary *forwarder.Result
}

// Send starts loadgen writing NDJSON EventBridge events into the forwarder's stdin.
func (e *Env) Send(l Load) (*Send, error) {
	s := &Send{manifestPath: filepath.Join(e.Dir, "manifest.json")}
	args := []string{
		"-customers", strconv.Itoa(max(l.Customers, 1)),
		"-seed", strconv.FormatInt(l.Seed, 10), "-rate", strconv.FormatFloat(l.Rate, 'f', -1, 64),
		"-keys-file", e.KeysFile, "-manifest", s.manifestPath,
		"-dup-ratio", ftoa(l.DupRatio), "-conflict-ratio", ftoa(l.ConflictRatio),
		"-ooo-ratio", ftoa(l.OOORatio), "-bad-ratio", ftoa(l.BadRatio),
	}
	if l.Count > 0 || l.Profile == "" {
		args = append(args, "-count", strconv.Itoa(l.Count))
	}
	if l.Profile != "" {
		args = append(args, "-profile", l.Profile)
	}
	if l.HotRate > 0 {
		args = append(args, "-hot-rate", ftoa(l.HotRate))
	}
	args = append(args, l.Extra...)
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	genLog, err := openLog(filepath.Join(e.Dir, "loadgen.log"))
	if err != nil {
		return nil, err
	}
	gen := exec.Command(filepath.Join(e.Bin, "loadgen"), args...)
	gen.Env = append(os.Environ(), e.StackEnv...)
	gen.Stdout, gen.Stderr = pw, genLog
	if s.loadgen, err = startCmd("loadgen", gen, genLog.Name(), pw, genLog); err != nil {
		pr.Close()
		return nil, err
	}

	fwdLog, err := openLog(filepath.Join(e.Dir, "forwarder.log"))
	if err != nil {
		return nil, err
	}
	er, ew, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	fwd := exec.Command(filepath.Join(e.Bin, "forwarder"), append([]string{"-progress", "-stats-every", "250ms",
		"-raw-stream", names.RawStream, "-quarantine-stream", names.QuarantineStream}, l.ForwarderFlags...)...)
	fwd.Env = append(os.Environ(), e.StackEnv...)
	fwd.Stdin, fwd.Stdout, fwd.Stderr = pr, fwdLog, ew
	if s.forwarder, err = startCmd("forwarder", fwd, fwdLog.Name(), pr, ew); err != nil {
		er.Close()
		s.loadgen.Kill()
		return nil, err
	}
	go s.readProgress(er, fwdLog)
	return s, nil
}

func ftoa(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }

// readProgress parses the forwarder's JSON stderr lines and copies every line to its log.
func (s *Send) readProgress(r io.ReadCloser, log io.Writer) {
	defer r.Close()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		fmt.Fprintf(log, "%s\n", line)
		var head struct {
			Type string `json:"type"`
		}
		if json.Unmarshal(line, &head) != nil {
			continue
		}
		switch head.Type {
		case "progress":
			var p struct {
				forwarder.Stats
			}
			if json.Unmarshal(line, &p) == nil {
				s.mu.Lock()
				s.stats = p.Stats
				s.mu.Unlock()
			}
		case "summary":
			var res forwarder.Result
			if json.Unmarshal(line, &res) == nil {
				s.mu.Lock()
				s.summary = &res
				s.stats.Read, s.stats.Forwarded, s.stats.Quarantined, s.stats.Failed = res.Lines-res.Blank, res.Forwarded, res.Quarantined, res.Failed
				s.mu.Unlock()
			}
		}
	}
}

// Stats are the forwarder's latest counts.
func (s *Send) Stats() forwarder.Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// Done is closed when the forwarder has exited.
func (s *Send) Done() <-chan struct{} { return s.forwarder.Done() }

// Stop ends both processes (used on Ctrl-C).
func (s *Send) Stop() {
	_ = s.loadgen.Stop(2 * time.Second)
	_ = s.forwarder.Stop(5 * time.Second)
}

// SendResult is what a finished send reports.
type SendResult struct {
	Manifest  loadgen.Manifest
	Forwarder forwarder.Result
}

// Wait waits for both processes and returns the manifest and the forwarder's summary.
func (s *Send) Wait(ctx context.Context) (*SendResult, error) {
	if err := s.loadgen.Wait(ctx); err != nil {
		return nil, fmt.Errorf("loadgen: %w (see %s)", err, s.loadgen.LogPath)
	}
	if err := s.forwarder.Wait(ctx); err != nil {
		return nil, fmt.Errorf("forwarder: %w (see %s)", err, s.forwarder.LogPath)
	}
	b, err := os.ReadFile(s.manifestPath)
	if err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	res := &SendResult{}
	if err := json.Unmarshal(b, &res.Manifest); err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.summary == nil {
		return nil, errors.New("forwarder exited without a summary line")
	}
	res.Forwarder = *s.summary
	return res, nil
}

// Expected turns a manifest into the audit's expectations.
func Expected(m loadgen.Manifest) []audit.Expected {
	out := make([]audit.Expected, len(m.Events))
	for i, e := range m.Events {
		out[i] = audit.Expected{EventID: e.EventID, Type: e.Type, CustomerID: e.CustomerID, Seq: e.Seq}
	}
	return out
}

// NewTail returns an audit tail over every output stream of the topology.
func (e *Env) NewTail(kc audit.Kinesis) *audit.Tail {
	streams := map[string]audit.Kind{names.QuarantineStream: audit.Quarantine, names.DLQStream: audit.DeadLetter, names.LateStream: audit.Analytics}
	for _, s := range e.Topology.AnalyticsStreams() {
		streams[s] = audit.Analytics
	}
	return audit.NewTail(kc, streams, e.Topology.Routes(), names.OtherStream)
}
