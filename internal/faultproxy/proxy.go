// Package faultproxy is a fault-injecting HTTP proxy for the AWS JSON protocol (Kinesis, DynamoDB),
// meant to sit in front of a local emulator on 127.0.0.1 so that chaos tests can make one operation
// on one stream slow or unavailable while everything else works: point a process's
// AWS_ENDPOINT_URL_KINESIS at Proxy.URL.
//
// A request is matched against the active rules by operation (the X-Amz-Target suffix, e.g.
// "PutRecords") and stream (StreamName, or the name in StreamARN). The first matching rule decides:
// it may delay the request before forwarding it, answer it with an error without forwarding it, or
// fail every entry of a PutRecords call (HTTP 200, the way Kinesis reports throttling per record)
// without forwarding it. Such a faulted request never reaches the emulator, so the client's retry of
// it can never create a duplicate; a delayed one is forwarded once, after the delay. The one
// exception is LoseAnswer, which forwards the request and then cuts the answer off: the write
// happened, the client cannot know it, and sending it again writes it twice.
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
// Concurrency: a Proxy serves requests concurrently; Set, Remove, Counts and Load may be called
// from any goroutine while it runs.
package faultproxy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
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
)

// Rule is one fault. Zero Operation or Stream match any.
type Rule struct {
	Operation string // X-Amz-Target operation, e.g. "PutRecords"
	Stream    string // stream name
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

// Counts are what the proxy did with the requests of one operation and stream.
type Counts struct {
	Requests  int64 // requests seen
	Forwarded int64 // forwarded to the upstream
	Delayed   int64 // delayed by a rule (forwarded or not)
	Faulted   int64 // answered with a fault, not forwarded
	Entries   int64 // PutRecords entries in faulted calls
	Limited   int64 // PutRecords entries (or PutRecord calls) refused by ShardLimits
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
	reqID    atomic.Int64
	lim      *limiter // nil without ShardLimits
	load     *loadBook
	shed     atomic.Int64

	mu     sync.Mutex
	rules  []namedRule
	counts map[key]*Counts
}

type namedRule struct {
	name string
	Rule
	used int // requests the rule has applied to
}

type key struct{ op, stream string }

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
	p := &Proxy{cfg: cfg, upstream: up, ln: ln, log: cfg.Logger, served: make(chan struct{}), counts: map[key]*Counts{},
		load: newLoadBook(cfg.LoadHistory)}
	if cfg.ShardLimits != nil {
		p.lim = newLimiter(*cfg.ShardLimits, cfg.Now)
	}
	var transport http.RoundTripper = &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     30 * time.Second,
	}
	if cfg.MaxUpstream > 0 {
		transport = &slotTransport{next: transport, slots: make(chan struct{}, cfg.MaxUpstream), shed: &p.shed}
	}
	p.rp = &httputil.ReverseProxy{
		Rewrite:   func(r *httputil.ProxyRequest) { r.SetURL(up) },
		Transport: transport,
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
	next  http.RoundTripper
	slots chan struct{}
	shed  *atomic.Int64
}

func (t *slotTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	select {
	case t.slots <- struct{}{}:
	case <-req.Context().Done():
		t.shed.Add(1)
		return nil, fmt.Errorf("faultproxy: client gave up waiting for the upstream: %w", req.Context().Err())
	}
	resp, err := t.next.RoundTrip(req)
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

// Counts returns what the proxy did with operation op on stream (either may be "" to sum over all).
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
		}
	}
	return out
}

// match returns the first active rule for op and stream, if any, and counts the request.
func (p *Proxy) match(op, stream string) (Rule, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	c := p.counts[key{op, stream}]
	if c == nil {
		c = &Counts{}
		p.counts[key{op, stream}] = c
	}
	c.Requests++
	now := p.cfg.Now()
	for i := range p.rules {
		r := &p.rules[i]
		if (!r.Until.IsZero() && !now.Before(r.Until)) || (r.Times > 0 && r.used >= r.Times) {
			continue
		}
		if (r.Operation == "" || r.Operation == op) && (r.Stream == "" || r.Stream == stream) {
			r.used++
			return r.Rule, true
		}
	}
	return Rule{}, false
}

func (p *Proxy) count(op, stream string, f func(c *Counts)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	f(p.counts[key{op, stream}]) // created by match
}

// requestHead is the part of a JSON-protocol request body a rule can match on.
type requestHead struct {
	StreamName string
	StreamARN  string
	Records    []json.RawMessage
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
	var head requestHead
	_ = json.Unmarshal(body, &head) // a body that is not JSON matches rules without a stream only
	stream := head.StreamName
	if stream == "" && head.StreamARN != "" {
		stream = head.StreamARN[strings.LastIndexByte(head.StreamARN, '/')+1:]
	}
	rule, ok := p.match(op, stream)
	if ok && rule.Delay > 0 {
		p.count(op, stream, func(c *Counts) { c.Delayed++ })
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
			p.count(op, stream, func(c *Counts) { c.Faulted++; c.Entries += int64(len(head.Records)) })
			if typ == throttleCode {
				p.load.add(p.cfg.Now(), stream, 0, 0, int64(max(len(head.Records), 1)))
			}
			writeError(rw, status, typ, "fault proxy: "+op+" on "+stream+" refused", p.requestID())
			return
		case FailEntries:
			if op == "PutRecords" && len(head.Records) > 0 {
				p.count(op, stream, func(c *Counts) { c.Faulted++; c.Entries += int64(len(head.Records)) })
				if rule.ErrorType == "" || rule.ErrorType == throttleCode {
					p.load.add(p.cfg.Now(), stream, 0, 0, int64(len(head.Records)))
				}
				p.failEntries(rw, len(head.Records), rule.ErrorType)
				return
			}
		case LoseAnswer:
			p.count(op, stream, func(c *Counts) { c.Forwarded++; c.Faulted++; c.Entries += int64(len(head.Records)) })
			p.loseAnswer(rw, r, op, stream, body)
			return
		}
	}
	switch op {
	case "PutRecords":
		p.forwardPutRecords(rw, r, stream, body, head.Records)
		return
	case "PutRecord":
		p.forwardPutRecord(rw, r, stream, body)
		return
	}
	p.count(op, stream, func(c *Counts) { c.Forwarded++ })
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
	rw.Header().Set("X-Amzn-Requestid", p.requestID())
	rw.WriteHeader(http.StatusOK)
	_, _ = rw.Write(b)
}

// writeError answers in the AWS JSON protocol's error shape, which the SDK decodes into its typed
// exceptions (the type is in both the header and the body).
func writeError(rw http.ResponseWriter, status int, typ, msg, reqID string) {
	b, _ := json.Marshal(map[string]string{"__type": typ, "message": msg}) // strings only: cannot fail
	rw.Header().Set("Content-Type", "application/x-amz-json-1.1")
	rw.Header().Set("X-Amzn-Errortype", typ)
	if reqID != "" {
		rw.Header().Set("X-Amzn-Requestid", reqID)
	}
	rw.WriteHeader(status)
	_, _ = rw.Write(b)
}
