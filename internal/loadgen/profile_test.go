package loadgen

import (
	"bytes"
	"context"
	"math"
	"strings"
	"testing"
	"time"
)

func TestParseProfile(t *testing.T) {
	p, err := ParseProfile("150:30s, 150-1500:30s,1500:3m,1500-150:30s,150:2m")
	if err != nil {
		t.Fatal(err)
	}
	if p.String() != "150:30s,150-1500:30s,1500:3m0s,1500-150:30s,150:2m0s" {
		t.Fatalf("String() = %s", p)
	}
	// 150*30 + (150+1500)/2*30 + 1500*180 + 24750 + 150*120
	if want := 4500 + 24750 + 270000 + 24750 + 18000; p.Lines() != want {
		t.Fatalf("Lines() = %d, want %d", p.Lines(), want)
	}
	if p.Duration() != 6*time.Minute+30*time.Second {
		t.Fatalf("Duration() = %v", p.Duration())
	}
	for _, tc := range []struct {
		at   time.Duration
		want float64
	}{{0, 150}, {29 * time.Second, 150}, {45 * time.Second, 825}, {time.Minute, 1500}, {4*time.Minute + 15*time.Second, 825}, {7 * time.Minute, 0}} {
		if got := p.RateAt(tc.at); math.Abs(got-tc.want) > 1e-6 {
			t.Errorf("RateAt(%v) = %v, want %v", tc.at, got, tc.want)
		}
	}
	for _, bad := range []string{"", "150", "x:1s", "150:-1s", "150-x:1s", "-5:1s", "0:10s"} {
		if _, err := ParseProfile(bad); err == nil {
			t.Errorf("ParseProfile(%q) accepted", bad)
		}
	}
}

// TestProfileTimeOf: the due times invert the profile's integral: line i is due when i+1 lines
// were sent, times never go backwards, and the lines due in a second match the rate then.
func TestProfileTimeOf(t *testing.T) {
	p, err := ParseProfile("100:2s,100-1000:2s,1000-0:1s")
	if err != nil {
		t.Fatal(err)
	}
	if got := p.TimeOf(0); got != 10*time.Millisecond {
		t.Fatalf("TimeOf(0) = %v, want 10ms", got)
	}
	if got := p.TimeOf(199); got != 2*time.Second {
		t.Fatalf("TimeOf(199) = %v, want 2s (the 200th line ends the steady part)", got)
	}
	perSecond := map[int]int{}
	prev := time.Duration(-1)
	for i := range p.Lines() {
		at := p.TimeOf(i)
		if at < prev || at > p.Duration() {
			t.Fatalf("TimeOf(%d) = %v after %v (profile %v long)", i, at, prev, p.Duration())
		}
		prev = at
		perSecond[int((at-time.Nanosecond).Seconds())]++
	}
	// Second 2..3 ramps 100 -> 550: 325 lines; second 3..4 550 -> 1000: 775; second 4..5 1000 -> 0: 500.
	for sec, want := range map[int]int{0: 100, 1: 100, 2: 325, 3: 775, 4: 500} {
		if got := perSecond[sec]; math.Abs(float64(got-want)) > 1 {
			t.Errorf("second %d: %d lines due, want %d", sec, got, want)
		}
	}
}

// TestHotCustomer: customer 1 gets HotRate lines per second at every rate of the profile (the
// share follows the rate), the manifest names it, and the output is deterministic.
func TestHotCustomer(t *testing.T) {
	p, err := ParseProfile("100:10s,100-1000:10s,1000:10s")
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Seed: 7, Customers: 200, Start: testStart, Profile: p, HotRate: 30, DupRatio: 0.02, OOORatio: 0.05, BadRatio: 0.01}
	lines, metas, g := generate(t, cfg)
	again, _, _ := generate(t, cfg)
	if len(lines) != p.Lines() || !bytes.Equal(bytes.Join(lines, nil), bytes.Join(again, nil)) {
		t.Fatalf("%d lines (want %d), or not deterministic", len(lines), p.Lines())
	}
	hot := g.Manifest().HotCustomer
	if hot == "" || hot != g.customerID(1) {
		t.Fatalf("manifest hot customer %q", hot)
	}
	perSegment := [3]int{}
	for _, m := range metas {
		if m.Kind == KindEvent && m.CustomerID == hot {
			perSegment[min(2, int(p.TimeOf(m.Line).Seconds()/10))]++
		}
	}
	for i, n := range perSegment { // about 30/s of new events, minus duplicates and bad lines
		if n < 240 || n > 330 {
			t.Errorf("segment %d: hot customer has %d new events, want about 290", i, n)
		}
	}
}

// TestRunProfile: Run sends each line when it is due.
func TestRunProfile(t *testing.T) {
	p, err := ParseProfile("200:200ms,200-1000:200ms")
	if err != nil {
		t.Fatal(err)
	}
	g, err := New(Config{Seed: 1, Customers: 5, Start: testStart, Profile: p})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	var late, early time.Duration
	n := 0
	err = g.Run(context.Background(), func(_ context.Context, _ []byte, m Meta) error {
		d := time.Since(start) - p.TimeOf(m.Line)
		late, early = max(late, d), min(early, d)
		n++
		return nil
	})
	if err != nil || n != p.Lines() {
		t.Fatalf("Run: %v, %d lines of %d", err, n, p.Lines())
	}
	if early < -3*time.Millisecond {
		t.Fatalf("a line went out %v before it was due", -early)
	}
	t.Logf("%d lines over %v; latest line %v after it was due", n, time.Since(start).Round(time.Millisecond), late)
}

func TestValidateProfileAndHot(t *testing.T) {
	p, _ := ParseProfile("100:1s")
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{Profile: p, Rate: 5}, "give one of them"},
		{Config{HotRate: 10}, "needs a rate or a profile"},
		{Config{Profile: p, HotRate: 10, Customers: 1}, "at least 2 customers"},
		{Config{Profile: p, HotRate: -1}, "hot rate"},
	} {
		if err := tc.cfg.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Validate(%+v) = %v, want %q", tc.cfg, err, tc.want)
		}
	}
	if err := (Config{Profile: p, HotRate: 10}).Validate(); err != nil {
		t.Fatal(err)
	}
}
