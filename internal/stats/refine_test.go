package stats

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestRefineExact: a column past its cap, read a second time, has the
// quartiles of its sorted values (numpy's linear interpolation), for
// continuous values, heavy ties, integers mixed in and a few values; a
// second pass that differs, or a bracket over its budget, leaves the
// sketch's quartiles flagged.
func TestRefineExact(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	gens := map[string]func(i int) float64{
		"exponential": func(int) float64 { return rng.ExpFloat64() * 0.01 },
		"ties":        func(int) float64 { return float64(rng.IntN(7))*0.5 + 0.25 },
		"mixed":       func(i int) float64 { return []float64{float64(rng.IntN(100)), rng.NormFloat64() - 0.5}[i%2] },
		"increasing":  func(i int) float64 { return float64(i) / 3 },
	}
	for name, gen := range gens {
		for _, n := range []int{7, 101, 20000} {
			vals := make([]float64, n)
			for i := range vals {
				vals[i] = gen(i)
			}
			d := Describer{Cap: 2}
			for _, v := range vals {
				d.Add(v)
			}
			if s := d.Summary(); s.Exact {
				t.Fatalf("%s n=%d: not sketched", name, n)
			}
			r := d.Refiner(&Budget{Left: 3 * n})
			for _, v := range vals {
				r.Add(v)
			}
			if !d.Refine(r) {
				t.Fatalf("%s n=%d: not refined", name, n)
			}
			s := d.Summary()
			sorted := slices.Clone(vals)
			slices.Sort(sorted)
			for i, got := range []float64{s.Q25, s.Q50, s.Q75} {
				p := []float64{0.25, 0.5, 0.75}[i]
				h := float64(n-1) * p
				lo := int(math.Floor(h))
				want := Lerp(sorted[lo], sorted[min(lo+1, n-1)], h-math.Floor(h))
				if got != want {
					t.Errorf("%s n=%d q%.0f = %v, want %v", name, n, 100*p, got, want)
				}
			}
			if !s.Exact || s.RankError != 0 {
				t.Errorf("%s n=%d: exact %v rank error %v", name, n, s.Exact, s.RankError)
			}
		}
	}
	// One value a million times over (a busy link's time deltas): the
	// brackets hold few distinct values, whatever their count.
	{
		d := Describer{Cap: 2}
		var vals []float64
		for i := range 1 << 20 {
			v := 3e-6
			if i%10 == 0 {
				v = float64(i%977) * 1e-3
			}
			vals = append(vals, v)
			d.Add(v)
		}
		r := d.Refiner(&Budget{Left: 1000})
		for _, v := range vals {
			r.Add(v)
		}
		if !d.Refine(r) {
			t.Fatal("heavy ties: not refined")
		}
		slices.Sort(vals)
		if s := d.Summary(); s.Q25 != vals[len(vals)/4] || s.Q50 != 3e-6 || !s.Exact {
			t.Errorf("heavy ties: %+v", s)
		}
	}
	// A second pass over other values (one fewer) refines nothing.
	d := Describer{Cap: 2}
	for i := range 1000 {
		d.Add(float64(i) + 0.5)
	}
	r := d.Refiner(&Budget{Left: 1000})
	for i := range 999 {
		r.Add(float64(i) + 0.5)
	}
	if d.Refine(r) || d.Summary().Exact {
		t.Error("a second pass of other values refined the quartiles")
	}
	// The same count with other values (a file replaced between the
	// passes) refines nothing.
	r = d.Refiner(&Budget{Left: 1000})
	for i := range 1000 {
		r.Add(float64(i) + 0.25)
	}
	if d.Refine(r) || d.Summary().Exact {
		t.Error("a second pass of as many other values refined the quartiles")
	}
	// A bracket over its budget refines nothing.
	r = d.Refiner(&Budget{Left: 2})
	for i := range 1000 {
		r.Add(float64(i) + 0.5)
	}
	if d.Refine(r) || d.Summary().RankError != SketchRankError {
		t.Error("a bracket over its budget refined the quartiles")
	}
	// A value added after refining brings the sketch back.
	r = d.Refiner(&Budget{Left: 1000})
	for i := range 1000 {
		r.Add(float64(i) + 0.5)
	}
	if !d.Refine(r) {
		t.Fatal("not refined")
	}
	d.Add(5000.5)
	if d.Summary().Exact {
		t.Error("still exact after a value added past the second pass")
	}
}
