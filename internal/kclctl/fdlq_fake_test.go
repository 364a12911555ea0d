package kclctl

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/kinesis-events/pipeline/internal/kinesisfake"
)

// fakeQueue is an in-memory SQS standard queue behind FailureQueueAPI: visibility timeouts on its
// own clock, a new receipt handle per receive (only the newest one deletes or changes visibility,
// as in SQS), receive counts, and a log shared with fakeRaw so tests can order deletes against
// puts.
type fakeQueue struct {
	mu    sync.Mutex
	name  string
	url   string
	now   time.Time
	msgs  []*fakeMsg
	nextN int
	log   *eventLog

	// failDelete, when set, fails the delete of the messages it selects (by message id).
	failDelete func(id string) bool
	// errs fails whole calls by operation name.
	errs map[string]error
	// redeliver, when set, makes the next receive also return this message again (even though it
	// is hidden), as SQS's at-least-once delivery may.
	redeliver string

	calls       map[string]int
	visibility  []int32 // VisibilityTimeout of each receive
	maxReceived []int32 // MaxNumberOfMessages of each receive
}

type fakeMsg struct {
	id, body     string
	attrs        map[string]sqstypes.MessageAttributeValue
	sent         time.Time
	hiddenUntil  time.Time
	receipt      string
	receiveCount int
	deleted      bool
}

// eventLog records puts and deletes in the order they happened.
type eventLog struct {
	mu      sync.Mutex
	entries []string
}

func (l *eventLog) add(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.entries = append(l.entries, fmt.Sprintf(format, args...))
}

func (l *eventLog) all() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.entries...)
}

func newFakeQueue(log *eventLog) *fakeQueue {
	return &fakeQueue{name: "fwd-dlq", url: "https://sqs.us-east-1.amazonaws.com/123456789012/fwd-dlq", now: at, log: log, errs: map[string]error{}, calls: map[string]int{}}
}

// add enqueues a message sent age before the fake's clock; attrs are string message attributes.
func (q *fakeQueue) add(body string, age time.Duration, attrs map[string]string) string {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.nextN++
	m := &fakeMsg{id: fmt.Sprintf("m%02d", q.nextN), body: body, sent: q.now.Add(-age), attrs: map[string]sqstypes.MessageAttributeValue{}}
	for k, v := range attrs {
		m.attrs[k] = sqstypes.MessageAttributeValue{DataType: aws.String("String"), StringValue: aws.String(v)}
	}
	q.msgs = append(q.msgs, m)
	return m.id
}

// remaining returns the ids of the messages not deleted, and of those the visible ones.
func (q *fakeQueue) remaining() (all, visible []string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, m := range q.msgs {
		if m.deleted {
			continue
		}
		all = append(all, m.id)
		if !q.now.Before(m.hiddenUntil) {
			visible = append(visible, m.id)
		}
	}
	return all, visible
}

func (q *fakeQueue) find(receipt string) *fakeMsg {
	for _, m := range q.msgs {
		if !m.deleted && m.receipt == receipt && receipt != "" {
			return m
		}
	}
	return nil
}

func (q *fakeQueue) call(op string) error {
	q.calls[op]++
	return q.errs[op]
}

func (q *fakeQueue) checkURL(u *string) error {
	if aws.ToString(u) != q.url {
		return &sqstypes.QueueDoesNotExist{Message: aws.String("no queue at " + aws.ToString(u))}
	}
	return nil
}

func (q *fakeQueue) GetQueueUrl(_ context.Context, in *sqs.GetQueueUrlInput, _ ...func(*sqs.Options)) (*sqs.GetQueueUrlOutput, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if err := q.call("GetQueueUrl"); err != nil {
		return nil, err
	}
	if aws.ToString(in.QueueName) != q.name {
		return nil, &sqstypes.QueueDoesNotExist{Message: aws.String("The specified queue does not exist.")}
	}
	return &sqs.GetQueueUrlOutput{QueueUrl: aws.String(q.url)}, nil
}

func (q *fakeQueue) GetQueueAttributes(_ context.Context, in *sqs.GetQueueAttributesInput, _ ...func(*sqs.Options)) (*sqs.GetQueueAttributesOutput, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if err := q.call("GetQueueAttributes"); err != nil {
		return nil, err
	}
	if err := q.checkURL(in.QueueUrl); err != nil {
		return nil, err
	}
	var visible, hidden int
	for _, m := range q.msgs {
		switch {
		case m.deleted:
		case q.now.Before(m.hiddenUntil):
			hidden++
		default:
			visible++
		}
	}
	return &sqs.GetQueueAttributesOutput{Attributes: map[string]string{
		"ApproximateNumberOfMessages": strconv.Itoa(visible), "ApproximateNumberOfMessagesNotVisible": strconv.Itoa(hidden),
		"ApproximateNumberOfMessagesDelayed": "0",
	}}, nil
}

func (q *fakeQueue) ReceiveMessage(ctx context.Context, in *sqs.ReceiveMessageInput, _ ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := q.call("ReceiveMessage"); err != nil {
		return nil, err
	}
	if err := q.checkURL(in.QueueUrl); err != nil {
		return nil, err
	}
	if in.MaxNumberOfMessages < 1 || in.MaxNumberOfMessages > 10 || in.VisibilityTimeout < 0 || in.VisibilityTimeout > 43200 || in.WaitTimeSeconds > 20 {
		return nil, errors.New("fake: receive parameters out of SQS's range")
	}
	q.visibility = append(q.visibility, in.VisibilityTimeout)
	q.maxReceived = append(q.maxReceived, in.MaxNumberOfMessages)
	out := &sqs.ReceiveMessageOutput{}
	deliver := func(m *fakeMsg) {
		q.nextN++
		m.receipt = fmt.Sprintf("rh-%s-%d", m.id, q.nextN)
		m.receiveCount++
		m.hiddenUntil = q.now.Add(time.Duration(in.VisibilityTimeout) * time.Second)
		out.Messages = append(out.Messages, sqstypes.Message{
			MessageId: aws.String(m.id), ReceiptHandle: aws.String(m.receipt), Body: aws.String(m.body), MessageAttributes: m.attrs,
			Attributes: map[string]string{
				"SentTimestamp":           strconv.FormatInt(m.sent.UnixMilli(), 10),
				"ApproximateReceiveCount": strconv.Itoa(m.receiveCount),
			},
		})
	}
	if q.redeliver != "" {
		for _, m := range q.msgs {
			if m.id == q.redeliver {
				deliver(m)
			}
		}
		q.redeliver = ""
	}
	for _, m := range q.msgs {
		if len(out.Messages) >= int(in.MaxNumberOfMessages) {
			break
		}
		if m.deleted || q.now.Before(m.hiddenUntil) {
			continue
		}
		deliver(m)
	}
	return out, nil
}

func (q *fakeQueue) DeleteMessageBatch(_ context.Context, in *sqs.DeleteMessageBatchInput, _ ...func(*sqs.Options)) (*sqs.DeleteMessageBatchOutput, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if err := q.call("DeleteMessageBatch"); err != nil {
		return nil, err
	}
	if err := q.checkURL(in.QueueUrl); err != nil {
		return nil, err
	}
	if len(in.Entries) < 1 || len(in.Entries) > 10 {
		return nil, fmt.Errorf("fake: %d entries in a batch", len(in.Entries))
	}
	out := &sqs.DeleteMessageBatchOutput{}
	for _, e := range in.Entries {
		m := q.find(aws.ToString(e.ReceiptHandle))
		switch {
		case m == nil:
			out.Failed = append(out.Failed, sqstypes.BatchResultErrorEntry{Id: e.Id, Code: aws.String("ReceiptHandleIsInvalid"), Message: aws.String("stale or unknown receipt handle"), SenderFault: true})
		case q.failDelete != nil && q.failDelete(m.id):
			out.Failed = append(out.Failed, sqstypes.BatchResultErrorEntry{Id: e.Id, Code: aws.String("InternalError"), Message: aws.String("fake delete failure")})
		default:
			m.deleted = true
			q.log.add("delete %s", m.id)
			out.Successful = append(out.Successful, sqstypes.DeleteMessageBatchResultEntry{Id: e.Id})
		}
	}
	return out, nil
}

func (q *fakeQueue) ChangeMessageVisibilityBatch(_ context.Context, in *sqs.ChangeMessageVisibilityBatchInput, _ ...func(*sqs.Options)) (*sqs.ChangeMessageVisibilityBatchOutput, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if err := q.call("ChangeMessageVisibilityBatch"); err != nil {
		return nil, err
	}
	if err := q.checkURL(in.QueueUrl); err != nil {
		return nil, err
	}
	if len(in.Entries) < 1 || len(in.Entries) > 10 {
		return nil, fmt.Errorf("fake: %d entries in a batch", len(in.Entries))
	}
	out := &sqs.ChangeMessageVisibilityBatchOutput{}
	for _, e := range in.Entries {
		m := q.find(aws.ToString(e.ReceiptHandle))
		if m == nil {
			out.Failed = append(out.Failed, sqstypes.BatchResultErrorEntry{Id: e.Id, Code: aws.String("ReceiptHandleIsInvalid"), Message: aws.String("stale or unknown receipt handle"), SenderFault: true})
			continue
		}
		m.hiddenUntil = q.now.Add(time.Duration(e.VisibilityTimeout) * time.Second)
		out.Successful = append(out.Successful, sqstypes.ChangeMessageVisibilityBatchResultEntry{Id: e.Id})
	}
	return out, nil
}

// fakeRaw is the Kinesis behind the replaying forwarder: internal/kinesisfake (the limits, the
// per-key rule; a violation fails the test) that records each written record as
// "put <stream> <event_id>" in the shared log (the event id read from the raw or quarantine
// record), and fails the records fail selects.
type fakeRaw struct {
	kin  *kinesisfake.Fake
	log  *eventLog
	fail func(stream, eventID string) error // nil: written; an error fails the entry, its text the error code
	// entered is closed on the first call held by hang.
	entered     chan struct{}
	enteredOnce sync.Once
}

func newFakeRaw(t testing.TB, log *eventLog) *fakeRaw {
	k := &fakeRaw{kin: kinesisfake.New(), log: log, entered: make(chan struct{})}
	k.kin.EntryErr = func(e kinesisfake.Entry) string {
		if k.fail != nil {
			if err := k.fail(e.Stream, recordEventID(e.Data)); err != nil {
				return err.Error()
			}
		}
		return ""
	}
	t.Cleanup(func() { k.kin.CheckViolations(t) })
	return k
}

// hang makes every call wait for its context to end (a stream that never answers).
func (k *fakeRaw) hang() {
	k.kin.Set(func(f *kinesisfake.Fake) {
		f.Gate = make(chan struct{})
		f.OnCall = func(context.Context, kinesisfake.Call) { k.enteredOnce.Do(func() { close(k.entered) }) }
	})
}

// missing makes every stream answer ResourceNotFoundException.
func (k *fakeRaw) missing() {
	k.kin.Set(func(f *kinesisfake.Fake) { f.Streams = map[string]bool{} })
}

func (k *fakeRaw) PutRecords(ctx context.Context, in *kinesis.PutRecordsInput, _ ...func(*kinesis.Options)) (*kinesis.PutRecordsOutput, error) {
	out, err := k.kin.PutRecords(ctx, in)
	if err != nil {
		return nil, err
	}
	for i, e := range out.Records {
		if e.ErrorCode == nil {
			k.log.add("put %s %s", aws.ToString(in.StreamName), recordEventID(in.Records[i].Data))
		}
	}
	return out, nil
}

// puts returns the event ids written to stream, in write order.
func (k *fakeRaw) puts(stream string) []string {
	var ids []string
	for _, r := range k.kin.Records(stream) {
		ids = append(ids, recordEventID(r.Data))
	}
	return ids
}

// recordEventID reads detail.event_id of a raw record, or the event id of a quarantine record.
func recordEventID(b []byte) string {
	var r map[string]json.RawMessage
	if json.Unmarshal(b, &r) != nil {
		return "?"
	}
	var id string
	if json.Unmarshal(r["event_id"], &id) == nil && id != "" {
		return id
	}
	var d struct {
		EventID string `json:"event_id"`
	}
	if json.Unmarshal(r["detail"], &d) == nil && d.EventID != "" {
		return d.EventID
	}
	// A quarantine record of an event the forwarder could not decode names no event id: its
	// original, the EventBridge event, does.
	var orig []byte
	if json.Unmarshal(r["original"], &orig) == nil && len(orig) > 0 {
		return recordEventID(orig)
	}
	return "-"
}
