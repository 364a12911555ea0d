package processors

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"

	"github.com/kinesis-events/pipeline/event"
)

// The PII policy (Config.PIIPaths), applied in the verify stage:
//   - a verified event with a value at a configured path that is not a token, null or "" is
//     quarantined with event.ReasonRawPII, so no raw value reaches an analytics stream or the
//     dedupe table;
//   - every record the verify stage quarantines, for whatever reason, keeps no raw value: its
//     original is redacted (the values replaced by event.Redacted) or, when it cannot be searched
//     (not JSON, invalid UTF-8), withheld with only its size and SHA-256, and an event or customer
//     id that is a configured path and not a token is left out of the record and its partition key.
//
// Records quarantined later (conflicting duplicates, oversized analytics records) and dead letters
// of events passed the policy already.

// checkPII applies the policy to a verified event's detail; nil when the policy is off.
func (p *Pipeline) checkPII(r *event.Raw) error { return p.pii.CheckDetail(r.Detail) }

// scrubPII makes a record rejected by the verify stage safe to keep under the policy.
func (p *Pipeline) scrubPII(q *quarantined) {
	if p.pii == nil {
		return
	}
	out, paths, ok := p.pii.RedactRaw(q.data)
	switch {
	case !ok:
		sum := sha256.Sum256(q.data)
		q.detail += "; original withheld (PII policy on and the record cannot be searched): " +
			strconv.Itoa(len(q.data)) + " bytes, sha256 " + hex.EncodeToString(sum[:])
		q.data = nil
	case len(paths) > 0:
		q.data = out
		q.detail += "; original redacted: the values at " + strings.Join(paths, ", ") + " were replaced by " + event.Redacted
	}
	if p.pii.Covers("customer_id") && !event.IsToken(q.customerID) {
		q.customerID = ""
	}
	if p.pii.Covers("event_id") && !event.IsToken(q.eventID) {
		q.eventID = ""
	}
}
