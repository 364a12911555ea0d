package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"reflect"
	"sort"
	"strings"
	"time"

	"github.com/kinesis-events/pipeline/event"
	"github.com/kinesis-events/pipeline/internal/loadgen"
	"github.com/kinesis-events/pipeline/internal/names"
)

// outcome is an independent reading of every output stream, end to end, checked against the load
// generator's manifest. It complements audit.Tail (which the tests poll while they run) in two
// ways: order is judged on first deliveries only, because a re-delivery of an event that was
// already delivered is a duplicate (counted as such), not a reordering of the stream a
// deduplicating consumer sees; and delivered content is compared with what was sent, so a
// conflicting duplicate that won over the original shows up.
type outcome struct {
	Sent       int // unique valid events sent (manifest)
	Delivered  int // analytics and late records, duplicates included
	Unique     int
	Lost       []string
	Duplicates int
	// Resent counts the Duplicates byte for byte the same as their first delivery (one output write
	// sent twice); Unsure is the workers' count of records sent with an unknown outcome, which
	// bounds Resent (see exactlyOnce).
	Resent, Unsure int
	// OrderViol counts first deliveries whose seq is below an earlier first delivery of the same
	// customer in the same stream. RedeliveredBehind counts duplicates that arrived after a later
	// seq of their customer (a replay after a crash); they are part of Duplicates.
	OrderViol         int
	RedeliveredBehind int
	Late              int
	LateIDs           []string // event ids of the records flagged late
	Gaps              uint64
	WrongStream       []string
	WrongContent      []string // delivered properties differ from the manifest's
	Unexpected        []string
	PerStream         map[string]int
	Quarantined       map[event.Reason]int
	QuarantinedIDs    map[event.Reason][]string
	DeadLetters       map[string]int // by destination
	DeadLetterIDs     []string
	DuplicatesByEvent map[string]int
}

func (o outcome) String() string {
	q := 0
	for _, n := range o.Quarantined {
		q += n
	}
	dl := 0
	for _, n := range o.DeadLetters {
		dl += n
	}
	return fmt.Sprintf("sent=%d delivered=%d unique=%d lost=%d duplicated=%d (resent writes %d of %d unsure) order_violations=%d (redelivered_behind=%d) late=%d gaps=%d wrong_stream=%d wrong_content=%d unexpected=%d quarantined=%d dead_letters=%d",
		o.Sent, o.Delivered, o.Unique, len(o.Lost), o.Duplicates, o.Resent, o.Unsure, o.OrderViol, o.RedeliveredBehind, o.Late, o.Gaps,
		len(o.WrongStream), len(o.WrongContent), len(o.Unexpected), q, dl)
}

// readOutcome reads every output stream of the deployment from its beginning.
func (d *deployment) readOutcome(ctx context.Context, m loadgen.Manifest) outcome {
	d.t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	want := make(map[string]loadgen.ManifestEvent, len(m.Events))
	for _, e := range m.Events {
		want[e.EventID] = e
	}
	routes := d.env.Topology.Routes()
	o := outcome{Sent: m.Unique, PerStream: map[string]int{}, Quarantined: map[event.Reason]int{},
		QuarantinedIDs: map[event.Reason][]string{}, DeadLetters: map[string]int{}, DuplicatesByEvent: map[string]int{}}
	seen := map[string]int{}
	firstHash := map[string]uint64{}
	streams := append(d.env.Topology.AnalyticsStreams(), names.LateStream)
	sort.Strings(streams)
	for _, stream := range streams {
		recs, err := d.stack.ReadAll(ctx, stream)
		if err != nil {
			d.t.Fatalf("read %s: %v", stream, err)
		}
		o.PerStream[stream] = len(recs)
		// Shards of an analytics stream are never resharded in these tests, so one customer's
		// records are on one shard, in the order ReadAll returns them.
		last := map[string]uint64{}
		for _, r := range recs {
			var a event.Analytics
			if err := json.Unmarshal(r.Record.Data, &a); err != nil {
				o.WrongStream = append(o.WrongStream, stream+": undecodable record")
				continue
			}
			o.Delivered++
			seen[a.EventID]++
			first := seen[a.EventID] == 1
			h := fnv.New64a()
			h.Write(r.Record.Data)
			if first {
				firstHash[a.EventID] = h.Sum64()
			} else {
				o.Duplicates++
				o.DuplicatesByEvent[a.EventID]++
				if firstHash[a.EventID] == h.Sum64() {
					o.Resent++
				}
			}
			o.Gaps += a.Gap
			if a.Late {
				o.Late++
				o.LateIDs = append(o.LateIDs, a.EventID)
			}
			exp, ok := want[a.EventID]
			if !ok {
				if len(o.Unexpected) < 20 {
					o.Unexpected = append(o.Unexpected, a.EventID)
				}
				continue
			}
			wantStream := names.OtherStream
			if s, ok := routes[a.Type]; ok {
				wantStream = s
			}
			if stream != wantStream && !a.Late {
				o.WrongStream = append(o.WrongStream, fmt.Sprintf("%s (%s) in %s", a.EventID, a.Type, stream))
			}
			if first && !sameJSON(a.Properties, exp.Properties) && len(o.WrongContent) < 20 {
				o.WrongContent = append(o.WrongContent, fmt.Sprintf("%s: delivered %s, sent %s", a.EventID, a.Properties, exp.Properties))
			}
			if a.Late {
				continue // flagged, not a violation; counted in Late
			}
			if prev, ok := last[a.CustomerID]; ok && a.Seq < prev {
				if first {
					o.OrderViol++
				} else {
					o.RedeliveredBehind++
				}
				continue
			}
			last[a.CustomerID] = max(last[a.CustomerID], a.Seq)
		}
	}
	o.Unique = len(seen)
	for _, e := range m.Events {
		if seen[e.EventID] == 0 {
			o.Lost = append(o.Lost, e.EventID)
		}
	}
	qs, err := d.stack.ReadAll(ctx, names.QuarantineStream)
	if err != nil {
		d.t.Fatalf("read %s: %v", names.QuarantineStream, err)
	}
	for _, r := range qs {
		var q event.Quarantine
		if err := json.Unmarshal(r.Record.Data, &q); err != nil {
			q.Reason = "undecodable_quarantine_record"
		}
		o.Quarantined[q.Reason]++
		o.QuarantinedIDs[q.Reason] = append(o.QuarantinedIDs[q.Reason], q.EventID)
	}
	dls, err := d.stack.ReadAll(ctx, names.DLQStream)
	if err != nil {
		d.t.Fatalf("read %s: %v", names.DLQStream, err)
	}
	for _, r := range dls {
		var dl event.DeadLetter
		if err := json.Unmarshal(r.Record.Data, &dl); err != nil {
			dl.Destination = "undecodable_dead_letter"
		}
		o.DeadLetters[dl.Destination]++
		o.DeadLetterIDs = append(o.DeadLetterIDs, dl.EventID)
	}
	n, err := d.env.UnknownOutcomes()
	if err != nil {
		d.t.Fatalf("reading the workers' unknown write outcomes: %v", err)
	}
	o.Unsure = n
	return o
}

// sameJSON compares two JSON documents by value.
func sameJSON(a, b json.RawMessage) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return string(a) == string(b)
	}
	return reflect.DeepEqual(x, y)
}

// perStreamLines formats per-stream counts for the test log.
func perStreamLines(m map[string]int) string {
	var b strings.Builder
	for _, s := range sortedKeys(m) {
		fmt.Fprintf(&b, "\n  %-28s %6d", s, m[s])
	}
	return b.String()
}
