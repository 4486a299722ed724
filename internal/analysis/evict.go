package analysis

import (
	"math"
	"net/netip"

	"github.com/iomtguard/iomtguard/internal/stats"
)

// The host and conversation tables are bounded (MaxHosts hosts, four
// times as many conversations). First come, first kept let 100,000 spoofed
// SYN sources fill the host table, and a pump or the broker whose
// connections closed later was then missing from the hosts and the graph.
// Now, when a table is full:
//
//   - A newcomer is let in when it matters more than what the table last
//     let go (admission's floor), or when it was refused once before (a
//     host that keeps coming back is not a spoofed one-off). Otherwise it
//     is refused and counted. A flood of one-frame spoofed sources is
//     refused at the door instead of churning the table: letting each in
//     and another out made analyze of 1M spoofed SYNs 2.6 times slower.
//   - Letting one in lets go the eighth of the table that matters least.
//     What matters least: for a host, no MQTT role (a spoofed source or a
//     scanner's target has none; a device has one from its first CONNECT,
//     before its connection has closed and counted its frames), then the
//     fewest frames, then the oldest entry; for a conversation, the fewest
//     packets, then the oldest.
//
// The busiest hosts and conversations, the ones the report and the graph
// show, stay exact; a host let go and seen again starts from nothing, and
// a newcomer let in when it asks again lacks what it brought the first
// time (a topic listed with 4 of its 5 publishes: the fifth is counted among
// the others'). The
// number of hosts is then estimated (stats.Distinct over every address
// that reached the table) and the report says so.
//
// The topic table (MaxTopics) works the same way, weighed on PUBLISH
// packets: 10,000 topics each published once (a client walking the topic
// space, or one putting a counter in its topic) kept every topic that came
// later out of the report, a ward's pumps with them. A topic let go adds its
// publishes to topicOther, so that the topics listed and topicOther still
// add up to every PUBLISH.

// rankCap keeps a count within a rank's 31 bits.
const rankCap = math.MaxInt32

// rank orders hosts for eviction, lowest first: MQTT role, frames, age. It
// is unique, for seq is. rank>>32 is the part a newcomer is weighed on.
func (h *hostAgg) rank() uint64 {
	return weight(h.hasRole(), h.h.Frames)<<32 | uint64(h.seq)
}

// weight is role and count on the scale of rank>>32.
func weight(role bool, n int64) uint64 {
	w := uint64(min(max(n, 0), rankCap))
	if role {
		w |= 1 << 31
	}
	return w
}

// hasRole reports whether the host did anything in MQTT.
func (h *hostAgg) hasRole() bool {
	return h.broker || h.publisher || h.subscriber || h.client || h.tlsClient || h.hasClientID
}

func (t *topicAgg) rank() uint64 {
	return weight(false, t.t.Publishes)<<32 | uint64(t.seq)
}

func (e *edgeAgg) rank() uint64 {
	return weight(false, e.packets)<<32 | uint64(e.seq)
}

// admission decides whether a newcomer enters a full table.
type admission struct {
	floor uint64   // the weight of the entry of highest rank let go last
	seen  []uint64 // hashes of newcomers refused, direct-mapped (a collision forgets one)
}

const seenSlots = 1 << 16

// admit reports whether a newcomer of hash h and weight w enters. One of
// weight 0 (a flow's end, whose frames were counted before) never does,
// nor is it remembered: it is the same newcomer asking again.
func (d *admission) admit(h, w uint64) bool {
	if w > d.floor {
		return true
	}
	if w == 0 {
		return false
	}
	if d.seen == nil {
		d.seen = make([]uint64, seenSlots)
	}
	s := &d.seen[h&(seenSlots-1)]
	if *s == h {
		*s = 0
		return true
	}
	*s = h
	return false
}

// addrHash is a hash of an address, the same on every run.
func addrHash(ip netip.Addr) uint64 {
	b := ip.As16()
	var hi, lo uint64
	for i := 0; i < 8; i++ {
		hi = hi<<8 | uint64(b[i])
		lo = lo<<8 | uint64(b[8+i])
	}
	return stats.Mix64(stats.Mix64(hi^uint64(ip.BitLen())) ^ lo)
}

// bytesHash is a hash of b, the same on every run (FNV-1a, then mixed).
func bytesHash(b []byte) uint64 {
	h := uint64(14695981039346656037)
	for _, c := range b {
		h = (h ^ uint64(c)) * 1099511628211
	}
	return stats.Mix64(h)
}

// topic is the aggregate of the topic name, made when new: nil when the
// table is full and the newcomer, of publishes PUBLISH packets, is refused
// (the caller counts them in topicOther).
func (a *Analyzer) topic(name []byte, publishes int64) *topicAgg {
	if t := a.topics[string(name)]; t != nil { // no string made for a lookup
		return t
	}
	hash := bytesHash(name)
	a.topicsSeen.Add(hash)
	if len(a.topics) >= a.opts.MaxTopics {
		w := weight(false, publishes)
		if !a.topicDoor.admit(hash, w) {
			if w > 0 {
				a.topicsRefused++
			}
			return nil
		}
		a.evictTopics()
	}
	a.topicSeq++
	s := string(name)
	t := &topicAgg{t: Topic{Topic: s}, publishers: map[string]bool{}, seq: a.topicSeq}
	a.topics[s] = t
	return t
}

// evictTopics lets go the eighth of the topics with the fewest publishes;
// their publishes go to topicOther.
func (a *Analyzer) evictTopics() {
	ranks := make([]uint64, 0, len(a.topics))
	for _, t := range a.topics {
		ranks = append(ranks, t.rank())
	}
	n := max(1, len(ranks)/8)
	cut := nthLowest(ranks, n-1)
	for k, t := range a.topics {
		if t.rank() <= cut {
			a.topicOther += t.t.Publishes
			delete(a.topics, k)
		}
	}
	a.topicDoor.floor = cut >> 32
	a.topicsOver += int64(n)
}

// host is the aggregate of address ip, made when new: nil when the table
// is full and the newcomer, of frames frames and with an MQTT role or not,
// is refused.
func (a *Analyzer) host(ip netip.Addr, frames int64, role bool) *hostAgg {
	if h := a.hosts[ip]; h != nil {
		return h
	}
	hash := addrHash(ip)
	a.hostsSeen.Add(hash)
	if len(a.hosts) >= a.opts.MaxHosts {
		w := weight(role, frames)
		if !a.hostDoor.admit(hash, w) {
			if w > 0 {
				a.hostsRefused++
			}
			return nil
		}
		a.evictHosts()
	}
	a.hostSeq++
	h := &hostAgg{h: Host{Addr: ip.String()}, seq: a.hostSeq}
	a.hosts[ip] = h
	return h
}

// edge is the conversation between x and y (in either order), made when
// new: nil when the table (4 × MaxHosts) is full and the newcomer, of
// packets packets, is refused. Its addresses are written out by edgeOut,
// when it is reported: a flood from spoofed addresses would make one for
// every address.
func (a *Analyzer) edge(x, y netip.Addr, packets int64) *edgeAgg {
	k := pairKey{x, y}
	if y.Less(x) {
		k = pairKey{y, x}
	}
	if e := a.pairs[k]; e != nil {
		return e
	}
	if len(a.pairs) >= 4*a.opts.MaxHosts {
		w := weight(false, packets)
		if !a.edgeDoor.admit(stats.Mix64(addrHash(k.a))^addrHash(k.b), w) {
			if w > 0 {
				a.edgesRefused++
			}
			return nil
		}
		a.evictEdges()
	}
	a.edgeSeq++
	e := &edgeAgg{seq: a.edgeSeq}
	a.pairs[k] = e
	return e
}

// evictHosts lets go the eighth of the hosts that matter least.
func (a *Analyzer) evictHosts() {
	ranks := make([]uint64, 0, len(a.hosts))
	for _, h := range a.hosts {
		ranks = append(ranks, h.rank())
	}
	n := max(1, len(ranks)/8)
	cut := nthLowest(ranks, n-1)
	for ip, h := range a.hosts {
		if h.rank() <= cut {
			delete(a.hosts, ip)
		}
	}
	a.hostDoor.floor = cut >> 32
	a.hostsOver += int64(n)
}

// evictEdges lets go the eighth of the conversations that matter least.
func (a *Analyzer) evictEdges() {
	ranks := make([]uint64, 0, len(a.pairs))
	for _, e := range a.pairs {
		ranks = append(ranks, e.rank())
	}
	n := max(1, len(ranks)/8)
	cut := nthLowest(ranks, n-1)
	for k, e := range a.pairs {
		if e.rank() <= cut {
			delete(a.pairs, k)
		}
	}
	a.edgeDoor.floor = cut >> 32
	a.edgesOver += int64(n)
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
