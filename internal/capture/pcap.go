package capture

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Classic pcap (https://www.ietf.org/archive/id/draft-ietf-opsawg-pcap-04.html):
// a 24-byte file header, then records of a 16-byte header and the packet bytes.

const (
	pcapMagicMicro = 0xa1b2c3d4
	pcapMagicNano  = 0xa1b23c4d
	pcapMagicKuz   = 0xa1b2cd34 // Kuznetzov's modified pcap: 8 more bytes per record
)

func isPcapMagic(b []byte) bool {
	be := binary.BigEndian.Uint32(b)
	le := binary.LittleEndian.Uint32(b)
	for _, m := range []uint32{pcapMagicMicro, pcapMagicNano, pcapMagicKuz} {
		if be == m || le == m {
			return true
		}
	}
	return false
}

type pcapReader struct {
	w         *window
	order     binary.ByteOrder
	nano      bool
	extra     int // bytes after each record header (Kuznetzov format)
	link      LinkType
	snaplen   uint32
	n         int
	damageErr error
}

func newPcapReader(r io.Reader) (*pcapReader, error) {
	w := newWindow(r, windowSize)
	h, err := w.take(24)
	if err != nil {
		return nil, ErrNotCapture
	}
	p := &pcapReader{w: w}
	switch {
	case binary.LittleEndian.Uint32(h) == pcapMagicMicro:
		p.order = binary.LittleEndian
	case binary.BigEndian.Uint32(h) == pcapMagicMicro:
		p.order = binary.BigEndian
	case binary.LittleEndian.Uint32(h) == pcapMagicNano:
		p.order, p.nano = binary.LittleEndian, true
	case binary.BigEndian.Uint32(h) == pcapMagicNano:
		p.order, p.nano = binary.BigEndian, true
	case binary.LittleEndian.Uint32(h) == pcapMagicKuz:
		p.order, p.extra = binary.LittleEndian, 8
	case binary.BigEndian.Uint32(h) == pcapMagicKuz:
		p.order, p.extra = binary.BigEndian, 8
	default:
		return nil, ErrNotCapture
	}
	p.snaplen = p.order.Uint32(h[16:])
	// The link type is the low 16 bits; the upper bits carry FCS information.
	p.link = LinkType(p.order.Uint32(h[20:]) & 0xffff)
	return p, nil
}

func (p *pcapReader) Format() string { return "pcap" }

func (p *pcapReader) Next(pkt *Packet) error {
	if p.damageErr != nil {
		return p.damageErr
	}
	start := p.w.off
	h, err := p.w.take(16 + p.extra)
	if err != nil {
		if err == io.EOF {
			return io.EOF
		}
		return p.damage(start, "record header cut short")
	}
	sec := p.order.Uint32(h[0:])
	frac := p.order.Uint32(h[4:])
	incl := p.order.Uint32(h[8:])
	orig := p.order.Uint32(h[12:])
	if incl > MaxPacketLen {
		return p.damage(start, fmt.Sprintf("record length %d exceeds %d", incl, MaxPacketLen))
	}
	if p.nano {
		if frac >= 1e9 {
			return p.damage(start, fmt.Sprintf("nanosecond field %d out of range", frac))
		}
	} else if frac >= 1e6 {
		return p.damage(start, fmt.Sprintf("microsecond field %d out of range", frac))
	}
	data, err := p.w.take(int(incl))
	if err != nil {
		if errors.Is(err, errShort) || err == io.EOF {
			return p.damage(start, fmt.Sprintf("packet data cut short (record wants %d bytes)", incl))
		}
		return p.damage(start, err.Error())
	}
	ts := int64(sec) * 1e9
	if p.nano {
		ts += int64(frac)
	} else {
		ts += int64(frac) * 1e3
	}
	p.n++
	*pkt = Packet{Timestamp: ts, CapLen: int(incl), OrigLen: int(orig), LinkType: p.link, Data: data}
	return nil
}

func (p *pcapReader) damage(off int64, reason string) error {
	p.w.release()
	p.damageErr = &DamageError{Offset: off, Packet: p.n, Reason: reason}
	return p.damageErr
}
