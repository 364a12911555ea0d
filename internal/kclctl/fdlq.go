package kclctl

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/kinesis-events/pipeline/internal/names"
)

// The forwarder's failure queue (an SQS queue) holds EventBridge events the forwarder did not
// forward. Two services put messages there, in two formats:
//
//   - EventBridge, as the forwarding rules' target dead-letter queue, when it could not invoke the
//     function within its retry policy: the body is the EventBridge event itself, and the message
//     attributes ERROR_CODE, ERROR_MESSAGE, RULE_ARN and TARGET_ARN say why.
//   - Lambda, as the asynchronous invocation's on-failure destination, when the function returned
//     an error on every attempt (a raw stream that throttles, for one): the body is the invocation
//     record {"requestContext":{...},"requestPayload":<the EventBridge event>,
//     "responseContext":{...},"responsePayload":{...}}.

// Forwarder failure queue defaults.
const (
	// EnvForwarderDLQ names the queue (its name or its URL) when --queue is not given.
	EnvForwarderDLQ = "FORWARDER_DLQ"
	// EnvQuarantineStream and EnvPIIPaths configure the forwarder that replays events, as they
	// configure the worker fleet.
	EnvQuarantineStream = "QUARANTINE_STREAM"
	EnvPIIPaths         = "PII_PATHS"
	// DefaultForwarderDLQ is the queue when neither --queue nor FORWARDER_DLQ is set (a deployed
	// stack prefixes it with its stage).
	DefaultForwarderDLQ = names.ForwarderDLQ
	// DefaultFDLQLimit bounds the messages one run receives.
	DefaultFDLQLimit = 1000
)

// Origins of a failure-queue message.
const (
	OriginEventBridge = "eventbridge" // the rule target's dead-letter queue: the body is the event
	OriginLambda      = "lambda"      // the asynchronous invocation's on-failure destination
	OriginUnparseable = "unparseable" // neither format: reported and left in the queue
)

// Message attributes EventBridge sets on a dead-lettered event.
const (
	attrErrorCode    = "ERROR_CODE"
	attrErrorMessage = "ERROR_MESSAGE"
	attrRuleARN      = "RULE_ARN"
)

// FailureQueueAPI is the part of the SQS API the forwarder-dlq commands use. *sqs.Client
// implements it.
type FailureQueueAPI interface {
	GetQueueUrl(ctx context.Context, in *sqs.GetQueueUrlInput, optFns ...func(*sqs.Options)) (*sqs.GetQueueUrlOutput, error)
	GetQueueAttributes(ctx context.Context, in *sqs.GetQueueAttributesInput, optFns ...func(*sqs.Options)) (*sqs.GetQueueAttributesOutput, error)
	ReceiveMessage(ctx context.Context, in *sqs.ReceiveMessageInput, optFns ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error)
	DeleteMessageBatch(ctx context.Context, in *sqs.DeleteMessageBatchInput, optFns ...func(*sqs.Options)) (*sqs.DeleteMessageBatchOutput, error)
	ChangeMessageVisibilityBatch(ctx context.Context, in *sqs.ChangeMessageVisibilityBatchInput, optFns ...func(*sqs.Options)) (*sqs.ChangeMessageVisibilityBatchOutput, error)
}

// FailedEvent is one message of the failure queue, parsed.
type FailedEvent struct {
	MessageID string `json:"message_id"`
	// Origin is OriginEventBridge, OriginLambda or OriginUnparseable.
	Origin string `json:"origin"`
	// ErrorCode is EventBridge's ERROR_CODE (e.g. SDK_CLIENT_ERROR) or Lambda's condition (e.g.
	// RetriesExhausted, EventAgeExceeded); ErrorMessage is EventBridge's ERROR_MESSAGE or the
	// function's last error (its type and message).
	ErrorCode    string `json:"error_code,omitempty"`
	ErrorMessage string `json:"error_message,omitempty"`
	// SourceARN is the rule (EventBridge) or the function (Lambda) that gave up on the event.
	SourceARN string `json:"source_arn,omitempty"`
	// From the event, where it has them (a malformed event may not: replay quarantines it).
	BridgeID   string `json:"bridge_id,omitempty"`
	Type       string `json:"type,omitempty"`
	EventID    string `json:"event_id,omitempty"`
	CustomerID string `json:"customer_id,omitempty"`
	Seq        int64  `json:"seq,omitempty"`
	// SentAt is when the message entered the queue (SQS SentTimestamp); ReceiveCount counts its
	// receives, this one included (listing a queue receives its messages too).
	SentAt       time.Time `json:"sent_at,omitzero"`
	ReceiveCount int       `json:"receive_count"`
	// Problem says why an unparseable message is neither format.
	Problem   string `json:"problem,omitempty"`
	BodyBytes int    `json:"body_bytes"`
	// Event is the EventBridge event replay hands to the forwarder, byte for byte as it was
	// delivered; absent for unparseable messages.
	Event json.RawMessage `json:"event,omitempty"`

	receipt string
}

// ErrorKey groups messages by origin and error code in reports: "lambda/RetriesExhausted",
// "eventbridge/SDK_CLIENT_ERROR", "unparseable".
func (f FailedEvent) ErrorKey() string {
	if f.Origin == OriginUnparseable {
		return OriginUnparseable
	}
	code := f.ErrorCode
	if code == "" {
		code = "unknown"
	}
	return f.Origin + "/" + code
}

// ParseFailedMessage classifies one failure-queue message and extracts its EventBridge event. It
// never fails: a message in neither format comes back with Origin OriginUnparseable and the
// reason in Problem.
func ParseFailedMessage(m sqstypes.Message) FailedEvent {
	body := aws.ToString(m.Body)
	f := FailedEvent{MessageID: aws.ToString(m.MessageId), BodyBytes: len(body), receipt: aws.ToString(m.ReceiptHandle)}
	if ms, err := strconv.ParseInt(m.Attributes[string(sqstypes.MessageSystemAttributeNameSentTimestamp)], 10, 64); err == nil {
		f.SentAt = time.UnixMilli(ms).UTC()
	}
	if n, err := strconv.Atoi(m.Attributes[string(sqstypes.MessageSystemAttributeNameApproximateReceiveCount)]); err == nil {
		f.ReceiveCount = n
	}
	attr := func(name string) (string, bool) {
		v, ok := m.MessageAttributes[name]
		return aws.ToString(v.StringValue), ok
	}
	unparseable := func(problem string) FailedEvent {
		f.Origin, f.Problem = OriginUnparseable, problem
		return f
	}

	var top map[string]json.RawMessage
	if err := json.Unmarshal([]byte(body), &top); err != nil || top == nil {
		if code, ok := attr(attrErrorCode); ok {
			return unparseable(fmt.Sprintf("EventBridge dead letter (%s) whose body is not a JSON object", clip(code, 64)))
		}
		return unparseable("body is not a JSON object")
	}
	_, hasContext := top["requestContext"]
	payload, hasPayload := top["requestPayload"]
	code, fromRule := attr(attrErrorCode)
	switch {
	case hasContext || hasPayload:
		if !hasContext || !hasPayload {
			return unparseable("Lambda invocation record without requestContext or requestPayload")
		}
		if !isJSONObject(payload) {
			return unparseable("Lambda invocation record whose requestPayload is not a JSON object")
		}
		var rec struct {
			RequestContext struct {
				Condition   string `json:"condition"`
				FunctionARN string `json:"functionArn"`
			} `json:"requestContext"`
			ResponsePayload struct {
				ErrorType    string `json:"errorType"`
				ErrorMessage string `json:"errorMessage"`
			} `json:"responsePayload"`
		}
		f.Origin, f.Event = OriginLambda, bytes.TrimSpace(payload)
		// Only the fields a report shows: a record whose context or response has another shape
		// still carries its event, and says so in the error message.
		if err := json.Unmarshal([]byte(body), &rec); err != nil {
			f.ErrorMessage = "invocation record context unreadable: " + err.Error()
			break
		}
		f.ErrorCode, f.SourceARN = rec.RequestContext.Condition, rec.RequestContext.FunctionARN
		f.ErrorMessage = strings.TrimPrefix(rec.ResponsePayload.ErrorType+": "+rec.ResponsePayload.ErrorMessage, ": ")
	case fromRule:
		f.Origin, f.Event, f.ErrorCode = OriginEventBridge, json.RawMessage(bytes.TrimSpace([]byte(body))), code
		f.ErrorMessage, _ = attr(attrErrorMessage)
		f.SourceARN, _ = attr(attrRuleARN)
	case top["detail-type"] != nil && top["detail"] != nil:
		// An EventBridge event without the attributes (moved here by hand, or by a redrive that
		// dropped them): still an event to forward.
		f.Origin, f.Event = OriginEventBridge, json.RawMessage(bytes.TrimSpace([]byte(body)))
	default:
		return unparseable("JSON object that is neither an EventBridge event nor a Lambda invocation record")
	}
	describeEvent(&f)
	return f
}

// describeEvent fills the identifiers a report shows from f.Event, leniently: each field is read
// on its own, and a field of the wrong type is left empty (the forwarder, not the report, decides
// what is wrong with an event).
func describeEvent(f *FailedEvent) {
	var ev map[string]json.RawMessage
	if json.Unmarshal(f.Event, &ev) != nil {
		return
	}
	str := func(m map[string]json.RawMessage, k string) string {
		var s string
		if json.Unmarshal(m[k], &s) != nil {
			return ""
		}
		return s
	}
	f.BridgeID, f.Type = str(ev, "id"), str(ev, "detail-type")
	var d map[string]json.RawMessage
	if json.Unmarshal(ev["detail"], &d) != nil {
		return
	}
	f.EventID, f.CustomerID = str(d, "event_id"), str(d, "customer_id")
	if n, err := strconv.ParseInt(string(d["seq"]), 10, 64); err == nil {
		f.Seq = n
	}
}

func isJSONObject(b json.RawMessage) bool {
	b = bytes.TrimSpace(b)
	return len(b) > 0 && b[0] == '{' && json.Valid(b)
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// ResolveQueue returns the URL of the queue named by queue: queue itself when it is an http(s) URL,
// else the URL SQS gives for the name.
func ResolveQueue(ctx context.Context, q FailureQueueAPI, queue string) (string, error) {
	if strings.HasPrefix(queue, "https://") || strings.HasPrefix(queue, "http://") {
		return queue, nil
	}
	out, err := q.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String(queue)})
	if err != nil {
		var missing *sqstypes.QueueDoesNotExist
		if errors.As(err, &missing) {
			return "", fmt.Errorf("queue %s does not exist (set --queue or %s to the forwarder's failure queue, name or URL): %w", queue, EnvForwarderDLQ, err)
		}
		return "", fmt.Errorf("queue %s: %w", queue, err)
	}
	return aws.ToString(out.QueueUrl), nil
}

// QueueDepth is what SQS reports about a queue's messages; every count is approximate.
type QueueDepth struct {
	Visible  int64 `json:"visible"`   // waiting to be received
	InFlight int64 `json:"in_flight"` // received and hidden by their visibility timeout
	Delayed  int64 `json:"delayed"`
}

// ReadQueueDepth reads the queue's approximate message counts.
func ReadQueueDepth(ctx context.Context, q FailureQueueAPI, url string) (QueueDepth, error) {
	out, err := q.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: aws.String(url), AttributeNames: []sqstypes.QueueAttributeName{
		sqstypes.QueueAttributeNameApproximateNumberOfMessages, sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible,
		sqstypes.QueueAttributeNameApproximateNumberOfMessagesDelayed,
	}})
	if err != nil {
		return QueueDepth{}, fmt.Errorf("attributes of queue %s: %w", url, err)
	}
	n := func(k sqstypes.QueueAttributeName) int64 {
		v, _ := strconv.ParseInt(out.Attributes[string(k)], 10, 64) // absent: 0
		return v
	}
	return QueueDepth{
		Visible:  n(sqstypes.QueueAttributeNameApproximateNumberOfMessages),
		InFlight: n(sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible),
		Delayed:  n(sqstypes.QueueAttributeNameApproximateNumberOfMessagesDelayed),
	}, nil
}
