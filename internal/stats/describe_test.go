package stats

import (
	"encoding/json"
	"math"
	"os"
	"testing"
)

// Fixtures: pandas 1.5.3 Series(values).describe(), from scripts/numeric_fixtures.py.
type describeFixture struct {
	Synthetic map[string]struct {
		Values   []*float64
		Describe map[string]*float64
	}
}

func close12(got float64, want *float64) bool {
	if want == nil {
		return math.IsNaN(got)
	}
	w := *want
	if w == 0 {
		return math.Abs(got) <= 1e-300
	}
	return math.Abs(got-w) <= 1e-12*math.Abs(w)
}

func check(t *testing.T, name string, s Summary, want map[string]*float64) {
	t.Helper()
	got := map[string]float64{"count": float64(s.Count), "mean": s.Mean, "std": s.Std, "min": s.Min,
		"25%": s.Q25, "50%": s.Q50, "75%": s.Q75, "max": s.Max}
	for k, g := range got {
		if !close12(g, want[k]) {
			w := math.NaN()
			if want[k] != nil {
				w = *want[k]
			}
			t.Errorf("%s %s: %.17g, pandas %.17g", name, k, g, w)
		}
	}
}

func TestDescribeAgainstPandas(t *testing.T) {
	b, err := os.ReadFile("../../testdata/numeric/describe.json")
	if err != nil {
		t.Fatal(err)
	}
	var f describeFixture
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	for name, c := range f.Synthetic {
		for _, capValues := range []int{0, 10} { // exact (default cap) and, with a tiny cap, the sketch
			var d Describer
			if capValues > 0 {
				d.Cap = capValues
			}
			for _, v := range c.Values {
				if v == nil {
					d.Add(math.NaN())
				} else {
					d.Add(*v)
				}
			}
			s := d.Summary()
			if capValues == 0 {
				if !s.Exact {
					t.Errorf("%s: not exact", name)
				}
				check(t, name, s, c.Describe)
				continue
			}
			// Past the cap: mean, std, min, max stay exact; quartiles approximate.
			if s.Exact && s.Count-d.nSmall > int64(capValues) {
				t.Errorf("%s: exact past the cap", name)
			}
			for _, k := range []struct {
				got  float64
				want *float64
			}{{s.Mean, c.Describe["mean"]}, {s.Min, c.Describe["min"]}, {s.Max, c.Describe["max"]}} {
				if !close12(k.got, k.want) {
					t.Errorf("%s (sketch): %v, pandas %v", name, k.got, *k.want)
				}
			}
			if c.Describe["std"] != nil && math.Abs(s.Std-*c.Describe["std"]) > 1e-9*math.Abs(*c.Describe["std"]) {
				t.Errorf("%s (sketch) std %v, pandas %v", name, s.Std, *c.Describe["std"])
			}
		}
	}
}

func TestQuantileHelpers(t *testing.T) {
	xs := []float64{4, 1, 3, 2}
	if q := Quantile(xs, 0.25); q != 1.75 {
		t.Errorf("Quantile 0.25 = %v, numpy 1.75", q)
	}
	if m := Median([]float64{5, 1, 3}); m != 3 {
		t.Errorf("median %v", m)
	}
	mean, std := MeanStd([]float64{1, 2, 3, 4}, 1)
	if mean != 2.5 || math.Abs(std-1.2909944487358056) > 1e-15 {
		t.Errorf("MeanStd %v %v", mean, std)
	}
}

func TestTopK(t *testing.T) {
	var tk TopK[string]
	tk.Cap = 2
	for _, s := range []string{"a", "b", "a", "c", "a", "b", "d"} {
		tk.Add(s)
	}
	top := tk.Top(0, func(a, b string) int { return map[bool]int{true: -1, false: 1}[a < b] })
	if len(top) != 2 || top[0].Key != "a" || top[0].Count != 3 || top[1].Count != 2 || tk.Other != 2 || tk.Total != 7 {
		t.Errorf("%+v other %d", top, tk.Other)
	}
	h := NewHistogram(0, 10, 5)
	for _, v := range []float64{-1, 0, 1.9, 2, 9.99, 10, 50} {
		h.Add(v)
	}
	if h.Under != 1 || h.Over != 2 || h.Bins[0] != 2 || h.Bins[1] != 1 || h.Bins[4] != 1 {
		t.Errorf("%+v", h)
	}
}

func BenchmarkDescribeAdd(b *testing.B) {
	var d Describer
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		d.Add(float64(i % 1500))
		d.Add(float64(i) * 1e-3)
		i++
	}
}

func TestSummaryJSON(t *testing.T) {
	var d Describer
	d.Add(42)
	s := d.Summary()
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != `{"count":1,"mean":42,"std":null,"min":42,"25%":42,"50%":42,"75%":42,"max":42,"exact":true}` {
		t.Errorf("%s", b)
	}
	var back Summary
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back.Count != 1 || back.Mean != 42 || !math.IsNaN(back.Std) || back.Q75 != 42 || !back.Exact {
		t.Errorf("%+v", back)
	}
}
