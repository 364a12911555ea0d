package fleet

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/kinesis-events/pipeline/processors"
)

// UnknownOutcomes sums, over the worker logs in e.Dir (worker-*.log, every run of each worker, a
// killed one included), the output records the workers sent in a PutRecords attempt whose outcome
// was unknown: at most this many may be in the output twice, byte for byte (audit's Resent). It reads
// the logs rather than the metrics because a killed worker's metrics die with it.
func (e *Env) UnknownOutcomes() (int, error) {
	paths, err := filepath.Glob(filepath.Join(e.Dir, "worker-*.log"))
	if err != nil {
		return 0, err
	}
	total := 0
	for _, p := range paths {
		n, err := unknownOutcomesIn(p)
		if err != nil {
			return 0, err
		}
		total += n
	}
	return total, nil
}

// ForwarderUnknownOutcomes is UnknownOutcomes for the forwarder's log (forwarder.log): the raw and
// quarantine records it sent in an attempt whose outcome was unknown (the raw ones the workers'
// dedupe drops; the quarantine ones may be in the quarantine stream twice).
func (e *Env) ForwarderUnknownOutcomes() (int, error) {
	n, err := unknownOutcomesIn(filepath.Join(e.Dir, "forwarder.log"))
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	return n, err
}

func unknownOutcomesIn(path string) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	total := 0
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 4*1024*1024)
	for sc.Scan() {
		line := sc.Bytes()
		if !strings.Contains(string(line), processors.LogUnknownOutcome) {
			continue
		}
		var l struct {
			Msg     string `json:"msg"`
			Records int    `json:"records"`
		}
		if err := json.Unmarshal(line, &l); err != nil || l.Msg != processors.LogUnknownOutcome {
			return 0, fmt.Errorf("%s: unreadable unknown-outcome line: %.200s", path, line)
		}
		total += l.Records
	}
	return total, sc.Err()
}
