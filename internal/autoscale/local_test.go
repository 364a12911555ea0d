package autoscale

import (
	"fmt"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kinesis-events/pipeline/internal/faultproxy"
	"github.com/kinesis-events/pipeline/internal/reshard"
)

// TestLocalStack: the local wiring end to end. Writers go through the fault proxy, which enforces
// 100 records/s per shard and counts the load; the autoscaler reads that load (ProxyLoad), sees a
// one-shard stream throttled at three times its capacity, and splits it on kinesalite (which has
// no UpdateShardCount), through the proxy, whose shard map follows.
func TestLocalStack(t *testing.T) {
	ctx, st, store := leaseTable(t)
	if err := st.CreateStream(ctx, "hot", 1); err != nil {
		t.Fatal(err)
	}
	p, err := faultproxy.Start(ctx, faultproxy.Config{Upstream: st.KinesisEndpoint,
		ShardLimits: &faultproxy.ShardLimits{RecordsPerSecond: 100, BytesPerSecond: 100 << 10, Shards: st.Kinesis()}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	cfg, err := st.AWSConfig(ctx)
	if err != nil {
		t.Fatal(err)
	}
	kc := kinesis.NewFromConfig(cfg, func(o *kinesis.Options) { o.BaseEndpoint = aws.String(p.URL()) })

	// 3 s at about 1,000 records/s offered: about 100/s written, the rest throttled, however slow
	// the machine is.
	pace := time.NewTicker(100 * time.Millisecond)
	defer pace.Stop()
	start := time.Now()
	for i := 0; time.Since(start) < 3*time.Second; i++ {
		<-pace.C
		es := make([]types.PutRecordsRequestEntry, 100)
		for j := range es {
			es[j] = types.PutRecordsRequestEntry{Data: []byte("x"), PartitionKey: aws.String(fmt.Sprintf("k%d-%d", i, j))}
		}
		if _, err := kc.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String("hot"), Records: es}); err != nil {
			t.Fatal(err)
		}
	}
	c := Config{Table: store.Table, RawStream: "hot", Streams: []string{"hot"}, Policy: LocalPolicy(),
		Workers: WorkerPolicy{ShardsPerWorker: 1, MinWorkers: 1, MaxWorkers: 4}, Interval: time.Second,
		ReshardPoll: 20 * time.Millisecond, ID: "local", Registerer: prometheus.NewRegistry()}
	c.Policy.OutWindow = (time.Since(start) + 2*time.Second).Truncate(time.Second) // the whole write, whatever it took
	sc, err := New(c, kc, st.DynamoDB(), ProxyLoad{URL: p.URL()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := sc.Tick(ctx)
	if err != nil {
		t.Fatal(err)
	}
	d := rep.Decisions[0]
	if d.Action != ActionOut || d.From != 1 || d.To != 2 || !d.Applied || d.Method != reshard.MethodSplitMerge || d.Load.Throttled < 50 {
		t.Fatalf("decision %+v", d)
	}
	all, err := reshard.ListAll(ctx, st.Kinesis(), "hot")
	if err != nil {
		t.Fatal(err)
	}
	if n := len(reshard.OpenRanges(all)); n != 2 {
		t.Fatalf("%d open shards after the split, want 2", n)
	}
	if rep.Fleet == nil || rep.Fleet.Workers != 2 {
		t.Fatalf("fleet %+v", rep.Fleet)
	}
}
