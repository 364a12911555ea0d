package forwarder

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

// fakeKinesis is an in-memory Kinesis PutRecords that enforces the service limits and the
// forwarder's ordering promise (no partition key twice in one call or in two calls at once), and
// fails calls or entries as a test scripts it.
type fakeKinesis struct {
	// callErr, when set, may fail a whole call (n counts calls from 1).
	callErr func(n int, stream string, keys []string) error
	// entryErr, when set, may fail one entry with an error code; attempt counts the calls that
	// carried this exact data before, from 1.
	entryErr func(stream, key string, data []byte, attempt int) string
	// gate, when set, is received from before each call answers (to hold calls in flight).
	gate chan struct{}
	// latency is the simulated service time of a call.
	latency time.Duration
	// streams, when set, lists the streams that exist; others answer ResourceNotFoundException.
	streams map[string]bool
	// lostAnswer, when set, makes call n write its records and then fail as if its answer was lost
	// (the outcome is reported unknown, as the SDK middleware would).
	lostAnswer func(n int) bool

	mu         sync.Mutex
	calls      int
	records    map[string][]fakeRecord // written, in write order, per stream
	attempts   map[string]int          // data -> calls that carried it
	inflight   map[string]bool         // keys in calls in flight
	inCalls    int
	maxInCalls int
	// fullBatch, when set, makes a call of fewer records that starts while another is in flight a
	// violation (local mode sends only full batches alongside a call in flight).
	fullBatch  int
	violations []string
	batchSizes []int
	batchBytes []int
	seq        int
}

type fakeRecord struct {
	key  string
	data []byte
}

func newFake() *fakeKinesis {
	return &fakeKinesis{records: map[string][]fakeRecord{}, attempts: map[string]int{}, inflight: map[string]bool{}}
}

func (k *fakeKinesis) PutRecords(ctx context.Context, in *kinesis.PutRecordsInput, _ ...func(*kinesis.Options)) (*kinesis.PutRecordsOutput, error) {
	stream := aws.ToString(in.StreamName)
	keys := make([]string, len(in.Records))
	k.mu.Lock()
	if k.streams != nil && !k.streams[stream] {
		k.mu.Unlock()
		return nil, &types.ResourceNotFoundException{Message: aws.String("Stream " + stream + " not found")}
	}
	k.calls++
	n := k.calls
	total := 0
	seen := map[string]bool{}
	for i, r := range in.Records {
		key := aws.ToString(r.PartitionKey)
		keys[i] = key
		size := len(r.Data) + len(key)
		total += size
		if size > MaxRecordBytes {
			k.violations = append(k.violations, fmt.Sprintf("call %d: record of %d bytes", n, size))
		}
		if key == "" || len(key) > 256 {
			k.violations = append(k.violations, fmt.Sprintf("call %d: partition key length %d", n, len(key)))
		}
		if seen[key] {
			k.violations = append(k.violations, fmt.Sprintf("call %d: key %s twice in one call", n, key))
		}
		seen[key] = true
		if k.inflight[key] {
			k.violations = append(k.violations, fmt.Sprintf("call %d: key %s already in flight", n, key))
		}
	}
	if len(in.Records) == 0 || len(in.Records) > MaxBatchRecords || total > MaxBatchBytes {
		k.violations = append(k.violations, fmt.Sprintf("call %d: %d records, %d bytes", n, len(in.Records), total))
	}
	if k.fullBatch > 0 && k.inCalls > 0 && len(in.Records) < k.fullBatch {
		k.violations = append(k.violations, fmt.Sprintf("call %d: %d records sent alongside %d calls in flight", n, len(in.Records), k.inCalls))
	}
	for _, key := range keys {
		k.inflight[key] = true
	}
	k.batchSizes = append(k.batchSizes, len(in.Records))
	k.batchBytes = append(k.batchBytes, total)
	k.inCalls++
	k.maxInCalls = max(k.maxInCalls, k.inCalls)
	k.mu.Unlock()

	defer func() {
		k.mu.Lock()
		for _, key := range keys {
			delete(k.inflight, key)
		}
		k.inCalls--
		k.mu.Unlock()
	}()
	if k.gate != nil {
		select {
		case <-k.gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if k.latency > 0 {
		t := time.NewTimer(k.latency)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		}
	}
	if k.callErr != nil {
		if err := k.callErr(n, stream, keys); err != nil {
			return nil, err
		}
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	out := &kinesis.PutRecordsOutput{}
	for i, r := range in.Records {
		k.attempts[string(r.Data)]++
		if k.entryErr != nil {
			if code := k.entryErr(stream, keys[i], r.Data, k.attempts[string(r.Data)]); code != "" {
				out.Records = append(out.Records, types.PutRecordsResultEntry{ErrorCode: aws.String(code), ErrorMessage: aws.String("scripted")})
				c := int32(1)
				if out.FailedRecordCount != nil {
					c += *out.FailedRecordCount
				}
				out.FailedRecordCount = &c
				continue
			}
		}
		k.seq++
		k.records[stream] = append(k.records[stream], fakeRecord{key: keys[i], data: append([]byte(nil), r.Data...)})
		out.Records = append(out.Records, types.PutRecordsResultEntry{ShardId: aws.String("shardId-000000000000"), SequenceNumber: aws.String(strconv.Itoa(k.seq))})
	}
	if k.lostAnswer != nil && k.lostAnswer(n) {
		ambiguous.Note(ctx)
		return nil, errors.New("deserialization failed: read tcp: use of closed network connection")
	}
	return out, nil
}

func (k *fakeKinesis) written(stream string) []fakeRecord {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]fakeRecord(nil), k.records[stream]...)
}

func (k *fakeKinesis) checkViolations() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]string(nil), k.violations...)
}
