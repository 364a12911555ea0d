package loadgen

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"iter"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"golang.org/x/time/rate"

	"github.com/kinesis-events/pipeline/event"
)

// occurredLayout is RFC 3339 with milliseconds, always in UTC ("2026-01-01T00:00:00.000Z").
const occurredLayout = "2006-01-02T15:04:05.000Z07:00"

// typeWeights weight the known types like shop traffic; any other type in Config.Types gets otherWeight.
var typeWeights = map[string]float64{
	"page_view": 40, "product_view": 25, "add_to_cart": 12, "remove_from_cart": 5, "checkout_started": 8, "purchase": 10,
}

const otherWeight = 10

// Generator produces the lines of one stream. See the package comment for its guarantees.
type Generator struct {
	cfg     Config
	rng     *rand.Rand
	unknown *event.Keyring
	typeCum []float64 // cumulative weights of cfg.Types
	pSwap   float64   // chance that a new event starts a displaced pair
	dist    int       // displacement bound in lines

	tokens  []string // customer tokens, index n-1, filled lazily
	lastSeq []uint64 // last seq handed out per customer, index n-1
	fresh   int      // new events created so far; drives occurred_at

	line     int
	produced atomic.Int64     // mirrors line for Produced
	held     map[int]*emitted // displaced events by the line they are released at
	recent   []*emitted       // ring of recent unique valid events, sources of duplicates
	recentAt int
	badSeen  map[BadKind]int
	revs     map[string]int // conflicting revisions per event_id
	manifest Manifest
	err      error
}

// emitted is a unique valid event and its line.
type emitted struct {
	typ       string
	detail    event.Detail
	line      []byte
	displaced int // lines it trails its successor by; 0 when in order
}

// New returns a generator for cfg.
func New(cfg Config) (*Generator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("loadgen: %w", err)
	}
	cfg = cfg.withDefaults()
	if cfg.Keyring == nil {
		cfg.Keyring, cfg.KeyID = DevKeyring(), DevKeyID
		cfg.Logger.Warn("no signing keys configured: signing with the public development key", zap.String("key_id", DevKeyID))
	}
	if cfg.KeyID == "" {
		cfg.KeyID = cfg.Keyring.IDs()[0] // Validate checked there is exactly one
	}
	if cfg.Tokenizer == nil {
		cfg.Tokenizer = DevTokenizer()
		cfg.Logger.Warn("no tokenizer key configured: tokenizing with the public development key")
	}
	g := &Generator{
		cfg:     cfg,
		rng:     rand.New(rand.NewPCG(uint64(cfg.Seed), 0x6c6f616467656e)), // "loadgen"
		unknown: unknownKeyring(),
		dist:    cfg.oooDistance(),
		tokens:  make([]string, cfg.Customers),
		lastSeq: make([]uint64, cfg.Customers),
		held:    make(map[int]*emitted),
		recent:  make([]*emitted, 0, min(cfg.DuplicateHorizon, cfg.Count)),
		badSeen: make(map[BadKind]int),
		revs:    make(map[string]int),
		manifest: Manifest{
			Seed:      cfg.Seed,
			Start:     cfg.Start.UTC().Format(occurredLayout),
			Requested: cfg.Count,
			Customers: cfg.Customers,
			ByType:    make(map[string]int),
			Bad:       make(map[BadKind]int),
		},
	}
	if cfg.HotRate > 0 {
		g.manifest.HotCustomer = g.customerID(1)
	}
	if cfg.OOORatio > 0 {
		// Each start of a pair yields two new events, one displaced: p/(1+p) of new events are displaced.
		g.pSwap = cfg.OOORatio / (1 - cfg.OOORatio)
	}
	var sum float64
	for _, t := range cfg.Types {
		w, ok := typeWeights[t]
		if !ok {
			w = otherWeight
		}
		sum += w
		g.typeCum = append(g.typeCum, sum)
	}
	return g, nil
}

// Config returns the configuration in effect, defaults filled in.
func (g *Generator) Config() Config { return g.cfg }

// Produced returns the number of lines produced so far. Unlike the other methods it is safe to call
// from any goroutine while another one generates (for progress reports).
func (g *Generator) Produced() int { return int(g.produced.Load()) }

// Err returns the error that stopped Next early, if any.
func (g *Generator) Err() error { return g.err }

// Next returns the next line (without a line feed) and what it is; ok is false after Config.Count
// lines or after an error (see Err).
func (g *Generator) Next() (line []byte, meta Meta, ok bool) {
	if g.err != nil || g.line >= g.cfg.Count {
		return nil, Meta{}, false
	}
	line, meta, err := g.next()
	if err != nil {
		g.err = fmt.Errorf("loadgen: line %d: %w", meta.Line, err)
		return nil, Meta{}, false
	}
	return line, meta, true
}

// All yields the remaining lines and their Meta. Check Err after the loop.
func (g *Generator) All() iter.Seq2[[]byte, Meta] {
	return func(yield func([]byte, Meta) bool) {
		for {
			line, m, ok := g.Next()
			if !ok || !yield(line, m) {
				return
			}
		}
	}
}

// Run passes every remaining line to emit, paced to Config.Rate lines per second (unpaced when 0). It
// returns nil when all lines were emitted, emit's first error, or ctx's error.
func (g *Generator) Run(ctx context.Context, emit func(ctx context.Context, line []byte, m Meta) error) error {
	if len(g.cfg.Profile) > 0 {
		return g.runProfile(ctx, emit)
	}
	var lim *rate.Limiter
	if g.cfg.Rate > 0 {
		// A burst of 10 ms worth of lines keeps high rates accurate despite timer granularity.
		lim = rate.NewLimiter(rate.Limit(g.cfg.Rate), max(1, int(g.cfg.Rate/100)))
	}
	for {
		if lim != nil {
			if err := lim.Wait(ctx); err != nil {
				return fmt.Errorf("loadgen: pacing: %w", err)
			}
		} else if err := ctx.Err(); err != nil {
			return fmt.Errorf("loadgen: %w", err)
		}
		line, m, ok := g.Next()
		if !ok {
			return g.err
		}
		if err := emit(ctx, line, m); err != nil {
			return fmt.Errorf("loadgen: emit line %d: %w", m.Line, err)
		}
	}
}

// runProfile is Run paced by the profile: each line is emitted once it is due (lines due within
// a couple of milliseconds go out together, as the timer cannot do better).
func (g *Generator) runProfile(ctx context.Context, emit func(ctx context.Context, line []byte, m Meta) error) error {
	start := time.Now()
	t := time.NewTimer(0)
	defer t.Stop()
	<-t.C
	for {
		if wait := time.Until(start.Add(g.cfg.Profile.TimeOf(g.line))); wait > 2*time.Millisecond {
			t.Reset(wait)
			select {
			case <-ctx.Done():
				return fmt.Errorf("loadgen: pacing: %w", ctx.Err())
			case <-t.C:
			}
		} else if err := ctx.Err(); err != nil {
			return fmt.Errorf("loadgen: %w", err)
		}
		line, m, ok := g.Next()
		if !ok {
			return g.err
		}
		if err := emit(ctx, line, m); err != nil {
			return fmt.Errorf("loadgen: emit line %d: %w", m.Line, err)
		}
	}
}

func (g *Generator) next() ([]byte, Meta, error) {
	i := g.line
	g.line++
	g.produced.Store(int64(g.line))
	g.manifest.Lines = g.line
	if e, ok := g.held[i]; ok {
		delete(g.held, i)
		return e.line, g.record(e, i), nil
	}
	u := g.rng.Float64()
	haveRecent := len(g.recent) > 0
	switch c := g.cfg; {
	case u < c.DupRatio && haveRecent:
		src := g.recent[g.rng.IntN(len(g.recent))]
		g.manifest.Duplicates.Natural++
		return src.line, Meta{Line: i, Kind: KindDuplicate, Type: src.typ, EventID: src.detail.EventID, CustomerID: src.detail.CustomerID, Seq: src.detail.Seq}, nil
	case u < c.DupRatio+c.ConflictRatio && haveRecent:
		return g.conflict(i)
	case u >= c.DupRatio+c.ConflictRatio && u < c.DupRatio+c.ConflictRatio+c.BadRatio:
		k := c.BadKinds[len(g.manifest.BadLines)%len(c.BadKinds)]
		line, m, err := g.bad(k, i)
		if err != nil {
			return nil, m, err
		}
		g.badSeen[k]++
		g.manifest.Bad[k]++
		g.manifest.BadLines = append(g.manifest.BadLines, BadLine{Line: i, Kind: k, Reason: k.Reason(), Stage: k.Stage(), EventID: m.EventID})
		return line, m, nil
	}
	c := g.pickCustomer()
	typ := g.pickType()
	if g.pSwap > 0 && g.rng.Float64() < g.pSwap {
		if r, ok := g.releaseLine(i); ok {
			first, err := g.newEvent(c, typ)
			if err != nil {
				return nil, Meta{Line: i}, err
			}
			second, err := g.newEvent(c, g.pickType())
			if err != nil {
				return nil, Meta{Line: i}, err
			}
			first.displaced = r - i
			g.held[r] = first
			return second.line, g.record(second, i), nil
		}
	}
	e, err := g.newEvent(c, typ)
	if err != nil {
		return nil, Meta{Line: i}, err
	}
	return e.line, g.record(e, i), nil
}

// releaseLine picks the line, within the displacement bound after line i and before the end, that a
// displaced event is emitted at; ok is false when no such line is free.
func (g *Generator) releaseLine(i int) (int, bool) {
	last := min(i+g.dist, g.cfg.Count-1)
	if last <= i {
		return 0, false
	}
	start := i + 1 + g.rng.IntN(last-i)
	for r := start; r <= last; r++ {
		if _, taken := g.held[r]; !taken {
			return r, true
		}
	}
	for r := i + 1; r < start; r++ {
		if _, taken := g.held[r]; !taken {
			return r, true
		}
	}
	return 0, false
}

// record notes the first emission of a unique valid event at line i.
func (g *Generator) record(e *emitted, i int) Meta {
	m := &g.manifest
	m.Unique++
	m.ByType[e.typ]++
	if e.displaced > 0 {
		m.OutOfOrder++
		m.MaxDisplacement = max(m.MaxDisplacement, e.displaced)
	}
	if !g.cfg.SkipManifestEvents {
		m.Events = append(m.Events, ManifestEvent{
			EventID: e.detail.EventID, Type: e.typ, CustomerID: e.detail.CustomerID, Seq: e.detail.Seq,
			OccurredAt: e.detail.OccurredAt, Properties: e.detail.Properties,
		})
	}
	if g.cfg.DuplicateHorizon > 0 {
		if len(g.recent) < g.cfg.DuplicateHorizon {
			g.recent = append(g.recent, e)
		} else {
			g.recent[g.recentAt] = e
			g.recentAt = (g.recentAt + 1) % g.cfg.DuplicateHorizon
		}
	}
	return Meta{Line: i, Kind: KindEvent, Type: e.typ, EventID: e.detail.EventID, CustomerID: e.detail.CustomerID, Seq: e.detail.Seq, Displaced: e.displaced > 0}
}

// newEvent creates the next event of customer n (1-based), consuming its next seq.
func (g *Generator) newEvent(n int, typ string) (*emitted, error) {
	g.lastSeq[n-1]++
	at := g.eventTime(g.fresh)
	g.fresh++
	d := event.Detail{
		EventID:    g.uuid(),
		CustomerID: g.customerID(n),
		Seq:        g.lastSeq[n-1],
		OccurredAt: at.Format(occurredLayout),
	}
	props, err := json.Marshal(g.properties(typ, n))
	if err != nil {
		return nil, fmt.Errorf("properties: %w", err)
	}
	d.Properties = props
	return g.finish(typ, d, at)
}

// conflict re-signs a recent event with different properties under the same event_id.
func (g *Generator) conflict(i int) ([]byte, Meta, error) {
	src := g.recent[g.rng.IntN(len(g.recent))]
	m := Meta{Line: i, Kind: KindConflict, Type: src.typ, EventID: src.detail.EventID, CustomerID: src.detail.CustomerID, Seq: src.detail.Seq}
	var props map[string]any
	if err := json.Unmarshal(src.detail.Properties, &props); err != nil {
		return nil, m, fmt.Errorf("conflict: properties: %w", err)
	}
	if g.revs[src.detail.EventID] == 0 {
		g.manifest.ConflictingIDs = append(g.manifest.ConflictingIDs, src.detail.EventID)
	}
	g.revs[src.detail.EventID]++
	props["rev"] = g.revs[src.detail.EventID] + 1
	raw, err := json.Marshal(props)
	if err != nil {
		return nil, m, fmt.Errorf("conflict: properties: %w", err)
	}
	d := src.detail
	d.Properties, d.KeyID, d.Signature = raw, "", ""
	at, err := time.Parse(time.RFC3339Nano, d.OccurredAt)
	if err != nil {
		return nil, m, fmt.Errorf("conflict: occurred_at: %w", err)
	}
	e, err := g.finish(src.typ, d, at)
	if err != nil {
		return nil, m, fmt.Errorf("conflict: %w", err)
	}
	g.manifest.Duplicates.Conflicting++
	return e.line, m, nil
}

// finish signs d and wraps it in an EventBridge envelope.
func (g *Generator) finish(typ string, d event.Detail, at time.Time) (*emitted, error) {
	if err := g.cfg.Keyring.Sign(typ, &d, g.cfg.KeyID); err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	detail, err := json.Marshal(&d)
	if err != nil {
		return nil, fmt.Errorf("detail: %w", err)
	}
	line, err := g.envelope(typ, g.uuid(), at, detail)
	if err != nil {
		return nil, err
	}
	return &emitted{typ: typ, detail: d, line: line}, nil
}

// envelope wraps detail in an EventBridge event.
func (g *Generator) envelope(typ, id string, at time.Time, detail []byte) ([]byte, error) {
	b, err := json.Marshal(event.BridgeEvent{
		Version:    "0",
		ID:         id,
		DetailType: typ,
		Source:     g.cfg.Source,
		Account:    g.cfg.Account,
		Time:       at.UTC().Truncate(time.Second).Format(time.RFC3339),
		Region:     g.cfg.Region,
		Detail:     detail,
	})
	if err != nil {
		return nil, fmt.Errorf("envelope: %w", err)
	}
	return b, nil
}

// eventTime is occurred_at of the k-th new event: k steps after Start, or, paced by a profile
// without a Step, the due time of the line being generated.
func (g *Generator) eventTime(k int) time.Time {
	if g.cfg.Step == 0 {
		return g.cfg.Start.Add(g.cfg.Profile.TimeOf(g.line - 1)).UTC()
	}
	return g.cfg.Start.Add(time.Duration(k) * g.cfg.Step).UTC()
}

// pickCustomer returns a customer number in [1, Customers]. With a hot customer, customer 1 gets
// HotRate of the lines per second at the rate of the current line (at most 90% of them), the
// others share the rest.
func (g *Generator) pickCustomer() int {
	if g.cfg.HotRate > 0 {
		share := 0.9
		if r := g.cfg.rateAt(g.line - 1); r > 0 {
			share = min(share, g.cfg.HotRate/r)
		}
		if g.rng.Float64() < share {
			return 1
		}
		return 2 + g.rng.IntN(g.cfg.Customers-1)
	}
	return 1 + g.rng.IntN(g.cfg.Customers)
}

// pickType draws a type: an unknown one with UnknownRatio, else a weighted one of Types.
func (g *Generator) pickType() string {
	if g.cfg.UnknownRatio > 0 && g.rng.Float64() < g.cfg.UnknownRatio {
		return g.cfg.UnknownTypes[g.rng.IntN(len(g.cfg.UnknownTypes))]
	}
	x := g.rng.Float64() * g.typeCum[len(g.typeCum)-1]
	for i, c := range g.typeCum {
		if x < c {
			return g.cfg.Types[i]
		}
	}
	return g.cfg.Types[len(g.cfg.Types)-1]
}

// customerID is the token of customer n: Token("customer", "customer-<n>").
func (g *Generator) customerID(n int) string {
	if g.tokens[n-1] == "" {
		g.tokens[n-1] = g.cfg.Tokenizer.Token("customer", fmt.Sprintf("customer-%d", n))
	}
	return g.tokens[n-1]
}

// uuid returns a version-4-shaped UUID drawn from the seeded generator.
func (g *Generator) uuid() string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], g.rng.Uint64())
	binary.BigEndian.PutUint64(b[8:], g.rng.Uint64())
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}
