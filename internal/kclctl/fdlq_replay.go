package kclctl

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/kinesis-events/pipeline/forwarder"
)

// EventForwarder is what replay needs of the forwarder: its Lambda entry point, so that a replayed
// event takes the path of a live invocation (the same strict decoding, validation, quarantine of
// bad input with its reason, PII check and partitioning, and the forwarder's one writer), and its
// counts. *forwarder.Forwarder implements it.
type EventForwarder interface {
	Invoke(ctx context.Context, payload []byte) ([]byte, error)
	Stats() forwarder.Stats
}

// Replay results per message.
const (
	FDLQWouldReplay = "would replay"
	FDLQForwarded   = "forwarded"   // written to the raw stream; message deleted unless Error says otherwise
	FDLQQuarantined = "quarantined" // bad input, written to the quarantine stream with its Reason; deleted likewise
	FDLQFailed      = "failed"      // the forwarder could not write it: left in the queue
	FDLQHeld        = "held"        // not sent: an earlier event of the customer failed in this run; left in the queue
	FDLQUnparseable = "unparseable" // neither format: left in the queue
)

// FDLQReplayRow is one received message and what replay did with it.
type FDLQReplayRow struct {
	MessageID  string `json:"message_id"`
	Origin     string `json:"origin"`
	ErrorCode  string `json:"error_code,omitempty"`
	EventID    string `json:"event_id,omitempty"`
	CustomerID string `json:"customer_id,omitempty"`
	Seq        int64  `json:"seq,omitempty"`
	Result     string `json:"result"`
	// Reason is the quarantine reason of a quarantined event.
	Reason string `json:"reason,omitempty"`
	// Stream, ShardID and SequenceNumber are where the forwarder wrote the event.
	Stream         string `json:"stream,omitempty"`
	ShardID        string `json:"shard_id,omitempty"`
	SequenceNumber string `json:"sequence_number,omitempty"`
	// Deleted: the message is gone from the queue. A written event whose message could not be
	// deleted has Deleted false and the delete error in Error: a later replay sends it again, and
	// the worker's dedupe drops the copy.
	Deleted bool   `json:"deleted"`
	Error   string `json:"error,omitempty"`
}

// FDLQReplayReport is what `kclctl forwarder-dlq replay` shows.
type FDLQReplayReport struct {
	Queue            string          `json:"queue"`
	QueueURL         string          `json:"queue_url"`
	RawStream        string          `json:"raw_stream"`
	QuarantineStream string          `json:"quarantine_stream"`
	Applied          bool            `json:"applied"`
	At               time.Time       `json:"at"`
	Depth            QueueDepth      `json:"depth"` // SQS's approximate count before the run
	Rows             []FDLQReplayRow `json:"messages"`
	Received         int             `json:"received"`
	Would            int             `json:"would_replay"` // dry run: parseable messages
	Forwarded        int             `json:"forwarded"`
	Quarantined      int             `json:"quarantined"`
	Failed           int             `json:"failed"`
	Held             int             `json:"held"`
	Unparseable      int             `json:"unparseable"`
	Deleted          int             `json:"deleted"`
	// NotDeleted counts written events whose message could not be deleted.
	NotDeleted int `json:"not_deleted"`
	// UnknownOutcome counts records the forwarder sent in attempts whose outcome was unknown
	// (forwarder.Stats.Unknown): the most byte-identical extra copies this run can have written.
	UnknownOutcome int64     `json:"unknown_outcome"`
	Stopped        string    `json:"stopped"`
	Warnings       []Warning `json:"warnings"`
}

// ReplayFailureQueue re-forwards the EventBridge events of the failure queue (a name or a URL)
// through fwd, one receive batch (up to 10 messages) at a time, and deletes a message only after
// its event was forwarded or quarantined: a crash in between leaves the message in the queue, and
// the event written twice is dropped downstream by the worker's dedupe, as with any replay.
//
// Within a batch, each customer's events go out one after the other in seq order, different
// customers concurrently. An event the forwarder fails to write (after its own retries) stays in
// the queue, holds the customer's later events of the batch back, and ends the run after the batch:
// the cause (a throttled or missing stream) is likely to hold for the rest, which stays in the
// queue for the next run. Unparseable messages are warnings and stay in the queue. Without apply
// nothing is forwarded or deleted: the messages are received, reported and made visible again.
//
// The error is a failed receive, a forwarder refused by Kinesis (forwarder.ErrFatalPut), or the
// interruption of the run; the report is valid in every case.
func ReplayFailureQueue(ctx context.Context, q FailureQueueAPI, queue string, fwd EventForwarder, apply bool, o FDLQOptions) (FDLQReplayReport, error) {
	o = o.withDefaults()
	rep := FDLQReplayReport{Queue: queue, Applied: apply, At: o.Now().UTC(), Rows: []FDLQReplayRow{}, Warnings: []Warning{}}
	if err := o.Validate(); err != nil {
		return rep, err
	}
	workCtx, cancel, endCall := runBudget(ctx, o)
	defer cancel()
	url, err := ResolveQueue(workCtx, q, queue)
	if err != nil {
		return rep, err
	}
	rep.QueueURL = url
	if rep.Depth, err = ReadQueueDepth(workCtx, q, url); err != nil {
		return rep, err
	}
	before := fwd.Stats().Unknown
	end, runErr := runSession(ctx, workCtx, endCall, q, url, o, func(ctx context.Context, s *queueSession, batch []FailedEvent) (bool, error) {
		rows := make([]FDLQReplayRow, len(batch))
		for i, m := range batch {
			rows[i] = FDLQReplayRow{MessageID: m.MessageID, Origin: m.Origin, ErrorCode: m.ErrorCode, EventID: m.EventID, CustomerID: m.CustomerID, Seq: m.Seq}
			switch {
			case m.Origin == OriginUnparseable:
				rows[i].Result, rows[i].Error = FDLQUnparseable, m.Problem
				rep.Warnings = append(rep.Warnings, unparseableWarning(m))
			case !apply:
				rows[i].Result = FDLQWouldReplay
			}
		}
		var stop bool
		var err error
		if apply {
			stop, err = forwardBatch(ctx, s, fwd, batch, rows)
		}
		rep.Rows = append(rep.Rows, rows...)
		return stop, err
	})
	rep.Stopped, rep.Received = end.Stopped, end.Received
	rep.UnknownOutcome = fwd.Stats().Unknown - before
	for _, r := range rep.Rows {
		switch r.Result {
		case FDLQWouldReplay:
			rep.Would++
		case FDLQForwarded:
			rep.Forwarded++
		case FDLQQuarantined:
			rep.Quarantined++
		case FDLQFailed:
			rep.Failed++
		case FDLQHeld:
			rep.Held++
		case FDLQUnparseable:
			rep.Unparseable++
		}
		if r.Deleted {
			rep.Deleted++
		} else if r.Result == FDLQForwarded || r.Result == FDLQQuarantined {
			rep.NotDeleted++
		}
	}
	rep.Warnings = append(rep.Warnings, end.Warnings...)
	return rep, runErr
}

// forwardBatch forwards the parseable events of one batch (rows[i] describes batch[i]) and deletes
// the messages of those written. stop reports a failed event; err a forwarder Kinesis refused.
func forwardBatch(ctx context.Context, s *queueSession, fwd EventForwarder, batch []FailedEvent, rows []FDLQReplayRow) (stop bool, err error) {
	// One lane per customer (events without a customer id each get their own): a customer's
	// events go out in seq order, one at a time.
	lanes := map[string][]int{}
	var keys []string
	for i, m := range batch {
		if m.Origin == OriginUnparseable {
			continue
		}
		k := "customer " + m.CustomerID
		if m.CustomerID == "" {
			k = "message " + m.MessageID
		}
		if _, ok := lanes[k]; !ok {
			keys = append(keys, k)
		}
		lanes[k] = append(lanes[k], i)
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		fatal error
	)
	for _, k := range keys {
		lane := lanes[k]
		// By seq; an event without one (the forwarder quarantines it) after the others.
		sort.SliceStable(lane, func(a, b int) bool {
			x, y := batch[lane[a]].Seq, batch[lane[b]].Seq
			if (x > 0) != (y > 0) {
				return x > 0
			}
			return x < y
		})
		wg.Go(func() {
			failed := false
			for _, i := range lane {
				if failed {
					rows[i].Result, rows[i].Error = FDLQHeld, "an earlier event of the customer was not written"
					continue
				}
				err := forwardOne(ctx, fwd, batch[i], &rows[i])
				if err == nil {
					continue
				}
				failed = true
				if errors.Is(err, forwarder.ErrFatalPut) {
					mu.Lock()
					fatal = err
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()

	var written []string
	byID := map[string]int{}
	for i, r := range rows {
		switch r.Result {
		case FDLQForwarded, FDLQQuarantined:
			written = append(written, r.MessageID)
			byID[r.MessageID] = i
		case FDLQFailed, FDLQHeld:
			stop = true
		}
	}
	failedDeletes := s.delete(written)
	for _, id := range written {
		r := &rows[byID[id]]
		if err, ok := failedDeletes[id]; ok {
			r.Error = fmt.Sprintf("written but not deleted (a later replay sends it again; dedupe drops the copy): %v", err)
			stop = true
			continue
		}
		r.Deleted = true
	}
	if fatal != nil {
		return true, fmt.Errorf("the forwarder cannot write: %w", fatal)
	}
	return stop, nil
}

// forwardOne hands one event to the forwarder, records the outcome in row, and returns the
// forwarder's error when the event was not written.
func forwardOne(ctx context.Context, fwd EventForwarder, m FailedEvent, row *FDLQReplayRow) error {
	out, err := fwd.Invoke(ctx, m.Event)
	if err != nil {
		row.Result, row.Error = FDLQFailed, err.Error()
		return err
	}
	var o forwarder.Outcome
	if err := json.Unmarshal(out, &o); err != nil {
		// Invoke returned no error: the event was written, only its description is unreadable.
		row.Result, row.Error = FDLQForwarded, fmt.Sprintf("outcome unreadable: %v", err)
		return nil
	}
	row.Result = FDLQForwarded
	if o.Status == forwarder.StatusQuarantined {
		row.Result, row.Reason = FDLQQuarantined, string(o.Reason)
	}
	row.Stream, row.ShardID, row.SequenceNumber = o.Stream, o.ShardID, o.SequenceNumber
	return nil
}

// FDLQReplayHeader is the header of the forwarder-dlq replay table.
var FDLQReplayHeader = []string{"EVENT ID", "CUSTOMER", "SEQ", "ORIGIN", "ERROR", "RESULT", "STREAM", "SHARD", "SEQUENCE NUMBER"}

// RenderFDLQReplay writes one row per received message, the totals and the warnings.
func RenderFDLQReplay(w io.Writer, r FDLQReplayReport) error {
	rows := make([][]string, len(r.Rows))
	for i, x := range r.Rows {
		res := x.Result
		if x.Reason != "" {
			res += ": " + x.Reason
		}
		if x.Error != "" {
			res += " (" + clip(x.Error, 120) + ")"
		}
		seq := "-"
		if x.Seq != 0 {
			seq = fmt.Sprint(x.Seq)
		}
		rows[i] = []string{orDash(clean(clip(x.EventID, 40))), orDash(clean(clip(x.CustomerID, 40))), seq, x.Origin, orDash(clean(x.ErrorCode)),
			clean(res), orDash(x.Stream), orDash(x.ShardID), orDash(ShortSeq(x.SequenceNumber))}
	}
	if err := Table(w, FDLQReplayHeader, rows); err != nil {
		return err
	}
	var lines []string
	if r.Applied {
		lines = append(lines, fmt.Sprintf("\n%d received from %s (stopped: %s): forwarded %d into %s, quarantined %d into %s, failed %d, held %d, unparseable %d; deleted %d",
			r.Received, r.Queue, r.Stopped, r.Forwarded, r.RawStream, r.Quarantined, r.QuarantineStream, r.Failed, r.Held, r.Unparseable, r.Deleted))
		if left := r.Received - r.Deleted; left > 0 {
			lines = append(lines, fmt.Sprintf("%d message(s) left in the queue for the next run", left))
		}
		if r.UnknownOutcome > 0 {
			lines = append(lines, fmt.Sprintf("%d record(s) sent in writes with an unknown outcome: they may be in the stream twice, byte for byte (dedupe drops the copies)", r.UnknownOutcome))
		}
	} else {
		lines = append(lines, fmt.Sprintf("\n%d received from %s (stopped: %s): would replay %d into %s, unparseable %d",
			r.Received, r.Queue, r.Stopped, r.Would, r.RawStream, r.Unparseable))
		if r.Would > 0 {
			lines = append(lines, "dry run: nothing forwarded or deleted, the messages are visible again; add --apply to replay (dedupe drops events that were delivered after all)")
		}
	}
	if _, err := fmt.Fprintln(w, strings.Join(lines, "\n")); err != nil {
		return err
	}
	return renderWarnings(w, r.Warnings)
}
