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

// TestFewDistinct: exact (and said to be) up to 64 distinct values in any
// order and with repeats; past that an estimate within four standard errors,
// unbiased over many inputs, and never larger for values added again.
func TestFewDistinct(t *testing.T) {
	for _, n := range []int{0, 1, 2, 63, 64} {
		var d FewDistinct
		for rep := 0; rep < 3; rep++ {
			for i := n - 1; i >= 0; i-- { // descending hashes too
				d.Add(Mix64(uint64(i)))
			}
		}
		if got, exact := d.Estimate(); got != int64(n) || !exact {
			t.Errorf("%d distinct values: %d, exact %v; want %d, exact", n, got, exact, n)
		}
	}
	for _, n := range []int{65, 100, 1000, 100000, 1000000} {
		var d FewDistinct
		for i := 0; i < n; i++ {
			d.Add(Mix64(uint64(i) + 1<<40))
		}
		before, _ := d.Estimate()
		for i := 0; i < n; i += 7 {
			d.Add(Mix64(uint64(i) + 1<<40))
		}
		got, exact := d.Estimate()
		if exact || got != before {
			t.Errorf("%d distinct values: %d (exact %v) after repeats, %d before", n, got, exact, before)
		}
		if tol := 4 * FewDistinctError * float64(n); math.Abs(float64(got-int64(n))) > tol {
			t.Errorf("%d distinct values: estimate %d, more than %.0f off", n, got, tol)
		}
		if len(d.h) > fewK {
			t.Errorf("%d hashes kept, want at most %d", len(d.h), fewK)
		}
	}
	// Chosen hashes, the smallest there are: a large estimate, not an
	// overflow (it came out as 64 on amd64, and otherwise elsewhere).
	var low FewDistinct
	for h := range uint64(65) {
		low.Add(h)
	}
	if n, exact := low.Estimate(); exact || n != 1<<40 {
		t.Errorf("65 smallest hashes: %d (exact %v), want 2^40", n, exact)
	}
	// Unbiased: the mean of 1000 estimates of 1000 is within 1.2 % (three
	// standard errors of the mean; (k)/U(k), biased by 1/63, fails it).
	var sum float64
	for s := uint64(0); s < 1000; s++ {
		var d FewDistinct
		for i := uint64(0); i < 1000; i++ {
			d.Add(Mix64(s<<32 | i))
		}
		n, _ := d.Estimate()
		sum += float64(n)
	}
	if mean := sum / 1000; math.Abs(mean-1000) > 12 {
		t.Errorf("mean estimate of 1000 distinct values over 1000 inputs: %.1f", mean)
	}
}

// TestHash: a name hashes alike as a string and as bytes (the analysis
// hashes topics as bytes, the detectors IDs as strings), and FNV-1a's
// value is mixed (fnv64a("a") is 0xaf63dc4c8601ec8c).
func TestHash(t *testing.T) {
	if Hash("ward/1/spo2") != Hash([]byte("ward/1/spo2")) || Hash("a") == Hash("b") {
		t.Errorf("Hash: %x %x %x %x", Hash("ward/1/spo2"), Hash([]byte("ward/1/spo2")), Hash("a"), Hash("b"))
	}
	if Hash("a") != Mix64(0xaf63dc4c8601ec8c) {
		t.Errorf("Hash(a) = %x, want Mix64(fnv64a(a))", Hash("a"))
	}
}
