package bench

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/kinesis-events/pipeline/forwarder"
)

// The cost model prices a billion events through the stack deploy/ creates, from the calls, bytes
// and CPU per event the same `make bench` run measured. Prices are AWS list prices for us-east-1
// (US East, N. Virginia), on-demand, without free tiers, savings plans or volume tiers, as read on
// 2026-12-02 from the AWS pricing pages of each service (and cross-checked against third-party
// summaries of them dated 2026). Change them here; BENCHMARKS.md lists them.
const (
	priceDate   = "2026-12-02"
	priceRegion = "us-east-1"

	eventBridgePerMillion       = 1.00  // custom events put to a bus, per million 64 KB chunks
	eventBridgeArchivePerGB     = 0.10  // events archived
	eventBridgeArchiveGBMonth   = 0.023 // archive storage
	lambdaPerMillionRequests    = 0.20
	lambdaArmPerGBSecond        = 0.0000133334
	kinesisShardHour            = 0.015
	kinesisPutUnitsPerMillion   = 0.014 // PUT payload units of 25 KB
	dynamoWritePerMillion       = 0.625 // on-demand write request units
	dynamoReadPerMillion        = 0.125 // on-demand read request units
	dynamoWCUHour               = 0.00065
	dynamoRCUHour               = 0.00013
	fargateArmVCPUHour          = 0.03238
	fargateArmGBHour            = 0.00356
	cloudTrailMgmtPer100k       = 2.00 // management events, a copy after the account's first
	cloudTrailDataPer100k       = 0.10 // data events
	natGatewayHour              = 0.045
	natGatewayPerGB             = 0.045
	endpointHourPerAZ           = 0.01 // interface endpoint, per AZ
	endpointPerGB               = 0.01
	cloudWatchMetricMonth       = 0.30 // custom metric
	cloudWatchAlarmMetricMonth  = 0.10 // standard-resolution alarm, per metric it reads
	cloudWatchDashboardMonth    = 3.00
	cloudWatchLogsPerGB         = 0.50 // ingestion (Lambda's vended logs start at the same price)
	cloudWatchLogsStorageGBMo   = 0.03
	hoursPerMonth               = 730.0
	gib                         = 1 << 30
	kinesisPutUnitBytes         = 25 << 10
	eventBridgeChunkBytes       = 64 << 10
	dynamoProvisionedHeadroom   = 0.7          // provisioned capacity planned at 70 % utilisation
	fargateTargetCPU            = 0.6          // the stack's CPU target tracking (deploy/infra/fleet.go)
	lambdaVCPUAtMemory          = 256.0 / 1769 // Lambda's CPU share at 256 MB (a full vCPU at 1,769 MB)
	lambdaMemoryGB              = 0.25
	flowLogBytesPerTaskPerHour  = 50 * 2 * 6 * 150
	kinesisReadsPerSecondPerShd = 5.0 // the KCL's GetRecords cap per shard (a batch each when busy)
)

// StackSettings are the deploy/ defaults the model follows (deploy/infra/config.go, fleet.go,
// forwarder.go, alarms.go, collector.go, autoscaler.go), and its assumptions where the bench cannot measure.
type StackSettings struct {
	RawShards, AnalyticsStreams, SideStreams int
	MinWorkers                               int
	WorkerVCPU, WorkerMemoryGB               float64
	AZs, InterfaceEndpoints, NATGateways     int
	ArchiveRetentionDays, LogRetentionDays   int
	Alarms, AlarmMetrics, CustomMetrics      int
	Dashboards                               int
	// LambdaPutLatency is the wall time an invocation waits for its PutRecords in the region: not
	// measurable here (assumed).
	LambdaPutLatency time.Duration
	// LeaseTableScanRRU is the read units of one Scan of the lease table (a few dozen rows of under
	// 1 KB: one 4 KB page, eventually consistent).
	LeaseTableScanRRU float64
	// EMFEvery is how long a forwarder environment gathers clean invocations' counts into one
	// metrics line (FORWARDER_METRICS_EVERY; 0: a line per invocation).
	EMFEvery time.Duration
	// PlatformLogBytes are the Lambda system log lines per invocation (start, report): 0 with the
	// stack's system log level WARN, ~500 bytes at Lambda's default INFO.
	PlatformLogBytes float64
}

// DefaultStack is what `make deploy` creates with only the required settings.
func DefaultStack() StackSettings {
	return StackSettings{
		RawShards: 4, AnalyticsStreams: 7, SideStreams: 3, MinWorkers: 2, WorkerVCPU: 0.5, WorkerMemoryGB: 1,
		AZs: 2, InterfaceEndpoints: 8, NATGateways: 0, ArchiveRetentionDays: 7, LogRetentionDays: 30,
		Alarms: 20, AlarmMetrics: 40, CustomMetrics: 70, Dashboards: 1,
		LambdaPutLatency: 15 * time.Millisecond, LeaseTableScanRRU: 0.5,
		EMFEvery: forwarder.DefaultMetricsEvery, PlatformLogBytes: 0,
	}
}

// CostInputs are the measured per-event figures the model prices.
type CostInputs struct {
	// Rate is the steady event rate the hourly and monthly charges are spread over.
	Rate float64
	// EventBytes is the EventBridge event (the forwarder's input); RawBytes and OutBytes the raw
	// and analytics records (data and partition key); OutRecords the records the worker writes per
	// event.
	EventBytes, RawBytes, OutBytes, OutRecords float64
	// TypeShare is each event type's share (the busiest analytics stream sets its shards).
	TypeShare map[string]float64
	// WorkerCPU and ForwarderCPU are process CPU per event (the forwarder's in local mode).
	WorkerCPU, ForwarderCPU time.Duration
	// DedupeWriteUnits and DedupeReadUnits are the dedupe table's units per event as billed.
	DedupeWriteUnits, DedupeReadUnits float64
	// KinesisWireBytes are the worker's Kinesis bytes per event on the wire, both ways (through
	// the Kinesis interface endpoint).
	KinesisWireBytes float64
	// WorkerLogBytes are the worker's log bytes per event; EMFBytes the forwarder's metrics line
	// per invocation; MetricsBytes one scrape of a worker's /metrics (an upper bound of what the
	// collector sidecar writes to CloudWatch Logs each minute).
	WorkerLogBytes, EMFBytes, MetricsBytes float64
	// IdleCalls are a worker's requests per second by "Service.Operation" while it held IdleShards
	// shards with nothing to read.
	IdleCalls  map[string]float64
	IdleShards int
	// PutCallsPerBatch is the worker's PutRecords calls per GetRecords batch (data events option).
	PutCallsPerBatch float64
}

// CostLine is one component's price per billion events.
type CostLine struct {
	Component  string
	PerBillion float64
	// Yardstick marks EventBridge itself; Option a line not in the default stack (not summed).
	Yardstick, Option bool
	How               string // the formula with its figures
}

// CostModel is the priced stack at one rate.
type CostModel struct {
	Inputs CostInputs
	Stack  StackSettings
	Lines  []CostLine
	// EventBridge is the yardstick's price per billion events, Rest the sum of every other line of
	// the default stack, Ratio their quotient.
	EventBridge, Rest, Ratio float64
	// Shards, Workers and LambdaConcurrency size the stack at the rate.
	RawShards, AnalyticsShards, Workers int
	LambdaConcurrency                   float64
}

// managementOps are the calls of the worker that CloudTrail records as management events (the
// rest of what it calls are data events: reads and writes of records and items).
var managementOps = map[string]bool{
	"Kinesis.ListShards": true, "Kinesis.DescribeStream": true, "Kinesis.DescribeStreamSummary": true,
	"Kinesis.ListStreams": true, "DynamoDB.DescribeTable": true, "DynamoDB.ListTables": true,
	"DynamoDB.CreateTable": true, "DynamoDB.DescribeTimeToLive": true,
}

// leaseWriteOps and leaseReadOps are the lease table's calls (the dedupe table's are priced from
// the pipeline's own unit counters).
var (
	leaseWriteOps = map[string]bool{"DynamoDB.UpdateItem": true, "DynamoDB.DeleteItem": true}
	leaseReadOps  = map[string]bool{"DynamoDB.GetItem": true}
)

// costModel prices a billion events at in.Rate through the stack st.
func costModel(in CostInputs, st StackSettings) CostModel {
	m := CostModel{Inputs: in, Stack: st}
	hours := 1e9 / in.Rate / 3600 // hours a billion events take
	add := func(comp string, v float64, how string, a ...any) {
		m.Lines = append(m.Lines, CostLine{Component: comp, PerBillion: v, How: fmt.Sprintf(how, a...)})
	}
	opt := func(comp string, v float64, how string, a ...any) {
		m.Lines = append(m.Lines, CostLine{Component: comp, PerBillion: v, Option: true, How: fmt.Sprintf(how, a...)})
	}
	gbPerBillion := func(bytesPerEvent float64) float64 { return 1e9 * bytesPerEvent / gib }

	// EventBridge, the yardstick.
	chunks := math.Max(1, math.Ceil(in.EventBytes/eventBridgeChunkBytes))
	m.EventBridge = 1e3 * chunks * eventBridgePerMillion
	m.Lines = append(m.Lines, CostLine{Component: "EventBridge (yardstick)", PerBillion: m.EventBridge, Yardstick: true,
		How: fmt.Sprintf("1e9 events x %.0f chunk of 64 KB x $%.2f/M", chunks, eventBridgePerMillion)})
	archGB := gbPerBillion(in.EventBytes)
	add("EventBridge archive", archGB*eventBridgeArchivePerGB+archGB*float64(st.ArchiveRetentionDays)/30.4*eventBridgeArchiveGBMonth,
		"%.0f GB archived (%.0f B/event) x $%.2f + %d days stored x $%.3f/GB-month", archGB, in.EventBytes, eventBridgeArchivePerGB, st.ArchiveRetentionDays, eventBridgeArchiveGBMonth)

	// Lambda: one asynchronous invocation per event (EventBridge invokes per event).
	invocation := st.LambdaPutLatency + time.Duration(float64(in.ForwarderCPU)/lambdaVCPUAtMemory)
	billedMs := math.Ceil(float64(invocation) / float64(time.Millisecond))
	m.LambdaConcurrency = in.Rate * billedMs / 1000
	add("Lambda (forwarder)", 1e3*lambdaPerMillionRequests+1e9*lambdaMemoryGB*billedMs/1000*lambdaArmPerGBSecond,
		"1e9 requests x $%.2f/M + %.0f ms billed (PutRecords %s assumed + %s CPU at a 256 MB share) x 0.25 GB x $%.10f/GB-s",
		lambdaPerMillionRequests, billedMs, st.LambdaPutLatency, us(in.ForwarderCPU), lambdaArmPerGBSecond)

	// Kinesis: shard hours at the shards the rate needs (at least the stack's), PUT payload units.
	m.RawShards = max(st.RawShards, shardsFor(in.Rate, in.RawBytes))
	rawUnits := math.Max(1, math.Ceil(in.RawBytes/kinesisPutUnitBytes))
	add("Kinesis raw stream", float64(m.RawShards)*hours*kinesisShardHour+1e3*rawUnits*kinesisPutUnitsPerMillion,
		"%d shards x %.1f h x $%.3f + 1e9 x %.0f PUT unit x $%.3f/M", m.RawShards, hours, kinesisShardHour, rawUnits, kinesisPutUnitsPerMillion)
	streams := 0
	for _, share := range in.TypeShare {
		m.AnalyticsShards += shardsFor(in.Rate*share, in.OutBytes)
		streams++
	}
	// Streams without traffic in the load (analytics-other) keep their one shard, as do the side
	// streams (quarantine, DLQ, late).
	outShards := m.AnalyticsShards + max(0, st.AnalyticsStreams-streams) + st.SideStreams
	outUnits := math.Max(1, math.Ceil(in.OutBytes/kinesisPutUnitBytes)) * in.OutRecords
	add("Kinesis output streams", float64(outShards)*hours*kinesisShardHour+1e3*outUnits*kinesisPutUnitsPerMillion,
		"%d shards (%d analytics + %d idle analytics + %d side) x %.1f h x $%.3f + 1e9 x %.2f PUT units x $%.3f/M",
		outShards, m.AnalyticsShards, max(0, st.AnalyticsStreams-streams), st.SideStreams, hours, kinesisShardHour, outUnits, kinesisPutUnitsPerMillion)

	// DynamoDB dedupe table: on demand (the stack's), provisioned as an option.
	add("DynamoDB dedupe (on demand)", 1e3*(in.DedupeWriteUnits*dynamoWritePerMillion+in.DedupeReadUnits*dynamoReadPerMillion),
		"1e9 x (%.4f WRU x $%.3f/M + %.4f RRU x $%.3f/M)", in.DedupeWriteUnits, dynamoWritePerMillion, in.DedupeReadUnits, dynamoReadPerMillion)
	wcu, rcu := math.Ceil(in.Rate*in.DedupeWriteUnits/dynamoProvisionedHeadroom), math.Ceil(math.Max(1, in.Rate*in.DedupeReadUnits/dynamoProvisionedHeadroom))
	opt("DynamoDB dedupe (provisioned, option)", (wcu*dynamoWCUHour+rcu*dynamoRCUHour)*hours,
		"%.0f WCU + %.0f RCU (at 70 %%) x %.1f h x $%.5f / $%.5f", wcu, rcu, hours, dynamoWCUHour, dynamoRCUHour)

	// Lease table: a checkpoint per batch (the KCL reads each busy shard at most 5 times a second),
	// renewals and reads as measured idle, scans per worker.
	m.Workers = workersFor(in, st, m.RawShards)
	perShard := func(ops map[string]bool) float64 {
		var v float64
		for op, rate := range in.IdleCalls {
			if ops[op] {
				v += rate / float64(max(1, in.IdleShards))
			}
		}
		return v
	}
	leaseWrites := float64(m.RawShards) * (kinesisReadsPerSecondPerShd + perShard(leaseWriteOps))
	leaseReads := float64(m.RawShards)*perShard(leaseReadOps) + float64(m.Workers)*in.IdleCalls["DynamoDB.Scan"]*st.LeaseTableScanRRU
	secs := hours * 3600
	add("DynamoDB lease table (on demand)", secs*(leaseWrites*dynamoWritePerMillion+leaseReads*dynamoReadPerMillion)/1e6,
		"%.1f writes/s (a checkpoint per batch, 5 batches/s per shard, + renewals %.2f/s per shard measured) and %.1f reads/s x %.0f s",
		leaseWrites, perShard(leaseWriteOps), leaseReads, secs)

	// Fargate: tasks of the stack's size at its CPU target, at least the minimum.
	taskHour := st.WorkerVCPU*fargateArmVCPUHour + st.WorkerMemoryGB*fargateArmGBHour
	add("Fargate (workers)", float64(m.Workers)*hours*taskHour,
		"%d tasks (%s CPU/event x %.0f ev/s at %.0f %% of %.1f vCPU, min %d) x %.1f h x $%.5f", m.Workers, us(in.WorkerCPU), in.Rate,
		100*fargateTargetCPU, st.WorkerVCPU, st.MinWorkers, hours, taskHour)

	// CloudTrail: management events (the stack's trail); data events as the option.
	var mgmt float64
	for op, rate := range in.IdleCalls {
		if managementOps[op] {
			mgmt += rate
		}
	}
	mgmtEvents := mgmt * float64(m.Workers) * secs
	add("CloudTrail management events", mgmtEvents/1e5*cloudTrailMgmtPer100k,
		"%.2f control-plane calls/s per worker (measured) x %d workers x %.0f s = %.0f events x $%.2f/100k (a copy after the account's first; the first is free)",
		mgmt, m.Workers, secs, mgmtEvents, cloudTrailMgmtPer100k)
	batchesPerEvent := float64(m.RawShards) * kinesisReadsPerSecondPerShd / in.Rate
	dataPerEvent := 2 + batchesPerEvent*(1+in.PutCallsPerBatch)
	opt("CloudTrail data events (auditDataEvents, option)", 1e9*dataPerEvent/1e5*cloudTrailDataPer100k,
		"%.3f data events/event (invocation + forwarder PutRecords + %.4f GetRecords and %.4f PutRecords of the workers) x $%.2f/100k",
		dataPerEvent, batchesPerEvent, batchesPerEvent*in.PutCallsPerBatch, cloudTrailDataPer100k)

	// Network: interface endpoints (per AZ-hour, per GB), NAT gateways as the option.
	logGB := gbPerBillion(in.WorkerLogBytes) + float64(m.Workers)*hours*60*in.MetricsBytes/gib
	endGB := gbPerBillion(in.KinesisWireBytes) + logGB
	add("VPC interface endpoints", float64(st.InterfaceEndpoints*st.AZs)*hours*endpointHourPerAZ+endGB*endpointPerGB,
		"%d endpoints x %d AZs x %.1f h x $%.2f + %.0f GB (Kinesis %.0f B/event measured, logs) x $%.2f",
		st.InterfaceEndpoints, st.AZs, hours, endpointHourPerAZ, endGB, in.KinesisWireBytes, endpointPerGB)
	opt("NAT gateways (natGateways=2, option)", 2*hours*natGatewayHour,
		"2 x %.1f h x $%.3f; no GB through them: every AWS call goes through an endpoint (per GB $%.3f)", hours, natGatewayHour, natGatewayPerGB)

	// CloudWatch: the Lambda's log lines, the workers' logs, metrics sidecar, flow logs; metrics,
	// alarms, dashboard.
	// A busy environment runs 1000/billedMs invocations a second and writes a line every EMFEvery
	// (the lines of invocations that were not clean, quarantines and retries, are not in a clean
	// load's price).
	emfLines := 1.0
	if st.EMFEvery > 0 {
		emfLines = min(1, billedMs/1000/st.EMFEvery.Seconds())
	}
	lambdaGB := gbPerBillion(in.EMFBytes*emfLines + st.PlatformLogBytes)
	flowGB := float64(m.Workers) * hours * flowLogBytesPerTaskPerHour / gib
	allGB := lambdaGB + logGB + flowGB
	months := hours / hoursPerMonth
	add("CloudWatch", allGB*cloudWatchLogsPerGB+allGB*float64(st.LogRetentionDays)/30.4*cloudWatchLogsStorageGBMo+
		months*(float64(st.CustomMetrics)*cloudWatchMetricMonth+float64(st.AlarmMetrics)*cloudWatchAlarmMetricMonth+float64(st.Dashboards)*cloudWatchDashboardMonth),
		"logs %.0f GB (forwarder %.0f B EMF line measured x %.5f lines per invocation (one per %s) + %.0f B platform lines per invocation: %.0f GB; workers %.1f B/event + /metrics %.0f KB/min per task; flow logs) x ($%.2f + %d days x $%.2f/GB-month) + %.3f months x (%d metrics x $%.2f + %d alarm metrics x $%.2f + $%.0f dashboard)",
		allGB, in.EMFBytes, emfLines, st.EMFEvery, st.PlatformLogBytes, lambdaGB, in.WorkerLogBytes, in.MetricsBytes/1024, cloudWatchLogsPerGB, st.LogRetentionDays, cloudWatchLogsStorageGBMo,
		months, st.CustomMetrics, cloudWatchMetricMonth, st.AlarmMetrics, cloudWatchAlarmMetricMonth, cloudWatchDashboardMonth)

	for _, l := range m.Lines {
		if !l.Yardstick && !l.Option {
			m.Rest += l.PerBillion
		}
	}
	if m.EventBridge > 0 {
		m.Ratio = m.Rest / m.EventBridge
	}
	return m
}

// workersFor is the worker tasks the rate needs at the stack's CPU target, between the minimum and
// the raw shards (a worker without a lease has nothing to do).
func workersFor(in CostInputs, st StackSettings, rawShards int) int {
	need := int(math.Ceil(in.Rate * in.WorkerCPU.Seconds() / (st.WorkerVCPU * fargateTargetCPU)))
	return min(max(st.MinWorkers, need), max(rawShards, st.MinWorkers))
}

// biggest returns the components sorted by price, largest first (options and the yardstick left out).
func (m CostModel) biggest() []CostLine {
	var ls []CostLine
	for _, l := range m.Lines {
		if !l.Yardstick && !l.Option {
			ls = append(ls, l)
		}
	}
	sort.SliceStable(ls, func(i, j int) bool { return ls[i].PerBillion > ls[j].PerBillion })
	return ls
}

// summary is one line: the rest against the yardstick and the three largest parts.
func (m CostModel) summary() string {
	var parts []string
	for _, l := range m.biggest()[:min(3, len(m.biggest()))] {
		parts = append(parts, fmt.Sprintf("%s $%.0f", l.Component, l.PerBillion))
	}
	return fmt.Sprintf("$%.0f vs EventBridge $%.0f per billion events at %.0f events/s (largest: %s)", m.Rest, m.EventBridge, m.Inputs.Rate, strings.Join(parts, ", "))
}
