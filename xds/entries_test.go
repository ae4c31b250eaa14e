package xds

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestEntriesMatchAMap applies random puts and removals to entries and to a plain map,
// growing past and shrinking below several bucket counts: every derived map holds what
// the plain map holds, the sorted names follow, and a map once derived never changes.
func TestEntriesMatchAMap(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var m *entries
	var names []string
	want := map[string]*entry{}
	type kept struct {
		m    *entries
		want map[string]*entry
	}
	var history []kept
	for round := range 300 {
		var put []*entry
		var gone []string
		seen := map[string]bool{}
		grow := round < 150
		for range rng.IntN(40) + 1 {
			n := fmt.Sprintf("r-%d", rng.IntN(2500))
			if !grow && len(names) > 0 {
				n = names[rng.IntN(len(names))]
			}
			if seen[n] {
				continue
			}
			seen[n] = true
			if _, ok := want[n]; ok && (!grow || rng.IntN(4) == 0) {
				gone = append(gone, n)
			} else {
				put = append(put, &entry{name: n, version: fmt.Sprint(round)})
			}
		}
		var added []string
		for _, e := range put {
			if _, ok := want[e.name]; !ok {
				added = append(added, e.name)
			}
		}
		slices.Sort(added)
		names = withNames(names, added, gone)
		m = m.with(put, gone)
		want = maps.Clone(want)
		for _, e := range put {
			want[e.name] = e
		}
		for _, n := range gone {
			delete(want, n)
		}
		history = append(history, kept{m, want})
		if got := slices.Sorted(maps.Keys(want)); !slices.Equal(names, got) {
			t.Fatalf("round %d: names %v, want %v", round, names, got)
		}
	}
	if len(want) > 100 {
		t.Fatalf("the test ends with %d entries; it should shrink", len(want))
	}
	for i, h := range history {
		if h.m.len() != len(h.want) {
			t.Fatalf("map %d: %d entries, want %d", i, h.m.len(), len(h.want))
		}
		for n, e := range h.want {
			if got := h.m.get(n); got != e {
				t.Fatalf("map %d: %q is %v, want %v", i, n, got, e)
			}
		}
		if h.m.get("absent") != nil {
			t.Fatalf("map %d: an absent name found", i)
		}
	}
}
