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
