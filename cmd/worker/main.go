// Command worker runs one member of the KCL worker fleet: it leases shards of the raw stream, runs
// each record through verify, dedupe, reorder and route, and writes the per-type analytics streams.
//
// Configuration comes from flags, each with an environment variable fallback (shown in -help); AWS
// endpoints, region and credentials come from the SDK's own conventions (AWS_REGION,
// AWS_ENDPOINT_URL_KINESIS, AWS_ENDPOINT_URL_DYNAMODB, the default credential chain). Flags and
// variables are read in config.go (parse), the worker is set up in run.go.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/kinesis-events/pipeline/internal/profile"
)

func main() {
	os.Exit(realMain())
}

func realMain() int {
	o, err := parse(os.Args[1:], os.LookupEnv, os.Hostname, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		return 1
	}
	if o.PrintConfig {
		if err := json.NewEncoder(os.Stdout).Encode(o.Worker); err != nil {
			fmt.Fprintln(os.Stderr, "worker:", err)
			return 1
		}
		return 0
	}
	log, err := newLogger(o.LogLevel)
	if err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		return 1
	}
	defer func() { _ = log.Sync() }()
	stopProfile, err := profile.Start(o.Profile)
	if err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		return 1
	}
	code := 0
	defer func() {
		if err := stopProfile(); err != nil {
			fmt.Fprintln(os.Stderr, "worker:", err)
		}
	}()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o, log); err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		code = 1
	}
	return code
}
