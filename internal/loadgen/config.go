package loadgen

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
	"unicode"

	"go.uber.org/zap"

	"github.com/kinesis-events/pipeline/event"
)

// DefaultTypes are the event types of the routing table, in the order used for weighting.
var DefaultTypes = []string{"page_view", "product_view", "add_to_cart", "remove_from_cart", "checkout_started", "purchase"}

// DefaultUnknownTypes are the types used for Config.UnknownRatio: none of them is in the routing table,
// so the worker sends them to the default stream.
var DefaultUnknownTypes = []string{"wishlist_add", "site_search", "newsletter_signup"}

// Envelope defaults for the EventBridge event.
const (
	DefaultSource  = "shop.web"
	DefaultAccount = "000000000000"
	DefaultRegion  = "us-east-1"
)

// Defaults for the remaining Config fields.
const (
	DefaultCount            = 1000
	DefaultCustomers        = 100
	DefaultReorderWindow    = 30 * time.Second
	DefaultOOOMaxDistance   = 10
	DefaultStepUnpaced      = time.Millisecond
	DefaultDuplicateHorizon = 1024
)

// Config describes one generated stream. The zero value of every field means its default.
type Config struct {
	// Seed makes the output deterministic: the same Config gives the same bytes.
	Seed int64
	// Count is the total number of lines produced, valid events, duplicates and bad inputs together.
	Count int
	// Customers is the number of distinct customers; customer n has customer_id
	// Tokenizer.Token("customer", "customer-<n>"), n starting at 1.
	Customers int
	// Types are the event types of valid events (default DefaultTypes). Known types are weighted like
	// real traffic (page views most, purchases least); other names get a middle weight.
	Types []string
	// UnknownRatio is the fraction of valid events whose type is taken from UnknownTypes instead.
	UnknownRatio float64
	// UnknownTypes are types outside the routing table (default DefaultUnknownTypes).
	UnknownTypes []string

	// DupRatio is the fraction of lines that re-emit an earlier valid event verbatim (natural duplicate).
	DupRatio float64
	// ConflictRatio is the fraction of lines that reuse an earlier event_id with different, correctly
	// signed properties (conflicting duplicate). Customer, seq, type and occurred_at stay the same.
	ConflictRatio float64
	// BadRatio is the fraction of lines that are malformed, spread over BadKinds.
	BadRatio float64
	// BadKinds are the kinds of malformed input produced (default AllBadKinds).
	BadKinds []BadKind
	// OOORatio is the fraction of valid events emitted after a later event of the same customer.
	// Must be below 0.5: each displaced event is swapped with its successor.
	OOORatio float64
	// OOOMaxDistance bounds how many lines a displaced event trails its successor (default 10). When
	// Rate is set it is further capped to Rate*ReorderWindow/2, so a displaced event arrives well within
	// the reorder window.
	OOOMaxDistance int
	// ReorderWindow is the consumer's reorder window the displacement must fit in (default 30 s).
	ReorderWindow time.Duration
	// DuplicateHorizon is how many of the most recent valid events duplicates are drawn from
	// (default 1024). It bounds the generator's memory.
	DuplicateHorizon int

	// Rate is the pace of Run in lines per second; 0 means as fast as possible.
	Rate float64
	// Profile, instead of Rate, paces Run by a rate that changes over time (a ramp, a spike): line
	// i is due at Profile.TimeOf(i) after Run starts. Count defaults to the profile's lines.
	Profile Profile
	// HotRate makes customer 1 a hot customer sending this many lines per second while the others
	// share the rest (at most 90% of the lines at any moment are the hot customer's). It needs Rate
	// or Profile. The manifest names the hot customer.
	HotRate float64
	// Start is occurred_at of the first event (default 2026-01-01T00:00:00Z). Consumers that check
	// clock skew need a Start close to now: the command line defaults it to the current time.
	Start time.Time
	// Step is the occurred_at distance between consecutive new events (default 1/Rate, or 1 ms when
	// Rate is 0; with a Profile and no Step, occurred_at is Start plus the line's due time).
	Step time.Duration

	// Keyring signs events with KeyID. Default: the development keyring (DevKeys), which must never
	// be used outside local runs. KeyID may be empty when the keyring holds exactly one key.
	Keyring *event.Keyring
	KeyID   string
	// Tokenizer tokenizes customer ids and PII-like properties (default: DevTokenizer).
	Tokenizer *event.Tokenizer

	// Source, Account and Region fill the EventBridge envelope.
	Source  string
	Account string
	Region  string

	// SkipManifestEvents drops the per-event list from the manifest (counts are kept) for very long
	// runs where nobody checks delivery event by event.
	SkipManifestEvents bool

	Logger *zap.Logger
}

// withDefaults returns a copy of c with defaults filled in.
func (c Config) withDefaults() Config {
	if c.Count == 0 {
		c.Count = DefaultCount
		if len(c.Profile) > 0 {
			c.Count = c.Profile.Lines()
		}
	}
	if c.Customers == 0 {
		c.Customers = DefaultCustomers
	}
	if len(c.Types) == 0 {
		c.Types = slices.Clone(DefaultTypes)
	}
	if len(c.UnknownTypes) == 0 {
		c.UnknownTypes = slices.Clone(DefaultUnknownTypes)
	}
	if len(c.BadKinds) == 0 {
		c.BadKinds = slices.Clone(AllBadKinds)
	}
	if c.OOOMaxDistance == 0 {
		c.OOOMaxDistance = DefaultOOOMaxDistance
	}
	if c.ReorderWindow == 0 {
		c.ReorderWindow = DefaultReorderWindow
	}
	if c.DuplicateHorizon == 0 {
		c.DuplicateHorizon = DefaultDuplicateHorizon
	}
	if c.Start.IsZero() {
		c.Start = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	if c.Step == 0 && len(c.Profile) == 0 {
		c.Step = DefaultStepUnpaced
		if c.Rate > 0 {
			c.Step = max(time.Duration(float64(time.Second)/c.Rate), time.Millisecond)
		}
	}
	if c.Source == "" {
		c.Source = DefaultSource
	}
	if c.Account == "" {
		c.Account = DefaultAccount
	}
	if c.Region == "" {
		c.Region = DefaultRegion
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	return c
}

// Validate reports the first problem with c (after defaults are applied).
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.Count < 0 {
		add("count %d is negative", c.Count)
	}
	if c.Customers < 0 {
		add("customers %d is negative", c.Customers)
	}
	for _, r := range []struct {
		name string
		v    float64
	}{{"unknown ratio", c.UnknownRatio}, {"dup ratio", c.DupRatio}, {"conflict ratio", c.ConflictRatio}, {"bad ratio", c.BadRatio}, {"ooo ratio", c.OOORatio}} {
		if math.IsNaN(r.v) || r.v < 0 || r.v > 1 {
			add("%s %v is not within [0, 1]", r.name, r.v)
		}
	}
	if s := c.DupRatio + c.ConflictRatio + c.BadRatio; s >= 1 {
		add("dup, conflict and bad ratios add up to %v: no room for new events", s)
	}
	if c.OOORatio >= 0.5 {
		add("ooo ratio %v must be below 0.5 (each displaced event is swapped with its successor)", c.OOORatio)
	}
	if c.Rate < 0 || math.IsNaN(c.Rate) || math.IsInf(c.Rate, 0) {
		add("rate %v must be a finite number >= 0", c.Rate)
	}
	if len(c.Profile) > 0 {
		if c.Rate != 0 {
			add("rate %v and a profile: give one of them", c.Rate)
		}
		if err := c.Profile.Validate(); err != nil {
			add("%w", err)
		}
	}
	if c.HotRate < 0 || math.IsNaN(c.HotRate) || math.IsInf(c.HotRate, 0) {
		add("hot rate %v must be a finite number >= 0", c.HotRate)
	}
	if c.HotRate > 0 && (c.pace() == 0 || c.Customers < 2) {
		add("a hot customer needs a rate or a profile, and at least 2 customers")
	}
	if c.OOOMaxDistance < 0 {
		add("ooo max distance %d is negative", c.OOOMaxDistance)
	}
	if c.OOORatio > 0 && c.oooDistance() < 1 {
		add("ooo ratio %v: at %v lines/s no displacement fits in half the %s reorder window", c.OOORatio, c.Rate, c.ReorderWindow)
	}
	if c.DuplicateHorizon < 0 {
		add("duplicate horizon %d is negative", c.DuplicateHorizon)
	}
	if c.Step < 0 {
		add("step %s is negative", c.Step)
	}
	for _, list := range []struct {
		name  string
		types []string
	}{{"types", c.Types}, {"unknown types", c.UnknownTypes}} {
		for _, t := range list.types {
			if err := checkType(t); err != nil {
				add("%s: %w", list.name, err)
			}
		}
	}
	for _, k := range c.BadKinds {
		if !slices.Contains(AllBadKinds, k) {
			add("unknown bad kind %q (known: %s)", k, joinKinds(AllBadKinds))
		}
	}
	if c.Keyring != nil {
		ids := c.Keyring.IDs()
		switch {
		case c.KeyID == "" && len(ids) != 1:
			add("key id is required when the keyring holds %d keys", len(ids))
		case c.KeyID != "" && !slices.Contains(ids, c.KeyID):
			add("key id %q is not in the keyring", c.KeyID)
		}
		if slices.Contains(ids, unknownKeyID) {
			add("key id %q is reserved for the unknown_key bad inputs", unknownKeyID)
		}
	}
	return errors.Join(errs...)
}

// oooDistance is the effective bound on displacement in lines.
func (c Config) oooDistance() int {
	d := c.OOOMaxDistance
	if r := c.pace(); r > 0 {
		d = min(d, int(math.Floor(r*c.ReorderWindow.Seconds()/2)))
	}
	return d
}

// pace is the lowest rate lines are sent at: Rate, or the profile's lowest positive rate (0:
// unpaced).
func (c Config) pace() float64 {
	if len(c.Profile) > 0 {
		return c.Profile.minRate()
	}
	return c.Rate
}

// rateAt is the rate at which line i is sent (0: unpaced).
func (c Config) rateAt(i int) float64 {
	if len(c.Profile) > 0 {
		return c.Profile.RateAt(c.Profile.TimeOf(i))
	}
	return c.Rate
}

func checkType(t string) error {
	if t == "" || len(t) > event.MaxIDLen {
		return fmt.Errorf("type %q must be 1 to %d characters", t, event.MaxIDLen)
	}
	for _, r := range t {
		if !unicode.IsPrint(r) || unicode.IsSpace(r) {
			return fmt.Errorf("type %q has a space or non-printable character", t)
		}
	}
	return nil
}

func joinKinds(ks []BadKind) string {
	s := make([]string, len(ks))
	for i, k := range ks {
		s[i] = string(k)
	}
	return strings.Join(s, ", ")
}
