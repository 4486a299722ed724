package tcpstream

import (
	"bytes"
	"cmp"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"testing"

	"github.com/iomtguard/iomtguard/internal/capture"
	"github.com/iomtguard/iomtguard/internal/packet"
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
	if c.SetSlot(nil, "x") || c.Slot(b) != "b1" || c.Slot(d) != "d1" {
		t.Fatal("a nil owner was given a slot")
	}
	var cp Conn
	c.CopyFacts(&cp)
	if cp.Slot(b) != nil || cp.Slot(d) != nil {
		t.Fatal("a copy of the facts carries the slots")
	}
}

// TestRecentEqualsMap: the cache of recent connections finds what the map
// finds. Two tables take the same random frames (few endpoints, IPv4, IPv6
// and IPv4-mapped IPv6, self-connections, port reuse, closes, resets, and a
// table of 8 so that connections are evicted); one looks up the map alone.
// Every segment and every close must be the same, with the cache's hash
// seeded normally and with a seed of 0, which puts every 4-tuple on one
// slot.
func TestRecentEqualsMap(t *testing.T) {
	hosts := []string{"10.0.0.1", "10.0.0.2", "10.0.0.3", "[::ffff:10.0.0.1]", "[fe80::1]", "[fe80::2]"}
	ports := []string{"1883", "5000", "5001"}
	// Mostly data; now and then a SYN (a new ISN: port reuse), a close, a
	// reset.
	flags := []uint16{packet.FlagSYN, packet.FlagSYN | packet.FlagACK, packet.FlagFIN | packet.FlagACK, packet.FlagRST}
	for range 40 {
		flags = append(flags, packet.FlagACK, packet.FlagACK|packet.FlagPSH)
	}
	for _, seed := range []uint64{0, 1, 2} {
		rng := rand.New(rand.NewPCG(seed, 7))
		recA, recB := &recorder{}, &recorder{}
		a, b := New(Options{MaxFlows: 8}, recA), New(Options{MaxFlows: 8}, recB)
		b.noRecent = true
		if seed == 0 {
			a.seed = 0
		}
		ep := func() netip.AddrPort {
			return mustAP(hosts[rng.IntN(len(hosts))] + ":" + ports[rng.IntN(len(ports))])
		}
		// Twelve conversations (more than the table holds) and now and
		// then a pair of endpoints at random.
		var pairs [12][2]netip.AddrPort
		for i := range pairs {
			pairs[i] = [2]netip.AddrPort{ep(), ep()}
		}
		hits := 0
		for i := range 20000 {
			p := pairs[rng.IntN(len(pairs))]
			if rng.IntN(20) == 0 {
				p = [2]netip.AddrPort{ep(), ep()}
			}
			src, dst := p[0], p[1]
			if rng.IntN(2) == 0 {
				src, dst = dst, src
			}
			s := &packet.Segment{Seq: uint32(rng.IntN(3)) * 1000, Ack: uint32(rng.IntN(3)) * 1000, Flags: flags[rng.IntN(len(flags))], WScale: -1}
			s.Src, s.Dst = mustAP("192.0.2.1:1"), mustAP("192.0.2.2:2")
			if rng.IntN(3) == 0 {
				s.Payload = []byte("abc")
			}
			var f packet.Frame
			packet.Decode(capture.LinkRaw, packet.AppendIPTCP(nil, s), &f)
			if !f.IsTCP() {
				t.Fatalf("frame %d did not decode as TCP", i)
			}
			// The table reads only the addresses and ports of the layers
			// below TCP: any family, mixed in one frame too.
			f.Src, f.Dst, f.SrcPort, f.DstPort = src.Addr(), dst.Addr(), src.Port(), dst.Port()
			ts := int64(i) * 1e6
			if !a.noRecent && a.cachedConn(&f, a.recentSlot(&f)) != nil {
				hits++
			}
			var sa, sb Segment
			a.Track(&f, ts, 60, &sa)
			b.Track(&f, ts, 60, &sb)
			if sa.Conn.Index != sb.Conn.Index || sa.Conn.A != sb.Conn.A {
				t.Fatalf("seed %d frame %d (%v -> %v): stream %d (A %v) with the cache, %d (A %v) without", seed, i, src, dst,
					sa.Conn.Index, sa.Conn.A, sb.Conn.Index, sb.Conn.A)
			}
			sa.Conn, sb.Conn = nil, nil
			if !reflect.DeepEqual(sa, sb) {
				t.Fatalf("seed %d frame %d: segment %+v with the cache, %+v without", seed, i, sa, sb)
			}
		}
		if len(recA.closed) != len(recB.closed) {
			t.Fatalf("seed %d: %d closed with the cache, %d without", seed, len(recA.closed), len(recB.closed))
		}
		for i := range recA.closed {
			if ca, cb := recA.closed[i], recB.closed[i]; ca.Index != cb.Index || ca.Reason != cb.Reason || ca.Stat != cb.Stat {
				t.Fatalf("seed %d: close %d differs: %d %v, %d %v", seed, i, ca.Index, ca.Reason, cb.Index, cb.Reason)
			}
		}
		if !bytes.Equal(recA.data[0], recB.data[0]) || !bytes.Equal(recA.data[1], recB.data[1]) {
			t.Fatalf("seed %d: delivered bytes differ", seed)
		}
		for _, c := range a.recent {
			if c != nil && c.removed {
				t.Fatalf("seed %d: the cache holds removed stream %d", seed, c.Index)
			}
		}
		if want := map[bool]int{true: 300, false: 3000}[seed == 0]; hits < want {
			t.Errorf("seed %d: %d cache hits in 20,000 frames: the cache is not exercised", seed, hits)
		}
		t.Logf("seed %d: %d hits, %d connections closed", seed, hits, len(recA.closed))
	}
}
