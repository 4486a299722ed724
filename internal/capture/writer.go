package capture

import (
	"bufio"
	"encoding/binary"
	"io"
)

// Writer writes packets to a capture file.
type Writer interface {
	WritePacket(ts int64, data []byte, origLen int) error
	Flush() error
}

// PcapWriter writes classic pcap with nanosecond timestamps, little-endian.
type PcapWriter struct {
	w   *bufio.Writer
	hdr [16]byte
}

// NewPcapWriter writes the file header for link type lt and returns the writer.
func NewPcapWriter(w io.Writer, lt LinkType) (*PcapWriter, error) {
	bw := bufio.NewWriterSize(w, 1<<20)
	var h [24]byte
	binary.LittleEndian.PutUint32(h[0:], pcapMagicNano)
	binary.LittleEndian.PutUint16(h[4:], 2)
	binary.LittleEndian.PutUint16(h[6:], 4)
	binary.LittleEndian.PutUint32(h[16:], MaxPacketLen)
	binary.LittleEndian.PutUint32(h[20:], uint32(lt))
	if _, err := bw.Write(h[:]); err != nil {
		return nil, err
	}
	return &PcapWriter{w: bw}, nil
}

// WritePacket writes one record. An origLen below len(data) is written as
// given (a record readers treat as corrupt; tests write such records).
func (p *PcapWriter) WritePacket(ts int64, data []byte, origLen int) error {
	binary.LittleEndian.PutUint32(p.hdr[0:], uint32(ts/1e9))
	binary.LittleEndian.PutUint32(p.hdr[4:], uint32(ts%1e9))
	binary.LittleEndian.PutUint32(p.hdr[8:], uint32(len(data)))
	binary.LittleEndian.PutUint32(p.hdr[12:], uint32(origLen))
	if _, err := p.w.Write(p.hdr[:]); err != nil {
		return err
	}
	_, err := p.w.Write(data)
	return err
}

// Flush writes buffered data.
func (p *PcapWriter) Flush() error { return p.w.Flush() }

// PcapngWriter writes pcapng: one section, one interface with nanosecond
// timestamps (if_tsresol 9), Enhanced Packet Blocks.
type PcapngWriter struct {
	w   *bufio.Writer
	buf []byte
}

// NewPcapngWriter writes the section header and an interface description for
// link type lt, named name (optional), and returns the writer.
func NewPcapngWriter(w io.Writer, lt LinkType, name string) (*PcapngWriter, error) {
	bw := bufio.NewWriterSize(w, 1<<20)
	le := binary.LittleEndian
	var b []byte
	// Section Header Block with shb_userappl.
	shbOpts := option(nil, 4, []byte("iomtguard"))
	shbOpts = append(shbOpts, 0, 0, 0, 0)
	shbLen := 28 + len(shbOpts)
	b = le.AppendUint32(b, blockSHB)
	b = le.AppendUint32(b, uint32(shbLen))
	b = le.AppendUint32(b, byteOrderMagic)
	b = le.AppendUint16(b, 1)
	b = le.AppendUint16(b, 0)
	b = le.AppendUint64(b, ^uint64(0)) // section length unknown
	b = append(b, shbOpts...)
	b = le.AppendUint32(b, uint32(shbLen))
	// Interface Description Block: if_name, if_tsresol = 9.
	var idbOpts []byte
	if name != "" {
		idbOpts = option(idbOpts, 2, []byte(name))
	}
	idbOpts = option(idbOpts, 9, []byte{9})
	idbOpts = append(idbOpts, 0, 0, 0, 0)
	idbLen := 20 + len(idbOpts)
	b = le.AppendUint32(b, blockIDB)
	b = le.AppendUint32(b, uint32(idbLen))
	b = le.AppendUint16(b, uint16(lt))
	b = le.AppendUint16(b, 0)
	b = le.AppendUint32(b, MaxPacketLen)
	b = append(b, idbOpts...)
	b = le.AppendUint32(b, uint32(idbLen))
	if _, err := bw.Write(b); err != nil {
		return nil, err
	}
	return &PcapngWriter{w: bw}, nil
}

func option(b []byte, code uint16, v []byte) []byte {
	le := binary.LittleEndian
	b = le.AppendUint16(b, code)
	b = le.AppendUint16(b, uint16(len(v)))
	b = append(b, v...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

// WritePacket writes one Enhanced Packet Block (origLen as given).
func (p *PcapngWriter) WritePacket(ts int64, data []byte, origLen int) error {
	le := binary.LittleEndian
	pad := (4 - len(data)%4) % 4
	total := 32 + len(data) + pad
	b := p.buf[:0]
	b = le.AppendUint32(b, blockEPB)
	b = le.AppendUint32(b, uint32(total))
	b = le.AppendUint32(b, 0)
	b = le.AppendUint32(b, uint32(uint64(ts)>>32))
	b = le.AppendUint32(b, uint32(uint64(ts)))
	b = le.AppendUint32(b, uint32(len(data)))
	b = le.AppendUint32(b, uint32(origLen))
	b = append(b, data...)
	for i := 0; i < pad; i++ {
		b = append(b, 0)
	}
	b = le.AppendUint32(b, uint32(total))
	p.buf = b
	_, err := p.w.Write(b)
	return err
}

// Flush writes buffered data.
func (p *PcapngWriter) Flush() error { return p.w.Flush() }
