package bench

import (
	"bufio"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
)

// InProcess holds the in-process benchmarks' figures (processors.BenchmarkPipeline and
// BenchmarkFloor, run with -cpu 1 in the same `go test -bench` invocation): the median of each
// metric over the -count repetitions.
type InProcess map[string]map[string]float64 // benchmark name (no -N suffix) -> unit -> median

// Names of the benchmarks the report uses.
const (
	benchPipeline       = "BenchmarkPipeline/clean"
	benchPipelineMixed  = "BenchmarkPipeline/mixed"
	benchPipelineBehind = "BenchmarkPipeline/clean_behind_cursor"
	benchFloor          = "BenchmarkFloor"
)

// ParseGoBench reads `go test -bench` output.
func ParseGoBench(r io.Reader) (InProcess, error) {
	all := map[string]map[string][]float64{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		name := f[0]
		if i := strings.LastIndexByte(name, '-'); i > 0 {
			if _, err := strconv.Atoi(name[i+1:]); err == nil {
				name = name[:i] // GOMAXPROCS suffix
			}
		}
		if _, err := strconv.Atoi(f[1]); err != nil {
			continue
		}
		if all[name] == nil {
			all[name] = map[string][]float64{}
		}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				return nil, fmt.Errorf("benchmark line %q: %w", sc.Text(), err)
			}
			all[name][f[i+1]] = append(all[name][f[i+1]], v)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	out := InProcess{}
	for name, units := range all {
		out[name] = map[string]float64{}
		for unit, vs := range units {
			slices.Sort(vs)
			out[name][unit] = vs[len(vs)/2]
		}
	}
	return out, nil
}

// cpuNs returns the CPU ns per event of a benchmark (its cpu-ns/event metric), 0 when absent.
func (p InProcess) cpuNs(name string) float64 { return p[name]["cpu-ns/event"] }
