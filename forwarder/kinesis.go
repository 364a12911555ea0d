package forwarder

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go"
	"go.uber.org/zap"

	"github.com/kinesis-events/pipeline/internal/ambiguous"
)

// Kinesis is the one call the forwarder makes. *kinesis.Client implements it.
type Kinesis interface {
	PutRecords(ctx context.Context, in *kinesis.PutRecordsInput, optFns ...func(*kinesis.Options)) (*kinesis.PutRecordsOutput, error)
}

// ErrFatalPut is returned (wrapped) when Kinesis rejects a PutRecords call in a way retrying cannot
// fix: missing stream, access denied, invalid argument, KMS key unusable.
var ErrFatalPut = errors.New("kinesis rejected the request")

type putOutcome uint8

const (
	putOK putOutcome = iota
	putRetry
)

// putResult is the outcome of one PutRecords call, entry by entry.
type putResult struct {
	outcome   []putOutcome
	shard     []string // shard and sequence number of each written entry
	seq       []string
	errMsg    []string // why an entry failed (error code), for the final report
	throttled int
	unknown   int   // entries sent in attempts with an unknown outcome, once per attempt
	err       error // set when the whole call failed; fatal when it wraps ErrFatalPut or a ctx error
}

// put writes es to stream in one PutRecords call.
func (f *Forwarder) put(ctx context.Context, stream string, es []*entry) putResult {
	res := putResult{
		outcome: make([]putOutcome, len(es)),
		shard:   make([]string, len(es)),
		seq:     make([]string, len(es)),
		errMsg:  make([]string, len(es)),
	}
	recs := make([]types.PutRecordsRequestEntry, len(es))
	for i, e := range es {
		recs[i] = types.PutRecordsRequestEntry{Data: e.data, PartitionKey: aws.String(e.key)}
	}
	f.m.batchRecords.WithLabelValues(stream).Observe(float64(len(es)))
	start := time.Now()
	cctx, tracker := ambiguous.Track(ctx)
	out, err := f.kin.PutRecords(cctx, &kinesis.PutRecordsInput{StreamName: aws.String(stream), Records: recs})
	f.m.putSeconds.WithLabelValues(stream).Observe(time.Since(start).Seconds())
	if u := tracker.Unknown(); u > 0 {
		res.unknown = f.unsure(stream, es, u, err)
	}
	if err == nil && len(out.Records) != len(es) {
		err = fmt.Errorf("PutRecords answered %d entries for %d records", len(out.Records), len(es))
	}
	if err != nil {
		for i := range res.outcome {
			res.outcome[i] = putRetry
			res.errMsg[i] = errorCode(err)
		}
		switch {
		case ctx.Err() != nil:
			res.err = fmt.Errorf("put to %s: %w", stream, ctx.Err())
		case isFatal(err):
			res.err = fmt.Errorf("put to %s: %w: %w", stream, ErrFatalPut, err)
		default:
			res.err = fmt.Errorf("put to %s: %w", stream, err)
			if isThrottle(err) {
				res.throttled = len(es)
			}
		}
		return res
	}
	for i, r := range out.Records {
		if r.ErrorCode == nil || *r.ErrorCode == "" {
			res.shard[i], res.seq[i] = aws.ToString(r.ShardId), aws.ToString(r.SequenceNumber)
			continue
		}
		res.outcome[i] = putRetry
		res.errMsg[i] = *r.ErrorCode
		if isThrottleCode(*r.ErrorCode) {
			res.throttled++
		}
	}
	return res
}

// unsure counts the entries of a call in which attempts ended with an unknown outcome, once per
// such attempt (each may have landed, and every later attempt may add one more copy), logs their
// event ids, and returns the count: it bounds the byte-identical copies in stream.
func (f *Forwarder) unsure(stream string, es []*entry, attempts int, err error) int {
	ids := make([]string, 0, min(len(es), 50))
	for _, e := range es[:min(len(es), 50)] {
		ids = append(ids, e.eventID)
	}
	n := len(es) * attempts
	f.stats.unknown.Add(int64(n))
	f.log.Warn("write outcome unknown, entries sent again may appear twice", zap.String("stream", stream),
		zap.Int("entries", n), zap.Int("attempts", attempts), zap.Strings("event_ids", ids), zap.NamedError("final_error", err))
	return n
}

// written counts the entries that were written.
func (r putResult) written() int {
	n := 0
	for _, o := range r.outcome {
		if o == putOK {
			n++
		}
	}
	return n
}

// fatal reports whether the whole call failed for good: a context error or a non-retryable rejection.
func (r putResult) fatal() bool {
	return r.err != nil && (errors.Is(r.err, ErrFatalPut) || errors.Is(r.err, context.Canceled) || errors.Is(r.err, context.DeadlineExceeded))
}

func isFatal(err error) bool {
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
	)
	switch {
	case errors.As(err, &notFound), errors.As(err, &invalid), errors.As(err, &denied),
		errors.As(err, &validation), errors.As(err, &kmsDenied), errors.As(err, &kmsOff),
		errors.As(err, &kmsState), errors.As(err, &kmsMissing), errors.As(err, &kmsOptIn):
		return true
	}
	var api smithy.APIError
	if errors.As(err, &api) {
		switch api.ErrorCode() {
		case "UnrecognizedClientException", "InvalidSignatureException", "MissingAuthenticationToken",
			"IncompleteSignature", "InvalidClientTokenId", "AccessDenied", "SerializationException":
			return true
		}
	}
	return false
}

func isThrottle(err error) bool {
	var (
		tput  *types.ProvisionedThroughputExceededException
		limit *types.LimitExceededException
		kms   *types.KMSThrottlingException
	)
	if errors.As(err, &tput) || errors.As(err, &limit) || errors.As(err, &kms) {
		return true
	}
	var api smithy.APIError
	return errors.As(err, &api) && isThrottleCode(api.ErrorCode())
}

func isThrottleCode(code string) bool {
	switch code {
	case "ProvisionedThroughputExceededException", "LimitExceededException", "KMSThrottlingException",
		"ThrottlingException", "Throttling":
		return true
	}
	return false
}

// errorCode is a short, payload-free description of a failed call.
func errorCode(err error) string {
	var api smithy.APIError
	if errors.As(err, &api) {
		return api.ErrorCode()
	}
	return err.Error()
}

// backoff returns the wait before attempt n+1 after n failed attempts: exponential from min, capped
// at max, with equal jitter (half fixed, half random) so retries of many records spread out.
func backoff(n int, minD, maxD time.Duration) time.Duration {
	d := maxD
	if n < 31 {
		if s := minD << (n - 1); s > 0 && s < maxD {
			d = s
		}
	}
	half := d / 2
	return half + rand.N(half+1)
}
