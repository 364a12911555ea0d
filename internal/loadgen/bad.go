package loadgen

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/kinesis-events/pipeline/event"
)

// BadKind is a kind of malformed input.
type BadKind string

// The kinds of malformed input, each with the stage expected to reject it and its reason code
// (BadKind.Reason).
const (
	// BadNotJSON is a line that is not a JSON object (garbage, or a truncated event). Forwarder: not_json.
	BadNotJSON BadKind = "not_json"
	// BadMissingCustomerID is a well-formed, signed event whose detail has no customer_id.
	// Forwarder: missing_field.
	BadMissingCustomerID BadKind = "missing_customer_id"
	// BadSignature is a valid event whose signature was altered. Worker: signature_mismatch.
	BadSignature BadKind = "bad_signature"
	// BadUnknownKey is a valid event signed with a key no consumer holds. Worker: signature_unknown_key.
	BadUnknownKey BadKind = "unknown_key"
	// BadOversize is a correctly signed event whose detail carries an unsigned padding member that
	// takes it past event.MaxRecordBytes. Forwarder: too_large.
	BadOversize BadKind = "oversize"
)

// AllBadKinds lists every BadKind, in the order they are cycled through.
var AllBadKinds = []BadKind{BadNotJSON, BadMissingCustomerID, BadSignature, BadUnknownKey, BadOversize}

// Reason is the quarantine reason a correct pipeline gives this kind of input.
func (k BadKind) Reason() event.Reason {
	switch k {
	case BadNotJSON:
		return event.ReasonNotJSON
	case BadMissingCustomerID:
		return event.ReasonMissingField
	case BadSignature:
		return event.ReasonBadSignature
	case BadUnknownKey:
		return event.ReasonUnknownKey
	case BadOversize:
		return event.ReasonTooLarge
	}
	return ""
}

// Stage is the component expected to reject this kind: "forwarder" for inputs it cannot forward, "worker"
// for those only signature verification catches.
func (k BadKind) Stage() string {
	switch k {
	case BadSignature, BadUnknownKey:
		return "worker"
	}
	return "forwarder"
}

// notJSONSamples are cycled through for BadNotJSON; none contains a line feed.
var notJSONSamples = []string{
	`this is not json`,
	`{"version":"0","detail-type":"purchase","source":"shop.web","detail":{"event_id":`,
	`<event><type>page_view</type></event>`,
	`{"detail-type":"page_view",}`,
}

// bad builds one malformed line of kind k. Signed variants use a fresh event_id and
// the customer's next seq without consuming it, so the valid sequence stays gap-free once the bad
// input is rejected.
func (g *Generator) bad(k BadKind, line int) ([]byte, Meta, error) {
	m := Meta{Line: line, Kind: KindBad, Bad: k, Reason: k.Reason()}
	if k == BadNotJSON {
		s := notJSONSamples[g.badSeen[k]%len(notJSONSamples)]
		return []byte(s), m, nil
	}
	c := g.pickCustomer()
	typ := g.pickType()
	at := g.eventTime(g.fresh)
	d := &event.Detail{
		EventID:    g.uuid(),
		CustomerID: g.customerID(c),
		Seq:        g.lastSeq[c-1] + 1,
		OccurredAt: at.Format(occurredLayout),
	}
	m.Type, m.EventID, m.CustomerID, m.Seq = typ, d.EventID, d.CustomerID, d.Seq
	props := g.properties(typ, c)
	keyring, keyID := g.cfg.Keyring, g.cfg.KeyID
	switch k {
	case BadMissingCustomerID:
		d.CustomerID = ""
		m.CustomerID = ""
	case BadUnknownKey:
		keyring, keyID = g.unknown, unknownKeyID
	}
	raw, err := json.Marshal(props)
	if err != nil {
		return nil, m, fmt.Errorf("bad %s: properties: %w", k, err)
	}
	d.Properties = raw
	if err := keyring.Sign(typ, d, keyID); err != nil {
		return nil, m, fmt.Errorf("bad %s: sign: %w", k, err)
	}
	if k == BadSignature {
		// Flip the last hex digit: still 64 hex characters, no longer the right MAC.
		last := d.Signature[len(d.Signature)-1]
		flipped := byte('0')
		if last == '0' {
			flipped = '1'
		}
		d.Signature = d.Signature[:len(d.Signature)-1] + string(flipped)
	}
	var detail []byte
	if k == BadMissingCustomerID {
		detail, err = marshalWithoutCustomer(d)
	} else {
		detail, err = json.Marshal(d)
	}
	if err != nil {
		return nil, m, fmt.Errorf("bad %s: detail: %w", k, err)
	}
	b, err := g.envelope(typ, g.uuid(), at, detail)
	if err != nil {
		return nil, m, fmt.Errorf("bad %s: %w", k, err)
	}
	if k == BadOversize {
		b = padDetail(b)
	}
	return b, m, nil
}

// oversizePadding is one member that pushes a detail past event.MaxRecordBytes.
var oversizePadding = `,"padding":"` + strings.Repeat("x", event.MaxRecordBytes) + `"`

// padDetail inserts oversizePadding as the last member of the detail object, which is the last
// member of the envelope. Unknown detail members are not signed, so the signature still verifies and
// size is the line's only fault.
func padDetail(line []byte) []byte {
	cut := len(line) - len("}}")
	out := make([]byte, 0, len(line)+len(oversizePadding))
	out = append(out, line[:cut]...)
	out = append(out, oversizePadding...)
	return append(out, line[cut:]...)
}

// marshalWithoutCustomer encodes d with the customer_id member absent (not just empty).
func marshalWithoutCustomer(d *event.Detail) ([]byte, error) {
	return json.Marshal(struct {
		EventID    string          `json:"event_id"`
		Seq        uint64          `json:"seq"`
		OccurredAt string          `json:"occurred_at"`
		Properties json.RawMessage `json:"properties,omitempty"`
		KeyID      string          `json:"key_id"`
		Signature  string          `json:"signature"`
	}{d.EventID, d.Seq, d.OccurredAt, d.Properties, d.KeyID, d.Signature})
}
