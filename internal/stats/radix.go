package stats

import (
	"math"
	"slices"
)

// sortFloats sorts xs ascending. Long slices use an LSD radix sort on the
// values' bits (8 passes of one byte), several times faster than a
// comparison sort for the millions of time deltas a large capture holds
// (profiling analyze: the Figure 1 columns' sort was a fifth of its
// finish). NaN is never held (Add skips it).
func sortFloats(xs []float64) {
	n := len(xs)
	if n < 4096 {
		slices.Sort(xs)
		return
	}
	// Map each float to a uint64 whose order is the floats' order.
	keys := make([]uint64, n)
	for i, v := range xs {
		b := math.Float64bits(v)
		if b>>63 != 0 {
			b = ^b
		} else {
			b |= 1 << 63
		}
		keys[i] = b
	}
	tmp := make([]uint64, n)
	var count [256]int
	for shift := uint(0); shift < 64; shift += 8 {
		count = [256]int{}
		for _, k := range keys {
			count[(k>>shift)&0xff]++
		}
		if count[(keys[0]>>shift)&0xff] == n {
			continue // every key has the same byte here
		}
		sum := 0
		for i, c := range count {
			count[i] = sum
			sum += c
		}
		for _, k := range keys {
			b := (k >> shift) & 0xff
			tmp[count[b]] = k
			count[b]++
		}
		keys, tmp = tmp, keys
	}
	for i, b := range keys {
		if b>>63 != 0 {
			b &^= 1 << 63
		} else {
			b = ^b
		}
		xs[i] = math.Float64frombits(b)
	}
}
