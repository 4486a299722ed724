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
	// Algorithm: AutoAlgorithm (default), Lloyd or Hamerly; all give the same result.
	Algorithm Algorithm
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
	ErrNotFinite      = errors.New("cluster: a coordinate, weight or initial center is not a finite number")
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
	// NaN or ±Inf has no distance to anything (k-means++ found no
	// candidate and indexed row -1): refused, as scikit-learn refuses it.
	if err := checkFinite(data, opts.Init); err != nil {
		return nil, err
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
	var sc scratch
	for run := 0; run < nInit; run++ {
		centers := plusPlus(data, opts.K, rng, opts.Workers, &sc)
		r := lloyd(data, centers, opts, tol)
		if best == nil || r.Inertia < best.Inertia {
			best = r
		}
	}
	return best, nil
}

func checkFinite(data Data, init [][]float64) error {
	finite := func(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
	for i, v := range data.X {
		if !finite(v) {
			return fmt.Errorf("%w: point %d has %v", ErrNotFinite, i/data.D, v)
		}
	}
	for i, w := range data.Weights {
		if !finite(w) {
			return fmt.Errorf("%w: point %d weighs %v", ErrNotFinite, i, w)
		}
	}
	for i, c := range init {
		for _, v := range c {
			if !finite(v) {
				return fmt.Errorf("%w: initial center %d has %v", ErrNotFinite, i, v)
			}
		}
	}
	return nil
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
// squared distance. The distance passes run in parallel chunks.
func plusPlus(data Data, k int, rng *rand.Rand, workers int, sc *scratch) []float64 {
	n, d := data.N(), data.D
	trials := 2 + int(math.Log(float64(k)))
	centers := make([]float64, 0, k*d)
	first := sampleWeighted(data, nil, rng.Float64())
	centers = append(centers, data.row(first)...)
	closest := sc.floats(&sc.closest, n)
	cum := sc.floats(&sc.cum, n)
	pot := parallelSum(n, workers, func(lo, hi int) float64 {
		var s float64
		c := data.row(first)
		for i := lo; i < hi; i++ {
			closest[i] = data.w(i) * sqdist(data.row(i), c)
			s += closest[i]
		}
		return s
	})
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
			ci := data.row(id)
			p := parallelSum(n, workers, func(lo, hi int) float64 {
				var s float64
				if d == 2 && data.Weights == nil {
					x0, y0 := ci[0], ci[1]
					xs := data.X[2*lo : 2*hi]
					cl := closest[lo:hi]
					for i := range cl {
						dx, dy := xs[2*i]-x0, xs[2*i+1]-y0
						s += min(dx*dx+dy*dy, cl[i])
					}
					return s
				}
				for i := lo; i < hi; i++ {
					s += min(data.w(i)*sqdist(data.row(i), ci), closest[i])
				}
				return s
			})
			if p < bestPot {
				bestPot, bestID = p, id
			}
		}
		cb := data.row(bestID)
		pot = parallelSum(n, workers, func(lo, hi int) float64 {
			var s float64
			for i := lo; i < hi; i++ {
				closest[i] = min(data.w(i)*sqdist(data.row(i), cb), closest[i])
				s += closest[i]
			}
			return s
		})
		centers = append(centers, cb...)
	}
	return centers
}

// parallelSum runs fn over chunks of [0, n) and adds the results, in chunk
// order.
func parallelSum(n, workers int, fn func(lo, hi int) float64) float64 {
	parts := make([]float64, max(workers, 1))
	parallelChunks(n, workers, func(p, lo, hi int) { parts[p] = fn(lo, hi) })
	var s float64
	for _, v := range parts {
		s += v
	}
	return s
}

// parallelChunks runs fn over up to workers chunks of [0, n), numbered from
// 0, on their own goroutines (one chunk, on this one, below 50,000 points).
func parallelChunks(n, workers int, fn func(part, lo, hi int)) {
	if workers <= 1 || n < 50000 {
		fn(0, 0, n)
		return
	}
	var wg sync.WaitGroup
	chunk := (n + workers - 1) / workers
	for w := 0; w < workers; w++ {
		lo, hi := w*chunk, min((w+1)*chunk, n)
		if lo >= hi {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			fn(w, lo, hi)
		}()
	}
	wg.Wait()
}

// scratch holds per-call buffers reused across n_init runs.
type scratch struct {
	closest, cum []float64
}

func (sc *scratch) floats(p *[]float64, n int) []float64 {
	if cap(*p) < n {
		*p = make([]float64, n)
	}
	*p = (*p)[:n]
	return *p
}

// sampleWeighted picks a point with probability proportional to its weight.
func sampleWeighted(data Data, _ []float64, u float64) int {
	return newWeightedSampler(data).sample(u)
}

// weightedSampler draws points with probability proportional to their
// weight by a binary search of the running sums (the first point whose
// running sum exceeds u times the total), so that many draws cost
// O(log n) each instead of a pass over the weights.
type weightedSampler struct {
	n   int
	cum []float64 // nil: no weights, uniform
}

func newWeightedSampler(data Data) weightedSampler {
	s := weightedSampler{n: data.N()}
	if data.Weights != nil {
		s.cum = make([]float64, len(data.Weights))
		var c float64
		for i, w := range data.Weights {
			c += w
			s.cum[i] = c
		}
	}
	return s
}

func (s weightedSampler) sample(u float64) int {
	if len(s.cum) == 0 {
		return min(int(u*float64(s.n)), s.n-1)
	}
	// A point of weight 0 has the running sum of the one before it, so the
	// first running sum above the target belongs to a point of weight > 0.
	target := u * s.cum[len(s.cum)-1]
	if i := sort.SearchFloat64s(s.cum, math.Nextafter(target, math.Inf(1))); i < s.n {
		return i
	}
	return s.n - 1
}

// lloyd runs scikit-learn's _kmeans_single_lloyd from the given centers:
// assign, recompute centers (relocating empty clusters to the farthest
// points), stop when the labels no longer change or the centers moved (sum of
// squared shifts) by at most tol; then, unless the labels stopped changing,
// assign once more so that labels match the final centers. Assignment and
// the per-cluster sums are one parallel pass, as scikit-learn's lloyd_iter.
func lloyd(data Data, centers []float64, opts Options, tol float64) *Result {
	n, d, k := data.N(), data.D, opts.K
	labels := make([]int32, n)
	for i := range labels {
		labels[i] = -1
	}
	newC := make([]float64, k*d)
	weights := make([]float64, k)
	iters := 0
	strict := false
	useHamerly := opts.Algorithm == Hamerly || (opts.Algorithm == AutoAlgorithm && d*k >= 16)
	var hb hamerly
	var moved []float64
	step := func(sums, weights []float64) bool {
		if useHamerly {
			return hb.assign(data, centers, k, labels, sums, weights, moved, opts.Workers)
		}
		return assignSum(data, centers, k, labels, sums, weights, opts.Workers)
	}
	for iters = 0; iters < opts.MaxIter; iters++ {
		changed := step(newC, weights)
		finishCenters(data, centers, labels, k, newC, weights)
		var shift float64
		for j := 0; j < k*d; j++ {
			dv := newC[j] - centers[j]
			shift += dv * dv
		}
		if useHamerly {
			moved = make([]float64, k)
			for j := 0; j < k; j++ {
				moved[j] = math.Sqrt(sqdist(newC[j*d:(j+1)*d], centers[j*d:(j+1)*d]))
			}
		}
		centers, newC = newC, centers
		if !changed {
			strict = true
			break
		}
		if shift <= tol {
			break
		}
	}
	if !strict {
		step(nil, nil)
	}
	res := &Result{K: k, Labels: labels, Iterations: min(iters+1, opts.MaxIter), Dist: make([]float64, n), Sizes: make([]float64, k)}
	// Distances, inertia and sizes in parallel chunks (done serially, this
	// pass was a tenth of BenchmarkKMeans1M's time), added in chunk order.
	workers := max(opts.Workers, 1)
	inertias := make([]float64, workers)
	sizes := make([]float64, workers*k)
	parallelChunks(n, workers, func(p, lo, hi int) {
		sz := sizes[p*k : (p+1)*k]
		var inertia float64
		for i := lo; i < hi; i++ {
			l := int(labels[i])
			dd := sqdist(data.row(i), centers[l*d:(l+1)*d])
			res.Dist[i] = math.Sqrt(dd)
			inertia += data.w(i) * dd
			sz[l] += data.w(i)
		}
		inertias[p] = inertia
	})
	for p := range workers {
		res.Inertia += inertias[p]
		for j := range k {
			res.Sizes[j] += sizes[p*k+j]
		}
	}
	res.Centers = make([][]float64, k)
	for j := 0; j < k; j++ {
		res.Centers[j] = append([]float64(nil), centers[j*d:(j+1)*d]...)
	}
	return res
}

// assignSum labels every point with its nearest center (first on ties) and,
// when sums is not nil, accumulates the weighted sums and weights per
// cluster. It reports whether any label changed.
func assignSum(data Data, centers []float64, k int, labels []int32, sums, weights []float64, workers int) bool {
	n, d := data.N(), data.D
	work := func(lo, hi int, p *part) {
		if d == 2 && data.Weights == nil && k <= 16 {
			assign2(data.X, centers, k, labels, lo, hi, p.sums, p.weights, &p.changed)
			return
		}
		for i := lo; i < hi; i++ {
			x := data.X[i*d : (i+1)*d]
			best, bestD := int32(0), math.Inf(1)
			for j := 0; j < k; j++ {
				dd := sqdist(x, centers[j*d:(j+1)*d])
				if dd < bestD {
					best, bestD = int32(j), dd
				}
			}
			if labels[i] != best {
				labels[i] = best
				p.changed = true
			}
			if p.sums != nil {
				w := data.w(i)
				p.weights[best] += w
				s := p.sums[int(best)*d : int(best+1)*d]
				for c := range x {
					s[c] += w * x[c]
				}
			}
		}
	}
	return splitAssign(n, k, d, workers, sums, weights, work)
}

// finishCenters turns the per-cluster sums in newC into means; an empty
// cluster takes the point farthest from its center, as scikit-learn's
// _relocate_empty_clusters.
func finishCenters(data Data, centers []float64, labels []int32, k int, newC, weights []float64) {
	n, d := data.N(), data.D
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

// assign2 is assignSum's inner loop for two dimensions and unit weights (the
// seed's frame length and TCP length), with the centers in registers.
//
// It has no branch that depends on the data: a point's cluster is as good as
// random to the branch predictor, and the branchy loop this replaced spent
// 15 ns a point (1M points, k = 3) mostly on mispredictions; this one takes
// 6 to 7 (BenchmarkAssign2). The nearest center is kept by a 0/1 step and
// a bit mask (first on ties, as before; not min, see below), and the sums
// go to two sets of accumulators, even and odd points, so that consecutive
// points of one cluster do not wait on each other's store.
func assign2(xs, centers []float64, k int, labels []int32, lo, hi int, sums, weights []float64, changed *bool) {
	var cx, cy [16]float64
	for j := 0; j < k; j++ {
		cx[j], cy[j] = centers[2*j], centers[2*j+1]
	}
	xs = xs[2*lo : 2*hi]
	lab := labels[lo:hi]
	type acc struct{ w, x, y, _ float64 }
	var accs [2][16]acc
	var diff int32
	for i := range lab {
		x, y := xs[2*i], xs[2*i+1]
		best := int32(0)
		dx, dy := x-cx[0], y-cy[0]
		bestD := dx*dx + dy*dy
		for j := 1; j < k; j++ {
			dx, dy := x-cx[j], y-cy[j]
			dd := dx*dx + dy*dy
			// Take dd when it is smaller, by a mask: a NaN distance (a
			// NaN center) is never taken and never hides a later center,
			// as with a branch (min would make bestD NaN).
			lt := b2i(dd < bestD)
			best += lt * (int32(j) - best)
			m := -uint64(lt)
			bestD = math.Float64frombits(math.Float64bits(dd)&m | math.Float64bits(bestD)&^m)
		}
		diff |= lab[i] ^ best
		lab[i] = best
		if sums != nil {
			a := &accs[i&1][best&15]
			a.w++
			a.x += x
			a.y += y
		}
	}
	if diff != 0 {
		*changed = true
	}
	if sums != nil {
		for j := 0; j < k; j++ {
			a, b := accs[0][j], accs[1][j]
			weights[j] += a.w + b.w
			sums[2*j] += a.x + b.x
			sums[2*j+1] += a.y + b.y
		}
	}
}

// b2i is 1 for true and 0 for false; the compiler makes it a SETcc, not a
// branch.
func b2i(b bool) int32 {
	if b {
		return 1
	}
	return 0
}

// part is one worker's share of an assignment pass: its own sums and
// weights (nil when the pass does not accumulate) and whether any label
// changed.
type part struct {
	sums, weights []float64
	changed       bool
}

// splitAssign runs work over [0, n) on up to workers goroutines (one below
// 50,000 points), each into its own part, then adds the parts' sums and
// weights into sums and weights (cleared first, when not nil). It reports
// whether any label changed.
func splitAssign(n, k, d, workers int, sums, weights []float64, work func(lo, hi int, p *part)) bool {
	if workers <= 1 || n < 50000 {
		p := part{sums: sums, weights: weights}
		if sums != nil {
			clear(sums)
			clear(weights)
		}
		work(0, n, &p)
		return p.changed
	}
	parts := make([]part, workers)
	if sums != nil {
		for w := range parts {
			parts[w] = part{sums: make([]float64, k*d), weights: make([]float64, k)}
		}
	}
	parallelChunks(n, workers, func(w, lo, hi int) { work(lo, hi, &parts[w]) })
	changed := false
	if sums != nil {
		clear(sums)
		clear(weights)
	}
	for _, p := range parts {
		changed = changed || p.changed
		if sums != nil {
			for j := range sums {
				sums[j] += p.sums[j]
			}
			for j := range weights {
				weights[j] += p.weights[j]
			}
		}
	}
	return changed
}
