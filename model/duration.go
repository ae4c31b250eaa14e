package model

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// Duration is a time.Duration written in YAML and JSON as a Go duration string ("30s",
// "5m"). Every duration in a catalog is positive; zero means "not set" (the default).
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// String formats d rounded for people (see FormatDuration); ParseDuration reads it.
func (d Duration) String() string { return FormatDuration(time.Duration(d)) }

// FormatDuration is octoroll's one way to print a duration: three significant figures
// below a minute, trailing zeros dropped ("998ms", "37.9ms", "1.5s", "12s"), and whole
// seconds from a minute up ("2m32s", "1h0m0s"), in Go's duration syntax so that
// time.ParseDuration reads it back. Durations people write (30s, 250ms, 1m30s, 5m) print
// as written; measured ones lose only the noise (12.001188759s prints 12s).
func FormatDuration(d time.Duration) string {
	if d < 0 {
		if d == math.MinInt64 {
			d++ // its negation overflows; a nanosecond is below the precision shown
		}
		return "-" + FormatDuration(-d)
	}
	if d >= time.Minute {
		return d.Round(time.Second).String()
	}
	if d < time.Microsecond {
		return d.String() // whole nanoseconds, three figures at most
	}
	unit, scale := "s", float64(time.Second)
	switch {
	case d < time.Millisecond:
		unit, scale = "µs", float64(time.Microsecond)
	case d < time.Second:
		unit, scale = "ms", float64(time.Millisecond)
	}
	v := float64(d) / scale
	decimals := 2
	switch {
	case v >= 100:
		decimals = 0
	case v >= 10:
		decimals = 1
	}
	p := math.Pow10(decimals)
	r := math.Round(v*p) / p
	if r >= 1000 || (unit == "s" && r >= 60) {
		// Rounding carried into the next unit (999.7ms is 1s, 59.96s is 1m0s).
		return FormatDuration(time.Duration(math.Round(r * scale)))
	}
	s := strconv.FormatFloat(r, 'f', decimals, 64)
	if decimals > 0 {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	return s + unit
}

// ParseDuration parses a positive Go duration string such as "30s" or "1m30s". A bare
// number is rejected: its unit would be a guess.
func ParseDuration(s string) (Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		if _, nerr := strconv.ParseFloat(s, 64); nerr == nil {
			return 0, fmt.Errorf("%s: a duration needs a unit, such as %ss", s, s)
		}
		return 0, fmt.Errorf("%q: want a duration such as 500ms, 30s or 5m", s)
	}
	if d <= 0 {
		return 0, fmt.Errorf("%q: must be positive", s)
	}
	return Duration(d), nil
}

// MarshalText writes the exact Go duration string, so a plan read back is the plan
// written (String is the rounded form for people); yaml.v3's encoder uses it.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// UnmarshalText reads a positive Go duration string (ParseDuration); yaml.v3's decoder
// uses it, so a rollout spec in YAML takes the catalog's duration rule.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// MarshalJSON writes the exact Go duration string: stored plans and measurements read
// back unchanged. People see the rounded form (String, FormatDuration).
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads a Go duration string; unlike YAML it accepts "0s", since JSON
// written by MarshalJSON from an unset Duration carries it.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration: want a string such as \"30s\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration %q: %w", s, err)
	}
	*d = Duration(v)
	return nil
}

// ZeroableDuration is a Duration a spec may also set to zero ("0s") to turn off what it
// times; written and read like Duration otherwise (a bare number is still rejected).
type ZeroableDuration Duration

// D returns d as a time.Duration.
func (d ZeroableDuration) D() time.Duration { return time.Duration(d) }

// String is Duration's rounded form.
func (d ZeroableDuration) String() string { return Duration(d).String() }

// MarshalText writes the exact Go duration string, as Duration does.
func (d ZeroableDuration) MarshalText() ([]byte, error) { return Duration(d).MarshalText() }

// UnmarshalText reads a Go duration string that is positive or zero ("0s").
func (d *ZeroableDuration) UnmarshalText(b []byte) error {
	s := string(b)
	v, err := time.ParseDuration(s)
	switch {
	case err != nil || v > 0:
		return (*Duration)(d).UnmarshalText(b)
	case strings.IndexFunc(s, unicode.IsLetter) < 0:
		return fmt.Errorf("%s: a duration needs a unit, such as %ss", s, s)
	case v < 0:
		return fmt.Errorf("%q: must not be negative", s)
	}
	*d = 0
	return nil
}

// MarshalJSON writes the exact Go duration string, as Duration does.
func (d ZeroableDuration) MarshalJSON() ([]byte, error) { return Duration(d).MarshalJSON() }

// UnmarshalJSON reads a Go duration string, as Duration does.
func (d *ZeroableDuration) UnmarshalJSON(b []byte) error { return (*Duration)(d).UnmarshalJSON(b) }
