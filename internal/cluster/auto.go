package cluster

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
)

// Scaler is a z-score standardisation: (x - mean) / std per dimension, with
// the population std (numpy's default, ddof=0) and 1 for a constant
// dimension, as the seed's pipeline does.
type Scaler struct {
	Mean, Std []float64
}

// FitScaler computes the (weighted) mean and std of each dimension.
func FitScaler(data Data) Scaler {
	n, d := data.N(), data.D
	s := Scaler{Mean: make([]float64, d), Std: make([]float64, d)}
	for j := 0; j < d; j++ {
		var sw, m float64
		for i := 0; i < n; i++ {
			sw += data.w(i)
			m += data.w(i) * data.X[i*d+j]
		}
		m /= sw
		var ss float64
		for i := 0; i < n; i++ {
			dv := data.X[i*d+j] - m
			ss += data.w(i) * dv * dv
		}
		s.Mean[j] = m
		s.Std[j] = math.Sqrt(ss / sw)
		if s.Std[j] == 0 {
			s.Std[j] = 1
		}
	}
	return s
}

// Transform returns standardised data (same weights).
func (s Scaler) Transform(data Data) Data {
	out := Data{X: make([]float64, len(data.X)), D: data.D, Weights: data.Weights}
	for i, v := range data.X {
		j := i % data.D
		out.X[i] = (v - s.Mean[j]) / s.Std[j]
	}
	return out
}

// Inverse maps a standardised point back to original units.
func (s Scaler) Inverse(p []float64) []float64 {
	out := make([]float64, len(p))
	for j, v := range p {
		out[j] = v*s.Std[j] + s.Mean[j]
	}
	return out
}

// Silhouette is the mean silhouette coefficient (Rousseeuw 1987) of a sample
// of at most sample points drawn with probability proportional to weight
// (scikit-learn's silhouette_score with sample_size): for each sampled point,
// a = mean distance to the other sampled points of its cluster, b = the
// lowest mean distance to another cluster's sampled points, s = (b-a)/max(a,b)
// (0 for a point alone in its cluster). It needs at least two clusters.
func Silhouette(data Data, labels []int32, k, sample int, seed uint64) float64 {
	n := data.N()
	rng := rand.New(rand.NewPCG(seed, 7))
	// The sample as distinct points with their multiplicity: a weighted
	// sample of a few thousand draws from few distinct points (the
	// (frame.len, tcp.len) pairs of a capture) repeats them, and a copy
	// contributes the same distances as its original. Profiling watch's
	// last fit showed the pairwise loop over the 2000 draws as most of it;
	// over distinct points it is the same sums in a fraction of the time.
	var idx []int
	var mult []float64
	if data.Weights == nil && n <= sample {
		idx = make([]int, n)
		mult = make([]float64, n)
		for i := range idx {
			idx[i], mult[i] = i, 1
		}
	} else {
		pick := newWeightedSampler(data)
		slot := map[int]int{}
		for d := 0; d < sample; d++ {
			i := pick.sample(rng.Float64())
			if s, ok := slot[i]; ok {
				mult[s]++
				continue
			}
			slot[i] = len(idx)
			idx = append(idx, i)
			mult = append(mult, 1)
		}
	}
	var m float64
	sums := make([]float64, k)
	counts := make([]float64, k)
	for s, i := range idx {
		counts[labels[i]] += mult[s]
		m += mult[s]
	}
	used := 0
	for _, c := range counts {
		if c > 0 {
			used++
		}
	}
	if used < 2 {
		return math.NaN()
	}
	var total float64
	for s, i := range idx {
		clear(sums)
		xi := data.row(i)
		for t, j := range idx {
			if t != s {
				sums[labels[j]] += mult[t] * math.Sqrt(sqdist(xi, data.row(j)))
			}
		}
		own := labels[i]
		if counts[own] <= 1 {
			continue // s = 0
		}
		a := sums[own] / (counts[own] - 1)
		b := math.Inf(1)
		for c := 0; c < k; c++ {
			if int32(c) != own && counts[c] > 0 {
				b = math.Min(b, sums[c]/counts[c])
			}
		}
		if mx := math.Max(a, b); mx > 0 {
			total += mult[s] * (b - a) / mx
		}
	}
	return total / m
}

// Choice records one k of an automatic choice. Silhouette is NaN where it
// is undefined (fewer than two clusters: scikit-learn's silhouette_score
// raises an error), written to JSON as null with a note saying why.
type Choice struct {
	K          int     `json:"k"`
	Inertia    float64 `json:"inertia"`
	Silhouette float64 `json:"silhouette"`
}

type choiceJSON struct {
	K          int      `json:"k"`
	Inertia    float64  `json:"inertia"`
	Silhouette *float64 `json:"silhouette"`
	Note       string   `json:"silhouette_note,omitempty"`
}

// MarshalJSON writes an undefined silhouette as null, with the reason.
func (c Choice) MarshalJSON() ([]byte, error) {
	j := choiceJSON{K: c.K, Inertia: c.Inertia}
	if math.IsNaN(c.Silhouette) || math.IsInf(c.Silhouette, 0) {
		j.Note = "undefined: fewer than two clusters"
	} else {
		j.Silhouette = &c.Silhouette
	}
	return json.Marshal(j)
}

// UnmarshalJSON reads what MarshalJSON writes (null as NaN).
func (c *Choice) UnmarshalJSON(b []byte) error {
	var j choiceJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	c.K, c.Inertia, c.Silhouette = j.K, j.Inertia, math.NaN()
	if j.Silhouette != nil {
		c.Silhouette = *j.Silhouette
	}
	return nil
}

// AutoResult is the chosen clustering with the curve that chose it.
type AutoResult struct {
	*Result
	Curve []Choice `json:"curve"` // the elbow curve and silhouettes, k = KMin..KMax
	Why   string   `json:"why"`
}

// Auto clusters with every k in [kmin, kmax] (capped at the number of
// distinct points) and keeps the k with the highest silhouette on a sample of
// sampleSize points. With fewer than two distinct points it returns one cluster.
func Auto(data Data, kmin, kmax, sampleSize int, opts Options) (*AutoResult, error) {
	if kmin < 2 {
		kmin = 2
	}
	distinct := countDistinct(data, kmax+1)
	if distinct < 2 {
		o := opts
		o.K = 1
		r, err := KMeans(data, o)
		if err != nil {
			return nil, err
		}
		return &AutoResult{Result: r, Curve: []Choice{{K: 1, Inertia: r.Inertia, Silhouette: math.NaN()}},
			Why: "all points are identical: one cluster"}, nil
	}
	if kmax > distinct {
		kmax = distinct
	}
	if kmin > kmax {
		kmin = kmax
	}
	var best *AutoResult
	var curve []Choice
	for k := kmin; k <= kmax; k++ {
		o := opts
		o.K = k
		r, err := KMeans(data, o)
		if err != nil {
			return nil, err
		}
		s := Silhouette(data, r.Labels, k, sampleSize, opts.Seed)
		curve = append(curve, Choice{K: k, Inertia: r.Inertia, Silhouette: s})
		if best == nil || (!math.IsNaN(s) && (math.IsNaN(best.Curve[0].Silhouette) || s > best.Curve[0].Silhouette)) {
			best = &AutoResult{Result: r, Curve: []Choice{curve[len(curve)-1]}}
		}
	}
	chosen := best.Curve[0]
	best.Curve = curve
	best.Why = fmtWhy(chosen, kmin, kmax)
	return best, nil
}

func fmtWhy(c Choice, kmin, kmax int) string {
	return fmt.Sprintf("k = %d has the highest silhouette (%.3f) among k = %d..%d", c.K, c.Silhouette, kmin, kmax)
}
