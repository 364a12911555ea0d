package forwarder

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/kinesis-events/pipeline/event"
	"github.com/kinesis-events/pipeline/internal/kinesisfake"
	"github.com/kinesis-events/pipeline/internal/localstack"
	"github.com/kinesis-events/pipeline/internal/localstack/localstacktest"
)

// backend is a Kinesis the contract runs against, and a way to read back what a stream holds
// (each partition key's records in write order).
type backend struct {
	kin  Kinesis
	read func(t *testing.T, stream string) []fakeRecord
	// create makes the streams; a fresh name per run keeps runs on one emulator apart.
	create func(t *testing.T, raw, quarantine string)
}

func fakeBackend() backend {
	k := kinesisfake.New()
	k.Streams = map[string]bool{}
	return backend{
		kin:  k,
		read: func(_ *testing.T, s string) []fakeRecord { return written(k, s) },
		create: func(_ *testing.T, raw, quarantine string) {
			k.Set(func(k *kinesisfake.Fake) { k.Streams[raw], k.Streams[quarantine] = true, true })
		},
	}
}

func kinesaliteBackend(t *testing.T, st *localstack.Stack) backend {
	return backend{
		kin: st.Kinesis(),
		read: func(t *testing.T, stream string) []fakeRecord {
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			recs, err := st.ReadAll(ctx, stream)
			if err != nil {
				t.Fatal(err)
			}
			out := make([]fakeRecord, len(recs))
			for i, r := range recs {
				out[i] = fakeRecord{key: aws.ToString(r.Record.PartitionKey), data: r.Record.Data}
			}
			return out
		},
		create: func(t *testing.T, raw, quarantine string) {
			ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
			defer cancel()
			if err := st.CreateStream(ctx, raw, 4); err != nil {
				t.Fatal(err)
			}
			if err := st.CreateStream(ctx, quarantine, 1); err != nil {
				t.Fatal(err)
			}
		},
	}
}

// runContract is the behaviour every backend must show: good events reach the raw stream once each,
// partitioned by customer, in order per customer; bad ones reach the quarantine stream with their
// reason; one event through Invoke; a missing stream is a fatal error, not a retry loop.
func runContract(t *testing.T, b backend) {
	raw, quar := "contract-raw", "contract-quarantine"
	b.create(t, raw, quar)
	f := newTestForwarder(t, b.kin, func(c *Config) {
		c.RawStream, c.QuarantineStream, c.BatchSize, c.Concurrency = raw, quar, 50, 3
		c.Now = time.Now
	})
	in, want := genInput(600, 37)
	bad := []string{`not json`, bridge("page_view", detail("x1", "", 1, "")), strings.Replace(goodLine("x2", "c1", 1), `"seq":1`, `"seq":1,"seq":1`, 1)}
	in += strings.Join(bad, "\n") + "\n"
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	res, err := f.ForwardStream(ctx, strings.NewReader(in), StreamOptions{Source: "contract"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Forwarded != 600 || res.Quarantined != 3 || res.DoneThrough != 603 {
		t.Fatalf("result %v", res)
	}
	t.Logf("local mode: %d calls, %d entries sent again, %d throttled", res.Batches, res.Retries, res.Throttles)
	o, err := f.Handle(ctx, event.BridgeEvent{DetailType: "purchase", Source: "s", Detail: []byte(detail("e-lambda", "c-lambda", 1, ""))})
	if err != nil || o.Status != StatusForwarded || o.ShardID == "" || o.SequenceNumber == "" {
		t.Fatalf("%v %+v", err, o)
	}
	want["c-lambda"] = []uint64{1}
	// A PutRecords whose answer was lost is sent again (by the SDK or the forwarder): only the entries
	// the forwarder counted as such may be in the stream twice, byte for byte.
	written, resent := dropResent(b.read(t, raw))
	if unknown := f.Stats().Unknown; int64(resent) > unknown {
		t.Fatalf("%d records written twice, but only %d entries had an unknown outcome", resent, unknown)
	} else if resent > 0 {
		t.Logf("%d records written twice after %d entries had an unknown outcome", resent, unknown)
	}
	checkOrder(t, written, want)
	reasons := map[event.Reason]int{}
	for _, r := range b.read(t, quar) {
		q := decodeQuarantine(t, r.data)
		reasons[q.Reason]++
		if !strings.HasPrefix(q.Detail, "contract:60") {
			t.Fatalf("quarantine detail %q", q.Detail)
		}
	}
	if fmt.Sprint(reasons) != fmt.Sprint(map[event.Reason]int{event.ReasonNotJSON: 1, event.ReasonMissingField: 1, event.ReasonDuplicateKey: 1}) {
		t.Fatalf("quarantine reasons %v", reasons)
	}

	missing := newTestForwarder(t, b.kin, func(c *Config) { c.RawStream = "no-such-stream-" + raw })
	_, err = missing.Invoke(ctx, []byte(goodLine("e1", "c1", 1)))
	if !errors.Is(err, ErrFatalPut) || !errors.Is(err, ErrNotWritten) {
		t.Fatalf("missing stream: %v", err)
	}
}

func TestContractFake(t *testing.T) { runContract(t, fakeBackend()) }

// TestContractKinesalite runs the contract against the real emulator, through the client the
// command builds from the SDK's environment conventions, with each encoding of PutRecords.
func TestContractKinesalite(t *testing.T) {
	for _, wire := range []Wire{WireCBOR, WireJSON} {
		t.Run(string(wire), func(t *testing.T) {
			st := localstacktest.Start(t) // the contract's streams have fixed names
			for _, kv := range st.Env() {
				k, v, _ := strings.Cut(kv, "=")
				t.Setenv(k, v)
			}
			b := kinesaliteBackend(t, st)
			kin, err := NewKinesisClientWire(t.Context(), 10*time.Second, wire)
			if err != nil {
				t.Fatal(err)
			}
			b.kin = kin
			runContract(t, b)
		})
	}
}
