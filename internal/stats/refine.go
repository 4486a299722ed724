package stats

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

// Budget is how many distinct values the Refiners that share it may still
// keep, all brackets together (a value and its count: about 40 bytes).
type Budget struct{ Left int }

// Refiner collects one sketched column's brackets on the second pass.
type Refiner struct {
	seen       int64   // values of the second pass
	smin, smax float64 // and their extremes
	budget     *Budget
	lo, hi     [3]float64
	below      [3]int64
	// The values inside each bracket with their counts: a bracket may
	// hold one value millions of times (the time deltas of a busy link
	// repeat to the microsecond); the budget bounds the distinct values.
	in     [3]map[float64]int64
	sorted [3][]float64 // in's values in order (Refine)
	over   [3]bool
}

// Refiner returns a Refiner for d's quartiles whose brackets keep distinct
// values within b, or nil when d's quartiles are exact already.
func (d *Describer) Refiner(b *Budget) *Refiner {
	if d.sketch == nil || d.n == 0 {
		return nil
	}
	r := &Refiner{budget: b}
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
	if r.seen == 0 || v < r.smin {
		r.smin = v
	}
	if r.seen == 0 || v > r.smax {
		r.smax = v
	}
	r.seen++
	for i := range r.lo {
		switch {
		case v < r.lo[i]:
			r.below[i]++
		case v <= r.hi[i] && !r.over[i]:
			m := r.in[i]
			if m == nil {
				m = map[float64]int64{}
				r.in[i] = m
			}
			if _, ok := m[v]; ok {
				m[v]++
			} else if r.budget.Left > 0 {
				r.budget.Left--
				m[v] = 1
			} else {
				// Over the budget: this bracket is given up, and its
				// values go back to the budget for the others.
				r.over[i] = true
				r.budget.Left += len(m)
				r.in[i] = nil
			}
		}
	}
}

// Refine makes d's quartiles exact from r, which a second pass over the
// same values filled, and reports whether it could (else d's quartiles stay
// the sketch's). Only Summary sees it: a refined column's State is its
// sketch's, as before.
func (d *Describer) Refine(r *Refiner) bool {
	// The second pass must have read the same values: the same count and
	// extremes (a file replaced between the passes, or a value added to d
	// since the Refiner was made, fails here).
	if r == nil || d.sketch == nil || r.seen != d.n || r.smin != d.min || r.smax != d.max {
		return false
	}
	var q [3]float64
	for i, p := range quartiles {
		if r.over[i] {
			return false
		}
		lo, hi, frac := orderStats(d.n, p)
		a, okA := r.at(i, lo)
		b, okB := r.at(i, hi)
		if !okA || !okB {
			return false // an order statistic outside the bracket
		}
		q[i] = interpolate(a, b, frac)
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
