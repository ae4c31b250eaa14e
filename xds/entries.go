package xds

import (
	"cmp"
	"hash/maphash"
	"iter"
	"slices"
	"strings"
)

// entries is an immutable map from resource name to entry. A map derived from another
// by a few changes shares every bucket the changes do not touch: the names hash into
// about √n buckets of about √n entries each, sorted by name, so a change copies the
// bucket index and the buckets it touches (a few hundred bytes at 1,000 resources), not
// the whole map, and the older map stays valid for whoever still holds it (a queued
// response, the tracker's record of what a proxy was sent).
type entries struct {
	n       int
	buckets []*[]*entry // len is a power of two; each sorted by name
}

var entrySeed = maphash.MakeSeed()

func compareEntry(e *entry, name string) int { return strings.Compare(e.name, name) }

func (m *entries) bucket(name string) int {
	return int(maphash.String(entrySeed, name) & uint64(len(m.buckets)-1))
}

// get returns the entry named name, or nil.
func (m *entries) get(name string) *entry {
	if m == nil || m.n == 0 {
		return nil
	}
	b := *m.buckets[m.bucket(name)]
	if i, ok := slices.BinarySearchFunc(b, name, compareEntry); ok {
		return b[i]
	}
	return nil
}

func (m *entries) len() int {
	if m == nil {
		return 0
	}
	return m.n
}

// all yields every entry, in no particular order.
func (m *entries) all() iter.Seq[*entry] {
	return func(yield func(*entry) bool) {
		if m == nil {
			return
		}
		for _, b := range m.buckets {
			for _, e := range *b {
				if !yield(e) {
					return
				}
			}
		}
	}
}

// bucketsFor is the bucket count for n entries: the smallest power of two whose square
// is at least n.
func bucketsFor(n int) int {
	b := 1
	for b*b < n {
		b *= 2
	}
	return b
}

// with returns m with put added or replaced and the names in gone removed; m does not
// change. The names of put are distinct and not in gone. Its cost is that of the
// buckets the changes touch plus the bucket index, except when the size crossed a
// factor of four since the bucket count was chosen: then every entry is redistributed.
func (m *entries) with(put []*entry, gone []string) *entries {
	if m == nil || len(m.buckets) == 0 {
		m = &entries{buckets: []*[]*entry{new([]*entry)}}
	}
	next := &entries{n: m.n, buckets: slices.Clone(m.buckets)}
	var copied []int // buckets of next that are its own already
	own := func(i int) *[]*entry {
		if !slices.Contains(copied, i) {
			copied = append(copied, i)
			b := slices.Clip(slices.Clone(*next.buckets[i]))
			next.buckets[i] = &b
		}
		return next.buckets[i]
	}
	for _, e := range put {
		b := own(next.bucket(e.name))
		if j, ok := slices.BinarySearchFunc(*b, e.name, compareEntry); ok {
			(*b)[j] = e
		} else {
			*b = slices.Insert(*b, j, e)
			next.n++
		}
	}
	for _, name := range gone {
		b := own(next.bucket(name))
		if j, ok := slices.BinarySearchFunc(*b, name, compareEntry); ok {
			*b = slices.Delete(*b, j, j+1)
			next.n--
		}
	}
	if bs := len(next.buckets); next.n > 4*bs*bs || (bs > 1 && 4*next.n < bs*bs) {
		next.rehash(bucketsFor(next.n))
	}
	return next
}

// rehash redistributes every entry over size buckets.
func (m *entries) rehash(size int) {
	old := m.buckets
	m.buckets = make([]*[]*entry, size)
	for i := range m.buckets {
		m.buckets[i] = new([]*entry)
	}
	for _, b := range old {
		for _, e := range *b {
			b := m.buckets[m.bucket(e.name)]
			*b = append(*b, e)
		}
	}
	for _, b := range m.buckets {
		slices.SortFunc(*b, func(a, b *entry) int { return cmp.Compare(a.name, b.name) })
	}
}

// withNames returns the sorted names with the sorted added names merged in and the
// names in gone removed, in one pass over names; names does not change.
func withNames(names, added, gone []string) []string {
	out := make([]string, 0, len(names)+len(added)-len(gone))
	drop := make(map[string]struct{}, len(gone))
	for _, n := range gone {
		drop[n] = struct{}{}
	}
	i := 0
	for _, n := range names {
		if _, ok := drop[n]; ok {
			continue
		}
		for i < len(added) && added[i] < n {
			out = append(out, added[i])
			i++
		}
		out = append(out, n)
	}
	return append(out, added[i:]...)
}
