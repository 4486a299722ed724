package capture

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"
)

// pcapng (https://www.ietf.org/archive/id/draft-ietf-opsawg-pcapng-01.html): a file is
// one or more sections, each a Section Header Block (which sets the byte order)
// followed by Interface Description Blocks and packet blocks.

const (
	blockSHB = 0x0a0d0d0a
	blockIDB = 0x00000001
	blockOPB = 0x00000002 // obsolete Packet Block
	blockSPB = 0x00000003
	blockEPB = 0x00000006

	byteOrderMagic = 0x1a2b3c4d
	maxBlockLen    = 16 << 20 // a block larger than this marks damage
)

type iface struct {
	link    LinkType
	snaplen uint32
	// timestamp units: ts * mul / div nanoseconds (one of them is 1), or a power of two
	mul, div uint64
	pow2     uint8 // when non-zero: units are 2^-pow2 seconds
	offset   int64 // if_tsoffset, in seconds
}

type pcapngReader struct {
	w         *window
	order     binary.ByteOrder
	ifaces    []iface
	n         int
	lastTS    int64
	damageErr error
}

func newPcapngReader(r io.Reader) (*pcapngReader, error) {
	p := &pcapngReader{w: newWindow(r, windowSize)}
	// The first block must be a section header; readSHB checks it.
	h, err := p.w.take(12)
	if err != nil {
		return nil, ErrNotCapture
	}
	if binary.BigEndian.Uint32(h) != blockSHB {
		return nil, ErrNotCapture
	}
	if err := p.readSHB(h); err != nil {
		return nil, ErrNotCapture
	}
	return p, nil
}

func (p *pcapngReader) Format() string { return "pcapng" }

// readSHB reads a section header block whose first 12 bytes are h.
func (p *pcapngReader) readSHB(h []byte) error {
	switch {
	case binary.LittleEndian.Uint32(h[8:]) == byteOrderMagic:
		p.order = binary.LittleEndian
	case binary.BigEndian.Uint32(h[8:]) == byteOrderMagic:
		p.order = binary.BigEndian
	default:
		return errors.New("bad byte-order magic")
	}
	total := p.order.Uint32(h[4:])
	if total < 28 || total%4 != 0 || total > maxBlockLen {
		return fmt.Errorf("section header length %d invalid", total)
	}
	p.ifaces = p.ifaces[:0]
	_, err := p.w.take(int(total) - 12)
	return err
}

func (p *pcapngReader) Next(pkt *Packet) error {
	if p.damageErr != nil {
		return p.damageErr
	}
	for {
		start := p.w.off
		h, err := p.w.take(8)
		if err != nil {
			if err == io.EOF {
				return io.EOF
			}
			return p.damage(start, "block header cut short")
		}
		typ := p.order.Uint32(h)
		if binary.BigEndian.Uint32(h) == blockSHB {
			// h is spent at the next take (its window may grow and go to
			// another reader): copied first.
			var full [12]byte
			copy(full[:], h)
			rest, err := p.w.take(4)
			if err != nil {
				return p.damage(start, "section header cut short")
			}
			copy(full[8:], rest)
			if err := p.readSHB(full[:]); err != nil {
				return p.damage(start, "section header: "+err.Error())
			}
			continue
		}
		total := p.order.Uint32(h[4:])
		if total < 12 || total%4 != 0 || total > maxBlockLen {
			return p.damage(start, fmt.Sprintf("block length %d invalid", total))
		}
		body, err := p.w.take(int(total) - 8)
		if err != nil {
			return p.damage(start, fmt.Sprintf("block of %d bytes cut short", total))
		}
		if p.order.Uint32(body[len(body)-4:]) != total {
			return p.damage(start, "block trailer length does not match its header")
		}
		body = body[:len(body)-4]
		switch typ {
		case blockIDB:
			if err := p.readIDB(body); err != nil {
				return p.damage(start, "interface description: "+err.Error())
			}
		case blockEPB, blockOPB:
			if err := p.readEPB(typ, body, pkt); err != nil {
				return p.damage(start, err.Error())
			}
			p.n++
			return nil
		case blockSPB:
			if err := p.readSPB(body, pkt); err != nil {
				return p.damage(start, err.Error())
			}
			p.n++
			return nil
		}
		// Other blocks (name resolution, statistics, journal, custom) are skipped.
	}
}

func (p *pcapngReader) readIDB(b []byte) error {
	if len(b) < 8 {
		return errors.New("too short")
	}
	ifc := iface{link: LinkType(p.order.Uint16(b)), snaplen: p.order.Uint32(b[4:]), mul: 1000, div: 1}
	opts := b[8:]
	for len(opts) >= 4 {
		code := p.order.Uint16(opts)
		l := int(p.order.Uint16(opts[2:]))
		if 4+l > len(opts) {
			return errors.New("option overruns block")
		}
		v := opts[4 : 4+l]
		switch code {
		case 0:
			opts = nil
			continue
		case 9: // if_tsresol
			if l >= 1 {
				r := v[0]
				if r&0x80 != 0 {
					e := r & 0x7f
					if e > 63 {
						return fmt.Errorf("if_tsresol 2^-%d unsupported", e)
					}
					ifc.pow2, ifc.mul, ifc.div = e, 0, 0
					if e == 0 {
						ifc.pow2, ifc.mul, ifc.div = 0, 1e9, 1
					}
				} else {
					if r > 19 {
						return fmt.Errorf("if_tsresol 10^-%d unsupported", r)
					}
					ifc.mul, ifc.div = 1, 1
					for i := int(r); i < 9; i++ {
						ifc.mul *= 10
					}
					for i := 9; i < int(r); i++ {
						ifc.div *= 10
					}
				}
			}
		case 14: // if_tsoffset
			if l >= 8 {
				ifc.offset = int64(p.order.Uint64(v))
			}
		}
		pad := (4 - l%4) % 4
		if 4+l+pad > len(opts) {
			break
		}
		opts = opts[4+l+pad:]
	}
	p.ifaces = append(p.ifaces, ifc)
	return nil
}

func (ifc *iface) nanos(ts uint64) int64 {
	var ns uint64
	switch {
	case ifc.pow2 != 0:
		sec := ts >> ifc.pow2
		frac := ts & (1<<ifc.pow2 - 1)
		ns = sec*1e9 + mulShift(frac, 1e9, ifc.pow2)
	case ifc.div > 1:
		ns = ts / ifc.div
	default:
		ns = ts * ifc.mul
	}
	return int64(ns) + ifc.offset*1e9
}

// mulShift returns (a*b)>>s for a < 2^s without overflow, using 128-bit arithmetic.
func mulShift(a, b uint64, s uint8) uint64 {
	hi, lo := bits.Mul64(a, b)
	if s >= 64 {
		return hi >> (s - 64)
	}
	return hi<<(64-s) | lo>>s
}

func (p *pcapngReader) readEPB(typ uint32, b []byte, pkt *Packet) error {
	if len(b) < 20 {
		return errors.New("packet block too short")
	}
	var ifID int
	if typ == blockOPB {
		ifID = int(p.order.Uint16(b))
	} else {
		ifID = int(p.order.Uint32(b))
	}
	if ifID >= len(p.ifaces) {
		return fmt.Errorf("packet names interface %d, only %d described", ifID, len(p.ifaces))
	}
	ifc := &p.ifaces[ifID]
	ts := uint64(p.order.Uint32(b[4:]))<<32 | uint64(p.order.Uint32(b[8:]))
	capLen := p.order.Uint32(b[12:])
	origLen := p.order.Uint32(b[16:])
	if capLen > MaxPacketLen || int(capLen) > len(b)-20 {
		return fmt.Errorf("captured length %d does not fit its block", capLen)
	}
	t := ifc.nanos(ts)
	p.lastTS = t
	*pkt = Packet{Timestamp: t, CapLen: int(capLen), OrigLen: int(origLen), LinkType: ifc.link, Interface: ifID, Data: b[20 : 20+capLen]}
	return nil
}

// readSPB reads a simple packet block: no timestamp (the previous packet's is
// used) and no interface ID (interface 0).
func (p *pcapngReader) readSPB(b []byte, pkt *Packet) error {
	if len(b) < 4 {
		return errors.New("simple packet block too short")
	}
	if len(p.ifaces) == 0 {
		return errors.New("simple packet block before any interface")
	}
	ifc := &p.ifaces[0]
	origLen := p.order.Uint32(b)
	capLen := origLen
	if ifc.snaplen != 0 && capLen > ifc.snaplen {
		capLen = ifc.snaplen
	}
	if int(capLen) > len(b)-4 {
		capLen = uint32(len(b) - 4)
	}
	if capLen > MaxPacketLen {
		return fmt.Errorf("captured length %d too large", capLen)
	}
	*pkt = Packet{Timestamp: p.lastTS, CapLen: int(capLen), OrigLen: int(origLen), LinkType: ifc.link, Data: b[4 : 4+capLen]}
	return nil
}

func (p *pcapngReader) damage(off int64, reason string) error {
	p.w.release()
	p.damageErr = &DamageError{Offset: off, Packet: p.n, Reason: reason}
	return p.damageErr
}
