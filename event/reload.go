package event

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"
)

// ReloadConfig configures Reload.
type ReloadConfig struct {
	// Every is the period between reads of the key source. Required, > 0.
	Every time.Duration
	// Timeout bounds one read; default the smaller of Every and 30 s.
	Timeout time.Duration
	// Logger gets a line when the key set changes and a warning when a read fails; key ids and
	// retirement times only, never secrets. Default zap.NewNop().
	Logger *zap.Logger
	// OnReload, when set, is called after every read with its outcome (nil: the keys were applied).
	OnReload func(err error)
}

// Validate reports a period that cannot work.
func (c ReloadConfig) Validate() error {
	if c.Every <= 0 {
		return fmt.Errorf("key reload period %s: want > 0", c.Every)
	}
	if c.Timeout < 0 {
		return fmt.Errorf("key reload timeout %s: want >= 0", c.Timeout)
	}
	return nil
}

// Load reads the keys from src once and swaps them into the keyring. On any error the keyring keeps
// the keys it had.
func (k *Keyring) Load(ctx context.Context, src KeySource) error {
	keys, err := src.Keys(ctx)
	if err != nil {
		return err
	}
	if len(keys) == 0 {
		return errors.New("signing keys: the source returned no keys")
	}
	return k.Replace(keys...)
}

// Describe lists the keys as "id" or "id (retired at T)", sorted by id: what may be logged about a
// key set.
func (k *Keyring) Describe() string {
	k.mu.RLock()
	parts := make([]string, 0, len(k.keys))
	for id, e := range k.keys {
		if e.RetiredAt.IsZero() {
			parts = append(parts, id)
		} else {
			parts = append(parts, id+" (retired at "+e.RetiredAt.UTC().Format(time.RFC3339)+")")
		}
	}
	k.mu.RUnlock()
	slices.Sort(parts)
	return strings.Join(parts, ", ")
}

// Reload keeps ring in step with src until ctx ends: every cfg.Every it reads src and swaps the keys
// in with Replace, so keys added to or retired in the source take effect without a restart. A failed
// read, or a key set that Replace refuses, leaves the current keys in place (an outage of the secrets
// store must not stop verification) and is logged; the next period tries again. Reload returns nil
// when ctx ends, or the configuration error.
func Reload(ctx context.Context, ring *Keyring, src KeySource, cfg ReloadConfig) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	if ring == nil || src == nil {
		return errors.New("key reload: keyring and source are required")
	}
	log := cfg.Logger
	if log == nil {
		log = zap.NewNop()
	}
	timeout := cfg.Timeout
	if timeout == 0 {
		timeout = min(cfg.Every, 30*time.Second)
	}
	t := time.NewTicker(cfg.Every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		before := ring.Describe()
		rctx, cancel := context.WithTimeout(ctx, timeout)
		err := ring.Load(rctx, src)
		cancel()
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			log.Warn("signing keys not reloaded; keeping the current keys", zap.Error(err), zap.String("keys", before))
		} else if after := ring.Describe(); after != before {
			log.Info("signing keys reloaded", zap.String("keys", after), zap.String("previous", before))
		}
		if cfg.OnReload != nil {
			cfg.OnReload(err)
		}
	}
}
