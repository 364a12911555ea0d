package kclctl

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/spf13/cobra"

	"github.com/kinesis-events/pipeline/event"
	"github.com/kinesis-events/pipeline/internal/ordered"
	"github.com/kinesis-events/pipeline/internal/retry"
)

// DLQ defaults.
const (
	EnvDLQStream     = "DLQ_STREAM"
	DefaultDLQStream = "events-dlq"
	// DefaultDLQLimit bounds the dead letters one run reads.
	DefaultDLQLimit = 10000
	// maxEmptyReads bounds consecutive empty GetRecords on a shard that Kinesis reports behind
	// (an iterator can stand in a gap of the shard for a few reads).
	maxEmptyReads = 50
	// maxReplayAttempts bounds the PutRecords attempts of one replayed record (a fatal answer, such
	// as a missing stream, is not retried).
	maxReplayAttempts = 6
)

// DLQAPI is the part of the Kinesis API the dlq commands use. *kinesis.Client implements it.
type DLQAPI interface {
	ListShards(ctx context.Context, in *kinesis.ListShardsInput, optFns ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error)
	GetShardIterator(ctx context.Context, in *kinesis.GetShardIteratorInput, optFns ...func(*kinesis.Options)) (*kinesis.GetShardIteratorOutput, error)
	GetRecords(ctx context.Context, in *kinesis.GetRecordsInput, optFns ...func(*kinesis.Options)) (*kinesis.GetRecordsOutput, error)
	ordered.Putter // replay writes through internal/ordered
}

// DeadLetter is one record of the DLQ stream: the worker's event.DeadLetter plus where it sits in
// the DLQ. Original (base64 in JSON) is the raw record as the worker read it.
type DeadLetter struct {
	event.DeadLetter
	// ReasonCode is the reason's stable code (the part before ": "), e.g. destination_unavailable.
	ReasonCode string    `json:"reason_code"`
	DLQShard   string    `json:"dlq_shard"`
	DLQSeq     string    `json:"dlq_sequence_number"`
	ArrivedAt  time.Time `json:"dlq_arrived_at"`
}

// DLQReport is what `kclctl dlq list` shows.
type DLQReport struct {
	Stream    string         `json:"stream"`
	At        time.Time      `json:"at"`
	Records   []DeadLetter   `json:"records"`
	ByReason  map[string]int `json:"by_reason"`
	Truncated bool           `json:"truncated"` // the limit stopped the read: more dead letters exist
	Warnings  []Warning      `json:"warnings"`
}

// Warning kinds of the dlq commands.
const (
	WarnUndecodable  = "undecodable_dead_letter" // a DLQ record that is not an event.DeadLetter
	WarnTruncated    = "truncated"               // --limit reached
	WarnUnreplayable = "unreplayable"            // a dead letter replay had to skip
)

// ReadDLQ reads every record of every shard of the DLQ stream (open and closed) from the trim
// horizon, up to limit, sorted by arrival.
func ReadDLQ(ctx context.Context, kin DLQAPI, stream string, limit int, now time.Time) (DLQReport, error) {
	rep := DLQReport{Stream: stream, At: now.UTC(), Records: []DeadLetter{}, ByReason: map[string]int{}, Warnings: []Warning{}}
	var shards []string
	in := &kinesis.ListShardsInput{StreamName: aws.String(stream)}
	for {
		page, err := kin.ListShards(ctx, in)
		if err != nil {
			return rep, fmt.Errorf("list shards of %s: %w", stream, err)
		}
		for _, s := range page.Shards {
			shards = append(shards, aws.ToString(s.ShardId))
		}
		if page.NextToken == nil {
			break
		}
		in = &kinesis.ListShardsInput{NextToken: page.NextToken}
	}
	sort.Strings(shards)
	for _, id := range shards {
		if err := readDLQShard(ctx, kin, stream, id, limit, &rep); err != nil {
			return rep, err
		}
		if rep.Truncated {
			break
		}
	}
	sort.SliceStable(rep.Records, func(i, j int) bool { return rep.Records[i].ArrivedAt.Before(rep.Records[j].ArrivedAt) })
	for _, r := range rep.Records {
		rep.ByReason[r.ReasonCode]++
	}
	if rep.Truncated {
		rep.Warnings = append(rep.Warnings, Warning{Kind: WarnTruncated, Message: fmt.Sprintf("stopped at --limit %d; more dead letters exist", limit)})
	}
	return rep, nil
}

func readDLQShard(ctx context.Context, kin DLQAPI, stream, shard string, limit int, rep *DLQReport) error {
	it, err := kin.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String(stream), ShardId: aws.String(shard),
		ShardIteratorType: types.ShardIteratorTypeTrimHorizon})
	if err != nil {
		return fmt.Errorf("shard %s of %s: %w", shard, stream, err)
	}
	iter, empty := it.ShardIterator, 0
	for iter != nil {
		out, err := kin.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: iter, Limit: aws.Int32(1000)})
		if err != nil {
			return fmt.Errorf("shard %s of %s: %w", shard, stream, err)
		}
		for _, r := range out.Records {
			if len(rep.Records) >= limit {
				rep.Truncated = true
				return nil
			}
			seq := aws.ToString(r.SequenceNumber)
			var dl event.DeadLetter
			if err := json.Unmarshal(r.Data, &dl); err != nil {
				rep.Warnings = append(rep.Warnings, Warning{Shard: shard, Kind: WarnUndecodable, Message: fmt.Sprintf("record %s: %v", seq, err)})
				continue
			}
			code, _, _ := strings.Cut(dl.Reason, ":")
			rep.Records = append(rep.Records, DeadLetter{DeadLetter: dl, ReasonCode: strings.TrimSpace(code), DLQShard: shard, DLQSeq: seq,
				ArrivedAt: aws.ToTime(r.ApproximateArrivalTimestamp).UTC()})
		}
		if len(out.Records) == 0 {
			if aws.ToInt64(out.MillisBehindLatest) == 0 {
				return nil
			}
			if empty++; empty > maxEmptyReads {
				return fmt.Errorf("shard %s of %s: %d empty reads while %d ms behind latest", shard, stream, empty, aws.ToInt64(out.MillisBehindLatest))
			}
		} else {
			empty = 0
		}
		iter = out.NextShardIterator
	}
	return nil
}

// DLQListHeader is the header of the dlq list table.
var DLQListHeader = []string{"EVENT ID", "CUSTOMER", "REASON", "DESTINATION", "ATTEMPTS", "FIRST FAILURE", "LAST FAILURE", "SOURCE SHARD", "SOURCE SEQ"}

// RenderDLQ writes the dead letters as a table, counts by reason, and the warnings.
func RenderDLQ(w io.Writer, r DLQReport) error {
	rows := make([][]string, len(r.Records))
	ts := func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return t.UTC().Format("2006-01-02T15:04:05.000Z")
	}
	for i, d := range r.Records {
		rows[i] = []string{orDash(clean(d.EventID)), orDash(clean(d.CustomerID)), orDash(clean(d.ReasonCode)), orDash(clean(d.Destination)),
			strconv.Itoa(d.Attempts), ts(d.FirstFailure), ts(d.LastFailure), orDash(clean(d.SourceShard)), orDash(ShortSeq(clean(d.SourceSeq)))}
	}
	if err := Table(w, DLQListHeader, rows); err != nil {
		return err
	}
	reasons := make([]string, 0, len(r.ByReason))
	for k, n := range r.ByReason {
		reasons = append(reasons, fmt.Sprintf("%s=%d", k, n))
	}
	sort.Strings(reasons)
	summary := fmt.Sprintf("\n%d dead letter(s) in %s", len(r.Records), r.Stream)
	if len(reasons) > 0 {
		summary += " by reason: " + strings.Join(reasons, ", ")
	}
	if _, err := fmt.Fprintln(w, summary); err != nil {
		return err
	}
	return renderWarnings(w, r.Warnings)
}

// ReplayOptions selects and replays dead letters.
type ReplayOptions struct {
	RawStream string
	// EventIDs, if any, selects only these events; Reason, if set, only dead letters whose reason
	// contains it.
	EventIDs []string
	Reason   string
	Apply    bool
	// Backoff is the base of the jittered backoff between attempts (default 100ms).
	Backoff time.Duration
}

// Replay results per record.
const (
	ReplayWould      = "would replay"
	ReplayDone       = "replayed"
	ReplayDuplicate  = "skipped: same event and content as an earlier dead letter"
	ReplayNoCustomer = "skipped: no customer_id for the partition key"
	ReplayNoOriginal = "skipped: the original is not a raw record"
	ReplayFailed     = "failed"
)

// ReplayRow is one selected dead letter and what replay did with it.
type ReplayRow struct {
	EventID    string `json:"event_id"`
	CustomerID string `json:"customer_id"`
	Reason     string `json:"reason_code"`
	DLQSeq     string `json:"dlq_sequence_number"`
	Result     string `json:"result"`
	Error      string `json:"error,omitempty"`
	// RawShard and RawSeq are where the replayed record landed in the raw stream.
	RawShard string `json:"raw_shard,omitempty"`
	RawSeq   string `json:"raw_sequence_number,omitempty"`
}

// ReplayReport is what `kclctl dlq replay` shows.
type ReplayReport struct {
	DLQStream string      `json:"dlq_stream"`
	RawStream string      `json:"raw_stream"`
	Applied   bool        `json:"applied"`
	Rows      []ReplayRow `json:"records"`
	Selected  int         `json:"selected"`
	Replayed  int         `json:"replayed"` // with --apply; else how many would be
	Skipped   int         `json:"skipped"`
	Failed    int         `json:"failed"`
	// Unknown counts records sent in attempts whose outcome is unknown, once per such attempt: at
	// most this many may be in the raw stream twice (the pipeline's dedupe drops them).
	Unknown  int       `json:"unknown_outcome"`
	Warnings []Warning `json:"warnings"`
}

// pending is one dead letter to put back, and what became of it.
type pending struct {
	rec ordered.Record
	row int // in ReplayReport.Rows
}

// Rec implements ordered.Item.
func (p *pending) Rec() *ordered.Record { return &p.rec }

// Replay puts the originals of the selected dead letters back into the raw stream, partition key =
// customer_id, in DLQ order per customer, through the project's ordered writer (internal/ordered):
// a customer's next record is sent only after its previous one landed, so replayed events keep
// their relative order; a failed record is retried with backoff up to maxReplayAttempts, and a
// customer whose record is given up on keeps its later records unsent. Dead letters carrying the
// same event and content are replayed once; originals that are not raw records, or lack a customer
// id, are skipped with a warning. Replaying an event that was delivered after all is harmless: the
// pipeline's dedupe drops it, as it drops the copies a write with an unknown outcome can leave
// (ReplayReport.Unknown).
func Replay(ctx context.Context, kin DLQAPI, dlq DLQReport, o ReplayOptions) (ReplayReport, error) {
	if o.Backoff <= 0 {
		o.Backoff = 100 * time.Millisecond
	}
	rep := ReplayReport{DLQStream: dlq.Stream, RawStream: o.RawStream, Applied: o.Apply, Rows: []ReplayRow{}, Warnings: append([]Warning{}, dlq.Warnings...)}
	want := map[string]bool{}
	for _, id := range o.EventIDs {
		want[id] = true
	}
	seen := map[[32]byte]bool{}
	var items []*pending
	for _, d := range dlq.Records {
		if len(want) > 0 && !want[d.EventID] || o.Reason != "" && !strings.Contains(d.Reason, o.Reason) {
			continue
		}
		rep.Selected++
		row := ReplayRow{EventID: d.EventID, CustomerID: d.CustomerID, Reason: d.ReasonCode, DLQSeq: d.DLQSeq}
		key, err := partitionKey(d)
		sum := sha256.Sum256(append([]byte(d.EventID+"\x00"), d.Original...))
		switch {
		case err != nil:
			row.Result, row.Error = ReplayNoOriginal, err.Error()
		case key == "":
			row.Result = ReplayNoCustomer
		case seen[sum]:
			row.Result = ReplayDuplicate
		default:
			seen[sum] = true
			row.Result = ReplayWould
			items = append(items, &pending{row: len(rep.Rows), rec: ordered.Record{Key: key, Data: d.Original, ID: d.EventID}})
		}
		if row.Result != ReplayWould {
			rep.Skipped++
			if row.Result != ReplayDuplicate {
				rep.Warnings = append(rep.Warnings, Warning{Kind: WarnUnreplayable, Message: fmt.Sprintf("dead letter %s (event %q): %s %s", d.DLQSeq, d.EventID, row.Result, row.Error)})
			}
		}
		rep.Rows = append(rep.Rows, row)
	}
	if !o.Apply {
		for _, r := range rep.Rows {
			if r.Result == ReplayWould {
				rep.Replayed++
			}
		}
		return rep, nil
	}
	err := replay(ctx, kin, o, items, &rep)
	for i := range rep.Rows {
		switch rep.Rows[i].Result {
		case ReplayDone:
			rep.Replayed++
		case ReplayWould: // never sent: the run stopped first
			rep.Rows[i].Result = ReplayFailed
			rep.Rows[i].Error = "not sent"
			rep.Failed++
		case ReplayFailed:
			rep.Failed++
		}
	}
	return rep, err
}

// partitionKey is the customer id of a dead letter: its own field, else the original's
// detail.customer_id. The original must be a raw record (a JSON object with a detail).
func partitionKey(d DeadLetter) (string, error) {
	var raw struct {
		Detail *struct {
			CustomerID string `json:"customer_id"`
		} `json:"detail"`
	}
	if len(d.Original) == 0 {
		return "", errors.New("empty original")
	}
	if err := json.Unmarshal(d.Original, &raw); err != nil || raw.Detail == nil {
		return "", fmt.Errorf("original is not a raw record: %v", err)
	}
	key := d.CustomerID
	if key == "" {
		key = raw.Detail.CustomerID
	}
	if len(key) > 256 {
		return "", fmt.Errorf("customer_id longer than a partition key (%d bytes)", len(key))
	}
	return key, nil
}

// replay writes items to the raw stream and records each one's result in its row.
func replay(ctx context.Context, kin DLQAPI, o ReplayOptions, items []*pending, rep *ReplayReport) error {
	var unknown tally
	w, err := ordered.NewWriter[*pending](ordered.NewStream(kin, o.RawStream, nil, ordered.Metrics{Unknown: &unknown}).Put, ordered.WriterConfig{
		Policy: ordered.Policy{Backoff: retry.Policy{Initial: o.Backoff, Max: o.Backoff << 6}, MaxAttempts: maxReplayAttempts},
	})
	if err != nil {
		return err
	}
	werr := w.Write(ctx, items)
	rep.Unknown = unknown.n
	for _, p := range items {
		row := &rep.Rows[p.row]
		switch p.rec.State {
		case ordered.Written:
			row.Result, row.RawShard, row.RawSeq = ReplayDone, p.rec.ShardID, p.rec.SequenceNumber
		case ordered.Failed:
			row.Result, row.Error = ReplayFailed, p.rec.LastError
			if p.rec.Cause == ordered.CauseEarlier {
				row.Error = "not sent: an earlier dead letter of the customer failed"
			}
		}
	}
	if werr != nil {
		return fmt.Errorf("replay into %s: %w", o.RawStream, werr)
	}
	return nil
}

// tally is an ordered.Counter for one run.
type tally struct{ n int }

func (t *tally) Add(v float64) { t.n += int(v) }

// ReplayHeader is the header of the replay table.
var ReplayHeader = []string{"EVENT ID", "CUSTOMER", "REASON", "RESULT", "RAW SHARD", "RAW SEQ"}

// RenderReplay writes one row per selected dead letter, the totals, and the warnings.
func RenderReplay(w io.Writer, r ReplayReport) error {
	rows := make([][]string, len(r.Rows))
	for i, x := range r.Rows {
		res := x.Result
		if x.Result == ReplayFailed && x.Error != "" {
			res += ": " + x.Error
		}
		rows[i] = []string{orDash(clean(x.EventID)), orDash(clean(x.CustomerID)), orDash(clean(x.Reason)), clean(res), orDash(x.RawShard), orDash(ShortSeq(x.RawSeq))}
	}
	if err := Table(w, ReplayHeader, rows); err != nil {
		return err
	}
	verb := "would replay"
	if r.Applied {
		verb = "replayed"
	}
	if _, err := fmt.Fprintf(w, "\n%d selected from %s: %s %d into %s, skipped %d, failed %d\n", r.Selected, r.DLQStream, verb, r.Replayed, r.RawStream, r.Skipped, r.Failed); err != nil {
		return err
	}
	if r.Unknown > 0 {
		if _, err := fmt.Fprintf(w, "note: %d record(s) were sent in attempts whose outcome is unknown and may be in %s twice (dedupe drops the copies)\n", r.Unknown, r.RawStream); err != nil {
			return err
		}
	}
	if !r.Applied && r.Replayed > 0 {
		if _, err := fmt.Fprintln(w, "dry run: nothing written; add --apply to replay (dedupe drops events that were delivered after all)"); err != nil {
			return err
		}
	}
	return renderWarnings(w, r.Warnings)
}

func newDLQCommand(app *App, g *Globals) *cobra.Command {
	var (
		dlqStream string
		limit     int
	)
	dlq := &cobra.Command{
		Use:   "dlq",
		Short: "List and replay the dead-letter stream",
		Long: `dlq reads the dead-letter stream: records the workers could not deliver within their retry and
circuit-breaker budget. Each carries the original raw record, the reason, the attempts, the
first and last failure and the source shard and sequence number.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_ = cmd.Help() // a failure to print help is not actionable
			return usageError{errors.New("dlq needs a subcommand: list or replay")}
		},
	}
	pf := dlq.PersistentFlags()
	envOr := func(k, def string) string {
		if v := app.Getenv(k); v != "" {
			return v
		}
		return def
	}
	pf.StringVar(&dlqStream, "dlq-stream", envOr(EnvDLQStream, DefaultDLQStream), "dead-letter stream (env "+EnvDLQStream+")")
	pf.IntVar(&limit, "limit", DefaultDLQLimit, "read at most this many dead letters")
	read := func(ctx context.Context) (*Clients, DLQReport, error) {
		if limit < 1 {
			return nil, DLQReport{}, usageError{errors.New("--limit must be positive")}
		}
		c, err := app.awsClients(ctx, g.Timeout)
		if err != nil {
			return nil, DLQReport{}, err
		}
		r, err := ReadDLQ(ctx, c.Kinesis, dlqStream, limit, app.Now())
		return c, r, err
	}

	list := &cobra.Command{
		Use:   "list",
		Short: "List dead letters: reason, attempts, first/last failure, source shard/seq, event id",
		Long: `list reads the whole dead-letter stream (up to --limit) and prints one row per dead letter,
oldest first, then the count per reason. --json has every field, the original record included
(base64). Records that are not dead letters are warnings (exit 3).`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), g.Timeout)
			defer cancel()
			_, r, err := read(ctx)
			if err != nil {
				return err
			}
			if err := app.output(g, r, func(w io.Writer) error { return RenderDLQ(w, r) }); err != nil {
				return err
			}
			if len(r.Warnings) > 0 {
				return ErrWarnings
			}
			return nil
		},
	}

	var (
		eventIDs []string
		reason   string
		apply    bool
		wait     time.Duration
	)
	replay := &cobra.Command{
		Use:   "replay [--event-id ID ...] [--reason TEXT] [--apply]",
		Short: "Put dead letters' original records back into the raw stream (dry run unless --apply)",
		Long: `replay puts the original raw records of the selected dead letters (all, or those matching
--event-id / --reason) back into the raw stream (--stream), partition key = customer_id, in
DLQ order per customer. Without --apply it only lists what it would replay.

Replaying is safe: the pipeline dedupes by event_id after a successful write, so an event that
was delivered after all (or is replayed twice) is dropped as a natural duplicate, and events of
a customer go through the reorder stage like any other. Dead letters with the same event and
content are replayed once. Originals that are not raw records or have no customer_id are
skipped with a warning (exit 3); records that could not be put make the exit code 1.

--wait bounds the whole run (reading the DLQ and every put); --timeout each AWS request.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if wait <= 0 {
				return usageError{errors.New("--wait must be positive")}
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), wait)
			defer cancel()
			c, r, err := read(ctx)
			if err != nil {
				return err
			}
			rep, err := Replay(ctx, c.Kinesis, r, ReplayOptions{RawStream: g.Stream, EventIDs: eventIDs, Reason: reason, Apply: apply})
			if werr := app.output(g, rep, func(w io.Writer) error { return RenderReplay(w, rep) }); werr != nil {
				return werr
			}
			switch {
			case err != nil:
				return err
			case rep.Failed > 0:
				return fmt.Errorf("%d dead letter(s) could not be replayed (see the table)", rep.Failed)
			case len(rep.Warnings) > 0:
				return ErrWarnings
			}
			return nil
		},
	}
	replay.Flags().StringSliceVar(&eventIDs, "event-id", nil, "replay only these event ids (repeat or comma-separate)")
	replay.Flags().StringVar(&reason, "reason", "", "replay only dead letters whose reason contains this text")
	replay.Flags().BoolVar(&apply, "apply", false, "put the records (default: dry run)")
	replay.Flags().DurationVar(&wait, "wait", 5*time.Minute, "bound on the whole run")
	dlq.AddCommand(list, replay)
	return dlq
}
