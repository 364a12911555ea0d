package kinesisfake

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/kinesis-events/pipeline/internal/ambiguous"
)

// The service limits of one PutRecords call, as Kinesis documents them. They are written out here,
// not imported from the writer, so that a wrong constant in the writer shows up as a violation.
const (
	MaxRecords      = 500
	MaxRequestBytes = 5 << 20
	MaxRecordBytes  = 1 << 20 // data plus partition key
	MaxKeyChars     = 256
)

// ShardID is the shard every accepted record lands on.
const ShardID = "shardId-000000000000"

// ErrLostAnswer is returned by a call that LoseAnswer selected, after its records were written.
var ErrLostAnswer = errors.New("deserialization failed: read tcp: use of closed network connection")

// Call describes one PutRecords call as the fake received it.
type Call struct {
	N       int      // calls to any stream so far, this one included (from 1)
	StreamN int      // calls to this stream so far, this one included (from 1)
	Stream  string   // the stream name of the call
	Keys    []string // the partition keys of its entries, in order
}

// Entry describes one entry of a call.
type Entry struct {
	Call
	I       int    // the entry's index in the call
	Key     string // its partition key
	Data    []byte // its payload (do not modify)
	Attempt int    // calls that carried this exact payload so far, this one included (from 1)
}

// Record is one record the fake accepted.
type Record struct {
	Key     string
	Data    []byte
	ShardID string
	Seq     string // the sequence number the call answered, increasing per stream
}

// Fake is an in-memory Kinesis PutRecords. The zero value is not usable; call New.
type Fake struct {
	// CallErr, when set, may fail a call as a whole, before anything is written.
	CallErr func(c Call) error
	// EntryErr, when set, may fail one entry with the error code it returns ("" writes the entry).
	EntryErr func(e Entry) string
	// LoseAnswer, when set, makes the calls it selects write their records and then fail as if the
	// answer was lost: the outcome is noted unknown on the call's context (internal/ambiguous) and
	// the call returns ErrLostAnswer.
	LoseAnswer func(c Call) bool
	// OnCall, when set, runs at the start of every call that passed the checks, before Gate.
	OnCall func(ctx context.Context, c Call)
	// Gate, when set, is received from before each call answers (to hold calls in flight).
	Gate chan struct{}
	// Latency is the simulated service time of every call.
	Latency time.Duration
	// Streams, when set, lists the streams that exist; calls to others answer
	// ResourceNotFoundException without being counted.
	Streams map[string]bool
	// FullBatch, when set, makes a call of fewer records that starts while another call is in
	// flight a violation (a writer that sends only full batches alongside a call in flight).
	FullBatch int

	mu          sync.Mutex
	calls       int
	streamCalls map[string]int
	records     map[string][]Record
	attempts    map[string]int            // payload -> calls that carried it
	inflight    map[string]map[string]int // stream -> key -> calls in flight carrying it
	inCalls     int
	maxInCalls  int
	violations  []string
	batchSizes  []int
	batchBytes  []int
}

// New returns an empty fake in which every stream exists.
func New() *Fake {
	return &Fake{streamCalls: map[string]int{}, records: map[string][]Record{}, attempts: map[string]int{}, inflight: map[string]map[string]int{}}
}

// Set runs fn with the fake locked, to change its scripting while calls may run. fn must not call
// the fake's methods.
func (f *Fake) Set(fn func(f *Fake)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

// PutRecords implements the Kinesis call; see the package comment for what it checks and scripts.
func (f *Fake) PutRecords(ctx context.Context, in *kinesis.PutRecordsInput, _ ...func(*kinesis.Options)) (*kinesis.PutRecordsOutput, error) {
	stream := aws.ToString(in.StreamName)
	f.mu.Lock()
	if f.Streams != nil && !f.Streams[stream] {
		f.mu.Unlock()
		return nil, &types.ResourceNotFoundException{Message: aws.String("Stream " + stream + " not found")}
	}
	f.calls++
	f.streamCalls[stream]++
	c := Call{N: f.calls, StreamN: f.streamCalls[stream], Stream: stream, Keys: make([]string, len(in.Records))}
	limitErr := f.check(c, in)
	f.batchSizes = append(f.batchSizes, len(in.Records))
	f.batchBytes = append(f.batchBytes, requestBytes(in))
	if limitErr != nil {
		f.mu.Unlock()
		return nil, limitErr
	}
	inflight := f.inflight[stream]
	if inflight == nil {
		inflight = map[string]int{}
		f.inflight[stream] = inflight
	}
	for _, k := range c.Keys {
		inflight[k]++
	}
	f.inCalls++
	f.maxInCalls = max(f.maxInCalls, f.inCalls)
	onCall, gate, latency, callErr := f.OnCall, f.Gate, f.Latency, f.CallErr
	f.mu.Unlock()
	defer f.leave(stream, c.Keys)

	if onCall != nil {
		onCall(ctx, c)
	}
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if latency > 0 {
		t := time.NewTimer(latency)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if callErr != nil {
		if err := callErr(c); err != nil {
			return nil, err
		}
	}

	f.mu.Lock()
	defer f.mu.Unlock()
	out := &kinesis.PutRecordsOutput{Records: make([]types.PutRecordsResultEntry, len(in.Records))}
	failed := int32(0)
	for i, e := range in.Records {
		f.attempts[string(e.Data)]++
		if f.EntryErr != nil {
			if code := f.EntryErr(Entry{Call: c, I: i, Key: c.Keys[i], Data: e.Data, Attempt: f.attempts[string(e.Data)]}); code != "" {
				out.Records[i] = types.PutRecordsResultEntry{ErrorCode: aws.String(code), ErrorMessage: aws.String("scripted")}
				failed++
				continue
			}
		}
		r := Record{Key: c.Keys[i], Data: append([]byte(nil), e.Data...), ShardID: ShardID, Seq: strconv.Itoa(len(f.records[stream]) + 1)}
		f.records[stream] = append(f.records[stream], r)
		out.Records[i] = types.PutRecordsResultEntry{ShardId: aws.String(r.ShardID), SequenceNumber: aws.String(r.Seq)}
	}
	out.FailedRecordCount = &failed
	if f.LoseAnswer != nil && f.LoseAnswer(c) {
		ambiguous.Note(ctx)
		return nil, ErrLostAnswer
	}
	return out, nil
}

// check records the call's violations, fills c.Keys, and returns the error the service would
// answer for a breach of its limits (nil when the call is within them). f.mu is held.
func (f *Fake) check(c Call, in *kinesis.PutRecordsInput) error {
	var limit error
	seen := map[string]bool{}
	for i, e := range in.Records {
		k := aws.ToString(e.PartitionKey)
		c.Keys[i] = k
		switch size := len(e.Data) + len(k); {
		case len(e.Data) > MaxRecordBytes: // refused by the SDK's model, as kinesalite does
			f.violate(c, "record %d of %d bytes of data, over %d", i, len(e.Data), MaxRecordBytes)
			limit = &types.ValidationException{Message: aws.String(fmt.Sprintf("record %d: data of %d bytes", i, len(e.Data)))}
		case size > MaxRecordBytes: // the documented limit counts the key; kinesalite does not check it
			f.violate(c, "record %d of %d bytes with its key, over %d", i, size, MaxRecordBytes)
			limit = &types.InvalidArgumentException{Message: aws.String(fmt.Sprintf("record %d of %d bytes with its key", i, size))}
		}
		if n := len([]rune(k)); n == 0 || n > MaxKeyChars {
			f.violate(c, "record %d: partition key of %d characters", i, n)
			limit = &types.ValidationException{Message: aws.String(fmt.Sprintf("partition key of %d characters", n))}
		}
		if seen[k] {
			f.violate(c, "key %s twice in one call", k)
		}
		seen[k] = true
		if f.inflight[c.Stream][k] > 0 {
			f.violate(c, "key %s already in flight in another call", k)
		}
	}
	if n, size := len(in.Records), requestBytes(in); n == 0 || n > MaxRecords || size > MaxRequestBytes {
		f.violate(c, "%d records, %d bytes (limits 1 to %d records, %d bytes)", n, size, MaxRecords, MaxRequestBytes)
		limit = &types.ValidationException{Message: aws.String(fmt.Sprintf("%d records, %d bytes", n, size))}
	}
	if f.FullBatch > 0 && f.inCalls > 0 && len(in.Records) < f.FullBatch {
		f.violate(c, "%d records sent alongside %d calls in flight", len(in.Records), f.inCalls)
	}
	return limit
}

func (f *Fake) violate(c Call, format string, args ...any) {
	f.violations = append(f.violations, fmt.Sprintf("call %d (%s): ", c.N, c.Stream)+fmt.Sprintf(format, args...))
}

func (f *Fake) leave(stream string, keys []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, k := range keys {
		if f.inflight[stream][k]--; f.inflight[stream][k] == 0 {
			delete(f.inflight[stream], k)
		}
	}
	f.inCalls--
}

func requestBytes(in *kinesis.PutRecordsInput) int {
	n := 0
	for _, e := range in.Records {
		n += len(e.Data) + len(aws.ToString(e.PartitionKey))
	}
	return n
}

// Records returns the records the fake accepted on stream, in write order.
func (f *Fake) Records(stream string) []Record {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Record(nil), f.records[stream]...)
}

// All returns the accepted records of every stream.
func (f *Fake) All() map[string][]Record {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make(map[string][]Record, len(f.records))
	for s, rs := range f.records {
		out[s] = append([]Record(nil), rs...)
	}
	return out
}

// Calls returns the number of calls to any stream (calls to a stream that does not exist excepted).
func (f *Fake) Calls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

// CallsTo returns the number of calls to stream.
func (f *Fake) CallsTo(stream string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.streamCalls[stream]
}

// BatchSizes returns the number of entries of every call, in call order.
func (f *Fake) BatchSizes() []int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]int(nil), f.batchSizes...)
}

// BatchBytes returns the request bytes (payloads plus keys) of every call, in call order.
func (f *Fake) BatchBytes() []int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]int(nil), f.batchBytes...)
}

// InFlight returns the number of calls in flight now.
func (f *Fake) InFlight() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.inCalls
}

// MaxInFlight returns the largest number of calls that were in flight at once.
func (f *Fake) MaxInFlight() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.maxInCalls
}

// Attempts returns the number of calls that carried this exact payload and reached their entries
// (calls failed as a whole by CallErr, by the context or by a limit do not count).
func (f *Fake) Attempts(data []byte) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.attempts[string(data)]
}

// Violations returns every breach of a limit or of the per-key rule seen so far.
func (f *Fake) Violations() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.violations...)
}

// TB is the part of testing.TB (and of rapid.T) that CheckViolations uses.
type TB interface {
	Helper()
	Fatalf(format string, args ...any)
}

// CheckViolations fails t when the fake saw any violation, naming the first.
func (f *Fake) CheckViolations(t TB) {
	t.Helper()
	if v := f.Violations(); len(v) > 0 {
		t.Fatalf("kinesisfake: %d violations, first: %s", len(v), v[0])
	}
}
