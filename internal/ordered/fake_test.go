package ordered

import (
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/kinesis-events/pipeline/internal/fakeclock"
	"github.com/kinesis-events/pipeline/internal/kinesisfake"
	"github.com/kinesis-events/pipeline/internal/retry"
)

type retryPolicy = retry.Policy

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// stored is one record as a stream holds it: what the tests read back from the fake
// (internal/kinesisfake) and from the emulator.
type stored struct {
	key  string
	data string
}

// written returns the records kin accepted on the tests' stream "s", in write order.
func written(kin *kinesisfake.Fake) []stored {
	var out []stored
	for _, r := range kin.Records("s") {
		out = append(out, stored{key: r.Key, data: string(r.Data)})
	}
	return out
}

func ptr[T any](v T) *T { return &v }

func newClock() *fakeclock.Clock { return fakeclock.New(time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC)) }

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
func testWriter(t testing.TB, kin Putter, clock *fakeclock.Clock, cfg WriterConfig) *Writer[*rec] {
	t.Helper()
	if cfg.Policy.Backoff.Initial == 0 {
		cfg.Policy.Backoff.Initial, cfg.Policy.Backoff.Max = 100*time.Millisecond, time.Second
	}
	cfg.Now, cfg.Sleep = clock.Now, clock.Sleep
	if fake, ok := kin.(*kinesisfake.Fake); ok {
		// Every write keeps to the Kinesis limits and the per-key rule.
		t.Cleanup(func() { fake.CheckViolations(t) })
	}
	w, err := NewWriter[*rec](NewStream(kin, "s", nil, Metrics{}).Put, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return w
}
