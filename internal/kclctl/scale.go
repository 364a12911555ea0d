package kclctl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/big"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/spf13/cobra"

	"github.com/kinesis-events/pipeline/internal/reshard"
)

// ScaleAPI is the part of the Kinesis API `kclctl scale` uses. *kinesis.Client implements it.
type ScaleAPI = reshard.API

// Scale methods.
const (
	MethodAuto       = reshard.MethodAuto       // UpdateShardCount, or split/merge where the endpoint lacks it
	MethodUniform    = reshard.MethodUniform    // UpdateShardCount (UNIFORM_SCALING) only
	MethodSplitMerge = reshard.MethodSplitMerge // SplitShard/MergeShards one step at a time
)

// The planning and the resharding itself live in internal/reshard, shared with the autoscaler;
// these names keep kclctl's API.
type (
	// ShardRange is an open shard's hash key range (inclusive bounds).
	ShardRange = reshard.Range
	// ScaleStep is one resharding operation, planned or done.
	ScaleStep = reshard.Step
	// LineageShard is one shard of the stream after a scale, open or closed.
	LineageShard = reshard.Lineage
	// ScaleReport is what `kclctl scale` shows (and prints with --json).
	ScaleReport = reshard.Report
	// ScaleOptions configures RunScale.
	ScaleOptions = reshard.Options
)

// RunScale reshards the stream to opts.Target open shards, or (without Apply) shows how it would:
// reshard.Run.
func RunScale(ctx context.Context, kin ScaleAPI, o ScaleOptions) (ScaleReport, error) {
	return reshard.Run(ctx, kin, o)
}

// PlanSplitMerge simulates the split/merge path from open to target open shards:
// reshard.PlanSplitMerge.
func PlanSplitMerge(open []ShardRange, target int) ([]ScaleStep, error) {
	return reshard.PlanSplitMerge(open, target)
}

// hashSpace, uniformNext, listAllShards and openRanges keep the names this package's tests use.
var hashSpace = reshard.HashSpace

func uniformNext(cur, target int) int { return reshard.NextUniform(cur, target) }

func listAllShards(ctx context.Context, kin ScaleAPI, stream string) ([]types.Shard, error) {
	return reshard.ListAll(ctx, kin, stream)
}

func openRanges(all []types.Shard) []ShardRange { return reshard.OpenRanges(all) }

// RenderScale writes the steps, the lineage and the notes.
func RenderScale(w io.Writer, r ScaleReport) error {
	verb := "would run"
	if r.Applied {
		verb = "ran"
	}
	if _, err := fmt.Fprintf(w, "stream %s: %d -> %d open shards (%s; %s %d step(s))\n\n", r.Stream, r.From, r.To, r.Method, verb, len(r.Steps)); err != nil {
		return err
	}
	if len(r.Steps) > 0 {
		rows := make([][]string, len(r.Steps))
		for i, s := range r.Steps {
			detail := "-"
			switch {
			case s.Op == "split":
				detail = "at " + reshard.HashPct(mustInt(s.NewStartingHashKey))
			case s.Op == "update-shard-count":
				detail = "to " + strconv.Itoa(s.Target)
			}
			took := "-"
			if s.TookMS > 0 {
				took = HumanDuration(time.Duration(s.TookMS) * time.Millisecond)
			}
			rows[i] = []string{strconv.Itoa(i + 1), s.Op, orDash(strings.Join(s.Shards, " + ")), detail, orDash(strings.Join(s.Children, ",")), took}
		}
		if err := Table(w, []string{"STEP", "OP", "SHARDS", "DETAIL", "NEW SHARDS", "TOOK"}, rows); err != nil {
			return err
		}
		if _, err := fmt.Fprintln(w); err != nil {
			return err
		}
	}
	title := "lineage now:"
	if r.Applied {
		title = "lineage after:"
	}
	if _, err := fmt.Fprintln(w, title); err != nil {
		return err
	}
	rows := make([][]string, len(r.Lineage))
	for i, l := range r.Lineage {
		rows[i] = []string{l.ShardID, l.State, orDash(strings.Join(l.Parents, ",")), orDash(l.HashRange)}
	}
	if err := Table(w, []string{"SHARD", "STATE", "PARENTS", "HASH RANGE"}, rows); err != nil {
		return err
	}
	if r.Applied {
		if _, err := fmt.Fprintf(w, "\ntook %s\n", HumanDuration(time.Duration(r.TookMS)*time.Millisecond)); err != nil {
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

func mustInt(s string) *big.Int {
	n, ok := new(big.Int).SetString(s, 10)
	if !ok {
		return new(big.Int)
	}
	return n
}

func newScaleCommand(app *App, g *Globals) *cobra.Command {
	var (
		shards int
		method string
		apply  bool
		wait   time.Duration
	)
	cmd := &cobra.Command{
		Use:   "scale --shards N [--apply]",
		Short: "Reshard the raw stream to N open shards (dry run unless --apply)",
		Long: `scale reshards the stream to N open shards and shows the resulting lineage.

--method auto (default) uses UpdateShardCount (UNIFORM_SCALING; at most doubling or halving per
call, so larger changes take several calls) and falls back to split/merge where the endpoint
lacks UpdateShardCount (kinesalite). --method split-merge always splits the widest open shard in
the middle or merges the adjacent pair with the narrowest combined range, one step at a time,
waiting for the stream to be ACTIVE after each. --method uniform never falls back.

The fleet follows by itself: workers find the new shards, finish each parent to SHARD_END
before any worker leases its children (so per-key order holds), and rebalance leases.

Without --apply it shows the plan and the current lineage. --wait bounds the whole run.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if shards < 1 {
				return usageError{errors.New("scale needs --shards N with N >= 1")}
			}
			if method != MethodAuto && method != MethodUniform && method != MethodSplitMerge {
				return usageError{fmt.Errorf("--method %q: want auto, uniform or split-merge", method)}
			}
			if wait <= 0 {
				return usageError{errors.New("--wait must be positive")}
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), wait)
			defer cancel()
			c, err := app.awsClients(ctx, g.Timeout)
			if err != nil {
				return err
			}
			rep, err := RunScale(ctx, c.Kinesis, ScaleOptions{Stream: g.Stream, Target: shards, Method: method, Apply: apply, Now: app.Now})
			if rep.From > 0 {
				if werr := app.output(g, rep, func(w io.Writer) error { return RenderScale(w, rep) }); werr != nil {
					return werr
				}
			}
			return err
		},
	}
	f := cmd.Flags()
	f.IntVar(&shards, "shards", 0, "target number of open shards")
	f.StringVar(&method, "method", MethodAuto, "auto, uniform (UpdateShardCount) or split-merge")
	f.BoolVar(&apply, "apply", false, "reshard (default: dry run)")
	f.DurationVar(&wait, "wait", 5*time.Minute, "bound on the whole run, waiting for ACTIVE included")
	return cmd
}
