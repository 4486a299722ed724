package packet

import (
	"encoding/binary"
	"net/netip"

	"github.com/iomtguard/iomtguard/internal/capture"
)

// Segment describes a TCP segment to build.
type Segment struct {
	Src, Dst netip.AddrPort
	Seq, Ack uint32
	Flags    uint16
	Window   uint16
	TTL      uint8 // default 64
	IPID     uint16
	// Options: MSS and window scale go on SYNs; timestamps on every segment when HasTS.
	MSS      uint16
	WScale   int8 // -1: none
	SACKPerm bool
	HasTS    bool
	TSVal    uint32
	TSEcr    uint32
	Payload  []byte
	// SrcMAC and DstMAC are used on Ethernet links.
	SrcMAC, DstMAC [6]byte
}

// AppendFrame appends a complete frame for link (Ethernet, SLL, SLL2, NULL,
// raw) carrying s over IPv4 or IPv6 (by the address family), with correct
// checksums.
func AppendFrame(dst []byte, link capture.LinkType, s *Segment) []byte {
	v6 := s.Src.Addr().Is6() && !s.Src.Addr().Is4In6()
	switch link.Normalize() {
	case capture.LinkEthernet:
		dst = append(dst, s.DstMAC[:]...)
		dst = append(dst, s.SrcMAC[:]...)
		if v6 {
			dst = append(dst, 0x86, 0xdd)
		} else {
			dst = append(dst, 0x08, 0x00)
		}
	case capture.LinkSLL:
		// packet type: 0 to us, 4 outgoing; ARPHRD_ETHER; 6-byte address.
		dst = append(dst, 0, 0, 0, 1, 0, 6)
		dst = append(dst, s.SrcMAC[:]...)
		dst = append(dst, 0, 0)
		if v6 {
			dst = append(dst, 0x86, 0xdd)
		} else {
			dst = append(dst, 0x08, 0x00)
		}
	case capture.LinkSLL2:
		if v6 {
			dst = append(dst, 0x86, 0xdd)
		} else {
			dst = append(dst, 0x08, 0x00)
		}
		dst = append(dst, 0, 0, 0, 0, 0, 2, 0, 1, 0, 6)
		dst = append(dst, s.SrcMAC[:]...)
		dst = append(dst, 0, 0)
	case capture.LinkNull:
		if v6 {
			dst = binary.LittleEndian.AppendUint32(dst, 30)
		} else {
			dst = binary.LittleEndian.AppendUint32(dst, 2)
		}
	case capture.LinkLoop:
		if v6 {
			dst = binary.BigEndian.AppendUint32(dst, 30)
		} else {
			dst = binary.BigEndian.AppendUint32(dst, 2)
		}
	}
	return AppendIPTCP(dst, s)
}

// AppendIPTCP appends an IPv4 or IPv6 packet holding the TCP segment s.
func AppendIPTCP(dst []byte, s *Segment) []byte {
	var opts [40]byte
	o := opts[:0]
	if s.MSS != 0 {
		o = append(o, 2, 4, byte(s.MSS>>8), byte(s.MSS))
	}
	if s.SACKPerm {
		o = append(o, 4, 2)
	}
	if s.HasTS {
		if len(o)%4 == 0 {
			o = append(o, 1, 1)
		}
		o = append(o, 8, 10)
		o = binary.BigEndian.AppendUint32(o, s.TSVal)
		o = binary.BigEndian.AppendUint32(o, s.TSEcr)
	}
	if s.WScale >= 0 && s.Flags&FlagSYN != 0 {
		o = append(o, 1, 3, 3, byte(s.WScale))
	}
	for len(o)%4 != 0 {
		o = append(o, 1)
	}
	tcpLen := 20 + len(o) + len(s.Payload)
	ttl := s.TTL
	if ttl == 0 {
		ttl = 64
	}
	v6 := s.Src.Addr().Is6() && !s.Src.Addr().Is4In6()
	ipStart := len(dst)
	if v6 {
		dst = append(dst, 0x60, 0, 0, 0)
		dst = binary.BigEndian.AppendUint16(dst, uint16(tcpLen))
		dst = append(dst, ProtoTCP, ttl)
		a, b := s.Src.Addr().As16(), s.Dst.Addr().As16()
		dst = append(dst, a[:]...)
		dst = append(dst, b[:]...)
	} else {
		dst = append(dst, 0x45, 0)
		dst = binary.BigEndian.AppendUint16(dst, uint16(20+tcpLen))
		dst = binary.BigEndian.AppendUint16(dst, s.IPID)
		dst = append(dst, 0x40, 0, ttl, ProtoTCP, 0, 0) // DF
		a, b := s.Src.Addr().As4(), s.Dst.Addr().As4()
		dst = append(dst, a[:]...)
		dst = append(dst, b[:]...)
		binary.BigEndian.PutUint16(dst[ipStart+10:], checksum(dst[ipStart:ipStart+20], 0))
	}
	tcpStart := len(dst)
	dst = binary.BigEndian.AppendUint16(dst, s.Src.Port())
	dst = binary.BigEndian.AppendUint16(dst, s.Dst.Port())
	dst = binary.BigEndian.AppendUint32(dst, s.Seq)
	dst = binary.BigEndian.AppendUint32(dst, s.Ack)
	dst = binary.BigEndian.AppendUint16(dst, uint16((20+len(o))/4)<<12|s.Flags&0x0fff)
	dst = binary.BigEndian.AppendUint16(dst, s.Window)
	dst = append(dst, 0, 0, 0, 0)
	dst = append(dst, o...)
	dst = append(dst, s.Payload...)
	// Pseudo-header sum.
	var sum uint32
	if v6 {
		sum = sumBytes(dst[ipStart+8:ipStart+40], 0)
	} else {
		sum = sumBytes(dst[ipStart+12:ipStart+20], 0)
	}
	sum += ProtoTCP + uint32(tcpLen)
	binary.BigEndian.PutUint16(dst[tcpStart+16:], checksum(dst[tcpStart:], sum))
	return dst
}

func sumBytes(b []byte, sum uint32) uint32 {
	for len(b) >= 2 {
		sum += uint32(b[0])<<8 | uint32(b[1])
		b = b[2:]
	}
	if len(b) == 1 {
		sum += uint32(b[0]) << 8
	}
	return sum
}

func checksum(b []byte, initial uint32) uint16 {
	sum := sumBytes(b, initial)
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}
