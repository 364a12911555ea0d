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
// BenchmarkFloor with -cpu 1, and BenchmarkDedupeState): every run of each benchmark, in the order
// they ran. scripts/bench.sh runs `go test -bench` several times, each run measuring the pipeline
// and its floor a moment apart, so that their ratio is taken pair by pair and a machine whose
// speed drifts does not skew it.
type InProcess map[string]map[string][]float64 // benchmark name (no -N suffix) -> unit -> values

// Names of the benchmarks the report uses.
const (
	benchPipeline      = "BenchmarkPipeline/clean"
	benchPipelineMixed = "BenchmarkPipeline/mixed"
	benchFloor         = "BenchmarkFloor"
	// processors.BenchmarkDedupeState, at 10,000 and 1,000,000 customers.
	benchStateFew  = "BenchmarkDedupeState/customers=10000"
	benchStateMany = "BenchmarkDedupeState/customers=1000000"
	writeUnitsUnit = "writeunits/event"
	roundTripsUnit = "roundtrips/event"
)

// ParseGoBench reads `go test -bench` output (one or several runs, concatenated).
func ParseGoBench(r io.Reader) (InProcess, error) {
	out := InProcess{}
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
		if out[name] == nil {
			out[name] = map[string][]float64{}
		}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				return nil, fmt.Errorf("benchmark line %q: %w", sc.Text(), err)
			}
			out[name][f[i+1]] = append(out[name][f[i+1]], v)
		}
	}
	return out, sc.Err()
}

// median returns the median of a benchmark's metric over its runs, 0 when absent.
func (p InProcess) median(name, unit string) float64 {
	return medianOf(p[name][unit])
}

// ratio returns the median over runs i of name's unit divided by base's unit in the same run i.
func (p InProcess) ratio(name, base, unit string) float64 {
	a, b := p[name][unit], p[base][unit]
	rs := make([]float64, 0, min(len(a), len(b)))
	for i := range min(len(a), len(b)) {
		if b[i] > 0 {
			rs = append(rs, a[i]/b[i])
		}
	}
	return medianOf(rs)
}

func medianOf(vs []float64) float64 {
	if len(vs) == 0 {
		return 0
	}
	s := slices.Clone(vs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
