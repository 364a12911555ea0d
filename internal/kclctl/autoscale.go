package kclctl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/kinesis-events/pipeline/internal/autoscale"
	"github.com/kinesis-events/pipeline/internal/names"
)

// AutoscaleStatus is what `kclctl autoscale status` shows: per stream the shards, the load and the
// latest decision, the leader lease, the fleet, and the recent reshards and refusals. Its JSON form
// is the --json output.
type AutoscaleStatus struct {
	Table   string               `json:"table"`
	At      time.Time            `json:"at"`
	Leader  *AutoscaleLeader     `json:"leader"`
	Fleet   *autoscale.Fleet     `json:"fleet"`
	Streams []AutoscaleStreamRow `json:"streams"`
	Recent  []autoscale.Decision `json:"recent"` // newest first
	Warns   []Warning            `json:"warnings"`
}

// AutoscaleLeader is the leader lease as of At.
type AutoscaleLeader struct {
	autoscale.Leader
	Live bool `json:"live"`
}

// AutoscaleStreamRow is one stream the autoscaler has a state row for.
type AutoscaleStreamRow struct {
	Stream string `json:"stream"`
	// Mode (provisioned, on-demand), Status (ACTIVE, UPDATING, ...) and OpenShards are read from
	// Kinesis now; empty or -1 when the stream could not be described.
	Mode       string              `json:"mode"`
	Status     string              `json:"status"`
	OpenShards int                 `json:"open_shards"`
	Last       *autoscale.Decision `json:"last,omitempty"`
	// CallsLeft are the reshard calls left in the rolling 24 h.
	CallsLeft   int       `json:"calls_left_24h"`
	LastReshard time.Time `json:"last_reshard,omitzero"`
}

// Warning kinds of `kclctl autoscale status`.
const (
	WarnNoLeader      = "no_leader"      // no autoscaler instance holds a live leader lease
	WarnReshardFailed = "reshard_failed" // a stream's last reshard failed
)

// StreamDescriber is the Kinesis call the status uses.
type StreamDescriber interface {
	DescribeStreamSummary(ctx context.Context, in *kinesis.DescribeStreamSummaryInput, optFns ...func(*kinesis.Options)) (*kinesis.DescribeStreamSummaryOutput, error)
}

// BuildAutoscaleStatus reads the autoscaler's rows and describes each stream they name.
func BuildAutoscaleStatus(ctx context.Context, ddb autoscale.DynamoDBAPI, kin StreamDescriber, table string, callsPerDay, recent int, now time.Time) (AutoscaleStatus, error) {
	st, err := autoscale.Store{DDB: ddb, Table: table}.Read(ctx)
	if err != nil {
		return AutoscaleStatus{}, err
	}
	r := AutoscaleStatus{Table: table, At: now.UTC(), Fleet: st.Fleet, Streams: []AutoscaleStreamRow{}, Recent: []autoscale.Decision{}, Warns: []Warning{}}
	if st.Leader != nil {
		r.Leader = &AutoscaleLeader{Leader: *st.Leader, Live: st.Leader.Until.After(now)}
	}
	if r.Leader == nil || !r.Leader.Live {
		r.Warns = append(r.Warns, Warning{Kind: WarnNoLeader, Message: "no autoscaler holds a live leader lease: nothing reshards the streams"})
	}
	for _, name := range st.StreamNames() {
		h := st.Streams[name]
		row := AutoscaleStreamRow{Stream: name, OpenShards: -1, Last: h.Last, LastReshard: h.LastReshard, CallsLeft: callsPerDay}
		for _, c := range h.Calls {
			if now.Sub(c) < 24*time.Hour {
				row.CallsLeft--
			}
		}
		out, err := kin.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(name)})
		if err == nil {
			d := out.StreamDescriptionSummary
			row.Status, row.OpenShards, row.Mode = string(d.StreamStatus), int(aws.ToInt32(d.OpenShardCount)), "provisioned"
			if d.StreamModeDetails != nil && d.StreamModeDetails.StreamMode == types.StreamModeOnDemand {
				row.Mode = "on-demand"
			}
		}
		r.Recent = append(r.Recent, h.Decisions...)
		if n := len(h.Decisions); n > 0 && h.Decisions[n-1].Error != "" {
			r.Warns = append(r.Warns, Warning{Kind: WarnReshardFailed, Message: fmt.Sprintf("%s: %d -> %d failed: %s", name, h.Decisions[n-1].From, h.Decisions[n-1].To, h.Decisions[n-1].Error)})
		}
		r.Streams = append(r.Streams, row)
	}
	sort.SliceStable(r.Recent, func(i, j int) bool { return r.Recent[i].At.After(r.Recent[j].At) })
	if len(r.Recent) > recent {
		r.Recent = r.Recent[:recent]
	}
	return r, nil
}

// RenderAutoscaleStatus writes the status as tables.
func RenderAutoscaleStatus(w io.Writer, r AutoscaleStatus) error {
	rows := make([][]string, len(r.Streams))
	for i, s := range r.Streams {
		shards, load, util, last := "?", []string{"-", "-", "-"}, "-", "-"
		if s.OpenShards >= 0 {
			shards = strconv.Itoa(s.OpenShards)
		}
		if d := s.Last; d != nil {
			load = []string{rate(d.Load.Records), HumanBytes(d.Load.Bytes), rate(d.Load.Throttled)}
			util = strconv.FormatFloat(d.Util, 'f', 2, 64)
			last = d.Action + " " + HumanDuration(r.At.Sub(d.At)) + " ago"
		}
		rows[i] = []string{s.Stream, orDash(s.Mode), orDash(s.Status), shards, load[0], load[1], load[2], util, last, strconv.Itoa(s.CallsLeft)}
	}
	if err := Table(w, []string{"STREAM", "MODE", "STATUS", "SHARDS", "RECORDS/S", "BYTES/S", "THROTTLED/S", "UTIL", "LAST DECISION", "CALLS LEFT (24H)"}, rows); err != nil {
		return err
	}
	var b strings.Builder
	switch l := r.Leader; {
	case l == nil:
		b.WriteString("\nleader: none (no autoscaler has run against this table)\n")
	case l.Live:
		fmt.Fprintf(&b, "\nleader: %s, lease ends in %s (leading since %s)\n", clean(l.ID), HumanDuration(l.Until.Sub(r.At)), l.Since.UTC().Format(time.RFC3339))
	default:
		fmt.Fprintf(&b, "\nleader: none live (last: %s, lease ended %s ago)\n", clean(l.ID), HumanDuration(r.At.Sub(l.Until)))
	}
	if f := r.Fleet; f != nil {
		fmt.Fprintf(&b, "fleet: %d live raw shards -> %d workers (since %s)", f.OpenShards, f.Workers, f.At.UTC().Format(time.RFC3339))
		if f.ResourceID != "" {
			fmt.Fprintf(&b, "; ECS %s maximum %d -> %d", clean(f.ResourceID), f.MaxBefore, f.MaxAfter)
			if f.Error != "" {
				fmt.Fprintf(&b, " FAILED: %s", clean(f.Error))
			}
		}
		b.WriteString("\n")
	}
	if _, err := io.WriteString(w, b.String()); err != nil {
		return err
	}
	if _, err := fmt.Fprintf(w, "\nRECENT DECISIONS (newest first; reshards, and the first of each run of refusals)\n"); err != nil {
		return err
	}
	rows = make([][]string, len(r.Recent))
	for i, d := range r.Recent {
		rows[i] = []string{d.At.UTC().Format("2006-01-02T15:04:05.000Z"), d.Stream, d.Action, strconv.Itoa(d.From), strconv.Itoa(d.To), result(d), took(d), clean(d.Reason)}
	}
	if err := Table(w, []string{"AT", "STREAM", "ACTION", "FROM", "TO", "RESULT", "TOOK", "REASON"}, rows); err != nil {
		return err
	}
	return renderWarnings(w, r.Warns)
}

func result(d autoscale.Decision) string {
	switch {
	case d.Action != autoscale.ActionOut && d.Action != autoscale.ActionIn:
		return "-"
	case d.Error != "":
		return "error: " + clean(d.Error)
	case d.Applied:
		return "ok (" + d.Method + ")"
	}
	return "pending"
}

func took(d autoscale.Decision) string {
	if d.TookMS == 0 {
		return "-"
	}
	return HumanDuration(time.Duration(d.TookMS) * time.Millisecond)
}

func rate(x float64) string { return strconv.FormatFloat(x, 'f', 1, 64) }

// HumanBytes renders a byte count (or rate) with binary units, e.g. "158.2Ki".
func HumanBytes(x float64) string {
	switch {
	case x >= 1<<20:
		return strconv.FormatFloat(x/(1<<20), 'f', 1, 64) + "Mi"
	case x >= 1<<10:
		return strconv.FormatFloat(x/(1<<10), 'f', 1, 64) + "Ki"
	}
	return strconv.FormatFloat(x, 'f', 0, 64)
}

func newAutoscaleCommand(app *App, g *Globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "autoscale",
		Short: "Run the stream autoscaler, or show what it decided",
		Long: `autoscale reshards the raw stream and every output stream from their write load, and lets
the worker fleet's maximum follow the raw stream's shards (see 'autoscale run --help' for the
rule). 'autoscale status' shows its state: per stream the shards, the load, the latest decision
and the reshard calls left in the rolling 24 h; the leader; the fleet; the recent reshards.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_ = cmd.Help() // help goes to the terminal; a failure to print it is not actionable
			return usageError{errors.New("autoscale needs a subcommand: run or status")}
		},
	}
	cmd.AddCommand(newAutoscaleStatusCommand(app, g), newAutoscaleRunCommand(app, g))
	return cmd
}

func newAutoscaleStatusCommand(app *App, g *Globals) *cobra.Command {
	var (
		watch       bool
		interval    time.Duration
		recent      int
		callsPerDay int
	)
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the autoscaler's decisions, the streams' shards and load, and the calls left",
		Long: `status reads the autoscaler's rows of the lease table (keys starting with __autoscaler#) and
describes each stream they name. Warnings (exit code 3): no live leader lease (nothing reshards),
a stream whose last reshard failed.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if interval <= 0 || recent < 0 || callsPerDay < 1 {
				return usageError{errors.New("--interval must be positive, --recent not negative, --calls-per-day at least 1")}
			}
			once := func(parent context.Context) int {
				ctx, cancel := context.WithTimeout(parent, g.Timeout)
				defer cancel()
				c, err := app.awsClients(ctx, g.Timeout)
				if err == nil {
					var r AutoscaleStatus
					if r, err = BuildAutoscaleStatus(ctx, c.DynamoDB, c.Kinesis, g.Table, callsPerDay, recent, app.Now()); err == nil {
						if err := app.output(g, r, func(w io.Writer) error { return RenderAutoscaleStatus(w, r) }); err != nil {
							fmt.Fprintf(app.Stderr, "kclctl: %v\n", err)
							return ExitError
						}
						if len(r.Warns) > 0 {
							return ExitWarnings
						}
						return ExitOK
					}
				}
				if parent.Err() == nil {
					fmt.Fprintf(app.Stderr, "kclctl: autoscale status: %v\n", err)
				}
				return ExitError
			}
			if !watch {
				return codeErr(once(cmd.Context()))
			}
			return codeErr(app.watch(cmd.Context(), g, "autoscale status", interval, once))
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&watch, "watch", "w", false, "refresh until interrupted; the exit code is that of the last complete refresh")
	f.DurationVar(&interval, "interval", DefaultWatchInterval, "refresh interval of --watch")
	f.IntVar(&recent, "recent", 20, "recent decisions to show, over all streams")
	f.IntVar(&callsPerDay, "calls-per-day", autoscale.AWSPolicy().CallsPerDay, "reshard calls per stream in a rolling 24 h (Kinesis: 10)")
	return cmd
}

// DefaultAutoscaleStreams are the streams `autoscale run` sizes by default: the raw stream and
// every output stream of the default topology.
func DefaultAutoscaleStreams(raw string) []string {
	out := []string{raw}
	for _, t := range names.StandardTypes {
		out = append(out, names.AnalyticsStream(t))
	}
	return append(out, names.OtherStream, names.QuarantineStream, names.DLQStream, names.LateStream)
}

func newAutoscaleRunCommand(app *App, g *Globals) *cobra.Command {
	cfg := autoscale.Defaults()
	var (
		once        bool
		streams     string
		source      string
		proxyURL    string
		profile     string
		metricsAddr string
		p           autoscale.Policy
	)
	cmd := &cobra.Command{
		Use:   "run [--once]",
		Short: "Run the autoscaler: a loop, or one tick with --once (as a scheduled task)",
		Long: `run sizes every stream from its write load, as one leader (a lease in the lease table; other
instances wait), every --interval until interrupted, or once with --once.

The load comes from CloudWatch (--source cloudwatch: IncomingRecords, IncomingBytes and
WriteProvisionedThroughputExceeded per stream) or, on the local stack, from the fault proxy that
every writer goes through (--source proxy --proxy-url URL).

Per stream: scale out when the load over the out window is above --scale-out-above of the
capacity (or over 1% of the writes were throttled), to what holds it at --target-utilisation, at
most doubling; scale in when the busiest out window within the in window stayed below
--scale-in-below, to what holds that peak at the target, at most halving. Never while the stream
is UPDATING, within the cool-downs, or past 10 calls per rolling 24 h (2 of them kept for
scale-out); on-demand streams are only watched. Decisions are logged (JSON on stderr), counted
(--metrics-addr serves Prometheus metrics) and kept in the lease table ('autoscale status').

--ecs-resource service/<cluster>/<service> sets that service's Application Auto Scaling maximum
to ceil(open raw shards / --shards-per-worker), within --min-workers..--max-workers.

--profile local is the policy of 'make spike': 100 records/s and 100 KiB/s per shard (what the
local fault proxy enforces) and windows compressed to seconds.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch profile {
			case "aws":
			case "local":
				local := autoscale.LocalPolicy()
				for _, name := range []string{"records-per-shard", "bytes-per-shard", "out-window", "in-window", "out-cooldown", "in-cooldown", "max-shards"} {
					if !cmd.Flags().Changed(name) {
						applyLocal(&p, local, name)
					}
				}
				if !cmd.Flags().Changed("interval") {
					cfg.Interval = 5 * time.Second
				}
				if !cmd.Flags().Changed("leader-ttl") {
					cfg.LeaderTTL = 3 * cfg.Interval
				}
				if !cmd.Flags().Changed("reshard-poll") {
					cfg.ReshardPoll = 100 * time.Millisecond
				}
				if !cmd.Flags().Changed("tick-timeout") {
					cfg.TickTimeout = 2 * time.Minute
				}
			default:
				return usageError{fmt.Errorf("--profile %q: want aws or local", profile)}
			}
			cfg.Policy, cfg.Table, cfg.RawStream = p, g.Table, g.Stream
			cfg.Streams = DefaultAutoscaleStreams(g.Stream)
			if streams != "" {
				cfg.Streams = strings.Split(streams, ",")
			}
			if cfg.ID == "" {
				host, _ := app.Hostname()
				cfg.ID = fmt.Sprintf("%s-%d", orDash(host), os.Getpid())
			}
			if source != "cloudwatch" && source != "proxy" || source == "proxy" && proxyURL == "" {
				return usageError{errors.New("--source must be cloudwatch, or proxy with --proxy-url")}
			}
			if err := cfg.Validate(); err != nil {
				return usageError{err}
			}
			return app.runAutoscaler(cmd.Context(), g, cfg, once, source, proxyURL, metricsAddr)
		},
	}
	f := cmd.Flags()
	d := cfg.Policy
	p = d
	f.BoolVar(&once, "once", false, "run one tick and print its report (for a scheduled task)")
	f.StringVar(&streams, "streams", "", "comma-separated streams to size (default: the raw stream and every output stream: "+strings.Join(DefaultAutoscaleStreams(DefaultRawStream), ",")+")")
	f.StringVar(&source, "source", "cloudwatch", "load source: cloudwatch, or proxy (the local fault proxy)")
	f.StringVar(&proxyURL, "proxy-url", "", "the local fault proxy's URL (with --source proxy)")
	f.StringVar(&profile, "profile", "aws", "policy defaults: aws, or local (a tenth of AWS's shard limits, windows in seconds)")
	f.StringVar(&metricsAddr, "metrics-addr", "", "serve Prometheus metrics on this address (e.g. 127.0.0.1:9190); empty: off")
	f.StringVar(&cfg.ID, "id", "", "this instance's name in the leader lease (default host-pid)")
	f.DurationVar(&cfg.Interval, "interval", cfg.Interval, "time between ticks")
	f.DurationVar(&cfg.LeaderTTL, "leader-ttl", cfg.LeaderTTL, "leader lease length without renewal (at least 3 intervals)")
	f.DurationVar(&cfg.TickTimeout, "tick-timeout", cfg.TickTimeout, "bound on one tick, reshards included")
	f.DurationVar(&cfg.ReshardPoll, "reshard-poll", cfg.ReshardPoll, "how often a reshard checks that the stream is ACTIVE again")
	f.StringVar(&cfg.Method, "method", cfg.Method, "reshard method: auto, uniform or split-merge")
	f.IntVar(&cfg.History, "history", cfg.History, "decisions per stream kept in its state row (reshards, refusals, errors)")
	f.IntVar(&cfg.AccountShardLimit, "account-shard-limit", 0, "bound on the account's open shards (0: DescribeLimits)")
	f.StringVar(&cfg.ECS.ResourceID, "ecs-resource", "", "ECS service whose task maximum follows the raw stream: service/<cluster>/<service>")
	f.IntVar(&cfg.Workers.ShardsPerWorker, "shards-per-worker", cfg.Workers.ShardsPerWorker, "open raw shards per worker")
	f.IntVar(&cfg.Workers.MinWorkers, "min-workers", cfg.Workers.MinWorkers, "fewest workers")
	f.IntVar(&cfg.Workers.MaxWorkers, "max-workers", cfg.Workers.MaxWorkers, "most workers")
	f.Float64Var(&p.RecordsPerShard, "records-per-shard", d.RecordsPerShard, "a shard's write limit in records/s")
	f.Float64Var(&p.BytesPerShard, "bytes-per-shard", d.BytesPerShard, "a shard's write limit in bytes/s")
	f.Float64Var(&p.TargetUtilisation, "target-utilisation", d.TargetUtilisation, "what a reshard sizes for (load over capacity)")
	f.Float64Var(&p.ScaleOutAbove, "scale-out-above", d.ScaleOutAbove, "scale out above this utilisation")
	f.Float64Var(&p.ScaleInBelow, "scale-in-below", d.ScaleInBelow, "scale in when the peak stays below this utilisation")
	f.DurationVar(&p.OutWindow, "out-window", d.OutWindow, "load window of scale-out")
	f.DurationVar(&p.InWindow, "in-window", d.InWindow, "window the peak of scale-in is taken over")
	f.DurationVar(&p.OutCooldown, "out-cooldown", d.OutCooldown, "least time between a reshard and the next scale-out")
	f.DurationVar(&p.InCooldown, "in-cooldown", d.InCooldown, "least time between a reshard and the next scale-in")
	f.IntVar(&p.MinShards, "min-shards", d.MinShards, "fewest shards of any stream")
	f.IntVar(&p.MaxShards, "max-shards", d.MaxShards, "most shards of any stream")
	return cmd
}

func applyLocal(p *autoscale.Policy, local autoscale.Policy, flag string) {
	switch flag {
	case "records-per-shard":
		p.RecordsPerShard = local.RecordsPerShard
	case "bytes-per-shard":
		p.BytesPerShard = local.BytesPerShard
	case "out-window":
		p.OutWindow = local.OutWindow
	case "in-window":
		p.InWindow = local.InWindow
	case "out-cooldown":
		p.OutCooldown = local.OutCooldown
	case "in-cooldown":
		p.InCooldown = local.InCooldown
	case "max-shards":
		p.MaxShards = local.MaxShards
	}
}

// runAutoscaler builds the Scaler from the AWS clients and runs it.
func (a *App) runAutoscaler(ctx context.Context, g *Globals, cfg autoscale.Config, once bool, source, proxyURL, metricsAddr string) error {
	c, err := a.awsClients(ctx, g.Timeout)
	if err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	enc := zap.NewProductionEncoderConfig()
	enc.EncodeTime = zapcore.ISO8601TimeEncoder
	log := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(enc), zapcore.AddSync(a.Stderr), zap.InfoLevel))
	defer func() { _ = log.Sync() }() // stderr: nothing to do about a failed sync
	cfg.Logger, cfg.Registerer, cfg.Now = log, reg, a.Now
	cfg.Fleet = func(ctx context.Context, stream string) (autoscale.FleetView, error) {
		return FleetOn(ctx, c, cfg.Table, stream, a.Now())
	}
	var src autoscale.Source = autoscale.CloudWatch{API: c.CloudWatch}
	if source == "proxy" {
		src = autoscale.ProxyLoad{URL: proxyURL}
	}
	var ecs autoscale.ScalingAPI
	if cfg.ECS.ResourceID != "" {
		ecs = c.Scaling
	}
	sc, err := autoscale.New(cfg, c.Kinesis, c.DynamoDB, src, ecs)
	if err != nil {
		return err
	}
	if metricsAddr != "" {
		ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", metricsAddr)
		if err != nil {
			return fmt.Errorf("metrics address: %w", err)
		}
		srv := &http.Server{Handler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}), ReadHeaderTimeout: 5 * time.Second}
		go func() { _ = srv.Serve(ln) }() // ends with Close below
		defer srv.Close()
	}
	if !once {
		log.Info("autoscaler running", zap.String("worker", cfg.ID), zap.Strings("streams", cfg.Streams), zap.Duration("interval", cfg.Interval), zap.String("source", source))
		return sc.Run(ctx)
	}
	rep, err := sc.Tick(ctx)
	if werr := a.output(g, rep, func(w io.Writer) error { return renderTick(w, rep) }); werr != nil {
		return werr
	}
	return err
}

func renderTick(w io.Writer, r autoscale.TickReport) error {
	if !r.Leader {
		_, err := fmt.Fprintf(w, "not the leader: %s leads; nothing decided\n", clean(r.LeaderID))
		return err
	}
	rows := make([][]string, len(r.Decisions))
	for i, d := range r.Decisions {
		rows[i] = []string{d.Stream, d.Action, strconv.Itoa(d.From), strconv.Itoa(d.To), strconv.FormatFloat(d.Util, 'f', 2, 64), result(d), clean(d.Reason)}
	}
	if err := Table(w, []string{"STREAM", "ACTION", "FROM", "TO", "UTIL", "RESULT", "REASON"}, rows); err != nil {
		return err
	}
	if f := r.Fleet; f != nil {
		_, err := fmt.Fprintf(w, "\nfleet: %d live raw shards -> %d workers\n", f.OpenShards, f.Workers)
		return err
	}
	return nil
}

// FleetOn is how the fleet stands on the raw stream, as `kclctl checkpoints` sees it: the live
// shards (open ones, and closed ones not yet finished to SHARD_END), the closed ones among them,
// and the largest lag (the age of the oldest record after a shard's checkpoint).
func FleetOn(ctx context.Context, c *Clients, table, stream string, now time.Time) (autoscale.FleetView, error) {
	r, err := InspectLive(ctx, c, table, stream, now)
	if err != nil {
		return autoscale.FleetView{}, err
	}
	var f autoscale.FleetView
	unknown := 0
	for _, s := range r.Shards {
		switch s.State {
		case StateOpen:
			f.Live++
		case StateClosed:
			f.Live++
			f.Draining++
		default:
			continue
		}
		switch s.Lag.Status {
		case LagBehind:
			f.Behind = max(f.Behind, time.Duration(s.Lag.AgeMS)*time.Millisecond)
		case LagUnknown:
			unknown++
		}
	}
	if unknown > 0 {
		return f, fmt.Errorf("the lag of %d live shard(s) of %s could not be measured", unknown, stream)
	}
	return f, nil
}
