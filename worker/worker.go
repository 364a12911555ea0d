package worker

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	kclcfg "github.com/vmware/vmware-go-kcl-v2/clientlibrary/config"
	kclworker "github.com/vmware/vmware-go-kcl-v2/clientlibrary/worker"
	kclzap "github.com/vmware/vmware-go-kcl-v2/logger/zap"
	"go.uber.org/zap"

	"github.com/kinesis-events/pipeline/checkpoint"
	"github.com/kinesis-events/pipeline/event"
	"github.com/kinesis-events/pipeline/processors"
)

// KinesisAPI is what the worker's own parts call on Kinesis: the pipeline's writes, the lease
// store's shard listing and reset reads, and the /readyz probe. *kinesis.Client satisfies it.
type KinesisAPI interface {
	processors.Putter
	checkpoint.KinesisAPI
	DescribeStreamSummary(ctx context.Context, in *kinesis.DescribeStreamSummaryInput, optFns ...func(*kinesis.Options)) (*kinesis.DescribeStreamSummaryOutput, error)
}

// DynamoDBAPI is what the worker's parts call on DynamoDB: the lease store and the dedupe table.
// *dynamodb.Client satisfies it.
type DynamoDBAPI interface {
	checkpoint.DynamoDBAPI
	processors.DynamoAPI
}

// Deps are the clients and shared objects a worker uses. Clients must carry request timeouts
// (NewClients builds such clients).
type Deps struct {
	Kinesis  KinesisAPI
	DynamoDB DynamoDBAPI
	// KCLKinesis is the client the KCL library reads the raw stream with: its entry point
	// (Worker.WithKinesis) takes the SDK's concrete client. Usually the same client as Kinesis.
	KCLKinesis *kinesis.Client
	Keys       *event.Keyring
	Logger     *zap.Logger
	// Registry receives the worker's metrics and is served on /metrics. Default: a new registry.
	Registry *prometheus.Registry
	Now      func() time.Time
}

// Worker is one running fleet member.
type Worker struct {
	cfg      Config
	log      *zap.Logger
	leases   *checkpoint.Store
	pipeline *processors.Pipeline
	shards   *shardRegistry
	metrics  *metrics
	batches  *batchTracker
	kcl      *kclworker.Worker
	kc       streamProbe
	tails    tailAPI
	// hardStop is cancelled when the shutdown grace runs out: in-flight processing gives up and
	// leaves its records behind the checkpoint for the next owner.
	hardStop context.Context
}

// streamProbe is what /readyz asks Kinesis.
type streamProbe interface {
	DescribeStreamSummary(ctx context.Context, in *kinesis.DescribeStreamSummaryInput, optFns ...func(*kinesis.Options)) (*kinesis.DescribeStreamSummaryOutput, error)
}

// Run starts the worker and blocks until ctx is cancelled, then shuts down gracefully: stop
// fetching, finish in-flight batches within cfg.ShutdownGrace, checkpoint, release leases.
func Run(ctx context.Context, cfg Config, deps Deps) error {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("worker config: %w", err)
	}
	if deps.Kinesis == nil || deps.DynamoDB == nil || deps.KCLKinesis == nil || deps.Keys == nil {
		return errors.New("worker: Kinesis, DynamoDB, KCLKinesis and Keys are required")
	}
	if deps.Logger == nil {
		deps.Logger = zap.NewNop()
	}
	if deps.Registry == nil {
		deps.Registry = prometheus.NewRegistry()
		deps.Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	log := deps.Logger.With(zap.String("worker", cfg.WorkerID))

	// The lease store lives as long as the worker: it renews nothing by itself (the KCL drives
	// renewals through kclCheckpointer, whose calls run under this context), but its background work
	// is bounded by it.
	storeCtx, stopStore := context.WithCancel(context.WithoutCancel(ctx))
	defer stopStore()
	leaseClock := deps.Now
	if skew := cfg.TestLeaseClockSkew; skew != 0 {
		// time.Time.Add keeps the monotonic reading: only the timestamps written into rows move.
		log.Warn("TEST HOOK: the lease store writes timestamps offset from this machine's clock", zap.Duration("skew", skew))
		leaseClock = func() time.Time { return deps.Now().Add(skew) }
	}
	store, err := checkpoint.New(storeCtx, checkpoint.Config{
		Table:         cfg.LeaseTable,
		Stream:        cfg.Stream,
		WorkerID:      cfg.WorkerID,
		LeaseDuration: cfg.LeaseDuration,
		CallTimeout:   cfg.CallTimeout,
		// A checkpoint that keeps failing transiently stops the shard here after this long, and
		// its lease goes to a peer (the processor abandons it).
		CheckpointRetryBudget: cfg.CheckpointRetryBudget,
		// Balancing decisions (claims seen, one hand-off per interval) run on a table scan at most
		// this old: a tenth of the lease duration converges a join in a few seconds for one
		// Scan per second per worker.
		ScanInterval: cfg.LeaseDuration / 10,
		Logger:       log.Named("checkpoint"),
		Registerer:   deps.Registry,
		Now:          leaseClock,
	}, deps.DynamoDB, deps.Kinesis)
	if err != nil {
		return fmt.Errorf("lease store: %w", err)
	}

	if cfg.Pipeline.DedupeHorizon, err = dedupeHorizon(ctx, deps.Kinesis, cfg.Stream, cfg.Pipeline.DedupeHorizon, cfg.CallTimeout); err != nil {
		return err
	}
	log.Info("dedupe horizon", zap.Duration("horizon", cfg.Pipeline.DedupeHorizon))
	pipe, err := processors.New(cfg.Pipeline, processors.Deps{
		Kinesis:    deps.Kinesis,
		Dedupe:     processors.NewDynamoDedupe(deps.DynamoDB, cfg.DedupeTable),
		Leases:     store,
		Keys:       deps.Keys,
		Logger:     log.Named("pipeline"),
		Registerer: deps.Registry,
		Now:        deps.Now,
	})
	if err != nil {
		return fmt.Errorf("pipeline: %w", err)
	}

	hardStop, hardCancel := context.WithCancel(context.WithoutCancel(ctx))
	defer hardCancel()
	w := &Worker{
		cfg:      cfg,
		log:      log,
		leases:   store,
		pipeline: pipe,
		shards:   &shardRegistry{now: deps.Now, shards: map[string]*shardState{}},
		metrics:  newMetrics(deps.Registry),
		batches:  newBatchTracker(deps.Now),
		kc:       deps.Kinesis,
		tails:    deps.Kinesis,
		hardStop: hardStop,
	}
	if err := deps.Registry.Register(newShardCollector(w.shards, w.batches)); err != nil {
		return fmt.Errorf("register shard metrics: %w", err)
	}

	var srv *http.Server
	if cfg.MetricsAddr != "" {
		ln, err := net.Listen("tcp", cfg.MetricsAddr)
		if err != nil {
			return fmt.Errorf("metrics listener on %s: %w", cfg.MetricsAddr, err)
		}
		srv = &http.Server{Handler: w.handler(deps.Registry), ReadHeaderTimeout: 5 * time.Second}
		go func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("metrics server", zap.Error(err))
			}
		}()
		log.Info("serving /metrics, /healthz, /readyz", zap.String("addr", ln.Addr().String()))
	}

	env := w.processorEnv()
	w.kcl = kclworker.NewWorker(factory{env: env}, w.kclConfig(log)).
		WithKinesis(kclClient(deps.KCLKinesis, newShardListCache(shardListTTL, nil))).
		WithCheckpointer(&kclCheckpointer{ctx: storeCtx, store: store, worker: cfg.WorkerID, released: env.released})
	if err := w.kcl.Start(); err != nil {
		return fmt.Errorf("start KCL worker: %w", err)
	}
	log.Info("worker started", zap.String("stream", cfg.Stream), zap.String("lease_table", cfg.LeaseTable))

	<-ctx.Done()
	log.Info("shutting down: finishing in-flight batches, checkpointing, releasing leases",
		zap.Duration("grace", cfg.ShutdownGrace))
	start := time.Now()
	grace := time.AfterFunc(cfg.ShutdownGrace, hardCancel)
	// Shutdown returns when every shard consumer has shut down and released its lease. A consumer
	// stuck in a call the KCL made is bounded by the read deadline; past grace plus that bound the
	// process exits anyway: leases it still holds expire and peers replay from the checkpoints.
	stopped := make(chan struct{})
	go func() { w.kcl.Shutdown(); close(stopped) }()
	select {
	case <-stopped:
		// Release whatever is left and withdraw this worker's lease claim, so peers take its
		// share at once instead of keeping it reserved for a departed worker until the claim
		// expires.
		rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), 2*cfg.CallTimeout)
		if err := store.ReleaseAll(rctx); err != nil {
			log.Warn("releasing leases at shutdown; they expire by themselves", zap.Error(err))
		}
		rcancel()
	case <-time.After(cfg.ShutdownGrace + readTimeout):
		log.Error("shutdown bound passed with shard consumers still running; exiting, their leases will expire",
			zap.Duration("bound", cfg.ShutdownGrace+readTimeout))
	}
	grace.Stop()
	if srv != nil {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		_ = srv.Shutdown(sctx) // best effort: the process is exiting; in-flight scrapes may be cut
		cancel()
	}
	log.Info("worker stopped", zap.Duration("shutdown", time.Since(start)))
	return nil
}

func (w *Worker) kclConfig(log *zap.Logger) *kclcfg.KinesisClientLibConfiguration {
	c := w.cfg
	pos := kclcfg.TRIM_HORIZON
	if c.StartAtLatest {
		pos = kclcfg.LATEST
	}
	ms := func(d time.Duration) int { return int(d / time.Millisecond) }
	return kclcfg.NewKinesisClientLibConfig(c.Application, c.Stream, c.Region, c.WorkerID).
		WithTableName(c.LeaseTable).
		WithInitialPositionInStream(pos).
		WithShardSyncIntervalMillis(ms(c.ShardSync)).
		WithFailoverTimeMillis(ms(c.LeaseDuration)).
		WithLeaseRefreshWaitTime(ms(c.LeaseRenew)).
		WithIdleTimeBetweenReadsInMillis(ms(c.IdleTime)).
		WithMaxRecords(c.MaxRecords).
		WithCallProcessRecordsEvenForEmptyRecordList(true).
		WithLeaseStealing(false).
		WithMonitoringService(&monitor{m: w.metrics, shards: w.shards, batches: w.batches, behind: w.leases.NoteMillisBehind}).
		WithLogger(kclzap.NewZapLogger(log.Named("kcl").Sugar()))
}

// horizonMargin is how much longer than the raw stream's retention the dedupe horizon must be: a
// replay reaches back at most the retention, and a customer's state is judged by day.
const horizonMargin = 24 * time.Hour

// dedupeHorizon returns the dedupe horizon the worker runs with: the configured one, or by default
// the raw stream's retention plus horizonMargin (read now). A configured horizon shorter than that
// is refused: a replay from the trim horizon would deliver events whose state already expired.
func dedupeHorizon(ctx context.Context, kin streamProbe, stream string, configured, timeout time.Duration) (time.Duration, error) {
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	out, err := kin.DescribeStreamSummary(cctx, &kinesis.DescribeStreamSummaryInput{StreamName: &stream})
	if err != nil {
		return 0, fmt.Errorf("read the retention of %s for the dedupe horizon: %w", stream, err)
	}
	if out.StreamDescriptionSummary == nil || out.StreamDescriptionSummary.RetentionPeriodHours == nil {
		return 0, fmt.Errorf("read the retention of %s for the dedupe horizon: no retention in the answer", stream)
	}
	retention := time.Duration(*out.StreamDescriptionSummary.RetentionPeriodHours) * time.Hour
	least := retention + horizonMargin
	switch {
	case configured == 0:
		return least, nil
	case configured < least:
		return 0, fmt.Errorf("dedupe horizon %s is shorter than the retention of %s (%s) plus %s: a replay from the trim horizon "+
			"would deliver again the events whose dedupe state expired; set -dedupe-horizon (DEDUPE_HORIZON) to at least %s",
			configured, stream, retention, horizonMargin, least)
	}
	return configured, nil
}
