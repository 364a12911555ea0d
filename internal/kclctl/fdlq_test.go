package kclctl

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/kinesis-events/pipeline/forwarder"
	"github.com/kinesis-events/pipeline/internal/names"
)

// bridgeEvent is an EventBridge event as the bus delivers it, with a detail the forwarder accepts
// (the signature is the worker's to check).
func bridgeEvent(eventID, customer string, seq int) string {
	return fmt.Sprintf(`{"version":"0","id":"b-%s","detail-type":"page_view","source":"shop.web","account":"123456789012",`+
		`"time":"2026-11-26T10:00:00Z","region":"us-east-1","resources":[],"detail":{"event_id":%q,"customer_id":%q,"seq":%d,`+
		`"occurred_at":"2026-11-26T09:59:59Z","properties":{"path":"/home"},"key_id":"k1","signature":"c2ln"}}`, eventID, eventID, customer, seq)
}

// lambdaRecord is Lambda's on-failure invocation record around an event.
func lambdaRecord(event string) string {
	return `{"version":"1.0","timestamp":"2026-11-26T10:05:00.000Z","requestContext":{"requestId":"r-1",` +
		`"functionArn":"arn:aws:lambda:us-east-1:123456789012:function:fwd:$LATEST","condition":"RetriesExhausted","approximateInvokeCount":3},` +
		`"requestPayload":` + event + `,"responseContext":{"statusCode":200,"executedVersion":"$LATEST","functionError":"Unhandled"},` +
		`"responsePayload":{"errorMessage":"event not written to events-raw: ProvisionedThroughputExceededException","errorType":"wrapError"}}`
}

// ruleAttrs are the attributes EventBridge puts on a dead-lettered event.
func ruleAttrs(code string) map[string]string {
	return map[string]string{"ERROR_CODE": code, "ERROR_MESSAGE": "Lambda function invocation failed", "RULE_ARN": "arn:aws:events:us-east-1:123456789012:rule/customer-events/fwd",
		"TARGET_ARN": "arn:aws:lambda:us-east-1:123456789012:function:fwd"}
}

func msg(id, body string, attrs map[string]string) sqstypes.Message {
	m := sqstypes.Message{MessageId: aws.String(id), ReceiptHandle: aws.String("rh-" + id), Body: aws.String(body), MessageAttributes: map[string]sqstypes.MessageAttributeValue{},
		Attributes: map[string]string{"SentTimestamp": "1796000000000", "ApproximateReceiveCount": "2"}}
	for k, v := range attrs {
		m.MessageAttributes[k] = sqstypes.MessageAttributeValue{DataType: aws.String("String"), StringValue: aws.String(v)}
	}
	return m
}

func TestParseFailedMessage(t *testing.T) {
	ev := bridgeEvent("e1", "c1", 4)
	tests := []struct {
		name                 string
		m                    sqstypes.Message
		origin, code, errKey string
		eventID              string
		problem              string // substring, for unparseable messages
		msgHas               string
	}{
		{name: "rule target DLQ", m: msg("a", ev, ruleAttrs("SDK_CLIENT_ERROR")), origin: OriginEventBridge, code: "SDK_CLIENT_ERROR",
			errKey: "eventbridge/SDK_CLIENT_ERROR", eventID: "e1", msgHas: "invocation failed"},
		{name: "Lambda on-failure destination", m: msg("b", lambdaRecord(ev), nil), origin: OriginLambda, code: "RetriesExhausted",
			errKey: "lambda/RetriesExhausted", eventID: "e1", msgHas: "wrapError: event not written"},
		{name: "event without attributes", m: msg("c", ev, nil), origin: OriginEventBridge, errKey: "eventbridge/unknown", eventID: "e1"},
		{name: "malformed event from the rule", m: msg("d", `{"detail-type":"page_view","detail":{"seq":"x"}}`, ruleAttrs("RETRIES_EXHAUSTED")),
			origin: OriginEventBridge, code: "RETRIES_EXHAUSTED", errKey: "eventbridge/RETRIES_EXHAUSTED"},
		{name: "record with an odd response", m: msg("e", strings.Replace(lambdaRecord(ev), `"responsePayload":{`, `"responsePayload":"x","y":{`, 1), nil),
			origin: OriginLambda, errKey: "lambda/unknown", eventID: "e1", msgHas: "unreadable"},
		{name: "not JSON", m: msg("f", "hello", nil), origin: OriginUnparseable, errKey: "unparseable", problem: "not a JSON object"},
		{name: "not JSON, from the rule", m: msg("g", "hello", ruleAttrs("X")), origin: OriginUnparseable, errKey: "unparseable", problem: "EventBridge dead letter (X)"},
		{name: "JSON array", m: msg("h", "[1,2]", nil), origin: OriginUnparseable, errKey: "unparseable", problem: "not a JSON object"},
		{name: "other JSON object", m: msg("i", `{"hello":"world"}`, nil), origin: OriginUnparseable, errKey: "unparseable", problem: "neither"},
		{name: "record without payload", m: msg("j", `{"requestContext":{}}`, nil), origin: OriginUnparseable, errKey: "unparseable", problem: "without requestContext or requestPayload"},
		{name: "record with a string payload", m: msg("k", `{"requestContext":{},"requestPayload":"x"}`, nil), origin: OriginUnparseable, errKey: "unparseable", problem: "not a JSON object"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := ParseFailedMessage(tc.m)
			if f.Origin != tc.origin || f.ErrorCode != tc.code || f.ErrorKey() != tc.errKey || f.EventID != tc.eventID {
				t.Fatalf("got origin %q code %q key %q event %q, want %q %q %q %q", f.Origin, f.ErrorCode, f.ErrorKey(), f.EventID, tc.origin, tc.code, tc.errKey, tc.eventID)
			}
			if !strings.Contains(f.Problem, tc.problem) || (tc.problem == "") != (f.Problem == "") {
				t.Fatalf("problem %q, want %q", f.Problem, tc.problem)
			}
			if !strings.Contains(f.ErrorMessage, tc.msgHas) {
				t.Fatalf("error message %q, want it to contain %q", f.ErrorMessage, tc.msgHas)
			}
			if f.MessageID != aws.ToString(tc.m.MessageId) || f.ReceiveCount != 2 || !f.SentAt.Equal(time.UnixMilli(1796000000000)) || f.receipt == "" {
				t.Fatalf("queue fields %+v", f)
			}
			switch {
			case tc.origin == OriginUnparseable && f.Event != nil:
				t.Fatalf("unparseable message carries an event: %s", f.Event)
			case tc.origin != OriginUnparseable && !json.Valid(f.Event):
				t.Fatalf("event %q is not JSON", f.Event)
			}
		})
	}
	// The Lambda record's event is the payload byte for byte (the forwarder forwards detail verbatim).
	if f := ParseFailedMessage(msg("b", lambdaRecord(ev), nil)); string(f.Event) != ev || f.CustomerID != "c1" || f.Seq != 4 || f.Type != "page_view" || f.BridgeID != "b-e1" {
		t.Fatalf("lambda event %+v", f)
	}
}

// fdlqFixture is a failure queue and a raw stream sharing one log, and a real forwarder writing
// to that stream.
type fdlqFixture struct {
	log *eventLog
	q   *fakeQueue
	raw *fakeRaw
	fwd *forwarder.Forwarder
}

func newFDLQFixture(t *testing.T) *fdlqFixture {
	t.Helper()
	log := &eventLog{}
	x := &fdlqFixture{log: log, q: newFakeQueue(log), raw: newFakeRaw(t, log)}
	f, err := forwarder.New(forwarder.Config{MaxAttempts: 2, MinBackoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond,
		Now: func() time.Time { return at }}, x.raw)
	if err != nil {
		t.Fatal(err)
	}
	x.fwd = f
	return x
}

func fdlqOptions() FDLQOptions {
	return FDLQOptions{Wait: time.Minute, Now: func() time.Time { return at }}
}

// checkRemaining fails unless exactly want (message ids) remain in the queue, all visible: the run
// released what it did not delete.
func (x *fdlqFixture) checkRemaining(t *testing.T, want ...string) {
	t.Helper()
	all, visible := x.q.remaining()
	if !slices.Equal(all, want) || !slices.Equal(visible, want) {
		t.Fatalf("left in the queue %v, visible %v; want %v, all visible", all, visible, want)
	}
}

func TestListFailureQueue(t *testing.T) {
	x := newFDLQFixture(t)
	x.q.add(lambdaRecord(bridgeEvent("e1", "c1", 1)), time.Hour, nil)
	x.q.add(bridgeEvent("e2", "c2", 1), 3*time.Hour, ruleAttrs("SDK_CLIENT_ERROR"))
	x.q.add("junk", 2*time.Hour, nil)
	x.q.add(lambdaRecord(bridgeEvent("e3", "c1", 2)), time.Minute, nil)

	r, err := ListFailureQueue(t.Context(), x.q, "fwd-dlq", fdlqOptions())
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, m := range r.Messages {
		ids = append(ids, m.MessageID)
	}
	if !slices.Equal(ids, []string{"m02", "m03", "m01", "m04"}) {
		t.Fatalf("messages %v, want oldest first", ids)
	}
	want := map[string]int{"lambda/RetriesExhausted": 2, "eventbridge/SDK_CLIENT_ERROR": 1, "unparseable": 1}
	if fmt.Sprint(r.ByError) != fmt.Sprint(want) || r.OldestAgeSeconds != 3*3600 || !r.OldestSentAt.Equal(at.Add(-3*time.Hour)) {
		t.Fatalf("by error %v oldest %v (%ds)", r.ByError, r.OldestSentAt, r.OldestAgeSeconds)
	}
	if r.Stopped != StopEmpty || r.Depth.Visible != 4 || r.QueueURL != x.q.url || len(r.Warnings) != 1 || r.Warnings[0].Kind != WarnUnparseableMessage {
		t.Fatalf("stopped %q depth %+v url %q warnings %+v", r.Stopped, r.Depth, r.QueueURL, r.Warnings)
	}
	// Listing wrote nothing and deleted nothing; every message is visible again.
	x.checkRemaining(t, "m01", "m02", "m03", "m04")
	if len(x.log.all()) != 0 || x.q.calls["DeleteMessageBatch"] != 0 {
		t.Fatalf("list changed something: %v, %v", x.log.all(), x.q.calls)
	}
	// Every receive hid its messages past the run's bound.
	for _, v := range x.q.visibility {
		if v < int32((time.Minute+visibilityMargin)/time.Second) {
			t.Fatalf("visibility timeouts %v: shorter than the run", x.q.visibility)
		}
	}

	var b bytes.Buffer
	if err := RenderFDLQList(&b, r); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, s := range []string{"AGE", "3h00m", "RetriesExhausted", "SDK_CLIENT_ERROR", "e2", "4 message(s) listed from fwd-dlq (stopped: queue_empty)",
		"oldest: sent 2026-11-26T09:00:00Z, 3h00m ago", "by error: eventbridge/SDK_CLIENT_ERROR=1, lambda/RetriesExhausted=2, unparseable=1",
		"unparseable_message", "kclctl forwarder-dlq replay --apply"} {
		if !strings.Contains(out, s) {
			t.Errorf("table lacks %q:\n%s", s, out)
		}
	}
}

func TestListBounds(t *testing.T) {
	x := newFDLQFixture(t)
	for i := range 25 {
		x.q.add(bridgeEvent(fmt.Sprintf("e%d", i), "c1", i+1), time.Minute, ruleAttrs("X"))
	}
	o := fdlqOptions()
	o.Limit = 12
	r, err := ListFailureQueue(t.Context(), x.q, "fwd-dlq", o)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Messages) != 12 || r.Stopped != StopLimit || len(r.Warnings) != 1 || r.Warnings[0].Kind != WarnTruncated {
		t.Fatalf("%d messages, stopped %q, warnings %+v", len(r.Messages), r.Stopped, r.Warnings)
	}
	if !slices.Equal(x.q.maxReceived, []int32{10, 2}) {
		t.Fatalf("receives asked for %v messages, want [10 2]", x.q.maxReceived)
	}
	_, visible := x.q.remaining()
	if len(visible) != 25 {
		t.Fatalf("%d visible after list, want 25", len(visible))
	}

	if _, err := ListFailureQueue(t.Context(), x.q, "nope", o); err == nil || !strings.Contains(err.Error(), EnvForwarderDLQ) {
		t.Fatalf("missing queue: %v", err)
	}
	o.Wait = time.Second
	if _, err := ListFailureQueue(t.Context(), x.q, "fwd-dlq", o); err == nil || !strings.Contains(err.Error(), "wait") {
		t.Fatalf("short wait: %v", err)
	}
	// A queue URL is used as it is.
	if r, err := ListFailureQueue(t.Context(), x.q, x.q.url, fdlqOptions()); err != nil || len(r.Messages) != 25 {
		t.Fatalf("by URL: %v, %d messages", err, len(r.Messages))
	}
}

func TestReplayDryRunWritesNothing(t *testing.T) {
	x := newFDLQFixture(t)
	x.q.add(lambdaRecord(bridgeEvent("e1", "c1", 1)), time.Hour, nil)
	x.q.add(bridgeEvent("e2", "c2", 1), time.Hour, ruleAttrs("SDK_CLIENT_ERROR"))
	x.q.add("junk", time.Hour, nil)

	r, err := ReplayFailureQueue(t.Context(), x.q, "fwd-dlq", x.fwd, false, fdlqOptions())
	if err != nil {
		t.Fatal(err)
	}
	if r.Would != 2 || r.Unparseable != 1 || r.Forwarded+r.Quarantined+r.Deleted != 0 || r.Applied || len(r.Warnings) != 1 {
		t.Fatalf("report %+v", r)
	}
	if len(x.log.all()) != 0 || x.fwd.Stats().Read != 0 {
		t.Fatalf("dry run wrote: %v, forwarder stats %+v", x.log.all(), x.fwd.Stats())
	}
	x.checkRemaining(t, "m01", "m02", "m03")
	var b bytes.Buffer
	if err := RenderFDLQReplay(&b, r); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "would replay 2 into") || !strings.Contains(b.String(), "dry run: nothing forwarded or deleted") {
		t.Fatalf("table:\n%s", b.String())
	}
}

func TestReplayDeletesOnlyAfterTheEventIsWritten(t *testing.T) {
	x := newFDLQFixture(t)
	ids := map[string]string{
		"e1": x.q.add(lambdaRecord(bridgeEvent("e1", "c1", 1)), time.Hour, nil),
		"e2": x.q.add(bridgeEvent("e2", "c2", 7), time.Hour, ruleAttrs("SDK_CLIENT_ERROR")),
		// Bad input: no customer_id. The forwarder quarantines it with its reason; its message goes.
		"bad": x.q.add(`{"version":"0","id":"b-bad","detail-type":"page_view","source":"shop.web","time":"2026-11-26T10:00:00Z","detail":{"event_id":"bad","seq":1}}`,
			time.Hour, ruleAttrs("SDK_CLIENT_ERROR")),
	}
	junk := x.q.add("junk", time.Hour, nil)

	r, err := ReplayFailureQueue(t.Context(), x.q, "fwd-dlq", x.fwd, true, fdlqOptions())
	if err != nil {
		t.Fatal(err)
	}
	if r.Forwarded != 2 || r.Quarantined != 1 || r.Deleted != 3 || r.Unparseable != 1 || r.Failed+r.Held+r.NotDeleted != 0 || r.Stopped != StopEmpty {
		t.Fatalf("report %+v", r)
	}
	if got := x.raw.puts(names.RawStream); !slices.Equal(slices.Sorted(slices.Values(got)), []string{"e1", "e2"}) {
		t.Fatalf("raw stream got %v", got)
	}
	if got := x.raw.puts(names.QuarantineStream); !slices.Equal(got, []string{"bad"}) {
		t.Fatalf("quarantine stream got %v", got)
	}
	// Each message was deleted after its event was written, never before.
	log := x.log.all()
	for ev, id := range ids {
		put := slices.IndexFunc(log, func(s string) bool { return strings.HasPrefix(s, "put ") && strings.HasSuffix(s, " "+ev) })
		del := slices.Index(log, "delete "+id)
		if put < 0 || del < 0 || del < put {
			t.Fatalf("event %s: put at %d, delete at %d in %v", ev, put, del, log)
		}
	}
	x.checkRemaining(t, junk)
	for _, row := range r.Rows {
		switch row.EventID {
		case "bad":
			if row.Result != FDLQQuarantined || row.Reason == "" || row.Stream != names.QuarantineStream || !row.Deleted {
				t.Fatalf("bad input row %+v", row)
			}
		case "e1", "e2":
			if row.Result != FDLQForwarded || row.Stream != names.RawStream || row.ShardID == "" || row.SequenceNumber == "" || !row.Deleted {
				t.Fatalf("row %+v", row)
			}
		}
	}
	// The replayed raw record is the forwarder's: partition key by customer, the detail verbatim.
	if !bytes.Contains(x.raw.kin.Records(names.RawStream)[0].Data, []byte(`"detail":{"event_id":`)) {
		t.Fatalf("raw record %s", x.raw.kin.Records(names.RawStream)[0].Data)
	}
}

func TestReplayFailureLeavesTheRestInTheQueue(t *testing.T) {
	x := newFDLQFixture(t)
	// 25 messages: batches of 10, 10 and 5. In the second batch, e13 of customer c3 cannot be
	// written; c3's later events in that batch (e16, e19) are held back.
	var all []string
	for i := range 25 {
		c := fmt.Sprintf("c%d", i%3)
		if i >= 10 && i < 20 && i%3 == 1 {
			c = "c3"
		}
		all = append(all, x.q.add(bridgeEvent(fmt.Sprintf("e%02d", i), c, i+1), time.Minute, nil))
	}
	x.raw.fail = func(stream, id string) error {
		if id == "e13" {
			return errors.New("ProvisionedThroughputExceededException")
		}
		return nil
	}
	r, err := ReplayFailureQueue(t.Context(), x.q, "fwd-dlq", x.fwd, true, fdlqOptions())
	if err != nil {
		t.Fatal(err)
	}
	if r.Received != 20 || r.Stopped != StopFailure || r.Failed != 1 || r.Held != 2 || r.Forwarded != 17 || r.Deleted != 17 {
		t.Fatalf("report: received %d stopped %q failed %d held %d forwarded %d deleted %d", r.Received, r.Stopped, r.Failed, r.Held, r.Forwarded, r.Deleted)
	}
	for _, id := range []string{"e13", "e16", "e19"} {
		if slices.Contains(x.raw.puts(names.RawStream), id) {
			t.Fatalf("%s was written: %v", id, x.raw.puts(names.RawStream))
		}
	}
	// Left: the failed one, the two held behind it, and the batch never received.
	x.checkRemaining(t, append([]string{all[13], all[16], all[19]}, all[20:]...)...)
	rows := map[string]FDLQReplayRow{}
	for _, row := range r.Rows {
		rows[row.EventID] = row
	}
	if rows["e13"].Result != FDLQFailed || !strings.Contains(rows["e13"].Error, "ProvisionedThroughputExceeded") || rows["e16"].Result != FDLQHeld || rows["e19"].Result != FDLQHeld {
		t.Fatalf("rows %+v %+v %+v", rows["e13"], rows["e16"], rows["e19"])
	}
}

func TestReplayStopsWhenTheStreamIsMissing(t *testing.T) {
	x := newFDLQFixture(t)
	x.q.add(bridgeEvent("e1", "c1", 1), time.Minute, nil)
	x.q.add(bridgeEvent("e2", "c2", 1), time.Minute, nil)
	x.raw.missing() // every call answers ResourceNotFoundException: Stream events-raw not found
	r, err := ReplayFailureQueue(t.Context(), x.q, "fwd-dlq", x.fwd, true, fdlqOptions())
	if !errors.Is(err, forwarder.ErrFatalPut) || r.Failed != 2 || r.Deleted != 0 || r.Stopped != StopFailure {
		t.Fatalf("err %v, report %+v", err, r)
	}
	x.checkRemaining(t, "m01", "m02")
}

func TestReplayKeepsAMessageWhoseDeleteFailed(t *testing.T) {
	x := newFDLQFixture(t)
	x.q.add(bridgeEvent("e1", "c1", 1), time.Minute, nil)
	x.q.add(bridgeEvent("e2", "c2", 1), time.Minute, nil)
	x.q.add(bridgeEvent("e3", "c3", 1), time.Minute, nil)
	x.q.failDelete = func(id string) bool { return id == "m02" }
	r, err := ReplayFailureQueue(t.Context(), x.q, "fwd-dlq", x.fwd, true, fdlqOptions())
	if err != nil {
		t.Fatal(err)
	}
	if r.Forwarded != 3 || r.Deleted != 2 || r.NotDeleted != 1 || r.Stopped != StopFailure {
		t.Fatalf("report %+v", r)
	}
	// Its event is in the stream; the message stays for a later replay (dedupe drops that copy).
	x.checkRemaining(t, "m02")
	for _, row := range r.Rows {
		if row.MessageID == "m02" && (row.Deleted || !strings.Contains(row.Error, "not deleted")) {
			t.Fatalf("row %+v", row)
		}
	}
}

func TestReplayKeepsCustomerOrderWithinABatch(t *testing.T) {
	x := newFDLQFixture(t)
	for _, seq := range []int{3, 1, 4, 2} {
		x.q.add(bridgeEvent(fmt.Sprintf("c1-%d", seq), "c1", seq), time.Minute, nil)
	}
	x.q.add(bridgeEvent("c2-1", "c2", 1), time.Minute, nil)
	if _, err := ReplayFailureQueue(t.Context(), x.q, "fwd-dlq", x.fwd, true, fdlqOptions()); err != nil {
		t.Fatal(err)
	}
	var c1 []string
	for _, id := range x.raw.puts(names.RawStream) {
		if strings.HasPrefix(id, "c1-") {
			c1 = append(c1, id)
		}
	}
	if !slices.Equal(c1, []string{"c1-1", "c1-2", "c1-3", "c1-4"}) {
		t.Fatalf("customer c1 written in order %v", c1)
	}
	x.checkRemaining(t)
}

func TestReplayHandlesAMessageDeliveredTwice(t *testing.T) {
	x := newFDLQFixture(t)
	for i := range 12 {
		x.q.add(bridgeEvent(fmt.Sprintf("e%d", i), fmt.Sprintf("c%d", i), 1), time.Minute, nil)
	}
	// The second receive brings m01 again although the first run deleted it (SQS delivers at
	// least once): it is deleted with its new receipt, not forwarded twice.
	calls := 0
	q := &hookQueue{fakeQueue: x.q, beforeReceive: func() {
		if calls++; calls == 2 {
			x.q.mu.Lock()
			for _, m := range x.q.msgs {
				if m.id == "m01" {
					m.deleted = false // SQS's copy on another server
				}
			}
			x.q.redeliver = "m01"
			x.q.mu.Unlock()
		}
	}}
	r, err := ReplayFailureQueue(t.Context(), q, "fwd-dlq", x.fwd, true, fdlqOptions())
	if err != nil {
		t.Fatal(err)
	}
	if r.Forwarded != 12 || len(x.raw.puts(names.RawStream)) != 12 {
		t.Fatalf("forwarded %d, raw %v", r.Forwarded, x.raw.puts(names.RawStream))
	}
	x.checkRemaining(t)
}

// hookQueue runs a function before each receive of the fake queue.
type hookQueue struct {
	*fakeQueue
	beforeReceive func()
}

func (h *hookQueue) ReceiveMessage(ctx context.Context, in *sqs.ReceiveMessageInput, o ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error) {
	h.beforeReceive()
	return h.fakeQueue.ReceiveMessage(ctx, in, o...)
}

func TestReplayIsBoundedInTime(t *testing.T) {
	t.Run("wait runs out", func(t *testing.T) {
		x := newFDLQFixture(t)
		x.q.add(bridgeEvent("e1", "c1", 1), time.Minute, nil)
		x.q.add(bridgeEvent("e2", "c2", 1), time.Minute, nil)
		x.raw.hang()
		o := fdlqOptions()
		o.Wait = MinFDLQWait
		start := time.Now()
		r, err := ReplayFailureQueue(t.Context(), x.q, "fwd-dlq", x.fwd, true, o)
		took := time.Since(start)
		if err != nil || r.Stopped != StopWait || r.Failed != 2 || r.Deleted != 0 {
			t.Fatalf("err %v, report %+v", err, r)
		}
		if took > o.Wait {
			t.Fatalf("the run took %v, longer than --wait %v", took, o.Wait)
		}
		if !slices.ContainsFunc(r.Warnings, func(w Warning) bool { return w.Kind == WarnStoppedByWait }) {
			t.Fatalf("warnings %+v", r.Warnings)
		}
		x.checkRemaining(t, "m01", "m02")
	})
	t.Run("interrupted", func(t *testing.T) {
		x := newFDLQFixture(t)
		x.q.add(bridgeEvent("e1", "c1", 1), time.Minute, nil)
		x.raw.hang()
		ctx, cancel := context.WithCancel(t.Context())
		go func() {
			<-x.raw.entered
			cancel()
		}()
		r, err := ReplayFailureQueue(ctx, x.q, "fwd-dlq", x.fwd, true, fdlqOptions())
		if !errors.Is(err, context.Canceled) || r.Stopped != StopCancelled || r.Deleted != 0 {
			t.Fatalf("err %v, report %+v", err, r)
		}
		// Released although the run's context had ended.
		x.checkRemaining(t, "m01")
	})
	t.Run("interrupted right after a write", func(t *testing.T) {
		x := newFDLQFixture(t)
		x.q.add(bridgeEvent("e1", "c1", 1), time.Minute, nil)
		ctx, cancel := context.WithCancel(t.Context())
		x.raw.fail = func(string, string) error {
			cancel() // the record lands; then the operator presses Ctrl-C
			return nil
		}
		r, err := ReplayFailureQueue(ctx, x.q, "fwd-dlq", x.fwd, true, fdlqOptions())
		if !errors.Is(err, context.Canceled) || r.Stopped != StopCancelled || r.Forwarded != 1 || r.Deleted != 1 {
			t.Fatalf("err %v, report %+v", err, r)
		}
		// Its message is deleted all the same: the next run would write the event twice.
		x.checkRemaining(t)
	})
}
