package model

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// Duration is a time.Duration written in YAML and JSON as a Go duration string ("30s",
// "5m"). Every duration in a catalog is positive; zero means "not set" (the default).
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// String formats d as a Go duration string.
func (d Duration) String() string { return time.Duration(d).String() }

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

// MarshalText writes a Go duration string; yaml.v3's encoder uses it.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

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

// MarshalJSON writes a Go duration string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

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

// Rounded formats a measured duration for people: milliseconds below a second
// ("998ms"), tenths of a second below a minute ("12.0s"), whole seconds above
// ("2m5s"); never the nanoseconds a clock difference carries.
func Rounded(d time.Duration) string {
	neg := ""
	if d < 0 {
		neg, d = "-", -d
	}
	switch {
	case d.Round(time.Millisecond) < time.Second:
		return fmt.Sprintf("%s%dms", neg, d.Round(time.Millisecond).Milliseconds())
	case d.Round(100*time.Millisecond) < time.Minute:
		return fmt.Sprintf("%s%.1fs", neg, d.Round(100*time.Millisecond).Seconds())
	default:
		return neg + d.Round(time.Second).String()
	}
}
