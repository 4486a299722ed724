package packet

import (
	"encoding/binary"
	"net/netip"
)

// IPv4, RFC 791.
func decodeIPv4(b []byte, f *Frame) {
	f.IPVersion = 4
	if len(b) < 20 {
		f.Status = Truncated
		return
	}
	if b[0]>>4 != 4 {
		f.Status = Malformed
		return
	}
	ihl := int(b[0]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(b[2:]))
	f.DSField = b[1]
	f.IPID = binary.BigEndian.Uint16(b[4:])
	ff := binary.BigEndian.Uint16(b[6:])
	f.IPFlags = uint8(ff >> 13)
	f.FragOffset = (ff & 0x1fff) * 8
	f.TTL = b[8]
	f.IPProto = b[9]
	f.IPChecksum = binary.BigEndian.Uint16(b[10:])
	f.Src = netip.AddrFrom4([4]byte(b[12:16]))
	f.Dst = netip.AddrFrom4([4]byte(b[16:20]))
	f.IPLen = total
	f.IPHdrLen = ihl
	if ihl < 20 || total < ihl {
		f.Status = Malformed
		return
	}
	if len(b) < ihl {
		f.Status = Truncated
		return
	}
	if rep := len(b) + f.uncaptured; total > rep {
		// The header claims more than the frame holds: only what is there counts.
		total = rep
		f.LengthClamped = true
		if total < ihl {
			f.Status = Malformed
			return
		}
	}
	end := total
	if end > len(b) {
		end = len(b) // cut by the snap length
	}
	if f.FragOffset != 0 || f.IPFlags&1 != 0 {
		f.Status = Fragment
		return
	}
	decodeTransport(b[ihl:end], total-ihl, f)
}

// IPv6, RFC 8200, skipping hop-by-hop, routing, destination options and AH headers.
func decodeIPv6(b []byte, f *Frame) {
	f.IPVersion = 6
	if len(b) < 40 {
		f.Status = Truncated
		return
	}
	if b[0]>>4 != 6 {
		f.Status = Malformed
		return
	}
	f.DSField = uint8(binary.BigEndian.Uint16(b) >> 4)
	plen := int(binary.BigEndian.Uint16(b[4:]))
	next := b[6]
	f.TTL = b[7]
	f.Src = netip.AddrFrom16([16]byte(b[8:24]))
	f.Dst = netip.AddrFrom16([16]byte(b[24:40]))
	f.IPLen = 40 + plen
	if rep := len(b) + f.uncaptured - 40; plen > rep {
		plen = rep
		f.LengthClamped = true
	}
	end := 40 + plen
	if end > len(b) {
		end = len(b)
	}
	off := 40
	for {
		switch next {
		case 0, 43, 60: // hop-by-hop, routing, destination options
			if off+8 > end {
				f.Status = Truncated
				return
			}
			l := 8 + int(b[off+1])*8
			next = b[off]
			off += l
		case 51: // authentication header: length in 4-byte units, minus 2
			if off+8 > end {
				f.Status = Truncated
				return
			}
			l := (int(b[off+1]) + 2) * 4
			next = b[off]
			off += l
		case 44: // fragment
			if off+8 > end {
				f.Status = Truncated
				return
			}
			fo := binary.BigEndian.Uint16(b[off+2:])
			f.FragOffset = fo &^ 7
			f.IPProto = b[off]
			f.IPHdrLen = off + 8
			f.Status = Fragment
			return
		default:
			f.IPProto = next
			f.IPHdrLen = off
			if off > end {
				f.Status = Malformed
				return
			}
			decodeTransport(b[off:end], 40+plen-off, f)
			return
		}
		if off > end {
			f.Status = Truncated
			return
		}
	}
}

// decodeTransport decodes TCP or UDP in b (the IP payload as captured); length
// is the IP payload length per the IP header.
func decodeTransport(b []byte, length int, f *Frame) {
	switch f.IPProto {
	case ProtoTCP:
		decodeTCP(b, length, f)
	case ProtoUDP:
		decodeUDP(b, length, f)
	default:
		f.Payload = b
		f.PayloadLen = length
	}
}

// TCP, RFC 9293.
func decodeTCP(b []byte, length int, f *Frame) {
	if len(b) < 20 {
		f.Status = Truncated
		return
	}
	t := &f.TCP
	f.SrcPort = binary.BigEndian.Uint16(b)
	f.DstPort = binary.BigEndian.Uint16(b[2:])
	t.Seq = binary.BigEndian.Uint32(b[4:])
	t.Ack = binary.BigEndian.Uint32(b[8:])
	hl := int(b[12]>>4) * 4
	t.HdrLen = uint8(hl)
	t.Flags = binary.BigEndian.Uint16(b[12:]) & 0x0fff
	t.Window = binary.BigEndian.Uint16(b[14:])
	t.Checksum = binary.BigEndian.Uint16(b[16:])
	t.Urgent = binary.BigEndian.Uint16(b[18:])
	if hl < 20 || hl > length {
		f.Status = Malformed
		return
	}
	if hl > len(b) {
		f.Status = Truncated
		return
	}
	parseTCPOptions(b[20:hl], t)
	f.Payload = b[hl:]
	f.PayloadLen = length - hl
}

func parseTCPOptions(o []byte, t *TCP) {
	for len(o) > 0 {
		kind := o[0]
		if kind == 0 {
			return
		}
		if kind == 1 {
			o = o[1:]
			continue
		}
		if len(o) < 2 || int(o[1]) < 2 || int(o[1]) > len(o) {
			return
		}
		l := int(o[1])
		switch {
		case kind == 2 && l == 4:
			t.MSS = binary.BigEndian.Uint16(o[2:])
		case kind == 3 && l == 3:
			t.WScale = int8(o[2])
		case kind == 4 && l == 2:
			t.SACKPerm = true
		case kind == 8 && l == 10:
			t.HasTS = true
			t.TSVal = binary.BigEndian.Uint32(o[2:])
			t.TSEcr = binary.BigEndian.Uint32(o[6:])
		}
		o = o[l:]
	}
}

// UDP, RFC 768.
func decodeUDP(b []byte, length int, f *Frame) {
	if len(b) < 8 {
		f.Status = Truncated
		return
	}
	f.SrcPort = binary.BigEndian.Uint16(b)
	f.DstPort = binary.BigEndian.Uint16(b[2:])
	f.UDPLen = binary.BigEndian.Uint16(b[4:])
	f.Payload = b[8:]
	f.PayloadLen = length - 8
}
