package localstack_test

import (
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/kinesis-events/pipeline/internal/localstack"
	"github.com/kinesis-events/pipeline/internal/localstack/localstacktest"
)

// TestSQS drives the SQS emulator through what kclctl forwarder-dlq relies on, with
// aws-sdk-go-v2's SQS client (AWS JSON 1.0 protocol): queue URL by name, the typed error for a
// missing queue, message attributes and SentTimestamp on receive, long polling, visibility
// timeouts, releasing by ChangeMessageVisibilityBatch, DeleteMessageBatch with a stale receipt
// handle, and surviving aborted requests.
func TestSQS(t *testing.T) {
	t.Parallel()
	s := localstacktest.Start(t, localstack.Options{SQS: true})
	ctx := t.Context()
	if !strings.HasPrefix(s.SQSEndpoint, "http://127.0.0.1:") {
		t.Fatalf("SQS endpoint %q is not on 127.0.0.1", s.SQSEndpoint)
	}
	checkLoopbackOnly(t, s.SQSEndpoint)
	if !slices.Contains(s.Env(), "AWS_ENDPOINT_URL_SQS="+s.SQSEndpoint) {
		t.Fatalf("Env %v lacks the SQS endpoint", s.Env())
	}

	url, err := s.CreateQueue(ctx, "fdlq")
	if err != nil {
		t.Fatal(err)
	}
	if again, err := s.CreateQueue(ctx, "fdlq"); err != nil || again != url {
		t.Fatalf("create twice: %q, %v; first %q", again, err, url)
	}
	c := s.SQS()
	got, err := c.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String("fdlq")})
	if err != nil || aws.ToString(got.QueueUrl) != url {
		t.Fatalf("GetQueueUrl: %v, %v", got, err)
	}
	_, err = c.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String("missing")})
	var missing *sqstypes.QueueDoesNotExist
	if !errors.As(err, &missing) {
		t.Fatalf("missing queue: %v (%T), want *types.QueueDoesNotExist", err, err)
	}

	before := time.Now().Add(-time.Second)
	for _, body := range []string{`{"a":1}`, `{"a":2}`} {
		if _, err := c.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(url), MessageBody: aws.String(body),
			MessageAttributes: map[string]sqstypes.MessageAttributeValue{"ERROR_CODE": {DataType: aws.String("String"), StringValue: aws.String("SDK_CLIENT_ERROR")}},
		}); err != nil {
			t.Fatal(err)
		}
	}
	receive := func() []sqstypes.Message {
		t.Helper()
		out, err := c.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(url), MaxNumberOfMessages: 10, VisibilityTimeout: 600, WaitTimeSeconds: 1,
			MessageAttributeNames:       []string{"ERROR_CODE"},
			MessageSystemAttributeNames: []sqstypes.MessageSystemAttributeName{sqstypes.MessageSystemAttributeNameSentTimestamp},
			AttributeNames:              []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameAll}, //lint:ignore SA1019 the emulator reads only the old name
		})
		if err != nil {
			t.Fatal(err)
		}
		return out.Messages
	}
	ms := receive()
	if len(ms) != 2 {
		t.Fatalf("received %d messages, want 2", len(ms))
	}
	for _, m := range ms {
		sent, err := strconv.ParseInt(m.Attributes["SentTimestamp"], 10, 64)
		if aws.ToString(m.MessageAttributes["ERROR_CODE"].StringValue) != "SDK_CLIENT_ERROR" || err != nil ||
			time.UnixMilli(sent).Before(before) || time.UnixMilli(sent).After(time.Now()) {
			t.Fatalf("message attributes %v, attributes %v", m.MessageAttributes, m.Attributes)
		}
	}
	// Hidden by the visibility timeout: a long poll comes back empty after its wait.
	t0 := time.Now()
	if again := receive(); len(again) != 0 || time.Since(t0) < 900*time.Millisecond {
		t.Fatalf("received %d hidden messages after %v", len(again), time.Since(t0))
	}
	// Released at once.
	rel, err := c.ChangeMessageVisibilityBatch(ctx, &sqs.ChangeMessageVisibilityBatchInput{QueueUrl: aws.String(url), Entries: []sqstypes.ChangeMessageVisibilityBatchRequestEntry{
		{Id: aws.String("0"), ReceiptHandle: ms[0].ReceiptHandle, VisibilityTimeout: 0},
		{Id: aws.String("1"), ReceiptHandle: ms[1].ReceiptHandle, VisibilityTimeout: 0},
	}})
	if err != nil || len(rel.Successful) != 2 {
		t.Fatalf("release: %+v, %v", rel, err)
	}
	ms2 := receive()
	if len(ms2) != 2 {
		t.Fatalf("received %d released messages, want 2", len(ms2))
	}
	// The newest receipt handles delete; an unknown one fails alone.
	del, err := c.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{QueueUrl: aws.String(url), Entries: []sqstypes.DeleteMessageBatchRequestEntry{
		{Id: aws.String("0"), ReceiptHandle: ms2[0].ReceiptHandle},
		{Id: aws.String("1"), ReceiptHandle: ms2[1].ReceiptHandle},
		{Id: aws.String("2"), ReceiptHandle: aws.String("not-a-receipt")},
	}})
	if err != nil || len(del.Successful) != 2 || len(del.Failed) != 1 || aws.ToString(del.Failed[0].Id) != "2" {
		t.Fatalf("delete: %+v, %v", del, err)
	}
	attrs, err := c.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: aws.String(url), AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameAll}})
	if err != nil || attrs.Attributes["ApproximateNumberOfMessages"] != "0" || attrs.Attributes["ApproximateNumberOfMessagesNotVisible"] != "0" {
		t.Fatalf("attributes after delete: %v, %v", attrs, err)
	}

	big := `{"QueueUrl":"` + url + `","MessageBody":"` + strings.Repeat("x", 20000)
	for range 3 {
		abortRequest(t, s.SQSEndpoint, "AmazonSQS.SendMessage", big, len(big)*2)
		abortRequest(t, s.SQSEndpoint, "AmazonSQS.ReceiveMessage", `{"QueueUrl":"`+url+`","WaitTimeSeconds":5}`, 64)
	}
	if _, err := c.ListQueues(ctx, &sqs.ListQueuesInput{}); err != nil {
		t.Fatalf("SQS after aborted requests: %v", err)
	}
}
