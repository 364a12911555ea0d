package kclctl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/kinesis-events/pipeline/checkpoint"
	"github.com/kinesis-events/pipeline/internal/names"
)

// Exit codes. Scripts may rely on them.
const (
	ExitOK       = 0 // success, nothing to warn about
	ExitError    = 1 // the command failed (AWS unreachable, table missing, ...)
	ExitUsage    = 2 // bad command line
	ExitWarnings = 3 // the command succeeded and found warnings (listed in its output)
	ExitRefused  = 4 // a safety check refused a change; nothing was written (e.g. reset of a leased shard without --force)
)

// Environment variables for the global flags' defaults.
const (
	EnvLeaseTable = "LEASE_TABLE"
	EnvRawStream  = "RAW_STREAM"
)

// Defaults of the global flags.
const (
	DefaultLeaseTable = names.LeaseTable // defined in internal/names
	DefaultRawStream  = names.RawStream  // defined in internal/names
	DefaultTimeout    = 10 * time.Second
)

// ErrWarnings is returned by a command that completed and printed warnings; Main maps it to
// ExitWarnings without printing anything more.
var ErrWarnings = errors.New("warnings found")

// ErrRefused is returned (wrapped, with the reason) by a command whose safety check refused the
// change; Main prints it and maps it to ExitRefused.
var ErrRefused = errors.New("refused")

// usageError marks a bad command line (ExitUsage).
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// App holds what the commands need from the outside world. Tests replace any of it.
type App struct {
	Stdout, Stderr io.Writer
	// Getenv supplies the environment for flag defaults (default os.Getenv). The AWS SDK reads its
	// own variables from the process environment.
	Getenv func(string) string
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Connect builds the AWS clients (default ConnectAWS). It is called once per process, on first use.
	Connect func(ctx context.Context, requestTimeout time.Duration) (*Clients, error)
	// ConnectForwarderDLQ builds the forwarder-dlq commands' clients (default ConnectFDLQ), once
	// per process, on first use.
	ConnectForwarderDLQ func(ctx context.Context, requestTimeout time.Duration) (*FDLQClients, error)
	// Inspect builds the checkpoints report (default InspectLive).
	Inspect func(ctx context.Context, c *Clients, table, stream string, now time.Time) (Report, error)
	// Snapshot reads the lease table joined with the stream's shards (default InspectSnapshot).
	Snapshot func(ctx context.Context, c *Clients, table, stream string, now time.Time) (checkpoint.Snapshot, error)
	// Hostname names this machine in the "who" of a reset (default os.Hostname).
	Hostname func() (string, error)
	// Terminal reports whether Stdout is a terminal, so --watch clears the screen (default: checks
	// Stdout when it is an *os.File).
	Terminal func() bool

	clientsOnce sync.Once
	clients     *Clients
	clientsErr  error

	fdlqOnce    sync.Once
	fdlqClients *FDLQClients
	fdlqErr     error
}

func (a *App) withDefaults() {
	if a.Stdout == nil {
		a.Stdout = os.Stdout
	}
	if a.Stderr == nil {
		a.Stderr = os.Stderr
	}
	if a.Getenv == nil {
		a.Getenv = os.Getenv
	}
	if a.Now == nil {
		a.Now = time.Now
	}
	if a.Connect == nil {
		a.Connect = ConnectAWS
	}
	if a.ConnectForwarderDLQ == nil {
		a.ConnectForwarderDLQ = ConnectFDLQ
	}
	if a.Inspect == nil {
		a.Inspect = InspectLive
	}
	if a.Snapshot == nil {
		a.Snapshot = InspectSnapshot
	}
	if a.Hostname == nil {
		a.Hostname = os.Hostname
	}
	if a.Terminal == nil {
		a.Terminal = func() bool {
			f, ok := a.Stdout.(*os.File)
			return ok && term.IsTerminal(int(f.Fd()))
		}
	}
}

// awsClients returns the process's AWS clients, building them on first use.
func (a *App) awsClients(ctx context.Context, timeout time.Duration) (*Clients, error) {
	a.clientsOnce.Do(func() { a.clients, a.clientsErr = a.Connect(ctx, timeout) })
	return a.clients, a.clientsErr
}

// Globals are the flags every command shares.
type Globals struct {
	Table   string
	Stream  string
	Timeout time.Duration
	JSON    bool
}

// Main runs kclctl with args (without the program name) and returns the exit code.
func Main(ctx context.Context, app *App, args []string) int {
	app.withDefaults()
	root := NewRootCommand(app)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	return exitCode(app.Stderr, err)
}

// exitCode reports err on stderr and maps it to an exit code.
func exitCode(stderr io.Writer, err error) int {
	switch {
	case err == nil:
		return ExitOK
	case errors.Is(err, ErrWarnings):
		return ExitWarnings
	case errors.Is(err, ErrRefused):
		fmt.Fprintf(stderr, "kclctl: %v\n", err)
		return ExitRefused
	case errors.Is(err, errReported):
		return ExitError
	case errors.As(err, new(usageError)) || isCobraUsage(err):
		fmt.Fprintf(stderr, "kclctl: %v\nRun 'kclctl --help' for usage.\n", err)
		return ExitUsage
	}
	fmt.Fprintf(stderr, "kclctl: %v\n", err)
	return ExitError
}

// isCobraUsage recognises the usage errors cobra builds itself (it has no typed error for them).
func isCobraUsage(err error) bool {
	msg := err.Error()
	return strings.HasPrefix(msg, "unknown command") || strings.HasPrefix(msg, "unknown flag") ||
		strings.HasPrefix(msg, "unknown shorthand flag")
}

// NewRootCommand builds the kclctl command tree. Every command registers on the root here, sharing
// Globals; new commands follow newCheckpointsCommand.
func NewRootCommand(app *App) *cobra.Command {
	app.withDefaults()
	g := &Globals{}
	envOr := func(k, def string) string {
		if v := app.Getenv(k); v != "" {
			return v
		}
		return def
	}
	root := &cobra.Command{
		Use:   "kclctl",
		Short: "Inspect and operate the KCL worker fleet: leases, checkpoints, lag, resharding, DLQ",
		Long: `kclctl inspects and operates the worker fleet: the lease/checkpoint table, the raw stream
and the dead-letter stream. Human tables by default, --json for scripts.

Commands that change something (reset, scale, dlq replay, forwarder-dlq replay) only show what
they would do unless given --apply; autoscale run is the autoscaler itself.

AWS settings come from the SDK's own environment: AWS_REGION, AWS_ENDPOINT_URL_DYNAMODB,
AWS_ENDPOINT_URL_KINESIS, AWS_ENDPOINT_URL_SQS (local emulators), and the default credential chain.

Exit codes (every command):
  0  ok (a dry run that could be applied is ok too)
  1  error: the command failed (AWS unreachable, table or stream missing, a step failed)
  2  usage: bad command line
  3  warnings found: the command succeeded and listed warnings (expired leases, unbalanced
     fleet, lag not measurable, DLQ records or failure-queue messages that cannot be read or
     replayed, ...)
  4  refused: a safety check stopped a change and nothing was written (reset of a leased
     shard without --force)`,
		SilenceErrors: true,
		SilenceUsage:  true,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageError{fmt.Errorf("unknown command %q for \"kclctl\"", args[0])}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			_ = cmd.Help() // help goes to the terminal; a failure to print it is not actionable
			return usageError{errors.New("a command is required")}
		},
		PersistentPreRunE: func(*cobra.Command, []string) error {
			if g.Timeout <= 0 {
				return usageError{errors.New("--timeout must be positive")}
			}
			if g.Table == "" || g.Stream == "" {
				return usageError{errors.New("--table and --stream must not be empty")}
			}
			return nil
		},
	}
	root.SetOut(app.Stdout)
	root.SetErr(app.Stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.CompletionOptions.DisableDefaultCmd = true
	pf := root.PersistentFlags()
	pf.StringVar(&g.Table, "table", envOr(EnvLeaseTable, names.LeaseTable), "lease table (env "+EnvLeaseTable+")")
	pf.StringVar(&g.Stream, "stream", envOr(EnvRawStream, names.RawStream), "raw stream the fleet consumes (env "+EnvRawStream+")")
	pf.DurationVar(&g.Timeout, "timeout", DefaultTimeout, "deadline of one command run (of each refresh with --watch); also the timeout of each AWS request")
	pf.BoolVar(&g.JSON, "json", false, "print JSON for scripts instead of tables (with --watch: one JSON document per line)")
	root.AddCommand(newFDLQCommand(app, g)) // the forwarder's failure queue (SQS), fdlq_cmd.go

	root.AddCommand(newCheckpointsCommand(app, g), newWorkersCommand(app, g), newResetCommand(app, g),
		newScaleCommand(app, g), newDLQCommand(app, g), newAutoscaleCommand(app, g))
	return root
}

// noArgs rejects positional arguments as a usage error.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usageError{fmt.Errorf("%s takes no arguments, got %q", cmd.CommandPath(), args)}
	}
	return nil
}
