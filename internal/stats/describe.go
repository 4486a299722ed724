// Package stats computes descriptive statistics with pandas' semantics, as a
// one-pass aggregator that the capture pipeline feeds, plus histograms and
// top-k counts. It does no I/O and imports only the standard library.
package stats

import (
	"cmp"
	"encoding/json"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
)

// Summary is pandas' Series.describe() of a numeric column: count of present
// values, mean, standard deviation with ddof=1, minimum, quartiles by linear
// interpolation (numpy's default percentile method), and maximum.
type Summary struct {
	Count int64   `json:"count"`
	Mean  float64 `json:"mean"`
	Std   float64 `json:"std"`
	Min   float64 `json:"min"`
	Q25   float64 `json:"25%"`
	Q50   float64 `json:"50%"`
	Q75   float64 `json:"75%"`
	Max   float64 `json:"max"`
	// Exact is false when the column outgrew its memory cap and the quartiles
	// come from a sketch (mean, std, min and max stay exact); RankError is
	// then the sketch's bound on the quartiles' error, as a fraction of the
	// count: each is a value whose rank is within RankError*Count of the
	// exact quartile's (0 when exact).
	Exact     bool    `json:"exact"`
	RankError float64 `json:"rank_error,omitempty"`
}

// SketchRankError is the rank error a sketched column's quartiles stay
// within (TestMergeSketched checks it).
const SketchRankError = 0.005

// DefaultCap is how many values other than small integers a Describer holds
// before it falls back to a quantile sketch: 2 Mi values, 16 MiB (a value
// counted, however often it came, counts once: see floatCounts).
const DefaultCap = 1 << 21

// smallInts is the range of values counted in a dense array: integers in
// [0, smallInts) (lengths, ports, flags) take no memory per value.
const smallInts = 1 << 16

// Describer accumulates one numeric column. Integers in [0, 65536) are
// counted in a dense array; other values are appended to a slice and sorted
// once at the end, so memory grows with the number of such values, up to Cap;
// past that the quartiles come from a KLL sketch (rank error below 0.5 %) and
// Summary.Exact is false. Mean and variance use compensated sums and stay
// exact to rounding in every mode.
type Describer struct {
	// Cap bounds the values held other than small integers (default DefaultCap).
	Cap int

	n         int64
	min, max  float64  // while values are held, computed from them when needed (settle)
	sum, sumC float64  // Neumaier-compensated sum (likewise)
	small     []int64  // counts of integers in [0, len(small)), grown as values need, up to denseLow (or smallInts once dense)
	hi        hiCounts // counts of integers in [denseLow, smallInts) while they are few
	touched   []int32  // the integers with a count (each once): State and each visit only these
	nSmall    int64
	counted   floatCounts // held values while few distinct (see floatCounts)
	noCount   bool        // the column's values were mostly distinct: held, not counted (see keep)
	vals      []float64   // held values (filled to its capacity, then more takes them)
	more      [][]float64 // held values past vals' capacity, in chunks (see addMore)
	nMore     int
	sketch    *kll
	welfordM  float64 // running mean of v - shift
	welfordM2 float64
	shift     float64     // the first value: Welford runs on v - shift for precision
	refined   *[3]float64 // the sketched quartiles made exact by a second pass (Refine)
}

// Add adds one present value. NaN counts as absent (pandas skips it).
//
// While the values are held (below the cap) Add only counts or keeps the
// value: the extremes and the sum are computed from the held values when a
// summary is asked for (profiling analyze showed the per-value bookkeeping
// at a third of the aggregation's time).
func (d *Describer) Add(v float64) {
	if d.sketch == nil {
		if v >= 0 && v < smallInts {
			if i := int(v); float64(i) == v {
				if i < len(d.small) {
					if d.small[i] == 0 {
						d.touched = append(d.touched, int32(i))
					}
					d.small[i]++
					d.nSmall++
				} else {
					d.addSmall(i, 1)
				}
				d.n++
				return
			}
		}
		if v != v { // NaN
			return
		}
		d.n++
		d.hold(v)
		return
	}
	if v != v {
		return
	}
	if d.n == 0 {
		d.min, d.max = v, v
	} else {
		if v < d.min {
			d.min = v
		}
		if v > d.max {
			d.max = v
		}
	}
	d.n++
	d.addSum(v)
	d.refined = nil // a value past a second pass: its quartiles are the sketch's again
	// Welford's moments once the values are no longer all held.
	delta := (v - d.shift) - d.welfordM
	d.welfordM += delta / float64(d.n)
	d.welfordM2 += delta * ((v - d.shift) - d.welfordM)
	d.sketch.add(v)
}

// hold keeps v, a value other than a small integer: counted while the
// column has few distinct values, else in the held values; past the cap
// these go to the sketch.
func (d *Describer) hold(v float64) {
	if d.keep(v) && d.Held() > d.limit() {
		d.toSketch()
	}
}

// keep is hold without the cap's check; it reports whether v was held as
// a value rather than counted (or the counted ones were moved to the held).
func (d *Describer) keep(v float64) bool {
	if v == 0 && !math.Signbit(v) {
		// +0.0 (a state's value shifted to it) is the small integer 0; its
		// bits are the counting table's empty key.
		d.addSmall(0, 1)
		return false
	}
	if !d.noCount && d.counted.add(math.Float64bits(v), 1, min(floatCountsMax, d.limit())) {
		if d.counted.n == countCheck && d.counted.total < 2*countCheck {
			d.uncount()
			return true // held now, all of them
		}
		return false
	}
	if len(d.vals) < cap(d.vals) {
		d.vals = append(d.vals, v)
	} else {
		d.addMore(v)
	}
	return true
}

// countCheck is when a column's counting is judged: at that many distinct
// values, a column with fewer than two values for each (a capture's
// time_relative, a live capture's nanosecond deltas, a bulk transfer's
// acknowledgements)
// is held from then on: counting it would take four times the memory of
// holding it, and the time of a hash per value, for nothing.
const countCheck = 4096

// uncount moves the counted values to the held ones, in increasing order
// (a column that comes sorted, like time_relative, stays sorted: its
// summary then needs no sort), and stops counting.
func (d *Describer) uncount() {
	f := d.counted
	d.counted, d.noCount = floatCounts{}, true
	for _, p := range f.sorted() {
		for range p.c {
			d.keep(p.v)
		}
	}
}

// settle computes the extremes and the sum of the held values (nothing to
// do once sketched: they are kept as values come).
func (d *Describer) settle() {
	if d.sketch != nil || d.n == 0 {
		return
	}
	first := true
	d.sum, d.sumC = 0, 0
	d.each(func(v float64, c int64) {
		if first {
			d.min, first = v, false
		}
		d.max = v
		x := v * float64(c)
		if c > 1 && v >= 0 && v < smallInts && v == math.Trunc(v) {
			x = float64(int64(v) * c) // exact for the small integers (no other: ±Inf, or 1e19, would overflow)
		}
		d.addSum(x)
	})
}

// addSum adds x to the compensated sum (Neumaier's summation).
func (d *Describer) addSum(x float64) {
	t := d.sum + x
	if math.IsInf(t, 0) || math.IsNaN(t) {
		d.sum = t // infinite (pandas' mean is then ±inf) or NaN: no compensation, which would make ±inf NaN
		return
	}
	if math.Abs(d.sum) >= math.Abs(x) {
		d.sumC += (d.sum - t) + x
	} else {
		d.sumC += (x - t) + d.sum
	}
	d.sum = t
}

// limit is how many values d holds before it sketches them.
func (d *Describer) limit() int {
	if d.Cap <= 0 {
		return DefaultCap
	}
	return d.Cap
}

// toSketch moves the held values into a sketch and seeds Welford's running
// moments from them exactly.
func (d *Describer) toSketch() {
	sk, mean, m2 := d.sketchOf()
	d.sketch = sk
	d.shift = d.min
	d.welfordM, d.welfordM2 = mean-d.shift, m2
	d.dropHeld()
}

// sketchOf returns a sketch of the values d holds, with their mean and sum
// of squared deviations, and leaves d as it is. A value counted c times
// goes in with its weight (addN), not c times.
func (d *Describer) sketchOf() (sk *kll, mean, m2 float64) {
	d.settle()
	mean = d.mean()
	sk = newKLL(2048)
	top := sk.topLevel(d.n)
	d.each(func(v float64, c int64) {
		dv := v - mean
		m2 += float64(c) * dv * dv
		sk.addN(v, c, top)
	})
	return sk, mean, m2
}

// dropHeld forgets the values held exactly (once they are in the sketch).
func (d *Describer) dropHeld() {
	d.small, d.hi, d.touched, d.vals, d.nSmall = nil, hiCounts{}, nil, nil, 0
	d.more, d.nMore = nil, 0
	d.counted = floatCounts{}
}

// addMore holds v in the chunks past vals. Growing one slice by appending
// copied each value about five times over (profiling analyze: a sixth of
// its pass, and the old and new arrays side by side at each growth); the
// chunks, doubling from 256 values to 64 Ki, are written once and joined
// once, when the values are summarised.
func (d *Describer) addMore(v float64) {
	n := len(d.more)
	if n == 0 || len(d.more[n-1]) == cap(d.more[n-1]) {
		size := 256
		if n > 0 {
			size = min(2*cap(d.more[n-1]), 1<<16)
		}
		d.more = append(d.more, make([]float64, 0, size))
		n++
	}
	d.more[n-1] = append(d.more[n-1], v)
	d.nMore++
}

// flatten joins the chunks to vals, in one array of the exact size.
func (d *Describer) flatten() {
	if d.nMore == 0 {
		return
	}
	if need := len(d.vals) + d.nMore; cap(d.vals) < need {
		joined := make([]float64, len(d.vals), need)
		copy(joined, d.vals)
		d.vals = joined
	}
	for i, c := range d.more {
		d.vals = append(d.vals, c...)
		d.more[i] = nil // each chunk goes as soon as it is copied
	}
	d.more, d.nMore = nil, 0
}

// Reset empties d for a new column and keeps its storage (a live run's
// minute analyzers reuse their columns: profiling watch showed the columns'
// growth, minute after minute, at half of all it allocated).
func (d *Describer) Reset() {
	for _, i := range d.touched {
		if int(i) < len(d.small) {
			d.small[i] = 0
		}
	}
	d.hi.reset()
	d.counted.reset()
	small, touched, vals, c := d.small, d.touched[:0], d.vals[:0], d.Cap
	if d.nMore > 0 { // one array of the size the column needed
		vals = make([]float64, 0, len(d.vals)+d.nMore)
	}
	*d = Describer{Cap: c, small: small, hi: d.hi, touched: touched, vals: vals, counted: d.counted}
}

// denseLow is the end of the range that is always counted densely: lengths
// and well-known ports. Integers above it (ephemeral ports, mostly) are
// counted in a small hash table until there are more than hiSparseMax
// distinct ones, and only then densely.
const (
	denseLow    = 1 << 12
	hiSparseMax = 1 << 12
)

// addSmall counts c more of the small integer i. The dense array grows by
// doubling to what the values need: a minute of a live run holds a few
// hundred distinct lengths and ports, not 65,536 counters (profiling watch
// showed the allocation and clearing of 512 KiB arrays, one per port column
// per minute, at a quarter of its time; the sparse table for the high range
// took that to nothing).
func (d *Describer) addSmall(i int, c int64) {
	if i >= len(d.small) {
		if i >= denseLow && len(d.small) < smallInts {
			if d.hi.add(i, c) {
				d.touched = append(d.touched, int32(i))
			}
			d.nSmall += c
			if d.hi.n > hiSparseMax {
				d.densify()
			}
			return
		}
		d.growSmall(i)
	}
	if d.small[i] == 0 {
		d.touched = append(d.touched, int32(i))
	}
	d.small[i] += c
	d.nSmall += c
}

func (d *Describer) growSmall(i int) {
	n := max(256, len(d.small))
	for n <= i {
		n *= 2
	}
	n = min(n, smallInts)
	grown := make([]int64, n)
	copy(grown, d.small)
	d.small = grown
}

// densify moves the sparse high counts into the dense array, which then
// covers every small integer.
func (d *Describer) densify() {
	d.growSmall(smallInts - 1)
	d.hi.each(func(i int, c int64) { d.small[i] = c })
	d.hi = hiCounts{}
}

// count returns the count of the small integer i.
func (d *Describer) count(i int) int64 {
	if i < len(d.small) {
		return d.small[i]
	}
	return d.hi.get(i)
}

// floatCounts counts the values other than small integers while a column
// has at most floatCountsMax distinct ones (and no more than its cap); a
// value it has no room for is held as it comes. The time deltas of a capture repeat (a microsecond
// pcap's deltas are whole microseconds, and a device reports on a period):
// the 1.09M-frame benchmark's frame.time_delta has 467 distinct values,
// tcp.time_delta 1,159 and tcp.ack 3,719 (pandas' nunique of tshark's export).
// Counting them kept those columns exact at any length, in a table of at
// most 1 MiB, where holding them took 8 bytes a value and sketched them
// past the cap; and the summary sorts the distinct values, not all of them
// (profiling analyze: the columns' sort was the largest part of its finish).
type floatCounts struct {
	keys  []uint64 // math.Float64bits of the value; 0 (+0.0: a small integer, never here) marks an empty slot
	cnt   []int64
	n     int   // distinct values
	total int64 // values
	seed  uint64
}

const floatCountsMax = 1 << 15

type fcount struct {
	v float64
	c int64
}

// fcSlot mixes the value's bits with the table's random seed (the
// splitmix64 finalizer): TCP acknowledgements are chosen by the sender, and
// a fixed multiplicative hash let 32,768 crafted ones share one probe
// chain (an independent review measured 10 µs an add instead of 33 ns).
// The seed changes where values sit, never what the summary says (it
// sorts them).
func fcSlot(k, seed uint64, mask int) int {
	k ^= seed
	k = (k ^ k>>30) * 0xBF58476D1CE4E5B9
	k = (k ^ k>>27) * 0x94D049BB133111EB
	return int(k^k>>31) & mask
}

// add counts c more of the value with bits k and reports whether it could
// (false: k is new and the table holds max distinct values already).
func (f *floatCounts) add(k uint64, c int64, max int) bool {
	if f.keys == nil {
		f.keys, f.cnt, f.seed = make([]uint64, 256), make([]int64, 256), rand.Uint64()
	}
	mask := len(f.keys) - 1
	for j := fcSlot(k, f.seed, mask); ; j = (j + 1) & mask {
		switch f.keys[j] {
		case k:
			f.cnt[j] += c
			f.total += c
			return true
		case 0:
			if f.n >= max {
				return false
			}
			if 2*(f.n+1) > len(f.keys) {
				f.grow()
				return f.add(k, c, max)
			}
			f.keys[j], f.cnt[j] = k, c
			f.n++
			f.total += c
			return true
		}
	}
}

func (f *floatCounts) grow() {
	old := *f
	*f = floatCounts{keys: make([]uint64, 2*len(old.keys)), cnt: make([]int64, 2*len(old.keys)), seed: old.seed}
	for j, k := range old.keys {
		if k != 0 {
			f.add(k, old.cnt[j], old.n)
		}
	}
}

// reset empties the table and keeps its storage.
func (f *floatCounts) reset() {
	if f.n > 0 {
		clear(f.keys)
		clear(f.cnt)
		f.n, f.total = 0, 0
	}
}

// sorted returns the values counted with their counts, in increasing order.
func (f *floatCounts) sorted() []fcount {
	out := make([]fcount, 0, f.n)
	for j, k := range f.keys {
		if k != 0 {
			out = append(out, fcount{math.Float64frombits(k), f.cnt[j]})
		}
	}
	slices.SortFunc(out, func(a, b fcount) int { return cmp.Compare(a.v, b.v) })
	return out
}

// hiCounts is an open-addressing table of counts for integers in
// [denseLow, smallInts); key 0 marks an empty slot.
type hiCounts struct {
	keys []uint16
	cnt  []int64
	n    int
}

func hiSlot(k, mask int) int { return int((uint32(k)*0x9E3779B1)>>16) & mask }

// add counts c more of k and reports whether k is new.
func (h *hiCounts) add(k int, c int64) bool {
	if 2*(h.n+1) > len(h.keys) {
		h.grow()
	}
	mask := len(h.keys) - 1
	for j := hiSlot(k, mask); ; j = (j + 1) & mask {
		switch int(h.keys[j]) {
		case k:
			h.cnt[j] += c
			return false
		case 0:
			h.keys[j], h.cnt[j] = uint16(k), c
			h.n++
			return true
		}
	}
}

// reset empties the table and keeps its storage.
func (h *hiCounts) reset() {
	if h.n > 0 {
		clear(h.keys)
		clear(h.cnt)
		h.n = 0
	}
}

func (h *hiCounts) get(k int) int64 {
	if h.n == 0 {
		return 0
	}
	mask := len(h.keys) - 1
	for j := hiSlot(k, mask); ; j = (j + 1) & mask {
		switch int(h.keys[j]) {
		case k:
			return h.cnt[j]
		case 0:
			return 0
		}
	}
}

func (h *hiCounts) grow() {
	old := *h
	size := max(64, 2*len(old.keys))
	*h = hiCounts{keys: make([]uint16, size), cnt: make([]int64, size)}
	old.each(func(k int, c int64) { h.add(k, c) })
}

func (h *hiCounts) each(fn func(k int, c int64)) {
	for j, k := range h.keys {
		if k != 0 {
			fn(int(k), h.cnt[j])
		}
	}
}

// each calls fn for every held value with its count, in increasing order.
//
// Held values that came in order (a capture's time_relative) are visited in
// their chunks where they lie: joining them first (flatten) copied the
// whole column into a new array, 16 MiB at the cap, and profiling four
// 1.09M-frame files found that copy, the page faults of its fresh memory
// and the collector spinning until the copy let the goroutine stop (a
// memmove cannot be preempted) at a fifth of the worker's time.
func (d *Describer) each(fn func(v float64, c int64)) {
	if !d.heldInOrder() {
		d.flatten()
		sortFloats(d.vals)
	}
	slices.Sort(d.touched)
	var fc []fcount
	if d.counted.n > 0 {
		fc = d.counted.sorted()
	}
	// The values with a count come from two streams that never share a
	// value (the small integers, and the other values counted); merged in
	// order, they are merged with the held values.
	i, k := 0, 0
	nextCounted := func() (v float64, c int64, ok bool) {
		for i < len(d.touched) && d.count(int(d.touched[i])) == 0 {
			i++
		}
		switch {
		case i < len(d.touched) && (k == len(fc) || float64(d.touched[i]) < fc[k].v):
			i++
			return float64(d.touched[i-1]), d.count(int(d.touched[i-1])), true
		case k < len(fc):
			k++
			return fc[k-1].v, fc[k-1].c, true
		}
		return 0, 0, false
	}
	// The held values: vals, then the chunks past it; seg is the part of
	// the current one not yet visited.
	seg, next := d.vals, 0
	for v, c, ok := nextCounted(); ok; v, c, ok = nextCounted() {
		for {
			j := 0
			for j < len(seg) && seg[j] < v {
				fn(seg[j], 1)
				j++
			}
			seg = seg[j:]
			if len(seg) > 0 || next == len(d.more) {
				break
			}
			seg, next = d.more[next], next+1
		}
		fn(v, c)
	}
	for {
		for _, x := range seg {
			fn(x, 1)
		}
		if next == len(d.more) {
			break
		}
		seg, next = d.more[next], next+1
	}
}

// heldInOrder reports whether the held values, vals and then the chunks
// past it, are in increasing order.
func (d *Describer) heldInOrder() bool {
	if !slices.IsSorted(d.vals) {
		return false
	}
	last, have := 0.0, len(d.vals) > 0
	if have {
		last = d.vals[len(d.vals)-1]
	}
	for _, c := range d.more {
		if len(c) == 0 {
			continue
		}
		if (have && c[0] < last) || !slices.IsSorted(c) {
			return false
		}
		last, have = c[len(c)-1], true
	}
	return true
}

// heldSorted returns the values held other than small integers, each as
// often as it came, in increasing order (a new array).
func (d *Describer) heldSorted() []float64 {
	d.flatten()
	if !slices.IsSorted(d.vals) {
		sortFloats(d.vals)
	}
	if d.counted.n == 0 {
		return slices.Clone(d.vals)
	}
	out := make([]float64, 0, len(d.vals)+int(d.counted.total))
	j := 0
	for _, p := range d.counted.sorted() {
		for j < len(d.vals) && d.vals[j] < p.v {
			out = append(out, d.vals[j])
			j++
		}
		for range p.c {
			out = append(out, p.v)
		}
	}
	return append(out, d.vals[j:]...)
}

// Held is the number of values held other than small integers that a
// summary sorts or visits: the distinct counted ones and the others (zero
// once sketched).
func (d *Describer) Held() int { return len(d.vals) + d.nMore + d.counted.n }

// Count is the number of present values.
func (d *Describer) Count() int64 { return d.n }

func (d *Describer) mean() float64 { return (d.sum + d.sumC) / float64(d.n) }

// Summary returns the column's describe(). With no values every statistic is
// NaN but Count, as in pandas.
func (d *Describer) Summary() Summary {
	d.settle()
	s := Summary{Count: d.n, Exact: d.sketch == nil}
	if !s.Exact {
		s.RankError = SketchRankError
	}
	if d.n == 0 {
		nan := math.NaN()
		s.Mean, s.Std, s.Min, s.Q25, s.Q50, s.Q75, s.Max = nan, nan, nan, nan, nan, nan, nan
		return s
	}
	s.Mean = d.mean()
	s.Min, s.Max = d.min, d.max
	s.Std = math.NaN()
	if d.sketch != nil {
		if d.n > 1 {
			s.Std = math.Sqrt(d.welfordM2 / float64(d.n-1))
		}
		s.Q25, s.Q50, s.Q75 = d.sketch.quantile(0.25), d.sketch.quantile(0.5), d.sketch.quantile(0.75)
		if q := d.refined; q != nil {
			s.Q25, s.Q50, s.Q75 = q[0], q[1], q[2]
			s.Exact, s.RankError = true, 0
		}
		return s
	}
	// The order statistics the quartiles need, and a second pass for the
	// variance (pandas' nanvar subtracts the mean first).
	var ranks [6]int64
	var at [6]float64
	var frac [3]float64
	for i, p := range quartiles {
		ranks[2*i], ranks[2*i+1], frac[i] = orderStats(d.n, p)
	}
	// The ranks in increasing order (with few values they repeat out of
	// order: n = 2 gives 0 1 0 1 0 1): only the next one can be reached.
	ord := [6]int{0, 1, 2, 3, 4, 5}
	slices.SortStableFunc(ord[:], func(x, y int) int { return cmp.Compare(ranks[x], ranks[y]) })
	var seen int64
	var ss, comp float64
	next := 0
	d.each(func(v float64, c int64) {
		for next < len(ord) && ranks[ord[next]] < seen+c {
			at[ord[next]] = v
			next++
		}
		seen += c
		dv := v - s.Mean
		term := float64(c) * dv * dv
		t := ss + term
		if math.Abs(ss) >= math.Abs(term) {
			comp += (ss - t) + term
		} else {
			comp += (term - t) + ss
		}
		ss = t
	})
	if d.n > 1 {
		s.Std = math.Sqrt((ss + comp) / float64(d.n-1))
	}
	q := func(i int) float64 { return interpolate(at[2*i], at[2*i+1], frac[i]) }
	s.Q25, s.Q50, s.Q75 = q(0), q(1), q(2)
	return s
}

var quartiles = [3]float64{0.25, 0.5, 0.75}

// orderStats returns the ranks (0-based) of the two order statistics that
// quantile p of n values is interpolated between, as numpy's linear method
// does, and the weight of the second.
func orderStats(n int64, p float64) (lo, hi int64, frac float64) {
	h := float64(n-1) * p
	lo = int64(math.Floor(h))
	return lo, min(lo+1, n-1), h - math.Floor(h)
}

// interpolate is the quantile between its order statistics a and b.
func interpolate(a, b, frac float64) float64 {
	if frac == 0 {
		return a
	}
	return Lerp(a, b, frac)
}

// Lerp interpolates as numpy's percentile does (numpy >= 1.22, _lerp): a +
// (b-a)*t, computed from the upper end when t >= 0.5 for symmetry.
func Lerp(a, b, t float64) float64 {
	diff := b - a
	if t >= 0.5 {
		return b - diff*(1-t)
	}
	return a + diff*t
}

// Quantile returns the p-quantile of xs (sorted in place) by linear
// interpolation between order statistics, as numpy.percentile's default.
// It panics on an empty slice.
func Quantile(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		panic("stats: Quantile of no values")
	}
	if !slices.IsSorted(xs) {
		slices.Sort(xs)
	}
	h := float64(len(xs)-1) * p
	lo := int(math.Floor(h))
	if lo+1 >= len(xs) {
		return xs[len(xs)-1]
	}
	return Lerp(xs[lo], xs[lo+1], h-float64(lo))
}

// Median returns the median of xs (sorted in place).
func Median(xs []float64) float64 { return Quantile(xs, 0.5) }

// MeanStd returns the mean and the standard deviation with ddof (0 for the
// population, 1 for the sample), by two passes. It panics on empty input.
func MeanStd(xs []float64, ddof int) (mean, std float64) {
	if len(xs) == 0 {
		panic("stats: MeanStd of no values")
	}
	for _, x := range xs {
		mean += x
	}
	mean /= float64(len(xs))
	var ss float64
	for _, x := range xs {
		ss += (x - mean) * (x - mean)
	}
	if len(xs)-ddof <= 0 {
		return mean, math.NaN()
	}
	return mean, math.Sqrt(ss / float64(len(xs)-ddof))
}

// MarshalJSON writes the summary with pandas' names; a value pandas leaves
// undefined (NaN: the std of one value) is null, as pandas' to_json writes it.
func (s Summary) MarshalJSON() ([]byte, error) {
	b := []byte(`{"count":`)
	b = strconv.AppendInt(b, s.Count, 10)
	for _, f := range []struct {
		k string
		v float64
	}{{"mean", s.Mean}, {"std", s.Std}, {"min", s.Min}, {"25%", s.Q25}, {"50%", s.Q50}, {"75%", s.Q75}, {"max", s.Max}} {
		b = append(b, `,"`...)
		b = append(b, f.k...)
		b = append(b, `":`...)
		if math.IsNaN(f.v) || math.IsInf(f.v, 0) {
			b = append(b, "null"...)
		} else {
			b = strconv.AppendFloat(b, f.v, 'g', -1, 64)
		}
	}
	b = append(b, `,"exact":`...)
	b = strconv.AppendBool(b, s.Exact)
	if s.RankError > 0 {
		b = append(b, `,"rank_error":`...)
		b = strconv.AppendFloat(b, s.RankError, 'g', -1, 64)
	}
	return append(b, '}'), nil
}

// UnmarshalJSON reads what MarshalJSON writes (null as NaN).
func (s *Summary) UnmarshalJSON(b []byte) error {
	var m struct {
		Count     int64
		Exact     bool
		RankError float64
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	get := func(k string) *float64 {
		var v *float64
		json.Unmarshal(raw[k], &v)
		return v
	}
	json.Unmarshal(raw["count"], &m.Count)
	json.Unmarshal(raw["exact"], &m.Exact)
	json.Unmarshal(raw["rank_error"], &m.RankError)
	nan := func(p *float64) float64 {
		if p == nil {
			return math.NaN()
		}
		return *p
	}
	*s = Summary{Count: m.Count, Mean: nan(get("mean")), Std: nan(get("std")), Min: nan(get("min")), Q25: nan(get("25%")),
		Q50: nan(get("50%")), Q75: nan(get("75%")), Max: nan(get("max")), Exact: m.Exact, RankError: m.RankError}
	return nil
}
