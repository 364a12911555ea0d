package event

import (
	"encoding/json"
	"time"

	"github.com/kinesis-events/pipeline/internal/names"
)

// BridgeEvent is the EventBridge event a producer emits (PutEvents) and the forwarder receives.
// DetailType is the customer event type (page_view, purchase, ...). Detail is kept as raw bytes so the
// forwarder can pass it on without re-encoding it.
type BridgeEvent struct {
	Version    string          `json:"version,omitempty"`
	ID         string          `json:"id,omitempty"`
	DetailType string          `json:"detail-type"`
	Source     string          `json:"source"`
	Account    string          `json:"account,omitempty"`
	Time       string          `json:"time,omitempty"`
	Region     string          `json:"region,omitempty"`
	Resources  []string        `json:"resources,omitempty"`
	Detail     json.RawMessage `json:"detail"`
}

// Detail is the producer's payload inside the EventBridge event.
type Detail struct {
	EventID    string          `json:"event_id"`
	CustomerID string          `json:"customer_id"`
	Seq        uint64          `json:"seq"`
	OccurredAt string          `json:"occurred_at"`
	Properties json.RawMessage `json:"properties,omitempty"`
	KeyID      string          `json:"key_id"`
	Signature  string          `json:"signature"`

	// canon caches the canonical properties computed by ParseDetail for verification.
	canon []byte
}

// RawVersion is the version of the raw-record envelope the forwarder writes.
const RawVersion = 1

// Raw is the record the forwarder writes to the raw stream, partitioned by Detail.customer_id.
// Detail holds the producer's bytes verbatim: the forwarder never re-encodes what was signed.
type Raw struct {
	V           int             `json:"v"`
	Type        string          `json:"type"`
	Source      string          `json:"source"`
	BridgeID    string          `json:"bridge_id,omitempty"`
	BridgeTime  string          `json:"bridge_time,omitempty"`
	ForwardedAt time.Time       `json:"forwarded_at"`
	Detail      json.RawMessage `json:"detail"`
}

// Analytics is the record the worker writes to a per-type analytics stream (and, flagged, to the late
// stream). Partition key: CustomerID, so one customer's events keep their order on one shard.
type Analytics struct {
	EventID    string          `json:"event_id"`
	Type       string          `json:"type"`
	Source     string          `json:"source,omitempty"`
	CustomerID string          `json:"customer_id"`
	Seq        uint64          `json:"seq"`
	OccurredAt string          `json:"occurred_at"`
	Properties json.RawMessage `json:"properties"`
	// Gap is the number of sequence numbers of this customer skipped right before this event because
	// the reorder window (or the buffer bound) ran out while they were missing.
	Gap uint64 `json:"gap,omitempty"`
	// Late is set when an earlier seq of this customer was already released past this event.
	Late bool `json:"late,omitempty"`
	// Lineage of the raw record, for audit and replay.
	SourceShard string `json:"source_shard"`
	SourceSeq   string `json:"source_seq"`
	// SourceSubSeq is the event's position inside the KPL aggregate it came in (source_seq is the
	// aggregate's); absent for a plain record.
	SourceSubSeq int       `json:"source_subseq,omitempty"`
	ForwardedAt  time.Time `json:"forwarded_at,omitzero"`
	ProcessedAt  time.Time `json:"processed_at"`
}

// Quarantine is written to the quarantine stream for input that can never be processed: it carries the
// original bytes and a stable reason code. Nothing is dropped silently.
type Quarantine struct {
	Reason       Reason    `json:"reason"`
	Detail       string    `json:"detail,omitempty"`
	Stage        string    `json:"stage"` // forwarder or worker
	EventID      string    `json:"event_id,omitempty"`
	CustomerID   string    `json:"customer_id,omitempty"`
	SourceShard  string    `json:"source_shard,omitempty"`
	SourceSeq    string    `json:"source_seq,omitempty"`
	SourceSubSeq int       `json:"source_subseq,omitempty"` // position inside the raw record's KPL aggregate
	At           time.Time `json:"at"`
	Original     []byte    `json:"original"`
}

// DeadLetter is written to the DLQ stream for a record that was valid but could not be delivered within
// the retry and breaker budget. Replaying Original into the raw stream is safe: dedupe drops what did
// arrive.
type DeadLetter struct {
	Reason       string    `json:"reason"`
	Destination  string    `json:"destination"`
	Attempts     int       `json:"attempts"`
	FirstFailure time.Time `json:"first_failure"`
	LastFailure  time.Time `json:"last_failure"`
	SourceShard  string    `json:"source_shard"`
	SourceSeq    string    `json:"source_seq"`
	SourceSubSeq int       `json:"source_subseq,omitempty"` // position inside the raw record's KPL aggregate
	EventID      string    `json:"event_id,omitempty"`
	CustomerID   string    `json:"customer_id,omitempty"`
	Original     []byte    `json:"original"`
}

// StandardTypes are the customer event types the default routing table knows; each goes to its
// stream names.AnalyticsStream(type), anything else to names.OtherStream.
var StandardTypes = names.StandardTypes

// DefaultRoutes is the default routing table: each standard type to names.AnalyticsStream(type).
func DefaultRoutes() map[string]string {
	m := make(map[string]string, len(StandardTypes))
	for _, t := range StandardTypes {
		m[t] = names.AnalyticsStream(t)
	}
	return m
}
