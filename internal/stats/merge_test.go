package stats

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestMergeExact: the Describers of the parts of a column, merged (through
// their encoded state, as the history and the hub merge them), give the
// Describer of the whole column: the same summary, bit for bit.
func TestMergeExact(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var whole Describer
	var parts []*Describer
	for p := 0; p < 17; p++ {
		d := &Describer{}
		for i := 0; i < rng.IntN(500); i++ {
			var v float64
			switch rng.IntN(3) {
			case 0:
				v = float64(rng.IntN(1500)) // a length
			case 1:
				v = rng.ExpFloat64() * 0.01 // a time delta
			default:
				v = -rng.Float64()
			}
			d.Add(v)
			whole.Add(v)
		}
		parts = append(parts, d)
	}
	var merged Describer
	for _, d := range parts {
		b, err := json.Marshal(d.State())
		if err != nil {
			t.Fatal(err)
		}
		var st DescriberState
		if err := json.Unmarshal(b, &st); err != nil {
			t.Fatal(err)
		}
		merged.MergeState(st)
	}
	if a, b := whole.Summary(), merged.Summary(); !sameSummary(a, b) || !b.Exact {
		t.Fatalf("whole %+v\nmerged %+v", a, b)
	}
}

// TestMergeSketched: past the cap the merge goes through the sketch; the
// moments stay exact to rounding and the quartiles within the rank error.
func TestMergeSketched(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var vals []float64
	var merged Describer
	for p := 0; p < 6; p++ {
		d := &Describer{Cap: 5000}
		for i := 0; i < 20000; i++ {
			v := rng.NormFloat64()*3 + 10
			d.Add(v)
			vals = append(vals, v)
		}
		merged.MergeState(d.State())
	}
	s := merged.Summary()
	if s.Exact || s.Count != int64(len(vals)) {
		t.Fatalf("%+v", s)
	}
	mean, std := MeanStd(vals, 1)
	if math.Abs(s.Mean-mean) > 1e-9 || math.Abs(s.Std-std) > 1e-9 {
		t.Errorf("moments %v %v, want %v %v", s.Mean, s.Std, mean, std)
	}
	for _, q := range []struct{ p, got float64 }{{0.25, s.Q25}, {0.5, s.Q50}, {0.75, s.Q75}} {
		rank := 0
		for _, v := range vals {
			if v < q.got {
				rank++
			}
		}
		if e := math.Abs(float64(rank)/float64(len(vals)) - q.p); e > 0.005 {
			t.Errorf("quantile %v: rank error %.4f", q.p, e)
		}
	}
}

func sameSummary(a, b Summary) bool {
	eq := func(x, y float64) bool { return x == y || (math.IsNaN(x) && math.IsNaN(y)) }
	return a.Count == b.Count && eq(a.Mean, b.Mean) && eq(a.Std, b.Std) && eq(a.Min, b.Min) && eq(a.Q25, b.Q25) &&
		eq(a.Q50, b.Q50) && eq(a.Q75, b.Q75) && eq(a.Max, b.Max)
}

func TestSortFloats(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, n := range []int{0, 1, 100, 5000, 100000} {
		xs := make([]float64, n)
		for i := range xs {
			switch i % 4 {
			case 0:
				xs[i] = rng.NormFloat64() * 1e6
			case 1:
				xs[i] = -rng.ExpFloat64()
			case 2:
				xs[i] = 0
			default:
				xs[i] = math.Copysign(0, -1)
			}
		}
		want := append([]float64(nil), xs...)
		slices.Sort(want)
		sortFloats(xs)
		for i := range xs {
			if xs[i] != want[i] {
				t.Fatalf("n=%d: position %d: %v, want %v", n, i, xs[i], want[i])
			}
		}
	}
}

// TestHighSmallIntegers: ports above denseLow are counted sparsely while
// they are few and densely once they are many; either way, and through a
// merge of the two kinds, the summary is that of the sorted values
// (checked against a plain sort with numpy's linear interpolation).
func TestHighSmallIntegers(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, distinct := range []int{1, 40, hiSparseMax - 1, hiSparseMax + 1, 30000} {
		pool := make([]float64, distinct)
		for i := range pool {
			pool[i] = float64(denseLow + rng.IntN(smallInts-denseLow))
		}
		var d, sparse Describer
		var vals []float64
		for i := 0; i < 3*distinct+10; i++ {
			v := pool[rng.IntN(distinct)]
			if i%5 == 0 {
				v = float64(rng.IntN(denseLow)) // a length among the ports
			}
			d.Add(v)
			if i%2 == 0 {
				sparse.Add(v)
			}
			vals = append(vals, v)
		}
		slices.Sort(vals)
		q := func(p float64) float64 {
			h := p * float64(len(vals)-1)
			lo := math.Floor(h)
			if int(lo)+1 >= len(vals) {
				return vals[int(lo)]
			}
			return vals[int(lo)] + (h-lo)*(vals[int(lo)+1]-vals[int(lo)])
		}
		s := d.Summary()
		if s.Count != int64(len(vals)) || s.Q25 != q(.25) || s.Q50 != q(.5) || s.Q75 != q(.75) || s.Min != vals[0] || s.Max != vals[len(vals)-1] || !s.Exact {
			t.Fatalf("%d distinct: got %+v, want count %d quartiles %v %v %v", distinct, s, len(vals), q(.25), q(.5), q(.75))
		}
		// A sparse part merged into a dense one and back.
		var m Describer
		m.MergeState(sparse.State())
		m.MergeState(d.State())
		var m2 Describer
		m2.MergeState(d.State())
		m2.MergeState(sparse.State())
		if a, b := m.Summary(), m2.Summary(); !sameSummary(a, b) {
			t.Fatalf("%d distinct: merge order changes the summary: %+v / %+v", distinct, a, b)
		}
	}
}

// TestResetIsNew: a Describer reused after Reset (a live run's minutes)
// summarises exactly as a new one, whatever it held before: small
// integers, the sparse high range, the dense array, floats, a sketch.
func TestResetIsNew(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	gens := []func() float64{
		func() float64 { return float64(rng.IntN(200)) },
		func() float64 { return float64(4096 + rng.IntN(60000)) },
		func() float64 { return rng.NormFloat64() * 100 },
		func() float64 { return float64(rng.IntN(65536)) },
	}
	var reused Describer
	reused.Cap = 3000
	for round := 0; round < 12; round++ {
		fresh := Describer{Cap: 3000}
		n := 1 + rng.IntN(6000)
		g := gens[round%len(gens)]
		g2 := gens[(round+1)%len(gens)]
		for i := 0; i < n; i++ {
			v := g()
			if i%3 == 0 {
				v = g2()
			}
			fresh.Add(v)
			reused.Add(v)
		}
		if got, want := reused.Summary(), fresh.Summary(); got != want {
			t.Fatalf("round %d (%d values): reused %+v, new %+v", round, n, got, want)
		}
		reused.Reset()
		if reused.Count() != 0 || reused.Summary().Count != 0 {
			t.Fatalf("round %d: Reset left %d values", round, reused.Count())
		}
	}
}

// TestChunkedValues: values held past the first array's capacity go to
// chunks; the summary, the State and a merge see every one of them, in
// any order of adds, states and resets.
func TestChunkedValues(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	var d Describer
	var all []float64
	for round, n := range []int{300, 70000, 200000} {
		for i := 0; i < n; i++ {
			v := rng.NormFloat64()*1e3 + 0.5
			d.Add(v)
			all = append(all, v)
		}
		// A State midway, then more values (a live minute saved as it fills).
		st := d.State()
		if len(st.Vals) != len(all) {
			t.Fatalf("round %d: State holds %d values, want %d", round, len(st.Vals), len(all))
		}
		var m Describer
		m.MergeState(st)
		if g, w := m.Summary(), d.Summary(); g != w {
			t.Fatalf("round %d: merged %+v, original %+v", round, g, w)
		}
	}
	sorted := append([]float64(nil), all...)
	slices.Sort(sorted)
	s := d.Summary()
	q := func(p float64) float64 {
		h := float64(len(sorted)-1) * p
		lo := int(math.Floor(h))
		return sorted[lo] + (h-float64(lo))*(sorted[min(lo+1, len(sorted)-1)]-sorted[lo])
	}
	if s.Count != int64(len(all)) || s.Min != sorted[0] || s.Max != sorted[len(sorted)-1] || s.Q25 != q(0.25) || s.Q50 != q(0.5) || s.Q75 != q(0.75) {
		t.Fatalf("summary %+v; want count %d min %v q25 %v q50 %v q75 %v max %v", s, len(all), sorted[0], q(0.25), q(0.5), q(0.75), sorted[len(sorted)-1])
	}
}

// BenchmarkSortFloats: a million time deltas (seconds, exponentially
// distributed), as the Figure 1 columns hold them.
func BenchmarkSortFloats(b *testing.B) {
	rng := rand.New(rand.NewPCG(7, 8))
	src := make([]float64, 1<<20)
	for i := range src {
		src[i] = rng.ExpFloat64() * 0.05
	}
	xs := make([]float64, len(src))
	b.SetBytes(int64(8 * len(src)))
	for b.Loop() {
		copy(xs, src)
		sortFloats(xs)
	}
}
