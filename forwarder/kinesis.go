package forwarder

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/kinesis-events/pipeline/internal/ordered"
	"github.com/kinesis-events/pipeline/internal/retry"
)

// Kinesis is the one call the forwarder makes. *kinesis.Client implements it.
type Kinesis = ordered.Putter

// ErrFatalPut is returned (wrapped) when Kinesis rejects a PutRecords call in a way retrying cannot
// fix: missing stream, access denied, invalid argument, KMS key unusable.
var ErrFatalPut = errors.New("kinesis rejected the request")

// Every write goes through internal/ordered: its Stream makes the calls (classification, limits,
// unknown outcomes) and its Queue keeps the per-key rule and the retry policy, for the Lambda path
// (one record, ordered.Writer) and local mode (many calls in flight, stream.go) alike.

// newStream is the writer step for stream, counting into the Forwarder's stats.
func (f *Forwarder) newStream(stream string) *ordered.Stream {
	s := &f.stats
	return ordered.NewStream(f.kin, stream, f.log, ordered.Metrics{
		Calls:      tally{&s.batches},
		Retries:    tally{&s.retries},
		Throttles:  tally{&s.throttles},
		Unknown:    tally{&s.unknown},
		Aggregated: tally{&s.aggregated},
	})
}

// policy is the forwarder's retry policy: at most MaxAttempts per record, a jittered backoff from
// MinBackoff to MaxBackoff between them, and a fatal answer given up on at once.
func (f *Forwarder) policy() ordered.Policy {
	return ordered.Policy{Backoff: retry.Policy{Initial: f.cfg.MinBackoff, Max: f.cfg.MaxBackoff}, MaxAttempts: f.cfg.MaxAttempts}
}

// Rec implements ordered.Item.
func (e *entry) Rec() *ordered.Record { return &e.rec }

// toWrite readies e's writer record.
func (e *entry) toWrite() { e.rec = ordered.Record{Key: e.key, Data: e.data, ID: e.eventID} }

// failure is the error of an entry the writer gave up on.
func failure(e *entry) error {
	r := &e.rec
	switch r.Cause {
	case ordered.CauseFatal, ordered.CauseLimit:
		return fmt.Errorf("%w: %s", ErrFatalPut, r.LastError)
	case ordered.CauseAttempts:
		return fmt.Errorf("gave up after %d attempts: %s", r.Attempts, r.LastError)
	case ordered.CauseDeadline:
		return fmt.Errorf("no time left before the deadline after %d attempts: %s", r.Attempts, r.LastError)
	}
	return fmt.Errorf("%s: %s", r.Cause, r.LastError)
}

// writeOne puts one entry to lane's stream, retrying a failed attempt after a jittered backoff
// until MaxAttempts, a fatal error, or too little time before ctx's deadline for another wait.
func (f *Forwarder) writeOne(ctx context.Context, l lane, e *entry) (shard, seq string, err error) {
	w, err := ordered.NewWriter[*entry](f.streams[l].Put, ordered.WriterConfig{Policy: f.policy(), MinAttemptTime: minAttemptTime})
	if err != nil {
		return "", "", err
	}
	e.toWrite()
	werr := w.Write(ctx, []*entry{e})
	switch {
	case e.rec.State == ordered.Written: // even when ctx ended right after the call landed
		return e.rec.ShardID, e.rec.SequenceNumber, nil
	case werr != nil:
		return "", "", fmt.Errorf("after %d attempts: %w (last: %s)", e.rec.Attempts, werr, e.rec.LastError)
	}
	return "", "", failure(e)
}

// tally counts into a cumulative stat.
type tally struct{ stat *atomic.Int64 }

func (t tally) Add(v float64) { t.stat.Add(int64(v)) }
