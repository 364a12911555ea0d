// Command loadgen writes synthetic, signed customer events as NDJSON EventBridge events to stdout or
// a file, or forwards them in-process to the raw stream. See internal/loadgen/cli for flags and exit
// codes (loadgen -h).
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/kinesis-events/pipeline/internal/loadgen/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv, time.Now)
	stop()
	os.Exit(code)
}
