// Package capture reads packet captures: classic pcap (both byte orders, micro- and
// nanosecond timestamps), pcapng (several sections and interfaces, EPB, SPB and the
// obsolete packet block, per-interface timestamp resolution and offset) and gzip
// files of either. It yields raw frames with their link type; decoding the layers
// inside a frame is package packet's job.
//
// A damaged file is not fatal: the reader returns every packet it could read and
// then a *DamageError saying where it stopped. A file that is not a capture at all
// gives ErrNotCapture.
package capture

import (
	"bufio"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
)

// LinkType is a LINKTYPE_ value from the tcpdump.org registry.
type LinkType uint16

// Link types the decoder understands. Others are read and counted, not decoded.
const (
	LinkNull     LinkType = 0   // BSD loopback: 4-byte address family in host order
	LinkEthernet LinkType = 1   // Ethernet II, with 802.1Q / 802.1ad tags
	LinkRaw      LinkType = 101 // raw IPv4 or IPv6
	LinkLoop     LinkType = 108 // OpenBSD loopback: 4-byte address family, network order
	LinkSLL      LinkType = 113 // Linux cooked capture v1
	LinkIPv4     LinkType = 228 // raw IPv4
	LinkIPv6     LinkType = 229 // raw IPv6
	LinkSLL2     LinkType = 276 // Linux cooked capture v2
	linkRawAlt   LinkType = 12  // DLT_RAW as some BSDs number it
	linkRawAlt2  LinkType = 14  // DLT_RAW on OpenBSD
)

// Normalize maps aliases of a link type to the canonical value.
func (l LinkType) Normalize() LinkType {
	switch l {
	case linkRawAlt, linkRawAlt2:
		return LinkRaw
	}
	return l
}

func (l LinkType) String() string {
	switch l.Normalize() {
	case LinkNull:
		return "null"
	case LinkEthernet:
		return "ethernet"
	case LinkRaw:
		return "raw"
	case LinkLoop:
		return "loop"
	case LinkSLL:
		return "sll"
	case LinkIPv4:
		return "ipv4"
	case LinkIPv6:
		return "ipv6"
	case LinkSLL2:
		return "sll2"
	}
	return fmt.Sprintf("linktype-%d", uint16(l))
}

// Packet is one captured frame. Data aliases the reader's buffer and stays valid
// only until the next call to Next; copy it to keep it.
type Packet struct {
	Timestamp int64 // nanoseconds since the Unix epoch
	CapLen    int   // bytes captured (len(Data))
	OrigLen   int   // bytes on the wire
	LinkType  LinkType
	Interface int // pcapng interface index within its section; 0 for pcap
	Data      []byte
}

// Reader yields packets in file order.
type Reader interface {
	// Next fills p with the next packet. It returns io.EOF at a clean end and a
	// *DamageError when the file is truncated or corrupt after the last good packet.
	Next(p *Packet) error
	// Format names the container: "pcap", "pcapng", with a "+gzip" suffix when compressed.
	Format() string
}

// ErrNotCapture reports a file that is neither pcap nor pcapng (nor gzip of them).
var ErrNotCapture = errors.New("capture: not a pcap or pcapng file")

// MaxPacketLen is the largest record accepted; Wireshark uses the same bound
// (262144) for the link types it supports. A larger record marks damage.
const MaxPacketLen = 262144

// DamageError reports where a damaged capture stopped being readable.
type DamageError struct {
	Offset int64  // byte offset in the (decompressed) file where reading stopped
	Packet int    // number of packets read before the damage
	Reason string // what was wrong
}

func (e *DamageError) Error() string {
	return fmt.Sprintf("capture: damaged after packet %d at byte %d: %s", e.Packet, e.Offset, e.Reason)
}

// Kind is what Sniff recognised at the start of a file.
type Kind int

const (
	KindUnknown Kind = iota
	KindPcap
	KindPcapng
	KindGzip
)

// Sniff classifies a file from its first bytes (at least 4 are needed).
func Sniff(head []byte) Kind {
	if len(head) >= 2 && head[0] == 0x1f && head[1] == 0x8b {
		return KindGzip
	}
	if len(head) < 4 {
		return KindUnknown
	}
	switch {
	case isPcapMagic(head[:4]):
		return KindPcap
	case head[0] == 0x0a && head[1] == 0x0d && head[2] == 0x0d && head[3] == 0x0a:
		return KindPcapng
	}
	return KindUnknown
}

// NewReader returns a Reader for r, detecting the format (and gzip) from its first bytes.
func NewReader(r io.Reader) (Reader, error) {
	// A small buffer, enough to tell the formats apart (the one given is
	// used when it is a bufio.Reader of at least that size): the window
	// reads past it, straight from r, in chunks larger than it.
	br := bufio.NewReaderSize(r, 4096)
	head, _ := br.Peek(4)
	switch Sniff(head) {
	case KindGzip:
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("capture: gzip: %w", err)
		}
		inner, err := NewReader(zr)
		if err != nil {
			return nil, err
		}
		return gzipped{inner}, nil
	case KindPcap:
		return newPcapReader(br)
	case KindPcapng:
		return newPcapngReader(br)
	}
	return nil, ErrNotCapture
}

type gzipped struct{ Reader }

func (g gzipped) Format() string { return g.Reader.Format() + "+gzip" }
