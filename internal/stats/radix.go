package stats

import (
	"slices"
	"unsafe"
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
	// Map each float, in place, to a uint64 whose order is the floats'
	// order (the keys take the values' own memory: one scratch array, not
	// two).
	keys := unsafe.Slice((*uint64)(unsafe.Pointer(unsafe.SliceData(xs))), n)
	// The eight bytes' histograms in the same sweep that maps the keys
	// (one sweep over the values instead of eight: the sort is memory-bound,
	// and this took it from 16 sweeps to at most 9).
	var counts [8][256]int
	for i, k := range keys {
		if k>>63 != 0 {
			k = ^k
		} else {
			k |= 1 << 63
		}
		keys[i] = k
		counts[0][k&0xff]++
		counts[1][(k>>8)&0xff]++
		counts[2][(k>>16)&0xff]++
		counts[3][(k>>24)&0xff]++
		counts[4][(k>>32)&0xff]++
		counts[5][(k>>40)&0xff]++
		counts[6][(k>>48)&0xff]++
		counts[7][k>>56]++
	}
	tmp := make([]uint64, n)
	src, dst := keys, tmp
	for p := range 8 {
		shift := uint(8 * p)
		count := &counts[p]
		if count[(src[0]>>shift)&0xff] == n {
			continue // every key has the same byte here
		}
		sum := 0
		for i, c := range count {
			count[i] = sum
			sum += c
		}
		for _, k := range src {
			b := (k >> shift) & 0xff
			dst[count[b]] = k
			count[b]++
		}
		src, dst = dst, src
	}
	if &src[0] != &keys[0] {
		copy(keys, src)
	}
	for i, b := range keys {
		if b>>63 != 0 {
			keys[i] = b &^ (1 << 63)
		} else {
			keys[i] = ^b
		}
	}
}
