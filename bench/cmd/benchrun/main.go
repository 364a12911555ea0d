// Command benchrun runs the end-to-end benchmarks of package bench on the local stack and prints the
// summary table of issue 7; scripts/bench.sh (`make bench`) runs it after the in-process benchmarks.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/kinesis-events/pipeline/bench"
)

func main() {
	var (
		cfg       bench.Config
		quick     bool
		only      string
		inProcess string
		jsonOut   string
		doc       string
		commit    string
		command   string
		timeout   time.Duration
	)
	flag.StringVar(&cfg.Bin, "bin", "bin", "directory holding the worker, forwarder, loadgen and putloop binaries")
	flag.StringVar(&cfg.Dir, "dir", "", "keep every scenario's logs here (default: a temporary directory, removed)")
	flag.BoolVar(&quick, "quick", false, "CI sizes: a few thousand events, a 10 s outage")
	flag.StringVar(&only, "only", "", "comma-separated scenarios: "+strings.Join(bench.Scenarios, ","))
	flag.StringVar(&inProcess, "in-process", "", "`go test -bench` output of the in-process benchmarks of this run, to include")
	flag.StringVar(&jsonOut, "json", "", "write the whole report as JSON to this file")
	flag.StringVar(&doc, "update-doc", "", "rewrite the generated section of this markdown file (BENCHMARKS.md)")
	flag.StringVar(&commit, "commit", "", "commit the binaries were built from, for the report")
	flag.StringVar(&command, "command", "make bench", "command line named in the markdown")
	flag.DurationVar(&timeout, "timeout", 12*time.Minute, "bound on the whole run; the report shows what finished")
	events := flag.Int("events", 0, "events in the pre-filled raw stream (ingest, throughput; default 20,000, or the -quick size)")
	customers := flag.Int("customers", 0, "customers those events are spread over (default 1,000, or the -quick size)")
	profileDir := flag.String("profile-dir", "", "make the measured worker and forwarder processes write pprof CPU and allocation profiles into this directory")
	flag.Parse()
	if quick {
		q := bench.Quick(cfg.Bin)
		q.Dir = cfg.Dir
		cfg = q
	}
	if *events > 0 {
		cfg.Events = *events
	}
	if *customers > 0 {
		cfg.Customers = *customers
	}
	if only != "" {
		cfg.Only = strings.Split(only, ",")
	}
	cfg.ProfileDir = *profileDir
	log, _ := zap.NewDevelopment()
	cfg.Logger = log

	var ip bench.InProcess
	if inProcess != "" {
		f, err := os.Open(inProcess)
		if err != nil {
			fail(err)
		}
		ip, err = bench.ParseGoBench(f)
		f.Close()
		if err != nil {
			fail(err)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	rep, runErr := bench.Run(ctx, cfg, ip)
	if rep == nil {
		fail(runErr)
	}
	rep.Commit = commit
	rep.Print(os.Stdout)
	if jsonOut != "" {
		b, _ := json.MarshalIndent(rep, "", "  ")
		if err := os.WriteFile(jsonOut, b, 0o644); err != nil {
			fail(err)
		}
	}
	if doc != "" {
		if err := rep.UpdateDoc(doc, command); err != nil {
			fail(err)
		}
	}
	if runErr != nil {
		fail(runErr)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "benchrun:", err)
	os.Exit(1)
}
