// Package profile writes a process's pprof profiles: CPU from Start to stop, and allocations
// (every allocation sampled since the process started, the "allocs" profile) at stop. The worker
// (-cpuprofile, -memprofile) and the forwarder in local mode (--cpuprofile, --memprofile) offer it;
// `BENCH_PROFILE=1 make bench` passes those flags to the processes it measures and prints the top
// entries of each profile (BENCHMARKS.md, "Profiles").
//
// Profiling costs a little CPU (the CPU profiler samples at 100 Hz): figures taken with it on are
// for finding where the time goes, not for the report's ratios.
//
// Concurrency: one profile per process; Start must not be called again before its stop.
package profile

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
)

// Files names the profiles to write; an empty name writes none of that kind.
type Files struct {
	CPU string // CPU profile, from Start to stop
	Mem string // allocation profile ("allocs"), written at stop
}

// Start begins the CPU profile (when f.CPU is set) and returns stop, which ends it and writes the
// allocation profile (when f.Mem is set). stop reports every file it could not write.
func Start(f Files) (stop func() error, err error) {
	var cpu *os.File
	if f.CPU != "" {
		if cpu, err = os.Create(f.CPU); err != nil {
			return nil, fmt.Errorf("cpu profile: %w", err)
		}
		if err := pprof.StartCPUProfile(cpu); err != nil {
			cpu.Close()
			return nil, fmt.Errorf("cpu profile %s: %w", f.CPU, err)
		}
	}
	return func() error {
		var errs []error
		if cpu != nil {
			pprof.StopCPUProfile()
			if err := cpu.Close(); err != nil {
				errs = append(errs, fmt.Errorf("cpu profile %s: %w", f.CPU, err))
			}
		}
		if f.Mem != "" {
			errs = append(errs, writeAllocs(f.Mem))
		}
		return errors.Join(errs...)
	}, nil
}

func writeAllocs(path string) error {
	out, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("allocation profile: %w", err)
	}
	runtime.GC() // the profile's in-use figures are as of the last GC
	err = pprof.Lookup("allocs").WriteTo(out, 0)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("allocation profile %s: %w", path, err)
	}
	return nil
}
