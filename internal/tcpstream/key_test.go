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

// TestConnSlots: two owners have a slot each, a third is refused (it keeps
// a map), a freed slot serves the next owner, an owner's value is replaced
// in place, and a copy of the connection's facts carries no slots.
func TestConnSlots(t *testing.T) {
	var c Conn
	a, b, d := new(int), new(int), new(int)
	if c.Slot(a) != nil {
		t.Fatal("an empty connection has a value")
	}
	if !c.SetSlot(a, "a1") || !c.SetSlot(b, "b1") {
		t.Fatal("two owners refused")
	}
	if c.SetSlot(d, "d1") || c.Slot(d) != nil {
		t.Fatal("a third owner got a slot")
	}
	if !c.SetSlot(a, "a2") || c.Slot(a) != "a2" || c.Slot(b) != "b1" {
		t.Fatalf("replacing a's value: a %v, b %v", c.Slot(a), c.Slot(b))
	}
	if !c.SetSlot(a, nil) || c.Slot(a) != nil || c.Slot(b) != "b1" {
		t.Fatal("freeing a's slot")
	}
	if !c.SetSlot(d, "d1") || c.Slot(d) != "d1" || c.Slot(a) != nil {
		t.Fatal("the freed slot did not serve the next owner")
	}
	if !c.SetSlot(a, nil) {
		t.Fatal("freeing an owner without a slot is not an error")
	}
	var cp Conn
	c.CopyFacts(&cp)
	if cp.Slot(b) != nil || cp.Slot(d) != nil {
		t.Fatal("a copy of the facts carries the slots")
	}
}
