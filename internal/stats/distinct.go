package stats

import (
	"encoding/binary"
	"math"
	"math/bits"
	"net/netip"
	"slices"
)

// distinctBits is the number of hash bits that choose a register: 2^14
// registers (16 KiB) give a standard error of 1.04/√16384 = 0.81 %.
const distinctBits = 14

// DistinctError is Distinct's relative standard error.
const DistinctError = 0.0081

// Distinct estimates how many distinct values were added, in a fixed 16
// KiB, from their 64-bit hashes (HyperLogLog, Flajolet et al. 2007, with
// linear counting for small counts): for tables that let entries go and
// still report how many there were. The zero value is empty; it is not
// safe for concurrent use.
type Distinct struct {
	reg []uint8
}

// Add adds a value by its hash, which must be well mixed (Mix64).
func (d *Distinct) Add(h uint64) {
	if d.reg == nil {
		d.reg = make([]uint8, 1<<distinctBits)
	}
	i := h >> (64 - distinctBits)
	rho := uint8(bits.LeadingZeros64(h<<distinctBits|1<<(distinctBits-1))) + 1
	if rho > d.reg[i] {
		d.reg[i] = rho
	}
}

// Estimate is the number of distinct values added, estimated.
func (d *Distinct) Estimate() int64 {
	if d.reg == nil {
		return 0
	}
	m := float64(len(d.reg))
	sum, zeros := 0.0, 0
	for _, r := range d.reg {
		sum += math.Ldexp(1, -int(r))
		if r == 0 {
			zeros++
		}
	}
	e := 0.7213 / (1 + 1.079/m) * m * m / sum
	if e <= 2.5*m && zeros > 0 {
		e = m * math.Log(m/float64(zeros))
	}
	// A sketch merged from a stored state can claim anything: at most 2^40.
	return int64(math.Round(min(e, 1<<40)))
}

// Merge adds the values of o (register by register: the union).
func (d *Distinct) Merge(o *Distinct) {
	d.MergeRegisters(o.reg)
}

// Registers is the sketch's state, for storing it (nil when empty).
func (d *Distinct) Registers() []byte { return d.reg }

// MergeRegisters adds a stored state; one of another size is ignored.
func (d *Distinct) MergeRegisters(reg []byte) {
	if len(reg) != 1<<distinctBits {
		return
	}
	if d.reg == nil {
		d.reg = make([]uint8, 1<<distinctBits)
	}
	for i, r := range reg {
		d.reg[i] = max(d.reg[i], min(r, 64-distinctBits+1))
	}
}

// Hash is a well-mixed hash of b, the same on every run (FNV-1a, then
// Mix64): for the sketches of names and addresses.
func Hash[T string | []byte](b T) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(b); i++ {
		h = (h ^ uint64(b[i])) * 1099511628211
	}
	return Mix64(h)
}

// HashAddr is a well-mixed hash of an address under key, the same for the
// same key.
func HashAddr(a netip.Addr, key uint64) uint64 {
	b := a.As16()
	hi, lo := binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])
	return Mix64(Mix64(hi^key) ^ lo)
}

// Mix64 is a 64-bit finalizer (splitmix64's): nearby inputs give unrelated
// hashes, the same on every run.
func Mix64(z uint64) uint64 {
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

// fewK is the number of hashes a FewDistinct keeps.
const fewK = 64

// FewDistinctError is FewDistinct's relative standard error past fewK
// values: 1/√(fewK−2).
const FewDistinctError = 0.127

// FewDistinct counts distinct values exactly up to 64 of them and
// estimates past that, in at most 512 bytes: it keeps the 64 smallest
// hashes (the k-minimum-values sketch, Bar-Yossef et al. 2002), and the
// 64th smallest of n uniform hashes is about 64/n of the hash space. It is
// for the many small tables of a detector (the sources of each 10 s of
// each service), where Distinct's 16 KiB each would be far too much and an
// exact set grows with the input. The zero value is empty.
type FewDistinct struct {
	h    []uint64 // ascending, at most fewK
	over bool     // a hash was left out: the count is an estimate
}

// Add adds a value by its hash, which must be well mixed (Mix64).
func (d *FewDistinct) Add(h uint64) {
	i, found := slices.BinarySearch(d.h, h)
	switch {
	case found:
	case len(d.h) < fewK:
		d.h = slices.Insert(d.h, i, h)
	default:
		d.over = true
		if i < fewK {
			copy(d.h[i+1:], d.h[i:fewK-1])
			d.h[i] = h
		}
	}
}

// Estimate is the number of distinct values added, and whether it is exact
// (at most 64 distinct values, barring a collision of 64-bit hashes).
func (d *FewDistinct) Estimate() (n int64, exact bool) {
	if !d.over {
		return int64(len(d.h)), true
	}
	// (k−1)/U(k), U(k) the k-th smallest hash as a fraction of the space:
	// unbiased (Beyer et al. 2007).
	u := (float64(d.h[fewK-1]) + 1) / 0x1p64
	// Only chosen hashes put the 64th smallest near 0: at most 2^40.
	return int64(math.Round(min(max(float64(fewK-1)/u, fewK), 1<<40))), false
}
