package forwarder

import (
	"errors"
	"fmt"
	"sync/atomic"

	"go.uber.org/zap"

	"github.com/kinesis-events/pipeline/internal/ordered"
)

// Forwarder writes EventBridge events to the raw stream and what it cannot forward to the
// quarantine stream. Build it with New.
type Forwarder struct {
	cfg Config
	kin Kinesis
	log *zap.Logger
	pii *piiPolicy // nil when the PII policy is off
	// streams are the writer steps per lane: laneRaw to RawStream, laneQuarantine to
	// QuarantineStream.
	streams [2]*ordered.Stream

	stats struct {
		read, forwarded, quarantined, failed, retries, throttles, batches, unknown, aggregated atomic.Int64
	}
}

// New applies cfg's defaults, validates it and returns a Forwarder writing through kin.
func New(cfg Config, kin Kinesis) (*Forwarder, error) {
	if kin == nil {
		return nil, errors.New("forwarder: nil Kinesis client")
	}
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("forwarder config: %w", err)
	}
	f := &Forwarder{cfg: cfg, kin: kin, log: cfg.Logger}
	f.streams[laneRaw], f.streams[laneQuarantine] = f.newStream(cfg.RawStream), f.newStream(cfg.QuarantineStream)
	paths, _ := parsePIIPaths(cfg.PIIPaths) // validated above
	if len(paths) > 0 {
		f.pii = &piiPolicy{paths: paths}
	}
	return f, nil
}

// Config returns the configuration in force, defaults applied.
func (f *Forwarder) Config() Config { return f.cfg }

// Stats are cumulative counts over the Forwarder's life (every Handle and every run). The JSON
// names are the ones the command's --progress lines use.
type Stats struct {
	Read        int64 `json:"read"`        // events received (non-blank lines and invocations)
	Forwarded   int64 `json:"forwarded"`   // written to the raw stream
	Quarantined int64 `json:"quarantined"` // written to the quarantine stream
	Failed      int64 `json:"failed"`      // neither: retries exhausted, fatal error or cancelled
	Retries     int64 `json:"retries"`     // entries sent again after a failed attempt
	Throttles   int64 `json:"throttles"`   // entries refused for throughput
	Batches     int64 `json:"batches"`     // PutRecords calls made
	// Unknown counts entries sent in a PutRecords attempt whose outcome was unknown (a 200 cut off,
	// a 5xx, no answer once sent), once per such attempt: the SDK or the forwarder sent them again,
	// so this bounds the byte-identical extra copies in the streams.
	Unknown int64 `json:"unknown_outcome"`
	// Aggregated counts events sent inside KPL aggregates (Config.AggregateKeys), every attempt.
	Aggregated int64 `json:"aggregated,omitempty"`
}

// Stats returns a snapshot of the cumulative counts; safe to call at any time from any goroutine.
func (f *Forwarder) Stats() Stats {
	s := &f.stats
	return Stats{
		Read: s.read.Load(), Forwarded: s.forwarded.Load(), Quarantined: s.quarantined.Load(),
		Failed: s.failed.Load(), Retries: s.retries.Load(), Throttles: s.throttles.Load(),
		Batches: s.batches.Load(), Unknown: s.unknown.Load(), Aggregated: s.aggregated.Load(),
	}
}
