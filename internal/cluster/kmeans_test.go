package cluster

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"testing"
)

// Fixtures: scikit-learn 1.2.1 KMeans(n_clusters=k, init=centers, n_init=1).fit(X,
// sample_weight) and KMeans(n_clusters=k, n_init=10, random_state=0).fit(X),
// from scripts/numeric_fixtures.py.
type kmeansFixture struct {
	FixedInit []struct {
		Name    string
		X       []float64
		D       int
		Weights []float64
		K       int
		Init    [][]float64
		Labels  []int32
		Inertia float64
		NIter   int `json:"n_iter"`
		Centers [][]float64
	} `json:"fixed_init"`
	PlusPlus []struct {
		Name    string
		X       []float64
		D, K    int
		Inertia float64
	} `json:"plusplus"`
}

func loadKMeans(t testing.TB) *kmeansFixture {
	b, err := os.ReadFile("../../testdata/numeric/kmeans.json")
	if err != nil {
		t.Fatal(err)
	}
	var f kmeansFixture
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	return &f
}

func TestSameInitAsScikitLearn(t *testing.T) {
	for _, c := range loadKMeans(t).FixedInit {
		t.Run(c.Name, func(t *testing.T) {
			r, err := KMeans(Data{X: c.X, D: c.D, Weights: c.Weights}, Options{K: c.K, Init: c.Init})
			if err != nil {
				t.Fatal(err)
			}
			diff := 0
			for i := range c.Labels {
				if r.Labels[i] != c.Labels[i] {
					diff++
				}
			}
			if diff != 0 {
				t.Errorf("%d labels differ", diff)
			}
			if math.Abs(r.Inertia-c.Inertia) > 1e-9*c.Inertia {
				t.Errorf("inertia %.12g, scikit-learn %.12g", r.Inertia, c.Inertia)
			}
			if r.Iterations != c.NIter {
				t.Errorf("iterations %d, scikit-learn %d", r.Iterations, c.NIter)
			}
			for j := range c.Centers {
				for k := range c.Centers[j] {
					if math.Abs(r.Centers[j][k]-c.Centers[j][k]) > 1e-9*math.Max(1, math.Abs(c.Centers[j][k])) {
						t.Errorf("center %d: %v, scikit-learn %v", j, r.Centers[j], c.Centers[j])
					}
				}
			}
		})
	}
}

func TestPlusPlusWithinOnePercent(t *testing.T) {
	for _, c := range loadKMeans(t).PlusPlus {
		r, err := KMeans(Data{X: c.X, D: c.D}, Options{K: c.K, NInit: 10, Seed: 1})
		if err != nil {
			t.Fatal(err)
		}
		if r.Inertia > 1.01*c.Inertia {
			t.Errorf("%s: inertia %.6g, scikit-learn's best %.6g", c.Name, r.Inertia, c.Inertia)
		}
	}
}

// TestWeightsEqualCopies: a weighted point is that many copies of it.
func TestWeightsEqualCopies(t *testing.T) {
	pts := []float64{0, 0, 1, 0, 10, 10, 11, 11, 0, 1, 30, 30}
	w := []float64{3, 1, 2, 5, 1, 4}
	var expanded []float64
	for i, wi := range w {
		for k := 0; k < int(wi); k++ {
			expanded = append(expanded, pts[2*i], pts[2*i+1])
		}
	}
	init := [][]float64{{0, 0}, {10, 10}, {30, 30}}
	a, _ := KMeans(Data{X: pts, D: 2, Weights: w}, Options{K: 3, Init: init})
	b, _ := KMeans(Data{X: expanded, D: 2}, Options{K: 3, Init: init})
	if math.Abs(a.Inertia-b.Inertia) > 1e-12 || a.Iterations != b.Iterations {
		t.Errorf("weighted %v/%d, expanded %v/%d", a.Inertia, a.Iterations, b.Inertia, b.Iterations)
	}
}

func TestDegenerate(t *testing.T) {
	same := []float64{1, 1, 1, 1, 1, 1}
	if _, err := KMeans(Data{X: same, D: 2}, Options{K: 2}); !errors.Is(err, ErrTooFewDistinct) {
		t.Errorf("identical points: %v", err)
	}
	if _, err := KMeans(Data{X: nil, D: 2}, Options{K: 2}); !errors.Is(err, ErrNoData) {
		t.Errorf("no points: %v", err)
	}
	a, err := Auto(Data{X: same, D: 2}, 2, 6, 100, Options{})
	if err != nil || a.K != 1 || a.Inertia != 0 {
		t.Errorf("Auto on identical points: %v %+v", err, a)
	}
	two := []float64{0, 0, 0, 0, 5, 5}
	a, err = Auto(Data{X: two, D: 2}, 2, 8, 100, Options{})
	if err != nil || a.K != 2 {
		t.Errorf("Auto with k above the distinct points: %v %+v", err, a)
	}
	for _, v := range a.Dist {
		if math.IsNaN(v) {
			t.Error("NaN distance")
		}
	}
}

func TestAutoFindsThree(t *testing.T) {
	c := loadKMeans(t).FixedInit[0] // three blobs
	a, err := Auto(Data{X: c.X, D: 2}, 2, 6, 600, Options{Seed: 2, NInit: 3})
	if err != nil {
		t.Fatal(err)
	}
	if a.K != 3 || len(a.Curve) != 5 {
		t.Errorf("k = %d (%s) curve %+v", a.K, a.Why, a.Curve)
	}
}

func TestScaler(t *testing.T) {
	d := Data{X: []float64{1, 10, 3, 10, 5, 10}, D: 2}
	s := FitScaler(d)
	if s.Mean[0] != 3 || math.Abs(s.Std[0]-math.Sqrt(8.0/3)) > 1e-15 || s.Std[1] != 1 {
		t.Errorf("%+v", s)
	}
	z := s.Transform(d)
	if back := s.Inverse(z.X[:2]); math.Abs(back[0]-1) > 1e-15 || back[1] != 10 {
		t.Errorf("inverse %v", back)
	}
}

// BenchmarkKMeans1M clusters 1M two-dimensional points (k = 3, n_init = 10)
// read from $IOMTGUARD_KMEANS_POINTS (float64 little-endian, x y pairs, as
// numpy's tofile writes them; scripts/bench_numerics.sh makes it), or
// generated here when unset.
func BenchmarkKMeans1M(b *testing.B) {
	var xs []float64
	if p := os.Getenv("IOMTGUARD_KMEANS_POINTS"); p != "" {
		raw, err := os.ReadFile(p)
		if err != nil {
			b.Fatal(err)
		}
		xs = make([]float64, len(raw)/8)
		for i := range xs {
			xs[i] = math.Float64frombits(binary.LittleEndian.Uint64(raw[8*i:]))
		}
	} else {
		rng := rand.New(rand.NewPCG(1, 1))
		xs = make([]float64, 2_000_000)
		for i := 0; i < len(xs); i += 2 {
			c := float64(rng.IntN(3)) * 4
			xs[i], xs[i+1] = c+rng.NormFloat64(), c/2+rng.NormFloat64()
		}
	}
	b.ReportAllocs()
	var inertia float64
	for b.Loop() {
		r, err := KMeans(Data{X: xs, D: 2}, Options{K: 3, NInit: 10, Seed: 1})
		if err != nil {
			b.Fatal(err)
		}
		inertia = r.Inertia
	}
	b.ReportMetric(inertia, "inertia")
}

// TestHamerlyEqualsLloyd: the bounds only skip work; labels, iterations and
// inertia are Lloyd's.
func TestHamerlyEqualsLloyd(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, dim := range []int{2, 5} {
		for _, k := range []int{3, 8} {
			xs := make([]float64, 4000*dim)
			for i := range xs {
				xs[i] = rng.NormFloat64() + float64((i/dim)%k)*1.5
			}
			data := Data{X: xs, D: dim}
			a, _ := KMeans(data, Options{K: k, NInit: 2, Seed: 9, Algorithm: Lloyd})
			b, _ := KMeans(data, Options{K: k, NInit: 2, Seed: 9, Algorithm: Hamerly})
			same := a.Iterations == b.Iterations && math.Abs(a.Inertia-b.Inertia) <= 1e-9*a.Inertia
			for i := range a.Labels {
				same = same && a.Labels[i] == b.Labels[i]
			}
			if !same {
				t.Errorf("d=%d k=%d: Lloyd %v/%d, Hamerly %v/%d", dim, k, a.Inertia, a.Iterations, b.Inertia, b.Iterations)
			}
		}
	}
}

// TestAssign2EqualsGeneric: the branch-free two-dimensional pass labels
// every point as the plain loop does (the first center on ties: points are
// put on the bisector of two centers), reports a change exactly when a label
// changed, and sums the same clusters, whatever the worker count and k.
func TestAssign2EqualsGeneric(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, k := range []int{1, 2, 3, 5, 16} {
		for _, workers := range []int{1, 2, 3} {
			n := 60000 + rng.IntN(1000)
			centers := make([]float64, 2*k)
			for i := range centers {
				centers[i] = float64(rng.IntN(9))
			}
			xs := make([]float64, 2*n)
			for i := 0; i < n; i++ {
				if k > 1 && i%5 == 0 {
					// Equidistant from centers a and b: their midpoint.
					a, b := rng.IntN(k), rng.IntN(k)
					xs[2*i], xs[2*i+1] = (centers[2*a]+centers[2*b])/2, (centers[2*a+1]+centers[2*b+1])/2
					continue
				}
				xs[2*i], xs[2*i+1] = rng.NormFloat64()*4, rng.NormFloat64()*4
			}
			data := Data{X: xs, D: 2}
			want := make([]int32, n)
			wsums, wweights := make([]float64, 2*k), make([]float64, k)
			for i := 0; i < n; i++ {
				best, bestD := 0, math.Inf(1)
				for j := 0; j < k; j++ {
					if dd := sqdist(data.row(i), centers[2*j:2*j+2]); dd < bestD {
						best, bestD = j, dd
					}
				}
				want[i] = int32(best)
				wweights[best]++
				wsums[2*best] += xs[2*i]
				wsums[2*best+1] += xs[2*i+1]
			}
			labels := make([]int32, n)
			copy(labels, want)
			labels[n/2] = -1
			sums, weights := make([]float64, 2*k), make([]float64, k)
			if !assignSum(data, centers, k, labels, sums, weights, workers) {
				t.Errorf("k=%d workers=%d: one label changed, none reported", k, workers)
			}
			for i := range want {
				if labels[i] != want[i] {
					t.Fatalf("k=%d workers=%d: point %d (%v, %v) labelled %d, want %d", k, workers, i, xs[2*i], xs[2*i+1], labels[i], want[i])
				}
			}
			for j := range k {
				if weights[j] != wweights[j] || math.Abs(sums[2*j]-wsums[2*j]) > 1e-9*n0(wsums[2*j]) ||
					math.Abs(sums[2*j+1]-wsums[2*j+1]) > 1e-9*n0(wsums[2*j+1]) {
					t.Errorf("k=%d workers=%d: cluster %d sums %v %v %v, want %v %v %v", k, workers, j,
						weights[j], sums[2*j], sums[2*j+1], wweights[j], wsums[2*j], wsums[2*j+1])
				}
			}
			if assignSum(data, centers, k, labels, nil, nil, workers) {
				t.Errorf("k=%d workers=%d: no label changed, a change reported", k, workers)
			}
		}
	}
}

func n0(v float64) float64 { return max(math.Abs(v), 1) }

// BenchmarkAssign2: one assignment pass (with sums) over 1M points, k = 3,
// on one goroutine.
func BenchmarkAssign2(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 1))
	xs := make([]float64, 2_000_000)
	for i := 0; i < len(xs); i += 2 {
		c := float64(rng.IntN(3)) * 4
		xs[i], xs[i+1] = c+rng.NormFloat64(), c/2+rng.NormFloat64()
	}
	labels := make([]int32, len(xs)/2)
	centers := []float64{0.1, 0, 4, 2.1, 8, 3.9}
	sums, weights := make([]float64, 6), make([]float64, 3)
	for b.Loop() {
		assignSum(Data{X: xs, D: 2}, centers, 3, labels, sums, weights, 1)
	}
}

// TestNotFinite: NaN or ±Inf in a point, a weight or an initial center is
// an error (k-means++ indexed row -1 on such data), and a NaN center given
// to the two-dimensional pass is passed over as the plain loop passes over
// it: never taken, and no later center hidden by it.
func TestNotFinite(t *testing.T) {
	ok := []float64{0, 0, 1, 1, 5, 5, 6, 6}
	for name, c := range map[string]struct {
		d    Data
		init [][]float64
	}{
		"NaN point":   {Data{X: []float64{0, 0, math.NaN(), 1, 5, 5, 6, 6}, D: 2}, nil},
		"+Inf point":  {Data{X: []float64{0, 0, 1, math.Inf(1), 5, 5, 6, 6}, D: 2}, nil},
		"-Inf weight": {Data{X: ok, D: 2, Weights: []float64{1, 1, math.Inf(-1), 1}}, nil},
		"NaN center":  {Data{X: ok, D: 2}, [][]float64{{0, 0}, {math.NaN(), 5}}},
	} {
		if _, err := KMeans(c.d, Options{K: 2, Init: c.init}); !errors.Is(err, ErrNotFinite) {
			t.Errorf("%s: %v, want ErrNotFinite", name, err)
		}
	}
	xs := []float64{2, 2, 3, 2, 0, 0.5}
	centers := []float64{0, 0, math.NaN(), 1, 2, 1}
	labels := []int32{-1, -1, -1}
	assignSum(Data{X: xs, D: 2}, centers, 3, labels, nil, nil, 1)
	if labels[0] != 2 || labels[1] != 2 || labels[2] != 0 {
		t.Errorf("labels %v with a NaN center 1, want [2 2 0]", labels)
	}
}
