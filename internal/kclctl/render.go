package kclctl

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// Table writes rows as columns separated by two spaces, header first. Cells must not contain tabs or
// line feeds (callers pass identifiers and formatted numbers).
func Table(w io.Writer, header []string, rows [][]string) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}

// WriteJSON writes v as indented JSON (one document), or compact on one line when compact is set
// (--watch --json emits one line per refresh).
func WriteJSON(w io.Writer, v any, compact bool) error {
	enc := json.NewEncoder(w)
	if !compact {
		enc.SetIndent("", "  ")
	}
	return enc.Encode(v)
}

// ShortSeq shortens a Kinesis sequence number for tables: the first 4 and last 8 digits. Sentinels
// and short values are kept whole; --json always has the full value.
func ShortSeq(s string) string {
	if len(s) <= 16 {
		return s
	}
	return s[:4] + "..." + s[len(s)-8:]
}

// HumanDuration formats d compactly for tables: 850ms, 12s, 2m05s, 3h04m, 2d03h.
func HumanDuration(d time.Duration) string {
	if d < 0 {
		d = -d
	}
	switch {
	case d < time.Second:
		return fmt.Sprintf("%dms", d.Milliseconds())
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd%02dh", int(d.Hours())/24, int(d.Hours())%24)
}

// expiresIn renders a lease expiry relative to at: "7s", "expired 3s ago", or "-" without a lease.
func expiresIn(s Shard, at time.Time) string {
	if s.LeaseExpiry.IsZero() || s.Owner == "" {
		return "-"
	}
	d := s.LeaseExpiry.Sub(at)
	if d <= 0 {
		return "expired " + HumanDuration(d) + " ago"
	}
	return HumanDuration(d)
}

// lagCell renders a Lag: "0" caught up, the age when behind, "-" when done, "?" when unknown.
func lagCell(l Lag) string {
	switch l.Status {
	case LagCaughtUp:
		return "0"
	case LagBehind:
		return HumanDuration(time.Duration(l.AgeMS) * time.Millisecond)
	case LagDone:
		return "-"
	}
	return "?"
}

// clean makes a cell of s: tabs and line breaks (from error messages) become spaces.
func clean(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\t' || r == '\n' || r == '\r' {
			return ' '
		}
		return r
	}, s)
}

// behindCell renders the MillisBehindLatest the owner published: "0" at the tip, the time behind,
// or "-" when the shard has no live lease or nothing was published (it is only current while an
// owner renews).
func behindCell(s Shard, at time.Time) string {
	if s.Behind == nil || s.Owner == "" || s.LeaseExpiry.Before(at) {
		return "-"
	}
	if s.Behind.MS <= 0 {
		return "0"
	}
	return HumanDuration(time.Duration(s.Behind.MS) * time.Millisecond)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// CheckpointsHeader is the header of the checkpoints table.
var CheckpointsHeader = []string{"SHARD", "STATE", "PARENTS", "OWNER", "LEASE EXPIRES IN", "CHECKPOINT", "LAG", "BEHIND"}

// RenderCheckpoints writes r as the human table: one row per shard, then the warnings, if any.
func RenderCheckpoints(w io.Writer, r Report) error {
	rows := make([][]string, 0, len(r.Shards))
	for _, s := range r.Shards {
		cp := ShortSeq(s.Checkpoint)
		if !s.HasLease {
			cp = "(no lease)"
		}
		rows = append(rows, []string{
			clean(s.ShardID), clean(s.State), orDash(clean(strings.Join(s.Parents, ","))), orDash(clean(s.Owner)),
			expiresIn(s, r.At), orDash(clean(cp)), lagCell(s.Lag), behindCell(s, r.At),
		})
	}
	if err := Table(w, CheckpointsHeader, rows); err != nil {
		return err
	}
	return renderWarnings(w, r.Warnings)
}

func renderWarnings(w io.Writer, ws []Warning) error {
	if len(ws) == 0 {
		return nil
	}
	if _, err := fmt.Fprintf(w, "\nWARNINGS (%d):\n", len(ws)); err != nil {
		return err
	}
	rows := make([][]string, len(ws))
	for i, x := range ws {
		rows[i] = []string{"  " + orDash(clean(x.Shard)), clean(x.Kind), clean(x.Message)}
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}
