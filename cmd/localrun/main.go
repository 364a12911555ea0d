// Command localrun is `make run`: the whole pipeline on the local stack with live progress. It stops
// by itself when every event has arrived (or --duration passes; Ctrl-C also stops it cleanly) and
// stops every process it started.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/term"

	"github.com/kinesis-events/pipeline/internal/localrun"
	"github.com/kinesis-events/pipeline/internal/localstack"
	"github.com/kinesis-events/pipeline/internal/profile"
)

func main() {
	cfg := localrun.Defaults()
	if spike(os.Args[1:]) {
		cfg = localrun.SpikeDefaults()
	}
	var kin, ddb string
	fs := flag.NewFlagSet("localrun", flag.ExitOnError)
	fs.Bool("spike", cfg.Spike != nil, "a spike run (make spike): per-shard write limits enforced by a fault proxy, a load profile with a hot customer, the autoscaler resharding every stream, the worker fleet following the raw stream; the defaults below are the spike's, and -events, -rate, -workers and -metrics-port do not apply")
	if sp := cfg.Spike; sp != nil {
		fs.StringVar(&sp.Profile, "profile", sp.Profile, `the load's rate over time: "RATE:DURATION" or "FROM-TO:DURATION" segments`)
		fs.Float64Var(&sp.HotRate, "hot-rate", sp.HotRate, "events/s of the hot customer (customer 1)")
		fs.Float64Var(&sp.ShardRecords, "shard-records", sp.ShardRecords, "per-shard write limit in records/s (AWS: 1000)")
		fs.Float64Var(&sp.ShardBytes, "shard-bytes", sp.ShardBytes, "per-shard write limit in bytes/s (AWS: 1 MiB)")
		fs.IntVar(&sp.Fleet.ShardsPerWorker, "shards-per-worker", sp.Fleet.ShardsPerWorker, "live raw shards per worker (open, and closed ones not yet finished)")
		fs.IntVar(&sp.Fleet.MinWorkers, "min-workers", sp.Fleet.MinWorkers, "fewest workers")
		fs.IntVar(&sp.Fleet.MaxWorkers, "max-workers", sp.Fleet.MaxWorkers, "most workers")
		fs.DurationVar(&sp.Fleet.ScaleInAfter, "scale-in-after", sp.Fleet.ScaleInAfter, "a worker is stopped after fewer were wanted for this long")
		fs.DurationVar(&sp.AutoscaleInterval, "autoscale-interval", sp.AutoscaleInterval, "the autoscaler's tick")
		fs.BoolVar(&sp.Aggregate, "aggregate", sp.Aggregate, "AGGREGATE_KEYS at both ends: the forwarder packs a customer's waiting events into one KPL aggregate on the raw stream, the workers on the analytics streams (-aggregate=false: one record per customer per call)")
		fs.BoolVar(&sp.EmulatorProfiles, "emulator-cpuprofile", false, "the Node.js emulators write V8 CPU profiles (node --cpu-prof) into <dir>/emulators when they stop")
		fs.BoolVar(&sp.WorkerProfiles, "worker-cpuprofile", false, "every worker writes a pprof CPU profile of its whole run to <dir>/worker-N.cpu.prof (costs a little CPU)")
	}
	fs.IntVar(&cfg.Events, "events", cfg.Events, "lines the load generator sends (valid, duplicate and malformed together)")
	fs.Float64Var(&cfg.Rate, "rate", cfg.Rate, "events per second; 0 = as fast as possible")
	fs.IntVar(&cfg.Customers, "customers", cfg.Customers, "distinct customers")
	fs.IntVar(&cfg.Workers, "workers", cfg.Workers, "worker processes")
	fs.IntVar(&cfg.Shards, "shards", cfg.Shards, "shards of the raw stream")
	fs.Int64Var(&cfg.Seed, "seed", cfg.Seed, "load generator seed")
	fs.Float64Var(&cfg.DupRatio, "dup-ratio", cfg.DupRatio, "natural duplicates sent")
	fs.Float64Var(&cfg.ConflictRatio, "conflict-ratio", cfg.ConflictRatio, "conflicting duplicates sent (same event_id, other content)")
	fs.Float64Var(&cfg.OOORatio, "ooo-ratio", cfg.OOORatio, "events sent out of per-customer order")
	fs.Float64Var(&cfg.BadRatio, "bad-ratio", cfg.BadRatio, "malformed inputs sent")
	fs.DurationVar(&cfg.Duration, "duration", cfg.Duration, "upper bound of the run")
	fs.IntVar(&cfg.KinesisPort, "kinesis-port", cfg.KinesisPort, "Kinesis emulator port on 127.0.0.1 (0: any free port)")
	fs.IntVar(&cfg.DynamoDBPort, "dynamodb-port", cfg.DynamoDBPort, "DynamoDB emulator port on 127.0.0.1 (0: any free port)")
	fs.IntVar(&cfg.MetricsBasePort, "metrics-port", cfg.MetricsBasePort, "worker n serves /metrics on this port + n (0: free ports)")
	fs.StringVar(&kin, "kinesis", string(cfg.Kinesis), "Kinesis emulator: kinesalite or kinesis-local")
	fs.StringVar(&ddb, "dynamodb", string(cfg.DynamoDB), "DynamoDB emulator: dynalite or dynamodb-local")
	fs.StringVar(&cfg.Bin, "bin", cfg.Bin, "directory with the built commands")
	fs.StringVar(&cfg.Dir, "dir", cfg.Dir, "run directory for logs (emptied first)")
	fs.BoolVar(&cfg.Keep, "keep", false, "keep the stack and workers up after the run until Ctrl-C")
	cpuProfile := fs.String("cpuprofile", "", "write a pprof CPU profile of localrun itself (its audit, view and fleet control: the harness's own cost) to this file")
	_ = fs.Parse(os.Args[1:])
	cfg.Kinesis, cfg.DynamoDB = localstack.Flavor(kin), localstack.Flavor(ddb)
	cfg.Interactive = term.IsTerminal(int(os.Stdout.Fd()))

	if cfg.Spike != nil {
		cfg.Interactive = false // one progress line every 5 s
	}

	stopProfile, err := profile.Start(profile.Files{CPU: *cpuProfile})
	if err != nil {
		fmt.Fprintln(os.Stderr, "localrun:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	err = localrun.Run(ctx, cfg)
	if perr := stopProfile(); perr != nil {
		fmt.Fprintln(os.Stderr, "localrun: profile:", perr)
	}
	if err != nil {
		if !errors.Is(err, localrun.ErrNotClean) && !errors.Is(err, localrun.ErrTargetMissed) {
			fmt.Fprintln(os.Stderr, "localrun:", err)
		}
		os.Exit(1)
	}
}

// spike reports whether the arguments ask for a spike run, whose defaults differ.
func spike(args []string) bool {
	for _, a := range args {
		switch a {
		case "--spike", "-spike", "--spike=true", "-spike=true":
			return true
		}
	}
	return false
}
