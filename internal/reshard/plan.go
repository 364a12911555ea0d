package reshard

import (
	"errors"
	"fmt"
	"math/big"
	"slices"
	"sort"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
)

// HashSpace is 2^128, the size of the Kinesis hash key space. Callers must not modify it.
var HashSpace = new(big.Int).Lsh(big.NewInt(1), 128)

// Range is an open shard's hash key range (inclusive bounds).
type Range struct {
	ShardID    string
	Start, End *big.Int
}

// Size is the number of hash keys in r.
func (r Range) Size() *big.Int {
	return new(big.Int).Add(new(big.Int).Sub(r.End, r.Start), big.NewInt(1))
}

// Share is r's share of the hash key space, in [0, 1].
func (r Range) Share() float64 {
	f, _ := new(big.Rat).SetFrac(r.Size(), HashSpace).Float64()
	return f
}

// Step is one resharding operation, planned or done.
type Step struct {
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

// Lineage is one shard of the stream after a scale, open or closed.
type Lineage struct {
	ShardID   string   `json:"shard_id"`
	State     string   `json:"state"` // open or closed
	Parents   []string `json:"parents"`
	HashRange string   `json:"hash_range"` // as a share of the hash key space, e.g. 25.0%-50.0%
	StartHash string   `json:"starting_hash_key"`
	EndHash   string   `json:"ending_hash_key"`
}

// NextUniform is the next UpdateShardCount target on the way from cur to target: Kinesis accepts
// at most doubling and at least halving per call.
func NextUniform(cur, target int) int {
	if target > cur {
		return min(target, 2*cur)
	}
	return max(target, (cur+1)/2)
}

// PlanSplitMerge simulates the split/merge path from open to target open shards. Steps on shards
// that earlier steps create name them by hash range, e.g. "(25.0%-50.0%)".
func PlanSplitMerge(open []Range, target int) ([]Step, error) {
	steps, _, err := simulate(open, target)
	return steps, err
}

// SplitMergeResult is the open ranges the split/merge path from open to target leaves (the
// ranges of shards it creates are named by hash range). With Effective it tells what capacity a
// split/merge reshard really adds: from 2 even shards, 3 hold what 2 hold.
func SplitMergeResult(open []Range, target int) ([]Range, error) {
	_, ranges, err := simulate(open, target)
	return ranges, err
}

func simulate(open []Range, target int) ([]Step, []Range, error) {
	if target < 1 {
		return nil, nil, fmt.Errorf("target %d: want at least 1 shard", target)
	}
	cur := slices.Clone(open)
	var steps []Step
	for len(cur) != target {
		s, err := nextStep(cur, target)
		if err != nil {
			return nil, nil, err
		}
		steps = append(steps, s)
		if s.Op == "split" {
			i := indexOf(cur, s.Shards[0])
			at, _ := new(big.Int).SetString(s.NewStartingHashKey, 10)
			lo := Range{Start: cur[i].Start, End: new(big.Int).Sub(at, big.NewInt(1))}
			hi := Range{Start: at, End: cur[i].End}
			lo.ShardID, hi.ShardID = "("+PctRange(lo)+")", "("+PctRange(hi)+")"
			cur = slices.Replace(cur, i, i+1, lo, hi)
		} else {
			i := indexOf(cur, s.Shards[0])
			m := Range{Start: cur[i].Start, End: cur[i+1].End}
			m.ShardID = "(" + PctRange(m) + ")"
			cur = slices.Replace(cur, i, i+2, m)
		}
	}
	return steps, cur, nil
}

func indexOf(rs []Range, id string) int {
	for i, r := range rs {
		if r.ShardID == id {
			return i
		}
	}
	return -1
}

// nextStep decides one split or merge on the way to target. open must be sorted by Start.
func nextStep(open []Range, target int) (Step, error) {
	if len(open) < target {
		best := -1
		for i, r := range open {
			if best < 0 || r.Size().Cmp(open[best].Size()) > 0 {
				best = i
			}
		}
		r := open[best]
		if r.Size().Cmp(big.NewInt(2)) < 0 {
			return Step{}, fmt.Errorf("shard %s is too narrow to split", r.ShardID)
		}
		at := new(big.Int).Add(r.Start, new(big.Int).Rsh(r.Size(), 1))
		return Step{Op: "split", Shards: []string{r.ShardID}, NewStartingHashKey: at.String()}, nil
	}
	best := -1
	var bestSize *big.Int
	for i := 0; i+1 < len(open); i++ {
		if new(big.Int).Add(open[i].End, big.NewInt(1)).Cmp(open[i+1].Start) != 0 {
			continue
		}
		size := new(big.Int).Add(open[i].Size(), open[i+1].Size())
		if best < 0 || size.Cmp(bestSize) < 0 {
			best, bestSize = i, size
		}
	}
	if best < 0 {
		return Step{}, errors.New("no two adjacent open shards to merge")
	}
	return Step{Op: "merge", Shards: []string{open[best].ShardID, open[best+1].ShardID}}, nil
}

// OpenRanges returns the open shards' hash ranges sorted by start.
func OpenRanges(all []types.Shard) []Range {
	var out []Range
	for _, s := range all {
		if s.SequenceNumberRange != nil && s.SequenceNumberRange.EndingSequenceNumber != nil {
			continue
		}
		r, ok := RangeOf(s)
		if ok {
			out = append(out, r)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Start.Cmp(out[j].Start) < 0 })
	return out
}

// RangeOf is s's hash key range; ok is false when s has none or it does not parse.
func RangeOf(s types.Shard) (Range, bool) {
	if s.HashKeyRange == nil {
		return Range{}, false
	}
	lo, ok1 := new(big.Int).SetString(aws.ToString(s.HashKeyRange.StartingHashKey), 10)
	hi, ok2 := new(big.Int).SetString(aws.ToString(s.HashKeyRange.EndingHashKey), 10)
	return Range{ShardID: aws.ToString(s.ShardId), Start: lo, End: hi}, ok1 && ok2
}

// Effective is the capacity of open ranges in shards of even width: the share of the hash key
// space the widest range covers, inverted. Keys spread evenly over the key space fill the widest
// shard first, so a stream of shards 25%, 25% and 50% wide holds what 2 even shards hold, not 3.
// It is 0 for no ranges.
func Effective(open []Range) float64 {
	widest := 0.0
	for _, r := range open {
		widest = max(widest, r.Share())
	}
	if widest == 0 {
		return 0
	}
	return 1 / widest
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

// LineageOf lists every shard of all, open and closed, sorted by shard id.
func LineageOf(all []types.Shard) []Lineage {
	out := make([]Lineage, 0, len(all))
	for _, s := range all {
		l := Lineage{ShardID: aws.ToString(s.ShardId), State: "open", Parents: []string{}}
		if s.SequenceNumberRange != nil && s.SequenceNumberRange.EndingSequenceNumber != nil {
			l.State = "closed"
		}
		for _, p := range []*string{s.ParentShardId, s.AdjacentParentShardId} {
			if aws.ToString(p) != "" {
				l.Parents = append(l.Parents, aws.ToString(p))
			}
		}
		if r, ok := RangeOf(s); ok {
			l.HashRange, l.StartHash, l.EndHash = PctRange(r), r.Start.String(), r.End.String()
		}
		out = append(out, l)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ShardID < out[j].ShardID })
	return out
}

// PctRange renders a hash range as shares of the key space, e.g. "25.0%-50.0%".
func PctRange(r Range) string {
	return HashPct(r.Start) + "-" + HashPct(new(big.Int).Add(r.End, big.NewInt(1)))
}

// HashPct renders a hash key as a share of the key space, e.g. "25.0%".
func HashPct(x *big.Int) string {
	f, _ := new(big.Rat).SetFrac(new(big.Int).Mul(x, big.NewInt(100)), HashSpace).Float64()
	return strconv.FormatFloat(f, 'f', 1, 64) + "%"
}
