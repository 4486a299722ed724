package detect

import (
	"fmt"
	"hash/maphash"
	"maps"
	"net/netip"
	"sort"
	"time"

	"github.com/iomtguard/iomtguard/internal/mqtt"
	"github.com/iomtguard/iomtguard/internal/pipeline"
	"github.com/iomtguard/iomtguard/internal/stats"
	"github.com/iomtguard/iomtguard/internal/tcpstream"
)

// --- attack.publish-flood ----------------------------------------------------

var publishFloodSpec = Spec{
	Name: "publish-flood",
	IDs:  []string{"attack.publish-flood"},
	Rule: "A source address sends at least max_publishes PUBLISH packets, or max_bytes bytes of PUBLISH payload, " +
		"within 10 s (client to broker only; what the broker forwards is not counted). The defaults are 50 " +
		"messages a second and 1 MB a second, sustained for 10 s: an ICU sensor publishes a few times a second " +
		"at most, and a waveform stream batches its samples.",
	Params: []Param{
		{"max_publishes", 500, "", "PUBLISH packets from one source within 10 s"},
		{"max_bytes", 10e6, "", "payload bytes from one source within 10 s"},
	},
	New: newPublishFlood,
}

type pubAgg struct {
	win        *ring
	bytes      [10]int64 // per second of the current 10 s
	sec        int64
	hit        bool
	peak       int64 // most publishes in one second
	peakBytes  int64
	total      int64
	totalBytes int64
	perSec     int64
	span       span
	topics     *counter[string]
	clients    map[string]bool
	frames     exemplars
	target     string
	gone       bool  // let go by sweep: sessions holding it look the source up again
	lastSec    int64 // the latest second it published in (sec may step back)
}

type publishFlood struct {
	pipeline.Nop
	maxPub   int
	maxBytes int64
	srcs     map[netip.Addr]*pubAgg
	tab      *sessTable
	// topicKeys is what the sources' topic counters may still take (each
	// keeps 1,000): 1,000 sources flooding a topic of their own with every
	// PUBLISH kept a million topic names, and more with every source.
	topicKeys int
	// clock is the PUBLISHes' time (a newcomer's frame stamped 12 s ahead,
	// another sensor's clock, swept a source in the middle of its flood),
	// gate paces the sweeps (at most one a second after one that freed
	// little).
	clock steadyClock
	gate  sweepGate
	// letGo counts the sources let go while still publishing (letGoLightest),
	// refused the PUBLISHes of sources there was no room for.
	letGo, refused int64
}

func newPublishFlood(e *Env) Detector {
	return &publishFlood{maxPub: int(e.P("max_publishes")), maxBytes: int64(e.P("max_bytes")), srcs: map[netip.Addr]*pubAgg{}, tab: e.sessions,
		topicKeys: maxKeys}
}

func (*publishFlood) uses() events { return evMQTT }

func (p *publishFlood) OnMQTT(m *pipeline.MQTT) {
	if m.Pkt.Type != mqtt.PUBLISH || !m.FromClient {
		return
	}
	p.clock.see(m.Frame.TS)
	a := p.tab.cur.pub
	if a == nil || a.gone {
		src := clientAddr(m)
		if a = p.srcs[src]; a == nil {
			if len(p.srcs) >= maxKeys && !p.sweep() && !p.letGoLightest() {
				p.refused++
				return
			}
			a = &pubAgg{win: newRing(p.maxPub, 10e9), topics: newCounterIn[string](1000, &p.topicKeys), clients: map[string]bool{}}
			p.srcs[src] = a
		}
		p.tab.cur.pub = a
	}
	t := m.Frame.TS
	sec := t / 1e9
	if sec != a.sec {
		if sec-a.sec >= 10 || sec < a.sec {
			a.bytes = [10]int64{}
		} else {
			for s := a.sec + 1; s <= sec; s++ {
				a.bytes[s%10] = 0
			}
		}
		a.sec, a.perSec = sec, 0
		a.lastSec = max(a.lastSec, sec)
	}
	n := int64(m.Pkt.PayloadLen)
	a.bytes[sec%10] += n
	a.perSec++
	a.peak = max(a.peak, a.perSec)
	var sum int64
	for _, b := range a.bytes {
		sum += b
	}
	a.peakBytes = max(a.peakBytes, sum)
	a.total++
	a.totalBytes += n
	hit := false
	if s := a.win.add(t); s >= 0 && s <= 10e9 {
		hit = true
	}
	if sum >= p.maxBytes {
		hit = true
	}
	if hit {
		a.hit = true
		a.span.add(t)
		a.frames.add(m.Frame.Num)
		a.topics.add(printable(string(m.Pkt.TopicName()), 128), 1)
		if len(a.clients) < 100 {
			a.clients[idString(m.Session.ClientID)] = true
		}
		a.target = brokerEnd(m).String()
	}
}

// sweep lets go of the sources that have not flooded and have not
// published for over 10 s (their counts can no longer make a flood) and
// reports whether there is room now. 100,000 addresses publishing once
// each filled the table for good, and a flood from any address after them
// went unseen (in a watch, any 100,000 publishers over its whole run).
func (p *publishFlood) sweep() bool {
	if !p.gate.open(p.clock.now, 1e9) {
		return false
	}
	n := len(p.srcs)
	for src, a := range p.srcs {
		switch {
		case a.hit:
		case (a.lastSec+11)*1e9 <= p.clock.now:
			a.gone = true
			delete(p.srcs, src)
		default:
			p.gate.wait((a.lastSec + 11) * 1e9)
		}
	}
	p.gate.done(n-len(p.srcs) < maxKeys/8)
	return len(p.srcs) < maxKeys
}

// sampleSize is how many sources letGoLightest looks at.
const sampleSize = 8

// letGoLightest makes room in a full table that sweep could not free, and
// reports whether it did: of sampleSize sources (a map's walk begins at
// random), the one that published least in the last 10 s (recent) is
// let go, unless it flooded.
// 100,000 devices each publishing every 5 s are never idle for 10 s, and a
// flood that began among them was refused for as long as they published
// (TestPublishFloodBusyCrowd). A source that floods soon publishes more in
// 10 s than the devices and the chaff of one PUBLISH: it is not the
// lightest of the sources looked at, and a device let go comes back at its
// next PUBLISH, its count begun again. (Weighed by its last two seconds
// instead, a flood in bursts, 300 and then 200 eight seconds on, weighed
// nothing between them and was let go: an independent review,
// TestPublishFloodBursts.)
func (p *publishFlood) letGoLightest() bool {
	var (
		victim netip.Addr
		light  *pubAgg
		w      int64
		seen   int
	)
	for src, a := range p.srcs {
		if seen++; seen > sampleSize {
			break
		}
		if a.hit {
			continue
		}
		if aw := a.recent(p.clock.now); light == nil || aw < w {
			victim, light, w = src, a, aw
		}
	}
	if light == nil {
		return false
	}
	light.gone = true
	delete(p.srcs, victim)
	p.letGo++
	return true
}

// recent is how many PUBLISH the source sent in the 10 s up to now (of
// the last max_publishes, which its ring keeps).
func (a *pubAgg) recent(now int64) int64 { return int64(a.win.within(now)) }

func (p *publishFlood) Findings(Models) []Finding {
	ev := Evidence{Counts: map[string]int64{}}
	var sp span
	srcs, ids, topics, targets := map[string]bool{}, map[string]bool{}, map[string]bool{}, map[string]bool{}
	var frames exemplars
	for src, a := range p.srcs {
		if !a.hit {
			continue
		}
		srcs[src.String()] = true
		sp.add(a.span.first)
		sp.add(a.span.last)
		ev.Counts["publishes"] += a.total
		ev.Counts["payload_bytes"] += a.totalBytes
		ev.Counts["peak_publishes_per_second"] = max(ev.Counts["peak_publishes_per_second"], a.peak)
		for c := range a.clients {
			ids[c] = true
		}
		for _, k := range top(a.topics.m, 5, func(s string) string { return s }) {
			topics[k] = true
		}
		targets[a.target] = true
		for _, f := range a.frames {
			frames.add(f)
		}
		ev.Notes = append(ev.Notes, fmt.Sprintf("%s: %d PUBLISH (%d bytes of payload) in all, up to %d in one second, flooding from %s to %s",
			src, a.total, a.totalBytes, a.peak, fmtTime(a.span.first), fmtTime(a.span.last)))
	}
	if len(srcs) == 0 {
		return nil
	}
	sort.Strings(ev.Notes)
	if p.topicKeys <= 0 {
		ev.Notes = append(ev.Notes, fmt.Sprintf("the sources' topics are named only until %d topic names were kept in all: later floods show few or none", maxKeys))
	}
	if p.letGo > 0 {
		ev.Counts["sources_let_go_publishing"] = p.letGo
		ev.Notes = append(ev.Notes, fmt.Sprintf("more than %d sources published at once: %d times a source that had not flooded was let go "+
			"while still publishing, its count begun again at its next PUBLISH", maxKeys, p.letGo))
	}
	if p.refused > 0 {
		ev.Counts["publishes_not_judged"] = p.refused
		ev.Notes = append(ev.Notes, fmt.Sprintf("%d PUBLISH of other sources were not judged: the table of %d sources was full, and the sources looked at to make room had all flooded", p.refused, maxKeys))
	}
	sort.Ints(frames)
	ev.Sources, ev.ClientIDs, ev.Topics, ev.Targets, ev.Frames = sorted(srcs, 20), sorted(ids, 20), sorted(topics, 10), sorted(targets, 5), frames
	f := newFinding("attack.publish-flood", sp.first, sp.last, ev)
	f.Title = fmt.Sprintf("Publish flood: up to %d messages a second from %s", ev.Counts["peak_publishes_per_second"], joinSet(srcs, 3))
	return []Finding{f}
}

// --- attack.slow-dos ---------------------------------------------------------

var slowDoSSpec = Spec{
	Name: "slow-dos",
	IDs:  []string{"attack.slow-dos"},
	Rule: "A connection to a broker is held idle when its client has sent nothing for at least min_idle and it " +
		"either asked for a keep-alive of long_keepalive or more (or 0, none) or never sent a CONNECT. When " +
		"min_conns or more such connections from one source address are held at the same time, the source is " +
		"exhausting the broker's connections (SlowITe, Vaccari et al. 2020). When the capture ends before " +
		"min_idle could pass, min_open_at_end or more connections from one source that are still open, silent " +
		"since they opened (or since their CONNECT) and asking such a keep-alive are the same attack recorded " +
		"only at its start.",
	Params: []Param{
		{"min_conns", 20, "", "idle connections from one source held at once"},
		{"min_idle", 30, "s", "silence that makes a connection idle"},
		{"long_keepalive", 600, "s", "keep-alive at or above which an idle connection counts"},
		{"min_open_at_end", 100, "", "silent connections from one source still open when a capture ends too soon to judge idleness"},
	},
	New: newSlowDoS,
}

type idleConn struct {
	src        netip.Addr
	from, to   int64 // idle interval
	clientID   string
	keepalive  int
	frame      int
	hasConnect bool
}

type slowDoS struct {
	pipeline.Nop
	min, minAtEnd int
	idle, longKA  int64
	brokers       map[netip.AddrPort]bool
	held          []idleConn
	atEnd         []idleConn // silent, still open at the end, not yet idle for min_idle
	end           int64
	connectFrames map[*tcpstream.Conn]int
	tab           *sessTable
}

func newSlowDoS(e *Env) Detector {
	return &slowDoS{min: int(e.P("min_conns")), minAtEnd: int(e.P("min_open_at_end")), idle: e.D("min_idle"), longKA: e.D("long_keepalive"),
		brokers: map[netip.AddrPort]bool{}, connectFrames: map[*tcpstream.Conn]int{}, tab: e.sessions}
}

func (*slowDoS) uses() events { return evFrame | evMQTT | evFlow }

func (s *slowDoS) OnFrame(f *pipeline.Frame) {
	if f.TS > s.end {
		s.end = f.TS
	}
}

func (s *slowDoS) OnMQTT(m *pipeline.MQTT) {
	if !m.FromClient || m.Conn == nil {
		return
	}
	s.tab.cur.lastClient = m.Frame.TS
	if m.Pkt.Type == mqtt.CONNECT {
		if len(s.brokers) < maxKeys {
			s.brokers[brokerEnd(m)] = true
		}
		if len(s.connectFrames) < maxKeys {
			s.connectFrames[m.Conn] = m.Frame.Num
		}
	}
}

func (s *slowDoS) OnFlow(f *pipeline.Flow) {
	if f.Kind != pipeline.FlowClosed {
		return
	}
	c := f.Conn
	frame := s.connectFrames[c]
	var last int64
	sent := false
	if st := s.tab.cur; st != nil && st.lastClient != 0 {
		last, sent = st.lastClient, true
	}
	delete(s.connectFrames, c)
	if !c.SynSeen || c.Stat[tcpstream.FromB].Packets == 0 {
		return // not an established connection we saw open
	}
	end := c.Last
	if c.Reason == tcpstream.ReasonEnd {
		end = s.end
	}
	ic := idleConn{src: c.A.Addr().Unmap(), to: end, frame: frame}
	if sess := f.Session; sess != nil && sess.Connects > 0 {
		ka := int64(sess.KeepAlive) * 1e9
		if ka != 0 && ka < s.longKA {
			return
		}
		ic.hasConnect, ic.clientID, ic.keepalive = true, sess.ClientID, int(sess.KeepAlive)
	} else if f.Proto != pipeline.ProtoUnknown && f.Proto != pipeline.ProtoMQTT {
		return
	}
	// Idle from the client's last MQTT packet (or from the connection's
	// start when it sent none).
	ic.from = c.Start
	if sent {
		ic.from = last
	} else if c.Stat[tcpstream.FromA].Payload > 0 {
		return // it sent bytes that are not MQTT
	}
	if ic.to-ic.from < s.idle {
		// Still open when the capture ended, before it could be idle long
		// enough: judged in Findings by how many such a source holds.
		if c.Reason == tcpstream.ReasonEnd && len(s.atEnd) < 1<<22 {
			s.atEnd = append(s.atEnd, ic)
		}
		return
	}
	ic.from += s.idle
	if len(s.held) < 1<<22 {
		s.held = append(s.held, ic)
	}
}

// cutShort reports the sources holding min_open_at_end silent connections
// when the capture ended too soon to judge them idle.
func (s *slowDoS) cutShort(ev *Evidence, sp *span, srcs, ids map[string]bool, frames *exemplars) {
	bySrc := map[netip.Addr][]idleConn{}
	for _, ic := range s.atEnd {
		bySrc[ic.src] = append(bySrc[ic.src], ic)
	}
	for src, list := range bySrc {
		if len(list) < s.minAtEnd || srcs[src.String()] {
			continue
		}
		srcs[src.String()] = true
		first, last := list[0].from, list[0].from
		kas := map[int]int{}
		for _, ic := range list {
			first, last = min(first, ic.from), max(last, ic.from)
			sp.add(ic.from)
			sp.add(ic.to)
			if ic.hasConnect {
				kas[ic.keepalive]++
				if len(ids) < 50 {
					ids[idString(ic.clientID)] = true
				}
				frames.add(ic.frame)
			}
		}
		var kaList []int
		for k := range kas {
			kaList = append(kaList, k)
		}
		sort.Ints(kaList)
		ev.Counts["open_silent_at_end"] += int64(len(list))
		ev.Counts["peak_held_at_once"] = max(ev.Counts["peak_held_at_once"], int64(len(list)))
		ev.Notes = append(ev.Notes, fmt.Sprintf("%s opened %d connections between %s and %s that stayed silent until the capture ended %.1f s later (too soon to see them idle for %s); keep-alive asked: %v s",
			src, len(list), fmtTime(first), fmtTime(last), float64(s.end-last)/1e9, time.Duration(s.idle), kaList))
	}
}

func (s *slowDoS) Findings(Models) []Finding {
	bySrc := map[netip.Addr][]idleConn{}
	for _, ic := range s.held {
		bySrc[ic.src] = append(bySrc[ic.src], ic)
	}
	ev := Evidence{Counts: map[string]int64{}}
	var sp span
	srcs, ids := map[string]bool{}, map[string]bool{}
	var frames exemplars
	for src, list := range bySrc {
		if len(list) < s.min {
			continue
		}
		// Most connections idle at once: sweep over interval ends.
		type edge struct {
			t int64
			d int
		}
		edges := make([]edge, 0, 2*len(list))
		for _, ic := range list {
			edges = append(edges, edge{ic.from, 1}, edge{ic.to, -1})
		}
		sort.Slice(edges, func(i, j int) bool {
			if edges[i].t != edges[j].t {
				return edges[i].t < edges[j].t
			}
			return edges[i].d < edges[j].d
		})
		cur, peak := 0, 0
		var at int64
		for _, e := range edges {
			cur += e.d
			if cur > peak {
				peak, at = cur, e.t
			}
		}
		if peak < s.min {
			continue
		}
		srcs[src.String()] = true
		ev.Counts["idle_connections"] += int64(len(list))
		ev.Counts["peak_held_at_once"] = max(ev.Counts["peak_held_at_once"], int64(peak))
		kas := map[int]int{}
		noConnect := 0
		for _, ic := range list {
			sp.add(ic.from - s.idle)
			sp.add(ic.to)
			if ic.hasConnect {
				kas[ic.keepalive]++
				if len(ids) < 50 {
					ids[idString(ic.clientID)] = true
				}
				frames.add(ic.frame)
			} else {
				noConnect++
			}
		}
		note := fmt.Sprintf("%s held %d idle connections at once (at %s), %d in all", src, peak, fmtTime(at), len(list))
		if noConnect > 0 {
			note += fmt.Sprintf("; %d never sent CONNECT", noConnect)
		}
		var kaList []int
		for k := range kas {
			kaList = append(kaList, k)
		}
		sort.Ints(kaList)
		if len(kaList) > 0 {
			note += fmt.Sprintf("; keep-alive asked: %v s", kaList)
		}
		ev.Notes = append(ev.Notes, note)
	}
	s.cutShort(&ev, &sp, srcs, ids, &frames)
	if len(srcs) == 0 {
		return nil
	}
	sort.Strings(ev.Notes)
	sort.Ints(frames)
	ev.Sources, ev.ClientIDs, ev.Frames = sorted(srcs, 20), sorted(ids, 20), frames
	f := newFinding("attack.slow-dos", sp.first, sp.last, ev)
	f.Title = fmt.Sprintf("Slow DoS: %d idle connections held at once by %s", ev.Counts["peak_held_at_once"], joinSet(srcs, 3))
	return []Finding{f}
}

// --- attack.syn-flood --------------------------------------------------------

var synFloodSpec = Spec{
	Name: "syn-flood",
	IDs:  []string{"attack.syn-flood"},
	Rule: "Per destination address and port, in 10 s buckets by the time of the SYN: at least min_half_open " +
		"connection attempts whose initiator never completed the handshake (it sent only SYNs, or a SYN and a " +
		"reset), and they are at least half of all attempts in the bucket.",
	Params: []Param{{"min_half_open", 200, "", "half-open attempts to one service within 10 s (20 a second)"}},
	New:    newSynFlood,
}

type bucketKey struct {
	dst    netip.AddrPort
	bucket int64
}

// synCounts is one service's attempts that began in one 10 s bucket.
type synCounts struct {
	half, done int64
	srcs       stats.FewDistinct // the half-open attempts' initiators
	live       int32             // its attempts still in the connection table
	idle       bool              // in synFlood.idle
}

// synSettled is what the buckets let go of that were floods add up to (a
// bucket is let go once it cannot change: see synFlood).
type synSettled struct {
	half, done, peak int64
	nsrc             int64
	nsrcExact        bool
	span             span
	targets          map[string]bool // at most maxKeys/10
	targetsOver      bool
}

// synFlood counts attempts per service and 10 s bucket. A bucket can
// change while an attempt that began in it is still in the connection table
// (it is counted when it leaves), so each bucket counts its live attempts:
// once none is left and its time is past (settleAfter), it is settled:
// added up in settled if it was a flood, let go otherwise. The table then
// holds the buckets of the connections in the table and of the last minute,
// not every bucket since the start: a watch of a busy network filled the
// 100,000 buckets in hours and then counted nothing new, and a flood
// rotating over ports kept a set of sources for each bucket, 170 MB for 3M
// SYNs.
type synFlood struct {
	pipeline.Nop
	min     int64
	buckets map[bucketKey]*synCounts
	idle    []bucketKey // buckets with no live attempt, to settle when their time is past
	// clock is the time of the attempts' opens, in buckets (one record
	// stamped a day ahead made every bucket past, and a flood under way was
	// settled in pieces too small to be one).
	clock   steadyClock
	settled synSettled
	refused int64 // attempts not counted: the table was full
	// The idle list's length and now at the last early settling: it runs
	// again only when either has moved on (a table full of idle buckets
	// that cannot go made each attempt walk the list: 30 ms each).
	earlyIdle   int
	earlyNow    int64
	earlyPasses int
	hseed       uint64 // the hash key of sources, from the first attempt
}

// settleAfter is how many buckets after its own a bucket is settled: it
// ended at least 50 s before the latest attempt, as time in a capture may
// step back a little (a bucket settled too soon is split in two).
const settleAfter = 6

func newSynFlood(e *Env) Detector {
	return &synFlood{min: int64(e.P("min_half_open")), buckets: map[bucketKey]*synCounts{},
		settled: synSettled{nsrcExact: true, targets: map[string]bool{}}}
}

func (*synFlood) uses() events { return evFlow }

func halfOpen(c *tcpstream.Conn) bool {
	a := c.Stat[tcpstream.FromA]
	return c.SynSeen && a.SYNs > 0 && a.Packets == a.SYNs+a.RSTs && a.Payload == 0
}

func (s *synFlood) OnFlow(f *pipeline.Flow) {
	c := f.Conn
	if !c.SynSeen || c.SynAgain {
		return // (an attempt counted when its first connection was evicted)
	}
	if s.hseed == 0 {
		// Unknown to a sender who picks addresses whose hashes are large
		// (they would count as few), the same for the same input.
		s.hseed = stats.HashAddr(c.A.Addr(), uint64(c.Start)^uint64(c.A.Port())<<48) | 1
	}
	k := bucketKey{c.B, c.Start / 10e9}
	if f.Kind == pipeline.FlowOpened {
		if s.clock.see(k.bucket) {
			s.settle(false)
		}
		if b := s.bucket(k); b != nil {
			b.live++
		} else {
			s.refused++
		}
		return
	}
	b := s.bucket(k)
	if b == nil {
		s.refused++
		return
	}
	if halfOpen(c) {
		b.half++
		b.srcs.Add(stats.HashAddr(c.A.Addr(), s.hseed))
	} else {
		b.done++
	}
	if b.live > 0 {
		b.live--
	}
	if b.live == 0 && !b.idle {
		b.idle = true
		s.idle = append(s.idle, k)
	}
}

// bucket is k's counts, made when new; nil when the table is full even
// after settling early the idle buckets too small to be a flood.
func (s *synFlood) bucket(k bucketKey) *synCounts {
	if b := s.buckets[k]; b != nil {
		return b
	}
	if len(s.buckets) >= maxKeys && len(s.idle) >= maxKeys/8 && (len(s.idle) >= s.earlyIdle+maxKeys/8 || s.clock.now != s.earlyNow) {
		s.settle(true)
		s.earlyIdle, s.earlyNow = len(s.idle), s.clock.now
		s.earlyPasses++
	}
	if len(s.buckets) >= maxKeys {
		return nil
	}
	b := &synCounts{}
	s.buckets[k] = b
	return b
}

// settle lets go of the idle buckets settleAfter buckets before the latest
// attempt's, adding the floods among them to settled. With early, it also
// lets go of the idle buckets of the last minute with fewer than a quarter
// of min_half_open attempts: 100,000 services tried once each within a
// minute (one spoofed SYN and a reset each) must not fill the table and
// hide a flood that starts then; a flood's own bucket passes a quarter
// within its first seconds.
func (s *synFlood) settle(early bool) {
	keep := s.idle[:0]
	for _, k := range s.idle {
		b := s.buckets[k]
		switch {
		case b == nil || b.live > 0:
			if b != nil {
				b.idle = false // queued again when its last attempt leaves
			}
		case k.bucket+settleAfter <= s.clock.now:
			if s.flood(b) {
				s.settled.add(k, b)
			}
			delete(s.buckets, k)
		case early && b.half+b.done < s.min/4:
			delete(s.buckets, k)
		default:
			keep = append(keep, k)
		}
	}
	clear(s.idle[len(keep):])
	s.idle = keep
}

func (s *synFlood) flood(b *synCounts) bool { return b.half >= s.min && b.half >= b.done }

func (t *synSettled) add(k bucketKey, b *synCounts) {
	t.half += b.half
	t.done += b.done
	t.peak = max(t.peak, b.half)
	// An estimate past the attempts themselves is its error (the largest
	// of many estimates errs upward: the attempts bound it).
	if n, exact := b.srcs.Estimate(); min(n, b.half) > t.nsrc {
		t.nsrc, t.nsrcExact = min(n, b.half), exact
	}
	t.span.add(k.bucket * 10e9)
	t.span.add(k.bucket*10e9 + 10e9)
	if d := k.dst.String(); !t.targets[d] {
		if len(t.targets) < maxKeys/10 {
			t.targets[d] = true
		} else {
			t.targetsOver = true
		}
	}
}

func (s *synFlood) Findings(Models) []Finding {
	// The settled floods and the buckets still open, added up alike.
	all := s.settled
	all.targets = maps.Clone(s.settled.targets)
	for k, b := range s.buckets {
		if s.flood(b) {
			all.add(k, b)
		}
	}
	if len(all.targets) == 0 {
		return nil
	}
	ev := Evidence{Counts: map[string]int64{"half_open": all.half, "completed": all.done,
		"peak_half_open_per_10s": all.peak, "max_sources_per_10s": all.nsrc}}
	ev.Targets = sorted(all.targets, 10)
	if all.nsrc > 100 {
		about := ""
		if !all.nsrcExact {
			about = fmt.Sprintf(" (estimated, within about %.0f %%)", 100*stats.FewDistinctError)
		}
		ev.Notes = append(ev.Notes, fmt.Sprintf("up to %d distinct source addresses in 10 s%s: the sources are likely forged", all.nsrc, about))
	}
	if all.targetsOver {
		ev.Notes = append(ev.Notes, fmt.Sprintf("more than %d services were flooded: the first %d are counted among the targets", maxKeys/10, maxKeys/10))
	}
	if s.refused > 0 {
		ev.Notes = append(ev.Notes, fmt.Sprintf("%d attempts were not counted: more than %d services and 10 s buckets were open at once", s.refused, maxKeys))
	}
	f := newFinding("attack.syn-flood", all.span.first, all.span.last, ev)
	f.Title = fmt.Sprintf("SYN flood: %d half-open connections to %s", ev.Counts["half_open"], joinSet(all.targets, 3))
	return []Finding{f}
}

// --- attack.scan -------------------------------------------------------------

var scanSpec = Spec{
	Name: "scan",
	IDs:  []string{"attack.scan"},
	Rule: "A source address tries at least min_targets distinct services (address and TCP port) within window, " +
		"and at least half of them refused (reset) or did not answer.",
	Params: []Param{
		{"min_targets", 20, "", "distinct address:port pairs tried"},
		{"window", 60, "s", "window in which they must fall"},
	},
	New: newScan,
}

type probe struct {
	t      int64
	target netip.AddrPort
	failed bool
}

type scan struct {
	pipeline.Nop
	seed   maphash.Seed
	min    int
	window int64
	probes map[netip.Addr][]probe // each source's distinct targets
	// seen indexes a source's targets once it has tried scanSeenFrom: a
	// flood from spoofed addresses makes a source of every address, each
	// with one target, and the set made for each was a quarter of analyze's
	// memory on 1M spoofed SYNs.
	seen map[netip.Addr]map[netip.AddrPort]bool
	// once holds the first probe of sources not in probes once probes is
	// half full: past that a source comes in at its second target. A flood
	// from spoofed addresses, one SYN each, filled the table, and a
	// scanner after it was refused (TestScan's smoke screen).
	once firstSight[netip.Addr, probe]
	// kept is the number of probes in probes. Past scanBudget a source
	// keeps at most min_targets (enough to be judged) and its further
	// attempts are counted in notKept: 100 sources trying 30,000 services
	// each kept 325 MB, and the memory grew with every SYN.
	kept    int
	notKept map[netip.Addr]int64
	// clock is the attempts' starts (one stamped a day ahead made every
	// source sweepable, a scan under way too); gate paces the sweeps (at
	// most one a minute after one that freed little).
	clock steadyClock
	gate  sweepGate
	// live counts each source's attempts still in the connection table:
	// a source is swept only when none is left, as an unanswered SYN is
	// reported when it leaves the table, which may be much later (a scan
	// was split in two by a sweep between its probes' opens and closes).
	live map[netip.Addr]int32
}

// scanSlack is how long after the latest attempt a source is kept when it
// cannot be a scan (time in a capture may step back a little).
const scanSlack = int64(5 * time.Minute)

// scanBudget is the most probes kept for all sources together past which a
// source keeps only min_targets, until a sweep frees room: 512 Ki probes,
// about 24 MiB, and their indexes about as much.
const scanBudget = 1 << 19

const scanSeenFrom = 32 // above min_targets' default: a source kept at 20 has no index

// sameTarget: a second probe of the target a source first tried is not its
// second sighting (two SYNs from each spoofed address filled the table).
func sameTarget(first, p probe) bool { return first.target == p.target }

func newScan(e *Env) Detector {
	return &scan{seed: e.hashSeed(), min: int(e.P("min_targets")), window: e.D("window"), seen: map[netip.Addr]map[netip.AddrPort]bool{}, probes: map[netip.Addr][]probe{},
		notKept: map[netip.Addr]int64{}, live: map[netip.Addr]int32{}}
}

func (*scan) uses() events { return evFlow }

func (s *scan) OnFlow(f *pipeline.Flow) {
	if !f.Conn.SynSeen {
		return
	}
	c := f.Conn
	src := c.A.Addr().Unmap()
	if f.Kind == pipeline.FlowOpened {
		s.live[src]++
		s.clock.see(c.Start)
		return
	}
	if n := s.live[src] - 1; n > 0 {
		s.live[src] = n
	} else {
		delete(s.live, src)
	}
	b := c.Stat[tcpstream.FromB]
	pr := probe{c.Start, c.B, b.Packets == b.RSTs} // failed: no answer, or only resets
	ps, ok := s.probes[src]
	if !ok && len(s.probes) >= maxKeys/2 && !s.sweep(false) {
		first, again := s.once.again(maphash.Comparable(s.seed, src), src, pr, sameTarget)
		if !again || len(s.probes) >= maxKeys {
			return
		}
		ps = []probe{first}
		s.probes[src] = ps
		s.kept++
	}
	if len(ps) >= 100000 {
		return
	}
	seen := s.seen[src]
	if seen != nil {
		if seen[c.B] {
			return
		}
	} else {
		for _, p := range ps {
			if p.target == c.B {
				return
			}
		}
	}
	if s.kept >= scanBudget && len(ps) >= s.min && (s.sweep(true) || s.kept >= scanBudget) {
		s.notKept[src]++
		return
	}
	switch {
	case seen != nil:
		seen[c.B] = true
	case len(ps)+1 == scanSeenFrom:
		seen = make(map[netip.AddrPort]bool, 2*scanSeenFrom)
		for _, p := range ps {
			seen[p.target] = true
		}
		seen[c.B] = true
		s.seen[src] = seen
	}
	s.kept++
	s.probes[src] = append(ps, pr)
}

// sweep lets go of the sources that can no longer be a scan: no attempt
// of theirs left in the connection table, the last more than window and
// scanSlack ago, and fewer than min_targets services tried (over the
// budget: or no window of them a scan), and reports whether the table is
// under half full again (over the budget: whether probes were freed). In
// a watch, which keeps one detector as long as it runs, every address that
// ever opened a connection stayed, and past half the table a newcomer had
// to be seen twice, past all of it not at all; sources that spent the
// budget kept it for good, and a scan by any source that had min_targets
// probes then went unseen (an independent review).
func (s *scan) sweep(budget bool) bool {
	if !s.gate.open(s.clock.now, 60e9) {
		return false
	}
	n, kept := len(s.probes), s.kept
	for src, ps := range s.probes {
		if s.live[src] > 0 || len(ps) >= s.min && !budget {
			continue
		}
		last := int64(0)
		for _, p := range ps {
			last = max(last, p.t)
		}
		if last+s.window+scanSlack >= s.clock.now {
			s.gate.wait(last + s.window + scanSlack + 1)
			continue
		}
		if len(ps) >= s.min {
			if best, _, _, _ := s.best(ps); best > 0 {
				continue
			}
		}
		delete(s.probes, src)
		delete(s.notKept, src)
		delete(s.seen, src)
		s.kept -= len(ps)
	}
	s.gate.done(n-len(s.probes) < maxKeys/8 && kept-s.kept < scanBudget/8)
	if budget {
		return s.kept < kept
	}
	return len(s.probes) < maxKeys/2
}

// best is the largest set of ps within window, at least min_targets and half
// of them refused or unanswered: its size (0: none), failures, and its
// first and last index in ps, which it sorts by time.
func (s *scan) best(ps []probe) (best, bestFails, bi, bj int) {
	sort.Slice(ps, func(i, j int) bool { return ps[i].t < ps[j].t })
	j, fails := 0, 0
	for i, p := range ps {
		if p.failed {
			fails++
		}
		for p.t-ps[j].t > s.window {
			if ps[j].failed {
				fails--
			}
			j++
		}
		if n := i - j + 1; n >= s.min && 2*fails >= n && n > best {
			best, bestFails, bi, bj = n, fails, i, j
		}
	}
	return best, bestFails, bi, bj
}

func (s *scan) Findings(Models) []Finding {
	ev := Evidence{Counts: map[string]int64{}}
	var sp span
	srcs := map[string]bool{}
	over := false // some attempts not kept: services probed is a lower bound
	for src, ps := range s.probes {
		if len(ps) < s.min {
			continue
		}
		best, bestFails, bi, bj := s.best(ps)
		if best == 0 {
			continue
		}
		srcs[src.String()] = true
		hosts, ports := map[netip.Addr]bool{}, map[uint16]bool{}
		for _, p := range ps[bj : bi+1] {
			hosts[p.target.Addr()] = true
			ports[p.target.Port()] = true
		}
		sp.add(ps[bj].t)
		sp.add(ps[bi].t)
		ev.Counts["targets_probed"] += int64(len(ps))
		all := fmt.Sprintf("%d services in all", len(ps))
		if more := s.notKept[src]; more > 0 {
			over = true
			// (attempts: without their targets kept, a second attempt on
			// one service cannot be told from a first)
			all = fmt.Sprintf("%d services kept, and %d more attempts not kept (the memory budget of %d probes was spent)", len(ps), more, scanBudget)
		}
		ev.Notes = append(ev.Notes, fmt.Sprintf("%s probed %d services (%d hosts, %d ports) within %s, %d refused or unanswered; %s",
			src, best, len(hosts), len(ports), fmtDur(ps[bi].t-ps[bj].t), bestFails, all))
	}
	if len(srcs) == 0 {
		return nil
	}
	sort.Strings(ev.Notes)
	ev.Sources = sorted(srcs, 20)
	f := newFinding("attack.scan", sp.first, sp.last, ev)
	f.Title = fmt.Sprintf("Scan: %s probed %d services", joinSet(srcs, 3), ev.Counts["targets_probed"])
	if over {
		f.Title = fmt.Sprintf("Scan: %s probed at least %d services", joinSet(srcs, 3), ev.Counts["targets_probed"])
	}
	return []Finding{f}
}

func fmtDur(ns int64) string {
	return fmt.Sprintf("%.1f s", float64(ns)/1e9)
}
