package model

// TotalWeight is the denominator of every traffic weight: weights are integers out of
// 10000, so 1 %, 0.5 % and 0.1 % are exact (100, 50 and 10).
const TotalWeight = 10000

// Percent is weight w (out of TotalWeight) in percent: 2500 is 25, 5 is 0.05. It is the
// one conversion from basis points: every percent octoroll shows or sends comes from it.
func Percent(w uint32) float64 { return float64(w) * 100 / TotalWeight }

// Percents converts a map of weights by version to percent; nil for nil.
func Percents(ws map[string]uint32) map[string]float64 {
	if ws == nil {
		return nil
	}
	out := make(map[string]float64, len(ws))
	for k, w := range ws {
		out[k] = Percent(w)
	}
	return out
}
