package autoscale

import (
	"fmt"
	"math"
	"time"

	"github.com/kinesis-events/pipeline/internal/reshard"
)

// Sample is a stream's write load over one period: totals, as CloudWatch's Sum statistic gives.
type Sample struct {
	At        time.Time     `json:"at"` // start of the period
	Period    time.Duration `json:"period"`
	Records   float64       `json:"records"`   // IncomingRecords
	Bytes     float64       `json:"bytes"`     // IncomingBytes
	Throttled float64       `json:"throttled"` // WriteProvisionedThroughputExceeded
}

// Load is a write load in units per second.
type Load struct {
	Records   float64 `json:"records_per_s"`
	Bytes     float64 `json:"bytes_per_s"`
	Throttled float64 `json:"throttled_per_s"`
}

// Actions of a Decision.
const (
	ActionOut     = "scale-out" // reshard up
	ActionIn      = "scale-in"  // reshard down
	ActionHold    = "hold"      // nothing to do: the load is within the band
	ActionBlocked = "blocked"   // a reshard is wanted but a rule forbids it now (reason says which)
	ActionWatch   = "watch"     // an on-demand stream: Kinesis sizes it, the autoscaler only reports
)

// View is what the autoscaler sees of one stream at a tick.
type View struct {
	Stream   string
	Status   string // ACTIVE, UPDATING, ...
	OnDemand bool
	Open     []reshard.Range // open shards, sorted
	// Samples cover [From, To): periods without a sample had no writes.
	Samples  []Sample
	From, To time.Time
	// AccountHeadroom is how many more open shards the account allows (-1: unknown).
	AccountHeadroom int
	// SplitMerge says the stream is resharded by split/merge (configured, or learned from the
	// last reshard), whose layouts can be uneven; otherwise UpdateShardCount's even ones.
	SplitMerge bool
	// Draining counts the stream's closed shards its consumers have not finished (-1: unknown, or
	// a stream nobody here consumes). A scale-in waits for them: closing more shards while the
	// fleet is still behind on the last reshard only deepens the lineage it must drain in order.
	Draining int
	// Behind is how far the worker fleet is behind on the raw stream (0: caught up or unknown).
	// While it is more than an out window behind, no stream is scaled in: the output streams'
	// load is then the fleet's pace, not the demand, and the backlog will come through them.
	Behind time.Duration
	// FleetUnknown: the fleet's view was asked for and could not be read; no stream is scaled in
	// on a guess.
	FleetUnknown bool
}

// History is what the autoscaler remembers of one stream between ticks (the state row).
type History struct {
	// Since is when the autoscaler first saw the stream (scale-in needs a full InWindow of data).
	Since time.Time `json:"since"`
	// Calls are the reshard calls of the last 24 h.
	Calls []time.Time `json:"calls"`
	// LastReshard is when the last reshard ended (or failed).
	LastReshard time.Time `json:"last_reshard"`
	// Method is how the last reshard was done (uniform, split-merge); "" before the first.
	Method string `json:"method"`
	// Last is the latest decision; Decisions the last reshards, refusals and errors, oldest first.
	Last      *Decision  `json:"last,omitempty"`
	Decisions []Decision `json:"decisions"`
}

// Decision is one tick's verdict on one stream, and what came of it.
type Decision struct {
	At     time.Time `json:"at"`
	Stream string    `json:"stream"`
	Action string    `json:"action"`
	From   int       `json:"from"`
	To     int       `json:"to"`
	Reason string    `json:"reason"`
	// Load is the mean over OutWindow; Peak the busiest OutWindow within InWindow. Util is Load
	// over the capacity (shards of even width, see reshard.Effective).
	Load      Load    `json:"load"`
	Peak      Load    `json:"peak"`
	Util      float64 `json:"utilisation"`
	PeakUtil  float64 `json:"peak_utilisation"`
	CallsLeft int     `json:"calls_left"`
	// After the reshard: whether it ran, how, how long, and its error.
	Applied bool   `json:"applied,omitempty"`
	Method  string `json:"method,omitempty"`
	TookMS  int64  `json:"took_ms,omitempty"`
	Error   string `json:"error,omitempty"`
}

// Decide is the autoscaler's rule for one stream: pure, given the time, the policy, what it sees
// and what it remembers. See the package comment for the rule in words.
func Decide(now time.Time, p Policy, v View, h History) Decision {
	d := Decision{At: now, Stream: v.Stream, From: len(v.Open), To: len(v.Open)}
	d.CallsLeft = callsLeft(now, p, h)
	capacity := reshard.Effective(v.Open)
	d.Load = mean(v.Samples, later(v.From, v.To.Add(-p.OutWindow)), v.To)
	d.Peak = peak(v.Samples, later(v.From, v.To.Add(-p.InWindow)), v.To, p.OutWindow)
	demand, peakDemand := p.shards(d.Load), p.shards(d.Peak)
	sinceReshard := now.Sub(h.LastReshard)
	if !h.LastReshard.IsZero() && sinceReshard < p.OutWindow {
		// The window reaches back before the last reshard: what it counts as throttled was refused
		// by the old layout, and those writes' retries land in the new one as records written. The
		// throttled extra would count that demand twice and size the next step for a backlog, not
		// for the load (a spike that stopped at 9 shards' load went 16 -> 32 on it).
		demand = p.shards(Load{Records: d.Load.Records, Bytes: d.Load.Bytes})
	}
	if capacity > 0 {
		d.Util, d.PeakUtil = demand/capacity, peakDemand/capacity
	}
	want := max(p.MinShards, int(math.Ceil(demand/p.TargetUtilisation-1e-9)))
	uniform := !v.SplitMerge && h.Method != reshard.MethodSplitMerge
	hold := func(action, format string, args ...any) Decision {
		d.Action, d.Reason = action, fmt.Sprintf(format, args...)
		return d
	}
	if v.OnDemand {
		d.To = want
		return hold(ActionWatch, "on-demand stream: Kinesis sizes it; provisioned it would need %d shards at %.0f%% (utilisation %.2f of %d)", want, 100*p.TargetUtilisation, d.Util, len(v.Open))
	}
	if len(v.Open) == 0 {
		return hold(ActionBlocked, "no open shards listed")
	}
	throttled := d.Load.Throttled >= p.MinThrottledPerSecond && d.Load.Throttled > p.ThrottledAbove*(d.Load.Records+d.Load.Throttled)
	// Throttles measured partly before the last reshard were refused by the old layout (and its
	// writers' retries still drain into the new one): that reshard already answered them.
	if throttled && d.Util <= p.ScaleOutAbove && sinceReshard < p.OutWindow {
		return hold(ActionBlocked, "%.0f%% of writes throttled (%.1f/s), but partly before the last reshard %s ago (window %s)",
			100*d.Load.Throttled/(d.Load.Records+d.Load.Throttled), d.Load.Throttled, sinceReshard.Round(time.Second), p.OutWindow)
	}
	switch {
	case d.Util > p.ScaleOutAbove || throttled:
		why := fmt.Sprintf("utilisation %.2f > %.2f", d.Util, p.ScaleOutAbove)
		if d.Util <= p.ScaleOutAbove {
			why = fmt.Sprintf("%.0f%% of writes throttled (%.1f/s)", 100*d.Load.Throttled/(d.Load.Records+d.Load.Throttled), d.Load.Throttled)
		}
		if v.Status != "ACTIVE" {
			return hold(ActionBlocked, "%s, but the stream is %s", why, v.Status)
		}
		if sinceReshard < p.OutCooldown {
			return hold(ActionBlocked, "%s, but the last reshard was %s ago (cool-down %s)", why, sinceReshard.Round(time.Second), p.OutCooldown)
		}
		if d.CallsLeft <= 0 {
			return hold(ActionBlocked, "%s, but no reshard calls left in the rolling 24 h (%d used)", why, p.CallsPerDay)
		}
		// Throttled below the utilisation bar (bursts, a hot shard, uneven ranges): one shard more at
		// least, while the capacity is below what the load needs at the target (ThrottledUpTo). With
		// nothing written at all the demand is unknown, not small: one more.
		if d.Util <= p.ScaleOutAbove && d.Load.Records > 0 && capacity >= p.ThrottledUpTo*float64(want) {
			return hold(ActionBlocked, "%s at utilisation %.2f, with %.0fx the shards the load needs: a hot key or bursts, which more shards do not fix",
				why, d.Util, capacity/float64(want))
		}
		need := max(float64(want), capacity+1)
		hi := min(2*len(v.Open), p.MaxShards)
		if v.AccountHeadroom >= 0 {
			hi = min(hi, len(v.Open)+v.AccountHeadroom)
		}
		if hi <= len(v.Open) {
			return hold(ActionBlocked, "%s, but at the limit of %d shards (stream max %d, account headroom %d)", why, len(v.Open), p.MaxShards, v.AccountHeadroom)
		}
		d.To = hi
		if n, ok := smallest(v.Open, len(v.Open)+1, hi, need, uniform); ok {
			d.To = n
		}
		return hold(ActionOut, "%s: %d -> %d shards (load %.1f shards, sized for %.0f%%)", why, len(v.Open), d.To, demand, 100*p.TargetUtilisation)
	case d.PeakUtil < p.ScaleInBelow && len(v.Open) > p.MinShards:
		why := fmt.Sprintf("peak utilisation %.2f < %.2f over %s", d.PeakUtil, p.ScaleInBelow, p.InWindow)
		if v.Status != "ACTIVE" {
			return hold(ActionBlocked, "%s, but the stream is %s", why, v.Status)
		}
		if v.Draining > 0 {
			return hold(ActionHold, "%s, but the fleet has not finished %d closed shard(s) yet", why, v.Draining)
		}
		if v.FleetUnknown {
			return hold(ActionHold, "%s, but how far the fleet is behind could not be read", why)
		}
		if v.Behind > p.OutWindow {
			return hold(ActionHold, "%s, but the fleet is %s behind on the raw stream", why, v.Behind.Round(time.Second))
		}
		if seen := now.Sub(h.Since); seen < p.InWindow {
			return hold(ActionHold, "%s, but only %s of load seen yet", why, seen.Round(time.Second))
		}
		if sinceReshard < p.InCooldown {
			return hold(ActionHold, "%s, but the last reshard was %s ago (cool-down %s)", why, sinceReshard.Round(time.Second), p.InCooldown)
		}
		if d.CallsLeft <= p.ReserveCalls {
			return hold(ActionBlocked, "%s, but only %d reshard calls left in the rolling 24 h (%d kept for scale-out)", why, d.CallsLeft, p.ReserveCalls)
		}
		need := max(float64(p.MinShards), peakDemand/p.TargetUtilisation)
		lo := max(p.MinShards, (len(v.Open)+1)/2)
		to, ok := smallest(v.Open, lo, len(v.Open)-1, need, uniform)
		if !ok {
			return hold(ActionHold, "%s, but no smaller layout keeps the peak at %.0f%%", why, 100*p.TargetUtilisation)
		}
		d.To = to
		return hold(ActionIn, "%s: %d -> %d shards (peak %.1f shards, sized for %.0f%%)", why, len(v.Open), d.To, peakDemand, 100*p.TargetUtilisation)
	}
	return hold(ActionHold, "utilisation %.2f, peak %.2f: within %.2f..%.2f", d.Util, d.PeakUtil, p.ScaleInBelow, p.ScaleOutAbove)
}

// shards is a load in shards: the larger of its records and bytes shares. Throttled writes are
// demand that did not fit, so they count as records at the mean record size, but at most as much
// again as was written: writers retry a throttled record, so the count overstates the demand.
func (p Policy) shards(l Load) float64 {
	size := 0.0
	if l.Records > 0 {
		size = l.Bytes / l.Records
	}
	extra := min(l.Throttled, l.Records)
	return max((l.Records+extra)/p.RecordsPerShard, (l.Bytes+extra*size)/p.BytesPerShard)
}

// capacityAt is the capacity (in even shards) of n open shards reached from open.
func capacityAt(open []reshard.Range, n int, uniform bool) float64 {
	if uniform {
		return float64(n)
	}
	rs, err := reshard.SplitMergeResult(open, n)
	if err != nil {
		return 0
	}
	return reshard.Effective(rs)
}

// smallest is the smallest count in [lo, hi] whose capacity reaches need; ok is false when none does.
func smallest(open []reshard.Range, lo, hi int, need float64, uniform bool) (int, bool) {
	for n := lo; n <= hi; n++ {
		if capacityAt(open, n, uniform) >= need-1e-9 {
			return n, true
		}
	}
	return 0, false
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func callsLeft(now time.Time, p Policy, h History) int {
	used := 0
	for _, c := range h.Calls {
		if now.Sub(c) < 24*time.Hour {
			used++
		}
	}
	return p.CallsPerDay - used
}

// mean is the load per second over [from, to): samples starting in it, over its length.
func mean(ss []Sample, from, to time.Time) Load {
	secs := to.Sub(from).Seconds()
	if secs <= 0 {
		return Load{}
	}
	var l Load
	for _, s := range ss {
		if !s.At.Before(from) && s.At.Before(to) {
			l.Records += s.Records
			l.Bytes += s.Bytes
			l.Throttled += s.Throttled
		}
	}
	l.Records, l.Bytes, l.Throttled = l.Records/secs, l.Bytes/secs, l.Throttled/secs
	return l
}

// peak is the busiest of the consecutive windows of length w ending at to, back to from: the
// largest records, bytes and throttled rates of any of them.
func peak(ss []Sample, from, to time.Time, w time.Duration) Load {
	var best Load
	for end := to; end.Sub(from) >= w; end = end.Add(-w) {
		l := mean(ss, end.Add(-w), end)
		best = Load{Records: max(best.Records, l.Records), Bytes: max(best.Bytes, l.Bytes), Throttled: max(best.Throttled, l.Throttled)}
	}
	return best
}
