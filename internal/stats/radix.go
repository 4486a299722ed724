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
	for i, k := range keys {
		if k>>63 != 0 {
			keys[i] = ^k
		} else {
			keys[i] = k | 1<<63
		}
	}
	tmp := make([]uint64, n)
	var count [256]int
	src, dst := keys, tmp
	for shift := uint(0); shift < 64; shift += 8 {
		count = [256]int{}
		for _, k := range src {
			count[(k>>shift)&0xff]++
		}
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
