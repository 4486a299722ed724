package detect

import (
	"fmt"
	"hash/maphash"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/iomtguard/iomtguard/internal/mqtt"
	"github.com/iomtguard/iomtguard/internal/pipeline"
	"github.com/iomtguard/iomtguard/internal/policy"
	"github.com/iomtguard/iomtguard/internal/tcpstream"
)

// stormFeed hands the connection-storm detector accepted sessions directly.
type stormFeed struct {
	c   *connectFlood
	num int
}

func (f *stormFeed) session(src netip.Addr, id string, start, last int64, reason tcpstream.CloseReason) {
	f.num++
	s := &pipeline.Session{ClientID: id, ClientDir: tcpstream.FromA}
	conn := &tcpstream.Conn{A: netip.AddrPortFrom(src, 40000), B: netip.MustParseAddrPort("10.0.0.1:1883"), Start: start, Last: last, Reason: reason}
	f.c.OnFrame(&pipeline.Frame{Num: f.num, TS: last})
	f.c.OnMQTT(&pipeline.MQTT{Frame: &pipeline.Frame{Num: f.num, TS: start}, Conn: conn, Session: s, Pkt: &mqtt.Packet{Type: mqtt.CONNACK}})
	f.c.OnFlow(&pipeline.Flow{Kind: pipeline.FlowClosed, Conn: conn, Session: s})
}

// TestStormKeysNotCrowdedOut: 100,000 clients, each from its own address
// with its own client ID, connect once for a second (more than the
// addresses and IDs judged one by one), and a client flaps 20 times from
// one address, its sessions ending before theirs (first case) or after
// them (second), and in the first case reported last (closed by the idle
// timeout). It is named, by address and client ID, in both. The first 100,000
// addresses in time order (the code before 2026-12-03) missed it in the
// second case; the first 100,000 reported (a later version of that day), in
// the first.
func TestStormKeysNotCrowdedOut(t *testing.T) {
	const sec = int64(1e9)
	t0 := int64(1_750_000_000) * sec
	for _, flapFirst := range []bool{true, false} {
		t.Run(fmt.Sprintf("flapper first in time %v", flapFirst), func(t *testing.T) {
			f := &stormFeed{c: newConnectFlood(&Env{Policy: &policy.Policy{}, spec: &connectFloodSpec}).(*connectFlood)}
			flap := func(at int64) {
				for i := range 20 {
					st := at + int64(i)*sec
					f.session(netip.MustParseAddr("10.9.9.9"), "flapper", st, st+sec/2, tcpstream.ReasonIdle)
				}
			}
			crowd := func(at int64) {
				for i := range 100000 {
					a := netip.AddrFrom4([4]byte{10, byte(1 + i>>16), byte(i >> 8), byte(i)})
					st := at + int64(i)*3e6
					f.session(a, fmt.Sprintf("dev-%d", i), st, st+sec, tcpstream.ReasonFIN)
				}
			}
			if flapFirst {
				crowd(t0 + 100*sec)
				flap(t0)
			} else {
				crowd(t0)
				flap(t0 + 400*sec)
			}
			fs := f.c.Findings(Models{})
			if len(fs) != 1 {
				t.Fatalf("%d findings", len(fs))
			}
			ev := fs[0].Evidence
			if !slices.Contains(ev.Sources, "10.9.9.9") || !slices.Contains(ev.ClientIDs, "flapper") || ev.Counts["sessions"] != 100020 {
				t.Errorf("the flapper was not named: sources %v, client IDs %v, counts %v", ev.Sources, ev.ClientIDs, ev.Counts)
			}
			// Past half the table, a client seen once takes no place.
			if len(f.c.srcs.names) > maxKeys/2+1 || len(f.c.ids.names) > maxKeys/2+1 {
				t.Errorf("%d addresses and %d client IDs judged one by one: past half the table, the clients seen once need no name", len(f.c.srcs.names), len(f.c.ids.names))
			}
		})
	}
}

// TestStormKeyTableBounded: past maxKeys addresses that come back, every
// session of the others is counted (10 addresses, 2 sessions each), and
// said to be judged with all sources only.
func TestStormKeyTableBounded(t *testing.T) {
	const sec = int64(1e9)
	t0 := int64(1_750_000_000) * sec
	f := &stormFeed{c: newConnectFlood(&Env{Policy: &policy.Policy{}, spec: &connectFloodSpec}).(*connectFlood)}
	for i := range maxKeys + 10 {
		a := netip.AddrFrom4([4]byte{10, byte(1 + i>>16), byte(i >> 8), byte(i)})
		for round := range 2 {
			st := t0 + int64(i)*3e6 + int64(round)*sec
			f.session(a, "", st, st+sec/2, tcpstream.ReasonFIN)
		}
	}
	if len(f.c.srcs.names) != maxKeys || f.c.srcs.refused != 20 {
		t.Errorf("%d addresses kept, %d sessions refused; want %d and 20", len(f.c.srcs.names), f.c.srcs.refused, maxKeys)
	}
	fs := f.c.Findings(Models{})
	if len(fs) != 1 || fs[0].Evidence.Counts["sessions_not_judged_by_address"] != 20 ||
		!slices.Contains(fs[0].Evidence.Notes, "more than 100000 addresses came back: 20 sessions of the others were judged with all sources only, not by their own address") {
		t.Fatalf("findings %+v", fs)
	}
}

// TestStormEndsKeepNewest: at the bound on the session ends kept (4 Mi; 100
// here) the older half goes, counted and said to be, so that a detector that
// lives as long as a watch still judges what happens now: a client that
// flaps after a day of sessions is found. Keeping the first ends found
// nothing past the bound.
func TestStormEndsKeepNewest(t *testing.T) {
	const sec = int64(1e9)
	t0 := int64(1_750_000_000) * sec
	old := maxEnds
	maxEnds = 100
	t.Cleanup(func() { maxEnds = old })
	f := &stormFeed{c: newConnectFlood(&Env{Policy: &policy.Policy{}, spec: &connectFloodSpec}).(*connectFlood)}
	for i := range 200 { // a day of devices' sessions, each an hour or so
		a := netip.AddrFrom4([4]byte{10, 0, 0, byte(1 + i%20)})
		st := t0 + int64(i)*400*sec
		f.session(a, fmt.Sprintf("dev-%d", i%20), st, st+3000*sec, tcpstream.ReasonFIN)
	}
	for i := range 30 {
		st := t0 + 90000*sec + int64(i)*sec
		f.session(netip.MustParseAddr("10.9.9.9"), "flapper", st, st+sec/2, tcpstream.ReasonFIN)
	}
	fs := f.c.Findings(Models{})
	if len(fs) != 1 {
		t.Fatalf("%d findings: the flapper after the bound was not judged", len(fs))
	}
	ev := fs[0].Evidence
	if !slices.Contains(ev.Sources, "10.9.9.9") || ev.Counts["sessions"]+ev.Counts["sessions_not_kept"] != 230 || ev.Counts["sessions_not_kept"] == 0 ||
		!slices.ContainsFunc(ev.Notes, func(s string) bool { return strings.Contains(s, "were let go to keep the") }) {
		t.Errorf("evidence %+v", ev)
	}
	if len(f.c.ends) > maxEnds {
		t.Errorf("%d ends kept, bound %d", len(f.c.ends), maxEnds)
	}
}

// TestFirstSightInTurn: keys that come back in turn are let in, even when
// several fall in one set. 55,000 clients reconnect in turn, 20 times
// each: past half the table (50,000) each must be named at its second
// session. A direct-mapped table missed thousands of them, and two keys of
// one slot coming in turn were never named at all.
func TestFirstSightInTurn(t *testing.T) {
	var k keyTable[int]
	seed := maphash.MakeSeed()
	for range 20 {
		for i := range 55000 {
			k.add(maphash.Comparable(seed, i)|1, i, 0)
		}
	}
	if len(k.names) != 55000 {
		t.Errorf("%d of 55,000 clients named", len(k.names))
	}
	// Two keys of one set, and then five, coming in turn.
	var f firstSight[int, struct{}]
	for _, n := range []int{2, 5} {
		found := map[int]bool{}
		for range 40 {
			for i := range n {
				if _, again := f.again(uint64(7)<<32, 1000*n+i, struct{}{}, nil); again {
					found[1000*n+i] = true
				}
			}
		}
		if len(found) != n {
			t.Errorf("%d keys of one set in turn: %d seen again", n, len(found))
		}
	}
}

// TestStormThresholdZero: a threshold of 0 (the policy allows it) does not
// turn a key without short sessions into a storm at time 0 that wiped the
// finding's span (and the finding with it).
func TestStormThresholdZero(t *testing.T) {
	const sec = int64(1e9)
	t0 := int64(1_750_000_000) * sec
	f := &stormFeed{c: newConnectFlood(&Env{Policy: &policy.Policy{}, spec: &connectFloodSpec}).(*connectFlood)}
	f.c.flapping, f.c.perSrc = 0, 0
	for i := range 200 {
		st := t0 + int64(i)*sec/10
		f.session(netip.MustParseAddr("10.9.9.9"), "flapper", st, st+sec/2, tcpstream.ReasonFIN)
	}
	f.session(netip.MustParseAddr("10.0.0.5"), "pump", t0, t0+3600*sec, tcpstream.ReasonFIN)
	fs := f.c.Findings(Models{})
	if len(fs) != 1 || fs[0].First.UnixNano() != t0+sec/2 {
		t.Fatalf("findings %+v", fs)
	}
	for _, n := range fs[0].Evidence.Notes {
		if strings.Contains(n, "pump") || strings.Contains(n, " 0 ") {
			t.Errorf("note %q", n)
		}
	}
}

// TestStormKeysSwept: a full table of addresses and client IDs that came
// back lets go of those that cannot storm and are quiet, so that a client
// flapping after them is named by its address and client ID. Before, any
// 100,000 that came back over a watch's whole run filled the tables for
// good. A key that stormed, or whose sessions are recent, stays.
func TestStormKeysSwept(t *testing.T) {
	const sec = int64(1e9)
	t0 := int64(1_750_000_000) * sec
	for _, quiet := range []bool{true, false} {
		t.Run(fmt.Sprintf("quiet %v", quiet), func(t *testing.T) {
			f := &stormFeed{c: newConnectFlood(&Env{Policy: &policy.Policy{}, spec: &connectFloodSpec}).(*connectFlood)}
			flap := func(a, id string, at int64) {
				for i := range 20 {
					st := at + int64(i)*sec
					f.session(netip.MustParseAddr(a), id, st, st+sec/2, tcpstream.ReasonFIN)
				}
			}
			at, most := t0, 0
			for i := range 120000 {
				if i == 60000 {
					// in the middle of the table: the sweep moves it
					flap("10.8.8.8", "early-flapper", at)
					at += 60 * sec
				}
				a := netip.AddrFrom4([4]byte{10, byte(1 + i>>16), byte(i >> 8), byte(i)})
				for range 2 {
					at += sec / 1000
					f.session(a, fmt.Sprintf("dev-%d", i), at, at+sec, tcpstream.ReasonFIN)
				}
				most = max(most, len(f.c.srcs.names), len(f.c.ids.names))
			}
			if quiet {
				at += keyQuiet + 60*sec
			}
			flap("10.9.9.9", "flapper", at)
			most = max(most, len(f.c.srcs.names), len(f.c.ids.names))
			fs := f.c.Findings(Models{})
			if len(fs) != 1 {
				t.Fatalf("%d findings", len(fs))
			}
			ev := fs[0].Evidence
			for _, want := range []string{"10.8.8.8", "10.9.9.9"} {
				if named := slices.Contains(ev.Sources, want); named != (quiet || want == "10.8.8.8") {
					t.Errorf("source %s named %v: sources %v", want, named, ev.Sources)
				}
			}
			for _, want := range []string{"early-flapper", "flapper"} {
				if named := slices.Contains(ev.ClientIDs, want); named != (quiet || want == "early-flapper") {
					t.Errorf("client ID %s named %v: client IDs %v", want, named, ev.ClientIDs)
				}
			}
			if most > maxKeys {
				t.Errorf("%d keys held, at most %d", most, maxKeys)
			}
		})
	}
}

// TestStormKeyBackAfterSweep: a key let go by a sweep whose storm's last
// session is reported after it (closed late, by the connection table) is
// let in again at that session, past half the table, and judged with its
// kept sessions. Before, it needed a second session and the storm was lost
// (an independent review).
func TestStormKeyBackAfterSweep(t *testing.T) {
	const sec = int64(1e9)
	t0 := int64(1_750_000_000) * sec
	f := &stormFeed{c: newConnectFlood(&Env{Policy: &policy.Policy{}, spec: &connectFloodSpec}).(*connectFlood)}
	x := netip.MustParseAddr("10.9.9.9")
	for i := range 14 {
		st := t0 + int64(i)*sec
		f.session(x, "flapper", st, st+sec/2, tcpstream.ReasonFIN)
	}
	crowd := func(from, n int, at int64) {
		for i := from; i < from+n; i++ {
			a := netip.AddrFrom4([4]byte{10, byte(1 + i>>16), byte(i >> 8), byte(i)})
			for range 2 {
				at += sec / 1000
				f.session(a, fmt.Sprintf("dev-%d", i), at, at+sec, tcpstream.ReasonFIN)
			}
		}
	}
	crowd(0, 45000, t0+20*sec)
	crowd(45000, 60000, t0+20*60*sec)
	if f.c.srcs.gate.sweeps == 0 {
		t.Fatal("no sweep: the test no longer tests what it says")
	}
	st := t0 + 14*sec
	f.session(x, "flapper", st, st+sec/2, tcpstream.ReasonEvicted)
	fs := f.c.Findings(Models{})
	if len(fs) != 1 || !slices.Contains(fs[0].Evidence.Sources, "10.9.9.9") || !slices.Contains(fs[0].Evidence.ClientIDs, "flapper") {
		var ev Evidence
		if len(fs) > 0 {
			ev = fs[0].Evidence
		}
		t.Errorf("the flapper whose 15th session came after the sweep was not named: sources %v, client IDs %v", ev.Sources, ev.ClientIDs)
	}
}

// TestStormKeysSweptPerMinute: a full table lets go of keys with min clean
// short sessions or more kept, when no minute holds min of them: 110,000
// devices that reconnect every five minutes (min is 3 here, to keep the
// test short) are no storm, and a client flapping after them is named by
// its address and client ID. Counting a key's sessions over all it kept
// held such devices for good. A client that had min within one minute
// among them, one of them reported late, stays named.
func TestStormKeysSweptPerMinute(t *testing.T) {
	const sec = int64(1e9)
	t0 := int64(1_750_000_000) * sec
	f := &stormFeed{c: newConnectFlood(&Env{Policy: &policy.Policy{}, spec: &connectFloodSpec}).(*connectFlood)}
	f.c.perSrc, f.c.flapping = 3, 3
	flap := func(a, id string, at int64, n int) {
		for i := range n {
			st := at + int64(i)*sec
			f.session(netip.MustParseAddr(a), id, st, st+sec/2, tcpstream.ReasonFIN)
		}
	}
	at := t0
	for round := range 3 {
		at = t0 + int64(round)*300*sec
		if round == 1 {
			// exactly min short sessions, the third within the minute
			// reported after a long one 100 s later (closed late, by the
			// idle timeout)
			flap("10.8.8.8", "early-flapper", at, 2)
			f.session(netip.MustParseAddr("10.8.8.8"), "early-flapper", at+100*sec, at+130*sec, tcpstream.ReasonFIN)
			flap("10.8.8.8", "early-flapper", at+2*sec, 1)
		}
		for i := range 110000 {
			a := netip.AddrFrom4([4]byte{10, byte(1 + i>>16), byte(i >> 8), byte(i)})
			at += 2 * sec / 1000
			f.session(a, fmt.Sprintf("dev-%d", i), at, at+sec, tcpstream.ReasonFIN)
		}
	}
	if len(f.c.srcs.names) != maxKeys || len(f.c.ids.names) != maxKeys {
		t.Fatalf("%d addresses and %d client IDs held: the tables are not full, the test no longer tests what it says", len(f.c.srcs.names), len(f.c.ids.names))
	}
	flap("10.9.9.9", "flapper", at+keyQuiet+60*sec, 5)
	fs := f.c.Findings(Models{})
	if len(fs) != 1 {
		t.Fatalf("%d findings", len(fs))
	}
	ev := fs[0].Evidence
	for _, want := range []string{"10.8.8.8", "10.9.9.9"} {
		if !slices.Contains(ev.Sources, want) {
			t.Errorf("source %s not named: sources %v", want, ev.Sources)
		}
	}
	for _, want := range []string{"early-flapper", "flapper"} {
		if !slices.Contains(ev.ClientIDs, want) {
			t.Errorf("client ID %s not named: client IDs %v", want, ev.ClientIDs)
		}
	}
	if len(ev.Sources) > 2 || len(ev.ClientIDs) > 2 {
		t.Errorf("devices that reconnect every five minutes named: sources %v, client IDs %v", ev.Sources, ev.ClientIDs)
	}
}

// opened is a session accepted and not yet ended.
type opened struct {
	s    *pipeline.Session
	conn *tcpstream.Conn
}

// open hands the detector a session's CONNACK at start.
func (f *stormFeed) open(src netip.Addr, id string, start int64) opened {
	f.num++
	o := opened{&pipeline.Session{ClientID: id, ClientDir: tcpstream.FromA},
		&tcpstream.Conn{A: netip.AddrPortFrom(src, 40000), B: netip.MustParseAddrPort("10.0.0.1:1883"), Start: start, Last: start}}
	f.c.OnFrame(&pipeline.Frame{Num: f.num, TS: start})
	f.c.OnMQTT(&pipeline.MQTT{Frame: &pipeline.Frame{Num: f.num, TS: start}, Conn: o.conn, Session: o.s, Pkt: &mqtt.Packet{Type: mqtt.CONNACK}})
	return o
}

// end ends an opened session, its last packet at last, reported at the
// detector's latest frame.
func (f *stormFeed) end(o opened, last int64, reason tcpstream.CloseReason) {
	o.conn.Last, o.conn.Reason = last, reason
	f.c.OnFlow(&pipeline.Flow{Kind: pipeline.FlowClosed, Conn: o.conn, Session: o.s})
}

// TestStormKeyOpenSession: a client with 14 short sessions within a minute
// and one 200 s later (15 in all, no minute holding 15) has its 15th within
// the minute still open: its connection is let go by the connection table
// only after two sweeps of full tables, its end stamped with its last
// packet, in that minute. The key is kept while it has a session open, and
// the storm is named. Judged on its ended sessions alone, it was let go and
// refused at that session (an independent review; the code before the
// per-minute sweep lost the same storm without the session 200 s later).
func TestStormKeyOpenSession(t *testing.T) {
	const sec = int64(1e9)
	t0 := int64(1_750_000_000) * sec
	f := &stormFeed{c: newConnectFlood(&Env{Policy: &policy.Policy{}, spec: &connectFloodSpec}).(*connectFlood)}
	x := netip.MustParseAddr("10.8.8.8")
	for i := range 14 {
		st := t0 + int64(i)*sec
		f.session(x, "early-flapper", st, st+sec/2, tcpstream.ReasonFIN)
	}
	late := f.open(x, "early-flapper", t0+14*sec)
	f.session(x, "early-flapper", t0+200*sec, t0+200*sec+sec/2, tcpstream.ReasonFIN)
	at := t0 + 300*sec
	wave := func(base int) {
		for i := range 110000 {
			a := netip.AddrFrom4([4]byte{byte(10 + base), byte(1 + i>>16), byte(i >> 8), byte(i)})
			for range 2 {
				at += 2 * sec / 1000
				f.session(a, fmt.Sprintf("dev-%d-%d", base, i), at, at+sec, tcpstream.ReasonFIN)
			}
		}
	}
	wave(0)
	at += keyQuiet + 60*sec
	wave(1)
	if f.c.srcs.gate.sweeps < 2 {
		t.Fatalf("%d sweeps: the test no longer tests what it says", f.c.srcs.gate.sweeps)
	}
	f.end(late, t0+14*sec+sec/2, tcpstream.ReasonEvicted)
	fs := f.c.Findings(Models{})
	if len(fs) != 1 || !slices.Contains(fs[0].Evidence.Sources, "10.8.8.8") || !slices.Contains(fs[0].Evidence.ClientIDs, "early-flapper") {
		t.Errorf("the storm whose 15th session ended late was not named: %+v", fs)
	}
}

// TestStormTies: sessions ending at one time are judged together, in
// whatever order they came: storm equals a count of every window of the
// 60 s up to each time (all sessions of its first and last times in it),
// on random sessions with many at one time, with at or without, and 20
// not clean and 10 clean ending at once are no storm. A window that could
// end among the sessions of one time made them a storm of 10 when the
// clean ones came first (an independent review).
func TestStormTies(t *testing.T) {
	const sec = int64(1e9)
	mk := func(ts []int64, clean []bool) []sessEnd {
		ends := make([]sessEnd, len(ts))
		for i := range ts {
			ends[i].t = ts[i]
			if clean[i] {
				ends[i].frame |= endClean
			}
		}
		return ends
	}
	count := func(ends []sessEnd, at []int32) int {
		var pick []sessEnd
		if at == nil {
			pick = ends
		}
		for _, i := range at {
			pick = append(pick, ends[i])
		}
		best := 0
		for _, last := range pick {
			c, all := 0, 0
			for _, e := range pick {
				if e.t <= last.t && last.t-e.t <= 60*sec {
					all++
					if e.is(endClean) {
						c++
					}
				}
			}
			if 2*c >= all {
				best = max(best, c)
			}
		}
		return best
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for trial := range 3000 {
		n := 1 + rng.IntN(40)
		ts, clean := make([]int64, n), make([]bool, n)
		for i := range n {
			ts[i], clean[i] = int64(rng.IntN(8))*int64(10+rng.IntN(3)*25)*sec, rng.IntN(100) < 20+trial%60
		}
		if trial == 0 { // the review's case
			n, ts, clean = 30, make([]int64, 30), make([]bool, 30)
			for i := 20; i < 30; i++ {
				clean[i] = true
			}
		}
		ends := mk(ts, clean)
		rng.Shuffle(n, func(i, j int) { ends[i], ends[j] = ends[j], ends[i] })
		slices.SortFunc(ends, byTime)
		var sub []int32
		if trial%2 == 1 {
			for i := range n {
				if rng.IntN(3) > 0 {
					sub = append(sub, int32(i))
				}
			}
			if sub == nil {
				continue
			}
		}
		if got, want := func() int { n, _, _ := storm(ends, sub); return n }(), count(ends, sub); got != want {
			t.Fatalf("trial %d: storm %d, counted %d (times %v, clean %v, at %v)", trial, got, want, ts, clean, sub)
		}
	}
}
