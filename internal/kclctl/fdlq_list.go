package kclctl

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"
)

// FDLQListReport is what `kclctl forwarder-dlq list` shows.
type FDLQListReport struct {
	Queue    string    `json:"queue"`
	QueueURL string    `json:"queue_url"`
	At       time.Time `json:"at"`
	// Depth is SQS's approximate count before the run; in-flight messages are hidden from it.
	Depth QueueDepth `json:"depth"`
	// Messages are the messages received, oldest first.
	Messages []FailedEvent `json:"messages"`
	// ByError counts Messages by FailedEvent.ErrorKey.
	ByError map[string]int `json:"by_error"`
	// OldestSentAt is the earliest SentAt among Messages and OldestAgeSeconds its age at At: what
	// the queue's ApproximateAgeOfOldestMessage alarm measures, when the run saw every message
	// (Stopped is queue_empty).
	OldestSentAt     time.Time `json:"oldest_sent_at,omitzero"`
	OldestAgeSeconds int64     `json:"oldest_age_seconds"`
	// Stopped says why the run ended (StopEmpty: every visible message was listed).
	Stopped  string    `json:"stopped"`
	Warnings []Warning `json:"warnings"`
}

// ListFailureQueue receives up to o.Limit messages of the queue (a name or a URL), parses them,
// and makes them visible again. SQS cannot peek: listing receives each message, which counts as a
// receive and hides it until the run ends. Unparseable messages are warnings.
func ListFailureQueue(ctx context.Context, q FailureQueueAPI, queue string, o FDLQOptions) (FDLQListReport, error) {
	o = o.withDefaults()
	rep := FDLQListReport{Queue: queue, At: o.Now().UTC(), Messages: []FailedEvent{}, ByError: map[string]int{}, Warnings: []Warning{}}
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
	end, err := runSession(ctx, workCtx, endCall, q, url, o, func(_ context.Context, _ *queueSession, batch []FailedEvent) (bool, error) {
		rep.Messages = append(rep.Messages, batch...)
		return false, nil
	})
	rep.Stopped = end.Stopped
	sortBySent(rep.Messages)
	for _, m := range rep.Messages {
		rep.ByError[m.ErrorKey()]++
		if m.Origin == OriginUnparseable {
			rep.Warnings = append(rep.Warnings, unparseableWarning(m))
		}
		if !m.SentAt.IsZero() && (rep.OldestSentAt.IsZero() || m.SentAt.Before(rep.OldestSentAt)) {
			rep.OldestSentAt = m.SentAt
		}
	}
	if !rep.OldestSentAt.IsZero() {
		rep.OldestAgeSeconds = int64(rep.At.Sub(rep.OldestSentAt) / time.Second)
	}
	rep.Warnings = append(rep.Warnings, end.Warnings...)
	return rep, err
}

// sortBySent orders messages oldest first; messages without a SentTimestamp go last, in receive
// order.
func sortBySent(ms []FailedEvent) {
	sort.SliceStable(ms, func(i, j int) bool {
		a, b := ms[i].SentAt, ms[j].SentAt
		return !a.IsZero() && (b.IsZero() || a.Before(b))
	})
}

func unparseableWarning(m FailedEvent) Warning {
	return Warning{Kind: WarnUnparseableMessage, Message: fmt.Sprintf("message %s (%d bytes): %s; left in the queue", m.MessageID, m.BodyBytes, m.Problem)}
}

// FDLQListHeader is the header of the forwarder-dlq list table.
var FDLQListHeader = []string{"AGE", "ORIGIN", "ERROR", "EVENT ID", "CUSTOMER", "TYPE", "SEQ", "RECEIVES", "DETAIL"}

// RenderFDLQList writes one row per message, oldest first, then the counts and the warnings.
func RenderFDLQList(w io.Writer, r FDLQListReport) error {
	rows := make([][]string, len(r.Messages))
	for i, m := range r.Messages {
		age := "-"
		if !m.SentAt.IsZero() {
			age = HumanDuration(r.At.Sub(m.SentAt))
		}
		seq := "-"
		if m.Seq != 0 {
			seq = strconv.FormatInt(m.Seq, 10)
		}
		detail := m.ErrorMessage
		if m.Origin == OriginUnparseable {
			detail = m.Problem
		}
		rows[i] = []string{age, m.Origin, orDash(clean(m.ErrorCode)), orDash(clean(clip(m.EventID, 40))), orDash(clean(clip(m.CustomerID, 40))),
			orDash(clean(clip(m.Type, 32))), seq, strconv.Itoa(m.ReceiveCount), orDash(clean(clip(detail, 72)))}
	}
	if err := Table(w, FDLQListHeader, rows); err != nil {
		return err
	}
	lines := []string{"", fmt.Sprintf("%d message(s) listed from %s (stopped: %s); SQS counted before: %d visible, %d in flight, %d delayed",
		len(r.Messages), r.Queue, r.Stopped, r.Depth.Visible, r.Depth.InFlight, r.Depth.Delayed)}
	if !r.OldestSentAt.IsZero() {
		lines = append(lines, fmt.Sprintf("oldest: sent %s, %s ago", r.OldestSentAt.UTC().Format("2006-01-02T15:04:05Z"),
			HumanDuration(r.At.Sub(r.OldestSentAt))))
	}
	if len(r.ByError) > 0 {
		keys := make([]string, 0, len(r.ByError))
		for k, n := range r.ByError {
			keys = append(keys, fmt.Sprintf("%s=%d", k, n))
		}
		sort.Strings(keys)
		lines = append(lines, "by error: "+strings.Join(keys, ", "))
	}
	if r.Depth.InFlight > 0 {
		lines = append(lines, "note: messages in flight when the run started (another run, or one that stopped without releasing them) were not listed")
	}
	if len(r.Messages) > 0 {
		lines = append(lines, "next: fix the cause, then `kclctl forwarder-dlq replay` (dry run) and `kclctl forwarder-dlq replay --apply`")
	}
	if _, err := fmt.Fprintln(w, strings.Join(lines, "\n")); err != nil {
		return err
	}
	return renderWarnings(w, r.Warnings)
}
