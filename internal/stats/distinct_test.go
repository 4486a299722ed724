package stats

import (
	"math"
	"testing"
)

// TestDistinctEstimate checks the estimate against exact counts, at small
// counts (linear counting) and large ones, with every value added more
// than once (a sketch that counted additions would be off by that much).
func TestDistinctEstimate(t *testing.T) {
	for _, n := range []int{0, 1, 10, 1000, 20000, 100000, 1000000} {
		var d Distinct
		for rep := 0; rep < 3; rep++ {
			for i := 0; i < n; i++ {
				d.Add(Mix64(uint64(i)))
			}
		}
		got := d.Estimate()
		tol := math.Max(1, 4*DistinctError*float64(n)) // four standard errors
		if math.Abs(float64(got)-float64(n)) > tol {
			t.Errorf("%d distinct values (each added 3 times): estimate %d, more than %.0f off", n, got, tol)
		}
	}
}

// TestDistinctMerge checks that merging two sketches counts the union, not
// the sum, and that a stored state of the wrong size is ignored.
func TestDistinctMerge(t *testing.T) {
	var a, b Distinct
	for i := 0; i < 60000; i++ {
		a.Add(Mix64(uint64(i)))
		b.Add(Mix64(uint64(i + 30000))) // half shared
	}
	var u Distinct
	u.Merge(&a)
	u.MergeRegisters(b.Registers())
	u.MergeRegisters([]byte{1, 2, 3})
	if got := u.Estimate(); math.Abs(float64(got)-90000) > 4*DistinctError*90000 {
		t.Errorf("union of 60,000 and 60,000 sharing 30,000: estimate %d, want about 90,000", got)
	}
}
