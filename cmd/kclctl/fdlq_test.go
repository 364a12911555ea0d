package main

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/kinesis-events/pipeline/event"
	"github.com/kinesis-events/pipeline/internal/kclctl"
	"github.com/kinesis-events/pipeline/internal/localstack"
	"github.com/kinesis-events/pipeline/internal/localstack/localstacktest"
	"github.com/kinesis-events/pipeline/internal/names"
)

// failedEvent is an EventBridge event as the bus delivers it to the forwarder.
func failedEvent(eventID, customer string, seq int) string {
	return fmt.Sprintf(`{"version":"0","id":"b-%s","detail-type":"purchase","source":"shop.web","account":"123456789012",`+
		`"time":"2026-11-26T10:00:00Z","region":"us-east-1","resources":[],"detail":{"event_id":%q,"customer_id":%q,"seq":%d,`+
		`"occurred_at":"2026-11-26T09:59:59Z","properties":{"total":12.5},"key_id":"k1","signature":"c2ln"}}`, eventID, eventID, customer, seq)
}

// invocationRecord is what Lambda sends to the on-failure destination after the last attempt.
func invocationRecord(ev string) string {
	return `{"version":"1.0","timestamp":"2026-11-26T10:05:00.000Z","requestContext":{"requestId":"r-1",` +
		`"functionArn":"arn:aws:lambda:us-east-1:123456789012:function:fwd:$LATEST","condition":"RetriesExhausted","approximateInvokeCount":3},` +
		`"requestPayload":` + ev + `,"responseContext":{"statusCode":200,"executedVersion":"$LATEST","functionError":"Unhandled"},` +
		`"responsePayload":{"errorMessage":"event not written to events-raw: ProvisionedThroughputExceededException","errorType":"wrapErrors"}}`
}

// TestForwarderDLQBinary lists and replays the forwarder's failure queue with the real binary
// against kinesalite and the SQS emulator: both message formats, bad input the forwarder
// quarantines, a message in neither format that stays, and a replay into a missing stream that
// deletes nothing.
func TestForwarderDLQBinary(t *testing.T) {
	bin := buildKclctl(t)
	st := localstacktest.Start(t, localstack.Options{SQS: true})
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	for name, n := range map[string]int{names.RawStream: 2, names.QuarantineStream: 1} {
		if err := st.CreateStream(ctx, name, n); err != nil {
			t.Fatal(err)
		}
	}
	url, err := st.CreateQueue(ctx, names.ForwarderDLQ)
	if err != nil {
		t.Fatal(err)
	}
	q := st.SQS()
	send := func(body string, attrs map[string]string) {
		t.Helper()
		in := &sqs.SendMessageInput{QueueUrl: aws.String(url), MessageBody: aws.String(body), MessageAttributes: map[string]sqstypes.MessageAttributeValue{}}
		for k, v := range attrs {
			in.MessageAttributes[k] = sqstypes.MessageAttributeValue{DataType: aws.String("String"), StringValue: aws.String(v)}
		}
		if _, err := q.SendMessage(ctx, in); err != nil {
			t.Fatal(err)
		}
	}
	rule := map[string]string{"ERROR_CODE": "SDK_CLIENT_ERROR", "ERROR_MESSAGE": "Lambda function invocation failed",
		"RULE_ARN": "arn:aws:events:us-east-1:123456789012:rule/customer-events/fwd", "TARGET_ARN": "arn:aws:lambda:us-east-1:123456789012:function:fwd"}
	// 14 events (more than one receive batch) from three customers, by both routes.
	var want []string
	for i := range 14 {
		id, customer := fmt.Sprintf("e%02d", i), fmt.Sprintf("tok_customer%d", i%3)
		want = append(want, id)
		if i%2 == 0 {
			send(invocationRecord(failedEvent(id, customer, i/3+1)), nil)
		} else {
			send(failedEvent(id, customer, i/3+1), rule)
		}
	}
	// Bad input (no customer_id): the forwarder quarantines it with its reason.
	send(`{"version":"0","id":"b-bad","detail-type":"purchase","source":"shop.web","time":"2026-11-26T10:00:00Z","detail":{"event_id":"bad","seq":1}}`, rule)
	// Neither format: reported, never deleted.
	send("not an event", nil)

	t.Run("list", func(t *testing.T) {
		r := runKclctl(t, bin, st, "forwarder-dlq", "list")
		if r.code != kclctl.ExitWarnings || !strings.Contains(r.stdout, "16 message(s) listed from "+names.ForwarderDLQ) ||
			!strings.Contains(r.stdout, "by error: eventbridge/SDK_CLIENT_ERROR=8, lambda/RetriesExhausted=7, unparseable=1") {
			t.Fatalf("exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
		}
		t.Logf("kclctl forwarder-dlq list:\n%s", r.stdout)
		r = runKclctl(t, bin, st, "forwarder-dlq", "list", "--json", "--limit", "5")
		var rep kclctl.FDLQListReport
		if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil || r.code != kclctl.ExitWarnings || len(rep.Messages) != 5 || rep.Stopped != kclctl.StopLimit {
			t.Fatalf("list --json --limit 5: exit %d, %v\n%s", r.code, err, r.stdout)
		}
	})

	t.Run("replay dry run", func(t *testing.T) {
		r := runKclctl(t, bin, st, "forwarder-dlq", "replay")
		if r.code != kclctl.ExitWarnings || !strings.Contains(r.stdout, "would replay 15 into events-raw, unparseable 1") {
			t.Fatalf("exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
		}
		t.Logf("kclctl forwarder-dlq replay:\n%s", r.stdout)
		recs, err := st.ReadAll(ctx, names.RawStream)
		if err != nil || len(recs) != 0 {
			t.Fatalf("dry run wrote %d records (%v)", len(recs), err)
		}
	})

	t.Run("replay", func(t *testing.T) {
		r := runKclctl(t, bin, st, "forwarder-dlq", "replay", "--apply")
		if r.code != kclctl.ExitWarnings || !strings.Contains(r.stdout, "forwarded 14 into events-raw, quarantined 1 into events-quarantine, failed 0, held 0, unparseable 1; deleted 15") {
			t.Fatalf("exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
		}
		t.Logf("kclctl forwarder-dlq replay --apply:\n%s", r.stdout)
		recs, err := st.ReadAll(ctx, names.RawStream)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, rec := range recs {
			raw, d, err := event.DecodeRaw(rec.Record.Data)
			if err != nil {
				t.Fatalf("raw record %s: %v", rec.Record.Data, err)
			}
			if aws.ToString(rec.Record.PartitionKey) != d.CustomerID || raw.BridgeID != "b-"+d.EventID || raw.Type != "purchase" {
				t.Fatalf("record key %q, %+v %+v", aws.ToString(rec.Record.PartitionKey), raw, d)
			}
			got = append(got, d.EventID)
		}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Fatalf("raw stream holds %v, want each of %v once", got, want)
		}
		quar, err := st.ReadAll(ctx, names.QuarantineStream)
		if err != nil || len(quar) != 1 {
			t.Fatalf("quarantine stream: %d records, %v", len(quar), err)
		}
		var qr event.Quarantine
		if err := json.Unmarshal(quar[0].Record.Data, &qr); err != nil || qr.Reason != event.ReasonMissingField || qr.Stage != "forwarder" {
			t.Fatalf("quarantine record %+v, %v", qr, err)
		}
		// Only the unparseable message is left, visible for the next run.
		if n := visibleMessages(ctx, t, q, url); n != 1 {
			t.Fatalf("%d message(s) left, want the unparseable one", n)
		}
	})

	t.Run("replay into a missing stream", func(t *testing.T) {
		send(failedEvent("late-1", "tok_customer9", 1), rule)
		r := runKclctl(t, bin, st, "forwarder-dlq", "replay", "--apply", "--stream", "no-such-stream")
		if r.code != kclctl.ExitError || !strings.Contains(r.stderr, "the forwarder cannot write") {
			t.Fatalf("exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
		}
		t.Logf("kclctl forwarder-dlq replay --apply --stream no-such-stream:\n%s\nstderr:\n%s", r.stdout, r.stderr)
		if n := visibleMessages(ctx, t, q, url); n != 2 {
			t.Fatalf("%d message(s) left, want 2: nothing deleted, all released", n)
		}
	})
}

// visibleMessages counts the queue's visible messages by receiving them (and releasing them).
func visibleMessages(ctx context.Context, t *testing.T, q *sqs.Client, url string) int {
	t.Helper()
	out, err := q.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(url), MaxNumberOfMessages: 10, WaitTimeSeconds: 1, VisibilityTimeout: 30})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range out.Messages {
		if _, err := q.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{QueueUrl: aws.String(url), ReceiptHandle: m.ReceiptHandle, VisibilityTimeout: 0}); err != nil {
			t.Fatal(err)
		}
	}
	return len(out.Messages)
}
