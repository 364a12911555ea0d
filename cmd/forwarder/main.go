// Command forwarder forwards EventBridge events to the raw Kinesis stream: as an AWS Lambda function
// when started by a Lambda runtime, otherwise in local mode from NDJSON files or stdin. See
// forwarder.Command for flags and output.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/kinesis-events/pipeline/forwarder"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := forwarder.Command(ctx, os.Args[1:], os.Getenv, input(), os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "forwarder:", err)
		os.Exit(1)
	}
}
