// Command kclctl is the operator CLI of the worker fleet: lease table, checkpoints and lag (see
// internal/kclctl; kclctl --help lists commands and exit codes).
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/kinesis-events/pipeline/internal/kclctl"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := kclctl.Main(ctx, &kclctl.App{}, os.Args[1:])
	stop()
	os.Exit(code)
}
