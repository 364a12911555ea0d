package forwarder

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/kinesis-events/pipeline/event"
	"github.com/kinesis-events/pipeline/internal/ordered"
)

// ErrNotForwarded is returned (wrapped, with counts and the first failure) by ForwardStream,
// ForwardBatch and ForwardEvents when at least one event was neither forwarded nor quarantined.
var ErrNotForwarded = errors.New("events neither forwarded nor quarantined")

// StreamOptions tunes one local-mode run.
type StreamOptions struct {
	// Source names the input in quarantine records and errors ("stdin", a file path); default "input".
	Source string
	// FailedOut, when set, receives the original of every event that was neither forwarded nor
	// quarantined, one per line, so it can be fed back later. A customer's failed events come out in
	// input order. Nil keeps no originals.
	FailedOut io.Writer
}

// maxFailedLines bounds Result.FailedLines.
const maxFailedLines = 100

// Result summarises one local-mode run. The JSON names are the ones the command's summary uses.
type Result struct {
	Source        string                 `json:"source"`
	Lines         int64                  `json:"lines"` // lines (events) read, blank lines included
	Blank         int64                  `json:"blank"` // empty lines, skipped
	Forwarded     int64                  `json:"forwarded"`
	Quarantined   int64                  `json:"quarantined"`
	QuarantinedBy map[event.Reason]int64 `json:"quarantined_by,omitempty"`
	Failed        int64                  `json:"failed"`                 // neither forwarded nor quarantined
	FailedLines   []int64                `json:"failed_lines,omitempty"` // the first 100, in order of failure
	Retries       int64                  `json:"retries"`
	Throttles     int64                  `json:"throttles"`
	Batches       int64                  `json:"batches"`
	// Unknown counts entries sent in attempts whose outcome was unknown, once per attempt: the most
	// byte-identical extra copies the run can have written (Stats.Unknown).
	Unknown int64 `json:"unknown_outcome"`
	// DoneThrough is the highest line N such that every line 1..N was forwarded, quarantined or
	// blank. After a failed or cancelled run, feeding the input again from line N+1 loses nothing
	// (events after N that were written already arrive twice; the worker's dedupe drops them).
	DoneThrough int64         `json:"done_through"`
	Elapsed     time.Duration `json:"elapsed_ns"`
}

// ForwardStream forwards newline-delimited EventBridge events from r (local mode) and returns when
// r is exhausted and every event is forwarded, quarantined or failed, or when ctx is cancelled.
// Blank lines are skipped; every other line is forwarded or quarantined with its line number, never
// dropped. Records go out in PutRecords batches of at most Config.BatchSize records and
// Config.BatchBytes bytes, Config.Concurrency calls in flight, at most one record per customer in
// flight; a call that is not full goes out only while no other is in flight (the next one starts as
// soon as a batch fills or that call returns); failed entries alone are retried. On cancellation,
// calls in flight get Config.DrainTimeout to finish so the counts stay exact; a goroutine blocked in
// r.Read stays blocked until it returns.
//
// The error wraps ErrNotForwarded when Result.Failed > 0, ctx's error when cancelled, ErrFatalPut
// when Kinesis refused the stream, and the read error when r failed; the Result is valid in every
// case.
func (f *Forwarder) ForwardStream(ctx context.Context, r io.Reader, opts StreamOptions) (Result, error) {
	// Without FailedOut no entry keeps its input past prepare, so a line can be lent from the reader's
	// buffer instead of copied.
	lr := &lineReader{br: bufio.NewReaderSize(r, 64<<10), lend: opts.FailedOut == nil}
	src := opts.source()
	// The next line may block (r is a pipe, a socket) once nothing is buffered: what was read
	// goes to the writer first.
	idle := func() bool { return lr.br.Buffered() == 0 }
	return f.run(ctx, opts, idle, func() (*entry, error) {
		in, err := lr.next()
		if err != nil {
			return nil, err
		}
		in.source = src
		return f.prepare(in), nil
	})
}

// ForwardBatch forwards lines, each one EventBridge event as JSON (its line number in quarantine
// records and Result is its index + 1), exactly as ForwardStream would: the load generator's
// in-process path. It returns when every line is forwarded, quarantined or failed. Successive calls
// keep each customer's order; overlapping calls do not order against each other.
func (f *Forwarder) ForwardBatch(ctx context.Context, lines [][]byte, opts StreamOptions) (Result, error) {
	i := 0
	src := opts.source()
	return f.run(ctx, opts, nil, func() (*entry, error) {
		if i == len(lines) {
			return nil, io.EOF
		}
		i++
		return f.prepare(newInput(lines[i-1], int64(i), src)), nil
	})
}

// ForwardEvents is ForwardBatch for events already built as structs; each detail is forwarded
// verbatim (it is not re-encoded).
func (f *Forwarder) ForwardEvents(ctx context.Context, evs []event.BridgeEvent, opts StreamOptions) (Result, error) {
	i := 0
	src := opts.source()
	return f.run(ctx, opts, nil, func() (*entry, error) {
		if i == len(evs) {
			return nil, io.EOF
		}
		i++
		return f.prepareEvent(evs[i-1], int64(i), src), nil
	})
}

func (o StreamOptions) source() string {
	if o.Source == "" {
		return "input"
	}
	return o.Source
}

// lineReader reads lines of any length, keeping at most MaxLineBytes of each (a prefix of
// maxOriginalBytes when longer), so one huge line cannot exhaust memory. With lend, a line read in
// one piece is a slice of the reader's buffer, valid only until the next call.
type lineReader struct {
	br   *bufio.Reader
	line int64
	lend bool
}

func (lr *lineReader) next() (input, error) {
	var (
		buf       []byte
		size      int64
		truncated bool
		newline   bool
	)
	for {
		frag, err := lr.br.ReadSlice('\n')
		size += int64(len(frag))
		switch {
		case truncated:
		case lr.lend && buf == nil && !errors.Is(err, bufio.ErrBufferFull):
			buf = frag
		case len(buf)+len(frag) <= MaxLineBytes+1: // + the newline
			buf = append(buf, frag...)
		default:
			truncated = true
			buf = buf[:min(len(buf), maxOriginalBytes)]
			buf = append(buf, frag[:min(len(frag), maxOriginalBytes-len(buf))]...)
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if errors.Is(err, io.EOF) && size == 0 {
			return input{}, io.EOF
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return input{}, fmt.Errorf("line %d: %w", lr.line+1, err)
		}
		newline = err == nil
		break
	}
	lr.line++
	if newline {
		size--
		if !truncated {
			buf = buf[:len(buf)-1]
		}
	}
	if n := len(buf); !truncated && n > 0 && buf[n-1] == '\r' {
		buf, size = buf[:n-1], size-1
	}
	return input{data: buf, size: size, truncated: truncated || size > MaxLineBytes, line: lr.line}, nil
}

type batchCall struct {
	lane lane
	es   []*entry
	recs []*ordered.Record
}

type batchDone struct {
	lane lane
	es   []*entry
	res  ordered.Result
}

// runState is one local-mode run. All of it is owned by the run's loop goroutine.
type runState struct {
	f        *Forwarder
	opts     StreamOptions
	res      Result
	keepOrig bool

	// queues hold the entries per lane (raw, quarantine) and keep the per-key rule (at most one
	// record per customer out, across concurrent calls and retries; a customer given up on fails
	// its later events) and the retry policy: internal/ordered.
	queues [2]*ordered.Queue[*entry]
	// written collects the entries a Complete call wrote, to be recycled once it has returned.
	written []*entry
	done    lineSet // finished lines above res.DoneThrough

	pending, pendingBytes int // accepted entries not finished
	// useful remembers, for each of the last len(useful) entries accepted, whether it can go out
	// as soon as a call has room for it: its customer had nothing pending, or only the event it
	// now waits behind. nUseful counts the true ones: the read-ahead's yield.
	useful   []bool
	usefulAt int
	nUseful  int
	inflight int // PutRecords calls in flight
	// calls hands batches to the run's Concurrency callers, results brings their answers back: a
	// caller lives as long as the run, so the stack the SDK's call grows is kept, not grown again
	// (and copied, into fresh memory) for every call.
	calls   chan batchCall
	results chan batchDone
	sendCtx context.Context

	abortErr     error
	minFailed    int64 // the lowest failed line, 0 while none failed
	firstFailure string
	failedOutErr error
}

// readChunk is how many prepared entries the reading goroutine hands over at once: one hand-off
// per event woke the writing goroutine (and often a thread) for every event, a tenth of local
// mode's CPU.
const readChunk = 64

// run drives one local-mode run: a goroutine reads and prepares entries and hands them over in
// chunks of up to readChunk, a chunk as soon as idle (nil: never) says the next read may block;
// this goroutine batches, sends, retries and accounts for them.
func (f *Forwarder) run(ctx context.Context, opts StreamOptions, idle func() bool, next func() (*entry, error)) (Result, error) {
	start := time.Now()
	r, err := f.newRun(opts)
	if err != nil {
		return r.res, err
	}

	readCtx, stopReading := context.WithCancel(ctx)
	defer stopReading()
	sendCtx, cancelSends := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelSends()
	r.sendCtx = sendCtx
	var callers sync.WaitGroup
	for range f.cfg.Concurrency {
		callers.Go(func() {
			for c := range r.calls {
				r.results <- batchDone{lane: c.lane, es: c.es, res: f.streams[c.lane].Put(sendCtx, c.recs)}
			}
		})
	}
	defer callers.Wait()
	defer close(r.calls) // the loop returns with no call in flight

	entries := make(chan []*entry, 2)
	var readErr error // written before entries is closed
	go func() {
		defer close(entries)
		chunk := make([]*entry, 0, readChunk)
		hand := func() bool {
			select {
			case entries <- chunk:
				chunk = make([]*entry, 0, readChunk)
				return true
			case <-readCtx.Done():
				return false
			}
		}
		for {
			if len(chunk) == readChunk || (len(chunk) > 0 && idle != nil && idle()) {
				if !hand() {
					return
				}
			}
			e, err := next()
			if err != nil {
				if len(chunk) > 0 && !hand() {
					return
				}
				if !errors.Is(err, io.EOF) {
					readErr = err
				}
				return
			}
			if !r.keepOrig {
				e.orig = nil
			}
			chunk = append(chunk, e)
		}
	}()

	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	var drain *time.Timer
	in := entries
	var carry []*entry // the rest of the last chunk taken, not yet accepted
	for {
		// Take whatever input is ready before forming batches, so batches fill up.
	absorb:
		for r.abortErr == nil && r.canAccept() {
			if len(carry) == 0 {
				if in == nil {
					break
				}
				select {
				case es, ok := <-in:
					if !ok {
						in = nil
						break absorb
					}
					carry = es
				default:
					break absorb
				}
			}
			r.add(carry[0])
			carry[0], carry = nil, carry[1:]
		}
		if r.abortErr == nil && ctx.Err() != nil {
			r.abort(fmt.Errorf("run stopped: %w", ctx.Err()))
		}
		if r.abortErr != nil && drain == nil {
			stopReading()
			drain = time.AfterFunc(f.cfg.DrainTimeout, cancelSends)
			defer drain.Stop()
		}
		r.dispatch()
		if ((in == nil && len(carry) == 0) || r.abortErr != nil) && r.pending == 0 && r.inflight == 0 {
			break
		}
		var inC <-chan []*entry
		if in != nil && len(carry) == 0 && r.abortErr == nil && r.canAccept() {
			inC = in
		}
		var timerC <-chan time.Time
		if due, ok := r.nextDue(); ok {
			timer.Reset(time.Until(due))
			timerC = timer.C
		}
		var doneC <-chan struct{}
		if r.abortErr == nil {
			doneC = ctx.Done()
		}
		select {
		case es, ok := <-inC:
			if !ok {
				in = nil
				continue
			}
			carry = es // accepted at the top of the loop
		case b := <-r.results:
			r.complete(b)
		case <-timerC:
			r.promote(time.Now())
		case <-doneC: // handled at the top of the loop
		}
	}
	r.res.Elapsed = time.Since(start)
	if len(r.res.QuarantinedBy) == 0 {
		r.res.QuarantinedBy = nil
	}

	var errs []error
	if r.abortErr != nil {
		errs = append(errs, r.abortErr)
	} else if readErr != nil {
		errs = append(errs, fmt.Errorf("read %s: %w", r.res.Source, readErr))
	}
	if r.res.Failed > 0 {
		errs = append(errs, fmt.Errorf("%w: %d of %d in %s (first: %s); every line up to %d is done",
			ErrNotForwarded, r.res.Failed, r.res.Lines-r.res.Blank, r.res.Source, r.firstFailure, r.res.DoneThrough))
	}
	if r.failedOutErr != nil {
		errs = append(errs, fmt.Errorf("write failed events: %w", r.failedOutErr))
	}
	return r.res, errors.Join(errs...)
}

// Read-ahead growth (canAccept): past a full batch per call in flight, the read-ahead grows only
// while fewer than waitingPerKey entries wait, on average, behind each customer's pending one, or
// while at least 1 in minYield of the last BatchSize entries read was useful: its customer had
// nothing pending, or only the one event it waits behind.
const (
	waitingPerKey = 1
	minYield      = 4
)

// newRun returns the state of one local-mode run, with nothing read yet (and, with an error, the
// Result to return).
func (f *Forwarder) newRun(opts StreamOptions) (*runState, error) {
	r := &runState{
		f: f, opts: opts, keepOrig: opts.FailedOut != nil,
		calls:   make(chan batchCall, f.cfg.Concurrency),
		results: make(chan batchDone, f.cfg.Concurrency),
		useful:  make([]bool, f.cfg.BatchSize),
	}
	for _, l := range []lane{laneRaw, laneQuarantine} {
		r.queues[l] = ordered.NewQueue(f.policy(), r.succeed, r.fail)
	}
	if f.cfg.AggregateKeys {
		if err := r.queues[laneRaw].SetAggregation(ordered.DefaultAggregation); err != nil {
			return r, err
		}
	}
	r.res.Source = opts.source()
	r.res.QuarantinedBy = map[event.Reason]int64{}
	return r, nil
}

// canAccept reports whether the run takes another entry into its read-ahead. Within MaxPending and
// MaxPendingBytes, it always takes enough to fill every call in flight; beyond that, only while
// what it reads can go out soon. An entry queued behind its customer's pending one goes out when
// that one is written; one queued behind two or more waits at least two round trips, and by then
// reading has found it again anyway. Reading on while most entries were of that kind held
// thousands of them (with 1,000 customers, about 9,000 events at once, every page of it memory a
// run touched for the first time) for no fuller calls. So past a full batch per call, reading
// goes on while fewer than one event waits per customer on average, or while 1 in minYield of
// the last batch's worth read was useful. With AggregateKeys it always goes on, up to MaxPending.
func (r *runState) canAccept() bool {
	cfg := &r.f.cfg
	switch {
	case r.pending >= cfg.MaxPending || r.pendingBytes >= cfg.MaxPendingBytes:
		return false
	case r.pending < cfg.BatchSize*cfg.Concurrency || cfg.AggregateKeys:
		// With AggregateKeys, the events waiting behind a customer's pending one go out together
		// in its next record: all of them help fill the calls.
		return true
	}
	keys := r.queues[laneRaw].Keys() + r.queues[laneQuarantine].Keys()
	return r.pending-keys < waitingPerKey*keys || r.nUseful*minYield >= len(r.useful)
}

// noteUseful records whether the entry just accepted was useful (canAccept).
func (r *runState) noteUseful(useful bool) {
	if r.useful[r.usefulAt] {
		r.nUseful--
	}
	if useful {
		r.nUseful++
	}
	r.useful[r.usefulAt] = useful
	r.usefulAt = (r.usefulAt + 1) % len(r.useful)
}

// add accepts one prepared entry into its lane's queue: ready when nothing of its customer is
// pending, queued behind the customer's pending event otherwise, failed at once when an earlier
// event of the customer failed.
func (r *runState) add(e *entry) {
	r.res.Lines++
	if e.lane == laneBlank {
		r.res.Blank++
		r.finishLine(e.line)
		return
	}
	r.f.stats.read.Add(1)
	r.pending++
	r.pendingBytes += e.size()
	e.toWrite()
	q := r.queues[e.lane]
	r.noteUseful(q.Held(e.key) <= 1)
	q.Add(e)
}

// dispatch starts PutRecords calls while there is room and something ready, quarantine first.
func (r *runState) dispatch() {
	cfg := &r.f.cfg
	for r.inflight < cfg.Concurrency && r.abortErr == nil {
		l, ok := r.nextLane()
		if !ok {
			return
		}
		batch := r.queues[l].Take(cfg.BatchSize, cfg.BatchBytes, nil)
		recs := make([]*ordered.Record, len(batch))
		for i, e := range batch {
			recs[i] = e.rec.Wire() // with AggregateKeys, the aggregate e heads
		}
		r.inflight++
		r.res.Batches++
		r.calls <- batchCall{lane: l, es: batch, recs: recs} // never blocks: inflight <= Concurrency
	}
}

// nextLane picks the lane of the next call, quarantine first. While a call is in flight only a lane
// that fills a whole batch is sent: the finished call brings the loop back, and what is ready then
// goes out together, so concurrent calls carry full batches rather than whatever trickled in
// meanwhile (with few customers, most of them in flight, greedy sending made calls of a few records).
func (r *runState) nextLane() (lane, bool) {
	for _, l := range []lane{laneQuarantine, laneRaw} {
		if n, size := r.queues[l].Ready(); n > 0 && (r.inflight == 0 || n >= r.f.cfg.BatchSize || size >= r.f.cfg.BatchBytes) {
			return l, true
		}
	}
	return 0, false
}

// complete accounts for a finished PutRecords call; its lane's queue then finishes the written
// entries, and schedules the failed ones again after their backoff or, out of attempts, fails them.
func (r *runState) complete(b batchDone) {
	r.inflight--
	stream, res := r.f.streams[b.lane].Name(), b.res
	r.res.Unknown += int64(res.Unknown)
	r.res.Throttles += int64(res.Throttled)
	r.res.Retries += int64(res.Retried)
	if res.Err != nil {
		r.f.log.Warn("PutRecords failed", zap.String("stream", stream), zap.Int("records", len(b.es)), zap.Error(res.Err))
	} else if res.Failed > 0 {
		r.f.log.Warn("PutRecords entries failed", zap.String("stream", stream), zap.Int("failed", res.Failed), zap.Int("records", len(b.es)))
	}
	if r.abortErr == nil {
		switch {
		case r.sendCtx.Err() != nil:
			r.abort(fmt.Errorf("put to %s: %w", stream, r.sendCtx.Err()))
		case res.Err != nil && res.Class == ordered.Fatal:
			r.abort(fmt.Errorf("put to %s: %w: %w", stream, ErrFatalPut, res.Err))
		}
	}
	r.queues[b.lane].Complete(b.es, res, time.Now())
	// The queue is done with the written entries (succeed collected them): they are reused.
	for i, e := range r.written {
		e.recycle()
		r.written[i] = nil
	}
	r.written = r.written[:0]
}

// nextDue is when the earliest entry waiting for its backoff may be sent again.
func (r *runState) nextDue() (time.Time, bool) {
	var next time.Time
	for _, q := range r.queues {
		if due, ok := q.NextDue(); ok && (next.IsZero() || due.Before(next)) {
			next = due
		}
	}
	return next, !next.IsZero()
}

// promote makes entries whose backoff has passed ready again.
func (r *runState) promote(now time.Time) {
	for _, q := range r.queues {
		q.Promote(now)
	}
}

// succeed accounts for a written entry (its queue hands the customer's turn to its next event).
func (r *runState) succeed(e *entry) {
	r.pending--
	r.pendingBytes -= e.size()
	r.f.countWritten(e)
	if e.lane == laneQuarantine {
		r.res.Quarantined++
		r.res.QuarantinedBy[e.reason]++
	} else {
		r.res.Forwarded++
	}
	r.finishLine(e.line)
	r.written = append(r.written, e)
}

// fail accounts for an entry the queue gave up on. The queue fails a raw entry's customer with it:
// the events queued behind it, and any that arrive later in this run, since writing them would
// put them before it.
func (r *runState) fail(e *entry) {
	why := r.why(e)
	r.pending--
	r.pendingBytes -= e.size()
	r.res.Failed++
	r.f.stats.failed.Add(1)
	if r.minFailed == 0 || e.line < r.minFailed {
		r.minFailed = e.line
		r.done.clearAbove(r.minFailed)
	}
	if len(r.res.FailedLines) < maxFailedLines {
		r.res.FailedLines = append(r.res.FailedLines, e.line)
	}
	if r.firstFailure == "" {
		r.firstFailure = fmt.Sprintf("line %d: %s", e.line, why)
	}
	if r.opts.FailedOut != nil && r.failedOutErr == nil {
		line := append(append(make([]byte, 0, len(e.orig)+1), e.orig...), '\n')
		if _, err := r.opts.FailedOut.Write(line); err != nil {
			r.failedOutErr = err
		}
	}
}

// why says why the queue gave up on e.
func (r *runState) why(e *entry) string {
	rec := &e.rec
	switch rec.Cause {
	case ordered.CauseEarlier:
		return "an earlier event of this customer was not written"
	case ordered.CauseStopped:
		if rec.Attempts > 0 {
			return "not written before the run stopped: " + rec.LastError
		}
		return "not sent before the run stopped: " + r.abortErr.Error()
	}
	return failure(e).Error()
}

// abort stops the run: nothing new is sent; ready and delayed entries fail now (each with the
// events queued behind it, in order); calls in flight finish and are accounted for.
func (r *runState) abort(err error) {
	r.abortErr = err
	for _, q := range r.queues {
		q.Stop(ordered.CauseStopped)
	}
}

// finishLine advances DoneThrough over contiguous finished lines. Once a line has failed, the
// watermark cannot pass it, so later lines are not remembered (memory stays bounded).
func (r *runState) finishLine(line int64) {
	if r.minFailed > 0 && line > r.minFailed {
		return
	}
	if line != r.res.DoneThrough+1 {
		r.done.add(line)
		return
	}
	r.res.DoneThrough++
	for r.done.has(r.res.DoneThrough + 1) {
		r.res.DoneThrough++
	}
	r.done.forgetThrough(r.res.DoneThrough)
}

// lineSet is a set of line numbers above a floor that only rises (forgetThrough): a bitmap, one bit
// per line from the floor to the highest line added, in place of a map entry per line (a map insert
// and delete per event cost more than the rest of the accounting).
type lineSet struct {
	off   int64    // bit 0 of words[0] is line off+1; off is a multiple of 64
	words []uint64 // lines off+1 .. off+64*len(words)
}

func (s *lineSet) add(line int64) {
	i := line - 1 - s.off
	for int64(len(s.words)) <= i/64 {
		s.words = append(s.words, 0)
	}
	s.words[i/64] |= 1 << (i % 64)
}

func (s *lineSet) has(line int64) bool {
	i := line - 1 - s.off
	return i >= 0 && i/64 < int64(len(s.words)) && s.words[i/64]&(1<<(i%64)) != 0
}

// forgetThrough drops the lines up to line (the words wholly at or below it); has is asked only
// about lines above it from then on.
func (s *lineSet) forgetThrough(line int64) {
	n := min((line-s.off)/64, int64(len(s.words)))
	if n <= 0 {
		return
	}
	s.words = s.words[n:]
	s.off += 64 * n
	if len(s.words) == 0 {
		s.words = nil // let a long-grown array go
	}
}

// clearAbove removes every line above line.
func (s *lineSet) clearAbove(line int64) {
	for i := range s.words {
		first := s.off + 64*int64(i) + 1 // the line of bit 0 of words[i]
		switch {
		case first > line:
			s.words[i] = 0
		case first+63 > line:
			s.words[i] &= 1<<(line-first+1) - 1
		}
	}
}

// String is a one-line human summary of the Result.
func (res Result) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %d lines, %d forwarded, %d quarantined", res.Source, res.Lines, res.Forwarded, res.Quarantined)
	for _, k := range slices.Sorted(maps.Keys(res.QuarantinedBy)) {
		fmt.Fprintf(&b, " %s=%d", k, res.QuarantinedBy[k])
	}
	fmt.Fprintf(&b, ", %d failed, %d blank, %d retries, %d throttles, %d batches, %s", res.Failed, res.Blank, res.Retries, res.Throttles, res.Batches, res.Elapsed.Round(time.Millisecond))
	if res.Unknown > 0 {
		fmt.Fprintf(&b, ", %d with an unknown outcome (may be in the stream twice)", res.Unknown)
	}
	return b.String()
}
