package ordered

import (
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go"
)

// Outcome classifies one attempt to write one record.
type Outcome uint8

// Outcomes. Every class but OK leaves the record unwritten; what happens next is the Policy's.
const (
	// OK: written.
	OK Outcome = iota
	// Retry: failed for a transient reason (a 5xx, InternalFailure, the network before the request
	// went out); sending it again is safe.
	Retry
	// Throttled: refused for throughput (ProvisionedThroughputExceeded, KMSThrottling,
	// LimitExceeded). The destination is up but busy: retried with backoff, never a sign that it is
	// broken.
	Throttled
	// Unknown: the attempt ended without a definite answer after its request went out (a 200 cut
	// off, a 5xx, no answer; internal/ambiguous), so the record may have landed, and sending it
	// again may write it twice. It is retried like Retry, and counted and logged.
	Unknown
	// Fatal: refused in a way retrying cannot fix (missing stream, access denied, invalid
	// argument, a KMS key that is disabled, missing or in an invalid state, a record over a limit).
	Fatal
)

func (o Outcome) String() string {
	switch o {
	case OK:
		return "ok"
	case Retry:
		return "retry"
	case Throttled:
		return "throttled"
	case Unknown:
		return "unknown"
	case Fatal:
		return "fatal"
	}
	return fmt.Sprintf("Outcome(%d)", o)
}

// Classify returns the class of a PutRecords call that failed with err as a whole: OK for nil,
// Fatal and Throttled for the SDK's typed exceptions (or, behind a proxy that loses the type, their
// error codes), Retry for anything else. A call whose attempts had an unknown outcome is Unknown
// rather than Retry; that is for the caller, which knows (Stream.Put does it).
func Classify(err error) Outcome {
	if err == nil {
		return OK
	}
	var (
		notFound   *types.ResourceNotFoundException
		invalid    *types.InvalidArgumentException
		denied     *types.AccessDeniedException
		validation *types.ValidationException
		kmsDenied  *types.KMSAccessDeniedException
		kmsOff     *types.KMSDisabledException
		kmsState   *types.KMSInvalidStateException
		kmsMissing *types.KMSNotFoundException
		kmsOptIn   *types.KMSOptInRequired
		tput       *types.ProvisionedThroughputExceededException
		limit      *types.LimitExceededException
		kmsThr     *types.KMSThrottlingException
	)
	switch {
	case errors.As(err, &notFound), errors.As(err, &invalid), errors.As(err, &denied),
		errors.As(err, &validation), errors.As(err, &kmsDenied), errors.As(err, &kmsOff),
		errors.As(err, &kmsState), errors.As(err, &kmsMissing), errors.As(err, &kmsOptIn):
		return Fatal
	case errors.As(err, &tput), errors.As(err, &limit), errors.As(err, &kmsThr):
		return Throttled
	}
	var api smithy.APIError
	if errors.As(err, &api) {
		return ClassifyCode(api.ErrorCode())
	}
	return Retry
}

// ClassifyCode returns the class of an error code: a PutRecords entry's ErrorCode, or a failed
// call's API error code. Codes it does not know are Retry.
func ClassifyCode(code string) Outcome {
	switch code {
	case "":
		return OK
	case "ProvisionedThroughputExceededException", "KMSThrottlingException", "LimitExceededException",
		"ThrottlingException", "Throttling":
		return Throttled
	case "ResourceNotFoundException", "InvalidArgumentException", "AccessDeniedException", "ValidationException",
		"KMSAccessDeniedException", "KMSDisabledException", "KMSInvalidStateException", "KMSNotFoundException", "KMSOptInRequired",
		"UnrecognizedClientException", "InvalidSignatureException", "MissingAuthenticationToken",
		"IncompleteSignature", "InvalidClientTokenId", "AccessDenied", "SerializationException":
		return Fatal
	}
	return Retry
}
