package kclctl

import (
	"context"
	"fmt"
	"io"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/kinesis-events/pipeline/checkpoint"
)

// WorkersReport is what `kclctl workers` shows: the fleet as the lease table sees it. Its JSON form
// is the --json output.
type WorkersReport struct {
	Table   string      `json:"table"`
	Stream  string      `json:"stream"`
	At      time.Time   `json:"at"`
	Workers []WorkerRow `json:"workers"`
	// Leasable counts the shards that need a worker now (not finished, not waiting on a parent);
	// Unowned lists those nobody holds a live lease on.
	Leasable int      `json:"leasable_shards"`
	Unowned  []string `json:"unowned_shards"`
	// Spread is max - min live leases over the workers (0 or 1 is balanced).
	Spread   int       `json:"spread"`
	Warnings []Warning `json:"warnings"`
}

// WorkerRow is one worker named as owner in at least one lease row.
type WorkerRow struct {
	WorkerID string `json:"worker_id"`
	// Shards are the shards it holds a live lease on; Expired those whose lease it let run out.
	Shards  []string `json:"shards"`
	Expired []string `json:"expired_shards"`
	// LastRenewal is its latest lease renewal (or checkpoint) over all its rows.
	LastRenewal time.Time `json:"last_renewal,omitzero"`
	// MaxBehindMS is the largest MillisBehindLatest it published for a live lease; nil if none.
	MaxBehindMS *int64 `json:"max_millis_behind_latest,omitempty"`
}

// Warning kinds of `kclctl workers` (besides checkpoint's, passed through).
const (
	WarnUnbalanced   = "unbalanced"    // live leases differ by more than one between workers
	WarnWorkerSilent = "worker_silent" // every lease of the worker expired: stopped or stuck
)

// InspectSnapshot is the default App.Snapshot: checkpoint.Inspect over the clients.
func InspectSnapshot(ctx context.Context, c *Clients, table, stream string, now time.Time) (checkpoint.Snapshot, error) {
	snap, err := checkpoint.Inspect(ctx, c.DynamoDB, c.Kinesis, table, stream, now)
	if err != nil {
		return checkpoint.Snapshot{}, fmt.Errorf("table %s, stream %s: %w", table, stream, err)
	}
	return snap, nil
}

// BuildWorkers derives the fleet view from a snapshot.
func BuildWorkers(s checkpoint.Snapshot) WorkersReport {
	r := WorkersReport{Table: s.Table, Stream: s.Stream, At: s.At, Workers: []WorkerRow{}, Unowned: []string{}, Warnings: []Warning{}}
	rows := map[string]*WorkerRow{}
	row := func(id string) *WorkerRow {
		if w := rows[id]; w != nil {
			return w
		}
		w := &WorkerRow{WorkerID: id, Shards: []string{}, Expired: []string{}}
		rows[id] = w
		return w
	}
	for _, sh := range s.Shards {
		leasable := sh.State != checkpoint.ShardFinished && sh.State != checkpoint.ShardGone && len(sh.WaitingOn) == 0
		if leasable {
			r.Leasable++
		}
		if sh.Owner == "" {
			if leasable {
				r.Unowned = append(r.Unowned, sh.ShardID)
			}
			continue
		}
		w := row(sh.Owner)
		if sh.LastRenewal.After(w.LastRenewal) {
			w.LastRenewal = sh.LastRenewal
		}
		if sh.LeaseExpired {
			w.Expired = append(w.Expired, sh.ShardID)
			if leasable {
				r.Unowned = append(r.Unowned, sh.ShardID)
			}
			continue
		}
		w.Shards = append(w.Shards, sh.ShardID)
		if sh.HasMillisBehind && (w.MaxBehindMS == nil || sh.MillisBehindLatest > *w.MaxBehindMS) {
			v := sh.MillisBehindLatest
			w.MaxBehindMS = &v
		}
	}
	var live []int
	for _, w := range rows {
		sort.Strings(w.Shards)
		sort.Strings(w.Expired)
		r.Workers = append(r.Workers, *w)
		if len(w.Shards) > 0 {
			live = append(live, len(w.Shards))
		} else {
			r.Warnings = append(r.Warnings, Warning{Kind: WarnWorkerSilent, Message: fmt.Sprintf(
				"worker %s holds no live lease; its %d lease(s) expired, last renewal %s: stopped or stuck",
				w.WorkerID, len(w.Expired), ago(w.LastRenewal, s.At))})
		}
	}
	sort.Slice(r.Workers, func(i, j int) bool { return r.Workers[i].WorkerID < r.Workers[j].WorkerID })
	sort.Strings(r.Unowned)
	if len(live) > 0 {
		r.Spread = slices.Max(live) - slices.Min(live)
	}
	if r.Spread > 1 {
		r.Warnings = append(r.Warnings, Warning{Kind: WarnUnbalanced, Message: fmt.Sprintf(
			"live leases per worker differ by %d (balanced is at most 1); the lease store rebalances by itself within a few lease durations", r.Spread)})
	}
	for _, w := range s.Warnings {
		r.Warnings = append(r.Warnings, Warning{Shard: w.ShardID, Kind: string(w.Kind), Message: w.Message})
	}
	return r
}

// ago renders t relative to now: "3s ago", or "never".
func ago(t, now time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return HumanDuration(now.Sub(t)) + " ago"
}

// WorkersHeader is the header of the workers table.
var WorkersHeader = []string{"WORKER", "LEASES", "SHARDS", "EXPIRED", "LAST RENEWAL", "MAX BEHIND"}

// RenderWorkers writes the fleet table, a summary line, and the warnings.
func RenderWorkers(w io.Writer, r WorkersReport) error {
	rows := make([][]string, 0, len(r.Workers))
	for _, x := range r.Workers {
		behind := "-"
		if x.MaxBehindMS != nil {
			behind = "0"
			if *x.MaxBehindMS > 0 {
				behind = HumanDuration(time.Duration(*x.MaxBehindMS) * time.Millisecond)
			}
		}
		rows = append(rows, []string{
			clean(x.WorkerID), strconv.Itoa(len(x.Shards)), orDash(clean(strings.Join(x.Shards, ","))),
			orDash(clean(strings.Join(x.Expired, ","))), ago(x.LastRenewal, r.At), behind,
		})
	}
	if err := Table(w, WorkersHeader, rows); err != nil {
		return err
	}
	live := 0
	for _, x := range r.Workers {
		if len(x.Shards) > 0 {
			live++
		}
	}
	if _, err := fmt.Fprintf(w, "\n%d worker(s) with live leases, %d leasable shard(s), %d unowned, spread %d\n",
		live, r.Leasable, len(r.Unowned), r.Spread); err != nil {
		return err
	}
	return renderWarnings(w, r.Warnings)
}

func newWorkersCommand(app *App, g *Globals) *cobra.Command {
	var (
		watch    bool
		interval time.Duration
	)
	cmd := &cobra.Command{
		Use:   "workers",
		Short: "Show the fleet: each worker, the shards it holds, its last lease renewal",
		Long: `workers groups the lease table by owner: per worker the shards it holds a live lease on,
the leases it let expire, its last renewal and the largest MillisBehindLatest it published.

A summary line counts live workers, leasable shards (not finished, not waiting on a parent),
unowned ones and the spread (max - min leases per live worker; the fleet keeps it at most 1).

Warnings: workers whose every lease expired (stopped or stuck), a spread above 1, and the lease
table warnings of 'kclctl checkpoints'. Any warning makes the exit code 3.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if interval <= 0 {
				return usageError{fmt.Errorf("--interval must be positive")}
			}
			once := func(ctx context.Context) int { return app.workersOnce(ctx, g, watch) }
			if !watch {
				return codeErr(once(cmd.Context()))
			}
			return codeErr(app.watch(cmd.Context(), g, "workers", interval, once))
		},
	}
	cmd.Flags().BoolVarP(&watch, "watch", "w", false, "refresh until interrupted; the exit code is that of the last complete refresh")
	cmd.Flags().DurationVar(&interval, "interval", DefaultWatchInterval, "refresh interval of --watch")
	return cmd
}

func (a *App) workersOnce(parent context.Context, g *Globals, compactJSON bool) int {
	ctx, cancel := context.WithTimeout(parent, g.Timeout)
	defer cancel()
	c, err := a.awsClients(ctx, g.Timeout)
	if err == nil {
		var snap checkpoint.Snapshot
		if snap, err = a.Snapshot(ctx, c, g.Table, g.Stream, a.Now()); err == nil {
			r := BuildWorkers(snap)
			if g.JSON {
				err = WriteJSON(a.Stdout, r, compactJSON)
			} else {
				err = RenderWorkers(a.Stdout, r)
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
	}
	if parent.Err() == nil {
		fmt.Fprintf(a.Stderr, "kclctl: workers: %v\n", err)
	}
	return ExitError
}

// watch runs once every interval until ctx ends, with a header per refresh (and the screen
// cleared on a terminal), like checkpoints --watch.
func (a *App) watch(ctx context.Context, g *Globals, name string, interval time.Duration, once func(context.Context) int) int {
	terminal := a.Terminal() && !g.JSON
	return Watch(ctx, interval, func(ctx context.Context) int {
		if terminal {
			fmt.Fprint(a.Stdout, clearScreen)
		}
		if !g.JSON {
			fmt.Fprintf(a.Stdout, "Every %s: kclctl %s --table %s --stream %s    %s\n\n",
				interval, name, g.Table, g.Stream, a.Now().UTC().Format(time.RFC3339))
		}
		code := once(ctx)
		if !g.JSON && !terminal {
			fmt.Fprintln(a.Stdout)
		}
		return code
	})
}
