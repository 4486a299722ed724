package tcpstream

import (
	"bytes"
	"cmp"
	"math/rand/v2"
	"testing"
)

// TestCompareEnd: the word-wise order of endpoints is the order of their
// bytes, then of their ports, including addresses that differ only in their
// last byte or their first.
func TestCompareEnd(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	ref := func(a [16]byte, pa uint16, b [16]byte, pb uint16) int {
		if c := bytes.Compare(a[:], b[:]); c != 0 {
			return c
		}
		return cmp.Compare(pa, pb)
	}
	for i := 0; i < 100000; i++ {
		var a, b [16]byte
		for j := range a {
			a[j] = byte(rng.IntN(3)) // few values: many equal prefixes
		}
		b = a
		if i%2 == 0 {
			b[rng.IntN(16)] = byte(rng.IntN(256))
		}
		pa, pb := uint16(rng.IntN(3)), uint16(rng.IntN(3))
		if got, want := compareEnd(a, pa, b, pb), ref(a, pa, b, pb); got != want {
			t.Fatalf("compareEnd(%x:%d, %x:%d) = %d, want %d", a, pa, b, pb, got, want)
		}
	}
}
