package sim

import (
	"net/netip"

	"github.com/iomtguard/iomtguard/internal/packet"
)

// Linux-like TCP constants.
const (
	mss         = 1448       // payload per segment with timestamps (1500 - 20 - 32)
	delackMin   = 40_000_000 // TCP_DELACK_MIN, 40 ms
	quickAcks   = 2          // data segments ACKed at once after the handshake
	procDelayLo = 15_000     // host processing before a response, ns
	procDelayHi = 90_000
)

// tcpEnd is one side of a simulated connection.
type tcpEnd struct {
	h        *host
	port     uint16
	snd      uint32 // next sequence number to send
	rcv      uint32 // next expected from the peer
	tsRecent uint32
	win      uint16
	quick    int
	ackOwed  bool // data received and not yet acknowledged
	ackGen   int  // generation of the pending delayed ACK
	finSent  bool
	finRcvd  bool
}

// tcpConn is a simulated TCP connection. The capture point is at the server
// (the broker), lat ns away from the client.
type tcpConn struct {
	e       *engine
	c, s    *tcpEnd
	lat     int64
	tag     frameTag
	onData  [2]func(b []byte) // indexed by direction: [toClient] bytes arriving at the client, [toServer] at the server
	onClose [2]func()         // indexed by direction: a FIN or RST arriving at that direction's receiver
	tls     *tlsLink          // MQTT inside TLS (the --tls posture), else nil
	est     bool
	closed  bool
	reset   bool
	nextGen int
}

// Directions of travel.
const (
	toClient = 0 // sent by the server
	toServer = 1 // sent by the client
)

func (t *tcpConn) sender(d int) *tcpEnd {
	if d == toServer {
		return t.c
	}
	return t.s
}

func (t *tcpConn) receiver(d int) *tcpEnd {
	if d == toServer {
		return t.s
	}
	return t.c
}

// segment builds a segment from side `from` (toServer: sent by the client).
func (t *tcpConn) segment(from int, flags uint16, payload []byte, syn bool) *packet.Segment {
	src, dst := t.c, t.s
	if from == toClient {
		src, dst = t.s, t.c
	}
	src.h.ipid++
	s := &packet.Segment{
		Src: netip.AddrPortFrom(src.h.ip, src.port), Dst: netip.AddrPortFrom(dst.h.ip, dst.port),
		Seq: src.snd, Ack: src.rcv, Flags: flags, Window: src.win, IPID: src.h.ipid, WScale: -1,
		HasTS: true, TSVal: src.h.tsval(t.e.now), TSEcr: src.tsRecent, Payload: payload,
		SrcMAC: src.h.mac, DstMAC: dst.h.mac,
	}
	if flags&packet.FlagACK == 0 {
		s.Ack = 0
		s.TSEcr = 0
	}
	if syn {
		s.MSS, s.WScale, s.SACKPerm = 1460, 7, true
	}
	return s
}

// transmit sends a segment from side `from` now (sender's time): a client's
// segment reaches the capture point lat later; a server's is captured now
// and reaches the client lat later.
func (t *tcpConn) transmit(from int, seg *packet.Segment, deliver func()) {
	if from == toServer {
		t.e.after(t.lat, func() {
			t.e.emit(seg, t.tag)
			deliver()
		})
		return
	}
	t.e.emit(seg, t.tag)
	t.e.after(t.lat, deliver)
}

// dial opens a connection from client host c to server s:port with the
// three-way handshake; established runs when the client has sent its ACK.
// The call is made at the client's time.
func (e *engine) dial(c, s *host, port uint16, tag frameTag, established func(*tcpConn)) *tcpConn {
	t := &tcpConn{e: e, lat: e.jitter(80_000, 350_000), tag: tag}
	t.c = &tcpEnd{h: c, port: c.ephemeral(), snd: e.rng.Uint32(), win: 64240, quick: quickAcks}
	t.s = &tcpEnd{h: s, port: port, snd: e.rng.Uint32(), win: 65160, quick: quickAcks}
	syn := t.segment(toServer, packet.FlagSYN, nil, true)
	t.c.snd++
	t.transmit(toServer, syn, func() {
		t.s.rcv = syn.Seq + 1
		t.s.tsRecent = syn.TSVal
		t.e.after(t.e.jitter(procDelayLo, procDelayHi), func() {
			sa := t.segment(toClient, packet.FlagSYN|packet.FlagACK, nil, true)
			t.s.snd++
			t.transmit(toClient, sa, func() {
				t.c.rcv = sa.Seq + 1
				t.c.tsRecent = sa.TSVal
				t.c.win, t.s.win = 502, 509
				ack := t.segment(toServer, packet.FlagACK, nil, false)
				t.transmit(toServer, ack, func() { t.s.tsRecent = ack.TSVal })
				t.est = true
				if established != nil {
					established(t)
				}
			})
		})
	})
	return t
}

// synOnly sends a bare SYN (scans, SYN floods): the server answers with
// SYN-ACK when open (and the client never completes) or RST when closed.
func (e *engine) synOnly(c *host, sport uint16, s *host, port uint16, open bool, tag frameTag) {
	t := &tcpConn{e: e, lat: e.jitter(80_000, 350_000), tag: tag}
	t.c = &tcpEnd{h: c, port: sport, snd: e.rng.Uint32(), win: 1024}
	t.s = &tcpEnd{h: s, port: port, snd: e.rng.Uint32(), win: 65160}
	syn := t.segment(toServer, packet.FlagSYN, nil, false)
	syn.HasTS = false
	t.transmit(toServer, syn, func() {
		t.s.rcv = syn.Seq + 1
		t.e.after(t.e.jitter(procDelayLo, procDelayHi), func() {
			if open {
				sa := t.segment(toClient, packet.FlagSYN|packet.FlagACK, nil, true)
				sa.HasTS, sa.TSEcr = false, 0
				t.transmit(toClient, sa, func() {})
			} else {
				rst := t.segment(toClient, packet.FlagRST|packet.FlagACK, nil, false)
				rst.HasTS, rst.Window = false, 0
				t.transmit(toClient, rst, func() {})
			}
		})
	})
}

// send sends payload in direction d at the sender's current time, split
// into MSS-sized segments; the receiver ACKs as Linux does (at once for the
// first segments, then after the delayed-ACK timer unless it sends data
// first).
func (t *tcpConn) send(d int, payload []byte) {
	if t.tls != nil && t.tls.up {
		payload = t.tls.seal(d, payload)
	}
	t.sendBytes(d, payload)
}

// sendBytes sends bytes as they are (TLS records and handshake flights, or
// cleartext MQTT).
func (t *tcpConn) sendBytes(d int, payload []byte) {
	if t.closed || t.reset {
		return
	}
	src, dst := t.sender(d), t.receiver(d)
	src.ackOwed = false // data carries the ACK: a pending one is no longer needed
	for len(payload) > 0 {
		n := min(len(payload), mss)
		chunk := append([]byte(nil), payload[:n]...)
		payload = payload[n:]
		seg := t.segment(d, packet.FlagPSH|packet.FlagACK, chunk, false)
		src.snd += uint32(n)
		t.transmit(d, seg, func() {
			if t.reset {
				return
			}
			dst.rcv = seg.Seq + uint32(len(chunk))
			dst.tsRecent = seg.TSVal
			if cb := t.onData[d]; cb != nil {
				if t.tls != nil {
					t.tls.deliver(t, d, chunk, cb)
				} else {
					cb(chunk)
				}
			}
			t.scheduleAck(d)
		})
	}
}

// scheduleAck arranges the ACK of data that travelled in direction d.
func (t *tcpConn) scheduleAck(d int) {
	end := t.receiver(d)
	end.ackOwed = true
	if end.quick > 0 {
		// Quick ACK: from the receive path, before the application can answer.
		end.quick--
		t.e.after(t.e.jitter(3_000, 10_000), func() {
			if end.ackOwed {
				end.ackOwed = false
				t.pureAck(1 - d)
			}
		})
		return
	}
	t.nextGen++
	gen := t.nextGen
	end.ackGen = gen
	t.e.after(delackMin+t.e.jitter(0, 2_000_000), func() {
		if end.ackGen == gen && end.ackOwed {
			end.ackOwed = false
			t.pureAck(1 - d)
		}
	})
}

// pureAck sends an ACK without data in direction d.
func (t *tcpConn) pureAck(d int) {
	if t.closed || t.reset {
		return
	}
	seg := t.segment(d, packet.FlagACK, nil, false)
	dst := t.receiver(d)
	t.transmit(d, seg, func() { dst.tsRecent = seg.TSVal })
}

// close sends FIN in direction d; the peer answers with its own FIN at once
// (its application closes too) and the initiator ACKs it.
func (t *tcpConn) close(d int) {
	if t.closed || t.reset {
		return
	}
	src, dst := t.sender(d), t.receiver(d)
	if src.finSent {
		return
	}
	src.finSent = true
	src.ackOwed = false
	fin := t.segment(d, packet.FlagFIN|packet.FlagACK, nil, false)
	src.snd++
	t.transmit(d, fin, func() {
		if t.reset {
			return
		}
		dst.rcv = fin.Seq + 1
		dst.tsRecent = fin.TSVal
		dst.finRcvd = true
		dst.ackOwed = false
		if cb := t.onClose[d]; cb != nil {
			cb()
		}
		t.e.after(t.e.jitter(procDelayLo, procDelayHi), func() {
			if dst.finSent {
				t.pureAck(1 - d)
				t.closed = true
				return
			}
			dst.finSent = true
			fin2 := t.segment(1-d, packet.FlagFIN|packet.FlagACK, nil, false)
			dst.snd++
			t.transmit(1-d, fin2, func() {
				src.rcv = fin2.Seq + 1
				src.tsRecent = fin2.TSVal
				t.e.after(t.e.jitter(procDelayLo, procDelayHi), func() {
					last := t.segment(d, packet.FlagACK, nil, false)
					t.transmit(d, last, func() { t.closed = true })
				})
			})
		})
	})
}

// abort sends RST in direction d.
func (t *tcpConn) abort(d int) {
	if t.closed || t.reset {
		return
	}
	t.reset = true
	rst := t.segment(d, packet.FlagRST|packet.FlagACK, nil, false)
	rst.HasTS = false
	rst.Window = 0
	t.transmit(d, rst, func() {
		t.closed = true
		if cb := t.onClose[d]; cb != nil {
			cb()
		}
	})
}
