package e2e

import (
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kinesis-events/pipeline/internal/audit"
	"github.com/kinesis-events/pipeline/internal/faultproxy"
	"github.com/kinesis-events/pipeline/internal/fleet"
	"github.com/kinesis-events/pipeline/internal/loadgen"
)

// TestChaosDestinationDown6m: one analytics stream (analytics-purchase) answers every PutRecords
// with 503 for 6 minutes, longer than a shard iterator lives (5 minutes), while 50 events/s keep
// coming for 8 minutes. Past the breaker hold (60 s) its records are dead-lettered; the other
// streams go on. Every unique event ends delivered or dead-lettered, exactly once each (never
// both, nothing lost, no dead letter twice), first deliveries in order, no flag. Then `kclctl dlq
// replay --apply` puts the dead letters back into the raw stream: each is delivered exactly once
// (flagged late when later events of its customer were delivered meanwhile: only dead-lettered
// events may be late), and a second replay delivers nothing. Shard iterators that expired during
// the outage (the workers' and the emulator's view) are counted at the proxy and logged.
func TestChaosDestinationDown6m(t *testing.T) {
	skipUnlessChaos(t, true)
	d := deploy(t, fleet.DefaultTopology())
	proxy, env := d.faultProxy()
	ws := []*chaosWorker{d.chaosWorker(1, env), d.chaosWorker(2, env)}

	const count, rate, target = 24000, 50, "analytics-purchase"
	send, tail := d.startLoad(fleet.Load{Count: count, Customers: 500, Rate: rate, Seed: 97})
	waitForwarded(t, send, tail, rate*60) // a minute of load before the outage

	const outage = 6 * time.Minute
	from := time.Now()
	until := from.Add(outage)
	proxy.Set("down", faultproxy.Rule{Operation: "PutRecords", Stream: target, Fault: faultproxy.FailCall, Until: until})
	requireMidRun(t, send, count, "outage of "+target)

	var firstDead time.Duration
	openAt := time.Duration(0)
	for time.Now().Before(until) {
		if firstDead == 0 && len(tail.Snapshot().DeadLetters) > 0 {
			firstDead = time.Since(from)
		}
		if openAt == 0 {
			for _, w := range ws {
				if fams, err := scrape(t.Context(), w.metrics); err == nil {
					if v, _ := metricValue(fams, "pipeline_breaker_state", map[string]string{"stream": target}); v == 2 {
						openAt = time.Since(from)
					}
				}
			}
		}
		next := time.Now().Add(5 * time.Second)
		if next.After(until) {
			next = until
		}
		pollUntil(t, tail, next)
	}
	requireMidRun(t, send, count, "the end of the outage")
	t.Logf("destination down 6m: breaker of %s open %s after the outage began; first dead letter read %s after it", target,
		openAt.Round(100*time.Millisecond), firstDead.Round(100*time.Millisecond))
	if firstDead == 0 {
		t.Errorf("no dead letter during a %s outage of %s (breaker hold 60 s)", outage, target)
	}

	// Everything sent is delivered or dead-lettered, and every raw shard is checkpointed to its end.
	s := d.settleWhen(send, tail, 8*time.Minute, "every unique event delivered or dead-lettered", func(s audit.Snapshot, m loadgen.Manifest) bool {
		dead := 0
		for _, n := range s.DeadLetters {
			dead += n
		}
		return s.Unique+dead >= m.Unique
	})
	o := s.report(t, "destination down 6m")
	m := s.res.Manifest
	pc := proxy.Counts("PutRecords", target)
	expired := proxy.UpstreamErrors("GetRecords", fleet.RawStream)["ExpiredIteratorException"]
	t.Logf("destination down 6m: proxy refused %d PutRecords calls (%d entries) to %s; the emulator answered %d GetRecords calls on %s with ExpiredIteratorException",
		pc.Faulted, pc.Entries, target, expired, fleet.RawStream)

	dead := map[string]int{}
	for _, id := range o.DeadLetterIDs {
		dead[id]++
	}
	var deadTwice, deadAndDelivered, lost []string
	for id, n := range dead {
		if n > 1 {
			deadTwice = append(deadTwice, id)
		}
	}
	lostSet := map[string]bool{}
	for _, id := range o.Lost {
		lostSet[id] = true
		if dead[id] == 0 {
			lost = append(lost, id)
		}
	}
	for id := range dead {
		if !lostSet[id] {
			deadAndDelivered = append(deadAndDelivered, id)
		}
	}
	t.Logf("destination down 6m: %d delivered, %d dead-lettered (%v), %d neither, %d both, %d dead-lettered twice",
		o.Unique, len(dead), o.DeadLetters, len(lost), len(deadAndDelivered), len(deadTwice))
	requireRunning(t, ws...)
	if len(dead) == 0 || len(o.DeadLetters) != 1 || o.DeadLetters[target] == 0 {
		t.Errorf("dead letters by destination %v: want some, all for %s", o.DeadLetters, target)
	}
	if len(lost) > 0 || len(deadAndDelivered) > 0 || len(deadTwice) > 0 {
		t.Errorf("not delivered or dead-lettered exactly once: %d lost (first %v), %d both delivered and dead-lettered (first %v), %d dead-lettered twice (first %v)",
			len(lost), first(lost, 5), len(deadAndDelivered), first(deadAndDelivered, 5), len(deadTwice), first(deadTwice, 5))
	}
	if o.OrderViol > 0 || len(o.WrongStream) > 0 || len(o.WrongContent) > 0 || len(o.Unexpected) > 0 {
		t.Errorf("order violations %d, wrong stream %v, wrong content %v, unexpected %v", o.OrderViol, first(o.WrongStream, 5), first(o.WrongContent, 5), first(o.Unexpected, 5))
	}
	requireNoDuplicates(t, o, ws...)
	requireNoFlags(t, o)
	requireQuarantinedOnce(t, o, m)

	// Replay the dead letters: each is delivered once; a second replay delivers nothing.
	f := newOpsFleet(t, d)
	replayed := func(label string) int {
		t.Helper()
		code, out, errOut := f.kclctl("dlq", "replay", "--apply")
		if code != 0 {
			t.Fatalf("kclctl dlq replay --apply (%s): exit %d\n%s\n%s", label, code, lastLines(out, 3), errOut)
		}
		mm := regexp.MustCompile(`replayed (\d+) into `).FindStringSubmatch(out)
		if mm == nil {
			t.Fatalf("kclctl dlq replay --apply (%s): no summary line:\n%s", label, lastLines(out, 5))
		}
		n, _ := strconv.Atoi(mm[1])
		t.Logf("destination down 6m: kclctl dlq replay --apply (%s): %s", label, lastLines(out, 1))
		return n
	}
	if n := replayed("first"); n != len(dead) {
		t.Errorf("the replay put %d dead letters back, want %d (one per dead-lettered event)", n, len(dead))
	}
	waitTail(t, tail, 4*time.Minute, "every dead-lettered event delivered after the replay", func(s audit.Snapshot) bool { return s.Unique >= m.Unique })
	f.tail = tail
	f.caughtUp(3 * time.Minute)
	if n := replayed("second"); n != len(dead) {
		t.Errorf("the second replay put %d dead letters back, want %d", n, len(dead))
	}
	f.caughtUp(3 * time.Minute)

	after := d.readOutcome(t.Context(), m)
	t.Logf("destination down 6m: after two replays: %s", after)
	requireDelivered(t, after)
	requireNoDuplicates(t, after, ws...)
	requireQuarantinedOnce(t, after, m)
	var lateNotDead []string
	for _, id := range after.LateIDs {
		if dead[id] == 0 {
			lateNotDead = append(lateNotDead, id)
		}
	}
	slices.Sort(lateNotDead)
	t.Logf("destination down 6m: %d of the %d replayed events delivered flagged late", after.Late, len(dead))
	if len(lateNotDead) > 0 || after.Gaps > 0 {
		t.Errorf("%d late events that were never dead-lettered (first %v), %d gap seqs: only a replayed dead letter may arrive late",
			len(lateNotDead), first(lateNotDead, 5), after.Gaps)
	}
	if len(after.DeadLetterIDs) != len(o.DeadLetterIDs) {
		t.Errorf("dead letters went from %d to %d after the replays: a replayed event was dead-lettered again", len(o.DeadLetterIDs), len(after.DeadLetterIDs))
	}
}

// lastLines returns the last n non-empty lines of s.
func lastLines(s string, n int) string {
	lines := strings.FieldsFunc(s, func(r rune) bool { return r == '\n' })
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
