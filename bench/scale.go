package bench

import (
	"math"
	"time"
)

// Kinesis and DynamoDB limits the scale model uses (AWS service quotas).
const (
	shardInRecords  = 1000    // records/s written per shard
	shardInBytes    = 1 << 20 // bytes/s written per shard
	shardOutBytes   = 2 << 20 // bytes/s read per shard (shared by its consumers)
	partitionWCU    = 1000    // write units/s per DynamoDB partition
	partitionRCU    = 3000    // read units/s per DynamoDB partition
	coreUtilisation = 0.7     // plan workers to run their cores at 70 %
	shardHeadroom   = 0.8     // plan shards at 80 % of their limits
	vCPUPerWorker   = 2
)

// ScaleInputs are the measured per-event costs the model scales.
type ScaleInputs struct {
	CPUPerEvent time.Duration // worker process CPU per event, end to end (SDK included)
	RawBytes    float64       // raw record size, data + partition key
	OutBytes    float64       // analytics record size, data + partition key
	// WriteUnits is the dedupe table's write units per event in the throughput run (its
	// customers), WriteUnitsMany the in-process figure for 1,000,000 customers (0: not measured);
	// ReadUnits its read units per event (state loads when shards open).
	WriteUnits, WriteUnitsMany, ReadUnits float64
	// TypeShare is the share of each event type in the load (the busiest type's stream sets its
	// shard count).
	TypeShare map[string]float64
}

// ScaleRow is what one target rate needs.
type ScaleRow struct {
	Rate            float64
	RawShards       int     // raw stream shards, at shardHeadroom of the write limits
	AnalyticsShards int     // shards over all analytics streams, likewise
	VCPUs           int     // worker cores at coreUtilisation
	Workers         int     // worker tasks of vCPUPerWorker cores
	ReadMBps        float64 // raw stream read per shard (MiB/s), against the 2 MiB/s limit
	// DedupeWCU and DedupeRCU are the dedupe table's units per second at the measured figures,
	// DedupeWCUMany at the 1,000,000-customer figure.
	DedupeWCU, DedupeWCUMany, DedupeRCU float64
	// DedupePartitions is the table's partitions for the larger write load.
	DedupePartitions int
}

// ScaleRates are the rates of the model's table.
var ScaleRates = []float64{10_000, 100_000, 1_000_000}

// scaleModel computes the table for rates from the measured inputs.
func scaleModel(in ScaleInputs, rates []float64) []ScaleRow {
	rows := make([]ScaleRow, 0, len(rates))
	for _, r := range rates {
		row := ScaleRow{Rate: r}
		row.RawShards = shardsFor(r, in.RawBytes)
		for _, share := range in.TypeShare {
			row.AnalyticsShards += shardsFor(r*share, in.OutBytes)
		}
		if len(in.TypeShare) == 0 {
			row.AnalyticsShards = shardsFor(r, in.OutBytes)
		}
		row.ReadMBps = r * in.RawBytes / float64(row.RawShards) / (1 << 20)
		cores := r * in.CPUPerEvent.Seconds() / coreUtilisation
		row.VCPUs = int(math.Ceil(cores))
		row.Workers = max(1, int(math.Ceil(cores/vCPUPerWorker)))
		row.DedupeWCU, row.DedupeWCUMany, row.DedupeRCU = r*in.WriteUnits, r*in.WriteUnitsMany, r*in.ReadUnits
		row.DedupePartitions = max(1, int(math.Ceil(max(row.DedupeWCU/partitionWCU, row.DedupeWCUMany/partitionWCU, row.DedupeRCU/partitionRCU))))
		rows = append(rows, row)
	}
	return rows
}

// shardsFor is the shards a stream needs for rate records/s of size bytes, at shardHeadroom.
func shardsFor(rate, size float64) int {
	need := max(rate/shardInRecords, rate*size/shardInBytes) / shardHeadroom
	return max(1, int(math.Ceil(need)))
}
