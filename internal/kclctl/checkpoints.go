package kclctl

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"
)

// DefaultWatchInterval is the refresh interval of --watch.
const DefaultWatchInterval = 2 * time.Second

// clearScreen moves the cursor home and clears the terminal (ANSI).
const clearScreen = "\x1b[H\x1b[2J"

func newCheckpointsCommand(app *App, g *Globals) *cobra.Command {
	var (
		watch    bool
		interval time.Duration
	)
	cmd := &cobra.Command{
		Use:   "checkpoints",
		Short: "Show each shard's state, parents, lease owner and expiry, checkpoint and lag",
		Long: `checkpoints prints the lease table joined with the stream's shards: per shard its state
(open, closed, SHARD_END, gone), parent shard(s), lease owner, time until the lease expires,
checkpoint (sequence numbers shortened; full in --json), lag and how far behind the owner reads.

LAG is the age of the oldest unprocessed record: the arrival time of the first record after the
checkpoint. "0" means caught up, "-" finished (SHARD_END), "?" not measurable (see --json).
BEHIND is the MillisBehindLatest the owning worker last saw from GetRecords, published in the
lease row with every renewal and checkpoint; "-" when no worker holds the shard.

Warnings (expired or orphaned leases, children waiting on unfinished parents, shards without
progress, lag that could not be read) are listed after the table; any warning makes the exit
code 3.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if interval <= 0 {
				return usageError{fmt.Errorf("--interval must be positive")}
			}
			ctx := cmd.Context()
			if !watch {
				return codeErr(app.checkpointsOnce(ctx, g, app.Stdout, false))
			}
			terminal := app.Terminal() && !g.JSON
			code := Watch(ctx, interval, func(ctx context.Context) int {
				if terminal {
					fmt.Fprint(app.Stdout, clearScreen)
				}
				if !g.JSON {
					fmt.Fprintf(app.Stdout, "Every %s: kclctl checkpoints --table %s --stream %s    %s\n\n",
						interval, g.Table, g.Stream, app.Now().UTC().Format(time.RFC3339))
				}
				code := app.checkpointsOnce(ctx, g, app.Stdout, true)
				if !g.JSON && !terminal {
					fmt.Fprintln(app.Stdout)
				}
				return code
			})
			return codeErr(code)
		},
	}
	cmd.Flags().BoolVarP(&watch, "watch", "w", false, "refresh until interrupted; the exit code is that of the last complete refresh")
	cmd.Flags().DurationVar(&interval, "interval", DefaultWatchInterval, "refresh interval of --watch")
	return cmd
}

// codeErr turns an exit code of a completed run back into the error Main maps to it.
func codeErr(code int) error {
	switch code {
	case ExitOK:
		return nil
	case ExitWarnings:
		return ErrWarnings
	}
	return errReported
}

// errReported is an error already printed to stderr; Main exits 1 without printing it again.
var errReported = &reportedError{}

type reportedError struct{}

func (*reportedError) Error() string { return "error reported above" }

// checkpointsOnce builds and prints one report and returns its exit code. Errors go to stderr (in
// --watch mode the next refresh tries again).
func (a *App) checkpointsOnce(parent context.Context, g *Globals, w io.Writer, compactJSON bool) int {
	ctx, cancel := context.WithTimeout(parent, g.Timeout)
	defer cancel()
	r, err := a.checkpointsReport(ctx, g)
	if err != nil {
		if parent.Err() == nil { // an interrupted --watch needs no error message
			fmt.Fprintf(a.Stderr, "kclctl: checkpoints: %v\n", err)
		}
		return ExitError
	}
	if g.JSON {
		err = WriteJSON(w, r, compactJSON)
	} else {
		err = RenderCheckpoints(w, r)
	}
	if err != nil {
		fmt.Fprintf(a.Stderr, "kclctl: write output: %v\n", err)
		return ExitError
	}
	if len(r.Warnings) > 0 {
		return ExitWarnings
	}
	return ExitOK
}

func (a *App) checkpointsReport(ctx context.Context, g *Globals) (Report, error) {
	c, err := a.awsClients(ctx, g.Timeout)
	if err != nil {
		return Report{}, err
	}
	r, err := a.Inspect(ctx, c, g.Table, g.Stream, a.Now())
	if err != nil {
		return Report{}, err
	}
	if r.Warnings == nil {
		r.Warnings = []Warning{} // [] rather than null in --json
	}
	for i := range r.Shards {
		if r.Shards[i].Parents == nil {
			r.Shards[i].Parents = []string{}
		}
	}
	return r, nil
}
