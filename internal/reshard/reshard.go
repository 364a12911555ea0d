package reshard

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go"
)

// API is the part of the Kinesis API a reshard uses. *kinesis.Client implements it.
type API interface {
	ListShards(ctx context.Context, in *kinesis.ListShardsInput, optFns ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error)
	DescribeStreamSummary(ctx context.Context, in *kinesis.DescribeStreamSummaryInput, optFns ...func(*kinesis.Options)) (*kinesis.DescribeStreamSummaryOutput, error)
	UpdateShardCount(ctx context.Context, in *kinesis.UpdateShardCountInput, optFns ...func(*kinesis.Options)) (*kinesis.UpdateShardCountOutput, error)
	SplitShard(ctx context.Context, in *kinesis.SplitShardInput, optFns ...func(*kinesis.Options)) (*kinesis.SplitShardOutput, error)
	MergeShards(ctx context.Context, in *kinesis.MergeShardsInput, optFns ...func(*kinesis.Options)) (*kinesis.MergeShardsOutput, error)
}

// Methods.
const (
	MethodAuto       = "auto"        // UpdateShardCount, or split/merge where the endpoint lacks it
	MethodUniform    = "uniform"     // UpdateShardCount (UNIFORM_SCALING) only
	MethodSplitMerge = "split-merge" // SplitShard/MergeShards one step at a time
)

// Report is what a reshard did (or would do).
type Report struct {
	Stream  string    `json:"stream"`
	From    int       `json:"from"`
	To      int       `json:"to"`
	Method  string    `json:"method"` // what was (or would be) used: uniform or split-merge
	Applied bool      `json:"applied"`
	Steps   []Step    `json:"steps"`
	Lineage []Lineage `json:"lineage"`
	TookMS  int64     `json:"took_ms"`
	Notes   []string  `json:"notes"`
}

// Options configures Run.
type Options struct {
	Stream string
	Target int
	Method string
	Apply  bool
	// Poll is how often the stream is checked while waiting for it to be ACTIVE (default 250ms).
	Poll time.Duration
	Now  func() time.Time
}

// Run reshards the stream to o.Target open shards, or (without Apply) shows how it would.
// With MethodAuto it tries UpdateShardCount (UNIFORM_SCALING, in steps of at most doubling or
// halving) and falls back to split/merge when the endpoint does not know the operation. The
// split/merge path re-plans from the stream after every step: it splits the widest open shard at
// its middle, or merges the adjacent pair with the narrowest combined range, and waits for the
// stream to be ACTIVE with the expected open shard count before the next step. ctx bounds the whole
// run; the report is filled in as far as the run got, also on error.
func Run(ctx context.Context, kin API, o Options) (Report, error) {
	if o.Poll <= 0 {
		o.Poll = 250 * time.Millisecond
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	start := o.Now()
	rep := Report{Stream: o.Stream, To: o.Target, Steps: []Step{}, Lineage: []Lineage{}, Notes: []string{}}
	if err := WaitActive(ctx, kin, o.Stream, -1, o.Poll); err != nil {
		return rep, err
	}
	all, err := ListAll(ctx, kin, o.Stream)
	if err != nil {
		return rep, err
	}
	open := OpenRanges(all)
	rep.From = len(open)
	rep.Lineage = LineageOf(all)
	if rep.From == o.Target {
		rep.Method = o.Method
		rep.Notes = append(rep.Notes, fmt.Sprintf("the stream already has %d open shards; nothing to do", o.Target))
		return rep, nil
	}
	if !o.Apply {
		return plan(rep, open, o)
	}
	rep.Applied = true
	finish := func(err error) (Report, error) {
		if all, lerr := ListAll(ctx, kin, o.Stream); lerr == nil {
			rep.Lineage = LineageOf(all)
		}
		rep.TookMS = o.Now().Sub(start).Milliseconds()
		return rep, err
	}
	if o.Method == MethodAuto || o.Method == MethodUniform {
		rep.Method = MethodUniform
		err := scaleUniform(ctx, kin, o, &rep)
		var unsupported *unsupportedError
		switch {
		case err == nil:
			return finish(nil)
		case errors.As(err, &unsupported) && o.Method == MethodAuto:
			rep.Notes = append(rep.Notes, "the endpoint does not support UpdateShardCount ("+unsupported.code+"); resharding by split/merge")
		default:
			return finish(err)
		}
	}
	rep.Method = MethodSplitMerge
	return finish(scaleSplitMerge(ctx, kin, o, &rep))
}

// plan fills the dry-run steps.
func plan(rep Report, open []Range, o Options) (Report, error) {
	steps, err := PlanSplitMerge(open, o.Target)
	if err != nil {
		return rep, err
	}
	switch o.Method {
	case MethodSplitMerge:
		rep.Method = MethodSplitMerge
		rep.Steps = steps
	default:
		rep.Method = MethodUniform
		for cur := rep.From; cur != o.Target; {
			cur = NextUniform(cur, o.Target)
			rep.Steps = append(rep.Steps, Step{Op: "update-shard-count", Target: cur})
		}
		if o.Method == MethodAuto {
			rep.Notes = append(rep.Notes, fmt.Sprintf("where the endpoint lacks UpdateShardCount, %d split/merge step(s) instead: %s",
				len(steps), describeSteps(steps)))
		}
	}
	rep.Notes = append(rep.Notes, "dry run: nothing changed; add --apply to reshard (workers follow by themselves)")
	return rep, nil
}

func describeSteps(steps []Step) string {
	parts := make([]string, len(steps))
	for i, s := range steps {
		parts[i] = s.Op + " " + strings.Join(s.Shards, "+")
	}
	return strings.Join(parts, "; ")
}

// unsupportedError: the endpoint does not implement UpdateShardCount.
type unsupportedError struct{ code string }

func (e *unsupportedError) Error() string { return "UpdateShardCount not supported: " + e.code }

func scaleUniform(ctx context.Context, kin API, o Options, rep *Report) error {
	for cur := rep.From; cur != o.Target; {
		next := NextUniform(cur, o.Target)
		began := o.Now()
		before, err := ListAll(ctx, kin, o.Stream)
		if err != nil {
			return err
		}
		_, err = kin.UpdateShardCount(ctx, &kinesis.UpdateShardCountInput{
			StreamName: aws.String(o.Stream), TargetShardCount: aws.Int32(int32(next)), ScalingType: types.ScalingTypeUniformScaling,
		})
		if err != nil {
			var api smithy.APIError
			if errors.As(err, &api) && IsUnsupported(api.ErrorCode()) {
				return &unsupportedError{code: api.ErrorCode()}
			}
			return fmt.Errorf("update shard count of %s to %d: %w", o.Stream, next, err)
		}
		if err := WaitActive(ctx, kin, o.Stream, next, o.Poll); err != nil {
			return err
		}
		after, err := ListAll(ctx, kin, o.Stream)
		if err != nil {
			return err
		}
		rep.Steps = append(rep.Steps, Step{Op: "update-shard-count", Target: next, Children: newShards(before, after), TookMS: o.Now().Sub(began).Milliseconds()})
		cur = next
	}
	return nil
}

// IsUnsupported reports whether an API error code means the endpoint does not implement the
// operation (kinesalite answers UnknownOperationException).
func IsUnsupported(code string) bool {
	switch code {
	case "UnknownOperationException", "InvalidAction", "UnsupportedOperation", "UnsupportedOperationException", "NotImplemented":
		return true
	}
	return false
}

func scaleSplitMerge(ctx context.Context, kin API, o Options, rep *Report) error {
	limit := 2*abs(o.Target-rep.From) + 2
	for range limit {
		before, err := ListAll(ctx, kin, o.Stream)
		if err != nil {
			return err
		}
		open := OpenRanges(before)
		if len(open) == o.Target {
			return nil
		}
		step, err := nextStep(open, o.Target)
		if err != nil {
			return err
		}
		began := o.Now()
		if err := doStep(ctx, kin, o.Stream, step); err != nil {
			return err
		}
		if err := waitStep(ctx, kin, o.Stream, len(open), step.Op == "split", o.Poll); err != nil {
			return err
		}
		after, err := ListAll(ctx, kin, o.Stream)
		if err != nil {
			return err
		}
		step.Children, step.TookMS = newShards(before, after), o.Now().Sub(began).Milliseconds()
		rep.Steps = append(rep.Steps, step)
	}
	return fmt.Errorf("stream %s: still not at %d open shards after %d steps", o.Stream, o.Target, limit)
}

// once makes one SDK attempt: a split or merge is not idempotent, and the SDK's own retry of a
// call that timed out after it was applied would split another shard or fail confusingly. doStep
// retries what it knows is safe, and checks the stream after any other failure.
func once(o *kinesis.Options) { o.RetryMaxAttempts = 1 }

// doStep runs one split or merge, retrying briefly while Kinesis reports the stream busy or the
// per-stream operation rate exceeded. A call that failed otherwise (a timeout, a lost answer) may
// have been applied: doStep then lists the shards, and the step counts as done when its shards
// are closed.
func doStep(ctx context.Context, kin API, stream string, s Step) error {
	var err error
	for attempt := range 5 {
		switch s.Op {
		case "split":
			_, err = kin.SplitShard(ctx, &kinesis.SplitShardInput{StreamName: aws.String(stream), ShardToSplit: aws.String(s.Shards[0]),
				NewStartingHashKey: aws.String(s.NewStartingHashKey)}, once)
		case "merge":
			_, err = kin.MergeShards(ctx, &kinesis.MergeShardsInput{StreamName: aws.String(stream), ShardToMerge: aws.String(s.Shards[0]),
				AdjacentShardToMerge: aws.String(s.Shards[1])}, once)
		default:
			return fmt.Errorf("unknown step %q", s.Op)
		}
		var busy *types.ResourceInUseException
		var limit *types.LimitExceededException
		if err == nil || !(errors.As(err, &busy) || errors.As(err, &limit)) {
			break
		}
		t := time.NewTimer(time.Duration(attempt+1) * 500 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
	if err != nil && ctx.Err() == nil {
		if WaitActive(ctx, kin, stream, -1, 250*time.Millisecond) == nil && closed(ctx, kin, stream, s.Shards) {
			return nil // applied after all
		}
	}
	if err != nil {
		return fmt.Errorf("%s %s: %w", s.Op, strings.Join(s.Shards, " + "), err)
	}
	return nil
}

// closed reports whether every one of shards is closed (false when the shards cannot be listed).
func closed(ctx context.Context, kin API, stream string, shards []string) bool {
	all, err := ListAll(ctx, kin, stream)
	if err != nil {
		return false
	}
	done := 0
	for _, sh := range all {
		for _, id := range shards {
			if aws.ToString(sh.ShardId) == id && sh.SequenceNumberRange != nil && sh.SequenceNumberRange.EndingSequenceNumber != nil {
				done++
			}
		}
	}
	return done == len(shards)
}

// waitStep polls until the stream is ACTIVE again with more open shards than before (a split) or
// fewer (a merge). It does not insist on exactly one more or less: the next step re-plans from
// what the stream holds.
func waitStep(ctx context.Context, kin API, stream string, before int, split bool, poll time.Duration) error {
	t := time.NewTicker(poll)
	defer t.Stop()
	last := ""
	for {
		out, err := kin.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(stream)})
		switch {
		case err != nil:
			last = err.Error()
		case out.StreamDescriptionSummary.StreamStatus != types.StreamStatusActive:
			last = "status " + string(out.StreamDescriptionSummary.StreamStatus)
		default:
			all, err := ListAll(ctx, kin, stream)
			if err != nil {
				last = err.Error()
				break
			}
			n := len(OpenRanges(all))
			if split && n > before || !split && n < before {
				return nil
			}
			last = fmt.Sprintf("ACTIVE with %d open shards, as before the step", n)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("stream %s not ready (%s): %w", stream, last, ctx.Err())
		case <-t.C:
		}
	}
}

// WaitActive polls until the stream is ACTIVE and, when wantOpen >= 0, has wantOpen open shards.
func WaitActive(ctx context.Context, kin API, stream string, wantOpen int, poll time.Duration) error {
	t := time.NewTicker(poll)
	defer t.Stop()
	last := ""
	for {
		out, err := kin.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(stream)})
		switch {
		case err != nil:
			last = err.Error()
		case out.StreamDescriptionSummary.StreamStatus != types.StreamStatusActive:
			last = "status " + string(out.StreamDescriptionSummary.StreamStatus)
		case wantOpen < 0:
			return nil
		default:
			all, err := ListAll(ctx, kin, stream)
			if err != nil {
				last = err.Error()
				break
			}
			n := len(OpenRanges(all))
			if n == wantOpen {
				return nil
			}
			last = fmt.Sprintf("ACTIVE with %d open shards, waiting for %d", n, wantOpen)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("stream %s not ready (%s): %w", stream, last, ctx.Err())
		case <-t.C:
		}
	}
}

// Lister is the one Kinesis call ListAll needs.
type Lister interface {
	ListShards(ctx context.Context, in *kinesis.ListShardsInput, optFns ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error)
}

// ListAll lists every shard of the stream, open and closed, page by page.
func ListAll(ctx context.Context, kin Lister, stream string) ([]types.Shard, error) {
	var out []types.Shard
	in := &kinesis.ListShardsInput{StreamName: aws.String(stream)}
	for {
		page, err := kin.ListShards(ctx, in)
		if err != nil {
			return nil, fmt.Errorf("list shards of %s: %w", stream, err)
		}
		out = append(out, page.Shards...)
		if page.NextToken == nil {
			return out, nil
		}
		in = &kinesis.ListShardsInput{NextToken: page.NextToken}
	}
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}
