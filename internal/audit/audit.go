// Package audit reads the pipeline's output streams and checks them against what was sent: every
// unique valid event exactly once, in the stream of its type, in per-customer seq order. It is used by
// the end-to-end and chaos tests and by `make run` for its live progress and summary.
//
// A Tail polls every shard of every stream it watches (closed parent shards included) from
// TRIM_HORIZON; Observe-side state is guarded by one mutex, so Snapshot may be called from any
// goroutine while Run is polling.
//
// Analytics streams may hold KPL aggregates (the worker's AGGREGATE_KEYS): a Tail de-aggregates
// them with kinesis-aggregation's deaggregator, as a KCL consumer would, and judges the records
// inside one by one, in their order; an aggregate that does not de-aggregate (a bad MD5, bad
// protobuf) is reported in WrongStream, never skipped. Quarantine and DLQ records are read as they
// are: they are never aggregated.
package audit

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"sort"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/awslabs/kinesis-aggregation/go/v2/deaggregator"

	"github.com/kinesis-events/pipeline/event"
	"github.com/kinesis-events/pipeline/internal/ordered"
)

// Kinesis is the part of the Kinesis API a Tail uses.
type Kinesis interface {
	ListShards(ctx context.Context, in *kinesis.ListShardsInput, o ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error)
	GetShardIterator(ctx context.Context, in *kinesis.GetShardIteratorInput, o ...func(*kinesis.Options)) (*kinesis.GetShardIteratorOutput, error)
	GetRecords(ctx context.Context, in *kinesis.GetRecordsInput, o ...func(*kinesis.Options)) (*kinesis.GetRecordsOutput, error)
}

// Expected describes one unique valid event that was sent.
type Expected struct {
	EventID    string
	Type       string
	CustomerID string
	Seq        uint64
}

// Kind says how a watched stream's records are read.
type Kind int

// Stream kinds.
const (
	Analytics  Kind = iota // event.Analytics records (per-type streams, late stream)
	Quarantine             // event.Quarantine records
	DeadLetter             // event.DeadLetter records
	Raw                    // the raw stream, read only by SplitAtRaw
)

// Tail follows a set of streams.
type Tail struct {
	kc      Kinesis
	streams map[string]Kind
	// routes maps event type to the stream it must arrive in; types not in it go to fallback.
	routes   map[string]string
	fallback string

	mu          sync.Mutex
	shards      map[string]*shardCursor // stream/shard -> cursor
	perStream   map[string]int
	aggregated  int               // analytics records read inside KPL aggregates
	seen        map[string]int    // event id -> deliveries to analytics streams
	firstHash   map[string]uint64 // event id -> hash of its first delivered record's bytes
	resent      int               // deliveries byte-identical to their event's first one
	wrongStream []string
	lastSeq     map[string]map[string]uint64 // stream -> customer -> last seq delivered
	orderViol   int
	late        int
	gaps        uint64
	quarantined map[event.Reason]int
	qseen       map[[sha256.Size]byte]struct{} // quarantine records seen, by content
	qresent     int                            // quarantine records byte-identical to one seen before
	dead        map[string]int
	firstAt     time.Time
	lastAt      time.Time
	latencies   []time.Duration // forwarded_at -> approximate arrival in the analytics stream
	seconds     map[int64]*Second
	firstFrom   map[string]string // event id -> where and when its first delivery was processed
	dupExamples []string          // the first few duplicates that were processed twice
	follow      string            // a customer whose first deliveries are counted (Follow)
	followed    Followed
	arrivals    map[uint64]time.Time // the followed customer's first deliveries by seq (Follow)
}

type shardCursor struct {
	stream, shard string
	iter          *string
	closed        bool
	last          string // sequence number of the last record read ("" before the first)
}

// NewTail watches streams; routes and fallback say where each type must land (for the wrong-stream
// check).
func NewTail(kc Kinesis, streams map[string]Kind, routes map[string]string, fallback string) *Tail {
	return &Tail{
		kc: kc, streams: streams, routes: routes, fallback: fallback,
		shards: map[string]*shardCursor{}, perStream: map[string]int{}, seen: map[string]int{}, firstHash: map[string]uint64{},
		lastSeq: map[string]map[string]uint64{}, quarantined: map[event.Reason]int{}, qseen: map[[sha256.Size]byte]struct{}{}, dead: map[string]int{},
		seconds: map[int64]*Second{}, firstFrom: map[string]string{},
	}
}

// Second is one second of first deliveries to the analytics streams, by arrival time.
type Second struct {
	At        int64 // Unix second of the arrivals
	Delivered int   // first deliveries that arrived in it
	// MaxDelay is the largest arrival - occurred_at among them: from the producer to the analytics
	// stream (meaningful when producers stamp occurred_at as they send, as loadgen does with a
	// profile). MaxForward is the largest arrival - forwarded_at: the pipeline's own delay.
	MaxDelay, MaxForward time.Duration
	// MaxWrite is the largest arrival - processed_at (the start of the worker's batch that released
	// the event): that batch's dedupe calls and its write to the analytics stream, retries of
	// throttled entries included. What MaxForward adds to it is the way to that batch: the raw
	// write, the wait in the raw shard, the read, and the reorder hold.
	MaxWrite time.Duration
	// MaxFollowed is MaxDelay among the followed customer's deliveries (see Follow).
	MaxFollowed time.Duration
	// Worst is the delivery with the largest MaxForward, to be split at its raw record's arrival
	// (SplitAtRaw).
	Worst Delivery
}

// Delivery is one first delivery's way through the pipeline: forwarded_at, the raw record it was
// read from (source_shard, source_seq), processed_at and its arrival in the analytics stream.
// RawArrived is the raw record's ApproximateArrivalTimestamp, zero until SplitAtRaw found it.
type Delivery struct {
	Forwarded, Processed, Arrived time.Time
	SourceShard, SourceSeq        string
	RawArrived                    time.Time
}

// Queued is raw arrival - forwarded_at: the forwarder's queue and its PutRecords, throttled
// re-sends included. Zero while the raw arrival is unknown.
func (d Delivery) Queued() time.Duration {
	if d.RawArrived.IsZero() || d.Forwarded.IsZero() {
		return 0
	}
	return d.RawArrived.Sub(d.Forwarded)
}

// Held is processed_at - raw arrival: the wait in the raw shard, the read, the worker's queue and
// the reorder hold, up to the start of the batch that released the event. Zero while unknown.
func (d Delivery) Held() time.Duration {
	if d.RawArrived.IsZero() || d.Processed.IsZero() {
		return 0
	}
	return d.Processed.Sub(d.RawArrived)
}

// Timeline returns the seconds with first deliveries, in order.
func (t *Tail) Timeline() []Second {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]Second, 0, len(t.seconds))
	for _, s := range t.seconds {
		out = append(out, *s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].At < out[j].At })
	return out
}

// SplitAtRaw reads every shard of the raw stream (closed parents included) from its trim horizon
// once, and sets Worst.RawArrived of every second seen so far from the raw record each worst
// delivery was read from. Call it after the run: it reads the whole stream.
func (t *Tail) SplitAtRaw(ctx context.Context, stream string) error {
	t.mu.Lock()
	want := map[string][]*Second{}
	for _, s := range t.seconds {
		if w := s.Worst; w.SourceSeq != "" {
			k := w.SourceShard + "/" + w.SourceSeq
			want[k] = append(want[k], s)
		}
	}
	t.mu.Unlock()
	raw := NewTail(t.kc, map[string]Kind{stream: Raw}, nil, "")
	if err := raw.discover(ctx); err != nil {
		return err
	}
	for _, c := range raw.shards {
		for c.iter != nil {
			out, err := t.kc.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: c.iter, Limit: aws.Int32(10000)})
			if err != nil {
				return fmt.Errorf("get records %s/%s: %w", stream, c.shard, err)
			}
			t.mu.Lock()
			for _, r := range out.Records {
				for _, s := range want[c.shard+"/"+aws.ToString(r.SequenceNumber)] {
					s.Worst.RawArrived = aws.ToTime(r.ApproximateArrivalTimestamp)
				}
			}
			t.mu.Unlock()
			c.iter = out.NextShardIterator
			if len(out.Records) == 0 {
				// At the tip of an open shard (a closed one ends with a nil iterator).
				break
			}
		}
	}
	return nil
}

// Followed is what a Tail counted of the customer given to Follow: its first deliveries and the
// arrival times of the first and the last of them.
type Followed struct {
	Customer    string
	Delivered   int
	First, Last time.Time
}

// Follow makes the tail count the first deliveries of customer (call before polling).
func (t *Tail) Follow(customer string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.follow, t.followed, t.arrivals = customer, Followed{Customer: customer}, map[uint64]time.Time{}
}

// ArrivedAt returns when the first delivery of the followed customer's seq arrived in its stream
// (its ApproximateArrivalTimestamp: when the pipeline's write landed, however late the tail read
// it); ok is false while it has not been read.
func (t *Tail) ArrivedAt(seq uint64) (at time.Time, ok bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	at, ok = t.arrivals[seq]
	return at, ok
}

// Followed returns what was counted of the customer given to Follow.
func (t *Tail) Followed() Followed {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.followed
}

// Poll reads everything currently available once. Run calls it in a loop.
func (t *Tail) Poll(ctx context.Context) error {
	if err := t.discover(ctx); err != nil {
		return err
	}
	t.mu.Lock()
	cursors := make([]*shardCursor, 0, len(t.shards))
	for _, c := range t.shards {
		if !c.closed {
			cursors = append(cursors, c)
		}
	}
	t.mu.Unlock()
	// Parents before children, so per-customer order is checked in the order consumers read.
	sort.Slice(cursors, func(i, j int) bool { return cursors[i].shard < cursors[j].shard })
	for _, c := range cursors {
		if err := t.drain(ctx, c); err != nil {
			return err
		}
	}
	return nil
}

// Run polls every interval until ctx ends; it returns nil on cancellation.
func (t *Tail) Run(ctx context.Context, interval time.Duration) error {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		if err := t.Poll(ctx); err != nil && ctx.Err() == nil {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

func (t *Tail) discover(ctx context.Context) error {
	for stream := range t.streams {
		var token *string
		for {
			in := &kinesis.ListShardsInput{}
			if token != nil {
				in.NextToken = token
			} else {
				in.StreamName = aws.String(stream)
			}
			out, err := t.kc.ListShards(ctx, in)
			if err != nil {
				return fmt.Errorf("list shards of %s: %w", stream, err)
			}
			for _, s := range out.Shards {
				key := stream + "/" + aws.ToString(s.ShardId)
				t.mu.Lock()
				_, known := t.shards[key]
				t.mu.Unlock()
				if known {
					continue
				}
				it, err := t.kc.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{
					StreamName: aws.String(stream), ShardId: s.ShardId, ShardIteratorType: types.ShardIteratorTypeTrimHorizon,
				})
				if err != nil {
					return fmt.Errorf("iterator for %s: %w", key, err)
				}
				t.mu.Lock()
				t.shards[key] = &shardCursor{stream: stream, shard: aws.ToString(s.ShardId), iter: it.ShardIterator}
				t.mu.Unlock()
			}
			if out.NextToken == nil {
				break
			}
			token = out.NextToken
		}
	}
	return nil
}

func (t *Tail) drain(ctx context.Context, c *shardCursor) error {
	for c.iter != nil {
		out, err := t.kc.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: c.iter, Limit: aws.Int32(10000)})
		if err != nil {
			var expired *types.ExpiredIteratorException
			if errors.As(err, &expired) {
				// Not read for 5 minutes (a slow emulator, a long poll elsewhere): go on after the
				// last record read.
				if rerr := t.renew(ctx, c); rerr != nil {
					return fmt.Errorf("%s/%s: iterator expired: %w", c.stream, c.shard, errors.Join(err, rerr))
				}
				continue
			}
			return fmt.Errorf("get records %s/%s: %w", c.stream, c.shard, err)
		}
		t.mu.Lock()
		for _, r := range out.Records {
			t.observe(c.stream, r)
			c.last = aws.ToString(r.SequenceNumber)
		}
		t.mu.Unlock()
		c.iter = out.NextShardIterator
		if c.iter == nil {
			t.mu.Lock()
			c.closed = true
			t.mu.Unlock()
		}
		if len(out.Records) == 0 || aws.ToInt64(out.MillisBehindLatest) == 0 && len(out.Records) < 10000 {
			return nil
		}
	}
	return nil
}

// renew replaces an expired iterator of c with one right after the last record read (the trim
// horizon before the first).
func (t *Tail) renew(ctx context.Context, c *shardCursor) error {
	in := &kinesis.GetShardIteratorInput{StreamName: aws.String(c.stream), ShardId: aws.String(c.shard), ShardIteratorType: types.ShardIteratorTypeTrimHorizon}
	if c.last != "" {
		in.ShardIteratorType, in.StartingSequenceNumber = types.ShardIteratorTypeAfterSequenceNumber, aws.String(c.last)
	}
	it, err := t.kc.GetShardIterator(ctx, in)
	if err != nil {
		return err
	}
	c.iter = it.ShardIterator
	return nil
}

// observe records one output record; t.mu is held.
func (t *Tail) observe(stream string, r types.Record) {
	if t.streams[stream] == Analytics && bytes.HasPrefix(r.Data, ordered.AggregateMagic[:]) {
		t.deaggregate(stream, r)
		return
	}
	t.perStream[stream]++
	switch t.streams[stream] {
	case Quarantine:
		// A quarantine record byte for byte the same as one before is one write sent twice (a
		// write whose outcome was unknown): counted apart, as Resent is for deliveries. A record
		// quarantined twice by the pipeline differs (its "at").
		sum := sha256.Sum256(r.Data)
		if _, dup := t.qseen[sum]; dup {
			t.qresent++
			return
		}
		t.qseen[sum] = struct{}{}
		var q event.Quarantine
		if json.Unmarshal(r.Data, &q) != nil {
			q.Reason = "undecodable_quarantine_record"
		}
		t.quarantined[q.Reason]++
		return
	case DeadLetter:
		var d event.DeadLetter
		if json.Unmarshal(r.Data, &d) != nil {
			d.Reason = "undecodable_dead_letter"
		}
		t.dead[d.Reason]++
		return
	}
	var a event.Analytics
	if err := json.Unmarshal(r.Data, &a); err != nil {
		t.wrongStream = append(t.wrongStream, fmt.Sprintf("%s: undecodable record %s", stream, aws.ToString(r.SequenceNumber)))
		return
	}
	arrived := aws.ToTime(r.ApproximateArrivalTimestamp)
	if t.firstAt.IsZero() || arrived.Before(t.firstAt) {
		t.firstAt = arrived
	}
	if arrived.After(t.lastAt) {
		t.lastAt = arrived
	}
	if !a.ForwardedAt.IsZero() && !arrived.IsZero() {
		t.latencies = append(t.latencies, arrived.Sub(a.ForwardedAt))
	}
	t.seen[a.EventID]++
	h := fnv.New64a()
	h.Write(r.Data)
	from := a.SourceShard + " " + a.SourceSeq + " at " + a.ProcessedAt.UTC().Format("15:04:05.000")
	if t.seen[a.EventID] == 1 {
		t.firstHash[a.EventID] = h.Sum64()
		t.firstFrom[a.EventID] = from
	} else if t.firstHash[a.EventID] == h.Sum64() {
		t.resent++
	} else if len(t.dupExamples) < 10 {
		t.dupExamples = append(t.dupExamples, fmt.Sprintf("event %s (customer %s seq %d) in %s: processed from %s, again from %s",
			a.EventID, a.CustomerID, a.Seq, stream, t.firstFrom[a.EventID], from))
	}
	if t.seen[a.EventID] == 1 {
		t.second(a, arrived)
	}
	t.gaps += a.Gap
	if a.Late {
		t.late++
	}
	want := t.fallback
	if s, ok := t.routes[a.Type]; ok {
		want = s
	}
	if stream != want && !a.Late {
		t.wrongStream = append(t.wrongStream, fmt.Sprintf("event %s of type %s in %s, want %s", a.EventID, a.Type, stream, want))
	}
	if a.Late {
		return // late events are out of order by definition; they are flagged, not violations
	}
	if t.seen[a.EventID] > 1 {
		return // a re-delivery is counted as a duplicate; order is judged on first deliveries
	}
	last := t.lastSeq[stream]
	if last == nil {
		last = map[string]uint64{}
		t.lastSeq[stream] = last
	}
	if prev, ok := last[a.CustomerID]; ok && a.Seq <= prev {
		if a.Seq < prev {
			t.orderViol++
		}
		return
	}
	last[a.CustomerID] = a.Seq
}

// second counts a first delivery in its arrival second (and for the followed customer); t.mu is
// held.
func (t *Tail) second(a event.Analytics, arrived time.Time) {
	if arrived.IsZero() {
		return
	}
	sec := t.seconds[arrived.Unix()]
	if sec == nil {
		sec = &Second{At: arrived.Unix()}
		t.seconds[arrived.Unix()] = sec
	}
	sec.Delivered++
	followed := t.follow != "" && a.CustomerID == t.follow
	if occurred, err := time.Parse(time.RFC3339Nano, a.OccurredAt); err == nil {
		sec.MaxDelay = max(sec.MaxDelay, arrived.Sub(occurred))
		if followed {
			sec.MaxFollowed = max(sec.MaxFollowed, arrived.Sub(occurred))
		}
	}
	if !a.ForwardedAt.IsZero() && (sec.Worst.Arrived.IsZero() || arrived.Sub(a.ForwardedAt) > sec.MaxForward) {
		sec.MaxForward = arrived.Sub(a.ForwardedAt)
		sec.Worst = Delivery{Forwarded: a.ForwardedAt, Processed: a.ProcessedAt, Arrived: arrived, SourceShard: a.SourceShard, SourceSeq: a.SourceSeq}
	}
	if !a.ProcessedAt.IsZero() {
		sec.MaxWrite = max(sec.MaxWrite, arrived.Sub(a.ProcessedAt))
	}
	if followed {
		f := &t.followed
		f.Delivered++
		if f.First.IsZero() || arrived.Before(f.First) {
			f.First = arrived
		}
		if arrived.After(f.Last) {
			f.Last = arrived
		}
		t.arrivals[a.Seq] = arrived
	}
}

// deaggregate observes the records inside r, a KPL aggregate in an analytics stream, in order;
// t.mu is held.
func (t *Tail) deaggregate(stream string, r types.Record) {
	recs, err := deaggregator.DeaggregateRecords([]types.Record{r})
	if err != nil {
		t.wrongStream = append(t.wrongStream, fmt.Sprintf("%s: aggregate %s does not de-aggregate: %v", stream, aws.ToString(r.SequenceNumber), err))
		return
	}
	for _, u := range recs {
		if bytes.HasPrefix(u.Data, ordered.AggregateMagic[:]) { // its MD5 did not match, or nested
			t.wrongStream = append(t.wrongStream, fmt.Sprintf("%s: aggregate %s does not de-aggregate (MD5 mismatch)", stream, aws.ToString(r.SequenceNumber)))
			continue
		}
		t.aggregated++
		t.observe(stream, u)
	}
}

// LastSeq returns the highest seq among customer's first deliveries in order to the analytics
// streams so far (0: none): for a customer that sends seq 1, 2, 3 … without gaps, how far it has
// been delivered.
func (t *Tail) LastSeq(customer string) uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	var n uint64
	for _, m := range t.lastSeq {
		n = max(n, m[customer])
	}
	return n
}

// Snapshot is the current state of the watched streams.
type Snapshot struct {
	PerStream map[string]int
	Delivered int // analytics records, duplicates included
	// Aggregated counts the Delivered that were read inside KPL aggregates (de-aggregated).
	Aggregated int
	Unique     int // distinct event ids delivered
	Duplicates int // deliveries beyond the first
	// Resent counts the Duplicates that are byte for byte the first delivery: the same output write
	// sent twice (an attempt whose outcome was unknown, sent again), never a second processing, which
	// would carry another processed_at.
	Resent      int
	OrderViol   int
	Late        int
	Gaps        uint64
	Quarantined map[event.Reason]int
	// QuarantineResent counts quarantine records byte for byte the same as one before (not in
	// Quarantined): one write sent twice.
	QuarantineResent int
	DeadLetters      map[string]int
	WrongStream      []string
	First, Last      time.Time
	Latencies        []time.Duration
	// DupExamples describe the first few duplicates that were processed twice (not resent): where
	// (source shard and sequence number) and when each copy was processed.
	DupExamples []string
}

// Snapshot copies the current counts.
func (t *Tail) Snapshot() Snapshot {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := Snapshot{
		PerStream: map[string]int{}, Quarantined: map[event.Reason]int{}, DeadLetters: map[string]int{},
		OrderViol: t.orderViol, Resent: t.resent, Aggregated: t.aggregated, QuarantineResent: t.qresent, Late: t.late, Gaps: t.gaps, First: t.firstAt, Last: t.lastAt,
		WrongStream: append([]string(nil), t.wrongStream...), Latencies: append([]time.Duration(nil), t.latencies...),
		DupExamples: append([]string(nil), t.dupExamples...),
	}
	for k, v := range t.perStream {
		s.PerStream[k] = v
		if t.streams[k] == Analytics {
			s.Delivered += v
		}
	}
	for k, v := range t.quarantined {
		s.Quarantined[k] = v
	}
	for k, v := range t.dead {
		s.DeadLetters[k] = v
	}
	for _, n := range t.seen {
		s.Unique++
		s.Duplicates += n - 1
	}
	return s
}

// Report compares what was delivered with what was sent.
type Report struct {
	Snapshot
	Expected int
	Lost     []string // expected event ids never delivered
	Unwanted []string // delivered ids that were not expected (first few)
}

// Check compares the tail's state with the expected events.
func (t *Tail) Check(expected []Expected) Report {
	s := t.Snapshot()
	r := Report{Snapshot: s, Expected: len(expected)}
	want := make(map[string]struct{}, len(expected))
	t.mu.Lock()
	for _, e := range expected {
		want[e.EventID] = struct{}{}
		if t.seen[e.EventID] == 0 {
			r.Lost = append(r.Lost, e.EventID)
		}
	}
	for id := range t.seen {
		if _, ok := want[id]; !ok && len(r.Unwanted) < 20 {
			r.Unwanted = append(r.Unwanted, id)
		}
	}
	t.mu.Unlock()
	sort.Strings(r.Lost)
	return r
}

// OK reports whether the run was exactly-once and in order.
func (r Report) OK() bool { return r.OKWithResent(0) }

// OKWithResent is OK, except that up to allowed duplicates may be resent writes (Resent): the
// number of records the workers counted as sent in a write whose outcome was unknown
// (pipeline_put_unknown_outcome_total). A duplicate of any other kind still fails it. Quarantine
// records sent twice are judged by QuarantineOK.
func (r Report) OKWithResent(allowed int) bool {
	return len(r.Lost) == 0 && r.Duplicates == r.Resent && r.Resent <= allowed && r.OrderViol == 0 &&
		len(r.WrongStream) == 0 && len(r.Unwanted) == 0
}

// QuarantineOK reports whether the quarantine records sent twice (QuarantineResent), with the
// deliveries sent twice (Resent), stay within the records the workers and the forwarder (both write
// quarantine records) counted as sent in a write whose outcome was unknown.
func (r Report) QuarantineOK(workers, forwarder int) bool {
	return r.Resent+r.QuarantineResent <= workers+forwarder
}

// String is a one-line summary.
func (r Report) String() string {
	return fmt.Sprintf("expected=%d delivered=%d unique=%d lost=%d duplicates=%d (resent writes %d) order_violations=%d late=%d gaps=%d wrong_stream=%d unexpected=%d quarantined=%d (resent writes %d) dead_letters=%d",
		r.Expected, r.Delivered, r.Unique, len(r.Lost), r.Duplicates, r.Resent, r.OrderViol, r.Late, r.Gaps, len(r.WrongStream), len(r.Unwanted), sum(r.Quarantined), r.QuarantineResent, sum(r.DeadLetters))
}

func sum[K comparable](m map[K]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}
