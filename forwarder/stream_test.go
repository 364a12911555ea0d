package forwarder

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/awslabs/kinesis-aggregation/go/v2/deaggregator"

	"github.com/kinesis-events/pipeline/event"
	"github.com/kinesis-events/pipeline/internal/kinesisfake"
	"github.com/kinesis-events/pipeline/internal/names"
	"github.com/kinesis-events/pipeline/internal/poll"
)

// genInput makes n events over customers, seq per customer from 1, in input order.
func genInput(n, customers int) (string, map[string][]uint64) {
	var b strings.Builder
	want := map[string][]uint64{}
	for i := range n {
		c := fmt.Sprintf("c%03d", i%customers)
		seq := uint64(len(want[c]) + 1)
		want[c] = append(want[c], seq)
		b.WriteString(goodLine(fmt.Sprintf("e%06d", i), c, int(seq)))
		b.WriteByte('\n')
	}
	return b.String(), want
}

// checkOrder asserts the raw stream holds exactly want: every event once, each customer in order.
func checkOrder(t *testing.T, recs []fakeRecord, want map[string][]uint64) {
	t.Helper()
	got := map[string][]uint64{}
	for _, r := range recs {
		c, seq, _ := rawIDs(t, r.data)
		if c != r.key {
			t.Fatalf("partition key %q for customer %q", r.key, c)
		}
		got[c] = append(got[c], seq)
	}
	if len(got) != len(want) {
		t.Fatalf("%d customers written, want %d", len(got), len(want))
	}
	for c, w := range want {
		if fmt.Sprint(got[c]) != fmt.Sprint(w) {
			t.Fatalf("customer %s: written %v, want %v", c, got[c], w)
		}
	}
}

func noViolations(t *testing.T, kin *kinesisfake.Fake) {
	t.Helper()
	if v := kin.Violations(); len(v) > 0 {
		t.Fatalf("%d violations, first: %s", len(v), v[0])
	}
}

// TestForwardStreamBatchesWithinLimits holds the first call until everything is read: the calls
// after it must be full batches of 500 distinct customers.
func TestForwardStreamBatchesWithinLimits(t *testing.T) {
	in, want := genInput(2400, 1200)
	kin := kinesisfake.New()
	kin.Gate = make(chan struct{})
	f := newTestForwarder(t, kin, func(c *Config) { c.Concurrency = 1 })
	done := make(chan struct{})
	var (
		res Result
		err error
	)
	go func() {
		defer close(done)
		res, err = f.ForwardStream(t.Context(), strings.NewReader(in), StreamOptions{})
	}()
	poll.True(t, 10*time.Second, time.Millisecond, "2400 records read", func() bool { return f.Stats().Read == 2400 })
	close(kin.Gate)
	<-done
	if err != nil {
		t.Fatal(err)
	}
	if res.Forwarded != 2400 || res.Lines != 2400 || res.Failed != 0 || res.DoneThrough != 2400 {
		t.Fatalf("result %+v", res)
	}
	checkOrder(t, written(kin, names.RawStream), want)
	noViolations(t, kin)
	sizes := kin.BatchSizes()
	for i, n := range sizes[1 : len(sizes)-1] {
		if n != MaxBatchRecords {
			t.Fatalf("batch %d has %d records: %v", i+1, n, sizes)
		}
	}
}

func TestForwardStreamRespectsByteLimit(t *testing.T) {
	// 7 events of ~300 KiB with a 1 MiB batch limit: batches of at most 3.
	var b strings.Builder
	want := map[string][]uint64{}
	big := `{"pad":[` + strings.Repeat(`"`+strings.Repeat("y", 8000)+`",`, 38) + `1]}`
	for i := range 7 {
		c := fmt.Sprintf("c%02d", i)
		want[c] = []uint64{1}
		b.WriteString(bridge("page_view", detail(fmt.Sprintf("e%d", i), c, 1, big)) + "\n")
	}
	kin := kinesisfake.New()
	kin.Gate = make(chan struct{})
	f := newTestForwarder(t, kin, func(c *Config) { c.BatchBytes, c.Concurrency = MaxRecordBytes, 1 })
	done := make(chan struct{})
	var (
		res Result
		err error
	)
	go func() {
		defer close(done)
		res, err = f.ForwardStream(t.Context(), strings.NewReader(b.String()), StreamOptions{})
	}()
	poll.True(t, 10*time.Second, time.Millisecond, "7 records read", func() bool { return f.Stats().Read == 7 })
	close(kin.Gate)
	<-done
	if err != nil || res.Forwarded != 7 {
		t.Fatalf("%v %+v", err, res)
	}
	noViolations(t, kin)
	checkOrder(t, written(kin, names.RawStream), want)
	for _, n := range kin.BatchBytes() {
		if n > MaxRecordBytes {
			t.Fatalf("batch of %d bytes over the 1 MiB limit", n)
		}
	}
	sizes := kin.BatchSizes()
	for i, n := range sizes[1:] {
		if n > 3 || (n != 3 && i+2 < len(sizes)) {
			t.Fatalf("batch sizes %v: want full batches of 3", sizes)
		}
	}
}

func TestForwardStreamHotCustomerKeepsOrder(t *testing.T) {
	// One customer only: every call carries one record, in order.
	in, want := genInput(50, 1)
	kin := kinesisfake.New()
	f := newTestForwarder(t, kin, nil)
	if _, err := f.ForwardStream(t.Context(), strings.NewReader(in), StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	noViolations(t, kin)
	checkOrder(t, written(kin, names.RawStream), want)
}

// TestForwardStreamConcurrentCallsCarryFullBatches: a call that is not full goes out only when no
// other call is in flight, so concurrency is spent on whole batches (few customers, most of them in
// flight, used to give calls of a few records each), and order holds.
func TestForwardStreamConcurrentCallsCarryFullBatches(t *testing.T) {
	in, want := genInput(3000, 1000)
	kin := kinesisfake.New()
	kin.Latency = 20 * time.Millisecond // slower than reading a batch, so batches fill while calls are out
	kin.FullBatch = 100
	f := newTestForwarder(t, kin, func(c *Config) { c.Concurrency, c.BatchSize = 4, 100 })
	res, err := f.ForwardStream(t.Context(), strings.NewReader(in), StreamOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Forwarded != 3000 {
		t.Fatalf("result %+v", res)
	}
	noViolations(t, kin)
	checkOrder(t, written(kin, names.RawStream), want)
	if kin.MaxInFlight() < 2 {
		t.Fatalf("never more than %d calls in flight", kin.MaxInFlight())
	}
	t.Logf("%d calls for 3000 events, at most %d in flight", len(kin.BatchSizes()), kin.MaxInFlight())
}

// TestReadAheadGrowsWhileItFindsCustomers: past a full batch per call, the read-ahead takes more
// input only while what it reads can go out soon (its customer has nothing pending, or only the
// event it then waits behind), or while fewer than one event waits per customer on average.
func TestReadAheadGrowsWhileItFindsCustomers(t *testing.T) {
	const batch, calls, maxPending = 100, 2, 1600 // MaxPending's default: 8 batches per call
	const third = maxPending / 3
	for _, tc := range []struct {
		name      string
		customer  func(i int) string
		aggregate bool
		want      int // entries taken before canAccept says no
	}{
		{"ten customers in turn", func(i int) string { return fmt.Sprintf("c%d", i%10) }, false, batch * calls},
		// Aggregated, a customer's waiting events go out together in its next record.
		{"ten customers in turn, aggregated", func(i int) string { return fmt.Sprintf("c%d", i%10) }, true, maxPending},
		{"every event another customer", func(i int) string { return fmt.Sprintf("c%d", i) }, false, maxPending},
		// The second event of each customer goes out as soon as its first is written.
		{"two events per customer", func(i int) string { return fmt.Sprintf("c%d", i%(maxPending/2)) }, false, maxPending},
		// The third of each waits two round trips: reading stops once 3 in 4 of the last batch's
		// worth are third events (the first 2*third entries are one per customer at most waiting).
		{"three events per customer", func(i int) string { return fmt.Sprintf("c%d", i%third) }, false, 2*third + batch*3/4 + 1},
		// A hot customer does not stop the search while 1 in 4 events is another's.
		{"hot customer, 1 in 3 another's", func(i int) string {
			if i%3 == 0 {
				return fmt.Sprintf("c%d", i)
			}
			return "hot"
		}, false, maxPending},
		{"hot customer, 1 in 10 another's", func(i int) string {
			if i%10 == 0 {
				return fmt.Sprintf("c%d", i)
			}
			return "hot"
		}, false, batch * calls},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newTestForwarder(t, kinesisfake.New(), func(c *Config) {
				c.BatchSize, c.Concurrency, c.AggregateKeys = batch, calls, tc.aggregate
			})
			if f.cfg.MaxPending != maxPending {
				t.Fatalf("MaxPending %d", f.cfg.MaxPending)
			}
			r, err := f.newRun(StreamOptions{})
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for ; n < 2*maxPending && r.canAccept(); n++ {
				r.add(f.prepare(newInput([]byte(goodLine(fmt.Sprintf("e%d", n), tc.customer(n), n+1)), int64(n+1), "t")))
			}
			if n != tc.want {
				t.Fatalf("took %d entries, want %d", n, tc.want)
			}
		})
	}
}

// TestForwardStreamFewCustomers: with a few customers and slow calls, the read-ahead stops and
// resumes many times; every event is written once, in order.
func TestForwardStreamFewCustomers(t *testing.T) {
	in, want := genInput(1000, 5)
	kin := kinesisfake.New()
	kin.Latency = time.Millisecond
	f := newTestForwarder(t, kin, func(c *Config) { c.BatchSize, c.Concurrency = 2, 2 })
	res, err := f.ForwardStream(t.Context(), strings.NewReader(in), StreamOptions{})
	if err != nil || res.Forwarded != 1000 || res.DoneThrough != 1000 {
		t.Fatalf("%v %+v", err, res)
	}
	noViolations(t, kin)
	checkOrder(t, written(kin, names.RawStream), want)
}

// TestForwardStreamRetriesOnlyFailedEntries fails entries and whole calls at random (seeded) and
// checks that everything arrives exactly once, in order per customer, with retries carrying only
// what failed.
func TestForwardStreamRetriesOnlyFailedEntries(t *testing.T) {
	for _, conc := range []int{1, 8} {
		t.Run(fmt.Sprintf("concurrency %d", conc), func(t *testing.T) {
			in, want := genInput(1500, 97)
			kin := kinesisfake.New()
			kin.Latency = time.Millisecond
			kin.EntryErr = func(e kinesisfake.Entry) string {
				h := fnv.New32a()
				h.Write(e.Data)
				switch v := (h.Sum32() + uint32(e.Attempt)*7919) % 10; {
				case e.Attempt < 4 && v < 2:
					return "ProvisionedThroughputExceededException"
				case e.Attempt < 4 && v < 3:
					return "InternalFailure"
				}
				return ""
			}
			kin.CallErr = func(c kinesisfake.Call) error {
				h := fnv.New32a()
				fmt.Fprint(h, c.N)
				if h.Sum32()%7 == 0 { // one call in 7, not periodic
					return &types.ProvisionedThroughputExceededException{Message: ptr("throttled")}
				}
				return nil
			}
			f := newTestForwarder(t, kin, func(c *Config) { c.Concurrency, c.BatchSize, c.MaxAttempts = conc, 20, 20 })
			res, err := f.ForwardStream(t.Context(), strings.NewReader(in), StreamOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if res.Forwarded != 1500 || res.Retries == 0 || res.Throttles == 0 || res.Failed != 0 {
				t.Fatalf("result %+v", res)
			}
			noViolations(t, kin)
			checkOrder(t, written(kin, names.RawStream), want)
			if conc > 1 && kin.MaxInFlight() < 2 {
				t.Fatalf("never more than %d calls in flight", kin.MaxInFlight())
			}
			if kin.MaxInFlight() > conc {
				t.Fatalf("%d calls in flight, limit %d", kin.MaxInFlight(), conc)
			}
		})
	}
}

func TestForwardStreamQuarantinesBadLinesWithLineNumbers(t *testing.T) {
	in := lines(goodLine("e1", "c1", 1), `not json`, ``, goodLine("e2", "c1", 2), `{"detail-type":"x","detail":{}}`, "\xff\xfe")
	kin := kinesisfake.New()
	f := newTestForwarder(t, kin, nil)
	res, err := f.ForwardStream(t.Context(), strings.NewReader(in), StreamOptions{Source: "events.ndjson"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Lines != 6 || res.Blank != 1 || res.Forwarded != 2 || res.Quarantined != 3 || res.DoneThrough != 6 {
		t.Fatalf("result %+v", res)
	}
	if res.QuarantinedBy[event.ReasonNotJSON] != 1 || res.QuarantinedBy[event.ReasonMissingField] != 1 || res.QuarantinedBy[event.ReasonInvalidUTF8] != 1 {
		t.Fatalf("by reason %v", res.QuarantinedBy)
	}
	details := map[string]bool{}
	for _, r := range written(kin, names.QuarantineStream) {
		details[decodeQuarantine(t, r.data).Detail[:len("events.ndjson:2")]] = true
	}
	for _, l := range []string{"events.ndjson:2", "events.ndjson:5", "events.ndjson:6"} {
		if !details[l] {
			t.Fatalf("no quarantine record for %s: %v", l, details)
		}
	}
}

func TestForwardStreamLongLinesAndCRLF(t *testing.T) {
	huge := strings.Repeat("x", 5<<20)
	in := goodLine("e1", "c1", 1) + "\r\n" + huge + "\n" + goodLine("e2", "c1", 2) // no final newline
	kin := kinesisfake.New()
	f := newTestForwarder(t, kin, nil)
	res, err := f.ForwardStream(t.Context(), strings.NewReader(in), StreamOptions{})
	if err != nil || res.Forwarded != 2 || res.Quarantined != 1 || res.QuarantinedBy[event.ReasonTooLarge] != 1 {
		t.Fatalf("%v %+v", err, res)
	}
	q := decodeQuarantine(t, written(kin, names.QuarantineStream)[0].data)
	if !strings.Contains(q.Detail, fmt.Sprint(5<<20)) || len(q.Original) != maxTooLargeOriginal {
		t.Fatalf("detail %q, original %d bytes", q.Detail, len(q.Original))
	}
}

// TestForwardStreamGivesUpInOrder: one customer's entries always fail. Its first event fails after
// MaxAttempts and its later events are failed without being written; everyone else is forwarded.
func TestForwardStreamGivesUpInOrder(t *testing.T) {
	in, want := genInput(300, 10) // c000 holds lines 1, 11, 21, ...
	kin := kinesisfake.New()
	kin.EntryErr = func(e kinesisfake.Entry) string {
		if e.Key == "c003" {
			return "InternalFailure"
		}
		return ""
	}
	var failed bytes.Buffer
	f := newTestForwarder(t, kin, func(c *Config) { c.MaxAttempts = 3 })
	res, err := f.ForwardStream(t.Context(), strings.NewReader(in), StreamOptions{FailedOut: &failed})
	if !errors.Is(err, ErrNotForwarded) {
		t.Fatalf("error %v", err)
	}
	if res.Failed != 30 || res.Forwarded != 270 || res.DoneThrough != 3 {
		t.Fatalf("result %+v", res)
	}
	if res.FailedLines[0] != 4 || len(res.FailedLines) != 30 {
		t.Fatalf("failed lines %v", res.FailedLines)
	}
	delete(want, "c003")
	checkOrder(t, written(kin, names.RawStream), want)
	// c003's events come out for replay, complete and in order.
	var seqs []uint64
	for _, l := range strings.Split(strings.TrimSpace(failed.String()), "\n") {
		e := f.prepare(newInput([]byte(l), 0, ""))
		c, seq, _ := rawIDs(t, e.data)
		if c != "c003" {
			t.Fatalf("failed-out has %s", c)
		}
		seqs = append(seqs, seq)
	}
	if len(seqs) != 30 || seqs[0] != 1 || seqs[29] != 30 {
		t.Fatalf("failed-out seqs %v", seqs)
	}
	for i := range seqs[1:] {
		if seqs[i+1] != seqs[i]+1 {
			t.Fatalf("failed-out out of order: %v", seqs)
		}
	}
	if kin.Attempts(f.prepare(newInput([]byte(goodLine("e000013", "c003", 2)), 0, "")).data) != 0 {
		t.Fatal("a later event of the failed customer was sent")
	}
}

func TestForwardStreamFatalErrorStops(t *testing.T) {
	in, _ := genInput(5000, 100)
	kin := kinesisfake.New()
	kin.CallErr = func(kinesisfake.Call) error {
		return &types.ResourceNotFoundException{Message: ptr("Stream events-raw not found")}
	}
	f := newTestForwarder(t, kin, nil)
	res, err := f.ForwardStream(t.Context(), strings.NewReader(in), StreamOptions{})
	if !errors.Is(err, ErrFatalPut) || !errors.Is(err, ErrNotForwarded) {
		t.Fatalf("error %v", err)
	}
	if res.Forwarded != 0 || res.Failed == 0 || res.Failed+res.Blank != res.Lines || kin.Calls() > f.cfg.Concurrency {
		t.Fatalf("result %+v after %d calls", res, kin.Calls())
	}
}

// TestForwardStreamCancelDrains cancels while calls are held in flight: the run stops sending, the
// held calls finish (they count as written), and every line read is accounted for.
func TestForwardStreamCancelDrains(t *testing.T) {
	for _, release := range []bool{true, false} {
		t.Run(fmt.Sprintf("calls answer %v", release), func(t *testing.T) {
			kin := kinesisfake.New()
			kin.Gate = make(chan struct{})
			f := newTestForwarder(t, kin, func(c *Config) { c.BatchSize, c.DrainTimeout = 10, 200*time.Millisecond })
			ctx, cancel := context.WithCancel(t.Context())
			pr, pw := io.Pipe()
			defer pw.Close()
			go func() {
				in, _ := genInput(1000, 1000)
				_, _ = io.WriteString(pw, in) // fails once the test ends and closes the pipe
			}()
			type out struct {
				res Result
				err error
			}
			done := make(chan out, 1)
			go func() {
				res, err := f.ForwardStream(ctx, pr, StreamOptions{})
				done <- out{res, err}
			}()
			kin.Gate <- struct{}{} // one call through, then hold the next ones in flight
			poll.True(t, 10*time.Second, time.Millisecond, "every call in flight", func() bool { return kin.InFlight() == f.cfg.Concurrency })
			cancel()
			if release {
				close(kin.Gate)
			}
			var o out
			select {
			case o = <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("run did not stop after cancel")
			}
			if !errors.Is(o.err, context.Canceled) {
				t.Fatalf("error %v", o.err)
			}
			r := o.res
			landed := int64(len(written(kin, names.RawStream)))
			if r.Forwarded != landed || r.Forwarded == 0 {
				t.Fatalf("forwarded %d, stream has %d", r.Forwarded, landed)
			}
			if r.Forwarded+r.Quarantined+r.Failed+r.Blank != r.Lines || (!release && r.Failed == 0) {
				t.Fatalf("unaccounted lines: %+v", r)
			}
			if !release && r.Forwarded > 10 { // only the first call (<= 10 records) went through
				t.Fatalf("forwarded %d with calls held", r.Forwarded)
			}
			if r.DoneThrough > r.Forwarded {
				t.Fatalf("done through %d", r.DoneThrough)
			}
		})
	}
}

func TestForwardBatchAndEvents(t *testing.T) {
	kin := kinesisfake.New()
	f := newTestForwarder(t, kin, nil)
	res, err := f.ForwardBatch(t.Context(), [][]byte{[]byte(goodLine("e1", "c1", 1)), []byte("{"), []byte(goodLine("e2", "c1", 2))}, StreamOptions{Source: "loadgen"})
	if err != nil || res.Forwarded != 2 || res.Quarantined != 1 {
		t.Fatalf("%v %+v", err, res)
	}
	if q := decodeQuarantine(t, written(kin, names.QuarantineStream)[0].data); !strings.HasPrefix(q.Detail, "loadgen:2: ") {
		t.Fatalf("detail %q", q.Detail)
	}
	evs := []event.BridgeEvent{
		{DetailType: "purchase", Source: "s", Detail: []byte(detail("e3", "c1", 3, ""))},
		{DetailType: "", Source: "s", Detail: []byte(detail("e4", "c1", 4, ""))},
	}
	res, err = f.ForwardEvents(t.Context(), evs, StreamOptions{})
	if err != nil || res.Forwarded != 1 || res.QuarantinedBy[event.ReasonMissingField] != 1 {
		t.Fatalf("%v %+v", err, res)
	}
	if s := f.Stats(); s.Forwarded != 3 || s.Quarantined != 2 || s.Read != 5 {
		t.Fatalf("stats %+v", s)
	}
}

func TestForwardStreamReadError(t *testing.T) {
	kin := kinesisfake.New()
	f := newTestForwarder(t, kin, nil)
	r := io.MultiReader(strings.NewReader(lines(goodLine("e1", "c1", 1))), &failingReader{})
	res, err := f.ForwardStream(t.Context(), r, StreamOptions{Source: "f.ndjson"})
	if err == nil || !strings.Contains(err.Error(), "read f.ndjson") || res.Forwarded != 1 {
		t.Fatalf("%v %+v", err, res)
	}
}

type failingReader struct{}

func (*failingReader) Read([]byte) (int, error) { return 0, errors.New("disk on fire") }

// dropResent removes the records byte for byte the same as an earlier one (one write sent twice)
// and returns how many it removed.
func dropResent(recs []fakeRecord) ([]fakeRecord, int) {
	seen := map[string]bool{}
	kept := recs[:0:0]
	for _, r := range recs {
		if seen[string(r.data)] {
			continue
		}
		seen[string(r.data)] = true
		kept = append(kept, r)
	}
	return kept, len(recs) - len(kept)
}

// TestForwardStreamCountsUnknownOutcomes: a call that landed but whose answer was lost is sent
// again; its entries are counted as unknown outcomes (one attempt), and they are the only copies.
func TestForwardStreamCountsUnknownOutcomes(t *testing.T) {
	in, want := genInput(200, 97)
	kin := kinesisfake.New()
	kin.LoseAnswer = func(c kinesisfake.Call) bool { return c.N == 2 }
	f := newTestForwarder(t, kin, func(c *Config) { c.Concurrency, c.BatchSize = 1, 20 })
	res, err := f.ForwardStream(t.Context(), strings.NewReader(in), StreamOptions{})
	if err != nil {
		t.Fatal(err)
	}
	second := kin.BatchSizes()[1]
	if res.Forwarded != 200 || res.Failed != 0 || res.Unknown != int64(second) || f.Stats().Unknown != res.Unknown {
		t.Fatalf("result %v (stats %d unknown), want 200 forwarded and the %d entries of call 2 unknown", res, f.Stats().Unknown, second)
	}
	kept, resent := dropResent(written(kin, names.RawStream))
	if resent != second {
		t.Fatalf("%d copies in the stream, want the %d entries of the call whose answer was lost", resent, second)
	}
	checkOrder(t, kept, want)
}

// TestForwardStreamFatalEntryNotRetried: an entry Kinesis refuses for good (its KMS key is
// disabled) fails at once, without the retries a transient failure gets, and takes its customer's
// later events with it; the run goes on for everyone else.
func TestForwardStreamFatalEntryNotRetried(t *testing.T) {
	in, want := genInput(100, 10)
	kin := kinesisfake.New()
	kin.EntryErr = func(e kinesisfake.Entry) string {
		if e.Key == "c005" {
			return "KMSDisabledException"
		}
		return ""
	}
	f := newTestForwarder(t, kin, func(c *Config) { c.MaxAttempts = 5 })
	res, err := f.ForwardStream(t.Context(), strings.NewReader(in), StreamOptions{})
	if !errors.Is(err, ErrNotForwarded) || !strings.Contains(err.Error(), "KMSDisabledException") {
		t.Fatalf("error %v", err)
	}
	if res.Failed != 10 || res.Forwarded != 90 || res.Retries != 0 {
		t.Fatalf("result %+v", res)
	}
	if n := kin.Attempts(f.prepare(newInput([]byte(goodLine("e000005", "c005", 1)), 0, "")).data); n != 1 {
		t.Fatalf("the refused entry was sent %d times, want once", n)
	}
	delete(want, "c005")
	checkOrder(t, written(kin, names.RawStream), want)
}

// TestForwardStreamAggregatesWaitingEvents: with AggregateKeys a customer's events that wait behind
// its record in flight go out as one KPL aggregate, so a hot customer is not held to one event per
// call. With entries throttled and failed at random, each event is in the stream exactly once
// after de-aggregation (as the KCL does it), in order per customer, and aggregates were used.
func TestForwardStreamAggregatesWaitingEvents(t *testing.T) {
	var b strings.Builder
	want := map[string][]uint64{}
	for i := range 2000 {
		c := "hot"
		if i%4 == 3 {
			c = fmt.Sprintf("c%02d", i%50)
		}
		seq := uint64(len(want[c]) + 1)
		want[c] = append(want[c], seq)
		b.WriteString(goodLine(fmt.Sprintf("e%06d", i), c, int(seq)) + "\n")
	}
	kin := kinesisfake.New()
	kin.Latency = 2 * time.Millisecond
	kin.EntryErr = func(e kinesisfake.Entry) string {
		h := fnv.New32a()
		h.Write(e.Data)
		if e.Attempt < 3 && (h.Sum32()+uint32(e.Attempt)*7919)%5 == 0 {
			return "ProvisionedThroughputExceededException"
		}
		return ""
	}
	f := newTestForwarder(t, kin, func(c *Config) { c.AggregateKeys, c.Concurrency, c.BatchSize, c.MaxAttempts = true, 4, 50, 10 })
	res, err := f.ForwardStream(t.Context(), strings.NewReader(b.String()), StreamOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Forwarded != 2000 || res.Failed != 0 || res.Throttles == 0 {
		t.Fatalf("result %+v", res)
	}
	noViolations(t, kin)
	stored := written(kin, names.RawStream)
	var recs []fakeRecord
	for _, r := range stored {
		out, err := deaggregator.DeaggregateRecords([]types.Record{{Data: r.data, PartitionKey: &r.key}})
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range out {
			recs = append(recs, fakeRecord{key: *o.PartitionKey, data: o.Data})
		}
	}
	checkOrder(t, recs, want)
	if len(stored) >= len(recs)/2 {
		t.Fatalf("%d records written for %d events: the hot customer's were not aggregated", len(stored), len(recs))
	}
	if st := f.Stats(); st.Aggregated < int64(len(recs)-len(stored)) {
		t.Fatalf("stats count %d events sent inside aggregates; at least %d were", st.Aggregated, len(recs)-len(stored))
	}
	t.Logf("%d records written for %d events in %d calls", len(stored), len(recs), len(kin.BatchSizes()))
}

// TestLineSet holds lineSet to a map of lines through random adds, a rising floor and clearAbove.
func TestLineSet(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 200 {
		var s lineSet
		model := map[int64]bool{}
		floor := int64(0)
		for range 500 {
			switch op := rng.IntN(10); {
			case op < 6:
				l := floor + 1 + rng.Int64N(300)
				s.add(l)
				model[l] = true
			case op < 8:
				floor += rng.Int64N(100)
				s.forgetThrough(floor)
				for l := range model {
					if l <= floor {
						delete(model, l)
					}
				}
			case op < 9:
				c := floor + rng.Int64N(300)
				s.clearAbove(c)
				for l := range model {
					if l > c {
						delete(model, l)
					}
				}
			}
			for l := floor + 1; l <= floor+400; l++ {
				if s.has(l) != model[l] {
					t.Fatalf("round %d: line %d (floor %d): has %v, want %v", round, l, floor, s.has(l), model[l])
				}
			}
		}
	}
}
