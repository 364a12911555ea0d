package kclctl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/big"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go"
	"github.com/spf13/cobra"
)

// ScaleAPI is the part of the Kinesis API `kclctl scale` uses. *kinesis.Client implements it.
type ScaleAPI interface {
	ListShards(ctx context.Context, in *kinesis.ListShardsInput, optFns ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error)
	DescribeStreamSummary(ctx context.Context, in *kinesis.DescribeStreamSummaryInput, optFns ...func(*kinesis.Options)) (*kinesis.DescribeStreamSummaryOutput, error)
	UpdateShardCount(ctx context.Context, in *kinesis.UpdateShardCountInput, optFns ...func(*kinesis.Options)) (*kinesis.UpdateShardCountOutput, error)
	SplitShard(ctx context.Context, in *kinesis.SplitShardInput, optFns ...func(*kinesis.Options)) (*kinesis.SplitShardOutput, error)
	MergeShards(ctx context.Context, in *kinesis.MergeShardsInput, optFns ...func(*kinesis.Options)) (*kinesis.MergeShardsOutput, error)
}

// Scale methods.
const (
	MethodAuto       = "auto"        // UpdateShardCount, or split/merge where the endpoint lacks it
	MethodUniform    = "uniform"     // UpdateShardCount (UNIFORM_SCALING) only
	MethodSplitMerge = "split-merge" // SplitShard/MergeShards one step at a time
)

// hashSpace is 2^128, the size of the Kinesis hash key space.
var hashSpace = new(big.Int).Lsh(big.NewInt(1), 128)

// ShardRange is an open shard's hash key range (inclusive bounds).
type ShardRange struct {
	ShardID    string
	Start, End *big.Int
}

func (r ShardRange) size() *big.Int {
	return new(big.Int).Add(new(big.Int).Sub(r.End, r.Start), big.NewInt(1))
}

// ScaleStep is one resharding operation, planned or done.
type ScaleStep struct {
	Op string `json:"op"` // split, merge, update-shard-count
	// Shards are the shard(s) operated on: the one split, the two merged (lower hash range first).
	// A planned step on a shard an earlier step creates names it by its hash range.
	Shards []string `json:"shards,omitempty"`
	// NewStartingHashKey is where a split cuts.
	NewStartingHashKey string `json:"new_starting_hash_key,omitempty"`
	// Target is the shard count an update-shard-count asks for.
	Target int `json:"target,omitempty"`
	// Children are the shards the step created (after it ran).
	Children []string `json:"children,omitempty"`
	TookMS   int64    `json:"took_ms,omitempty"`
}

// LineageShard is one shard of the stream after a scale, open or closed.
type LineageShard struct {
	ShardID   string   `json:"shard_id"`
	State     string   `json:"state"` // open or closed
	Parents   []string `json:"parents"`
	HashRange string   `json:"hash_range"` // as a share of the hash key space, e.g. 25.0%-50.0%
	StartHash string   `json:"starting_hash_key"`
	EndHash   string   `json:"ending_hash_key"`
}

// ScaleReport is what `kclctl scale` shows (and prints with --json).
type ScaleReport struct {
	Stream  string         `json:"stream"`
	From    int            `json:"from"`
	To      int            `json:"to"`
	Method  string         `json:"method"` // what was (or would be) used: uniform or split-merge
	Applied bool           `json:"applied"`
	Steps   []ScaleStep    `json:"steps"`
	Lineage []LineageShard `json:"lineage"`
	TookMS  int64          `json:"took_ms"`
	Notes   []string       `json:"notes"`
}

// ScaleOptions configures RunScale.
type ScaleOptions struct {
	Stream string
	Target int
	Method string
	Apply  bool
	// Poll is how often the stream is checked while waiting for it to be ACTIVE (default 250ms).
	Poll time.Duration
	Now  func() time.Time
}

// RunScale reshards the stream to opts.Target open shards, or (without Apply) shows how it would.
// With MethodAuto it tries UpdateShardCount (UNIFORM_SCALING, in steps of at most doubling or
// halving) and falls back to split/merge when the endpoint does not know the operation. The
// split/merge path re-plans from the stream after every step: it splits the widest open shard at
// its middle, or merges the adjacent pair with the narrowest combined range, and waits for the
// stream to be ACTIVE with the expected open shard count before the next step. ctx bounds the whole
// run; the report is filled in as far as the run got, also on error.
func RunScale(ctx context.Context, kin ScaleAPI, o ScaleOptions) (ScaleReport, error) {
	if o.Poll <= 0 {
		o.Poll = 250 * time.Millisecond
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	start := o.Now()
	rep := ScaleReport{Stream: o.Stream, To: o.Target, Steps: []ScaleStep{}, Lineage: []LineageShard{}, Notes: []string{}}
	if err := waitActive(ctx, kin, o.Stream, -1, o.Poll); err != nil {
		return rep, err
	}
	all, err := listAllShards(ctx, kin, o.Stream)
	if err != nil {
		return rep, err
	}
	open := openRanges(all)
	rep.From = len(open)
	rep.Lineage = lineageOf(all)
	if rep.From == o.Target {
		rep.Method = o.Method
		rep.Notes = append(rep.Notes, fmt.Sprintf("the stream already has %d open shards; nothing to do", o.Target))
		return rep, nil
	}
	if !o.Apply {
		return planScale(rep, open, o)
	}
	rep.Applied = true
	defer func() { rep.TookMS = o.Now().Sub(start).Milliseconds() }()
	finish := func(err error) (ScaleReport, error) {
		if all, lerr := listAllShards(ctx, kin, o.Stream); lerr == nil {
			rep.Lineage = lineageOf(all)
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

// planScale fills the dry-run steps.
func planScale(rep ScaleReport, open []ShardRange, o ScaleOptions) (ScaleReport, error) {
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
			cur = uniformNext(cur, o.Target)
			rep.Steps = append(rep.Steps, ScaleStep{Op: "update-shard-count", Target: cur})
		}
		if o.Method == MethodAuto {
			rep.Notes = append(rep.Notes, fmt.Sprintf("where the endpoint lacks UpdateShardCount, %d split/merge step(s) instead: %s",
				len(steps), describeSteps(steps)))
		}
	}
	rep.Notes = append(rep.Notes, "dry run: nothing changed; add --apply to reshard (workers follow by themselves)")
	return rep, nil
}

func describeSteps(steps []ScaleStep) string {
	parts := make([]string, len(steps))
	for i, s := range steps {
		parts[i] = s.Op + " " + strings.Join(s.Shards, "+")
	}
	return strings.Join(parts, "; ")
}

// uniformNext is the next UpdateShardCount target on the way from cur to target: Kinesis accepts
// at most doubling and at least halving per call.
func uniformNext(cur, target int) int {
	if target > cur {
		return min(target, 2*cur)
	}
	return max(target, (cur+1)/2)
}

// unsupportedError: the endpoint does not implement UpdateShardCount.
type unsupportedError struct{ code string }

func (e *unsupportedError) Error() string { return "UpdateShardCount not supported: " + e.code }

func scaleUniform(ctx context.Context, kin ScaleAPI, o ScaleOptions, rep *ScaleReport) error {
	for cur := rep.From; cur != o.Target; {
		next := uniformNext(cur, o.Target)
		began := o.Now()
		before, err := listAllShards(ctx, kin, o.Stream)
		if err != nil {
			return err
		}
		_, err = kin.UpdateShardCount(ctx, &kinesis.UpdateShardCountInput{
			StreamName: aws.String(o.Stream), TargetShardCount: aws.Int32(int32(next)), ScalingType: types.ScalingTypeUniformScaling,
		})
		if err != nil {
			var api smithy.APIError
			if errors.As(err, &api) && isUnsupported(api.ErrorCode()) {
				return &unsupportedError{code: api.ErrorCode()}
			}
			return fmt.Errorf("update shard count of %s to %d: %w", o.Stream, next, err)
		}
		if err := waitActive(ctx, kin, o.Stream, next, o.Poll); err != nil {
			return err
		}
		after, err := listAllShards(ctx, kin, o.Stream)
		if err != nil {
			return err
		}
		rep.Steps = append(rep.Steps, ScaleStep{Op: "update-shard-count", Target: next, Children: newShards(before, after), TookMS: o.Now().Sub(began).Milliseconds()})
		cur = next
	}
	return nil
}

func isUnsupported(code string) bool {
	switch code {
	case "UnknownOperationException", "InvalidAction", "UnsupportedOperation", "UnsupportedOperationException", "NotImplemented":
		return true
	}
	return false
}

func scaleSplitMerge(ctx context.Context, kin ScaleAPI, o ScaleOptions, rep *ScaleReport) error {
	limit := 2*abs(o.Target-rep.From) + 2
	for range limit {
		before, err := listAllShards(ctx, kin, o.Stream)
		if err != nil {
			return err
		}
		open := openRanges(before)
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
		want := len(open) + 1
		if step.Op == "merge" {
			want = len(open) - 1
		}
		if err := waitActive(ctx, kin, o.Stream, want, o.Poll); err != nil {
			return err
		}
		after, err := listAllShards(ctx, kin, o.Stream)
		if err != nil {
			return err
		}
		step.Children, step.TookMS = newShards(before, after), o.Now().Sub(began).Milliseconds()
		rep.Steps = append(rep.Steps, step)
	}
	return fmt.Errorf("stream %s: still not at %d open shards after %d steps", o.Stream, o.Target, limit)
}

// doStep runs one split or merge, retrying briefly while Kinesis reports the stream busy or the
// per-stream operation rate exceeded.
func doStep(ctx context.Context, kin ScaleAPI, stream string, s ScaleStep) error {
	var err error
	for attempt := range 5 {
		switch s.Op {
		case "split":
			_, err = kin.SplitShard(ctx, &kinesis.SplitShardInput{StreamName: aws.String(stream), ShardToSplit: aws.String(s.Shards[0]),
				NewStartingHashKey: aws.String(s.NewStartingHashKey)})
		case "merge":
			_, err = kin.MergeShards(ctx, &kinesis.MergeShardsInput{StreamName: aws.String(stream), ShardToMerge: aws.String(s.Shards[0]),
				AdjacentShardToMerge: aws.String(s.Shards[1])})
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
	if err != nil {
		return fmt.Errorf("%s %s: %w", s.Op, strings.Join(s.Shards, " + "), err)
	}
	return nil
}

// PlanSplitMerge simulates the split/merge path from open to target open shards. Steps on shards
// that earlier steps create name them by hash range, e.g. "(25.0%-50.0%)".
func PlanSplitMerge(open []ShardRange, target int) ([]ScaleStep, error) {
	if target < 1 {
		return nil, fmt.Errorf("target %d: want at least 1 shard", target)
	}
	cur := slices.Clone(open)
	var steps []ScaleStep
	for len(cur) != target {
		s, err := nextStep(cur, target)
		if err != nil {
			return nil, err
		}
		steps = append(steps, s)
		if s.Op == "split" {
			i := indexOf(cur, s.Shards[0])
			at, _ := new(big.Int).SetString(s.NewStartingHashKey, 10)
			lo := ShardRange{Start: cur[i].Start, End: new(big.Int).Sub(at, big.NewInt(1))}
			hi := ShardRange{Start: at, End: cur[i].End}
			lo.ShardID, hi.ShardID = "("+pctRange(lo)+")", "("+pctRange(hi)+")"
			cur = slices.Replace(cur, i, i+1, lo, hi)
		} else {
			i := indexOf(cur, s.Shards[0])
			m := ShardRange{Start: cur[i].Start, End: cur[i+1].End}
			m.ShardID = "(" + pctRange(m) + ")"
			cur = slices.Replace(cur, i, i+2, m)
		}
	}
	return steps, nil
}

func indexOf(rs []ShardRange, id string) int {
	for i, r := range rs {
		if r.ShardID == id {
			return i
		}
	}
	return -1
}

// nextStep decides one split or merge on the way to target. open must be sorted by Start.
func nextStep(open []ShardRange, target int) (ScaleStep, error) {
	if len(open) < target {
		best := -1
		for i, r := range open {
			if best < 0 || r.size().Cmp(open[best].size()) > 0 {
				best = i
			}
		}
		r := open[best]
		if r.size().Cmp(big.NewInt(2)) < 0 {
			return ScaleStep{}, fmt.Errorf("shard %s is too narrow to split", r.ShardID)
		}
		at := new(big.Int).Add(r.Start, new(big.Int).Rsh(r.size(), 1))
		return ScaleStep{Op: "split", Shards: []string{r.ShardID}, NewStartingHashKey: at.String()}, nil
	}
	best := -1
	var bestSize *big.Int
	for i := 0; i+1 < len(open); i++ {
		if new(big.Int).Add(open[i].End, big.NewInt(1)).Cmp(open[i+1].Start) != 0 {
			continue
		}
		size := new(big.Int).Add(open[i].size(), open[i+1].size())
		if best < 0 || size.Cmp(bestSize) < 0 {
			best, bestSize = i, size
		}
	}
	if best < 0 {
		return ScaleStep{}, errors.New("no two adjacent open shards to merge")
	}
	return ScaleStep{Op: "merge", Shards: []string{open[best].ShardID, open[best+1].ShardID}}, nil
}

// waitActive polls until the stream is ACTIVE and, when wantOpen >= 0, has wantOpen open shards.
func waitActive(ctx context.Context, kin ScaleAPI, stream string, wantOpen int, poll time.Duration) error {
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
			all, err := listAllShards(ctx, kin, stream)
			if err != nil {
				last = err.Error()
				break
			}
			n := len(openRanges(all))
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

func listAllShards(ctx context.Context, kin ScaleAPI, stream string) ([]types.Shard, error) {
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

// openRanges returns the open shards' hash ranges sorted by start.
func openRanges(all []types.Shard) []ShardRange {
	var out []ShardRange
	for _, s := range all {
		if s.SequenceNumberRange != nil && s.SequenceNumberRange.EndingSequenceNumber != nil {
			continue
		}
		r, ok := rangeOf(s)
		if ok {
			out = append(out, r)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Start.Cmp(out[j].Start) < 0 })
	return out
}

func rangeOf(s types.Shard) (ShardRange, bool) {
	if s.HashKeyRange == nil {
		return ShardRange{}, false
	}
	lo, ok1 := new(big.Int).SetString(aws.ToString(s.HashKeyRange.StartingHashKey), 10)
	hi, ok2 := new(big.Int).SetString(aws.ToString(s.HashKeyRange.EndingHashKey), 10)
	return ShardRange{ShardID: aws.ToString(s.ShardId), Start: lo, End: hi}, ok1 && ok2
}

func newShards(before, after []types.Shard) []string {
	seen := map[string]bool{}
	for _, s := range before {
		seen[aws.ToString(s.ShardId)] = true
	}
	var out []string
	for _, s := range after {
		if id := aws.ToString(s.ShardId); !seen[id] {
			out = append(out, id)
		}
	}
	sort.Strings(out)
	return out
}

func lineageOf(all []types.Shard) []LineageShard {
	out := make([]LineageShard, 0, len(all))
	for _, s := range all {
		l := LineageShard{ShardID: aws.ToString(s.ShardId), State: "open", Parents: []string{}}
		if s.SequenceNumberRange != nil && s.SequenceNumberRange.EndingSequenceNumber != nil {
			l.State = "closed"
		}
		for _, p := range []*string{s.ParentShardId, s.AdjacentParentShardId} {
			if aws.ToString(p) != "" {
				l.Parents = append(l.Parents, aws.ToString(p))
			}
		}
		if r, ok := rangeOf(s); ok {
			l.HashRange, l.StartHash, l.EndHash = pctRange(r), r.Start.String(), r.End.String()
		}
		out = append(out, l)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ShardID < out[j].ShardID })
	return out
}

// pctRange renders a hash range as shares of the key space, e.g. "25.0%-50.0%".
func pctRange(r ShardRange) string {
	return hashPct(r.Start) + "-" + hashPct(new(big.Int).Add(r.End, big.NewInt(1)))
}

// hashPct renders a hash key as a share of the key space, e.g. "25.0%".
func hashPct(x *big.Int) string {
	f, _ := new(big.Rat).SetFrac(new(big.Int).Mul(x, big.NewInt(100)), hashSpace).Float64()
	return strconv.FormatFloat(f, 'f', 1, 64) + "%"
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}

// RenderScale writes the steps, the lineage and the notes.
func RenderScale(w io.Writer, r ScaleReport) error {
	verb := "would run"
	if r.Applied {
		verb = "ran"
	}
	if _, err := fmt.Fprintf(w, "stream %s: %d -> %d open shards (%s; %s %d step(s))\n\n", r.Stream, r.From, r.To, r.Method, verb, len(r.Steps)); err != nil {
		return err
	}
	if len(r.Steps) > 0 {
		rows := make([][]string, len(r.Steps))
		for i, s := range r.Steps {
			detail := "-"
			switch {
			case s.Op == "split":
				detail = "at " + hashPct(mustInt(s.NewStartingHashKey))
			case s.Op == "update-shard-count":
				detail = "to " + strconv.Itoa(s.Target)
			}
			took := "-"
			if s.TookMS > 0 {
				took = HumanDuration(time.Duration(s.TookMS) * time.Millisecond)
			}
			rows[i] = []string{strconv.Itoa(i + 1), s.Op, orDash(strings.Join(s.Shards, " + ")), detail, orDash(strings.Join(s.Children, ",")), took}
		}
		if err := Table(w, []string{"STEP", "OP", "SHARDS", "DETAIL", "NEW SHARDS", "TOOK"}, rows); err != nil {
			return err
		}
		if _, err := fmt.Fprintln(w); err != nil {
			return err
		}
	}
	title := "lineage now:"
	if r.Applied {
		title = "lineage after:"
	}
	if _, err := fmt.Fprintln(w, title); err != nil {
		return err
	}
	rows := make([][]string, len(r.Lineage))
	for i, l := range r.Lineage {
		rows[i] = []string{l.ShardID, l.State, orDash(strings.Join(l.Parents, ",")), orDash(l.HashRange)}
	}
	if err := Table(w, []string{"SHARD", "STATE", "PARENTS", "HASH RANGE"}, rows); err != nil {
		return err
	}
	if r.Applied {
		if _, err := fmt.Fprintf(w, "\ntook %s\n", HumanDuration(time.Duration(r.TookMS)*time.Millisecond)); err != nil {
			return err
		}
	}
	for _, n := range r.Notes {
		if _, err := fmt.Fprintf(w, "note: %s\n", clean(n)); err != nil {
			return err
		}
	}
	return nil
}

func mustInt(s string) *big.Int {
	n, ok := new(big.Int).SetString(s, 10)
	if !ok {
		return new(big.Int)
	}
	return n
}

func newScaleCommand(app *App, g *Globals) *cobra.Command {
	var (
		shards int
		method string
		apply  bool
		wait   time.Duration
	)
	cmd := &cobra.Command{
		Use:   "scale --shards N [--apply]",
		Short: "Reshard the raw stream to N open shards (dry run unless --apply)",
		Long: `scale reshards the stream to N open shards and shows the resulting lineage.

--method auto (default) uses UpdateShardCount (UNIFORM_SCALING; at most doubling or halving per
call, so larger changes take several calls) and falls back to split/merge where the endpoint
lacks UpdateShardCount (kinesalite). --method split-merge always splits the widest open shard in
the middle or merges the adjacent pair with the narrowest combined range, one step at a time,
waiting for the stream to be ACTIVE after each. --method uniform never falls back.

The fleet follows by itself: workers find the new shards, finish each parent to SHARD_END
before any worker leases its children (so per-key order holds), and rebalance leases.

Without --apply it shows the plan and the current lineage. --wait bounds the whole run.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if shards < 1 {
				return usageError{errors.New("scale needs --shards N with N >= 1")}
			}
			if method != MethodAuto && method != MethodUniform && method != MethodSplitMerge {
				return usageError{fmt.Errorf("--method %q: want auto, uniform or split-merge", method)}
			}
			if wait <= 0 {
				return usageError{errors.New("--wait must be positive")}
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), wait)
			defer cancel()
			c, err := app.awsClients(ctx, g.Timeout)
			if err != nil {
				return err
			}
			rep, err := RunScale(ctx, c.Kinesis, ScaleOptions{Stream: g.Stream, Target: shards, Method: method, Apply: apply, Now: app.Now})
			if rep.From > 0 {
				if werr := app.output(g, rep, func(w io.Writer) error { return RenderScale(w, rep) }); werr != nil {
					return werr
				}
			}
			return err
		},
	}
	f := cmd.Flags()
	f.IntVar(&shards, "shards", 0, "target number of open shards")
	f.StringVar(&method, "method", MethodAuto, "auto, uniform (UpdateShardCount) or split-merge")
	f.BoolVar(&apply, "apply", false, "reshard (default: dry run)")
	f.DurationVar(&wait, "wait", 5*time.Minute, "bound on the whole run, waiting for ACTIVE included")
	return cmd
}
