package ordered

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"go.uber.org/goleak"

	"github.com/kinesis-events/pipeline/internal/ambiguous"
	"github.com/kinesis-events/pipeline/internal/retry"
)

type retryPolicy = retry.Policy

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeKinesis is a Putter that stores what it accepts, checks the request limits and the per-key
// rule (no key twice in one call, nor in two calls at once), and fails what the test scripts.
type fakeKinesis struct {
	// callErr may fail call n (from 1) as a whole, before anything is written.
	callErr func(n int) error
	// entryErr may fail entry i of call n with an error code.
	entryErr func(n, i int, key string) string
	// lose makes call n write its records, then fail as if its answer was cut off (an unknown
	// outcome, as the SDK middleware would note it).
	lose func(n int) bool
	// hook runs at the start of every call.
	hook func(ctx context.Context, n int)

	mu         sync.Mutex
	calls      int
	stored     []stored
	inflight   map[string]bool
	violations []string
	sizes      []int
}

type stored struct {
	key  string
	data string
}

func newFake() *fakeKinesis { return &fakeKinesis{inflight: map[string]bool{}} }

func (f *fakeKinesis) PutRecords(ctx context.Context, in *kinesis.PutRecordsInput, _ ...func(*kinesis.Options)) (*kinesis.PutRecordsOutput, error) {
	f.mu.Lock()
	f.calls++
	n := f.calls
	total := 0
	seen := map[string]bool{}
	keys := make([]string, len(in.Records))
	for i, e := range in.Records {
		k := *e.PartitionKey
		keys[i] = k
		total += len(e.Data) + len(k)
		if seen[k] {
			f.violations = append(f.violations, fmt.Sprintf("call %d: key %s twice", n, k))
		}
		if f.inflight[k] {
			f.violations = append(f.violations, fmt.Sprintf("call %d: key %s in another call", n, k))
		}
		if len(e.Data)+len(k) > MaxRecordBytes || k == "" {
			f.violations = append(f.violations, fmt.Sprintf("call %d: record of %d bytes, key %q", n, len(e.Data)+len(k), k))
		}
		seen[k] = true
		f.inflight[k] = true
	}
	if len(in.Records) == 0 || len(in.Records) > MaxRecords || total > MaxCallBytes {
		f.violations = append(f.violations, fmt.Sprintf("call %d: %d records, %d bytes", n, len(in.Records), total))
	}
	f.sizes = append(f.sizes, len(in.Records))
	hook, callErr, entryErr, lose := f.hook, f.callErr, f.entryErr, f.lose
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		for _, k := range keys {
			delete(f.inflight, k)
		}
		f.mu.Unlock()
	}()
	if hook != nil {
		hook(ctx, n)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if callErr != nil {
		if err := callErr(n); err != nil {
			return nil, err
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	out := &kinesis.PutRecordsOutput{Records: make([]types.PutRecordsResultEntry, len(in.Records))}
	failed := int32(0)
	for i, e := range in.Records {
		if entryErr != nil {
			if code := entryErr(n, i, keys[i]); code != "" {
				out.Records[i] = types.PutRecordsResultEntry{ErrorCode: &code, ErrorMessage: ptr("scripted")}
				failed++
				continue
			}
		}
		f.stored = append(f.stored, stored{key: keys[i], data: string(e.Data)})
		out.Records[i] = types.PutRecordsResultEntry{ShardId: ptr("shardId-000000000000"), SequenceNumber: ptr(strconv.Itoa(len(f.stored)))}
	}
	out.FailedRecordCount = &failed
	if lose != nil && lose(n) {
		ambiguous.Note(ctx)
		return nil, errors.New("deserialization failed: read tcp: use of closed network connection")
	}
	return out, nil
}

func (f *fakeKinesis) written() []stored {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]stored(nil), f.stored...)
}

func (f *fakeKinesis) callCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

func (f *fakeKinesis) checkViolations(t interface {
	Helper()
	Fatalf(format string, args ...any)
}) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.violations) > 0 {
		t.Fatalf("%d violations, first: %s", len(f.violations), f.violations[0])
	}
}

func ptr[T any](v T) *T { return &v }

// fakeClock advances only when slept on, and records every sleep.
type fakeClock struct {
	mu    sync.Mutex
	now   time.Time
	slept []time.Duration
	// onSleep runs (unlocked) after every sleep.
	onSleep func(d time.Duration)
}

func newClock() *fakeClock { return &fakeClock{now: time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.slept = append(c.slept, d)
	hook := c.onSleep
	c.mu.Unlock()
	if hook != nil {
		hook(d)
	}
	return ctx.Err()
}

func (c *fakeClock) sleeps() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Duration(nil), c.slept...)
}

// rec is the test's Item.
type rec struct{ r Record }

func (x *rec) Rec() *Record { return &x.r }

func newRec(key, data string) *rec { return &rec{r: Record{Key: key, Data: []byte(data), ID: data}} }

// counter is a Counter for the tests.
type counter struct {
	mu sync.Mutex
	n  float64
}

func (c *counter) Add(v float64) {
	c.mu.Lock()
	c.n += v
	c.mu.Unlock()
}

func (c *counter) value() float64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// writer builds a Writer on a fake clock through a Stream on kin.
func testWriter(t testing.TB, kin Putter, clock *fakeClock, cfg WriterConfig) *Writer[*rec] {
	t.Helper()
	if cfg.Policy.Backoff.Initial == 0 {
		cfg.Policy.Backoff.Initial, cfg.Policy.Backoff.Max = 100*time.Millisecond, time.Second
	}
	cfg.Now, cfg.Sleep = clock.Now, clock.Sleep
	w, err := NewWriter[*rec](NewStream(kin, "s", nil, Metrics{}).Put, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return w
}
