package faultproxy

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"go.uber.org/zap"
)

const throttleCode = "ProvisionedThroughputExceededException"

// putEntry is the part of a PutRecords entry (or a PutRecord request) the proxy reads.
type putEntry struct {
	Data            string
	PartitionKey    string
	ExplicitHashKey string
}

func (e putEntry) entry() entry {
	return entry{key: e.PartitionKey, explicit: e.ExplicitHashKey, size: decodedLen(e.Data) + len(e.PartitionKey)}
}

// decodedLen is the length of the bytes a standard base64 text encodes (the SDK pads).
func decodedLen(s string) int {
	pad := len(s) - len(strings.TrimRight(s, "="))
	return max(0, base64.StdEncoding.DecodedLen(len(s))-pad)
}

func entriesOf(raws []json.RawMessage) []entry {
	es := make([]entry, len(raws))
	for i, raw := range raws {
		var e putEntry
		_ = json.Unmarshal(raw, &e) // an entry that does not decode counts as empty; the emulator judges it
		es[i] = e.entry()
	}
	return es
}

// throttleMessage is Kinesis's wording for an entry over its shard's limit.
func throttleMessage(stream, shard string) string {
	return fmt.Sprintf("Rate exceeded for shard %s in stream %s under account 000000000000.", shard, stream)
}

// admit runs the limiter over es (every entry is admitted without limits).
func (p *Proxy) admit(r *http.Request, stream string, es []entry) ([]bool, []string) {
	if p.lim == nil {
		ok := make([]bool, len(es))
		for i := range ok {
			ok[i] = true
		}
		return ok, make([]string, len(es))
	}
	ok, shards, err := p.lim.admit(r.Context(), stream, es)
	if err != nil {
		p.log.Warn("cannot map records to shards; not limiting this call", zap.String("stream", stream), zap.Error(err))
	}
	return ok, shards
}

// forwardPutRecords forwards the entries of a PutRecords call that fit their shards' limits,
// answers the others with ProvisionedThroughputExceededException in the same answer, in the
// request's order, and counts the stream's load from the emulator's answer.
func (p *Proxy) forwardPutRecords(rw http.ResponseWriter, r *http.Request, stream string, body []byte, head requestHead) {
	raws, es := head.Records, head.entries
	if es == nil {
		es = entriesOf(raws)
	}
	ok, shards := p.admit(r, stream, es)
	var allowed []int
	for i, y := range ok {
		if y {
			allowed = append(allowed, i)
		}
	}
	limited := len(es) - len(allowed)
	now := p.cfg.Now()
	if limited > 0 {
		p.count(target{op: "PutRecords", stream: stream}, func(c *Counts) { c.Limited += int64(limited) })
	}
	if len(allowed) == 0 {
		p.load.add(now, stream, 0, 0, int64(limited))
		p.answerPutRecords(rw, nil, stream, es, shards, nil, nil)
		return
	}
	p.count(target{op: "PutRecords", stream: stream}, func(c *Counts) { c.Forwarded++ })
	up := body
	switch {
	case limited > 0 && head.recordsTo > 0:
		// The body with only the allowed entries in its Records array, everything else as sent.
		b := make([]byte, 0, len(body))
		b = append(b, body[:head.recordsAt]...)
		b = append(b, '[')
		for k, i := range allowed {
			if k > 0 {
				b = append(b, ',')
			}
			b = append(b, raws[i]...)
		}
		b = append(b, ']')
		up = append(b, body[head.recordsTo:]...)
	case limited > 0:
		var req map[string]json.RawMessage
		if err := json.Unmarshal(body, &req); err != nil {
			writeError(rw, http.StatusBadRequest, "SerializationException", "fault proxy: "+err.Error(), p.requestID())
			return
		}
		keep := make([]json.RawMessage, len(allowed))
		for k, i := range allowed {
			keep[k] = raws[i]
		}
		req["Records"], _ = json.Marshal(keep) // raw messages: cannot fail
		up, _ = json.Marshal(req)
	}
	got := p.roundTrip(r, up)
	var ans map[string]json.RawMessage
	var results []json.RawMessage
	if got.status != http.StatusOK || json.Unmarshal(got.body.Bytes(), &ans) != nil || json.Unmarshal(ans["Records"], &results) != nil || len(results) != len(allowed) {
		// An error, or an answer the proxy does not understand: the client sees it as it is.
		got.writeTo(rw, got.body.Bytes())
		return
	}
	records, bytesIn, throttled := int64(0), int64(0), int64(limited)
	for k, i := range allowed {
		code := errorCode(results[k])
		switch {
		case code == "":
			records++
			bytesIn += int64(es[i].size)
		case code == throttleCode:
			throttled++
		}
	}
	p.load.add(now, stream, records, bytesIn, throttled)
	if limited == 0 {
		got.writeTo(rw, got.body.Bytes())
		return
	}
	p.answerPutRecords(rw, &got, stream, es, shards, allowed, results)
}

// answerPutRecords writes a PutRecords answer: the emulator's results at the allowed positions,
// ProvisionedThroughputExceededException everywhere else. got is nil when nothing was forwarded.
func (p *Proxy) answerPutRecords(rw http.ResponseWriter, got *cutOff, stream string, es []entry, shards []string, allowed []int, results []json.RawMessage) {
	out := make([]json.RawMessage, len(es))
	for k, i := range allowed {
		out[i] = results[k]
	}
	failed := 0
	for i := range out {
		if out[i] == nil {
			out[i], _ = json.Marshal(entryResult{ErrorCode: throttleCode, ErrorMessage: throttleMessage(stream, shards[i])})
		}
		if errorCode(out[i]) != "" {
			failed++
		}
	}
	ans := map[string]json.RawMessage{}
	if got != nil {
		_ = json.Unmarshal(got.body.Bytes(), &ans) // decoded once already by the caller
	}
	ans["Records"], _ = json.Marshal(out)
	ans["FailedRecordCount"] = json.RawMessage(strconv.Itoa(failed))
	b, _ := json.Marshal(ans) // raw messages: cannot fail
	if got == nil {
		got = &cutOff{status: http.StatusOK}
		got.Header().Set("Content-Type", "application/x-amz-json-1.1")
		got.Header().Set("X-Amzn-Requestid", p.requestID())
	}
	got.writeTo(rw, b)
}

// forwardPutRecord is forwardPutRecords for the single-record call: over the limit it answers
// HTTP 400 ProvisionedThroughputExceededException, as Kinesis does.
func (p *Proxy) forwardPutRecord(rw http.ResponseWriter, r *http.Request, stream string, body []byte) {
	var pe putEntry
	_ = json.Unmarshal(body, &pe) // not JSON: the emulator answers it
	es := []entry{pe.entry()}
	ok, shards := p.admit(r, stream, es)
	now := p.cfg.Now()
	if !ok[0] {
		p.count(target{op: "PutRecord", stream: stream}, func(c *Counts) { c.Limited++ })
		p.load.add(now, stream, 0, 0, 1)
		writeError(rw, http.StatusBadRequest, throttleCode, throttleMessage(stream, shards[0]), p.requestID())
		return
	}
	p.count(target{op: "PutRecord", stream: stream}, func(c *Counts) { c.Forwarded++ })
	got := p.roundTrip(r, body)
	if got.status == http.StatusOK {
		p.load.add(now, stream, 1, int64(es[0].size), 0)
	} else if strings.Contains(got.header.Get("X-Amzn-Errortype"), throttleCode) {
		p.load.add(now, stream, 0, 0, 1)
	}
	got.writeTo(rw, got.body.Bytes())
}

// countLanded counts the load of a PutRecords or PutRecord call whose answer the proxy recorded
// (LoseAnswer: the write happened even though the client never learns it).
func (p *Proxy) countLanded(op, stream string, body []byte, got *cutOff) {
	if got.status != http.StatusOK {
		return
	}
	now := p.cfg.Now()
	switch op {
	case "PutRecord":
		var pe putEntry
		_ = json.Unmarshal(body, &pe) // forwarded as it was
		p.load.add(now, stream, 1, int64(pe.entry().size), 0)
	case "PutRecords":
		var head requestHead
		var ans struct{ Records []json.RawMessage }
		if json.Unmarshal(body, &head) != nil || json.Unmarshal(got.body.Bytes(), &ans) != nil || len(ans.Records) != len(head.Records) {
			return
		}
		es := entriesOf(head.Records)
		var records, bytesIn, throttled int64
		for i, res := range ans.Records {
			switch errorCode(res) {
			case "":
				records++
				bytesIn += int64(es[i].size)
			case throttleCode:
				throttled++
			}
		}
		p.load.add(now, stream, records, bytesIn, throttled)
	}
}

func errorCode(raw json.RawMessage) string {
	var res struct{ ErrorCode string }
	_ = json.Unmarshal(raw, &res) // a result without ErrorCode is a success
	return res.ErrorCode
}

// roundTrip sends r with body to the upstream and records the answer.
func (p *Proxy) roundTrip(r *http.Request, body []byte) cutOff {
	var got cutOff
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	p.rp.ServeHTTP(&got, r)
	if got.status == 0 {
		got.status = http.StatusOK
	}
	return got
}

// writeTo sends a recorded answer to the client with body (the recorded one, or a rewritten
// one: its length and checksum headers are dropped and the length set anew).
func (c *cutOff) writeTo(rw http.ResponseWriter, body []byte) {
	h := rw.Header()
	for k, vs := range c.Header() {
		switch http.CanonicalHeaderKey(k) {
		case "Content-Length", "X-Amz-Crc32":
			continue
		}
		h[k] = vs
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	rw.WriteHeader(c.status)
	_, _ = rw.Write(body) // the client went away: nothing to do
}
