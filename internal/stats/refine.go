package stats

import "math"

// Exact quartiles past the cap, by a second pass.
//
// A column that outgrew its cap has its quartiles from a sketch, each within
// SketchRankError of the exact rank. Where the values can be read again (a
// capture file), a second pass makes them exact in bounded memory: the
// sketch brackets each quartile's order statistics between two values
// (twice the rank error on each side); the second pass counts the values
// below each bracket and keeps those inside it; the order statistics are
// then found among the kept values by their rank. A bracket that missed
// (the second pass saw other values, or more than the budget fell inside)
// leaves that column's quartiles as the sketch's, flagged as before.

// Refiner collects one sketched column's brackets on the second pass.
type Refiner struct {
	n      int64 // values the first pass counted
	seen   int64
	max    int // values kept per bracket at most
	lo, hi [3]float64
	below  [3]int64
	// The values inside each bracket with their counts: a bracket may
	// hold one value millions of times (the time deltas of a busy link
	// repeat to the microsecond), and max bounds the distinct values.
	in     [3]map[float64]int64
	sorted [3][]float64 // in's values in order (Refine)
	over   [3]bool
}

var quartiles = [3]float64{0.25, 0.5, 0.75}

// Refiner returns a Refiner for d's quartiles, keeping at most maxHeld
// distinct values in each of its three brackets, or nil when d's quartiles are exact
// already.
func (d *Describer) Refiner(maxHeld int) *Refiner {
	if d.sketch == nil || d.n == 0 {
		return nil
	}
	r := &Refiner{n: d.n, max: maxHeld}
	// Twice the rank error on each side, and two ranks more for the
	// neighbour the interpolation needs and the sketch's own rounding.
	w := 2*SketchRankError + 2/float64(d.n)
	for i, p := range quartiles {
		r.lo[i], r.hi[i] = d.min, d.max
		if p-w > 0 {
			r.lo[i] = d.sketch.quantile(p - w)
		}
		if p+w < 1 {
			r.hi[i] = d.sketch.quantile(p + w)
		}
	}
	return r
}

// Add takes one value of the second pass (NaN counts as absent, as in Add).
func (r *Refiner) Add(v float64) {
	if v != v {
		return
	}
	r.seen++
	for i := range r.lo {
		switch {
		case v < r.lo[i]:
			r.below[i]++
		case v <= r.hi[i]:
			m := r.in[i]
			if m == nil {
				m = map[float64]int64{}
				r.in[i] = m
			}
			if _, ok := m[v]; ok || len(m) < r.max {
				m[v]++
			} else {
				r.over[i] = true
			}
		}
	}
}

// Refine makes d's quartiles exact from r, which a second pass over the
// same values filled, and reports whether it could (else d's quartiles stay
// the sketch's). Only Summary sees it: a refined column's State is its
// sketch's, as before.
func (d *Describer) Refine(r *Refiner) bool {
	if r == nil || d.sketch == nil || r.seen != d.n || r.n != d.n {
		return false
	}
	var q [3]float64
	for i, p := range quartiles {
		if r.over[i] {
			return false
		}
		h := float64(d.n-1) * p
		lo := int64(math.Floor(h))
		hi := min(lo+1, d.n-1)
		a, okA := r.at(i, lo)
		b, okB := r.at(i, hi)
		if !okA || !okB {
			return false // an order statistic outside the bracket
		}
		if frac := h - math.Floor(h); frac == 0 {
			q[i] = a
		} else {
			q[i] = Lerp(a, b, frac)
		}
	}
	d.refined = &q
	return true
}

// at returns the value of rank k (0-based, over all the values) if it is
// inside bracket i.
func (r *Refiner) at(i int, k int64) (float64, bool) {
	k -= r.below[i]
	if k < 0 {
		return 0, false
	}
	if r.sorted[i] == nil {
		r.sorted[i] = make([]float64, 0, len(r.in[i]))
		for v := range r.in[i] {
			r.sorted[i] = append(r.sorted[i], v)
		}
		sortFloats(r.sorted[i])
	}
	for _, v := range r.sorted[i] {
		c := r.in[i][v]
		if k < c {
			return v, true
		}
		k -= c
	}
	return 0, false
}
