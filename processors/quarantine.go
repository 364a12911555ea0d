package processors

import (
	"encoding/json"
	"strconv"
	"time"

	"github.com/kinesis-events/pipeline/event"
)

// quarantined is a record rejected before it could be routed (by verify, dedupe or route), with its
// reason.
type quarantined struct {
	idx        uint64
	src        string // the record's source shard when it is not the processing shard (a parent's tail)
	seqNum     string
	subSeq     int
	data       []byte
	reason     event.Reason
	detail     string
	eventID    string
	customerID string
	ev         *rec // set when the record had been accepted as an event (conflict, too large)
}

// conflict is the quarantine entry of an event whose event_id was already taken by other content.
func conflict(e *rec, msg string) *quarantined {
	return &quarantined{idx: e.idx, src: e.src, seqNum: e.seqNum, subSeq: e.subSeq, data: e.data, reason: event.ReasonConflictingDupe,
		detail: msg, eventID: e.d.EventID, customerID: e.d.CustomerID, ev: e}
}

// shard returns the shard the record was read from: its source, else the processing shard.
func (q *quarantined) shard(processing string) string {
	if q.src != "" {
		return q.src
	}
	return processing
}

// partitionKey is the key a quarantine record is written under: the customer when known and
// usable, else the source sequence number.
func (q *quarantined) partitionKey() string {
	if q.customerID == "" || len(q.customerID) > maxPartitionKey {
		return q.seqNum
	}
	return q.customerID
}

// encodeQuarantine encodes the event.Quarantine record for q, processed on shard. An original too large
// to fit a Kinesis record is truncated, and the detail says so.
func encodeQuarantine(q *quarantined, shard string, now time.Time) []byte {
	orig, detail := q.data, q.detail
	if len(orig) > maxAcceptedRecord {
		orig = orig[:maxAcceptedRecord]
		detail += " (original truncated to " + strconv.Itoa(maxAcceptedRecord) + " of " + strconv.Itoa(len(q.data)) + " bytes)"
	}
	if len(detail) > 1024 {
		detail = detail[:1024]
	}
	rec := event.Quarantine{Reason: q.reason, Detail: detail, Stage: "worker", EventID: q.eventID,
		CustomerID: q.customerID, SourceShard: q.shard(shard), SourceSeq: q.seqNum, SourceSubSeq: q.subSeq, At: now, Original: orig}
	b, err := json.Marshal(rec)
	if err != nil { // only a time outside years 0-9999 fails: drop it rather than the record
		rec.At = time.Time{}
		b, _ = json.Marshal(rec)
	}
	return b
}

// encodeDeadLetter encodes the event.DeadLetter for an output record read on shard and given up on
// after its destination (dest for an event) stayed broken, with its metric reason.
func encodeDeadLetter(o *outRec, shard, dest, quarantineStream string) (string, []byte) {
	dl := event.DeadLetter{Attempts: o.attempts, FirstFailure: o.first, LastFailure: o.last, SourceShard: shard}
	if o.ev != nil && o.ev.src != "" {
		dl.SourceShard = o.ev.src
	} else if o.q != nil {
		dl.SourceShard = o.q.shard(shard)
	}
	lastErr := o.lastErr
	if len(lastErr) > 512 {
		lastErr = lastErr[:512]
	}
	var reason string
	switch o.kind {
	case outEvent:
		reason = "destination_unavailable"
		dl.Destination = dest
		dl.SourceSeq, dl.SourceSubSeq, dl.EventID, dl.CustomerID, dl.Original = o.ev.seqNum, o.ev.subSeq, o.ev.d.EventID, o.ev.d.CustomerID, o.ev.data
		dl.Reason = reason + ": " + lastErr
	default:
		reason = "quarantine_unavailable"
		dl.Destination = quarantineStream
		dl.SourceSeq, dl.SourceSubSeq, dl.EventID, dl.CustomerID, dl.Original = o.q.seqNum, o.q.subSeq, o.q.eventID, o.q.customerID, o.q.data
		if len(dl.Original) > maxAcceptedRecord {
			dl.Original = dl.Original[:maxAcceptedRecord]
		}
		dl.Reason = reason + " (quarantined for " + string(o.q.reason) + "): " + lastErr
	}
	b, err := json.Marshal(dl)
	if err != nil { // only a time outside years 0-9999 fails: drop the times rather than the record
		dl.FirstFailure, dl.LastFailure = time.Time{}, time.Time{}
		b, _ = json.Marshal(dl)
	}
	return reason, b
}
