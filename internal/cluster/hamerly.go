package cluster

import (
	"math"
)

// Algorithm selects the iteration.
type Algorithm uint8

const (
	// AutoAlgorithm uses Hamerly when d*k >= 16 and Lloyd otherwise (in low
	// dimensions the distance loop costs no more than the bound checks).
	AutoAlgorithm Algorithm = iota
	Lloyd
	// Hamerly keeps, per point, an upper bound on the distance to its center
	// and a lower bound on the distance to the second closest, and skips the
	// distance loop when the bounds prove the assignment unchanged (Hamerly,
	// "Making k-means even faster", SDM 2010). It assigns exactly as Lloyd.
	Hamerly
)

// hamerly holds the bounds between iterations.
type hamerly struct {
	upper, lower []float64
	init         bool
}

// assignHamerly is assignSum with Hamerly's bounds; moved[j] is how far
// center j moved since the previous call (nil on the first).
func (h *hamerly) assign(data Data, centers []float64, k int, labels []int32, sums, weights []float64, moved []float64, workers int) bool {
	n, d := data.N(), data.D
	if !h.init {
		h.upper, h.lower = make([]float64, n), make([]float64, n)
	}
	// Half the distance from each center to its nearest other center.
	half := make([]float64, k)
	for j := 0; j < k; j++ {
		m := math.Inf(1)
		for o := 0; o < k; o++ {
			if o != j {
				m = math.Min(m, sqdist(centers[j*d:(j+1)*d], centers[o*d:(o+1)*d]))
			}
		}
		half[j] = 0.5 * math.Sqrt(m)
	}
	var maxMove, secondMove float64
	maxAt := -1
	for j, p := range moved {
		if p > maxMove {
			secondMove, maxMove, maxAt = maxMove, p, j
		} else if p > secondMove {
			secondMove = p
		}
	}
	first := !h.init
	h.init = true
	work := func(lo, hi int, p *part) {
		for i := lo; i < hi; i++ {
			x := data.X[i*d : (i+1)*d]
			a := labels[i]
			if !first {
				h.upper[i] += moved[a]
				if int(a) == maxAt {
					h.lower[i] -= secondMove
				} else {
					h.lower[i] -= maxMove
				}
				bound := math.Max(half[a], h.lower[i])
				if h.upper[i] > bound {
					h.upper[i] = math.Sqrt(sqdist(x, centers[int(a)*d:int(a+1)*d]))
				}
				if h.upper[i] <= bound {
					goto keep
				}
			}
			{
				best, second := int32(0), math.Inf(1)
				bestD := math.Inf(1)
				for j := 0; j < k; j++ {
					dd := sqdist(x, centers[j*d:(j+1)*d])
					if dd < bestD {
						second, bestD, best = bestD, dd, int32(j)
					} else if dd < second {
						second = dd
					}
				}
				h.upper[i], h.lower[i] = math.Sqrt(bestD), math.Sqrt(second)
				if labels[i] != best {
					labels[i] = best
					p.changed = true
				}
			}
		keep:
			if p.sums != nil {
				w := data.w(i)
				l := labels[i]
				p.weights[l] += w
				for c := 0; c < d; c++ {
					p.sums[int(l)*d+c] += w * x[c]
				}
			}
		}
	}
	return splitAssign(n, k, d, workers, sums, weights, work)
}
