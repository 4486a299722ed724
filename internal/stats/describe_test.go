package stats

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"slices"
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

// TestCountedValues: values other than small integers are counted while
// they are few distinct ones (time deltas), and held as they come once the
// table is full. Either way, mixed with small integers, through a State, a
// merge and a Reset, the summary is that of the sorted values; and the
// counted ones do not make a column past its cap look exact.
func TestCountedValues(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 22))
	want := func(vals []float64) Summary {
		xs := slices.Clone(vals)
		slices.Sort(xs)
		mean, std := MeanStd(xs, 1)
		return Summary{Count: int64(len(xs)), Mean: mean, Std: std, Min: xs[0], Max: xs[len(xs)-1],
			Q25: Quantile(xs, 0.25), Q50: Quantile(xs, 0.5), Q75: Quantile(xs, 0.75), Exact: true}
	}
	near := func(a, b float64) bool { return math.Abs(a-b) <= 1e-12*math.Max(1, math.Abs(b)) }
	check := func(name string, got, w Summary) {
		t.Helper()
		if got.Count != w.Count || got.Min != w.Min || got.Max != w.Max || got.Q25 != w.Q25 || got.Q50 != w.Q50 ||
			got.Q75 != w.Q75 || !near(got.Mean, w.Mean) || !near(got.Std, w.Std) || got.Exact != w.Exact {
			t.Errorf("%s:\n got %+v\nwant %+v", name, got, w)
		}
	}
	cases := map[string]func(i int) float64{
		// whole microseconds, as a pcap's deltas: few distinct values
		"deltas": func(int) float64 { return float64(rng.IntN(2000)+1) * 1e-6 },
		// many repeats first, then more distinct values than the table
		// takes: the early ones counted, the later ones held
		"overflow": func(i int) float64 {
			if i < 3*floatCountsMax/2 {
				return float64(rng.IntN(1000))*0.001 + 0.5
			}
			return float64(rng.IntN(1<<30))*0.001 + 0.5
		},
		// every value distinct (time_relative): held, not counted
		"distinct": func(i int) float64 { return float64(i)*1e-6 + 0.5 },
		// with small integers, negative values, zero and infinities among them
		"mixed": func(i int) float64 {
			switch i % 5 {
			case 0:
				return float64(rng.IntN(70000))
			case 1:
				return -float64(rng.IntN(50)) * 0.25
			case 2:
				return []float64{0, math.Copysign(0, -1), math.Inf(1), math.Inf(-1)}[rng.IntN(4)]
			}
			return float64(rng.IntN(300)) * 1e-6
		},
	}
	for name, gen := range cases {
		if name == "mixed" {
			continue // infinities make the mean and std NaN; checked below without them
		}
		vals := make([]float64, 3*floatCountsMax)
		for i := range vals {
			vals[i] = gen(i)
		}
		var d Describer
		for _, v := range vals {
			d.Add(v)
		}
		if (d.counted.n == 0) != (name == "distinct") || d.noCount != (name == "distinct") {
			t.Fatalf("%s: %d counted, counting stopped %v", name, d.counted.n, d.noCount)
		}
		// A column that comes sorted stays so when its counting stops:
		// its summary then needs no sort.
		if d.flatten(); name == "distinct" && !slices.IsSorted(d.vals) {
			t.Errorf("%s: held values out of order", name)
		}
		if name == "overflow" && d.Held() <= d.counted.n {
			t.Fatalf("%s: the table never filled", name)
		}
		w := want(vals)
		check(name, d.Summary(), w)
		// A State holds the values as they came, sorted; merged in two
		// halves it gives the same summary.
		st := d.State()
		if !slices.IsSorted(st.Vals) {
			t.Errorf("%s: state's values not sorted", name)
		}
		check(name+" from state", FromState(st).Summary(), w)
		var a, b Describer
		for _, v := range vals[:len(vals)/3] {
			a.Add(v)
		}
		for _, v := range vals[len(vals)/3:] {
			b.Add(v)
		}
		a.Merge(&b)
		check(name+" merged", a.Summary(), w)
		// Reset keeps nothing of what was counted.
		d.Reset()
		for _, v := range vals[:100] {
			d.Add(v)
		}
		check(name+" after reset", d.Summary(), want(vals[:100]))
	}
	vals := make([]float64, 20000)
	for i := range vals {
		vals[i] = cases["mixed"](i)
	}
	var d Describer
	for _, v := range vals {
		d.Add(v)
	}
	s, xs := d.Summary(), slices.Clone(vals)
	slices.Sort(xs)
	if s.Min != math.Inf(-1) || s.Max != math.Inf(1) || s.Q25 != Quantile(xs, 0.25) || s.Q50 != Quantile(xs, 0.5) || s.Q75 != Quantile(xs, 0.75) {
		t.Errorf("mixed: %+v, want quartiles %v %v %v", s, Quantile(xs, 0.25), Quantile(xs, 0.5), Quantile(xs, 0.75))
	}
	// A column counted many times over its cap: its State does not write
	// the values out (8 bytes each) but carries a sketch of them, weighted
	// by their counts; the Describer itself stays exact.
	{
		d := Describer{Cap: 100}
		var vals []float64
		for i := range 200000 {
			v := float64(rng.IntN(60))*0.01 + 0.005
			if i%7 == 0 {
				v = float64(rng.IntN(300)) // small integers too
			}
			vals = append(vals, v)
			d.Add(v)
		}
		w := want(vals)
		check("counted past the cap", d.Summary(), w)
		st := d.State()
		if len(st.Vals) != 0 || len(st.Small) != 0 || st.Sketch == nil {
			t.Fatalf("state of 200,000 counted values: %d values, %d small, sketched %v", len(st.Vals), len(st.Small), st.Sketch != nil)
		}
		got := FromState(st).Summary()
		if got.Exact || got.Count != w.Count || got.Min != w.Min || got.Max != w.Max || !near(got.Mean, w.Mean) || !near(got.Std, w.Std) {
			t.Errorf("from the sketched state: %+v, want %+v", got, w)
		}
		xs := slices.Clone(vals)
		slices.Sort(xs)
		for _, q := range []struct{ p, got float64 }{{0.25, got.Q25}, {0.5, got.Q50}, {0.75, got.Q75}} {
			lo, _ := slices.BinarySearch(xs, q.got)
			hi, _ := slices.BinarySearch(xs, math.Nextafter(q.got, math.Inf(1)))
			// the rank of the value returned, as a range over its ties
			if float64(hi)/float64(len(xs)) < q.p-SketchRankError || float64(lo)/float64(len(xs)) > q.p+SketchRankError {
				t.Errorf("quartile %v from the sketched state: %v holds ranks %d to %d of %d", q.p, q.got, lo, hi, len(xs))
			}
		}
	}
	// A cap of 50 with 40 distinct values counted a thousand times each:
	// exact; 60 distinct: past the cap, sketched and flagged.
	for _, distinct := range []int{40, 60} {
		d := Describer{Cap: 50}
		var vals []float64
		for i := range 1000 * distinct {
			v := float64(i%distinct)*0.1 + 0.05
			vals = append(vals, v)
			d.Add(v)
		}
		s := d.Summary()
		if s.Exact != (distinct < 50) {
			t.Errorf("cap 50, %d distinct: exact %v", distinct, s.Exact)
		}
		if s.Exact {
			check("cap 50", s, want(vals))
		}
	}
}

// TestCountedEdges: what an independent review found in the counted
// columns. Values counted many times enter the sum as one product, which
// must not go through int64 unless they are small integers (±Inf, 1e19);
// a +0.0 among a state's values (a relative time shifted onto the origin)
// is the small integer 0, not the counting table's empty key; acks chosen
// to collide under a fixed hash do not make long probe chains; and a
// sketch made from heavy counted values keeps its rank error.
func TestCountedEdges(t *testing.T) {
	sum := func(vals ...float64) Summary {
		var d Describer
		for _, v := range vals {
			d.Add(v)
		}
		return d.Summary()
	}
	if s := sum(math.Inf(1), math.Inf(1), 0.5); !math.IsInf(s.Mean, 1) {
		t.Errorf("+Inf twice and 0.5: mean %v, want +Inf (pandas)", s.Mean)
	}
	if s := sum(math.Inf(1), math.Inf(1), math.Inf(-1), math.Inf(-1), 0.5); !math.IsNaN(s.Mean) {
		t.Errorf("±Inf twice each: mean %v, want NaN", s.Mean)
	}
	if s := sum(1e19, 1e19, 1e19); s.Mean != 1e19 || s.Std != 0 {
		t.Errorf("1e19 three times: mean %v std %v", s.Mean, s.Std)
	}
	big := make([]float64, 2000)
	for i := range big {
		big[i] = 5e15
	}
	if s := sum(big...); s.Mean != 5e15 {
		t.Errorf("5e15 2000 times: mean %v", s.Mean)
	}

	var d Describer
	for _, v := range []float64{-0.5, 1.5, 2.5} {
		d.Add(v)
	}
	e := FromState(d.State().Shifted(0.5))
	if s := e.Summary(); s.Count != 3 || s.Min != 0 || s.Q25 != 1 || s.Q50 != 2 || s.Q75 != 2.5 || s.Max != 3 {
		t.Errorf("shifted onto 0: %+v, want 0 1 2 2.5 3", s)
	}
	if st := e.State(); int64(len(st.Vals))+st.Small[0] != 3 {
		t.Errorf("shifted onto 0: the state holds %d values and %d zeros, want 3 in all", len(st.Vals), st.Small[0])
	}

	// Acks that all shared one slot of the old multiplicative hash: the
	// seeded mix spreads them (average probe distance of linear probing at
	// half load is about 1.5).
	var f floatCounts
	for j := uint64(65536); f.n < 20000; j++ {
		k := math.Float64bits(float64(j))
		if int((k*0x9E3779B97F4A7C15)>>40)&0xFFFF == 0 {
			f.add(k, 1, floatCountsMax)
		}
	}
	probe := func(f *floatCounts) float64 {
		mask, dist := len(f.keys)-1, 0
		for j, k := range f.keys {
			if k != 0 {
				dist += (j - fcSlot(k, f.seed, mask)) & mask
			}
		}
		return float64(dist) / float64(f.n)
	}
	if avg := probe(&f); avg > 4 {
		t.Errorf("colliding acks: average probe distance %.1f", avg)
	}
	// An attacker who knows the mix (it is in this file) can invert it and
	// make 20,000 keys that share a slot for a known seed; the table's own
	// seed is random, so they do not share one there.
	inv := func(c uint64) uint64 { // c's inverse modulo 2^64 (c odd)
		x := c
		for range 6 {
			x *= 2 - c*x
		}
		return x
	}
	unshift := func(y uint64, s uint) uint64 {
		x := y
		for i := s; i < 64; i += s {
			x ^= y >> i
		}
		return x
	}
	var g floatCounts
	for i := uint64(1); g.n < 20000; i++ {
		k := unshift(i<<16, 31) * inv(0x94D049BB133111EB)
		k = unshift(k, 27) * inv(0xBF58476D1CE4E5B9)
		k = unshift(k, 30) // fcSlot(k, 0, 0xFFFF) == 0
		if i == 1 && fcSlot(k, 0, 0xFFFF) != 0 {
			t.Fatal("the inverse of the mix is wrong")
		}
		g.add(k, 1, floatCountsMax)
	}
	if avg := probe(&g); avg > 4 {
		t.Errorf("keys crafted for seed 0: average probe distance %.1f", avg)
	}

	// Most of the weight on three counted values, the rest continuous,
	// past the cap: the sketch made from the counts keeps the height of a
	// stream's and its quartiles their rank error.
	rng := rand.New(rand.NewPCG(1, 2))
	n := 3_000_000
	xs := make([]float64, 0, n)
	h := Describer{Cap: 200_000}
	for range n {
		v := 1 + rng.Float64()
		if rng.Float64() < 0.7 {
			v = 1e-6 * float64(1+rng.IntN(3))
		}
		xs = append(xs, v)
		h.Add(v)
	}
	s := h.Summary()
	if s.Exact {
		t.Fatal("3M values past a cap of 200,000: not sketched")
	}
	slices.Sort(xs)
	for _, q := range []struct{ p, got float64 }{{0.25, s.Q25}, {0.5, s.Q50}, {0.75, s.Q75}} {
		lo, _ := slices.BinarySearch(xs, q.got)
		hi, _ := slices.BinarySearch(xs, math.Nextafter(q.got, math.Inf(1)))
		if float64(hi)/float64(n) < q.p-SketchRankError || float64(lo)/float64(n) > q.p+SketchRankError {
			t.Errorf("quartile %v: %v holds ranks %d to %d of %d", q.p, q.got, lo, hi, n)
		}
	}
	// A held column with a value counted a million times, merged with a
	// sketched state: the counted value goes into the sketch with its
	// weight (addN), so the quartiles keep their rank error.
	{
		var a, b Describer
		var all []float64
		for i := range 1_000_000 {
			v := 0.25
			if i%4 == 0 {
				v = 1 + rng.Float64()
			}
			a.Add(v)
			all = append(all, v)
		}
		for range 300_000 {
			v := 2 + rng.Float64()
			b.Add(v)
			all = append(all, v)
		}
		a.MergeState(b.State().Sketched())
		s := a.Summary()
		slices.Sort(all)
		if s.Exact || s.Count != int64(len(all)) || s.Min != all[0] || s.Max != all[len(all)-1] {
			t.Fatalf("merged with a sketched state: %+v", s)
		}
		for _, q := range []struct{ p, got float64 }{{0.25, s.Q25}, {0.5, s.Q50}, {0.75, s.Q75}} {
			lo, _ := slices.BinarySearch(all, q.got)
			hi, _ := slices.BinarySearch(all, math.Nextafter(q.got, math.Inf(1)))
			if float64(hi)/float64(len(all)) < q.p-SketchRankError || float64(lo)/float64(len(all)) > q.p+SketchRankError {
				t.Errorf("merged, quartile %v: %v holds ranks %d to %d of %d", q.p, q.got, lo, hi, len(all))
			}
		}
	}
	if levels := len(h.sketch.levels); levels > 13 {
		t.Errorf("the sketch has %d levels (a stream of 3M values has about 12)", levels)
	}
}

// TestHeldInPlace: each visits held values that came in order where they
// lie, in their chunks, merged with the counted values and the small
// integers; values out of order (within a chunk, or across the boundary
// of two chunks each in order) are joined and sorted first. Either way it
// visits every value once, in increasing order.
func TestHeldInPlace(t *testing.T) {
	rng := rand.New(rand.NewPCG(31, 32))
	for _, tc := range []struct {
		name    string
		held    func(i, n int) float64
		inPlace bool
	}{
		{"increasing", func(i, n int) float64 { return 0.2 + float64(i)*1e-5 }, true},
		{"decreasing", func(i, n int) float64 { return 0.2 + float64(n-i)*1e-5 }, false},
		// each chunk in order, but the third chunk (held values 768 on)
		// starts below the end of the second
		{"boundary", func(i, n int) float64 {
			if i >= 768 {
				return 0.1 + float64(i)*1e-5
			}
			return 0.2 + float64(i)*1e-5
		}, false},
		{"ties across chunks", func(i, n int) float64 { return 0.2 + float64(i/1000)*1e-3 }, true},
	} {
		var d Describer
		var all []float64
		add := func(v float64) { d.Add(v); all = append(all, v) }
		// counted first (repeats over a few values), until the table is full
		for i := 0; d.counted.n < floatCountsMax; i++ {
			add(0.5 + float64(rng.IntN(1000))*0.001)
			if i%3 == 0 {
				add(0.5 + float64(i)*1e-7) // fills the table
			}
		}
		const n = 300000
		for i := range n {
			add(tc.held(i, n))
			if i%7 == 0 {
				add(float64(rng.IntN(3))) // small integers among them
			}
			if i%11 == 0 {
				add(0.5 + float64(rng.IntN(1000))*0.001) // counted still
			}
		}
		if d.nMore == 0 || d.counted.n == 0 {
			t.Fatalf("%s: %d held in chunks, %d counted: the test holds nothing in chunks", tc.name, d.nMore, d.counted.n)
		}
		var got []float64
		d.each(func(v float64, c int64) {
			for range c {
				got = append(got, v)
			}
		})
		want := slices.Clone(all)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Fatalf("%s: each visited %d values, want %d (or out of order)", tc.name, len(got), len(want))
		}
		if joined := d.nMore == 0; joined == tc.inPlace {
			t.Errorf("%s: joined %v, want in place %v", tc.name, joined, tc.inPlace)
		}
		s := d.Summary()
		if s.Min != want[0] || s.Max != want[len(want)-1] || s.Q25 != Quantile(want, 0.25) || s.Q50 != Quantile(want, 0.5) || s.Q75 != Quantile(want, 0.75) {
			t.Errorf("%s: summary %+v", tc.name, s)
		}
	}
}

// TestHeldInPlaceEdges: what an independent review found untested in each.
// Values in both vals (the array a Reset keeps) and chunks, in order and
// with one below the last of vals; and -0.0, held only from a state (Add
// makes it the small integer 0), beside the small integer 0: it is not
// below 0, so 0 comes first, as when the values were joined and sorted.
func TestHeldInPlaceEdges(t *testing.T) {
	visit := func(d *Describer) (vs []float64, cs []int64) {
		d.each(func(v float64, c int64) { vs, cs = append(vs, v), append(cs, c) })
		return vs, cs
	}
	for _, last := range []float64{0.0625, 10.5} {
		var d Describer
		for i := range 5000 {
			d.Add(0.1234 + float64(i)*1e-3)
		}
		d.Summary()
		d.Reset()
		for i := range 5000 {
			d.Add(0.1234 + float64(i)*1e-3)
		}
		d.Add(last)
		if len(d.vals) != 5000 || d.nMore != 1 {
			t.Fatalf("%v: %d in vals, %d in chunks: the test holds nothing in both", last, len(d.vals), d.nMore)
		}
		vs, _ := visit(&d)
		if len(vs) != 5001 || !slices.IsSorted(vs) {
			t.Fatalf("%v last: each visits %d values, in order %v", last, len(vs), slices.IsSorted(vs))
		}
		if s := d.Summary(); s.Min != min(last, 0.1234) || s.Max != max(last, 0.1234+4999e-3) {
			t.Errorf("%v last: min %v max %v", last, s.Min, s.Max)
		}
	}
	negz := math.Copysign(0, -1)
	var d Describer
	vals := []float64{negz, negz}
	for i := range 5000 {
		vals = append(vals, float64(i+1)*1e-3/7)
	}
	d.MergeState(DescriberState{N: int64(len(vals)) + 1, MinMax: [2]float64{negz, vals[len(vals)-1]}, Small: map[int32]int64{0: 1}, Vals: vals})
	if d.nMore == 0 || !d.heldInOrder() {
		t.Fatalf("-0.0: %d held in chunks, in order %v", d.nMore, d.heldInOrder())
	}
	vs, cs := visit(&d)
	if len(vs) < 3 || vs[0] != 0 || math.Signbit(vs[0]) || cs[0] != 1 || !math.Signbit(vs[1]) || !math.Signbit(vs[2]) {
		t.Fatalf("-0.0 beside the small integer 0: visited %v %v %v (counts %v)", vs[0], vs[1], vs[2], cs[:3])
	}
}
