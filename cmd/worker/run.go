package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.uber.org/zap"

	"github.com/kinesis-events/pipeline/event"
	"github.com/kinesis-events/pipeline/event/secretsmgr"
	"github.com/kinesis-events/pipeline/worker"
)

// run loads the signing keys (and keeps reloading them), builds the AWS clients and runs the worker
// until ctx ends.
func run(ctx context.Context, o options, log *zap.Logger) error {
	cfg := o.Worker
	var src event.KeySource
	reload := o.KeysReload > 0
	switch {
	case o.KeysSecret != "":
		sm, err := secretsmgr.NewClient(ctx, cfg.Region, cfg.RequestTimeout)
		if err != nil {
			return err
		}
		if src, err = secretsmgr.New(sm, secretsmgr.Config{SecretID: o.KeysSecret}); err != nil {
			return err
		}
	case o.Keys != nil:
		src, reload = event.StaticKeys(o.Keys), false
	case o.KeysFile != "":
		src = event.FileKeys(o.KeysFile)
	default:
		return errors.New("no signing keys") // parse refuses this; kept so run stands on its own
	}
	ring, err := event.NewKeyring()
	if err != nil {
		return err
	}
	if err := ring.Load(ctx, src); err != nil {
		return err
	}
	log.Info("signing keys loaded", zap.String("keys", ring.Describe()), zap.Duration("reload", o.KeysReload), zap.Bool("reloading", reload))
	if reload {
		go func() {
			if err := event.Reload(ctx, ring, src, event.ReloadConfig{Every: o.KeysReload, Logger: log.Named("keys")}); err != nil {
				log.Error("signing keys will not be reloaded", zap.Error(err))
			}
		}()
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	kc, ddb, err := worker.NewClients(ctx, cfg.Region, cfg.RequestTimeout, reg)
	if err != nil {
		return fmt.Errorf("aws clients: %w", err)
	}
	return worker.Run(ctx, cfg, worker.Deps{Kinesis: kc, KCLKinesis: kc, DynamoDB: ddb, Keys: ring, Logger: log, Registry: reg})
}

func newLogger(level zap.AtomicLevel) (*zap.Logger, error) {
	zc := zap.NewProductionConfig()
	zc.Level = level
	zc.Sampling = nil
	return zc.Build()
}
