package event

import "fmt"

// Reason is a stable, machine-readable code for why an input was quarantined. Codes never change
// meaning; dashboards and alarms key on them.
type Reason string

// Reasons returned by this package (as *Error) and used by the forwarder and the worker.
const (
	ReasonNotJSON         Reason = "not_json"
	ReasonTooLarge        Reason = "too_large"
	ReasonBadEnvelope     Reason = "bad_envelope"
	ReasonUnsupportedRaw  Reason = "unsupported_raw_version"
	ReasonMissingField    Reason = "missing_field"
	ReasonBadField        Reason = "bad_field"
	ReasonTooDeep         Reason = "too_deep"
	ReasonDuplicateKey    Reason = "duplicate_key"
	ReasonInvalidUTF8     Reason = "invalid_utf8"
	ReasonBadNumber       Reason = "bad_number"
	ReasonNoSignature     Reason = "signature_missing"
	ReasonUnknownKey      Reason = "signature_unknown_key"
	ReasonKeyRetired      Reason = "signature_key_retired"
	ReasonBadSignature    Reason = "signature_mismatch"
	ReasonClockSkew       Reason = "signature_clock_skew"
	ReasonRawPII          Reason = "raw_pii"
	ReasonConflictingDupe Reason = "conflicting_duplicate"
	ReasonUnroutable      Reason = "unroutable"
	// ReasonBadAggregate: a raw record in the KPL aggregated format (magic and MD5 trailer) whose
	// contents do not decode; quarantined whole by the worker.
	ReasonBadAggregate Reason = "bad_aggregate"
)

// Error is a rejection of one input with a stable Reason and a human-readable message. It never
// contains secret material or raw PII values: only field names and sizes.
type Error struct {
	Reason Reason
	Msg    string
}

func (e *Error) Error() string { return fmt.Sprintf("%s: %s", e.Reason, e.Msg) }

func reject(r Reason, format string, args ...any) *Error {
	return &Error{Reason: r, Msg: fmt.Sprintf(format, args...)}
}

// ReasonOf returns the Reason carried by err, or "" when err is not an *Error.
func ReasonOf(err error) Reason {
	for err != nil {
		if e, ok := err.(*Error); ok {
			return e.Reason
		}
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return ""
		}
		err = u.Unwrap()
	}
	return ""
}
