package analysis

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/iomtguard/iomtguard/internal/capture"
	"github.com/iomtguard/iomtguard/internal/mqtt"
	"github.com/iomtguard/iomtguard/internal/pcaptest"
	"github.com/iomtguard/iomtguard/internal/pipeline"
)

// floodThenDevice is 20,000 SYNs from spoofed sources to the broker, with a
// pump connected before the flood and a monitor that arrives after it,
// publishes and leaves; the pump is still connected at the end.
func floodThenDevice(t *testing.T) string {
	const sec = int64(1e9)
	c := pcaptest.New(capture.LinkEthernet, 1_750_000_000*sec)
	pump := c.NewConn("10.9.9.9:40000", "10.0.0.1:1883")
	pump.Handshake()
	pump.Send(pcaptest.FromClient, pcaptest.Connect("pump-1", mqtt.V311))
	pump.Send(pcaptest.FromClient, pcaptest.Publish("ward3/pump-1/rate", "12.5"))
	for i := range 20000 {
		k := c.NewConn(fmt.Sprintf("172.%d.%d.%d:%d", 16+i/62500, i/250%250, 1+i%250, 1024+i%60000), "10.0.0.1:1883")
		k.SYN()
		c.Tick(sec / 1000)
	}
	mon := c.NewConn("10.9.9.8:41000", "10.0.0.1:1883")
	mon.Handshake()
	mon.Send(pcaptest.FromClient, pcaptest.Connect("monitor-7", mqtt.V311))
	for range 5 {
		mon.Send(pcaptest.FromClient, pcaptest.Publish("ward3/monitor-7/hr", "72"))
		c.Tick(sec)
	}
	mon.Close()
	pump.Send(pcaptest.FromClient, pcaptest.Publish("ward3/pump-1/rate", "12.5"))
	path := filepath.Join(t.TempDir(), "flood.pcap")
	if err := os.WriteFile(path, c.Pcap(), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func analyseSmall(t *testing.T, path string, maxHosts int) (*Analyzer, *Result) {
	t.Helper()
	an, sum := analyseOpts(t, path, Options{MaxHosts: maxHosts})
	return an, an.Result(sum, nil)
}

// analyseOpts runs an analyzer with o over the capture at path.
func analyseOpts(t *testing.T, path string, o Options) (*Analyzer, *pipeline.Summary) {
	t.Helper()
	in, err := pipeline.OpenInput(path)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	an := New(o)
	sum, err := pipeline.New(pipeline.Options{}, an).Run(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	return an, sum
}

// TestHostTableFlood: a flood of spoofed sources fills the host table
// (500 here), and the monitor that comes after it is still in the hosts and
// the graph, with its frames, beside the pump and the broker; the tables
// stay within their bounds, the number of hosts is estimated and said to
// be, and two runs give the same hosts and graph (the map's order does not
// choose who goes). First come, first kept left the monitor out.
func TestHostTableFlood(t *testing.T) {
	path := floodThenDevice(t)
	an, r := analyseSmall(t, path, 500)
	if len(an.hosts) > 500 || len(an.pairs) > 2000 {
		t.Fatalf("tables past their bounds: %d hosts, %d conversations", len(an.hosts), len(an.pairs))
	}
	hosts := map[string]Host{}
	for _, h := range r.Hosts {
		hosts[h.Addr] = h
	}
	// The monitor's connection: 3 handshake frames, CONNECT, 5 PUBLISH, 3 closing.
	if h, ok := hosts["10.9.9.8"]; !ok || h.Frames != 12 || h.Role != "publisher" {
		t.Errorf("the monitor that came after the flood: %+v (in the table: %v), want 12 frames as a publisher", h, ok)
	}
	if h := hosts["10.9.9.9"]; h.Role != "publisher" || h.Frames != 6 {
		t.Errorf("the pump: %+v, want 6 frames as a publisher", h)
	}
	if h := hosts["10.0.0.1"]; h.Role != "broker" {
		t.Errorf("the broker: %+v", h)
	}
	edges := map[string]bool{}
	for _, e := range r.Graph.Edges {
		edges[e.A+" "+e.B] = true
	}
	if !edges["10.0.0.1 10.9.9.8"] || !edges["10.0.0.1 10.9.9.9"] {
		t.Errorf("the graph lacks the devices' conversations with the broker: %v", r.Graph.Edges[:min(5, len(r.Graph.Edges))])
	}
	o := r.Overview
	if !o.HostsEstimated || math.Abs(float64(o.Hosts)-20003) > 0.03*20003 || o.HostsEvicted+o.HostsRefused == 0 || len(r.Warnings) == 0 {
		t.Errorf("overview: %d hosts (estimated %v), %d evicted, %d refused, warnings %q; want about 20,003, estimated",
			o.Hosts, o.HostsEstimated, o.HostsEvicted, o.HostsRefused, r.Warnings)
	}
	_, r2 := analyseSmall(t, path, 500)
	j1, _ := json.Marshal([]any{r.Hosts, r.Graph, r.Overview})
	j2, _ := json.Marshal([]any{r2.Hosts, r2.Graph, r2.Overview})
	if string(j1) != string(j2) {
		t.Error("two runs kept different hosts or conversations")
	}
	// Under the bound nothing is estimated.
	_, r3 := analyseSmall(t, path, 100000)
	if r3.Overview.HostsEstimated || r3.Overview.Hosts != 20003 || len(r3.Warnings) != 0 {
		t.Errorf("with room for every host: %d hosts, estimated %v, warnings %q", r3.Overview.Hosts, r3.Overview.HostsEstimated, r3.Warnings)
	}
}

// TestNthLowest checks the selection against a sort, on sizes and orders
// that catch an off-by-one at either end.
func TestNthLowest(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{1, 2, 3, 5, 8, 100, 1001} {
		for _, order := range []string{"random", "ascending", "descending", "repeats"} {
			xs := make([]uint64, n)
			for i := range xs {
				xs[i] = rng.Uint64()
				if order == "repeats" {
					xs[i] %= 7
				}
			}
			switch order {
			case "ascending":
				slices.Sort(xs)
			case "descending":
				slices.Sort(xs)
				slices.Reverse(xs)
			}
			sorted := slices.Sorted(slices.Values(xs))
			for _, i := range []int{0, n / 8, n / 2, n - 1} {
				ys := slices.Clone(xs)
				if got := nthLowest(ys, i); got != sorted[i] {
					t.Fatalf("n %d %s, index %d: %d, want %d", n, order, i, got, sorted[i])
				}
				for _, y := range ys[:i] {
					if y > sorted[i] {
						t.Fatalf("n %d %s, index %d: %d before it", n, order, i, y)
					}
				}
			}
		}
	}
}

// TestAdmission: a newcomer lighter than the floor comes in once what it
// brought on its asks outweighs the floor, and says what that was; asks
// that only look (remember false) bring nothing, nor does a weightless one;
// the floor halves after enough refused asks.
func TestAdmission(t *testing.T) {
	d := admission{floor: 5}
	in := func(h, w uint64, remember bool) bool {
		ok, _ := d.admit(h, w, remember, 1000)
		return ok
	}
	h := addrHash(netip.MustParseAddr("192.0.2.7"))
	if !in(h, 6, true) {
		t.Error("a newcomer heavier than the floor was refused")
	}
	for i, want := range []bool{false, false} {
		if got := in(h, 2, true); got != want {
			t.Errorf("light newcomer, ask %d (2 frames each): %v, want %v", i+1, got, want)
		}
	}
	if ok, prior := d.admit(h, 2, true, 1000); !ok || prior != 4 {
		t.Errorf("third ask: let in %v, brought before %d; want true, 4", ok, prior)
	}
	h2 := addrHash(netip.MustParseAddr("192.0.2.8"))
	for i := range 5 {
		if in(h2, 3, false) {
			t.Errorf("a look that brings nothing let a light newcomer in (ask %d)", i+1)
		}
		if in(h2, 0, true) {
			t.Errorf("a weightless newcomer was let in (ask %d)", i+1)
		}
	}
	d = admission{floor: 64}
	for range 10 {
		d.admit(addrHash(netip.MustParseAddr("192.0.2.9")), 1, true, 10)
	}
	if d.floor != 32 {
		t.Errorf("after 10 refused asks (halving every 10): floor %d, want 32", d.floor)
	}
}

// colliding is an address other than ip whose place in an admission's
// memory is ip's set (an attacker can find one: the hash is fixed).
func colliding(ip netip.Addr, skip int) netip.Addr {
	want := (addrHash(ip) | 1) >> 1 % seenSets
	for i := 0; ; i++ {
		x := ipN(198, i)
		if (addrHash(x)|1)>>1%seenSets == want && x != ip {
			if skip == 0 {
				return x
			}
			skip--
		}
	}
}

// ask is what connHosts does for one host: a connection of w frames.
func ask(a *Analyzer, ip netip.Addr, w int64) bool {
	h := a.host(ip, w, true)
	if h != nil {
		h.traffic(w, w*60, 0, netip.MustParseAddr("10.0.0.1"))
	}
	return h != nil
}

func ipN(prefix byte, i int) netip.Addr {
	return netip.AddrFrom4([4]byte{prefix, byte(i >> 16), byte(i >> 8), byte(i)})
}

// fillHosts makes n hosts of w frames each from 172.x.
func fillHosts(a *Analyzer, n int, w int64) {
	for i := range n {
		ask(a, ipN(172, i), w)
	}
}

// TestAdmissionUnderCollision (from a second review): one packet from an
// address that shares a device's place in the memory, sent between its
// connections, erased what the device had brought, and kept it out for
// ever; so did a random flood of light sources. Now it comes in.
func TestAdmissionUnderCollision(t *testing.T) {
	a := New(Options{MaxHosts: 1000})
	fillHosts(a, 2000, 10)
	dev := netip.MustParseAddr("10.9.9.9")
	xs := []netip.Addr{colliding(dev, 0), colliding(dev, 1), colliding(dev, 2), colliding(dev, 3)}
	in := -1
	for c := range 100 {
		if ask(a, dev, 9) {
			in = c
			break
		}
		for _, x := range xs {
			ask(a, x, 1) // the attacker's packets, one from each colliding address
		}
	}
	if in < 0 || in > 3 {
		t.Errorf("a device of 9 frames a connection (floor %d), 4 colliding packets between its connections: let in at connection %d", a.hostDoor.floor, in)
	}
	b := New(Options{MaxHosts: 1000})
	fillHosts(b, 2000, 20)
	src, in := 0, -1
	for c := range 30 {
		if ask(b, dev, 9) {
			in = c
			break
		}
		for range 100000 {
			ask(b, ipN(100, src), 1)
			src++
		}
	}
	if in < 0 || in > 3 {
		t.Errorf("a device of 9 frames a connection (floor 20), 100,000 light sources between its connections: let in at connection %d", in)
	}
}

// TestFloorComesDown (from a second review): after a flood of heavy hosts
// has gone, a lighter device is not kept waiting for as long as the flood's
// floor stood: the floor halves as asks are refused.
func TestFloorComesDown(t *testing.T) {
	a := New(Options{MaxHosts: 1000})
	fillHosts(a, 2000, 100)
	for i := range 1000 { // ordinary light traffic after the flood
		ask(a, ipN(100, i), 2)
	}
	if a.hostDoor.floor >= 100 {
		t.Errorf("floor %d after 1,000 refused asks, want it below the flood's 100", a.hostDoor.floor)
	}
}

// TestAdmittedIsNotFirstToGo (from a second review): a device let in on
// what it brought over several asks kept only its last ask's weight, and,
// the newest among equals, was the first to go at the next eviction, again
// and again. Here 200 newcomers of 50 frames come each minute and the
// device brings 9 a minute: let go while it weighs less than they do, it
// must come back and, once heavier, stay (it was let go 110 times, and
// ended with 18 frames).
func TestAdmittedIsNotFirstToGo(t *testing.T) {
	a := New(Options{MaxHosts: 1000})
	dev := netip.MustParseAddr("10.9.9.9")
	src, outs, was := 0, 0, false
	for range 600 {
		for range 200 {
			ask(a, ipN(100, src), 50)
			src++
		}
		ask(a, dev, 9)
		is := a.hosts[dev] != nil
		if !is && was {
			outs++
		}
		was = is
	}
	if h := a.hosts[dev]; outs > 8 || h == nil || h.h.Frames < 9*500 {
		t.Errorf("a device of 9 frames a minute among newcomers of 50: let go %d times; at the end: %+v", outs, h)
	}
}

// TestCSVRolesPastTheBound (from a second review): dataset rows carry no
// frames of their own, so the MQTT roles and client IDs that waited for a
// refused host were dropped when its connection's rows let it in.
func TestCSVRolesPastTheBound(t *testing.T) {
	const path = "../../testdata/icu-dataset/spoofed-then-devices.csv"
	_, all := analyseSmall(t, path, 100000)
	_, r := analyseSmall(t, path, 8)
	want := hostsByAddr(all)
	n, ids := 0, 0
	for _, h := range r.Hosts {
		if !strings.HasPrefix(h.Addr, "10.") {
			continue
		}
		n++
		ids += len(h.ClientIDs)
		if w := want[h.Addr]; h.Role != w.Role || !slices.Equal(h.ClientIDs, w.ClientIDs) {
			t.Errorf("device %s past the bound: role %q, client IDs %v; with room for all: %q, %v", h.Addr, h.Role, h.ClientIDs, w.Role, w.ClientIDs)
		}
	}
	if n < 4 || ids == 0 {
		t.Fatalf("%d devices of the excerpt among the hosts, %d client IDs: the case is not the one meant", n, ids)
	}
}

// TestHostTableFloodState: the state a live window stores (State, through
// JSON) merged twice into an empty analyzer keeps the estimate (the union
// of the same hosts, not their sum) and the devices.
func TestHostTableFloodState(t *testing.T) {
	an, r := analyseSmall(t, floodThenDevice(t), 500)
	b, err := json.Marshal(an.State())
	if err != nil {
		t.Fatal(err)
	}
	into := New(Options{MaxHosts: 500})
	for range 2 {
		var st State
		if err := json.Unmarshal(b, &st); err != nil {
			t.Fatal(err)
		}
		into.Merge(&st)
	}
	m := into.Result(into.OwnSummary(), nil)
	if !m.Overview.HostsEstimated || math.Abs(float64(m.Overview.Hosts-r.Overview.Hosts)) > 0.01*float64(r.Overview.Hosts) {
		t.Errorf("merged twice: %d hosts (estimated %v), one run %d", m.Overview.Hosts, m.Overview.HostsEstimated, r.Overview.Hosts)
	}
	found := false
	for _, h := range m.Hosts {
		found = found || h.Addr == "10.9.9.8" && h.Frames == 24
	}
	if !found {
		t.Error("the monitor (12 frames a window) is not in the merged hosts with 24")
	}
}

// TestTopicTableFlood: a client publishing once to each of 2,000 topics
// fills the topic table (100 here); a pump's topic published after it is
// still listed (from its second PUBLISH: the first asked at the door), the
// topics listed and the others still add up to every PUBLISH, and the
// number of topics is estimated and said to be. First come, first kept left
// the pump's topic out.
func TestTopicTableFlood(t *testing.T) {
	const sec = int64(1e9)
	c := pcaptest.New(capture.LinkEthernet, 1_750_000_000*sec)
	spam := c.NewConn("10.9.9.66:40000", "10.0.0.1:1883")
	spam.Handshake()
	spam.Send(pcaptest.FromClient, pcaptest.Connect("spam", mqtt.V311))
	for i := range 2000 {
		spam.Send(pcaptest.FromClient, pcaptest.Publish(fmt.Sprintf("ward/%d/bed/spo2", i), "97"))
		c.Tick(sec / 1000)
	}
	pump := c.NewConn("10.9.9.9:40001", "10.0.0.1:1883")
	pump.Handshake()
	pump.Send(pcaptest.FromClient, pcaptest.Connect("pump-1", mqtt.V311))
	for range 5 {
		pump.Send(pcaptest.FromClient, pcaptest.Publish("ward3/pump-1/rate", "12.5"))
		c.Tick(sec)
	}
	path := filepath.Join(t.TempDir(), "topics.pcap")
	if err := os.WriteFile(path, c.Pcap(), 0o600); err != nil {
		t.Fatal(err)
	}
	an, sum := analyseOpts(t, path, Options{MaxTopics: 100})
	r := an.Result(sum, nil)
	if len(an.topics) > 100 {
		t.Fatalf("%d topics held, the table holds 100", len(an.topics))
	}
	var listed, pumpPubs int64
	for _, tp := range r.Topics {
		listed += tp.Publishes
		if tp.Topic == "ward3/pump-1/rate" {
			pumpPubs = tp.Publishes
		}
	}
	if pumpPubs < 4 {
		t.Errorf("the pump's topic after the flood: %d publishes listed, want at least 4 of 5", pumpPubs)
	}
	m := r.MQTT
	if listed+m.OtherTopicPublishes != m.Publishes || m.Publishes != 2005 {
		t.Errorf("publishes: %d listed + %d others, %d in all, want 2,005", listed, m.OtherTopicPublishes, m.Publishes)
	}
	if math.Abs(float64(m.TopicsEstimate)-2001) > 0.03*2001 || len(r.Warnings) == 0 {
		t.Errorf("topics estimated %d, want about 2,001; warnings %q", m.TopicsEstimate, r.Warnings)
	}
}

// The cases below were found by an independent review of the tables'
// first version (weight: an MQTT role, then frames; a newcomer let in at its
// second ask; the oldest first among equals).

func writeCapture(t *testing.T, c *pcaptest.Capture) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "x.pcap")
	if err := os.WriteFile(path, c.Pcap(), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// mqttClients adds n clients from 172.16/16 that connect to 10.0.0.1, each
// publishing publishes times to a topic of its own, and closing or not.
func mqttClients(c *pcaptest.Capture, n, publishes int, close bool) {
	for i := range n {
		k := c.NewConn(fmt.Sprintf("172.16.%d.%d:%d", i/250, 1+i%250, 2000+i), "10.0.0.1:1883")
		k.Handshake()
		k.Send(pcaptest.FromClient, pcaptest.Connect(fmt.Sprintf("bot-%d", i), mqtt.V311))
		for range publishes {
			k.Send(pcaptest.FromClient, pcaptest.Publish(fmt.Sprintf("bot/%d", i), "1"))
		}
		if close {
			k.Close()
		}
		c.Tick(1e6)
	}
}

func hostsByAddr(r *Result) map[string]Host {
	m := map[string]Host{}
	for _, h := range r.Hosts {
		m[h.Addr] = h
	}
	return m
}

// TestEarlyDeviceInConnectStorm: a pump connected before 1,000 clients
// that connect and stay connected (its frames wait in its open connection's
// sums) is not let go as the lightest: it was, and refused when its
// connection closed.
func TestEarlyDeviceInConnectStorm(t *testing.T) {
	const sec = int64(1e9)
	c := pcaptest.New(capture.LinkEthernet, 1_750_000_000*sec)
	dev := c.NewConn("10.9.9.9:40000", "10.0.0.1:1883")
	dev.Handshake()
	dev.Send(pcaptest.FromClient, pcaptest.Connect("pump-1", mqtt.V311))
	dev.Send(pcaptest.FromClient, pcaptest.Publish("ward3/pump-1/rate", "12.5"))
	mqttClients(c, 1000, 0, false)
	for range 300 {
		dev.Send(pcaptest.FromClient, pcaptest.Publish("ward3/pump-1/rate", "12.5"))
		c.Tick(sec / 10)
	}
	dev.Close()
	_, r := analyseSmall(t, writeCapture(t, c), 100)
	if h := hostsByAddr(r)["10.9.9.9"]; h.Frames != 308 || h.Role != "publisher" || !slices.Equal(h.ClientIDs, []string{"pump-1"}) {
		t.Errorf("the pump (308 frames, publisher, pump-1): %+v", h)
	}
}

// TestHeavyHostWithoutMQTT: a 2 MB transfer that is not MQTT, after 1,000
// MQTT sessions, keeps both its hosts and its conversation: an MQTT role
// outweighed any number of frames, and one end let the other go.
func TestHeavyHostWithoutMQTT(t *testing.T) {
	const sec = int64(1e9)
	c := pcaptest.New(capture.LinkEthernet, 1_750_000_000*sec)
	mqttClients(c, 1000, 0, true)
	d := c.NewConn("10.5.5.5:50000", "10.5.5.6:104")
	d.Handshake()
	buf := make([]byte, 1000)
	for range 2000 {
		d.Send(pcaptest.FromClient, buf)
	}
	d.Close()
	_, r := analyseSmall(t, writeCapture(t, c), 100)
	hs := hostsByAddr(r)
	edge := slices.ContainsFunc(r.Graph.Edges, func(e Edge) bool { return e.A == "10.5.5.5" && e.B == "10.5.5.6" })
	if hs["10.5.5.5"].Frames != 2006 || hs["10.5.5.6"].Frames != 2006 || !edge {
		t.Errorf("the transfer: %+v and %+v, in the graph: %v", hs["10.5.5.5"], hs["10.5.5.6"], edge)
	}
}

// TestSpoofedConnects: 5,000 sources that each send one packet carrying a
// CONNECT (no handshake) neither get in as MQTT clients nor let go an HL7
// conversation of 500 frames or the pump; the pump keeps its role and
// client ID. The role weighed more than frames, and the CONNECT's ask and
// the connection's made two asks of one packet.
func TestSpoofedConnects(t *testing.T) {
	const sec = int64(1e9)
	c := pcaptest.New(capture.LinkEthernet, 1_750_000_000*sec)
	d := c.NewConn("10.5.5.5:50000", "10.5.5.6:2575")
	d.Handshake()
	for range 500 {
		d.Send(pcaptest.FromClient, []byte("MSH|^~\\&|..."))
	}
	d.Close()
	pump := c.NewConn("10.9.9.9:40000", "10.0.0.1:1883")
	pump.Handshake()
	pump.Send(pcaptest.FromClient, pcaptest.Connect("pump-1", mqtt.V311))
	for i := range 5000 {
		k := c.NewConn(fmt.Sprintf("172.%d.%d.%d:%d", 16+i/62500, i/250%250, 1+i%250, 2000+i%60000), "10.0.0.1:1883")
		k.Send(pcaptest.FromClient, pcaptest.Connect(fmt.Sprintf("x%d", i), mqtt.V311))
		c.Tick(sec / 1000)
	}
	for range 100 {
		pump.Send(pcaptest.FromClient, pcaptest.Publish("ward3/pump-1/rate", "12.5"))
	}
	pump.Close()
	_, r := analyseSmall(t, writeCapture(t, c), 500)
	hs := hostsByAddr(r)
	if hs["10.5.5.5"].Frames != 506 || hs["10.5.5.6"].Frames != 506 {
		t.Errorf("the HL7 conversation: %+v, %+v", hs["10.5.5.5"], hs["10.5.5.6"])
	}
	if h := hs["10.9.9.9"]; h.Role != "publisher" || !slices.Equal(h.ClientIDs, []string{"pump-1"}) {
		t.Errorf("the pump: %+v", h)
	}
	if hs["10.0.0.1"].Role != "broker" {
		t.Errorf("the broker: %+v", hs["10.0.0.1"])
	}
}

// TestPublisherAfterEviction: a topic remembers the last address it marked
// a publisher; once that host was let go and made again, it is marked again.
func TestPublisherAfterEviction(t *testing.T) {
	const sec = int64(1e9)
	c := pcaptest.New(capture.LinkEthernet, 1_750_000_000*sec)
	d := c.NewConn("10.9.9.9:40000", "10.0.0.1:1883")
	d.Handshake()
	d.Send(pcaptest.FromClient, pcaptest.Connect("pump-1", mqtt.V311))
	d.Send(pcaptest.FromClient, pcaptest.Publish("ward3/pump-1/rate", "12.5"))
	d.Close()
	mqttClients(c, 1000, 3, true)
	d = c.NewConn("10.9.9.9:40001", "10.0.0.1:1883")
	d.Handshake()
	d.Send(pcaptest.FromClient, pcaptest.Connect("pump-1", mqtt.V311))
	for range 50 {
		d.Send(pcaptest.FromClient, pcaptest.Publish("ward3/pump-1/rate", "12.5"))
	}
	d.Close()
	_, r := analyseSmall(t, writeCapture(t, c), 100)
	if h := hostsByAddr(r)["10.9.9.9"]; h.Role != "publisher" {
		t.Errorf("the pump: %+v, want a publisher", h)
	}
}

// TestHostileSketch: a stored state's sketch claiming absurd counts gives
// a large number, not a negative or wrapped one.
func TestHostileSketch(t *testing.T) {
	for _, v := range []byte{40, 51, 255} {
		reg := make([]byte, 1<<14)
		for i := range reg {
			reg[i] = v
		}
		a := New(Options{})
		a.Merge(&State{Version: StateVersion, HostsOver: 1, HostSketch: reg})
		r := a.Result(&pipeline.Summary{}, nil)
		if n := r.Overview.Hosts; n <= 0 || n > 1<<40 || !r.Overview.HostsEstimated {
			t.Errorf("registers all %d: %d hosts (estimated %v)", v, n, r.Overview.HostsEstimated)
		}
	}
}

// TestLateDeviceKeepsItsRole: a monitor that connects once the host table
// is full of clients heavier than its first packets is refused at its
// CONNECT and SUBSCRIBE and let in later; its role and client ID wait in
// its connection's sums until then.
func TestLateDeviceKeepsItsRole(t *testing.T) {
	const sec = int64(1e9)
	c := pcaptest.New(capture.LinkEthernet, 1_750_000_000*sec)
	mqttClients(c, 1000, 3, true)
	m := c.NewConn("10.9.9.7:40000", "10.0.0.1:1883")
	m.Handshake()
	m.Send(pcaptest.FromClient, pcaptest.Connect("monitor-9", mqtt.V311))
	m.Send(pcaptest.FromClient, []byte{0x82, 12, 0, 1, 0, 7, 'w', 'a', 'r', 'd', '3', '/', '#', 0}) // SUBSCRIBE ward3/#
	for range 50 {
		m.Send(pcaptest.FromClient, pcaptest.Publish("ward3/monitor-9/hr", "72"))
		c.Tick(sec / 10)
	}
	m.Close()
	an, r := analyseSmall(t, writeCapture(t, c), 100)
	if h := hostsByAddr(r)["10.9.9.7"]; h.Role != "publisher+subscriber" || !slices.Equal(h.ClientIDs, []string{"monitor-9"}) || h.Frames != 58 {
		t.Errorf("the monitor: %+v, want 58 frames, publisher+subscriber, monitor-9", h)
	}
	if an.hostsRefused == 0 {
		t.Error("nothing was refused: the case is not the one meant")
	}
}

// TestSubscriptionsNotCrowdedOut: a client that subscribes to more single
// topics than the table holds (enumerating them; 20 here, 10,000 by
// default) does not hide a '#' subscribed after it from the subscribers of
// the topics it matches; the filters refused are counted and said to be,
// and a State carries both through a merge (a hub's).
func TestSubscriptionsNotCrowdedOut(t *testing.T) {
	const sec = int64(1e9)
	sub := func(id uint16, filters ...string) []byte {
		p := &mqtt.Packet{Type: mqtt.SUBSCRIBE, PacketID: id}
		for _, f := range filters {
			p.Filters = append(p.Filters, mqtt.Subscription{Filter: []byte(f)})
		}
		return mqtt.Append(nil, p)
	}
	c := pcaptest.New(capture.LinkEthernet, 1_750_000_000*sec)
	enum := c.NewConn("10.9.9.7:40000", "10.0.0.1:1883")
	enum.Handshake()
	enum.Send(pcaptest.FromClient, pcaptest.Connect("enumerator", mqtt.V311))
	for i := range 30 {
		enum.Send(pcaptest.FromClient, sub(uint16(i+1), fmt.Sprintf("ward%d/bed/ecg", i)))
	}
	snoop := c.NewConn("10.9.9.8:40000", "10.0.0.1:1883")
	snoop.Handshake()
	snoop.Send(pcaptest.FromClient, pcaptest.Connect("snooper", mqtt.V311))
	snoop.Send(pcaptest.FromClient, sub(1, "#"))
	pump := c.NewConn("10.9.9.9:40000", "10.0.0.1:1883")
	pump.Handshake()
	pump.Send(pcaptest.FromClient, pcaptest.Connect("pump-1", mqtt.V311))
	pump.Send(pcaptest.FromClient, pcaptest.Publish("ward3/pump-1/rate", "12.5"))
	pump.Send(pcaptest.FromClient, pcaptest.Publish("ward4/bed/ecg", "72"))
	path := filepath.Join(t.TempDir(), "enum.pcap")
	if err := os.WriteFile(path, c.Pcap(), 0o600); err != nil {
		t.Fatal(err)
	}
	an, sum := analyseOpts(t, path, Options{MaxTopics: 20})
	check := func(what string, an *Analyzer, r *Result) {
		t.Helper()
		subs := map[string][]string{}
		for _, tp := range r.Topics {
			subs[tp.Topic] = tp.Subscribers
		}
		if got := subs["ward3/pump-1/rate"]; !slices.Equal(got, []string{"snooper"}) {
			t.Errorf("%s: subscribers of ward3/pump-1/rate %v, want [snooper]: the '#' after the enumeration was crowded out", what, got)
		}
		if got := subs["ward4/bed/ecg"]; !slices.Equal(got, []string{"enumerator", "snooper"}) {
			t.Errorf("%s: subscribers of ward4/bed/ecg %v, want [enumerator snooper]", what, got)
		}
		if len(an.subs) > 20 || len(an.wildSubs) > 20 || an.subsRefused != 10 {
			t.Errorf("%s: %d filters without wildcards and %d with kept, %d refused; want at most 20 of each, 10 refused", what, len(an.subs), len(an.wildSubs), an.subsRefused)
		}
		if !slices.ContainsFunc(r.Warnings, func(w string) bool { return strings.Contains(w, "10 subscriptions to others were not kept") }) {
			t.Errorf("%s: warnings %q", what, r.Warnings)
		}
	}
	check("one run", an, an.Result(sum, nil))
	merged := New(Options{MaxTopics: 20})
	merged.Merge(an.State())
	check("merged", merged, merged.Result(merged.OwnSummary(), nil))
}
