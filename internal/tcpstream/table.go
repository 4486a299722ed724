package tcpstream

import (
	"cmp"
	"encoding/binary"
	"hash/maphash"
	"math/rand/v2"
	"net/netip"
	"slices"

	"github.com/iomtguard/iomtguard/internal/packet"
)

// key identifies a connection regardless of direction: the lower endpoint first.
type key struct {
	a, b   [16]byte
	pa, pb uint16
}

func makeKey(src, dst netip.Addr, sp, dp uint16) key {
	s, d := src.As16(), dst.As16()
	if c := compareEnd(s, sp, d, dp); c <= 0 {
		return key{a: s, b: d, pa: sp, pb: dp}
	}
	return key{a: d, b: s, pa: dp, pb: sp}
}

// compareEnd orders two endpoints: the addresses' bytes as two big-endian
// words each (the order of the bytes; profiling analyze: a loop over the 16
// bytes was 5 % of its pass), then the ports.
func compareEnd(a [16]byte, pa uint16, b [16]byte, pb uint16) int {
	if c := cmp.Compare(binary.BigEndian.Uint64(a[:8]), binary.BigEndian.Uint64(b[:8])); c != 0 {
		return c
	}
	if c := cmp.Compare(binary.BigEndian.Uint64(a[8:]), binary.BigEndian.Uint64(b[8:])); c != 0 {
		return c
	}
	return cmp.Compare(pa, pb)
}

// list is an intrusive doubly-linked list of connections.
type list struct{ head, tail *Conn }

func (l *list) pushFront(c *Conn) {
	c.prev, c.next = nil, l.head
	if l.head != nil {
		l.head.prev = c
	}
	l.head = c
	if l.tail == nil {
		l.tail = c
	}
}

func (l *list) remove(c *Conn) {
	if c.prev != nil {
		c.prev.next = c.next
	} else {
		l.head = c.next
	}
	if c.next != nil {
		c.next.prev = c.prev
	} else {
		l.tail = c.prev
	}
	c.prev, c.next = nil, nil
}

// Table tracks TCP connections. It is not safe for concurrent use.
type Table struct {
	opts   Options
	recv   Receiver
	conns  map[key]*Conn
	active list // open connections, most recently active first
	closed list // closed connections, most recently closed first
	// embryo holds the connections that have seen only their initiator's
	// SYN (the SYNs of a flood or a scan, from addresses that may be
	// spoofed), most recent first, at most MaxEmbryonic of them: 1M
	// spoofed SYNs filled the table's 262,144 connections (170 MB), and
	// analyze took 16.8 s and 487 MB where the same number of benign
	// frames take 0.6 s and 60 MB.
	embryo  list
	nEmbryo int
	// gone remembers the SYNs of evicted embryos (a hash of 4-tuple and
	// sequence number, direct-mapped, made at the first eviction): past
	// MaxEmbryonic, clients retrying against a broker that is down would
	// otherwise make every retransmitted SYN an attempt of its own (an
	// independent review: 20,000 SYNs sent 10 times counted 200,000
	// half-open connections).
	gone      []uint64
	goneSeed  maphash.Seed
	nextIndex int
	oooTotal  int
	lastSweep int64
	// recent is a direct-mapped cache of conns by a hash of the 4-tuple
	// that is the same both ways (cachedConn). Profiling analyze: the
	// key's making and the map lookup were a tenth of the engine's core.
	// A collision, chance or crafted, only sends a frame to the map.
	recent   [1 << recentBits]*Conn
	seed     uint64
	noRecent bool // tests: the map alone
}

const recentBits = 12

// recentSlot is the cache slot of a frame's 4-tuple, either way.
func (t *Table) recentSlot(f *packet.Frame) uint64 {
	return t.slotOf(f.Src, f.SrcPort, f.Dst, f.DstPort)
}

// slotOf hashes the two endpoints' bytes as makeKey sees them (As16: an
// IPv4 address and its IPv4-mapped form, or two zones, hash alike), so
// that a connection's frames and its endpoints have one slot.
func (t *Table) slotOf(a netip.Addr, pa uint16, b netip.Addr, pb uint16) uint64 {
	end := func(a netip.Addr, p uint16) uint64 {
		b := a.As16()
		x := binary.LittleEndian.Uint64(b[:8]) ^ binary.LittleEndian.Uint64(b[8:]) ^ uint64(p)*0x9e3779b97f4a7c15
		return (x ^ x>>29) * 0xbf58476d1ce4e5b9
	}
	return (end(a, pa) + end(b, pb)) * t.seed >> (64 - recentBits)
}

// cachedConn is the open connection of f's 4-tuple if the cache holds it:
// the same as conns[makeKey(...)] (a connection in the table has the key
// of its endpoints, either way round, and is the only one with it), or nil.
func (t *Table) cachedConn(f *packet.Frame, slot uint64) *Conn {
	c := t.recent[slot]
	if c == nil || c.removed {
		return nil
	}
	src, dst := netip.AddrPortFrom(f.Src, f.SrcPort), netip.AddrPortFrom(f.Dst, f.DstPort)
	if (src == c.A && dst == c.B) || (src == c.B && dst == c.A) {
		return c
	}
	return nil
}

// New returns an empty table delivering stream data to r.
func New(opts Options, r Receiver) *Table {
	opts.defaults()
	return &Table{opts: opts, recv: r, conns: make(map[key]*Conn, 1024), seed: rand.Uint64() | 1}
}

// Len is the number of connections in the table.
func (t *Table) Len() int { return len(t.conns) }

// Streams is the number of connections ever created (the next tcp.stream index).
func (t *Table) Streams() int { return t.nextIndex }

// Track processes one decoded TCP frame (f.IsTCP() must hold) captured at ts
// (ns) with frameLen bytes on the wire, and fills seg. Payload bytes reach the
// Receiver in order during the call.
func (t *Table) Track(f *packet.Frame, ts int64, frameLen int, seg *Segment) {
	t.track(f, ts, frameLen, seg, true)
}

// Observe is Track without reassembly: connections, directions, counters and
// per-frame values are kept, but no bytes reach the Receiver. It serves inputs
// that carry no sequence numbers (the ICU dataset CSV).
func (t *Table) Observe(f *packet.Frame, ts int64, frameLen int, seg *Segment) {
	t.track(f, ts, frameLen, seg, false)
}

func (t *Table) track(f *packet.Frame, ts int64, frameLen int, seg *Segment, data bool) {
	tcp := &f.TCP
	slot := t.recentSlot(f)
	var c *Conn
	if !t.noRecent {
		c = t.cachedConn(f, slot)
	}
	var k key
	if c != nil {
		k = c.key
	} else {
		k = makeKey(f.Src, f.Dst, f.SrcPort, f.DstPort)
		c = t.conns[k]
	}
	src := netip.AddrPortFrom(f.Src, f.SrcPort)
	var d Dir
	if c != nil {
		if src != c.A {
			d = FromB
		}
		// A SYN with a new initial sequence number on a known 4-tuple starts a
		// new connection (tshark's port-reuse rule).
		h := &c.half[d]
		if tcp.Flags&(packet.FlagSYN|packet.FlagACK) == packet.FlagSYN && h.baseSet && tcp.Seq != h.baseSeq {
			t.remove(c, ReasonReused)
			c = nil
		}
	}
	*seg = Segment{}
	if c == nil {
		c = t.create(k, f, ts)
		d = FromA
		if src != c.A {
			d = FromB
		}
		seg.New = true
	} else {
		seg.Delta = ts - c.tsPrev
		switch {
		case c.inEmbryo && d == FromA && tcp.Flags&(packet.FlagSYN|packet.FlagACK|packet.FlagRST|packet.FlagFIN) == packet.FlagSYN && f.PayloadLen == 0:
			t.embryo.remove(c) // the SYN again
			t.embryo.pushFront(c)
		case c.inEmbryo:
			t.embryo.remove(c) // an answer, or more than a SYN
			t.nEmbryo--
			c.inEmbryo = false
			t.active.pushFront(c)
		case !c.inClosed:
			t.active.remove(c)
			t.active.pushFront(c)
		}
	}
	t.recent[slot] = c
	c.tsPrev = ts
	c.Last = ts
	seg.Conn, seg.Dir = c, d

	h, r := &c.half[d], &c.half[1-d]
	syn := tcp.Flags&packet.FlagSYN != 0
	ack := tcp.Flags&packet.FlagACK != 0
	if !h.baseSet {
		h.baseSeq = tcp.Seq
		if !syn {
			h.baseSeq--
		}
		h.baseSet = true
	}
	if ack && !r.baseSet {
		r.baseSeq = tcp.Ack - 1
		r.baseSet = true
	}
	seg.RelSeq = tcp.Seq - h.baseSeq
	seg.RelAck = tcp.Ack
	if ack {
		seg.RelAck = tcp.Ack - r.baseSeq
	}
	seg.NextSeq = seg.RelSeq + uint32(f.PayloadLen)
	if syn || tcp.Flags&packet.FlagFIN != 0 {
		seg.NextSeq++
	}
	if tcp.Window == 0 && tcp.Flags&packet.FlagRST == 0 && tcp.Flags&(packet.FlagSYN|packet.FlagFIN) == 0 {
		seg.Analysis |= ZeroWindow
	}

	st := &c.Stat[d]
	st.Packets++
	st.Bytes += int64(frameLen)
	st.Payload += int64(f.PayloadLen)
	st.Flags |= tcp.Flags
	if syn && !ack {
		st.SYNs++
	}

	if data {
		if t.opts.Reorder {
			// Data the peer acknowledges but the capture never showed is a gap.
			if ack {
				t.ackGap(c, 1-d, tcp.Ack)
			}
			t.reassemble(c, d, f, seg)
		} else {
			t.arrival(c, d, f, seg)
		}
	}
	t.transition(c, d, tcp.Flags, ts)

	if ts-t.lastSweep >= 1e9 {
		t.sweep(ts)
	}
}

func (t *Table) create(k key, f *packet.Frame, ts int64) *Conn {
	if len(t.conns) >= t.opts.MaxFlows {
		t.evict()
	}
	src := netip.AddrPortFrom(f.Src, f.SrcPort)
	dst := netip.AddrPortFrom(f.Dst, f.DstPort)
	c := &Conn{Index: t.nextIndex, A: src, B: dst, Start: ts, Last: ts, key: k}
	fl := f.TCP.Flags
	switch {
	case fl&(packet.FlagSYN|packet.FlagACK) == packet.FlagSYN:
		c.State = StateSynSent
		c.SynSeen = true
	case fl&(packet.FlagSYN|packet.FlagACK) == packet.FlagSYN|packet.FlagACK:
		// The SYN was missed: the receiver of this SYN-ACK is the initiator.
		c.A, c.B = dst, src
		c.State = StateEstablished
		c.SynSeen = true
	}
	t.nextIndex++
	t.conns[k] = c
	if c.State == StateSynSent {
		if t.gone != nil {
			h := t.synHash(k, f.TCP.Seq)
			c.SynAgain = t.gone[h%uint64(len(t.gone))] == h
		}
		if t.nEmbryo >= t.opts.MaxEmbryonic {
			t.remove(t.embryo.tail, ReasonEvicted)
		}
		t.embryo.pushFront(c)
		t.nEmbryo++
		c.inEmbryo = true
	} else {
		t.active.pushFront(c)
	}
	return c
}

func (t *Table) transition(c *Conn, d Dir, fl uint16, ts int64) {
	st := &c.Stat[d]
	switch {
	case fl&packet.FlagRST != 0:
		st.RSTs++
		if c.Open() {
			c.State = StateReset
			c.Reason = ReasonRST
			t.markClosed(c, ts)
		}
	case fl&packet.FlagFIN != 0:
		st.FINs++
		h := &c.half[d]
		h.fin = true
		if c.State == StateReset || c.State == StateClosed {
			return
		}
		if c.half[1-d].fin {
			c.State = StateClosed
			c.Reason = ReasonFIN
			t.markClosed(c, ts)
		} else {
			c.State = StateClosing
		}
	case fl&(packet.FlagSYN|packet.FlagACK) == packet.FlagSYN|packet.FlagACK:
		if c.State == StateSynSent || c.State == StateNew {
			c.State = StateEstablished
		}
	case fl&packet.FlagSYN == 0 && c.State == StateSynSent && d == FromA && fl&packet.FlagACK != 0:
		c.State = StateEstablished
	}
}

func (t *Table) markClosed(c *Conn, ts int64) {
	if c.removed {
		return
	}
	c.closedAt = ts
	if !c.inClosed {
		t.unlist(c)
		t.closed.pushFront(c)
		c.inClosed = true
	}
}

// ackGap declares a gap in direction d when the peer acknowledged sequence
// number ack beyond the data seen.
func (t *Table) ackGap(c *Conn, d Dir, ack uint32) {
	h := &c.half[d]
	if !h.nextSet {
		return
	}
	diff := int32(ack - h.next)
	if diff <= 0 || diff > 1<<30 {
		return
	}
	if h.fin && ack-h.finSeq <= 1 && int32(h.finSeq-h.next) <= 0 {
		return // the FIN itself is acknowledged
	}
	limit := ack
	if len(h.ooo) > 0 && int32(h.ooo[0].seq-ack) < 0 {
		limit = h.ooo[0].seq
	}
	n := int(limit - h.next)
	if n <= 0 {
		t.drain(c, d)
		return
	}
	// A FIN the capture missed accounts for one sequence number, not data.
	if n == 1 && len(h.ooo) == 0 && c.Stat[d].Payload == 0 {
		h.next = limit
		return
	}
	t.declareGap(c, d, n)
	t.drain(c, d)
}

func (t *Table) declareGap(c *Conn, d Dir, n int) {
	h := &c.half[d]
	h.next += uint32(n)
	st := &c.Stat[d]
	st.Gaps++
	st.GapBytes += int64(n)
	t.recv.Gap(c, d, n)
}

// arrival delivers bytes in arrival order, as tshark does by default: h.next
// is the highest sequence number seen in the direction (zero-length segments
// included); a segment beyond it opens a gap, one starting below it is a
// retransmission and is dropped whole.
func (t *Table) arrival(c *Conn, d Dir, f *packet.Frame, seg *Segment) {
	h := &c.half[d]
	tcp := &f.TCP
	dataSeq := tcp.Seq
	if tcp.Flags&packet.FlagSYN != 0 {
		dataSeq++
		if !h.nextSet || int32(dataSeq-h.next) > 0 {
			h.next, h.nextSet = dataSeq, true
		}
	}
	plen := f.PayloadLen
	if plen < 0 {
		plen = 0
	}
	end := dataSeq + uint32(plen)
	if tcp.Flags&packet.FlagFIN != 0 {
		h.finSeq = end
	}
	if !h.nextSet {
		if tcp.Flags&packet.FlagRST != 0 {
			return
		}
		h.next, h.nextSet = dataSeq, true
	}
	rel := int32(dataSeq - h.next)
	if plen == 0 {
		// A zero-length segment ahead shows bytes the capture missed.
		if rel > 0 && rel < 1<<30 && tcp.Flags&packet.FlagRST == 0 {
			t.declareGap(c, d, int(rel))
		}
		if tcp.Flags&packet.FlagFIN != 0 && int32(end+1-h.next) > 0 {
			h.next = end + 1
		}
		return
	}
	switch {
	case rel < 0:
		if int32(end-h.next) <= 0 {
			seg.Analysis |= Retransmission
			if plen <= 1 && rel == -1 {
				seg.Analysis |= KeepAliveSeg
			}
		} else {
			seg.Analysis |= Overlap | Retransmission
		}
		c.Stat[d].Retrans++
		return
	case rel > 0:
		seg.Analysis |= GapBefore
		t.declareGap(c, d, int(rel))
	}
	payload := f.Payload
	if len(payload) > plen {
		payload = payload[:plen]
	}
	t.deliver(c, d, payload, plen)
	if tcp.Flags&packet.FlagFIN != 0 {
		h.next++
	}
}

func (t *Table) reassemble(c *Conn, d Dir, f *packet.Frame, seg *Segment) {
	h := &c.half[d]
	tcp := &f.TCP
	dataSeq := tcp.Seq
	if tcp.Flags&packet.FlagSYN != 0 {
		dataSeq++
		if !h.nextSet || int32(dataSeq-h.next) > 0 {
			h.next = dataSeq
			h.nextSet = true
		}
	}
	plen := f.PayloadLen
	if tcp.Flags&packet.FlagFIN != 0 {
		h.finSeq = dataSeq + uint32(plen)
	}
	if plen <= 0 {
		if !h.nextSet && tcp.Flags&packet.FlagRST == 0 {
			h.next = dataSeq
			h.nextSet = true
		}
		return
	}
	if !h.nextSet {
		h.next = dataSeq
		h.nextSet = true
	}
	payload := f.Payload
	if len(payload) > plen {
		payload = payload[:plen]
	}
	rel := int32(dataSeq - h.next)
	switch {
	case rel == 0:
		t.deliver(c, d, payload, plen)
		t.drain(c, d)
	case rel < 0:
		end := dataSeq + uint32(plen)
		over := int32(end - h.next)
		if over <= 0 {
			seg.Analysis |= Retransmission
			if plen <= 1 && rel == -1 {
				seg.Analysis |= KeepAliveSeg
			}
			c.Stat[d].Retrans++
			return
		}
		seg.Analysis |= Overlap
		skip := int(-rel)
		if skip < len(payload) {
			t.deliver(c, d, payload[skip:], plen-skip)
		} else {
			t.deliver(c, d, nil, plen-skip)
		}
		t.drain(c, d)
	default:
		if rel > 1<<30 {
			// Far ahead: treat as a loss of sync rather than holding it.
			seg.Analysis |= GapBefore
			t.declareGap(c, d, int(rel))
			t.deliver(c, d, payload, plen)
			t.drain(c, d)
			return
		}
		seg.Analysis |= OutOfOrder
		t.hold(c, d, dataSeq, payload, plen)
	}
}

// deliver passes in-order bytes on; plen-len(b) bytes beyond b were not
// captured (snap length) and are reported as a gap.
func (t *Table) deliver(c *Conn, d Dir, b []byte, plen int) {
	h := &c.half[d]
	if len(b) > 0 {
		t.recv.Data(c, d, b)
	}
	h.next += uint32(len(b))
	if missing := plen - len(b); missing > 0 {
		t.declareGap(c, d, missing)
	}
}

func (t *Table) hold(c *Conn, d Dir, seq uint32, payload []byte, plen int) {
	h := &c.half[d]
	cp := make([]byte, len(payload))
	copy(cp, payload)
	// A segment the snap length cut is held with its captured part; the rest
	// becomes a gap when the next segment is drained.
	s := segment{seq: seq, data: cp}
	i, found := slices.BinarySearchFunc(h.ooo, seq, func(x segment, s uint32) int {
		switch diff := int32(x.seq - s); {
		case diff < 0:
			return -1
		case diff > 0:
			return 1
		}
		return 0
	})
	if found && len(h.ooo[i].data) >= len(cp) {
		c.Stat[d].Retrans++
		return
	}
	if found {
		t.oooTotal -= len(h.ooo[i].data)
		h.oooBytes -= len(h.ooo[i].data)
		h.ooo[i] = s
	} else {
		h.ooo = slices.Insert(h.ooo, i, s)
	}
	h.oooBytes += len(cp)
	t.oooTotal += len(cp)
	if h.oooBytes > t.opts.MaxOutOfOrder || t.oooTotal > t.opts.MaxOutOfOrderTotal {
		t.flushHoles(c, d)
	}
}

// drain delivers held segments that are now in order.
func (t *Table) drain(c *Conn, d Dir) {
	h := &c.half[d]
	for len(h.ooo) > 0 {
		s := h.ooo[0]
		rel := int32(s.seq - h.next)
		if rel > 0 {
			return
		}
		h.ooo = h.ooo[1:]
		h.oooBytes -= len(s.data)
		t.oooTotal -= len(s.data)
		end := s.seq + uint32(len(s.data))
		if int32(end-h.next) > 0 {
			t.recv.Data(c, d, s.data[-rel:])
			h.next = end
		}
	}
	if len(h.ooo) == 0 {
		h.ooo = h.ooo[:0:0]
	}
}

// flushHoles declares every hole in direction d a gap and delivers what is held.
func (t *Table) flushHoles(c *Conn, d Dir) {
	h := &c.half[d]
	for len(h.ooo) > 0 {
		if rel := int32(h.ooo[0].seq - h.next); rel > 0 {
			t.declareGap(c, d, int(rel))
		}
		t.drain(c, d)
	}
}

func (t *Table) remove(c *Conn, why CloseReason) {
	if c.removed {
		return
	}
	for d := FromA; d <= FromB; d++ {
		t.flushHoles(c, d)
	}
	if c.Open() || c.Reason == ReasonOpen {
		c.Reason = why
	}
	if c.inEmbryo && why == ReasonEvicted {
		if t.gone == nil {
			t.gone, t.goneSeed = make([]uint64, 1<<16), maphash.MakeSeed()
		}
		h := t.synHash(c.key, c.half[FromA].baseSeq)
		t.gone[h%uint64(len(t.gone))] = h
	}
	t.unlist(c)
	delete(t.conns, c.key)
	c.removed = true
	// The cache lets go of it (a removed connection may hold buffers).
	if s := t.slotOf(c.A.Addr(), c.A.Port(), c.B.Addr(), c.B.Port()); t.recent[s] == c {
		t.recent[s] = nil
	}
	t.recv.Closed(c)
}

// synHash identifies a SYN: its connection's key and sequence number
// (never 0, the empty slot).
func (t *Table) synHash(k key, seq uint32) uint64 {
	return maphash.Comparable(t.goneSeed, struct {
		k   key
		seq uint32
	}{k, seq}) | 1
}

// unlist takes c out of the list it is in.
func (t *Table) unlist(c *Conn) {
	switch {
	case c.inClosed:
		t.closed.remove(c)
	case c.inEmbryo:
		t.embryo.remove(c)
		t.nEmbryo--
		c.inEmbryo = false
	default:
		t.active.remove(c)
	}
}

func (t *Table) evict() {
	if t.closed.tail != nil {
		t.remove(t.closed.tail, ReasonFIN)
		return
	}
	if t.embryo.tail != nil {
		t.remove(t.embryo.tail, ReasonEvicted)
		return
	}
	if t.active.tail != nil {
		t.remove(t.active.tail, ReasonEvicted)
	}
}

func (t *Table) sweep(now int64) {
	t.lastSweep = now
	linger := int64(t.opts.Linger)
	for c := t.closed.tail; c != nil && now-c.closedAt > linger; c = t.closed.tail {
		t.remove(c, c.Reason)
	}
	if idle := int64(t.opts.IdleTimeout); idle > 0 {
		for c := t.active.tail; c != nil && now-c.Last > idle; c = t.active.tail {
			t.remove(c, ReasonIdle)
		}
		for c := t.embryo.tail; c != nil && now-c.Last > idle; c = t.embryo.tail {
			t.remove(c, ReasonIdle)
		}
	}
}

// Flush ends the capture: every connection still in the table is flushed (held
// data delivered after declaring gaps) and closed, in stream order.
func (t *Table) Flush() {
	all := make([]*Conn, 0, len(t.conns))
	for _, c := range t.conns {
		all = append(all, c)
	}
	slices.SortFunc(all, func(a, b *Conn) int { return a.Index - b.Index })
	for _, c := range all {
		t.remove(c, ReasonEnd)
	}
}
