// Package pcaptest writes small captures for tests: TCP conversations scripted
// segment by segment (handshake, data, retransmissions, reordering, loss), so
// that tests can exercise the decoder and compare it with tshark.
package pcaptest

import (
	"bytes"
	"net/netip"

	"github.com/iomtguard/iomtguard/internal/capture"
	"github.com/iomtguard/iomtguard/internal/packet"
)

// Capture accumulates frames.
type Capture struct {
	Link   capture.LinkType
	frames []frame
	ts     int64
}

type frame struct {
	ts   int64
	data []byte
	orig int // original length written to the record (0: len(data))
}

func (f frame) origLen() int {
	if f.orig != 0 {
		return f.orig
	}
	return len(f.data)
}

// New returns an empty capture on link type lt, starting at ts (ns).
func New(lt capture.LinkType, ts int64) *Capture { return &Capture{Link: lt, ts: ts} }

// Tick advances the clock by d ns.
func (c *Capture) Tick(d int64) { c.ts += d }

// Raw adds a frame with the given bytes at the current time.
func (c *Capture) Raw(b []byte) {
	c.frames = append(c.frames, frame{ts: c.ts, data: append([]byte(nil), b...)})
	c.ts += 1000
}

// Last returns the bytes of the last frame added, for tests that edit it.
func (c *Capture) Last() []byte { return c.frames[len(c.frames)-1].data }

// SetOrig makes the last frame's record claim orig bytes on the wire: less
// than its bytes is a corrupt record; more, a snap-length cut.
func (c *Capture) SetOrig(orig int) { c.frames[len(c.frames)-1].orig = orig }

// Add adds a frame holding segment s.
func (c *Capture) Add(s *packet.Segment) {
	c.Raw(packet.AppendFrame(nil, c.Link, s))
}

// Frames is the number of frames so far.
func (c *Capture) Frames() int { return len(c.frames) }

// Pcap returns the capture as classic pcap bytes.
func (c *Capture) Pcap() []byte {
	var buf bytes.Buffer
	w, _ := capture.NewPcapWriter(&buf, c.Link)
	for _, f := range c.frames {
		w.WritePacket(f.ts, f.data, f.origLen())
	}
	w.Flush()
	return buf.Bytes()
}

// Pcapng returns the capture as pcapng bytes.
func (c *Capture) Pcapng() []byte {
	var buf bytes.Buffer
	w, _ := capture.NewPcapngWriter(&buf, c.Link, "test")
	for _, f := range c.frames {
		w.WritePacket(f.ts, f.data, f.origLen())
	}
	w.Flush()
	return buf.Bytes()
}

// Conn scripts one TCP connection between a client and a server.
type Conn struct {
	C              *Capture
	Client, Server netip.AddrPort
	Seq            [2]uint32 // next sequence number: [0] client, [1] server
	TS             bool      // add TCP timestamps
	Window         uint16
}

// Dir of a segment: FromClient or FromServer.
const (
	FromClient = 0
	FromServer = 1
)

// NewConn starts a connection with initial sequence numbers 1000 and 5000.
func (c *Capture) NewConn(client, server string) *Conn {
	return &Conn{C: c, Client: netip.MustParseAddrPort(client), Server: netip.MustParseAddrPort(server),
		Seq: [2]uint32{1000, 5000}, Window: 502}
}

func (k *Conn) seg(dir int, seq uint32, flags uint16, payload []byte) *packet.Segment {
	s := &packet.Segment{Seq: seq, Ack: k.Seq[1-dir], Flags: flags, Window: k.Window, Payload: payload, WScale: -1}
	if dir == FromClient {
		s.Src, s.Dst = k.Client, k.Server
	} else {
		s.Src, s.Dst = k.Server, k.Client
	}
	if k.TS {
		s.HasTS, s.TSVal, s.TSEcr = true, uint32(k.C.ts/1e6), uint32(k.C.ts/1e6)
	}
	return s
}

// Handshake adds SYN, SYN-ACK and ACK.
func (k *Conn) Handshake() {
	s := k.seg(FromClient, k.Seq[0], packet.FlagSYN, nil)
	s.Ack = 0
	s.MSS, s.WScale = 1460, 7
	k.C.Add(s)
	k.Seq[0]++
	s = k.seg(FromServer, k.Seq[1], packet.FlagSYN|packet.FlagACK, nil)
	s.MSS, s.WScale = 1460, 7
	k.C.Add(s)
	k.Seq[1]++
	k.C.Add(k.seg(FromClient, k.Seq[0], packet.FlagACK, nil))
}

// Send adds a data segment from dir and advances its sequence number.
func (k *Conn) Send(dir int, payload []byte) {
	k.C.Add(k.seg(dir, k.Seq[dir], packet.FlagPSH|packet.FlagACK, payload))
	k.Seq[dir] += uint32(len(payload))
}

// SendAt adds a data segment from dir at an explicit sequence number without
// advancing (for retransmissions and reordering).
func (k *Conn) SendAt(dir int, seq uint32, payload []byte) {
	k.C.Add(k.seg(dir, seq, packet.FlagPSH|packet.FlagACK, payload))
}

// Skip advances dir's sequence number by n without adding a frame (a loss).
func (k *Conn) Skip(dir int, n int) { k.Seq[dir] += uint32(n) }

// Ack adds a pure ACK from dir.
func (k *Conn) Ack(dir int) { k.C.Add(k.seg(dir, k.Seq[dir], packet.FlagACK, nil)) }

// Close adds FIN from both sides and the last ACK.
func (k *Conn) Close() {
	k.C.Add(k.seg(FromClient, k.Seq[0], packet.FlagFIN|packet.FlagACK, nil))
	k.Seq[0]++
	k.C.Add(k.seg(FromServer, k.Seq[1], packet.FlagFIN|packet.FlagACK, nil))
	k.Seq[1]++
	k.C.Add(k.seg(FromClient, k.Seq[0], packet.FlagACK, nil))
}

// Reset adds a RST from dir.
func (k *Conn) Reset(dir int) { k.C.Add(k.seg(dir, k.Seq[dir], packet.FlagRST|packet.FlagACK, nil)) }

// SYN adds a lone SYN from the client (an attempt that is never completed
// unless Handshake follows).
func (k *Conn) SYN() {
	s := k.seg(FromClient, k.Seq[0], packet.FlagSYN, nil)
	s.Ack = 0
	s.MSS, s.WScale = 1460, 7
	k.C.Add(s)
}
