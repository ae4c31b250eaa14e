package controller

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/octoacme/octoroll/model"
)

// Share is a share of a service's traffic as a weight out of model.TotalWeight
// (10000, so one unit is a basis point). In a spec it is written either as a percent
// string ("1%", "0.5%") or as a bare number of basis points (100). It is written back as
// a percent string.
type Share uint32

// ParseShare parses "1%", "0.25%" or a bare number of basis points ("100").
func ParseShare(s string) (Share, error) {
	t := strings.TrimSpace(s)
	if p, ok := strings.CutSuffix(t, "%"); ok {
		f, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return 0, fmt.Errorf("%q: want a percent such as 1%%", s)
		}
		if f < 0 || f > 100 {
			return 0, fmt.Errorf("%q: want 0-100%%", s)
		}
		w := math.Round(f * model.TotalWeight / 100)
		if f > 0 && w == 0 {
			return 0, fmt.Errorf("%q: below the weight resolution of 0.01%%", s)
		}
		return Share(w), nil
	}
	n, err := strconv.ParseUint(t, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("%q: want a percent such as 1%% or basis points out of %d", s, model.TotalWeight)
	}
	if n > model.TotalWeight {
		return 0, fmt.Errorf("%q: want at most %d basis points", s, model.TotalWeight)
	}
	return Share(n), nil
}

// String formats s as a percent ("1%", "0.25%").
func (s Share) String() string { return weightName(uint32(s)) }

// MarshalText writes s as a percent string.
func (s Share) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText reads a percent string or a number of basis points (see ParseShare).
func (s *Share) UnmarshalText(b []byte) error {
	v, err := ParseShare(string(b))
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// UnmarshalJSON reads a percent string or a JSON number of basis points.
func (s *Share) UnmarshalJSON(b []byte) error {
	var str string
	if err := json.Unmarshal(b, &str); err == nil {
		return s.UnmarshalText([]byte(str))
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("share: want a percent string such as \"1%%\" or basis points: %s", b)
	}
	return s.UnmarshalText([]byte(n.String()))
}

// MaxHoldback is the largest holdback a plan may keep on the previous version during
// the monitoring window: a control group, not a second stage of the rollout.
const MaxHoldback Share = 1000 // 10 %
