package processors

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"strconv"
	"time"

	"github.com/kinesis-events/pipeline/event"
)

// maxAcceptedRecord is the largest raw record the worker accepts. A record must fit whole (base64 in
// JSON) into a dead letter of at most 1 MiB, or it could not be dead-lettered intact; EventBridge
// caps events at 256 KiB, so forwarded records are far below it.
const maxAcceptedRecord = 700 << 10

// rec is one verified event travelling through the shard's stages.
type rec struct {
	idx    uint64 // position in the shard's watermark
	src    string // source shard when not the processing shard (a parent's tail), else ""
	seqNum string // source sequence number
	subSeq int    // position inside the source record's KPL aggregate (Record.SubSequence)
	data   []byte // the raw record, verbatim (kept for the dead letter)
	raw    *event.Raw
	d      *event.Detail
	hash   uint64 // content hash: everything signed except the key id

	// reorder state
	cust   *cust // its customer's state on this shard
	heldAt time.Time
	held   bool
	gap    uint64
	late   bool
	dupSeq bool // another event of the customer with this seq was delivered: quarantined

	out *outRec // its output record once routed (points to o)
	o   outRec
}

// decode runs the verify stage on one record: strict decode, size check, signature check against the
// keyring as it was when the record arrived in the stream (a retired key still verifies what it
// signed before its retirement, however late the record is read: a backlog, a replay), and the
// content hash. A failure returns the quarantine entry instead.
func (s *Shard) decode(r *Record, idx uint64, arrived time.Time) (*rec, *quarantined) {
	q := func(reason event.Reason, err error, d *event.Detail) *quarantined {
		out := &quarantined{idx: idx, src: r.Shard, seqNum: r.SequenceNumber, subSeq: r.SubSequence, data: r.Data, reason: reason}
		if err != nil {
			out.detail = err.Error()
		}
		if d != nil {
			out.eventID, out.customerID = d.EventID, d.CustomerID
		}
		s.p.scrubPII(out)
		return out
	}
	if r.BadAggregate != "" {
		return nil, q(event.ReasonBadAggregate, errors.New("KPL aggregate does not decode: "+r.BadAggregate), nil)
	}
	if len(r.Data) > maxAcceptedRecord {
		return nil, q(event.ReasonTooLarge, errors.New("record of "+strconv.Itoa(len(r.Data))+" bytes is over the worker's limit"), nil)
	}
	raw, d, err := event.DecodeRaw(r.Data)
	if err != nil {
		reason := event.ReasonOf(err)
		if reason == "" {
			reason = event.ReasonNotJSON
		}
		return nil, q(reason, err, d)
	}
	if err := s.p.keys.VerifyBuf(s.scratch[:0], raw.Type, d, arrived); err != nil {
		reason := event.ReasonOf(err)
		if reason == "" {
			reason = event.ReasonBadSignature
		}
		return nil, q(reason, err, d)
	}
	if err := s.p.checkPII(raw); err != nil {
		return nil, q(event.ReasonRawPII, err, d)
	}
	if _, ok := s.p.route(raw.Type); !ok {
		return nil, q(event.ReasonUnroutable, errors.New("no route for type "+strconv.Quote(raw.Type)+" and no default stream"), d)
	}
	h, err := s.contentHash(raw.Type, d)
	if err != nil {
		return nil, q(event.ReasonOf(err), err, d)
	}
	return &rec{idx: idx, src: r.Shard, seqNum: r.SequenceNumber, subSeq: r.SubSequence, data: r.Data, raw: raw, d: d, hash: h}, nil
}

// contentHash is the first 64 bits of SHA-256 over the signing input without the key id: two records
// of one event_id with equal hashes carry the same signed content (a re-signature with a rotated key
// is still the same content). A cryptographic hash, so a producer cannot craft a different event that
// passes for a natural duplicate and is silently dropped.
func (s *Shard) contentHash(typ string, d *event.Detail) (uint64, error) {
	c := *d
	c.KeyID = ""
	b, err := event.SigningInput(s.scratch[:0], typ, &c)
	if err != nil {
		return 0, err
	}
	s.scratch = b[:0]
	sum := sha256.Sum256(b)
	return binary.BigEndian.Uint64(sum[:8]), nil
}
