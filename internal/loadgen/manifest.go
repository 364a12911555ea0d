package loadgen

import (
	"encoding/json"
	"maps"
	"slices"

	"github.com/kinesis-events/pipeline/event"
)

// Kind says what a generated line is.
type Kind string

// Line kinds.
const (
	// KindEvent is the first emission of a unique valid event.
	KindEvent Kind = "event"
	// KindDuplicate re-emits an earlier event's line byte for byte.
	KindDuplicate Kind = "duplicate"
	// KindConflict reuses an earlier event_id with different, correctly signed properties.
	KindConflict Kind = "conflict"
	// KindBad is a malformed input; Meta.Bad says which kind.
	KindBad Kind = "bad"
)

// Meta describes one generated line.
type Meta struct {
	Line int  // 0-based position in the output
	Kind Kind // what the line is
	// Type, EventID, CustomerID and Seq are those of the event (for KindDuplicate and KindConflict:
	// of the original). Empty for BadNotJSON; CustomerID is empty for BadMissingCustomerID.
	Type       string
	EventID    string
	CustomerID string
	Seq        uint64
	// Displaced is set on a KindEvent line emitted after a later seq of the same customer.
	Displaced bool
	// Bad and Reason are set for KindBad: the kind and the reason a correct pipeline quarantines it with.
	Bad    BadKind
	Reason event.Reason
}

// Manifest is the ground truth of a generated stream.
type Manifest struct {
	Seed      int64  `json:"seed"`
	Start     string `json:"start"`
	Requested int    `json:"requested"` // Config.Count; Lines < Requested means the run stopped early
	Lines     int    `json:"lines"`
	Customers int    `json:"customers"`
	// HotCustomer is the customer_id of the hot customer (Config.HotRate), if any.
	HotCustomer string `json:"hot_customer,omitempty"`
	// Unique is the number of unique valid events; a correct pipeline delivers each exactly once.
	Unique int `json:"unique"`
	// ByType counts unique valid events per type.
	ByType map[string]int `json:"by_type"`
	// Events lists every unique valid event in emission order (absent with SkipManifestEvents).
	Events []ManifestEvent `json:"events,omitempty"`
	// Duplicates counts duplicate lines; ConflictingIDs lists the event_ids that got a conflicting
	// duplicate (each once, in the order of their first conflict).
	Duplicates     Duplicates `json:"duplicates"`
	ConflictingIDs []string   `json:"conflicting_ids,omitempty"`
	// OutOfOrder counts events emitted after a later seq of the same customer; MaxDisplacement is the
	// largest distance in lines between such an event and its successor.
	OutOfOrder      int `json:"out_of_order"`
	MaxDisplacement int `json:"max_displacement"`
	// Withheld counts displaced events created but not yet emitted: non-zero only when a run stopped
	// early, in which case their customers' later seqs were emitted without them.
	Withheld int `json:"withheld,omitempty"`
	// Bad counts malformed lines by kind; BadLines lists each with its expected quarantine reason.
	Bad      map[BadKind]int `json:"bad"`
	BadLines []BadLine       `json:"bad_lines,omitempty"`
}

// Duplicates counts duplicate lines.
type Duplicates struct {
	Natural     int `json:"natural"`
	Conflicting int `json:"conflicting"`
}

// ManifestEvent is one unique valid event as first emitted. Properties are the original's: a pipeline
// that let a conflicting duplicate win delivers different properties.
type ManifestEvent struct {
	EventID    string          `json:"event_id"`
	Type       string          `json:"type"`
	CustomerID string          `json:"customer_id"`
	Seq        uint64          `json:"seq"`
	OccurredAt string          `json:"occurred_at"`
	Properties json.RawMessage `json:"properties"`
}

// BadLine is one malformed line.
type BadLine struct {
	Line    int          `json:"line"`
	Kind    BadKind      `json:"kind"`
	Reason  event.Reason `json:"reason"`
	Stage   string       `json:"stage"`
	EventID string       `json:"event_id,omitempty"`
}

// Manifest returns a copy of the manifest of the lines produced so far.
func (g *Generator) Manifest() Manifest {
	m := g.manifest
	m.Withheld = len(g.held)
	m.ByType = maps.Clone(m.ByType)
	m.Bad = maps.Clone(m.Bad)
	m.Events = slices.Clone(m.Events)
	m.ConflictingIDs = slices.Clone(m.ConflictingIDs)
	m.BadLines = slices.Clone(m.BadLines)
	return m
}
