// Package cluster is k-means with scikit-learn's semantics (1.2): greedy
// k-means++ seeding, Lloyd iterations with the same convergence rules, n_init
// restarts keeping the lowest inertia, sample weights, automatic k by
// silhouette, and z-score standardisation. It does no I/O and imports only
// the standard library.
//
// Sample weights make a weighted point count as that many copies of it: a
// capture's (frame length, TCP length) points repeat a few hundred distinct
// pairs a million times, and clustering the distinct pairs with their counts
// gives exactly the result of clustering every frame.
package cluster

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"sort"
	"sync"
)

// Options configure KMeans. Zero values give scikit-learn's defaults.
type Options struct {
	K       int     // clusters (required)
	NInit   int     // restarts, the best inertia is kept (default 10; 1 with Init)
	MaxIter int     // iterations per run (default 300)
	Tol     float64 // relative tolerance: convergence when the centers move less than Tol * mean variance (default 1e-4)
	Seed    uint64  // random seed for k-means++
	// Init gives the initial centers (K rows of d values) instead of k-means++.
	Init [][]float64
	// Workers bounds the goroutines used per run (default GOMAXPROCS).
	Workers int
}

// Result of a k-means run.
type Result struct {
	K          int
	Centers    [][]float64 // in the units of the data given
	Labels     []int32
	Sizes      []float64 // total weight per cluster
	Inertia    float64   // sum of weighted squared distances to the assigned centers
	Iterations int
	// Dist is each point's distance to its center (its outlier score).
	Dist []float64
}

// Errors returned for data that cannot be clustered as asked.
var (
	ErrNoData         = errors.New("cluster: no points")
	ErrTooFewDistinct = errors.New("cluster: fewer distinct points than clusters")
)

// Data is n points of d dimensions, row-major, with optional weights.
type Data struct {
	X       []float64
	D       int
	Weights []float64 // nil: every point weighs 1
}

// N is the number of points.
func (ds *Data) N() int { return len(ds.X) / ds.D }

func (ds *Data) row(i int) []float64 { return ds.X[i*ds.D : (i+1)*ds.D] }

func (ds *Data) w(i int) float64 {
	if ds.Weights == nil {
		return 1
	}
	return ds.Weights[i]
}

// KMeans clusters data. It panics on misuse (a dimension that does not divide
// the data, weights of the wrong length) and returns an error when the data
// cannot give K clusters.
func KMeans(data Data, opts Options) (*Result, error) {
	if data.D <= 0 || len(data.X)%data.D != 0 {
		panic("cluster: data length is not a multiple of its dimension")
	}
	n := data.N()
	if data.Weights != nil && len(data.Weights) != n {
		panic("cluster: weights and points differ in number")
	}
	if n == 0 {
		return nil, ErrNoData
	}
	if opts.K < 1 {
		return nil, fmt.Errorf("cluster: k must be at least 1, not %d", opts.K)
	}
	if distinct := countDistinct(data, opts.K); distinct < opts.K {
		return nil, fmt.Errorf("%w: %d distinct points, k = %d", ErrTooFewDistinct, distinct, opts.K)
	}
	if opts.MaxIter <= 0 {
		opts.MaxIter = 300
	}
	if opts.Tol == 0 {
		opts.Tol = 1e-4
	}
	if opts.Workers <= 0 {
		opts.Workers = runtime.GOMAXPROCS(0)
	}
	tol := opts.Tol * meanVariance(data)
	if opts.Init != nil {
		if len(opts.Init) != opts.K {
			panic("cluster: Init must hold K centers")
		}
		c := make([]float64, 0, opts.K*data.D)
		for _, r := range opts.Init {
			if len(r) != data.D {
				panic("cluster: an initial center has the wrong dimension")
			}
			c = append(c, r...)
		}
		return lloyd(data, c, opts, tol), nil
	}
	nInit := opts.NInit
	if nInit <= 0 {
		nInit = 10
	}
	rng := rand.New(rand.NewPCG(opts.Seed, 0x9e3779b97f4a7c15))
	var best *Result
	for run := 0; run < nInit; run++ {
		centers := plusPlus(data, opts.K, rng)
		r := lloyd(data, centers, opts, tol)
		if best == nil || r.Inertia < best.Inertia {
			best = r
		}
	}
	return best, nil
}

func countDistinct(data Data, stop int) int {
	seen := map[string]struct{}{}
	n := data.N()
	buf := make([]byte, 0, 8*data.D)
	for i := 0; i < n && len(seen) < stop; i++ {
		if data.w(i) <= 0 {
			continue
		}
		buf = buf[:0]
		for _, v := range data.row(i) {
			b := math.Float64bits(v)
			buf = append(buf, byte(b), byte(b>>8), byte(b>>16), byte(b>>24), byte(b>>32), byte(b>>40), byte(b>>48), byte(b>>56))
		}
		seen[string(buf)] = struct{}{}
	}
	return len(seen)
}

// meanVariance is the mean over dimensions of the (weighted) population
// variance, scikit-learn's scale for tol.
func meanVariance(data Data) float64 {
	n, d := data.N(), data.D
	var total float64
	for j := 0; j < d; j++ {
		var sw, mean float64
		for i := 0; i < n; i++ {
			w := data.w(i)
			sw += w
			mean += w * data.X[i*d+j]
		}
		mean /= sw
		var ss float64
		for i := 0; i < n; i++ {
			dv := data.X[i*d+j] - mean
			ss += data.w(i) * dv * dv
		}
		total += ss / sw
	}
	return total / float64(d)
}

func sqdist(a, b []float64) float64 {
	var s float64
	for i := range a {
		d := a[i] - b[i]
		s += d * d
	}
	return s
}

// plusPlus is scikit-learn's greedy k-means++: each new center is the best of
// 2 + ln(k) candidates sampled with probability proportional to weighted
// squared distance.
func plusPlus(data Data, k int, rng *rand.Rand) []float64 {
	n, d := data.N(), data.D
	trials := 2 + int(math.Log(float64(k)))
	centers := make([]float64, 0, k*d)
	// First center: uniform over the (expanded) points.
	first := sampleWeighted(data, nil, rng.Float64())
	centers = append(centers, data.row(first)...)
	closest := make([]float64, n)
	var pot float64
	for i := 0; i < n; i++ {
		closest[i] = data.w(i) * sqdist(data.row(i), data.row(first))
		pot += closest[i]
	}
	cum := make([]float64, n)
	cand := make([]float64, n)
	bestD := make([]float64, n)
	for c := 1; c < k; c++ {
		var s float64
		for i := 0; i < n; i++ {
			s += closest[i]
			cum[i] = s
		}
		bestPot := math.Inf(1)
		bestID := -1
		for t := 0; t < trials; t++ {
			r := rng.Float64() * pot
			id := sort.SearchFloat64s(cum, r)
			if id >= n {
				id = n - 1
			}
			var p float64
			ci := data.row(id)
			for i := 0; i < n; i++ {
				v := data.w(i) * sqdist(data.row(i), ci)
				if closest[i] < v {
					v = closest[i]
				}
				cand[i] = v
				p += v
			}
			if p < bestPot {
				bestPot, bestID = p, id
				copy(bestD, cand)
			}
		}
		pot = bestPot
		copy(closest, bestD)
		centers = append(centers, data.row(bestID)...)
	}
	return centers
}

// sampleWeighted picks a point with probability proportional to its weight.
func sampleWeighted(data Data, _ []float64, u float64) int {
	n := data.N()
	if data.Weights == nil {
		i := int(u * float64(n))
		return min(i, n-1)
	}
	var total float64
	for _, w := range data.Weights {
		total += w
	}
	target := u * total
	var cum float64
	for i, w := range data.Weights {
		cum += w
		if cum > target && w > 0 {
			return i
		}
	}
	return n - 1
}

// lloyd runs scikit-learn's _kmeans_single_lloyd from the given centers:
// assign, recompute centers (relocating empty clusters to the farthest
// points), stop when the labels no longer change or the centers moved (sum of
// squared shifts) by at most tol; then, unless the labels stopped changing,
// assign once more so that labels match the final centers.
func lloyd(data Data, centers []float64, opts Options, tol float64) *Result {
	n, d, k := data.N(), data.D, opts.K
	labels := make([]int32, n)
	old := make([]int32, n)
	for i := range old {
		old[i] = -1
	}
	newC := make([]float64, k*d)
	weights := make([]float64, k)
	iters := 0
	strict := false
	for iters = 0; iters < opts.MaxIter; iters++ {
		assign(data, centers, k, labels, opts.Workers)
		updateCenters(data, centers, labels, k, newC, weights)
		var shift float64
		for j := 0; j < k*d; j++ {
			dv := newC[j] - centers[j]
			shift += dv * dv
		}
		centers, newC = newC, centers
		same := true
		for i := range labels {
			if labels[i] != old[i] {
				same = false
				break
			}
		}
		if same {
			strict = true
			break
		}
		if shift <= tol {
			break
		}
		copy(old, labels)
	}
	if !strict {
		assign(data, centers, k, labels, opts.Workers)
	}
	res := &Result{K: k, Labels: labels, Iterations: min(iters+1, opts.MaxIter), Dist: make([]float64, n), Sizes: make([]float64, k)}
	for i := 0; i < n; i++ {
		dd := sqdist(data.row(i), centers[int(labels[i])*d:int(labels[i]+1)*d])
		res.Dist[i] = math.Sqrt(dd)
		res.Inertia += data.w(i) * dd
		res.Sizes[labels[i]] += data.w(i)
	}
	res.Centers = make([][]float64, k)
	for j := 0; j < k; j++ {
		res.Centers[j] = append([]float64(nil), centers[j*d:(j+1)*d]...)
	}
	return res
}

// assign labels every point with its nearest center (first on ties), in
// parallel chunks.
func assign(data Data, centers []float64, k int, labels []int32, workers int) {
	n, d := data.N(), data.D
	work := func(lo, hi int) {
		for i := lo; i < hi; i++ {
			x := data.X[i*d : (i+1)*d]
			best, bestD := int32(0), math.Inf(1)
			for j := 0; j < k; j++ {
				dd := sqdist(x, centers[j*d:(j+1)*d])
				if dd < bestD {
					best, bestD = int32(j), dd
				}
			}
			labels[i] = best
		}
	}
	if workers <= 1 || n < 20000 {
		work(0, n)
		return
	}
	var wg sync.WaitGroup
	chunk := (n + workers - 1) / workers
	for lo := 0; lo < n; lo += chunk {
		hi := min(lo+chunk, n)
		wg.Add(1)
		go func() {
			defer wg.Done()
			work(lo, hi)
		}()
	}
	wg.Wait()
}

// updateCenters computes weighted means into newC; an empty cluster takes the
// point farthest from its center, as scikit-learn's _relocate_empty_clusters.
func updateCenters(data Data, centers []float64, labels []int32, k int, newC, weights []float64) {
	n, d := data.N(), data.D
	clear(newC)
	clear(weights)
	for i := 0; i < n; i++ {
		w := data.w(i)
		l := int(labels[i])
		weights[l] += w
		x := data.row(i)
		for j := 0; j < d; j++ {
			newC[l*d+j] += w * x[j]
		}
	}
	var empty []int
	for j := 0; j < k; j++ {
		if weights[j] == 0 {
			empty = append(empty, j)
		}
	}
	if len(empty) > 0 {
		type far struct {
			i int
			d float64
		}
		fs := make([]far, n)
		for i := 0; i < n; i++ {
			fs[i] = far{i, sqdist(data.row(i), centers[int(labels[i])*d:int(labels[i]+1)*d])}
		}
		sort.SliceStable(fs, func(a, b int) bool { return fs[a].d > fs[b].d })
		for e, j := range empty {
			i := fs[e].i
			w := data.w(i)
			x := data.row(i)
			old := int(labels[i])
			for c := 0; c < d; c++ {
				newC[old*d+c] -= w * x[c]
				newC[j*d+c] = w * x[c]
			}
			weights[old] -= w
			weights[j] = w
		}
	}
	for j := 0; j < k; j++ {
		if weights[j] == 0 {
			copy(newC[j*d:(j+1)*d], centers[j*d:(j+1)*d])
			continue
		}
		for c := 0; c < d; c++ {
			newC[j*d+c] /= weights[j]
		}
	}
}
