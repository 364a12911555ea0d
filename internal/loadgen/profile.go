package loadgen

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Segment is one stretch of a rate profile: Duration long, the rate going linearly from From to
// To lines per second (equal for a steady rate).
type Segment struct {
	Duration time.Duration
	From, To float64
}

// Profile is a rate over time: its segments one after the other. A line is due when the lines of
// the profile so far (the integral of the rate) reach it, so a profile fixes when each line is
// sent, whatever the machine does: the same Config gives the same schedule.
type Profile []Segment

// ParseProfile reads a profile written as comma-separated segments "RATE:DURATION" (steady) or
// "FROM-TO:DURATION" (a ramp), e.g. "150:30s,150-1500:30s,1500:3m,1500-150:30s,150:2m".
func ParseProfile(s string) (Profile, error) {
	var p Profile
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		rates, dur, ok := strings.Cut(part, ":")
		if !ok {
			return nil, fmt.Errorf("profile segment %q: want RATE:DURATION or FROM-TO:DURATION", part)
		}
		d, err := time.ParseDuration(dur)
		if err != nil {
			return nil, fmt.Errorf("profile segment %q: %w", part, err)
		}
		from, to, ramp := strings.Cut(rates, "-")
		a, err := strconv.ParseFloat(from, 64)
		if err != nil {
			return nil, fmt.Errorf("profile segment %q: rate: %w", part, err)
		}
		b := a
		if ramp {
			if b, err = strconv.ParseFloat(to, 64); err != nil {
				return nil, fmt.Errorf("profile segment %q: rate: %w", part, err)
			}
		}
		p = append(p, Segment{Duration: d, From: a, To: b})
	}
	return p, p.Validate()
}

// String writes p the way ParseProfile reads it.
func (p Profile) String() string {
	parts := make([]string, len(p))
	for i, s := range p {
		r := strconv.FormatFloat(s.From, 'f', -1, 64)
		if s.To != s.From {
			r += "-" + strconv.FormatFloat(s.To, 'f', -1, 64)
		}
		parts[i] = r + ":" + s.Duration.String()
	}
	return strings.Join(parts, ",")
}

// Validate reports every problem of p.
func (p Profile) Validate() error {
	var errs []error
	for i, s := range p {
		if s.Duration <= 0 {
			errs = append(errs, fmt.Errorf("profile segment %d: duration %v must be positive", i+1, s.Duration))
		}
		for _, r := range []float64{s.From, s.To} {
			if r < 0 || math.IsNaN(r) || math.IsInf(r, 0) {
				errs = append(errs, fmt.Errorf("profile segment %d: rate %v must be a finite number >= 0", i+1, r))
			}
		}
	}
	if len(p) > 0 && p.Lines() < 1 {
		errs = append(errs, errors.New("profile sends no line"))
	}
	return errors.Join(errs...)
}

// Duration is the profile's length.
func (p Profile) Duration() time.Duration {
	var d time.Duration
	for _, s := range p {
		d += s.Duration
	}
	return d
}

// lines is the segment's line count (its integral).
func (s Segment) lines() float64 { return (s.From + s.To) / 2 * s.Duration.Seconds() }

// Lines is the number of lines the profile sends.
func (p Profile) Lines() int {
	var n float64
	for _, s := range p {
		n += s.lines()
	}
	return int(math.Floor(n + 1e-9))
}

// RateAt is the rate at t into the profile (0 past its end).
func (p Profile) RateAt(t time.Duration) float64 {
	for _, s := range p {
		if t < s.Duration {
			return s.From + (s.To-s.From)*t.Seconds()/s.Duration.Seconds()
		}
		t -= s.Duration
	}
	return 0
}

// TimeOf is when line i (0-based) is due: the instant the lines so far reach i+1 (the end of the
// profile for a line past it).
func (p Profile) TimeOf(i int) time.Duration {
	x := float64(i + 1)
	var at time.Duration
	for _, s := range p {
		n := s.lines()
		if x > n+1e-9 {
			x -= n
			at += s.Duration
			continue
		}
		a, d := s.From, s.Duration.Seconds()
		k := (s.To - s.From) / (2 * d)
		var t float64
		switch {
		case math.Abs(k) < 1e-12:
			t = x / a
		default: // k t^2 + a t - x = 0, the root within the segment
			t = (-a + math.Sqrt(math.Max(0, a*a+4*k*x))) / (2 * k)
		}
		return at + time.Duration(math.Min(t, d)*float64(time.Second))
	}
	return at
}

// minRate is the lowest positive rate the profile reaches (0 when none).
func (p Profile) minRate() float64 {
	m := 0.0
	for _, s := range p {
		for _, r := range []float64{s.From, s.To} {
			if r > 0 && (m == 0 || r < m) {
				m = r
			}
		}
	}
	return m
}
