package kclctl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/spf13/cobra"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/kinesis-events/pipeline/forwarder"
	"github.com/kinesis-events/pipeline/internal/names"
)

// FDLQClients are the clients the forwarder-dlq commands use.
type FDLQClients struct {
	SQS FailureQueueAPI
	// Kinesis is the forwarder's own client (forwarder.NewKinesisClient), through which replayed
	// events are written exactly as the deployed forwarder writes them.
	Kinesis forwarder.Kinesis
}

// ConnectFDLQ builds the failure queue's SQS client the SDK's way (region, AWS_ENDPOINT_URL_SQS
// locally, credentials), with ConnectAWS's request timeout and retries, and the forwarder's own
// Kinesis client.
func ConnectFDLQ(ctx context.Context, requestTimeout time.Duration) (*FDLQClients, error) {
	cfg, err := config.LoadDefaultConfig(ctx,
		config.WithHTTPClient(awshttp.NewBuildableClient().WithTimeout(requestTimeout)),
		config.WithRetryer(func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) { o.MaxAttempts = 3 })
		}),
	)
	if err != nil {
		return nil, fmt.Errorf("AWS config: %w", err)
	}
	if cfg.Region == "" {
		return nil, errors.New("AWS region not set: set AWS_REGION (us-east-1 locally)")
	}
	kin, err := forwarder.NewKinesisClient(ctx, requestTimeout)
	if err != nil {
		return nil, err
	}
	return &FDLQClients{SQS: sqs.NewFromConfig(cfg), Kinesis: kin}, nil
}

// DefaultFDLQWait bounds one forwarder-dlq run.
const DefaultFDLQWait = 5 * time.Minute

func newFDLQCommand(app *App, g *Globals) *cobra.Command {
	envOr := func(k, def string) string {
		if v := app.Getenv(k); v != "" {
			return v
		}
		return def
	}
	var (
		queue string
		limit int
		wait  time.Duration
	)
	root := &cobra.Command{
		Use:   "forwarder-dlq",
		Short: "List and replay the forwarder's failure queue (SQS)",
		Long: `forwarder-dlq reads the forwarder's failure queue, the SQS queue where EventBridge events end
that the forwarder did not forward: EventBridge puts an event there when it could not invoke the
function within the rule's retry policy (the message is the event, with ERROR_CODE and
ERROR_MESSAGE attributes), and Lambda when the function failed on every attempt, for example
because the raw stream throttled it (the message is the invocation record, the event in its
requestPayload).

SQS cannot peek: both commands receive the messages, which hides them until the run ends (its
--wait bound), and make every message they did not delete visible again before they exit. A run
that is killed leaves its messages hidden for --wait plus 30 s. Listing counts as a receive in
each message's receive count.

--queue takes the queue's name or URL; --wait bounds the whole run; --timeout each AWS request.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_ = cmd.Help() // a failure to print help is not actionable
			return usageError{errors.New("forwarder-dlq needs a subcommand: list or replay")}
		},
	}
	pf := root.PersistentFlags()
	pf.StringVar(&queue, "queue", envOr(EnvForwarderDLQ, DefaultForwarderDLQ), "the failure queue, name or URL (env "+EnvForwarderDLQ+"; a deployed stack prefixes the name with its stage)")
	pf.IntVar(&limit, "limit", DefaultFDLQLimit, "receive at most this many messages")
	pf.DurationVar(&wait, "wait", DefaultFDLQWait, fmt.Sprintf("bound on the whole run, at least %v", MinFDLQWait))
	options := func() (FDLQOptions, error) {
		o := FDLQOptions{Limit: limit, Wait: wait, Now: app.Now}
		if queue == "" {
			return o, usageError{errors.New("--queue must not be empty")}
		}
		if limit < 1 {
			return o, usageError{errors.New("--limit must be positive")}
		}
		if err := o.Validate(); err != nil {
			return o, usageError{fmt.Errorf("--wait: %w", err)}
		}
		return o, nil
	}

	list := &cobra.Command{
		Use:   "list",
		Short: "List the failure queue: count, oldest age, by error, one row per message",
		Long: `list receives the queue's messages (up to --limit), prints one row per message, oldest first
(age in the queue, origin, error, event id, customer, type, seq, receive count, error detail),
then SQS's counts, the oldest message's age (what the queue's oldest-message alarm measures) and
the count per error. --json has every field, the event included. Messages that are neither an
EventBridge event nor a Lambda invocation record are warnings (exit 3); so is a run stopped by
--limit or --wait before the queue was drained.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o, err := options()
			if err != nil {
				return err
			}
			c, err := app.connectFDLQ(cmd.Context(), g.Timeout)
			if err != nil {
				return err
			}
			r, err := ListFailureQueue(cmd.Context(), c.SQS, queue, o)
			if err != nil && r.QueueURL == "" {
				return err
			}
			if werr := app.output(g, r, func(w io.Writer) error { return RenderFDLQList(w, r) }); werr != nil {
				return werr
			}
			switch {
			case err != nil:
				return err
			case len(r.Warnings) > 0:
				return ErrWarnings
			}
			return nil
		},
	}

	var (
		apply      bool
		quarantine string
		piiPaths   string
	)
	replay := &cobra.Command{
		Use:   "replay [--apply] [--limit N] [--wait D]",
		Short: "Re-forward the failure queue's events into the raw stream (dry run unless --apply)",
		Long: `replay hands each message's EventBridge event to the forwarder, exactly as a live invocation
does (the same validation, quarantine of bad input with its reason, PII check and partitioning by
customer_id), writing to the raw stream (--stream) and the quarantine stream
(--quarantine-stream), and deletes a message only after its event was forwarded or quarantined.
A crash in between leaves the message in the queue; its event, written twice, is dropped by the
worker's dedupe, as with any replay. Without --apply it only receives and lists what it would
replay, and makes the messages visible again.

It works through one receive batch (up to 10 messages) at a time, each customer's events in seq
order. An event the forwarder cannot write (after its own retries) stays in the queue, holds the
customer's later events back, and ends the run after its batch: the rest stays in the queue for
the next run. Unparseable messages stay in the queue and are warnings (exit 3). Events not
written, or written and not deleted, make the exit code 1.

Set --pii-paths as the deployed forwarder's FORWARDER_PII_PATHS is set.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o, err := options()
			if err != nil {
				return err
			}
			var paths []string
			for _, p := range strings.Split(piiPaths, ",") {
				if p = strings.TrimSpace(p); p != "" {
					paths = append(paths, p)
				}
			}
			fcfg := forwarder.Config{RawStream: g.Stream, QuarantineStream: quarantine, PIIPaths: paths, Logger: app.forwarderLogger()}
			if err := fcfg.Validate(); err != nil {
				return usageError{fmt.Errorf("forwarder settings: %w", err)}
			}
			c, err := app.connectFDLQ(cmd.Context(), g.Timeout)
			if err != nil {
				return err
			}
			f, err := forwarder.New(fcfg, c.Kinesis)
			if err != nil {
				return err
			}
			r, err := ReplayFailureQueue(cmd.Context(), c.SQS, queue, f, apply, o)
			r.RawStream, r.QuarantineStream = f.Config().RawStream, f.Config().QuarantineStream
			if err != nil && r.QueueURL == "" {
				return err
			}
			if werr := app.output(g, r, func(w io.Writer) error { return RenderFDLQReplay(w, r) }); werr != nil {
				return werr
			}
			switch {
			case err != nil:
				return err
			case r.Failed+r.Held+r.NotDeleted > 0:
				return fmt.Errorf("%d event(s) not written and %d written but not deleted: their messages stay in the queue (see the table)", r.Failed+r.Held, r.NotDeleted)
			case len(r.Warnings) > 0:
				return ErrWarnings
			}
			return nil
		},
	}
	replay.Flags().BoolVar(&apply, "apply", false, "forward the events and delete their messages (default: dry run)")
	replay.Flags().StringVar(&quarantine, "quarantine-stream", envOr(EnvQuarantineStream, names.QuarantineStream), "where the forwarder writes bad input (env "+EnvQuarantineStream+")")
	replay.Flags().StringVar(&piiPaths, "pii-paths", app.Getenv(EnvPIIPaths), "comma-separated detail paths that must hold tokens, as the forwarder's; empty: PII check off (env "+EnvPIIPaths+")")
	root.AddCommand(list, replay)
	return root
}

// connectFDLQ returns the forwarder-dlq clients, building them on first use within timeout.
func (a *App) connectFDLQ(ctx context.Context, timeout time.Duration) (*FDLQClients, error) {
	a.fdlqOnce.Do(func() {
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		a.fdlqClients, a.fdlqErr = a.ConnectForwarderDLQ(ctx, timeout)
	})
	return a.fdlqClients, a.fdlqErr
}

// forwarderLogger gives the replaying forwarder's warnings (quarantined events, writes with an
// unknown outcome and their event ids) to Stderr, one line each.
func (a *App) forwarderLogger() *zap.Logger {
	enc := zap.NewProductionEncoderConfig()
	enc.EncodeTime = zapcore.ISO8601TimeEncoder
	return zap.New(zapcore.NewCore(zapcore.NewConsoleEncoder(enc), zapcore.AddSync(a.Stderr), zapcore.WarnLevel))
}
