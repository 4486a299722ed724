// Package packet decodes the link, network and transport layers of a captured
// frame (Ethernet with 802.1Q/802.1ad tags and PPPoE, Linux cooked SLL and SLL2,
// BSD loopback, raw IP; IPv4 and IPv6 with extension headers; TCP and UDP) into a
// caller-owned Frame, without allocating. Frames it cannot decode are classified
// by Status so that the caller can count and skip them.
package packet

import (
	"net/netip"

	"github.com/iomtguard/iomtguard/internal/capture"
)

// Status says how far decoding got.
type Status uint8

const (
	OK              Status = iota // decoded through the transport layer (or IP with another protocol)
	UnsupportedLink               // link type not understood
	NotIP                         // link layer carries something other than IPv4/IPv6 (ARP, LLC, ...)
	Fragment                      // an IP fragment: no transport header is decoded
	Truncated                     // cut short by the capture's snap length before the transport header
	Malformed                     // a header is inconsistent (bad version, lengths)
)

func (s Status) String() string {
	switch s {
	case OK:
		return "ok"
	case UnsupportedLink:
		return "unsupported link type"
	case NotIP:
		return "not IP"
	case Fragment:
		return "IP fragment"
	case Truncated:
		return "truncated"
	case Malformed:
		return "malformed"
	}
	return "unknown"
}

// IP protocol numbers used here.
const (
	ProtoICMP   = 1
	ProtoTCP    = 6
	ProtoUDP    = 17
	ProtoICMPv6 = 58
)

// TCP flag bits as in tshark's tcp.flags (12 bits: 3 reserved, AE, CWR, ECE, URG, ACK, PSH, RST, SYN, FIN).
const (
	FlagFIN = 0x001
	FlagSYN = 0x002
	FlagRST = 0x004
	FlagPSH = 0x008
	FlagACK = 0x010
	FlagURG = 0x020
	FlagECE = 0x040
	FlagCWR = 0x080
	FlagAE  = 0x100
)

// TCP is a decoded TCP header.
type TCP struct {
	Seq, Ack uint32
	Flags    uint16 // 12 bits, see Flag constants
	Window   uint16 // raw window field (before scaling)
	HdrLen   uint8  // header length in bytes
	Checksum uint16
	Urgent   uint16

	// Options.
	MSS      uint16 // 0 if absent
	WScale   int8   // -1 if absent
	SACKPerm bool
	HasTS    bool
	TSVal    uint32
	TSEcr    uint32
}

// Frame is one decoded frame. Payload aliases the input buffer.
type Frame struct {
	Status   Status
	LinkType capture.LinkType

	EtherType uint16 // 0x0800, 0x86dd, ... (0 when the link layer has none)
	// SrcMAC and DstMAC are the Ethernet addresses (HasMAC: the link is
	// Ethernet; a device's MAC is what the inventory lists beside its IP).
	SrcMAC, DstMAC [6]byte
	HasMAC         bool
	VLAN           uint16 // outermost 802.1Q VLAN ID, 0 if untagged

	IPVersion  uint8 // 4 or 6; 0 when not IP
	Src, Dst   netip.Addr
	IPProto    uint8 // transport protocol (after IPv6 extension headers)
	TTL        uint8 // IPv4 TTL or IPv6 hop limit
	DSField    uint8
	IPID       uint16
	IPLen      int // ip.len (IPv4 total length; IPv6 40 + payload length)
	IPHdrLen   int // IPv4 header length; IPv6 40 plus extension headers
	IPChecksum uint16
	IPFlags    uint8  // IPv4 flags (3 bits: reserved, DF, MF)
	FragOffset uint16 // in bytes

	SrcPort, DstPort uint16
	TCP              TCP
	UDPLen           uint16

	// Payload is the transport payload as captured, cut at the IP length (no
	// Ethernet padding); PayloadLen is its length per the headers (tcp.len),
	// which exceeds len(Payload) when the snap length cut the frame.
	Payload    []byte
	PayloadLen int

	// LengthClamped is set when a length field said more than the frame
	// holds (tshark's expert info "total length exceeds packet length").
	LengthClamped bool

	uncaptured int // reported bytes past the captured ones (a snap-length cut)
}

// IsTCP reports whether the frame carries a decoded TCP header.
func (f *Frame) IsTCP() bool { return f.Status == OK && f.IPProto == ProtoTCP }

// IsUDP reports whether the frame carries a decoded UDP header.
func (f *Frame) IsUDP() bool { return f.Status == OK && f.IPProto == ProtoUDP }

// Decode decodes data, captured on a link of type link, into f. It never panics
// and never allocates; f is overwritten. The frame's reported length is
// len(data): DecodeLen takes it from the capture record.
func Decode(link capture.LinkType, data []byte, f *Frame) { DecodeLen(link, data, len(data), f) }

// DecodeLen is Decode for a frame of reported length reported (the capture
// record's original length, or its captured length when that is larger, as
// tshark takes it). Lengths read from headers are clamped to it, as tshark
// does ("IPv4 total length exceeds packet length"): an IP total length past
// the frame's end counts only the bytes the frame has; beyond the captured
// bytes and within the reported length, a snap-length cut, it stands.
func DecodeLen(link capture.LinkType, data []byte, reported int, f *Frame) {
	*f = Frame{LinkType: link, TCP: TCP{WScale: -1}}
	if reported > len(data) {
		f.uncaptured = reported - len(data)
	}
	switch link.Normalize() {
	case capture.LinkEthernet:
		decodeEthernet(data, f)
	case capture.LinkSLL:
		decodeSLL(data, f)
	case capture.LinkSLL2:
		decodeSLL2(data, f)
	case capture.LinkNull:
		decodeNull(data, f, false)
	case capture.LinkLoop:
		decodeNull(data, f, true)
	case capture.LinkRaw:
		decodeRaw(data, f)
	case capture.LinkIPv4:
		f.EtherType = 0x0800
		decodeIPv4(data, f)
	case capture.LinkIPv6:
		f.EtherType = 0x86dd
		decodeIPv6(data, f)
	default:
		f.Status = UnsupportedLink
	}
}

// decodeEtherType dispatches on an EtherType (or PPP protocol mapped to one).
func decodeEtherType(et uint16, b []byte, f *Frame) {
	f.EtherType = et
	switch et {
	case 0x0800:
		decodeIPv4(b, f)
	case 0x86dd:
		decodeIPv6(b, f)
	default:
		f.Status = NotIP
	}
}

func decodeRaw(b []byte, f *Frame) {
	if len(b) < 1 {
		f.Status = Truncated
		return
	}
	switch b[0] >> 4 {
	case 4:
		f.EtherType = 0x0800
		decodeIPv4(b, f)
	case 6:
		f.EtherType = 0x86dd
		decodeIPv6(b, f)
	default:
		f.Status = Malformed
	}
}
