package stats

import (
	"cmp"
	"slices"
)

// TopK counts categorical values (message types, topics, ports), keeping at
// most Cap distinct keys (default 100,000); keys first seen after the table
// is full are counted under Other, so the total stays exact.
type TopK[K comparable] struct {
	Cap    int
	counts map[K]int64
	Other  int64
	Total  int64
}

// Add counts one occurrence of k.
func (t *TopK[K]) Add(k K) { t.AddN(k, 1) }

// AddN counts n occurrences of k.
func (t *TopK[K]) AddN(k K, n int64) {
	t.Total += n
	if t.counts == nil {
		t.counts = map[K]int64{}
	}
	if _, ok := t.counts[k]; ok {
		t.counts[k] += n
		return
	}
	limit := t.Cap
	if limit <= 0 {
		limit = 100000
	}
	if len(t.counts) >= limit {
		t.Other += n
		return
	}
	t.counts[k] = n
}

// Count returns the count of k.
func (t *TopK[K]) Count(k K) int64 { return t.counts[k] }

// Len is the number of distinct keys held.
func (t *TopK[K]) Len() int { return len(t.counts) }

// Item is a key with its count.
type Item[K comparable] struct {
	Key   K
	Count int64
}

// Top returns the n most frequent keys (all when n <= 0), most frequent
// first; ties keep the order given by less.
func (t *TopK[K]) Top(n int, less func(a, b K) int) []Item[K] {
	out := make([]Item[K], 0, len(t.counts))
	for k, c := range t.counts {
		out = append(out, Item[K]{k, c})
	}
	slices.SortFunc(out, func(a, b Item[K]) int {
		if c := cmp.Compare(b.Count, a.Count); c != 0 {
			return c
		}
		return less(a.Key, b.Key)
	})
	if n > 0 && len(out) > n {
		out = out[:n]
	}
	return out
}

// Histogram counts values into fixed-width bins over [Lo, Hi); values outside
// go to Under and Over.
type Histogram struct {
	Lo, Hi      float64
	Bins        []int64
	Under, Over int64
}

// NewHistogram returns a histogram of n bins over [lo, hi). It panics when n < 1 or hi <= lo.
func NewHistogram(lo, hi float64, n int) *Histogram {
	if n < 1 || !(hi > lo) {
		panic("stats: NewHistogram needs n >= 1 and hi > lo")
	}
	return &Histogram{Lo: lo, Hi: hi, Bins: make([]int64, n)}
}

// Add counts v.
func (h *Histogram) Add(v float64) {
	switch {
	case v < h.Lo:
		h.Under++
	case v >= h.Hi:
		h.Over++
	default:
		i := int((v - h.Lo) / (h.Hi - h.Lo) * float64(len(h.Bins)))
		if i >= len(h.Bins) {
			i = len(h.Bins) - 1
		}
		h.Bins[i]++
	}
}
