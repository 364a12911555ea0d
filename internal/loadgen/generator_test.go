package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/kinesis-events/pipeline/event"
)

var testStart = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

func generate(t *testing.T, cfg Config) ([][]byte, []Meta, *Generator) {
	t.Helper()
	g, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var lines [][]byte
	var metas []Meta
	for line, m := range g.All() {
		lines = append(lines, bytes.Clone(line))
		metas = append(metas, m)
	}
	if err := g.Err(); err != nil {
		t.Fatal(err)
	}
	return lines, metas, g
}

func TestDeterministic(t *testing.T) {
	cfg := Config{Seed: 42, Count: 1000, Customers: 30, Start: testStart, DupRatio: 0.05, ConflictRatio: 0.02,
		BadRatio: 0.03, OOORatio: 0.1, UnknownRatio: 0.05, Rate: 100}
	a, _, ga := generate(t, cfg)
	b, _, gb := generate(t, cfg)
	if !bytes.Equal(bytes.Join(a, []byte("\n")), bytes.Join(b, []byte("\n"))) {
		t.Fatal("same config produced different bytes")
	}
	ma, _ := json.Marshal(ga.Manifest())
	mb, _ := json.Marshal(gb.Manifest())
	if !bytes.Equal(ma, mb) {
		t.Fatal("same config produced different manifests")
	}
	cfg.Seed = 43
	c, _, _ := generate(t, cfg)
	if bytes.Equal(a[0], c[0]) {
		t.Fatal("different seeds produced the same first line")
	}
}

// checked is what an independent reading of the output finds.
type checked struct {
	unique      map[string][]byte // event_id -> first line
	order       []parsedEvent     // unique valid events in emission order
	natural     int
	conflicting int
	bad         map[BadKind]int
}

type parsedEvent struct {
	line int
	typ  string
	d    *event.Detail
}

// check reads lines as a consumer would, verifying every valid event with keyring.
func check(t *testing.T, lines [][]byte, keyring *event.Keyring) checked {
	t.Helper()
	c := checked{unique: map[string][]byte{}, bad: map[BadKind]int{}}
	for i, line := range lines {
		if bytes.IndexByte(line, '\n') >= 0 {
			t.Fatalf("line %d contains a line feed", i)
		}
		if len(line) > event.MaxRecordBytes {
			c.bad[BadOversize]++
			continue
		}
		var be event.BridgeEvent
		if err := json.Unmarshal(line, &be); err != nil {
			c.bad[BadNotJSON]++
			continue
		}
		if be.Source != DefaultSource || be.Account != DefaultAccount || be.Region != DefaultRegion || be.ID == "" || be.Version != "0" {
			t.Fatalf("line %d: envelope %+v", i, be)
		}
		if _, err := time.Parse(time.RFC3339, be.Time); err != nil {
			t.Fatalf("line %d: envelope time %q: %v", i, be.Time, err)
		}
		d, err := event.ParseDetail(be.Detail)
		if err != nil {
			if !bytes.Contains(be.Detail, []byte(`"customer_id"`)) && event.ReasonOf(err) == event.ReasonMissingField {
				c.bad[BadMissingCustomerID]++
				continue
			}
			t.Fatalf("line %d: %v", i, err)
		}
		if err := keyring.Verify(be.DetailType, d, testStart); err != nil {
			switch event.ReasonOf(err) {
			case event.ReasonBadSignature:
				c.bad[BadSignature]++
			case event.ReasonUnknownKey:
				c.bad[BadUnknownKey]++
			default:
				t.Fatalf("line %d: verify: %v", i, err)
			}
			continue
		}
		if !event.IsToken(d.CustomerID) {
			t.Fatalf("line %d: customer_id %q is not a token", i, d.CustomerID)
		}
		checkNoPII(t, i, d.Properties)
		at, err := time.Parse(time.RFC3339Nano, d.OccurredAt)
		if err != nil || d.OccurredAt != at.Format(occurredLayout) {
			t.Fatalf("line %d: occurred_at %q is not RFC 3339 with ms in UTC", i, d.OccurredAt)
		}
		if first, seen := c.unique[d.EventID]; seen {
			if bytes.Equal(first, line) {
				c.natural++
			} else {
				c.conflicting++
			}
			continue
		}
		c.unique[d.EventID] = line
		c.order = append(c.order, parsedEvent{line: i, typ: be.DetailType, d: d})
	}
	return c
}

// checkNoPII fails when a PII-like property holds anything but a token.
func checkNoPII(t *testing.T, line int, props json.RawMessage) {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(props, &m); err != nil {
		t.Fatalf("line %d: properties: %v", line, err)
	}
	for _, k := range []string{"email", "ip", "phone", "name", "address"} {
		if v, ok := m[k]; ok {
			if s, _ := v.(string); !event.IsToken(s) {
				t.Fatalf("line %d: property %s=%v is not a token", line, k, v)
			}
		}
	}
	if bytes.Contains(props, []byte("@")) {
		t.Fatalf("line %d: properties contain an e-mail-like value: %s", line, props)
	}
}

func TestStreamMatchesManifest(t *testing.T) {
	keyring, err := event.NewKeyring(event.Key{ID: "k-old", Secret: []byte("old-secret-0123456789")}, event.Key{ID: "k-new", Secret: []byte("new-secret-0123456789")})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := event.NewTokenizer([]byte("a tokenizer key of at least 32 bytes!"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Seed: 7, Count: 4000, Customers: 50, Start: testStart, Keyring: keyring, KeyID: "k-new", Tokenizer: tok,
		DupRatio: 0.05, ConflictRatio: 0.03, BadRatio: 0.05, OOORatio: 0.1, UnknownRatio: 0.04}
	lines, metas, g := generate(t, cfg)
	if len(lines) != cfg.Count {
		t.Fatalf("%d lines, want %d", len(lines), cfg.Count)
	}
	man := g.Manifest()
	got := check(t, lines, keyring)

	if man.Lines != cfg.Count || man.Unique != len(got.order) || len(man.Events) != len(got.order) {
		t.Fatalf("manifest lines=%d unique=%d events=%d; output has %d unique valid events", man.Lines, man.Unique, len(man.Events), len(got.order))
	}
	byType := map[string]int{}
	for i, e := range got.order {
		me := man.Events[i]
		if me.EventID != e.d.EventID || me.Type != e.typ || me.CustomerID != e.d.CustomerID || me.Seq != e.d.Seq || me.OccurredAt != e.d.OccurredAt || !bytes.Equal(me.Properties, e.d.Properties) {
			t.Fatalf("manifest event %d = %+v, output has %s %s %+v", i, me, e.typ, e.d.EventID, e.d)
		}
		if e.d.KeyID != "k-new" {
			t.Fatalf("signed with %q, want k-new", e.d.KeyID)
		}
		byType[e.typ]++
	}
	for typ, n := range byType {
		if man.ByType[typ] != n {
			t.Errorf("by_type[%s] = %d, output has %d", typ, man.ByType[typ], n)
		}
	}
	for _, typ := range append(DefaultTypes, DefaultUnknownTypes...) {
		if byType[typ] == 0 {
			t.Errorf("no event of type %s in %d events", typ, len(got.order))
		}
	}
	if man.Duplicates.Natural != got.natural || man.Duplicates.Conflicting != got.conflicting {
		t.Errorf("manifest duplicates %+v, output has natural=%d conflicting=%d", man.Duplicates, got.natural, got.conflicting)
	}
	for _, k := range AllBadKinds {
		if man.Bad[k] != got.bad[k] || got.bad[k] == 0 {
			t.Errorf("bad %s: manifest %d, output %d", k, man.Bad[k], got.bad[k])
		}
	}
	if len(man.BadLines) != sum(man.Bad) {
		t.Errorf("%d bad lines listed, %d counted", len(man.BadLines), sum(man.Bad))
	}
	for _, bl := range man.BadLines {
		if metas[bl.Line].Kind != KindBad || metas[bl.Line].Bad != bl.Kind || bl.Reason != bl.Kind.Reason() {
			t.Errorf("bad line %+v, meta %+v", bl, metas[bl.Line])
		}
	}
	// Ratios are per line and random: allow 4 standard deviations.
	near := func(name string, n int, ratio float64, of int) {
		t.Helper()
		want := ratio * float64(of)
		if d := math.Abs(float64(n) - want); d > 4*math.Sqrt(want)+1 {
			t.Errorf("%s: %d, expected about %.0f", name, n, want)
		}
	}
	near("natural duplicates", got.natural, cfg.DupRatio, cfg.Count)
	near("conflicting duplicates", got.conflicting, cfg.ConflictRatio, cfg.Count)
	near("bad inputs", sum(got.bad), cfg.BadRatio, cfg.Count)
	near("out of order", man.OutOfOrder, cfg.OOORatio, man.Unique)

	// Meta agrees with the output line by line.
	for i, m := range metas {
		if m.Line != i {
			t.Fatalf("meta %d has line %d", i, m.Line)
		}
	}
	for _, e := range got.order {
		m := metas[e.line]
		if m.Kind != KindEvent || m.EventID != e.d.EventID || m.Seq != e.d.Seq || m.CustomerID != e.d.CustomerID || m.Type != e.typ {
			t.Fatalf("line %d: meta %+v for event %+v", e.line, m, e.d)
		}
	}
	if len(man.ConflictingIDs) == 0 {
		t.Error("no conflicting ids listed")
	}
	for _, id := range man.ConflictingIDs {
		if _, ok := got.unique[id]; !ok {
			t.Errorf("conflicting id %s was never emitted as a valid event", id)
		}
	}
}

func sum(m map[BadKind]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

func TestSeqConsecutiveAndDisplacementBounded(t *testing.T) {
	cases := []struct {
		name     string
		cfg      Config
		wantDist int
	}{
		{"unpaced", Config{OOORatio: 0.3}, DefaultOOOMaxDistance},
		{"slow rate caps distance", Config{OOORatio: 0.3, Rate: 0.5}, 7}, // 0.5/s * 30 s / 2
		{"wide bound", Config{OOORatio: 0.2, OOOMaxDistance: 40, Rate: 1000}, 40},
		{"with duplicates and bad lines", Config{OOORatio: 0.25, DupRatio: 0.1, ConflictRatio: 0.05, BadRatio: 0.1}, DefaultOOOMaxDistance},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg
			cfg.Seed, cfg.Count, cfg.Customers, cfg.Start = 3, 1500, 15, testStart
			lines, _, g := generate(t, cfg)
			got := check(t, lines, DevKeyring())
			// Line of each (customer, seq).
			at := map[string]map[uint64]int{}
			for _, e := range got.order {
				if at[e.d.CustomerID] == nil {
					at[e.d.CustomerID] = map[uint64]int{}
				}
				at[e.d.CustomerID][e.d.Seq] = e.line
			}
			displaced, maxDist := 0, 0
			for cust, seqs := range at {
				for s := uint64(1); s <= uint64(len(seqs)); s++ {
					if _, ok := seqs[s]; !ok {
						t.Fatalf("customer %s: seqs not consecutive from 1: %d missing of %d", cust, s, len(seqs))
					}
					if next, ok := seqs[s+1]; ok && next < seqs[s] {
						displaced++
						maxDist = max(maxDist, seqs[s]-next)
					}
				}
			}
			man := g.Manifest()
			if displaced != man.OutOfOrder || maxDist != man.MaxDisplacement {
				t.Errorf("output: %d displaced, max distance %d; manifest: %d, %d", displaced, maxDist, man.OutOfOrder, man.MaxDisplacement)
			}
			if displaced == 0 || maxDist > tc.wantDist {
				t.Errorf("%d displaced with max distance %d lines, want some within %d", displaced, maxDist, tc.wantDist)
			}
		})
	}
}

func TestConflictKeepsIdentityChangesContent(t *testing.T) {
	lines, metas, _ := generate(t, Config{Seed: 9, Count: 500, Customers: 5, Start: testStart, ConflictRatio: 0.2})
	first := map[string]*event.Detail{}
	conflicts := 0
	for i, line := range lines {
		var be event.BridgeEvent
		if err := json.Unmarshal(line, &be); err != nil {
			t.Fatal(err)
		}
		d, err := event.ParseDetail(be.Detail)
		if err != nil {
			t.Fatal(err)
		}
		if err := DevKeyring().Verify(be.DetailType, d, testStart); err != nil {
			t.Fatalf("line %d: %v", i, err)
		}
		orig, seen := first[d.EventID]
		if !seen {
			first[d.EventID] = d
			continue
		}
		conflicts++
		if metas[i].Kind != KindConflict {
			t.Fatalf("line %d: repeated event_id with meta %+v", i, metas[i])
		}
		if d.CustomerID != orig.CustomerID || d.Seq != orig.Seq || d.OccurredAt != orig.OccurredAt || bytes.Equal(d.Properties, orig.Properties) {
			t.Fatalf("line %d: conflict %+v of %+v", i, d, orig)
		}
	}
	if conflicts == 0 {
		t.Fatal("no conflicting duplicates")
	}
}

func TestBadKindsSelectable(t *testing.T) {
	lines, metas, g := generate(t, Config{Seed: 1, Count: 300, Start: testStart, BadRatio: 0.3, BadKinds: []BadKind{BadSignature, BadNotJSON}})
	man := g.Manifest()
	if len(man.Bad) != 2 || man.Bad[BadSignature] == 0 || man.Bad[BadNotJSON] == 0 {
		t.Fatalf("bad counts %v", man.Bad)
	}
	for i, m := range metas {
		if m.Kind == KindBad && m.Bad == BadNotJSON && json.Valid(lines[i]) && bytes.HasPrefix(lines[i], []byte("{")) {
			var be event.BridgeEvent
			if json.Unmarshal(lines[i], &be) == nil {
				t.Fatalf("line %d: not_json line decodes: %s", i, lines[i])
			}
		}
	}
}

func TestOversizeIsOverTheRecordLimitAndSigned(t *testing.T) {
	lines, metas, _ := generate(t, Config{Seed: 1, Count: 12, Start: testStart, BadRatio: 0.5, BadKinds: []BadKind{BadOversize}})
	n := 0
	for i, m := range metas {
		if m.Kind != KindBad {
			continue
		}
		n++
		if len(lines[i]) <= event.MaxRecordBytes || len(lines[i]) > event.MaxRecordBytes+128<<10 {
			t.Fatalf("oversize line of %d bytes", len(lines[i]))
		}
		var be event.BridgeEvent
		if err := json.Unmarshal(lines[i], &be); err != nil {
			t.Fatal(err)
		}
		var d event.Detail
		if err := json.Unmarshal(be.Detail, &d); err != nil {
			t.Fatal(err)
		}
		if err := DevKeyring().Verify(be.DetailType, &d, testStart); err != nil {
			t.Fatalf("oversize event does not verify: %v", err)
		}
	}
	if n == 0 {
		t.Fatal("no oversize lines")
	}
}

func TestCustomerIDsAreTokensOfTheirNumber(t *testing.T) {
	lines, _, g := generate(t, Config{Seed: 5, Count: 200, Customers: 3, Start: testStart})
	want := map[string]bool{}
	for n := 1; n <= 3; n++ {
		want[DevTokenizer().Token("customer", "customer-"+string(rune('0'+n)))] = true
	}
	for _, e := range g.Manifest().Events {
		if !want[e.CustomerID] {
			t.Fatalf("customer_id %s is not Token(customer, customer-<1..3>)", e.CustomerID)
		}
	}
	for _, line := range lines {
		if bytes.Contains(line, []byte("customer-")) {
			t.Fatalf("raw customer name in output: %s", line)
		}
	}
}

func TestValidate(t *testing.T) {
	two, err := event.NewKeyring(event.Key{ID: "a", Secret: bytes.Repeat([]byte("a"), 16)}, event.Key{ID: "b", Secret: bytes.Repeat([]byte("b"), 16)})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		cfg  Config
		want string // substring of the error; "" for valid
	}{
		{"defaults", Config{}, ""},
		{"ratios fill the stream", Config{DupRatio: 0.5, BadRatio: 0.5}, "no room"},
		{"ratio above one", Config{DupRatio: 1.5}, "dup ratio"},
		{"negative ratio", Config{BadRatio: -0.1}, "bad ratio"},
		{"nan ratio", Config{ConflictRatio: math.NaN()}, "conflict ratio"},
		{"ooo half", Config{OOORatio: 0.5}, "below 0.5"},
		{"ooo at a crawl", Config{OOORatio: 0.1, Rate: 0.05}, "reorder window"},
		{"negative count", Config{Count: -1}, "count"},
		{"type with space", Config{Types: []string{"page view"}}, "space"},
		{"unknown bad kind", Config{BadKinds: []BadKind{"nonsense"}}, "unknown bad kind"},
		{"key id needed", Config{Keyring: two}, "key id is required"},
		{"key id missing from keyring", Config{Keyring: two, KeyID: "c"}, "not in the keyring"},
		{"key id chosen", Config{Keyring: two, KeyID: "b"}, ""},
		{"negative rate", Config{Rate: -1}, "rate"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
			if _, err := New(tc.cfg); err == nil {
				t.Fatal("New accepted an invalid config")
			}
		})
	}
}

func TestRun(t *testing.T) {
	g, err := New(Config{Seed: 1, Count: 50, Start: testStart})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	if err := g.Run(context.Background(), func(_ context.Context, line []byte, m Meta) error {
		if m.Line != n {
			return errors.New("out of order")
		}
		n++
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if n != 50 {
		t.Fatalf("emitted %d lines, want 50", n)
	}

	// Emit errors stop the run.
	g, _ = New(Config{Seed: 1, Count: 50, Start: testStart})
	boom := errors.New("boom")
	if err := g.Run(context.Background(), func(context.Context, []byte, Meta) error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("Run = %v, want boom", err)
	}

	// A cancelled context stops a paced run before it emits everything.
	g, _ = New(Config{Seed: 1, Count: 1000, Rate: 10, Start: testStart})
	ctx, cancel := context.WithCancel(context.Background())
	n = 0
	err = g.Run(ctx, func(context.Context, []byte, Meta) error {
		n++
		if n == 3 {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) || n != 3 {
		t.Fatalf("Run = %v after %d lines, want context.Canceled after 3", err, n)
	}
}

func TestDevKeyFileParses(t *testing.T) {
	keys, err := event.ParseKeys(DevKeyFile())
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 1 || keys[0].ID != DevKeyID || !bytes.Equal(keys[0].Secret, DevKeys()[0].Secret) {
		t.Fatalf("dev key file decodes to %+v", keys)
	}
}
