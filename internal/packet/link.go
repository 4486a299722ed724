package packet

import "encoding/binary"

// Ethernet II with any number of 802.1Q (0x8100), 802.1ad (0x88a8) and
// pre-standard QinQ (0x9100) tags, and PPPoE session frames (0x8864).
func decodeEthernet(b []byte, f *Frame) {
	if len(b) < 14 {
		f.Status = Truncated
		return
	}
	et := binary.BigEndian.Uint16(b[12:])
	f.DstMAC, f.SrcMAC, f.HasMAC = [6]byte(b[0:6]), [6]byte(b[6:12]), true
	b = b[14:]
	for et == 0x8100 || et == 0x88a8 || et == 0x9100 {
		if len(b) < 4 {
			f.Status = Truncated
			return
		}
		if f.VLAN == 0 {
			f.VLAN = binary.BigEndian.Uint16(b) & 0x0fff
		}
		et = binary.BigEndian.Uint16(b[2:])
		b = b[4:]
	}
	if et == 0x8864 { // PPPoE session: 6-byte header, then a 2-byte PPP protocol
		if len(b) < 8 {
			f.Status = Truncated
			return
		}
		switch binary.BigEndian.Uint16(b[6:]) {
		case 0x0021:
			et = 0x0800
		case 0x0057:
			et = 0x86dd
		default:
			f.EtherType = et
			f.Status = NotIP
			return
		}
		b = b[8:]
	}
	if et < 0x0600 { // an 802.3 length field: LLC follows, not IP
		f.Status = NotIP
		return
	}
	decodeEtherType(et, b, f)
}

// Linux cooked capture v1: 16-byte header, protocol in the last two bytes.
func decodeSLL(b []byte, f *Frame) {
	if len(b) < 16 {
		f.Status = Truncated
		return
	}
	decodeEtherType(binary.BigEndian.Uint16(b[14:]), b[16:], f)
}

// Linux cooked capture v2: 20-byte header, protocol in the first two bytes.
func decodeSLL2(b []byte, f *Frame) {
	if len(b) < 20 {
		f.Status = Truncated
		return
	}
	decodeEtherType(binary.BigEndian.Uint16(b), b[20:], f)
}

// BSD loopback (DLT_NULL: address family in the capturing host's byte order) and
// OpenBSD loopback (DLT_LOOP: network order). IPv6 is 24, 28 or 30 depending on the BSD.
func decodeNull(b []byte, f *Frame, network bool) {
	if len(b) < 4 {
		f.Status = Truncated
		return
	}
	af := binary.BigEndian.Uint32(b)
	if !network && af > 0xffff {
		af = binary.LittleEndian.Uint32(b)
	}
	switch af {
	case 2:
		f.EtherType = 0x0800
		decodeIPv4(b[4:], f)
	case 10, 24, 28, 30:
		f.EtherType = 0x86dd
		decodeIPv6(b[4:], f)
	default:
		f.Status = NotIP
	}
}
