// Package reshardtest is an in-memory Kinesis control plane for tests of resharding: streams
// with shard lineage, SplitShard, MergeShards and UpdateShardCount (UNIFORM_SCALING, with
// Kinesis's 0.5x-2x rule), and a status tests can hold at UPDATING. It implements reshard.API and
// the stream calls of the autoscaler. Safe for concurrent use.
package reshardtest

import (
	"context"
	"fmt"
	"math/big"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go"

	"github.com/kinesis-events/pipeline/internal/reshard"
)

// Kinesis holds streams by name.
type Kinesis struct {
	mu      sync.Mutex
	streams map[string]*stream
	// NoUniform makes UpdateShardCount answer UnknownOperationException, as kinesalite does.
	NoUniform bool
	calls     map[string]int
	lose      map[string]int // op -> calls still to apply and then answer with an error
}

// LoseAnswers makes the next n calls of op (SplitShard, MergeShards, UpdateShardCount) take effect
// and then fail, as a call whose answer was lost (a timeout after it was applied) does.
func (k *Kinesis) LoseAnswers(op string, n int) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.lose[op] = n
}

// lost reports (and counts down) whether op's answer is to be lost; k.mu is held.
func (k *Kinesis) lost(op string) error {
	if k.lose[op] == 0 {
		return nil
	}
	k.lose[op]--
	return &smithy.GenericAPIError{Code: "RequestTimeout", Message: "answer lost after the call was applied"}
}

type stream struct {
	shards   []*shard
	status   types.StreamStatus
	onDemand bool
}

type shard struct {
	id, parent, adjacent string
	start, end           *big.Int
	closed               bool
}

// New returns a control plane without streams.
func New() *Kinesis {
	return &Kinesis{streams: map[string]*stream{}, calls: map[string]int{}, lose: map[string]int{}}
}

// AddStream creates an ACTIVE stream of n even shards.
func (k *Kinesis) AddStream(name string, n int) {
	k.mu.Lock()
	defer k.mu.Unlock()
	s := &stream{status: types.StreamStatusActive}
	width := new(big.Int).Div(reshard.HashSpace, big.NewInt(int64(n)))
	for i := range n {
		lo := new(big.Int).Mul(width, big.NewInt(int64(i)))
		hi := new(big.Int).Sub(new(big.Int).Add(lo, width), big.NewInt(1))
		if i == n-1 {
			hi = new(big.Int).Sub(reshard.HashSpace, big.NewInt(1))
		}
		s.add("", "", lo, hi)
	}
	k.streams[name] = s
}

// SetStatus sets a stream's status (e.g. UPDATING).
func (k *Kinesis) SetStatus(name string, st types.StreamStatus) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.streams[name].status = st
}

// SetOnDemand puts a stream in on-demand capacity mode.
func (k *Kinesis) SetOnDemand(name string, on bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.streams[name].onDemand = on
}

// Open is the number of open shards of a stream.
func (k *Kinesis) Open(name string) int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.streams[name].open())
}

// Calls is how many times op was called (e.g. "UpdateShardCount", "SplitShard").
func (k *Kinesis) Calls(op string) int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.calls[op]
}

func (s *stream) add(parent, adjacent string, lo, hi *big.Int) {
	s.shards = append(s.shards, &shard{id: fmt.Sprintf("shardId-%012d", len(s.shards)), parent: parent, adjacent: adjacent, start: lo, end: hi})
}

func (s *stream) find(id string) *shard {
	for _, sh := range s.shards {
		if sh.id == id {
			return sh
		}
	}
	return nil
}

func (s *stream) open() []*shard {
	var out []*shard
	for _, sh := range s.shards {
		if !sh.closed {
			out = append(out, sh)
		}
	}
	return out
}

func apiErr(code string) error { return &smithy.GenericAPIError{Code: code, Message: code} }

func (k *Kinesis) get(name *string) (*stream, error) {
	s := k.streams[aws.ToString(name)]
	if s == nil {
		return nil, &types.ResourceNotFoundException{Message: aws.String("stream " + aws.ToString(name) + " not found")}
	}
	return s, nil
}

// ListShards returns every shard in one page.
func (k *Kinesis) ListShards(_ context.Context, in *kinesis.ListShardsInput, _ ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.calls["ListShards"]++
	s, err := k.get(in.StreamName)
	if err != nil {
		return nil, err
	}
	out := &kinesis.ListShardsOutput{}
	for _, sh := range s.shards {
		o := types.Shard{ShardId: aws.String(sh.id), HashKeyRange: &types.HashKeyRange{StartingHashKey: aws.String(sh.start.String()), EndingHashKey: aws.String(sh.end.String())},
			SequenceNumberRange: &types.SequenceNumberRange{StartingSequenceNumber: aws.String("0")}}
		if sh.parent != "" {
			o.ParentShardId = aws.String(sh.parent)
		}
		if sh.adjacent != "" {
			o.AdjacentParentShardId = aws.String(sh.adjacent)
		}
		if sh.closed {
			o.SequenceNumberRange.EndingSequenceNumber = aws.String("9")
		}
		out.Shards = append(out.Shards, o)
	}
	return out, nil
}

// DescribeStreamSummary reports status, open shard count and capacity mode.
func (k *Kinesis) DescribeStreamSummary(_ context.Context, in *kinesis.DescribeStreamSummaryInput, _ ...func(*kinesis.Options)) (*kinesis.DescribeStreamSummaryOutput, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.calls["DescribeStreamSummary"]++
	s, err := k.get(in.StreamName)
	if err != nil {
		return nil, err
	}
	mode := types.StreamModeProvisioned
	if s.onDemand {
		mode = types.StreamModeOnDemand
	}
	return &kinesis.DescribeStreamSummaryOutput{StreamDescriptionSummary: &types.StreamDescriptionSummary{
		StreamName: in.StreamName, StreamStatus: s.status, OpenShardCount: aws.Int32(int32(len(s.open()))),
		StreamModeDetails: &types.StreamModeDetails{StreamMode: mode}}}, nil
}

// UpdateShardCount closes every open shard and creates TargetShardCount even ones, refusing
// targets outside 0.5x-2x of the open count, as Kinesis does.
func (k *Kinesis) UpdateShardCount(_ context.Context, in *kinesis.UpdateShardCountInput, _ ...func(*kinesis.Options)) (*kinesis.UpdateShardCountOutput, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.calls["UpdateShardCount"]++
	if k.NoUniform {
		return nil, apiErr("UnknownOperationException")
	}
	s, err := k.get(in.StreamName)
	if err != nil {
		return nil, err
	}
	if s.status != types.StreamStatusActive {
		return nil, &types.ResourceInUseException{Message: aws.String("stream is " + string(s.status))}
	}
	n, cur := int(aws.ToInt32(in.TargetShardCount)), len(s.open())
	if n > 2*cur || 2*n < cur {
		return nil, &types.InvalidArgumentException{Message: aws.String(fmt.Sprintf("target %d outside 0.5x-2x of %d", n, cur))}
	}
	old := s.open()
	width := new(big.Int).Div(reshard.HashSpace, big.NewInt(int64(n)))
	for i := range n {
		lo := new(big.Int).Mul(width, big.NewInt(int64(i)))
		hi := new(big.Int).Sub(new(big.Int).Add(lo, width), big.NewInt(1))
		if i == n-1 {
			hi = new(big.Int).Sub(reshard.HashSpace, big.NewInt(1))
		}
		parent := ""
		for _, sh := range old {
			if sh.start.Cmp(lo) <= 0 && sh.end.Cmp(lo) >= 0 {
				parent = sh.id
			}
		}
		s.add(parent, "", lo, hi)
	}
	for _, sh := range old {
		sh.closed = true
	}
	return &kinesis.UpdateShardCountOutput{}, k.lost("UpdateShardCount")
}

// SplitShard splits an open shard at NewStartingHashKey.
func (k *Kinesis) SplitShard(_ context.Context, in *kinesis.SplitShardInput, _ ...func(*kinesis.Options)) (*kinesis.SplitShardOutput, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.calls["SplitShard"]++
	s, err := k.get(in.StreamName)
	if err != nil {
		return nil, err
	}
	sh := s.find(aws.ToString(in.ShardToSplit))
	at, ok := new(big.Int).SetString(aws.ToString(in.NewStartingHashKey), 10)
	if sh == nil || sh.closed || !ok || at.Cmp(sh.start) <= 0 || at.Cmp(sh.end) > 0 {
		return nil, &types.InvalidArgumentException{Message: aws.String("bad split")}
	}
	sh.closed = true
	s.add(sh.id, "", sh.start, new(big.Int).Sub(at, big.NewInt(1)))
	s.add(sh.id, "", at, sh.end)
	return &kinesis.SplitShardOutput{}, k.lost("SplitShard")
}

// MergeShards merges two adjacent open shards.
func (k *Kinesis) MergeShards(_ context.Context, in *kinesis.MergeShardsInput, _ ...func(*kinesis.Options)) (*kinesis.MergeShardsOutput, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.calls["MergeShards"]++
	s, err := k.get(in.StreamName)
	if err != nil {
		return nil, err
	}
	a, b := s.find(aws.ToString(in.ShardToMerge)), s.find(aws.ToString(in.AdjacentShardToMerge))
	if a == nil || b == nil || a.closed || b.closed || new(big.Int).Add(a.end, big.NewInt(1)).Cmp(b.start) != 0 {
		return nil, &types.InvalidArgumentException{Message: aws.String("bad merge")}
	}
	a.closed, b.closed = true, true
	s.add(a.id, b.id, a.start, b.end)
	return &kinesis.MergeShardsOutput{}, k.lost("MergeShards")
}
