package processors

import (
	"context"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/kinesis-events/pipeline/event"
)

// routeReleased encodes every released event for its destination stream; one whose analytics
// record is over the Kinesis record limit is quarantined instead.
func (s *Shard) routeReleased(_ context.Context, b *batch) error {
	p := s.p
	if len(b.released) == 0 {
		return nil
	}
	// The shard id and processed_at are the same for every record of the call: encoded once.
	s.stamp = appendJSONString(s.stamp[:0], s.id)
	n := len(s.stamp)
	s.stamp = b.now.AppendFormat(s.stamp, time.RFC3339Nano)
	shardJSON, processedAt := s.stamp[:n], s.stamp[n:]
	for _, e := range b.released {
		if e.gap > 0 {
			p.m.gaps.Inc()
			// A producer's jump (seq 5, then seq 2^63) is one gap, not 2^63 missing events: the
			// counter takes at most maxGapCounted of one gap, so it stays a count of events.
			p.m.gapSeqs.Add(float64(min(e.gap, maxGapCounted)))
		}
		if e.dupSeq {
			p.m.dedupeHits.WithLabelValues("state", "conflicting").Inc()
			b.quar = append(b.quar, conflict(e, "another event of this customer with this seq was already delivered"))
			continue
		}
		if e.late {
			p.m.late.Inc()
		}
		stream := p.destination(e)
		src := shardJSON
		if e.src != "" {
			src = appendJSONString(nil, e.src)
		}
		buf := b.arena.buf(len(e.d.Properties) + len(e.seqNum) + 4*len(e.d.EventID) + 4*len(e.d.CustomerID) + 512)
		data := b.arena.commit(appendAnalyticsWith(buf, e, src, processedAt))
		if len(data)+len(e.d.CustomerID) > maxKinesisRecord {
			b.quar = append(b.quar, &quarantined{idx: e.idx, src: e.src, seqNum: e.seqNum, subSeq: e.subSeq, data: e.data, reason: event.ReasonTooLarge,
				detail:  "analytics record of " + strconv.Itoa(len(data)) + " bytes is over the Kinesis record limit",
				eventID: e.d.EventID, customerID: e.d.CustomerID, ev: e})
			continue
		}
		e.o = outRec{kind: outEvent, key: e.d.CustomerID, data: data, ev: e}
		e.out = &e.o
		b.byStream[stream] = append(b.byStream[stream], e.out)
	}
	return nil
}

// maxGapCounted bounds what one gap adds to pipeline_reorder_gap_seqs_total.
const maxGapCounted = 1 << 20

// route returns the analytics stream for an event type: its route, else the default stream.
func (p *Pipeline) route(typ string) (string, bool) {
	if s, ok := p.cfg.Routes[typ]; ok {
		return s, true
	}
	return p.cfg.DefaultStream, p.cfg.DefaultStream != ""
}

// destination returns the stream a released event is written to, per the route and the late policy.
func (p *Pipeline) destination(e *rec) string {
	if e.late && p.cfg.LatePolicy == LateStream {
		return p.cfg.LateStream
	}
	s, _ := p.route(e.raw.Type)
	return s
}

// appendAnalytics appends the JSON of the event.Analytics record for e. It is a hand-written encoder
// for the hot path; TestAnalyticsEncoding proves json.Unmarshal of its output equals the struct.
func appendAnalytics(dst []byte, e *rec, shardID string, processedAt time.Time) []byte {
	return appendAnalyticsWith(dst, e, appendJSONString(nil, shardID), processedAt.AppendFormat(nil, time.RFC3339Nano))
}

// appendAnalyticsWith is appendAnalytics with the shard id already a JSON string and processed_at
// already formatted (RFC 3339, nanoseconds), which are the same for every record of a batch.
func appendAnalyticsWith(dst []byte, e *rec, shardJSON, processedAt []byte) []byte {
	d := e.d
	dst = append(dst, `{"event_id":`...)
	dst = appendJSONString(dst, d.EventID)
	dst = append(dst, `,"type":`...)
	dst = appendJSONString(dst, e.raw.Type)
	if e.raw.Source != "" {
		dst = append(dst, `,"source":`...)
		dst = appendJSONString(dst, e.raw.Source)
	}
	dst = append(dst, `,"customer_id":`...)
	dst = appendJSONString(dst, d.CustomerID)
	dst = append(dst, `,"seq":`...)
	dst = strconv.AppendUint(dst, d.Seq, 10)
	dst = append(dst, `,"occurred_at":`...)
	dst = appendJSONString(dst, d.OccurredAt)
	dst = append(dst, `,"properties":`...)
	if len(d.Properties) == 0 {
		dst = append(dst, "{}"...)
	} else {
		dst = append(dst, d.Properties...)
	}
	if e.gap > 0 {
		dst = append(dst, `,"gap":`...)
		dst = strconv.AppendUint(dst, e.gap, 10)
	}
	if e.late {
		dst = append(dst, `,"late":true`...)
	}
	dst = append(dst, `,"source_shard":`...)
	dst = append(dst, shardJSON...)
	dst = append(dst, `,"source_seq":`...)
	dst = appendJSONString(dst, e.seqNum)
	if e.subSeq > 0 {
		dst = append(dst, `,"source_subseq":`...)
		dst = strconv.AppendInt(dst, int64(e.subSeq), 10)
	}
	if !e.raw.ForwardedAt.IsZero() {
		dst = append(dst, `,"forwarded_at":"`...)
		dst = e.raw.ForwardedAt.AppendFormat(dst, time.RFC3339Nano)
		dst = append(dst, '"')
	}
	dst = append(dst, `,"processed_at":"`...)
	dst = append(dst, processedAt...)
	return append(dst, `"}`...)
}

// appendJSONString appends s as a JSON string. Invalid UTF-8 becomes U+FFFD, as encoding/json does.
func appendJSONString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size == 1 {
				dst = append(dst, s[start:i]...)
				dst = append(dst, `\ufffd`...)
				i += size
				start = i
				continue
			}
			i += size
			continue
		}
		dst = append(dst, s[start:i]...)
		switch c {
		case '"', '\\':
			dst = append(dst, '\\', c)
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		default:
			dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
		}
		i++
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// arena hands out byte slices carved from large blocks, so encoding a batch costs a few allocations
// rather than one per record. A slice stays valid after later ones are carved (blocks are never
// reused).
type arena struct {
	block []byte
}

const arenaBlock = 64 << 10

// buf returns an empty slice with room for at least n bytes, to append to and pass to commit.
func (a *arena) buf(n int) []byte {
	if cap(a.block)-len(a.block) < n {
		a.block = make([]byte, 0, max(arenaBlock, n))
	}
	return a.block[len(a.block):len(a.block)]
}

// commit takes b, obtained from buf and appended to, and returns it capped at its length.
func (a *arena) commit(b []byte) []byte {
	if cap(b) == cap(a.block)-len(a.block) { // still in the block: append did not reallocate
		a.block = a.block[:len(a.block)+len(b)]
	}
	return b[:len(b):len(b)]
}
