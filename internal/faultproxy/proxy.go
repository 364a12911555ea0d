// Package faultproxy is a fault-injecting HTTP proxy for the AWS JSON protocol (Kinesis, DynamoDB),
// meant to sit in front of a local emulator on 127.0.0.1 so that chaos tests can make one operation
// on one stream, shard or table slow or unavailable while everything else works: point a process's
// AWS_ENDPOINT_URL_KINESIS (or AWS_ENDPOINT_URL_DYNAMODB) at Proxy.URL.
//
// A request is matched against the active rules by operation (the X-Amz-Target suffix, e.g.
// "PutRecords", "GetRecords", "UpdateItem"), by stream (StreamName, or the name in StreamARN), by
// shard, by table (TableName, or a table of a batch call's RequestItems) and by strings its body
// must contain (e.g. a DynamoDB attribute name and a key). A GetRecords call names no stream or
// shard, only an iterator: the proxy learns which stream and shard every iterator it forwards
// belongs to (from GetShardIterator's request and answer, and from each GetRecords answer's
// NextShardIterator), so rules and counts by stream and shard apply to GetRecords too, as long as
// the client got its iterators through the proxy.
//
// The first matching rule decides: it may delay the request before forwarding it, answer it with an
// error without forwarding it, fail every entry of a PutRecords call (HTTP 200, the way Kinesis
// reports throttling per record) without forwarding it, or hold it without any answer until the
// client gives up (a timeout). Such a faulted request never reaches the emulator, so the client's
// retry of it can never create a duplicate; a delayed one is forwarded once, after the delay. The
// one exception is LoseAnswer, which forwards the request and then cuts the answer off: the write
// happened, the client cannot know it, and sending it again writes it twice.
//
// PutRecords and PutRecord calls in CBOR (the forwarder's encoding) are handled as the JSON calls
// they stand for and answered in CBOR (cbor.go); the emulator behind the proxy gets JSON.
//
// The proxy also counts the error answers of the emulator itself by error type (UpstreamErrors),
// e.g. the ExpiredIteratorException of a shard iterator used after five minutes.
//
// With Config.ShardLimits the proxy also enforces Kinesis's per-shard write limits (records/s and
// bytes/s), answering ProvisionedThroughputExceededException per entry above them, as Kinesis does:
// a refused entry never reaches the emulator, and the entries of the same call that fit are
// written. It maps a record to its shard by the MD5 of its partition key (or its ExplicitHashKey)
// over the open shards' hash key ranges, listed from the emulator and listed again after a reshard.
//
// Whatever the rules and limits, the proxy counts every stream's write load per second the way
// CloudWatch counts IncomingRecords, IncomingBytes and WriteProvisionedThroughputExceeded, and
// serves it (Load, and GET LoadPath on its address): the autoscaler's local metrics source.
//
// Concurrency: a Proxy serves requests concurrently; Set, Remove, Counts, UpstreamErrors and Load may be called
// from any goroutine while it runs.
package faultproxy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/kinesis-events/pipeline/internal/kinesiswire"
)

// Config configures a Proxy.
type Config struct {
	// Upstream is the emulator's base URL, e.g. http://127.0.0.1:4567. Required.
	Upstream string
	// Addr is the listen address. Default 127.0.0.1:0 (a free port on loopback).
	Addr string
	// MaxBody bounds the request body the proxy reads to match rules. Default 16 MiB (a PutRecords
	// call is at most 5 MiB of data, base64-encoded).
	MaxBody int64
	// Logger, default zap.NewNop().
	Logger *zap.Logger
	// Now is the clock rules' Until, the limits and the load samples use. Default time.Now.
	Now func() time.Time
	// ShardLimits, when set, enforces per-shard write limits (see ShardLimits).
	ShardLimits *ShardLimits
	// LoadHistory is how long per-second load samples are kept. Default 30 minutes.
	LoadHistory time.Duration
	// MaxUpstream bounds the requests in flight to the upstream at once (0: no bound). Requests wait
	// their turn; one whose client gives up while waiting is never sent (Shed counts them). It keeps
	// a single-threaded emulator from working through requests nobody waits for any more, which
	// under overload is what it would otherwise spend its time on.
	MaxUpstream int
}

// Validate reports a configuration that cannot work.
func (c Config) Validate() error {
	if c.Upstream == "" {
		return errors.New("faultproxy: Upstream is required")
	}
	u, err := url.Parse(c.Upstream)
	if err != nil {
		return fmt.Errorf("faultproxy: Upstream %q: %w", c.Upstream, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return fmt.Errorf("faultproxy: Upstream %q: want http(s)://host:port", c.Upstream)
	}
	var errs []error
	if c.MaxBody < 0 {
		errs = append(errs, fmt.Errorf("faultproxy: MaxBody %d is negative", c.MaxBody))
	}
	if c.LoadHistory < 0 || c.MaxUpstream < 0 {
		errs = append(errs, fmt.Errorf("faultproxy: LoadHistory %v and MaxUpstream %d must not be negative", c.LoadHistory, c.MaxUpstream))
	}
	if c.ShardLimits != nil {
		errs = append(errs, c.ShardLimits.validate())
	}
	return errors.Join(errs...)
}

// Fault says how a matched request is answered instead of being forwarded.
type Fault int

const (
	// Forward forwards the request (after the rule's Delay): no fault.
	Forward Fault = iota
	// FailCall answers the whole call with Status and ErrorType, e.g. 503 ServiceUnavailable or
	// 400 ProvisionedThroughputExceededException. The SDK's retryer retries both.
	FailCall
	// FailEntries answers a PutRecords call with HTTP 200 and every entry failed with ErrorType
	// (default ProvisionedThroughputExceededException): what Kinesis does when a stream throttles.
	// The SDK does not retry it; the caller sees FailedRecordCount = len(Records).
	FailEntries
	// LoseAnswer forwards the request (it is applied), then answers HTTP 200 with the upstream's
	// body cut off halfway and the connection closed: a write whose outcome the client cannot know.
	LoseAnswer
	// Hang does not forward the request and never answers it: the proxy holds the connection until
	// the client gives up (its timeout or cancellation closes it) or the proxy closes, then closes
	// it without a byte. The client sees a timeout; nothing reached the emulator.
	Hang
)

// Rule is one fault. Zero Operation, Stream, Shard, Table or Match match any.
type Rule struct {
	Operation string // X-Amz-Target operation, e.g. "PutRecords", "GetRecords", "UpdateItem"
	Stream    string // Kinesis stream name
	// Shard is a Kinesis shard id: the ShardId of a request that names one (GetShardIterator), or
	// the shard of a GetRecords call's iterator. A request whose shard the proxy cannot tell (an
	// iterator it never forwarded) does not match a rule with a Shard.
	Shard string
	// Table is a DynamoDB table name: TableName, or one of a batch call's RequestItems.
	Table string
	// Match lists strings that must all appear in the request body, e.g. `"Checkpoint"` and a
	// shard id to pick the checkpoint writes of one lease row out of every UpdateItem.
	Match []string
	// Delay is added before the request is forwarded or answered.
	Delay time.Duration
	Fault Fault
	// Status and ErrorType of FailCall (defaults 503, "ServiceUnavailable"); ErrorType of
	// FailEntries (default "ProvisionedThroughputExceededException").
	Status    int
	ErrorType string
	// Until ends the rule at this instant (zero: until Remove).
	Until time.Time
	// Times ends the rule once it has applied to that many requests (zero: no limit).
	Times int
}

// Counts are what the proxy did with the requests of one operation and stream (or table).
type Counts struct {
	Requests  int64 // requests seen
	Forwarded int64 // forwarded to the upstream
	Delayed   int64 // delayed by a rule (forwarded or not)
	Faulted   int64 // answered with a fault, not forwarded
	Entries   int64 // PutRecords entries in faulted calls
	Limited   int64 // PutRecords entries (or PutRecord calls) refused by ShardLimits
	// Records are the records the requests carried: PutRecords entries, one per PutRecord call.
	Records int64
	// Got and Empty are the records in the upstream's GetRecords answers, and the answers that
	// had none (an empty poll).
	Got, Empty int64
	// Waited and Upstream sum, over the requests forwarded through a MaxUpstream slot, the time
	// each waited for its slot and the time from sending it upstream to the answer's headers.
	Waited, Upstream time.Duration
}

// Proxy is a running fault-injecting proxy.
type Proxy struct {
	cfg      Config
	upstream *url.URL
	ln       net.Listener
	srv      *http.Server
	rp       *httputil.ReverseProxy
	log      *zap.Logger
	served   chan struct{}
	closing  chan struct{} // closed by Close: held (Hang) requests let go
	closeOne sync.Once
	reqID    atomic.Int64
	lim      *limiter // nil without ShardLimits
	load     *loadBook
	shed     atomic.Int64

	mu     sync.Mutex
	rules  []namedRule
	counts map[key]*Counts
	upErrs map[key]map[string]int64 // error answers of the upstream, by error type
	iters  map[string]iterOf        // shard iterator -> where it reads
	swept  time.Time
}

// iterOf is the stream and shard of a shard iterator the proxy forwarded, and when it learned it.
type iterOf struct {
	stream, shard string
	at            time.Time
}

// iterLife bounds how long the proxy remembers an iterator: Kinesis iterators expire after five
// minutes.
const iterLife = 6 * time.Minute

type namedRule struct {
	name string
	Rule
	used int // requests the rule has applied to
}

// key is an operation on a resource: a stream, or a table.
type key struct{ op, stream string }

// target is what a request is about, for rules and counts.
type target struct {
	op, stream, shard, table string
	body                     []byte
}

// resource is the name counts are kept under: the stream, else the table.
func (t target) resource() string {
	if t.stream != "" {
		return t.stream
	}
	return t.table
}

type ctxKey struct{}

// Start listens on cfg.Addr and serves until Close or until ctx ends.
func Start(ctx context.Context, cfg Config) (*Proxy, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	if cfg.MaxBody == 0 {
		cfg.MaxBody = 16 << 20
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.LoadHistory == 0 {
		cfg.LoadHistory = 30 * time.Minute
	}
	up, _ := url.Parse(cfg.Upstream) // validated
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("faultproxy: listen on %s: %w", cfg.Addr, err)
	}
	p := &Proxy{cfg: cfg, upstream: up, ln: ln, log: cfg.Logger, served: make(chan struct{}), closing: make(chan struct{}), counts: map[key]*Counts{},
		upErrs: map[key]map[string]int64{}, iters: map[string]iterOf{}, load: newLoadBook(cfg.LoadHistory)}
	if cfg.ShardLimits != nil {
		p.lim = newLimiter(*cfg.ShardLimits, cfg.Now)
	}
	var transport http.RoundTripper = &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     30 * time.Second,
	}
	if cfg.MaxUpstream > 0 {
		transport = &slotTransport{next: transport, slots: make(chan struct{}, cfg.MaxUpstream), shed: &p.shed,
			observe: func(req *http.Request, waited, upstream time.Duration) {
				if t, ok := req.Context().Value(ctxKey{}).(target); ok {
					p.count(t, func(c *Counts) { c.Waited += waited; c.Upstream += upstream })
				}
			}}
	}
	p.rp = &httputil.ReverseProxy{
		Rewrite:        func(r *httputil.ProxyRequest) { r.SetURL(up) },
		ModifyResponse: p.observe,
		Transport:      transport,
		ErrorHandler: func(rw http.ResponseWriter, r *http.Request, err error) {
			p.log.Warn("upstream call failed", zap.String("target", r.Header.Get("X-Amz-Target")), zap.Error(err))
			writeError(rw, http.StatusBadGateway, "InternalFailure", "fault proxy: upstream: "+err.Error(), "")
		},
	}
	p.srv = &http.Server{Handler: p, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		defer close(p.served)
		if err := p.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			p.log.Error("serve", zap.Error(err))
		}
	}()
	context.AfterFunc(ctx, func() { _ = p.Close() })
	return p, nil
}

// URL is the proxy's base URL, e.g. http://127.0.0.1:41234.
func (p *Proxy) URL() string { return "http://" + p.ln.Addr().String() }

// Close stops the proxy, cutting open connections, and waits for the server to stop. Idempotent.
func (p *Proxy) Close() error {
	p.closeOne.Do(func() { close(p.closing) })
	err := p.srv.Close()
	<-p.served
	if c, ok := p.rp.Transport.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
	return err
}

// Shed is the number of requests never sent upstream because their client gave up while they
// waited for Config.MaxUpstream.
func (p *Proxy) Shed() int64 { return p.shed.Load() }

// slotTransport lets at most cap(slots) requests be in flight to the upstream, a slot held until
// the answer's body is closed.
type slotTransport struct {
	next    http.RoundTripper
	slots   chan struct{}
	shed    *atomic.Int64
	observe func(req *http.Request, waited, upstream time.Duration) // each request sent upstream
}

func (t *slotTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	start := time.Now()
	select {
	case t.slots <- struct{}{}:
	case <-req.Context().Done():
		t.shed.Add(1)
		return nil, fmt.Errorf("faultproxy: client gave up waiting for the upstream: %w", req.Context().Err())
	}
	sent := time.Now()
	resp, err := t.next.RoundTrip(req)
	if t.observe != nil {
		t.observe(req, sent.Sub(start), time.Since(sent))
	}
	if err != nil {
		<-t.slots
		return nil, err
	}
	resp.Body = &slotBody{ReadCloser: resp.Body, release: sync.OnceFunc(func() { <-t.slots })}
	return resp, nil
}

func (t *slotTransport) CloseIdleConnections() {
	if c, ok := t.next.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

type slotBody struct {
	io.ReadCloser
	release func()
}

func (b *slotBody) Close() error {
	defer b.release()
	return b.ReadCloser.Close()
}

// Set adds or replaces the rule called name. Rules are matched in the order they were first set.
func (p *Proxy) Set(name string, r Rule) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := range p.rules {
		if p.rules[i].name == name {
			p.rules[i].Rule, p.rules[i].used = r, 0
			return
		}
	}
	p.rules = append(p.rules, namedRule{name: name, Rule: r})
}

// Remove deletes the rule called name (no-op when absent).
func (p *Proxy) Remove(name string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := range p.rules {
		if p.rules[i].name == name {
			p.rules = append(p.rules[:i], p.rules[i+1:]...)
			return
		}
	}
}

// Counts returns what the proxy did with operation op on stream, or on table (either may be "" to
// sum over all).
func (p *Proxy) Counts(op, stream string) Counts {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out Counts
	for k, c := range p.counts {
		if (op == "" || k.op == op) && (stream == "" || k.stream == stream) {
			out.Requests += c.Requests
			out.Forwarded += c.Forwarded
			out.Delayed += c.Delayed
			out.Faulted += c.Faulted
			out.Entries += c.Entries
			out.Limited += c.Limited
			out.Records += c.Records
			out.Got += c.Got
			out.Empty += c.Empty
			out.Waited += c.Waited
			out.Upstream += c.Upstream
		}
	}
	return out
}

// ByOperation returns what the proxy did with the requests of each operation, summed over
// streams and tables.
func (p *Proxy) ByOperation() map[string]Counts {
	p.mu.Lock()
	ops := map[string]bool{}
	for k := range p.counts {
		ops[k.op] = true
	}
	p.mu.Unlock()
	out := make(map[string]Counts, len(ops))
	for op := range ops {
		out[op] = p.Counts(op, "")
	}
	return out
}

// Applied returns how many requests the rule called name has applied to since it was set (0 when
// there is no such rule).
func (p *Proxy) Applied(name string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, r := range p.rules {
		if r.name == name {
			return r.used
		}
	}
	return 0
}

// UpstreamErrors returns the error answers the upstream gave to operation op on stream (or table),
// by error type, e.g. {"ExpiredIteratorException": 3}; either may be "" to sum over all.
func (p *Proxy) UpstreamErrors(op, stream string) map[string]int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[string]int64{}
	for k, m := range p.upErrs {
		if (op == "" || k.op == op) && (stream == "" || k.stream == stream) {
			for typ, n := range m {
				out[typ] += n
			}
		}
	}
	return out
}

// matches reports whether r applies to the request t.
func (r *Rule) matches(t target) bool {
	if (r.Operation != "" && r.Operation != t.op) || (r.Stream != "" && r.Stream != t.stream) ||
		(r.Shard != "" && r.Shard != t.shard) || (r.Table != "" && r.Table != t.table) {
		return false
	}
	for _, m := range r.Match {
		if !bytes.Contains(t.body, []byte(m)) {
			return false
		}
	}
	return true
}

// match returns the first active rule for the request, if any, and counts the request.
func (p *Proxy) match(t target) (Rule, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	k := key{t.op, t.resource()}
	c := p.counts[k]
	if c == nil {
		c = &Counts{}
		p.counts[k] = c
	}
	c.Requests++
	now := p.cfg.Now()
	for i := range p.rules {
		r := &p.rules[i]
		if (!r.Until.IsZero() && !now.Before(r.Until)) || (r.Times > 0 && r.used >= r.Times) {
			continue
		}
		if r.matches(t) {
			r.used++
			return r.Rule, true
		}
	}
	return Rule{}, false
}

func (p *Proxy) count(t target, f func(c *Counts)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	f(p.counts[key{t.op, t.resource()}]) // created by match
}

// requestHead is the part of a JSON-protocol request body a rule can match on.
type requestHead struct {
	StreamName    string
	StreamARN     string
	ShardID       string // ShardId: encoding/json matches field names case-insensitively
	ShardIterator string
	TableName     string
	RequestItems  map[string]json.RawMessage
	Records       []json.RawMessage

	// Of a PutRecords body read by kinesiswire.ScanPutRecordsRequest (entries nil otherwise): the
	// entries as the limiter sees them, and the Records array's place in the body.
	entries              []entry
	recordsAt, recordsTo int
}

// targetOf reads what a request is about from its operation and body.
func (p *Proxy) targetOf(op string, body []byte) (target, requestHead) {
	var head requestHead
	if op == "PutRecords" {
		// The biggest bodies by far, read with a scan that skips the data instead of decoding it.
		if req, err := kinesiswire.ScanPutRecordsRequest(string(body)); err == nil {
			head.StreamName, head.StreamARN = req.StreamName, req.StreamARN
			head.Records, head.entries = make([]json.RawMessage, len(req.Records)), make([]entry, len(req.Records))
			for i, e := range req.Records {
				head.Records[i] = body[e.Start:e.End:e.End]
				head.entries[i] = entry{key: e.PartitionKey, explicit: e.ExplicitHashKey, size: e.DataLen + len(e.PartitionKey)}
			}
			head.recordsAt, head.recordsTo = req.RecordsStart, req.RecordsEnd
		}
	}
	if head.entries == nil {
		_ = json.Unmarshal(body, &head) // a body that is not JSON matches rules without a resource only
	}
	t := target{op: op, stream: head.StreamName, shard: head.ShardID, table: head.TableName, body: body}
	if t.stream == "" && head.StreamARN != "" {
		t.stream = head.StreamARN[strings.LastIndexByte(head.StreamARN, '/')+1:]
	}
	if t.table == "" && len(head.RequestItems) == 1 {
		for name := range head.RequestItems {
			t.table = name
		}
	}
	if head.ShardIterator != "" {
		p.mu.Lock()
		if it, ok := p.iters[head.ShardIterator]; ok {
			if t.stream == "" {
				t.stream = it.stream
			}
			t.shard = it.shard
		}
		p.mu.Unlock()
	}
	return t, head
}

// learnIterator remembers which stream and shard iterator reads, and forgets iterators past
// their life now and then.
func (p *Proxy) learnIterator(iterator, stream, shard string) {
	if iterator == "" || shard == "" {
		return
	}
	now := p.cfg.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.iters[iterator] = iterOf{stream: stream, shard: shard, at: now}
	if now.Sub(p.swept) > time.Minute {
		p.swept = now
		for it, v := range p.iters {
			if now.Sub(v.at) > iterLife {
				delete(p.iters, it)
			}
		}
	}
}

// observe reads the upstream's answer to a forwarded request: its error type when it failed, and
// the shard iterators it hands out.
func (p *Proxy) observe(resp *http.Response) error {
	t, ok := resp.Request.Context().Value(ctxKey{}).(target)
	if !ok {
		return nil
	}
	if resp.StatusCode < 400 && t.op != "GetShardIterator" && t.op != "GetRecords" {
		return nil
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("fault proxy: reading the upstream's answer: %w", err)
	}
	if resp.StatusCode >= 400 {
		typ := resp.Header.Get("X-Amzn-Errortype")
		var e struct {
			Type string `json:"__type"`
		}
		if typ == "" && json.Unmarshal(body, &e) == nil {
			typ = e.Type
		}
		if i := strings.LastIndexByte(typ, '#'); i >= 0 { // "com.amazonaws.kinesis.v20131202#ExpiredIteratorException"
			typ = typ[i+1:]
		}
		if i := strings.IndexByte(typ, ':'); i >= 0 { // "ExpiredIteratorException:http://..."
			typ = typ[:i]
		}
		if typ == "" {
			typ = strconv.Itoa(resp.StatusCode)
		}
		p.mu.Lock()
		k := key{t.op, t.resource()}
		if p.upErrs[k] == nil {
			p.upErrs[k] = map[string]int64{}
		}
		p.upErrs[k][typ]++
		p.mu.Unlock()
		return nil
	}
	var out struct {
		ShardIterator, NextShardIterator string
		Records                          []struct{} // counted, not read
	}
	if json.Unmarshal(body, &out) == nil {
		p.learnIterator(out.ShardIterator, t.stream, t.shard)
		p.learnIterator(out.NextShardIterator, t.stream, t.shard)
		if t.op == "GetRecords" {
			p.count(t, func(c *Counts) {
				c.Got += int64(len(out.Records))
				if len(out.Records) == 0 {
					c.Empty++
				}
			})
		}
	}
	return nil
}

func (p *Proxy) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet && r.URL.Path == LoadPath {
		p.serveLoad(rw, r)
		return
	}
	target := r.Header.Get("X-Amz-Target")
	op := target[strings.LastIndexByte(target, '.')+1:]
	body, err := io.ReadAll(io.LimitReader(r.Body, p.cfg.MaxBody+1))
	r.Body.Close()
	if err != nil {
		writeError(rw, http.StatusBadRequest, "SerializationException", "fault proxy: reading the request: "+err.Error(), "")
		return
	}
	if int64(len(body)) > p.cfg.MaxBody {
		writeError(rw, http.StatusRequestEntityTooLarge, "SerializationException", "fault proxy: request body over MaxBody", "")
		return
	}
	if inCBOR(op, r.Header.Get("Content-Type")) {
		answer := newCBORAnswer(rw)
		defer answer.finish()
		rw = answer
		if body, err = cborRequestAsJSON(body); err != nil {
			writeError(rw, http.StatusBadRequest, "SerializationException", "fault proxy: "+err.Error(), p.requestID())
			return
		}
		r.Header.Set("Content-Type", kinesiswire.ContentType)
	}
	t, head := p.targetOf(op, body)
	stream := t.resource()
	rule, ok := p.match(t)
	switch op {
	case "PutRecords":
		p.count(t, func(c *Counts) { c.Records += int64(len(head.Records)) })
	case "PutRecord":
		p.count(t, func(c *Counts) { c.Records++ })
	}
	if ok && rule.Delay > 0 {
		p.count(t, func(c *Counts) { c.Delayed++ })
		t := time.NewTimer(rule.Delay)
		select {
		case <-t.C:
		case <-r.Context().Done(): // the client gave up: nothing was forwarded
			t.Stop()
			return
		}
	}
	if ok {
		switch rule.Fault {
		case FailCall:
			status, typ := rule.Status, rule.ErrorType
			if status == 0 {
				status = http.StatusServiceUnavailable
			}
			if typ == "" {
				typ = "ServiceUnavailable"
			}
			p.count(t, func(c *Counts) { c.Faulted++; c.Entries += int64(len(head.Records)) })
			if typ == throttleCode {
				p.load.add(p.cfg.Now(), stream, 0, 0, int64(max(len(head.Records), 1)))
			}
			writeError(rw, status, typ, "fault proxy: "+op+" on "+stream+" refused", p.requestID())
			return
		case FailEntries:
			if op == "PutRecords" && len(head.Records) > 0 {
				p.count(t, func(c *Counts) { c.Faulted++; c.Entries += int64(len(head.Records)) })
				if rule.ErrorType == "" || rule.ErrorType == throttleCode {
					p.load.add(p.cfg.Now(), stream, 0, 0, int64(len(head.Records)))
				}
				p.failEntries(rw, len(head.Records), rule.ErrorType)
				return
			}
		case LoseAnswer:
			p.count(t, func(c *Counts) { c.Forwarded++; c.Faulted++; c.Entries += int64(len(head.Records)) })
			p.loseAnswer(rw, r.WithContext(context.WithValue(r.Context(), ctxKey{}, t)), op, stream, body)
			return
		case Hang:
			p.count(t, func(c *Counts) { c.Faulted++; c.Entries += int64(len(head.Records)) })
			p.hang(rw, r)
			return
		}
	}
	r = r.WithContext(context.WithValue(r.Context(), ctxKey{}, t))
	switch op {
	case "PutRecords":
		p.forwardPutRecords(rw, r, stream, body, head)
		return
	case "PutRecord":
		p.forwardPutRecord(rw, r, stream, body)
		return
	}
	p.count(t, func(c *Counts) { c.Forwarded++ })
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	p.rp.ServeHTTP(rw, r)
	switch op {
	case "SplitShard", "MergeShards", "UpdateShardCount":
		if p.lim != nil {
			p.lim.invalidate(stream)
		}
	}
}

// hang holds r unanswered until the client goes away or the proxy closes, then closes the
// connection without an answer.
func (p *Proxy) hang(rw http.ResponseWriter, r *http.Request) {
	select {
	case <-r.Context().Done(): // the client closed the connection, or the server is closing
	case <-p.closing:
	}
	if conn, _, err := http.NewResponseController(rw).Hijack(); err == nil {
		conn.Close()
	}
}

// loseAnswer forwards r to the upstream, then sends the client the upstream's status and headers
// with half of its body, and closes the connection. What it wrote counts in the stream's load.
func (p *Proxy) loseAnswer(rw http.ResponseWriter, r *http.Request, op, stream string, body []byte) {
	got := p.roundTrip(r, body)
	p.countLanded(op, stream, body, &got)
	conn, buf, err := http.NewResponseController(rw).Hijack()
	if err != nil {
		p.cfg.Logger.Warn("fault proxy: cannot hijack the connection to lose an answer", zap.Error(err))
		return
	}
	defer conn.Close()
	if got.status == 0 {
		got.status = http.StatusOK
	}
	fmt.Fprintf(buf, "HTTP/1.1 %d %s\r\n", got.status, http.StatusText(got.status))
	got.header.Del("Content-Length")
	got.header.Write(buf)
	fmt.Fprintf(buf, "Content-Length: %d\r\n\r\n", got.body.Len())
	buf.Write(got.body.Bytes()[:got.body.Len()/2])
	buf.Flush()
}

// cutOff records the upstream's answer for loseAnswer.
type cutOff struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (c *cutOff) Header() http.Header {
	if c.header == nil {
		c.header = http.Header{}
	}
	return c.header
}

func (c *cutOff) WriteHeader(status int) {
	if c.status == 0 {
		c.status = status
	}
}

func (c *cutOff) Write(b []byte) (int, error) {
	c.WriteHeader(http.StatusOK)
	return c.body.Write(b)
}

func (p *Proxy) requestID() string {
	return "faultproxy-" + strconv.FormatInt(p.reqID.Add(1), 10)
}

type entryResult struct {
	ErrorCode    string
	ErrorMessage string
}

func (p *Proxy) failEntries(rw http.ResponseWriter, n int, code string) {
	if code == "" {
		code = "ProvisionedThroughputExceededException"
	}
	out := struct {
		FailedRecordCount int
		Records           []entryResult
	}{FailedRecordCount: n, Records: make([]entryResult, n)}
	for i := range out.Records {
		out.Records[i] = entryResult{ErrorCode: code, ErrorMessage: "fault proxy: entry refused"}
	}
	b, _ := json.Marshal(out) // plain strings and ints: cannot fail
	rw.Header().Set("Content-Type", "application/x-amz-json-1.1")
	rw.Header().Set("X-Amz-Crc32", strconv.FormatUint(uint64(crc32.ChecksumIEEE(b)), 10))
	rw.Header().Set("X-Amzn-Requestid", p.requestID())
	rw.WriteHeader(http.StatusOK)
	_, _ = rw.Write(b)
}

// writeError answers in the AWS JSON protocol's error shape, which the SDK decodes into its typed
// exceptions (the type is in both the header and the body), with the CRC32 of the body that
// DynamoDB sends and its SDK checks.
func writeError(rw http.ResponseWriter, status int, typ, msg, reqID string) {
	b, _ := json.Marshal(map[string]string{"__type": typ, "message": msg}) // strings only: cannot fail
	rw.Header().Set("Content-Type", "application/x-amz-json-1.1")
	rw.Header().Set("X-Amz-Crc32", strconv.FormatUint(uint64(crc32.ChecksumIEEE(b)), 10))
	rw.Header().Set("X-Amzn-Errortype", typ)
	if reqID != "" {
		rw.Header().Set("X-Amzn-Requestid", reqID)
	}
	rw.WriteHeader(status)
	_, _ = rw.Write(b)
}
