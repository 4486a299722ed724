package analysis

import (
	"math"
	"net/netip"

	"github.com/iomtguard/iomtguard/internal/stats"
)

// The host, conversation and topic tables are bounded (MaxHosts hosts,
// four times as many conversations, MaxTopics topics). First come, first
// kept let 100,000 spoofed SYN sources fill the host table, and a pump or
// the broker whose connections closed later was then missing from the
// hosts and the graph; 10,000 topics published once kept a ward's topics
// out of the report. Now, when a table is full:
//
//   - A newcomer comes in when its weight (frames for a host, packets for
//     a conversation, PUBLISH packets for a topic), with what it brought on
//     its earlier asks, outweighs the floor: the heaviest entry let go last,
//     halved (not below 1) after every eighth of the table's size in
//     refused asks (a flood's floor does not stay once the flood has gone). A flood of
//     one-frame spoofed sources is refused at the door instead of churning
//     the table; a device that keeps talking comes in. Asks that only look
//     (an MQTT packet whose frames the connection will bring when it is
//     counted) do not add to what a newcomer brought, so the same frames
//     are not weighed twice.
//   - What refused newcomers brought is kept in sets of four (admission):
//     a newcomer takes the place of a lighter one, or else wears the
//     lightest down by its weight. Colliding with a device's place (the
//     hash is fixed, so an attacker can find an address that does) then
//     costs as many frames as the device brought, not one packet, and a
//     flood of light sources wears down its own kind.
//   - Letting one in lets go the eighth that weighs least, the newest
//     first among equals (an incumbent stays). An entry weighs what it
//     counted, what it brought before it came in (credit: a device let in
//     on its asks is not the first to go), and, for a host or a
//     conversation, the frames of its connections still open (their sums
//     wait in conns until the connection closes): a device connected before
//     a storm of clients that stay connected outweighs them.
//
// What weighs more stays exact: the busiest hosts, conversations and topics
// the report shows. A host let go and seen again starts from nothing, and a
// newcomer's counts lack what it brought on the asks it was refused (a
// topic listed with 4 of its 5 publishes: the fifth is counted among the
// others'; a host's MQTT role waits in its connection's sums, connAcc,
// until then). The number of hosts and topics is then estimated
// (stats.Distinct over every one that reached the table) and the report
// says so.

// rankCap keeps a count within a rank's 31 bits.
const rankCap = math.MaxInt32

// weight is a count on the scale of rank>>32.
func weight(n int64) uint64 { return uint64(min(max(n, 0), rankCap)) }

// rank orders entries for eviction, lowest first: weight, then newest
// first. It is unique, for seq is.
func rank(w int64, seq uint32) uint64 { return weight(w)<<32 | uint64(^seq) }

// admission decides whether a newcomer enters a full table.
type admission struct {
	floor   uint64     // the weight of the heaviest entry let go last, halved as asks are refused
	refused int        // refused asks since the floor was last set or halved
	seen    []seenSlot // what refused newcomers brought: seenSets sets of seenWays
}

type seenSlot struct{ h, w uint64 } // h|1, so that 0 is an empty place

const (
	seenSets = 1 << 14
	seenWays = 4
)

// admit reports whether a newcomer of hash h and weight w comes in, and
// what it brought on its earlier asks; when it does not and remember is
// set, w is kept toward its next ask. halveAfter is the number of refused
// asks after which the floor is halved.
func (d *admission) admit(h, w uint64, remember bool, halveAfter int) (bool, uint64) {
	if d.seen == nil {
		d.seen = make([]seenSlot, seenSets*seenWays)
	}
	h |= 1
	set := d.seen[(h>>1)%seenSets*seenWays:][:seenWays]
	var mine, light *seenSlot
	for i := range set {
		switch s := &set[i]; {
		case s.h == h:
			mine = s
		case light == nil || s.w < light.w:
			light = s
		}
	}
	var prior uint64
	if mine != nil {
		prior = mine.w
	}
	if prior+w > d.floor {
		if mine != nil {
			*mine = seenSlot{}
		}
		return true, prior
	}
	if !remember || w == 0 {
		return false, 0
	}
	switch {
	case mine != nil:
		mine.w += w
	case light.w <= w:
		*light = seenSlot{h: h, w: w}
	default:
		light.w -= w
	}
	if d.refused++; d.refused >= halveAfter {
		// Not below 1: a floor of 1 is a flood of one-frame sources,
		// and 0 would let them all in, one eviction an eighth of them.
		d.floor, d.refused = max(d.floor/2, min(d.floor, 1)), 0
	}
	return false, 0
}

// letGo records an eviction whose cut (the highest rank let go) was cut.
func (d *admission) letGo(cut uint64) {
	d.floor, d.refused = cut>>32, 0
}

// addrHash is a hash of an address, the same on every run.
func addrHash(ip netip.Addr) uint64 { return stats.HashAddr(ip, uint64(ip.BitLen())) }

// host is the aggregate of address ip, made when new: nil when the table
// has been full and the newcomer, of w frames, is refused (remember: they
// are frames counted now, not frames its connection will bring later).
func (a *Analyzer) host(ip netip.Addr, w int64, remember bool) *hostAgg {
	if h := a.hosts[ip]; h != nil {
		return h
	}
	hash := addrHash(ip)
	a.hostsSeen.Add(hash)
	var credit uint64
	if len(a.hosts) >= a.opts.MaxHosts {
		ok, prior := a.hostDoor.admit(hash, weight(w), remember, a.opts.MaxHosts/8)
		if !ok {
			if remember && w > 0 {
				a.hostsRefused++
			}
			return nil
		}
		credit = prior
		a.evictHosts()
	}
	a.hostSeq++
	h := &hostAgg{h: Host{Addr: ip.String()}, seq: a.hostSeq, credit: int64(credit)}
	a.hosts[ip] = h
	return h
}

// edge is the conversation between x and y (in either order), made when
// new: nil when the table (4 × MaxHosts) has been full and the newcomer, of
// w packets, is refused. Its addresses are written out by edgeOut, when it
// is reported: a flood from spoofed addresses would make one for every
// address.
func (a *Analyzer) edge(x, y netip.Addr, w int64, remember bool) *edgeAgg {
	k := pair(x, y)
	if e := a.pairs[k]; e != nil {
		return e
	}
	var credit uint64
	if len(a.pairs) >= 4*a.opts.MaxHosts {
		ok, prior := a.edgeDoor.admit(stats.Mix64(addrHash(k.a))^addrHash(k.b), weight(w), remember, a.opts.MaxHosts/2)
		if !ok {
			if remember && w > 0 {
				a.edgesRefused++
			}
			return nil
		}
		credit = prior
		a.evictEdges()
	}
	a.edgeSeq++
	e := &edgeAgg{seq: a.edgeSeq, credit: int64(credit)}
	a.pairs[k] = e
	return e
}

// pair is the key of the conversation between x and y, in either order.
func pair(x, y netip.Addr) pairKey {
	if y.Less(x) {
		return pairKey{y, x}
	}
	return pairKey{x, y}
}

// topic is the aggregate of the topic name, made when new: nil when the
// table has been full and the newcomer, of w PUBLISH packets, is refused
// (the caller counts them in topicOther).
func (a *Analyzer) topic(name []byte, w int64) *topicAgg {
	if t := a.topics[string(name)]; t != nil { // no string made for a lookup
		return t
	}
	hash := stats.Hash(name)
	a.topicsSeen.Add(hash)
	var credit uint64
	if len(a.topics) >= a.opts.MaxTopics {
		ok, prior := a.topicDoor.admit(hash, weight(w), true, a.opts.MaxTopics/8)
		if !ok {
			a.topicsRefused++
			return nil
		}
		credit = prior
		a.evictTopics()
	}
	a.topicSeq++
	s := string(name)
	t := &topicAgg{t: Topic{Topic: s}, publishers: map[string]bool{}, seq: a.topicSeq, credit: int64(credit)}
	a.topics[s] = t
	return t
}

// addClientID counts a client ID: in clientIDs up to MaxHosts of them, and
// past that in an estimate of how many there were (a storm of clients each
// with its own ID made the overview say 100,000).
func (a *Analyzer) addClientID(id []byte) {
	if a.clientIDs[string(id)] {
		return
	}
	if len(a.clientIDs) < a.opts.MaxHosts {
		a.clientIDs[string(id)] = true
		a.clientIDsSeen.Add(stats.Hash(id))
		return
	}
	a.clientIDsSeen.Add(stats.Hash(id))
	a.clientIDsOver++
}

// letGoLightest removes from m the eighth of its entries of lowest rank
// (at least one), calling gone on each first, and returns how many it
// removed and the highest rank among them. rank must give each entry a
// rank of its own, the same both times it is asked.
func letGoLightest[K comparable, V any](m map[K]V, rank func(K, V) uint64, gone func(V)) (int, uint64) {
	ranks := make([]uint64, 0, len(m))
	for k, v := range m {
		ranks = append(ranks, rank(k, v))
	}
	n := max(1, len(ranks)/8)
	cut := nthLowest(ranks, n-1)
	for k, v := range m {
		if rank(k, v) <= cut {
			gone(v)
			delete(m, k)
		}
	}
	return n, cut
}

// evictHosts lets go the eighth of the hosts that weigh least, counting
// the frames of their connections still open.
func (a *Analyzer) evictHosts() {
	open := map[netip.Addr]int64{}
	for c, acc := range a.conns {
		if n := acc.frames[0] + acc.frames[1]; n > 0 {
			open[c.A.Addr()] += n
			open[c.B.Addr()] += n
		}
	}
	n, cut := letGoLightest(a.hosts, func(ip netip.Addr, h *hostAgg) uint64 {
		return rank(h.h.Frames+h.credit+open[ip], h.seq)
	}, func(*hostAgg) {})
	a.hostDoor.letGo(cut)
	a.hostsOver += int64(n) // n ≥ 1: the publisher cache keys on it
}

// evictEdges lets go the eighth of the conversations that weigh least,
// counting the frames of their connections still open.
func (a *Analyzer) evictEdges() {
	open := map[pairKey]int64{}
	for c, acc := range a.conns {
		if n := acc.frames[0] + acc.frames[1]; n > 0 {
			open[pair(c.A.Addr(), c.B.Addr())] += n
		}
	}
	n, cut := letGoLightest(a.pairs, func(k pairKey, e *edgeAgg) uint64 {
		return rank(e.packets+e.credit+open[k], e.seq)
	}, func(*edgeAgg) {})
	a.edgeDoor.letGo(cut)
	a.edgesOver += int64(n)
}

// evictTopics lets go the eighth of the topics with the fewest publishes;
// their publishes go to topicOther.
func (a *Analyzer) evictTopics() {
	n, cut := letGoLightest(a.topics, func(_ string, t *topicAgg) uint64 {
		return rank(t.t.Publishes+t.credit, t.seq)
	}, func(t *topicAgg) { a.topicOther += t.t.Publishes })
	a.topicDoor.letGo(cut)
	a.topicsOver += int64(n)
}

// nthLowest is the value that would be at index i were xs sorted; xs is
// reordered (a quickselect: expected time linear in len(xs)).
func nthLowest(xs []uint64, i int) uint64 {
	lo, hi := 0, len(xs)-1
	for lo < hi {
		// The median of three as the pivot, moved to hi.
		mid := lo + (hi-lo)/2
		if xs[mid] < xs[lo] {
			xs[mid], xs[lo] = xs[lo], xs[mid]
		}
		if xs[hi] < xs[lo] {
			xs[hi], xs[lo] = xs[lo], xs[hi]
		}
		if xs[mid] < xs[hi] {
			xs[mid], xs[hi] = xs[hi], xs[mid]
		}
		p, s := xs[hi], lo
		for j := lo; j < hi; j++ {
			if xs[j] < p {
				xs[s], xs[j] = xs[j], xs[s]
				s++
			}
		}
		xs[s], xs[hi] = xs[hi], xs[s]
		switch {
		case s == i:
			return xs[s]
		case s < i:
			lo = s + 1
		default:
			hi = s - 1
		}
	}
	return xs[i]
}
