package kclctl

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// SQS limits and the session's bounds.
const (
	// sqsBatch is SQS's most messages per ReceiveMessage, DeleteMessageBatch and
	// ChangeMessageVisibilityBatch.
	sqsBatch = 10
	// maxVisibility is SQS's longest visibility timeout.
	maxVisibility = 12 * time.Hour
	// visibilityMargin keeps a received message hidden this long past the run's bound, so it
	// cannot reappear while the run still works on it; if the run dies without releasing its
	// messages, they reappear that long after the bound.
	visibilityMargin = 30 * time.Second
	// maxFinish bounds the time kept at the end of a run: half of it for the deletes of the last
	// batch, half for releasing what the run did not delete.
	maxFinish = 10 * time.Second
	// MinFDLQWait is the shortest --wait: a fifth of it is kept for the end of the run.
	MinFDLQWait = 5 * time.Second
	// defaultPollWait is the long-poll wait of each receive: an empty answer after it means the
	// queue has no visible message left (long polling asks every SQS server, short polling a
	// sample).
	defaultPollWait = time.Second
	// maxRepeatReceives bounds consecutive receives that bring only messages the run already has
	// (SQS delivers at least once, so a message can come twice).
	maxRepeatReceives = 3
)

// Why a run over the failure queue stopped.
const (
	StopEmpty     = "queue_empty" // a receive found no visible message
	StopLimit     = "limit"       // --limit messages received
	StopWait      = "wait"        // --wait ran out
	StopFailure   = "failure"     // an event could not be forwarded: the rest stays for the next run
	StopCancelled = "cancelled"   // interrupted
)

// FDLQOptions bound one run over the failure queue.
type FDLQOptions struct {
	// Limit is the most messages the run receives; default DefaultFDLQLimit.
	Limit int
	// Wait bounds the whole run, receiving, forwarding, deleting and releasing, at least
	// MinFDLQWait.
	Wait time.Duration
	// PollWait is each receive's long-poll wait, whole seconds; default 1s.
	PollWait time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
}

func (o FDLQOptions) withDefaults() FDLQOptions {
	if o.Limit == 0 {
		o.Limit = DefaultFDLQLimit
	}
	if o.PollWait == 0 {
		o.PollWait = defaultPollWait
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// Validate reports every invalid setting (after defaults).
func (o FDLQOptions) Validate() error {
	o = o.withDefaults()
	var errs []error
	if o.Limit < 1 {
		errs = append(errs, fmt.Errorf("limit %d: want at least 1", o.Limit))
	}
	if o.Wait < MinFDLQWait {
		errs = append(errs, fmt.Errorf("wait %v: want at least %v", o.Wait, MinFDLQWait))
	}
	if o.Wait+visibilityMargin > maxVisibility {
		errs = append(errs, fmt.Errorf("wait %v: want at most %v (SQS's longest visibility timeout, less %v)", o.Wait, maxVisibility-visibilityMargin, visibilityMargin))
	}
	if o.PollWait < time.Second || o.PollWait > 20*time.Second {
		errs = append(errs, fmt.Errorf("poll wait %v: want 1s to 20s", o.PollWait))
	}
	return errors.Join(errs...)
}

// queueSession is one run's view of the queue. Every message it receives stays hidden until the
// run is over (the visibility timeout of each receive reaches past the run's bound), so the run
// never meets a message twice because its visibility lapsed, and a second run does not take it;
// finish then makes every message the run did not delete visible again at once. A session belongs
// to one goroutine.
type queueSession struct {
	q         FailureQueueAPI
	url       string
	hideUntil time.Time
	pollWait  int32
	now       func() time.Time
	// parent is the run's caller's context and endCall the bound of a delete or release call:
	// those run even after the work's deadline or an interruption, since a written event whose
	// message is not deleted is sent again by the next run, and a message not released stays
	// hidden until hideUntil.
	parent  context.Context
	endCall time.Duration

	msgs     map[string]*sessionMsg // by message id
	order    []string               // message ids in receive order
	repeats  int                    // consecutive receives with nothing new
	received int
}

type sessionMsg struct {
	receipt string // the newest receipt handle: SQS accepts only that one
	deleted bool
	// redelete holds the receipts of copies delivered again after the message was deleted: they
	// are deleted too, not released.
	redelete []string
}

// receive asks for up to limit messages. done reports that the queue has nothing more to give this
// run: an empty answer, or maxRepeatReceives answers in a row with only messages it already has.
func (s *queueSession) receive(ctx context.Context, limit int) (fresh []FailedEvent, done bool, err error) {
	vis := int32(math.Ceil(s.hideUntil.Sub(s.now()).Seconds()))
	vis = min(max(vis, 1), int32(maxVisibility/time.Second))
	out, err := s.q.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
		QueueUrl:            aws.String(s.url),
		MaxNumberOfMessages: int32(min(limit, sqsBatch)),
		VisibilityTimeout:   vis,
		WaitTimeSeconds:     s.pollWait,
		MessageAttributeNames: []string{
			attrErrorCode, attrErrorMessage, attrRuleARN, "TARGET_ARN",
		},
		MessageSystemAttributeNames: []sqstypes.MessageSystemAttributeName{
			sqstypes.MessageSystemAttributeNameSentTimestamp, sqstypes.MessageSystemAttributeNameApproximateReceiveCount,
		},
		// The same request in the parameter SQS replaced: emulators that predate the new name
		// read only this one, and SQS takes both.
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameAll}, //lint:ignore SA1019 see above
	})
	if err != nil {
		return nil, false, fmt.Errorf("receive from %s: %w", s.url, err)
	}
	if len(out.Messages) == 0 {
		return nil, true, nil
	}
	for _, m := range out.Messages {
		id, receipt := aws.ToString(m.MessageId), aws.ToString(m.ReceiptHandle)
		if prev, ok := s.msgs[id]; ok {
			if prev.deleted {
				prev.redelete = append(prev.redelete, receipt)
			} else {
				prev.receipt = receipt
			}
			continue
		}
		s.msgs[id] = &sessionMsg{receipt: receipt}
		s.order = append(s.order, id)
		fresh = append(fresh, ParseFailedMessage(m))
	}
	s.received += len(fresh)
	if len(fresh) == 0 {
		s.repeats++
		return nil, s.repeats >= maxRepeatReceives, nil
	}
	s.repeats = 0
	return fresh, false, nil
}

// delete removes the given messages (their events were forwarded or quarantined) and returns the
// error of each message that was not deleted. Each call is bounded by endCall, not by the work's
// deadline.
func (s *queueSession) delete(ids []string) map[string]error {
	failed := map[string]error{}
	for start := 0; start < len(ids); start += sqsBatch {
		chunk := ids[start:min(start+sqsBatch, len(ids))]
		receipts := make([]string, len(chunk))
		for i, id := range chunk {
			receipts[i] = s.msgs[id].receipt
		}
		for i, err := range s.deleteReceipts(receipts) {
			if err != nil {
				failed[chunk[i]] = err
				continue
			}
			s.msgs[chunk[i]].deleted = true
		}
	}
	return failed
}

// deleteReceipts deletes up to sqsBatch messages by receipt handle in one call and returns each
// one's error (nil: deleted).
func (s *queueSession) deleteReceipts(receipts []string) []error {
	ctx, cancel := s.endContext()
	defer cancel()
	errs := make([]error, len(receipts))
	entries := make([]sqstypes.DeleteMessageBatchRequestEntry, len(receipts))
	for i, r := range receipts {
		entries[i] = sqstypes.DeleteMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), ReceiptHandle: aws.String(r)}
	}
	out, err := s.q.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{QueueUrl: aws.String(s.url), Entries: entries})
	if err != nil {
		for i := range errs {
			errs[i] = fmt.Errorf("delete from %s: %w", s.url, err)
		}
		return errs
	}
	ok := make([]bool, len(receipts))
	for _, e := range out.Successful {
		if i, err := strconv.Atoi(aws.ToString(e.Id)); err == nil && i >= 0 && i < len(ok) {
			ok[i] = true
		}
	}
	for _, e := range out.Failed {
		if i, err := strconv.Atoi(aws.ToString(e.Id)); err == nil && i >= 0 && i < len(ok) {
			ok[i] = false
			errs[i] = fmt.Errorf("delete from %s: %s: %s", s.url, aws.ToString(e.Code), aws.ToString(e.Message))
		}
	}
	for i := range errs {
		if !ok[i] && errs[i] == nil {
			errs[i] = fmt.Errorf("delete from %s: no result for the entry", s.url)
		}
	}
	return errs
}

// endContext bounds one delete or release call by endCall, whatever became of the run's context.
func (s *queueSession) endContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(s.parent), s.endCall)
}

// finish makes every message the run received and did not delete visible again, and deletes the
// copies of deleted messages that were delivered again. It returns how many messages it released
// and what failed; a message it could not release reappears by itself at hideUntil.
func (s *queueSession) finish() (released int, err error) {
	ctx, cancel := s.endContext()
	defer cancel()
	var keep, again []string
	for _, id := range s.order {
		m := s.msgs[id]
		if m.deleted {
			again = append(again, m.redelete...)
		} else {
			keep = append(keep, m.receipt)
		}
	}
	var errs []error
	for start := 0; start < len(keep); start += sqsBatch {
		chunk := keep[start:min(start+sqsBatch, len(keep))]
		entries := make([]sqstypes.ChangeMessageVisibilityBatchRequestEntry, len(chunk))
		for i, r := range chunk {
			entries[i] = sqstypes.ChangeMessageVisibilityBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), ReceiptHandle: aws.String(r), VisibilityTimeout: 0}
		}
		out, err := s.q.ChangeMessageVisibilityBatch(ctx, &sqs.ChangeMessageVisibilityBatchInput{QueueUrl: aws.String(s.url), Entries: entries})
		if err != nil {
			errs = append(errs, fmt.Errorf("release %d message(s): %w", len(chunk), err))
			continue
		}
		released += len(out.Successful)
		for _, e := range out.Failed {
			errs = append(errs, fmt.Errorf("release a message: %s: %s", aws.ToString(e.Code), aws.ToString(e.Message)))
		}
	}
	for start := 0; start < len(again); start += sqsBatch {
		for _, err := range s.deleteReceipts(again[start:min(start+sqsBatch, len(again))]) {
			if err != nil {
				errs = append(errs, fmt.Errorf("a message delivered again after it was deleted: %w", err))
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return released, fmt.Errorf("%w (messages not released reappear by themselves at %s)", err, s.hideUntil.UTC().Format(time.RFC3339))
	}
	return released, nil
}

// sessionEnd is how a run over the queue ended.
type sessionEnd struct {
	Stopped  string
	Received int
	Released int
	Warnings []Warning
}

// Warning kinds of the forwarder-dlq commands (WarnTruncated is shared with dlq).
const (
	WarnUnparseableMessage = "unparseable_message" // neither an EventBridge event nor a Lambda invocation record
	WarnNotReleased        = "not_released"        // messages stay hidden until their visibility timeout ends
	WarnStoppedByWait      = "stopped_by_wait"     // --wait ran out before the queue was drained
)

// runBudget splits a run of o.Wait: the work (looking the queue up, receiving, forwarding) gets a
// context that ends a fifth of the run (at most maxFinish) before the bound; the rest is kept for
// the end, half for the deletes of the last batch (endCall), half for releasing.
func runBudget(ctx context.Context, o FDLQOptions) (work context.Context, cancel context.CancelFunc, endCall time.Duration) {
	reserve := min(maxFinish, o.Wait/5)
	work, cancel = context.WithTimeout(ctx, o.Wait-reserve)
	return work, cancel, reserve / 2
}

// runSession receives up to o.Limit messages from the queue at url in batches and hands each batch
// to handle, until the queue is empty, the limit or the time bound is reached, or handle asks to
// stop; then it releases what was not deleted. Receiving and handle run under workCtx (runBudget);
// ctx is the caller's, which tells an interruption from the end of the work's time. The error is
// a failed receive, handle's error, or the interruption; how the run ended is in sessionEnd
// either way.
func runSession(ctx, workCtx context.Context, endCall time.Duration, q FailureQueueAPI, url string, o FDLQOptions,
	handle func(context.Context, *queueSession, []FailedEvent) (stop bool, err error)) (sessionEnd, error) {
	s := &queueSession{q: q, url: url, hideUntil: o.Now().Add(o.Wait + visibilityMargin), pollWait: int32(o.PollWait / time.Second),
		now: o.Now, parent: ctx, endCall: endCall, msgs: map[string]*sessionMsg{}}

	var end sessionEnd
	var runErr error
	for end.Stopped == "" {
		if s.received >= o.Limit {
			end.Stopped = StopLimit
			break
		}
		batch, done, err := s.receive(workCtx, o.Limit-s.received)
		switch {
		case err != nil && ctx.Err() != nil:
			end.Stopped, runErr = StopCancelled, fmt.Errorf("interrupted: %w", ctx.Err())
		case err != nil && workCtx.Err() != nil:
			end.Stopped = StopWait
		case err != nil:
			end.Stopped, runErr = StopFailure, err
		}
		if err != nil {
			break
		}
		if len(batch) > 0 {
			stop, err := handle(workCtx, s, batch)
			switch {
			case ctx.Err() != nil:
				end.Stopped, runErr = StopCancelled, fmt.Errorf("interrupted: %w", ctx.Err())
			case err != nil:
				end.Stopped, runErr = StopFailure, err
			case stop && workCtx.Err() != nil:
				end.Stopped = StopWait
			case stop:
				end.Stopped = StopFailure
			}
		}
		if done && end.Stopped == "" {
			end.Stopped = StopEmpty
		}
	}
	end.Received = s.received

	// The end of the run has its own bound: it must run even when the run was interrupted, or
	// the messages stay hidden until hideUntil.
	released, err := s.finish()
	end.Released = released
	if err != nil {
		end.Warnings = append(end.Warnings, Warning{Kind: WarnNotReleased, Message: err.Error()})
	}
	switch end.Stopped {
	case StopLimit:
		end.Warnings = append(end.Warnings, Warning{Kind: WarnTruncated, Message: fmt.Sprintf("stopped at --limit %d: the queue may hold more messages", o.Limit)})
	case StopWait:
		end.Warnings = append(end.Warnings, Warning{Kind: WarnStoppedByWait, Message: fmt.Sprintf("stopped after %d message(s) when --wait %v ran out: the queue may hold more", s.received, o.Wait)})
	}
	return end, runErr
}
