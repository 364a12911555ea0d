package kclctl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/spf13/cobra"

	"github.com/kinesis-events/pipeline/checkpoint"
	"github.com/kinesis-events/pipeline/internal/names"
	"github.com/kinesis-events/pipeline/processors"
)

// EnvDedupeTable names the dedupe table for the commands that read the workers' dedupe state.
const EnvDedupeTable = "DEDUPE_TABLE"

// ResetReport is what `kclctl reset` shows (and prints with --json).
type ResetReport struct {
	Table  string `json:"table"`
	Stream string `json:"stream"`
	Shard  string `json:"shard"`
	// To is the requested position: trim-horizon, latest, "timestamp <RFC3339>", "sequence <n>".
	To string `json:"to"`
	// OldCheckpoint is the checkpoint before; NewCheckpoint the one the reset writes ("" = none: the
	// next owner starts at the trim horizon).
	OldCheckpoint string `json:"old_checkpoint"`
	NewCheckpoint string `json:"new_checkpoint"`
	Owner         string `json:"owner,omitempty"`
	LeaseLive     bool   `json:"lease_live"`
	// Result is "dry-run", "applied" or "refused".
	Result string    `json:"result"`
	Who    string    `json:"who"`
	At     time.Time `json:"at"`
	Notes  []string  `json:"notes"`
	// Rewind is how old the oldest record the new position reads again is (0: none, or unknown);
	// Horizon the dedupe horizon the shard's workers run with (0: unknown). A rewind past the
	// horizon is a warning: events of customers silent for longer would be delivered again.
	Rewind  time.Duration `json:"rewind_ns,omitempty"`
	Horizon time.Duration `json:"dedupe_horizon_ns,omitempty"`
	// PastHorizon is set when Rewind is longer than Horizon.
	PastHorizon bool `json:"past_dedupe_horizon,omitempty"`
}

// Reset results.
const (
	ResetDryRun  = "dry-run"
	ResetApplied = "applied"
	ResetRefused = "refused"
)

// ParsePosition parses the --to value and its optional argument: trim-horizon, latest, timestamp T
// (RFC 3339, or a negative duration such as -15m meaning that long before now) and sequence N.
// "timestamp=T" and "sequence=N" are accepted too.
func ParsePosition(to string, args []string, now time.Time) (checkpoint.Position, error) {
	kind, val, hasEq := strings.Cut(to, "=")
	if hasEq {
		if len(args) > 0 {
			return checkpoint.Position{}, fmt.Errorf("--to %s takes no further argument, got %q", to, args)
		}
		args = []string{val}
	}
	need := func(what string) (string, error) {
		if len(args) != 1 || args[0] == "" {
			return "", fmt.Errorf("--to %s needs exactly one %s after it, e.g. --to %s", kind, what, map[string]string{
				"timestamp": "timestamp 2026-11-26T12:00:00Z", "sequence": "sequence 49654720134325543987431296012345678901234567890123450034"}[kind])
		}
		return args[0], nil
	}
	switch checkpoint.PositionKind(kind) {
	case checkpoint.PositionTrimHorizon, checkpoint.PositionLatest:
		if len(args) > 0 {
			return checkpoint.Position{}, fmt.Errorf("--to %s takes no argument, got %q", kind, args)
		}
		return checkpoint.Position{Kind: checkpoint.PositionKind(kind)}, nil
	case checkpoint.PositionAtTimestamp:
		v, err := need("time")
		if err != nil {
			return checkpoint.Position{}, err
		}
		if d, derr := time.ParseDuration(v); derr == nil {
			if d >= 0 {
				return checkpoint.Position{}, fmt.Errorf("--to timestamp %s: a relative time must be negative (before now), e.g. -15m", v)
			}
			return checkpoint.Position{Kind: checkpoint.PositionAtTimestamp, Timestamp: now.Add(d)}, nil
		}
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return checkpoint.Position{}, fmt.Errorf("--to timestamp %q: want RFC 3339 (2026-11-26T12:00:00Z) or a negative duration (-15m)", v)
		}
		return checkpoint.Position{Kind: checkpoint.PositionAtTimestamp, Timestamp: t}, nil
	case checkpoint.PositionAfterSequence:
		v, err := need("sequence number")
		if err != nil {
			return checkpoint.Position{}, err
		}
		for _, r := range v {
			if r < '0' || r > '9' {
				return checkpoint.Position{}, fmt.Errorf("--to sequence %q: not a sequence number", v)
			}
		}
		return checkpoint.Position{Kind: checkpoint.PositionAfterSequence, Sequence: v}, nil
	}
	return checkpoint.Position{}, fmt.Errorf("--to %q: want trim-horizon, latest, timestamp T or sequence N", to)
}

func describePosition(p checkpoint.Position) string {
	switch p.Kind {
	case checkpoint.PositionAtTimestamp:
		return "timestamp " + p.Timestamp.UTC().Format(time.RFC3339Nano)
	case checkpoint.PositionAfterSequence:
		return "sequence " + p.Sequence
	}
	return string(p.Kind)
}

func newResetCommand(app *App, g *Globals) *cobra.Command {
	var (
		shard, to, who string
		apply, force   bool
		dedupeTable    string
	)
	cmd := &cobra.Command{
		Use:   "reset --shard S --to trim-horizon|latest|timestamp T|sequence N [--apply] [--force]",
		Short: "Move a shard's checkpoint (dry run unless --apply)",
		Long: `reset moves one shard's checkpoint, so the fleet re-reads (or skips) records.

  --to trim-horizon   remove the checkpoint: the next owner starts at the oldest record
  --to latest         skip everything in the shard now (SHARD_END for a closed shard)
  --to timestamp T    resume at the first record that arrived at or after T (RFC 3339, or a
                      negative duration, written --to timestamp=-15m for "15 minutes ago")
  --to sequence N     resume after record N (checkpoint semantics)

Without --apply it only shows the current and the new checkpoint. With --apply it writes the
new checkpoint and records who and when in the lease row (LastResetBy, LastResetAt,
LastResetFrom). It refuses (exit 4, nothing written) while a worker holds a live lease on the
shard, unless --force: then the holder is fenced out (its next checkpoint fails, its processor
stops without writing more) and a worker takes the shard again from the new position.

Re-reading records is safe within the dedupe horizon (the raw stream's retention plus a day, unless
the workers were given a longer one): the pipeline's dedupe drops events already delivered. reset
reads how old the oldest record it makes the fleet read again is, and the horizon from the workers'
state in the dedupe table (--dedupe-table); a rewind past the horizon is a warning (exit 3), since
events of customers silent for longer than the horizon would be delivered again.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if shard == "" || to == "" {
				return usageError{errors.New("reset needs --shard and --to")}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			pos, err := ParsePosition(to, args, app.Now())
			if err != nil {
				return usageError{err}
			}
			if who == "" {
				who = app.defaultWho()
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), g.Timeout)
			defer cancel()
			c, err := app.awsClients(ctx, g.Timeout)
			if err != nil {
				return err
			}
			rep, err := RunReset(ctx, c.DynamoDB, c.Kinesis, g.Table, g.Stream, shard, pos, apply, force, who, app.Now())
			if err == nil && rep.Shard != "" {
				err = checkHorizon(ctx, &rep, c.Kinesis, processors.NewDynamoDedupe(c.DynamoDB, dedupeTable), g.Stream, pos, app.Now())
			}
			if rep.Shard != "" {
				if werr := app.output(g, rep, func(w io.Writer) error { return RenderReset(w, rep) }); werr != nil {
					return werr
				}
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&shard, "shard", "", "shard id, e.g. shardId-000000000001")
	f.StringVar(&to, "to", "", "new position: trim-horizon, latest, timestamp T, sequence N")
	f.BoolVar(&apply, "apply", false, "write the new checkpoint (default: dry run)")
	f.BoolVar(&force, "force", false, "reset even while a worker holds the lease (fences it out)")
	f.StringVar(&who, "who", "", "who is resetting, recorded in the lease row (default $USER@hostname)")
	dedupeDefault := names.DedupeTable
	if v := app.Getenv(EnvDedupeTable); v != "" {
		dedupeDefault = v
	}
	f.StringVar(&dedupeTable, "dedupe-table", dedupeDefault, "the workers' dedupe table, for their dedupe horizon (env "+EnvDedupeTable+")")
	return cmd
}

// checkHorizon fills rep's rewind and horizon and returns ErrWarnings when the rewind reaches past
// the horizon. Not knowing either is a note, not a warning.
func checkHorizon(ctx context.Context, rep *ResetReport, kin checkpoint.KinesisAPI, state processors.DedupeStore, stream string, pos checkpoint.Position, now time.Time) error {
	rewind, known, err := rewindAge(ctx, kin, stream, rep.Shard, pos, now)
	if err != nil {
		rep.Notes = append(rep.Notes, "could not read how far back the reset reaches: "+err.Error())
		return nil
	}
	if !known {
		return nil
	}
	rep.Rewind = rewind
	horizon, ok, err := processors.ReadHorizon(ctx, state, rep.Shard)
	switch {
	case err != nil:
		rep.Notes = append(rep.Notes, "could not read the dedupe horizon: "+err.Error())
		return nil
	case !ok:
		rep.Notes = append(rep.Notes, "no dedupe state for the shard in the dedupe table: its horizon is unknown")
		return nil
	}
	rep.Horizon = horizon
	if rewind <= horizon {
		rep.Notes = append(rep.Notes, fmt.Sprintf("the oldest record read again is %s old, within the dedupe horizon %s: duplicates are dropped", rewind.Round(time.Second), horizon))
		return nil
	}
	rep.PastHorizon = true
	rep.Notes = append(rep.Notes, fmt.Sprintf("WARNING: the oldest record read again is %s old, past the dedupe horizon %s: events of customers silent for longer than the horizon would be delivered again",
		rewind.Round(time.Second), horizon))
	return ErrWarnings
}

// rewindAge returns how old the first record the new position makes the fleet read is (false when
// it reads nothing again: latest, or an empty shard).
func rewindAge(ctx context.Context, kin checkpoint.KinesisAPI, stream, shard string, pos checkpoint.Position, now time.Time) (time.Duration, bool, error) {
	in := &kinesis.GetShardIteratorInput{StreamName: aws.String(stream), ShardId: aws.String(shard)}
	switch pos.Kind {
	case checkpoint.PositionLatest:
		return 0, false, nil
	case checkpoint.PositionAtTimestamp:
		return now.Sub(pos.Timestamp), true, nil
	case checkpoint.PositionAfterSequence:
		in.ShardIteratorType, in.StartingSequenceNumber = types.ShardIteratorTypeAfterSequenceNumber, aws.String(pos.Sequence)
	default:
		in.ShardIteratorType = types.ShardIteratorTypeTrimHorizon
	}
	out, err := kin.GetShardIterator(ctx, in)
	if err != nil {
		return 0, false, err
	}
	it := out.ShardIterator
	for range maxEmptyReads {
		if it == nil {
			return 0, false, nil
		}
		page, err := kin.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: it, Limit: aws.Int32(1)})
		if err != nil {
			return 0, false, err
		}
		if len(page.Records) > 0 {
			return now.Sub(aws.ToTime(page.Records[0].ApproximateArrivalTimestamp)), true, nil
		}
		if aws.ToInt64(page.MillisBehindLatest) == 0 {
			return 0, false, nil
		}
		it = page.NextShardIterator
	}
	return 0, false, nil
}

func (a *App) defaultWho() string {
	user := a.Getenv("USER")
	if user == "" {
		user = "unknown"
	}
	host, err := a.Hostname()
	if err != nil || host == "" {
		return user
	}
	return user + "@" + host
}

// output writes v as JSON with --json, else with render.
func (a *App) output(g *Globals, v any, render func(io.Writer) error) error {
	var err error
	if g.JSON {
		err = WriteJSON(a.Stdout, v, false)
	} else {
		err = render(a.Stdout)
	}
	if err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	return nil
}

// RunReset plans the reset and, with apply, performs it. A refusal (live lease without force) is an
// error wrapping ErrRefused, with the report filled in.
func RunReset(ctx context.Context, ddb checkpoint.DynamoDBAPI, kin checkpoint.KinesisAPI, table, stream, shard string, pos checkpoint.Position, apply, force bool, who string, now time.Time) (ResetReport, error) {
	rep := ResetReport{Table: table, Stream: stream, Shard: shard, To: describePosition(pos), Who: who, At: now.UTC(), Notes: []string{}}
	fill := func(r checkpoint.ResetResult) {
		rep.OldCheckpoint, rep.NewCheckpoint, rep.Owner, rep.LeaseLive = r.OldCheckpoint, r.NewCheckpoint, r.Owner, r.LeaseLive
		rep.Notes = append(rep.Notes, r.Notes...)
	}
	if !apply {
		r, err := checkpoint.PlanReset(ctx, ddb, kin, table, stream, shard, pos, now)
		if err != nil {
			return ResetReport{}, err
		}
		fill(r)
		rep.Result = ResetDryRun
		if r.LeaseLive && !force {
			rep.Notes = append(rep.Notes, fmt.Sprintf("%s holds a live lease: --apply would be refused without --force", r.Owner))
		}
		rep.Notes = append(rep.Notes, "dry run: nothing written; add --apply to reset")
		return rep, nil
	}
	r, err := checkpoint.Reset(ctx, ddb, kin, table, stream, shard, pos, force, who, now)
	switch {
	case errors.Is(err, checkpoint.ErrShardLeased):
		fill(r)
		rep.Result = ResetRefused
		rep.Notes = append(rep.Notes, "nothing written: stop the owner first, wait for the lease to move, or add --force to fence it out")
		return rep, fmt.Errorf("%w: %v", ErrRefused, err)
	case err != nil:
		return ResetReport{}, err
	}
	fill(r)
	rep.Result = ResetApplied
	if r.Owner != "" {
		rep.Notes = append(rep.Notes, fmt.Sprintf("%s was fenced out; a worker takes the shard again from the new checkpoint", r.Owner))
	}
	return rep, nil
}

// ResetHeader is the header of the reset table.
var ResetHeader = []string{"SHARD", "OWNER", "LEASE", "TO", "CHECKPOINT NOW", "NEW CHECKPOINT", "RESULT"}

// RenderReset writes the reset as a one-row table (full sequence numbers) and its notes.
func RenderReset(w io.Writer, r ResetReport) error {
	lease := "-"
	if r.Owner != "" {
		lease = "expired"
		if r.LeaseLive {
			lease = "live"
		}
	}
	cp := func(s string) string {
		if s == "" {
			return "(none: trim horizon)"
		}
		return s
	}
	to := r.To
	if strings.HasPrefix(to, string(checkpoint.PositionAfterSequence)+" ") {
		to = string(checkpoint.PositionAfterSequence) // the number is the new checkpoint
	}
	row := []string{clean(r.Shard), orDash(clean(r.Owner)), lease, clean(to), clean(cp(r.OldCheckpoint)), clean(cp(r.NewCheckpoint)), r.Result}
	if err := Table(w, ResetHeader, [][]string{row}); err != nil {
		return err
	}
	if r.Result == ResetApplied || len(r.Notes) > 0 {
		if _, err := fmt.Fprintln(w); err != nil {
			return err
		}
	}
	if r.Result == ResetApplied {
		if _, err := fmt.Fprintf(w, "recorded: LastResetBy=%s LastResetAt=%s\n", r.Who, r.At.Format(time.RFC3339)); err != nil {
			return err
		}
	}
	for _, n := range r.Notes {
		if _, err := fmt.Fprintf(w, "note: %s\n", clean(n)); err != nil {
			return err
		}
	}
	return nil
}
