package analysis

import (
	"net/netip"
	"slices"
	"testing"
)

// TestHostSets: a host's client IDs and peers, kept as one value until a
// second arrives, are the sets they were as maps: the empty client ID is
// one (clean-session clients and MQTT 5 clients asking for an assigned ID
// send it; an independent review found it dropped), a repeat is not a
// second, and the limits hold.
func TestHostSets(t *testing.T) {
	for _, ids := range [][]string{{}, {""}, {"", "a"}, {"a", ""}, {"a", "a"}, {"", "", "b", "a"}} {
		h := &hostAgg{}
		want := map[string]bool{}
		for _, id := range ids {
			h.addClientID(id)
			want[id] = true
		}
		got := sortedStrings(h.clientIDSet())
		if w := sortedStrings(want); !slices.Equal(got, w) {
			t.Errorf("client IDs %q: %q, want %q", ids, got, w)
		}
	}
	h := &hostAgg{}
	for i := range 30 {
		h.addClientID(string(rune('a' + i)))
	}
	if n := len(h.clientIDSet()); n != 20 {
		t.Errorf("%d client IDs kept, want 20", n)
	}
	a, b := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")
	for _, peers := range [][]netip.Addr{{}, {a}, {a, a}, {a, b}, {b, a, b}} {
		h := &hostAgg{}
		want := map[netip.Addr]bool{}
		for _, p := range peers {
			h.addPeer(p)
			want[p] = true
		}
		if h.peerCount() != len(want) || !slices.Equal(h.peerList(), addrList(want)) {
			t.Errorf("peers %v: %d %v, want %d %v", peers, h.peerCount(), h.peerList(), len(want), addrList(want))
		}
	}
}
