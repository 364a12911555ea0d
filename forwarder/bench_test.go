package forwarder

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/kinesis-events/pipeline/internal/kinesisfake"
	"github.com/kinesis-events/pipeline/internal/localstack/localstacktest"
)

// benchLines makes n NDJSON EventBridge events over customers customers, about 450 bytes each.
func benchLines(n, customers int) []byte {
	var b bytes.Buffer
	for i := range n {
		b.WriteString(bridge("page_view", detail(fmt.Sprintf("e%08d", i), fmt.Sprintf("tok_cust%05d", i%customers), i/customers+1,
			`{"path":"/products/123","referrer":"https://example.com/?q=shoes","session":"s-1234567890"}`)))
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// BenchmarkPrepare is the per-event CPU cost of deciding and building the record.
func BenchmarkPrepare(b *testing.B) {
	f := newTestForwarder(b, kinesisfake.New(), nil)
	line := bytes.TrimSpace(benchLines(1, 1))
	b.SetBytes(int64(len(line)))
	b.ReportAllocs()
	for b.Loop() {
		if e := f.prepare(newInput(line, 1, "b")); e.lane != laneRaw {
			b.Fatal("quarantined")
		}
	}
}

// BenchmarkForwardStreamFake is local mode without I/O cost: parsing, batching and accounting.
func BenchmarkForwardStreamFake(b *testing.B) {
	const n = 20000
	in := benchLines(n, 1000)
	b.SetBytes(int64(len(in)))
	for b.Loop() {
		f := newTestForwarder(b, kinesisfake.New(), nil)
		if _, err := f.ForwardStream(b.Context(), bytes.NewReader(in), StreamOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkKinesaliteForwardVsRawPut writes the same events to kinesalite twice in one run: through
// local mode (ForwardStream: parse, validate, order-safe batching, concurrency 4) and as bare
// PutRecords of the prepared records (500 per call, 4 calls in flight, no parsing, no ordering
// constraint), and reports both rates. Run with: go test -run '^$' -bench Kinesalite -benchtime 1x
func BenchmarkKinesaliteForwardVsRawPut(b *testing.B) {
	const n, customers = 20000, 1000
	st := localstacktest.Start(b)
	ctx, cancel := context.WithTimeout(b.Context(), 10*time.Minute)
	defer cancel()
	in := benchLines(n, customers)

	// The same records, prepared once, for the raw PutRecords baseline.
	prep := newTestForwarder(b, kinesisfake.New(), nil)
	var recs []types.PutRecordsRequestEntry
	for _, l := range bytes.Split(bytes.TrimSpace(in), []byte("\n")) {
		e := prep.prepare(newInput(l, 0, ""))
		recs = append(recs, types.PutRecordsRequestEntry{Data: e.data, PartitionKey: aws.String(e.key)})
	}

	var fwdTotal, rawTotal time.Duration
	for i := 0; b.Loop(); i++ {
		fwdStream, rawStream := fmt.Sprintf("bench-fwd-%d", i), fmt.Sprintf("bench-raw-%d", i)
		for _, s := range []string{fwdStream, rawStream, "bench-quarantine"} {
			if err := st.CreateStream(ctx, s, 4); err != nil {
				b.Fatal(err)
			}
		}
		f, err := New(Config{RawStream: fwdStream, QuarantineStream: "bench-quarantine"}, st.Kinesis())
		if err != nil {
			b.Fatal(err)
		}
		forward := func() {
			start := time.Now()
			res, err := f.ForwardStream(ctx, bytes.NewReader(in), StreamOptions{})
			fwdTotal += time.Since(start)
			if err != nil || res.Forwarded != n {
				b.Fatalf("%v %v", err, res)
			}
		}
		raw := func() {
			start := time.Now()
			if err := rawPut(ctx, st.Kinesis(), rawStream, recs, 4); err != nil {
				b.Fatal(err)
			}
			rawTotal += time.Since(start)
		}
		if i%2 == 0 { // alternate the order so that drift in the emulator's speed evens out
			forward()
			raw()
		} else {
			raw()
			forward()
		}
	}
	b.ReportMetric(float64(n*b.N)/fwdTotal.Seconds(), "forward_events/s")
	b.ReportMetric(float64(n*b.N)/rawTotal.Seconds(), "rawput_events/s")
	b.Logf("%d events x %d: local mode %v (%.0f events/s), raw PutRecords %v (%.0f events/s)",
		n, b.N, fwdTotal, float64(n*b.N)/fwdTotal.Seconds(), rawTotal, float64(n*b.N)/rawTotal.Seconds())
}

// rawPut writes recs in calls of 500 with conc calls in flight, retrying failed entries until none
// fail: the floor any forwarder on this emulator could reach.
func rawPut(ctx context.Context, kin *kinesis.Client, stream string, recs []types.PutRecordsRequestEntry, conc int) error {
	work := make(chan []types.PutRecordsRequestEntry)
	errs := make(chan error, conc)
	var wg sync.WaitGroup
	for range conc {
		wg.Go(func() {
			for batch := range work {
				for len(batch) > 0 {
					out, err := kin.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String(stream), Records: batch})
					if err != nil {
						errs <- err
						return
					}
					var retry []types.PutRecordsRequestEntry
					for i, r := range out.Records {
						if r.ErrorCode != nil {
							retry = append(retry, batch[i])
						}
					}
					batch = retry
				}
			}
		})
	}
	for i := 0; i < len(recs); i += MaxBatchRecords {
		select {
		case work <- recs[i:min(i+MaxBatchRecords, len(recs))]:
		case err := <-errs:
			close(work)
			wg.Wait()
			return err
		}
	}
	close(work)
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
		return nil
	}
}
