package capture

import (
	"bytes"
	"encoding/binary"
	"io"
	"testing"
)

var le = binary.LittleEndian

func ngSHB() []byte {
	b := le.AppendUint32(nil, blockSHB)
	b = le.AppendUint32(b, 28)
	b = le.AppendUint32(b, byteOrderMagic)
	b = le.AppendUint16(b, 1)
	b = le.AppendUint16(b, 0)
	b = le.AppendUint64(b, ^uint64(0))
	return le.AppendUint32(b, 28)
}

func ngIDB() []byte {
	b := le.AppendUint32(nil, blockIDB)
	b = le.AppendUint32(b, 20)
	b = le.AppendUint16(b, uint16(LinkEthernet))
	b = le.AppendUint16(b, 0)
	b = le.AppendUint32(b, 0)
	return le.AppendUint32(b, 20)
}

// ngEPB: an EPB of total bytes (multiple of 4, >= 32), data filled with fill.
func ngEPB(total int, ts uint32, fill byte) []byte {
	n := total - 32
	b := le.AppendUint32(nil, blockEPB)
	b = le.AppendUint32(b, uint32(total))
	b = le.AppendUint32(b, 0)
	b = le.AppendUint32(b, 0)
	b = le.AppendUint32(b, ts)
	b = le.AppendUint32(b, uint32(n))
	b = le.AppendUint32(b, uint32(n))
	b = append(b, bytes.Repeat([]byte{fill}, n)...)
	return le.AppendUint32(b, uint32(total))
}

// twoSections: SHB, IDB, k EPBs of 1024 bytes, a second SHB at the
// returned offset, IDB, 3 EPBs.
func twoSections(k int) ([]byte, int) {
	b := append(ngSHB(), ngIDB()...)
	for i := range k {
		b = append(b, ngEPB(1024, uint32(i), byte(i))...)
	}
	at := len(b)
	b = append(b, ngSHB()...)
	b = append(b, ngIDB()...)
	for i := range 3 {
		b = append(b, ngEPB(64, uint32(1000+i), 0xa0+byte(i))...)
	}
	return b, at
}

// chunked returns data in reads that never cross the offsets in cuts, and
// calls before() ahead of each read past the first cut.
type chunked struct {
	data   []byte
	pos    int
	cuts   []int
	before func()
}

func (c *chunked) Read(p []byte) (int, error) {
	if c.pos == len(c.data) {
		return 0, io.EOF
	}
	lim := len(c.data)
	for _, x := range c.cuts {
		if x > c.pos {
			lim = x
			break
		}
	}
	if c.before != nil && c.pos >= c.cuts[0] {
		c.before()
	}
	n := copy(p, c.data[c.pos:lim])
	c.pos += n
	return n, nil
}

func countAll(r Reader) (int, error) {
	var p Packet
	n := 0
	for {
		if err := r.Next(&p); err != nil {
			if err == io.EOF {
				return n, nil
			}
			return n, err
		}
		n++
	}
}

// TestSHBHeaderRecycled (found by an independent review): the second
// section header's first 8 bytes end exactly at the window's end (a stream
// that returns short reads, e.g. a pipe). take(4) grows the window and
// hands the old buffer, which still held those 8 bytes, to the pool;
// another reader that takes it (simulated in before) and writes into it
// changed the section header's length, and the capture was reported
// damaged there, every packet after it lost.
func TestSHBHeaderRecycled(t *testing.T) {
	data, at := twoSections(20)
	ref, err := NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	want, err := countAll(ref)
	if err != nil || want != 23 {
		t.Fatalf("reference: %d packets, %v", want, err)
	}
	for try := 0; try < 50; try++ {
		scribble := func() { // what another reader growing to 32 KiB does
			for i := range spare {
				if b, ok := spare[i].Get().(*[]byte); ok {
					for j := range *b {
						(*b)[j] = 0xee
					}
				}
			}
		}
		c := &chunked{data: data, cuts: []int{16384, at + 8}, before: scribble}
		r, err := NewReader(c)
		if err != nil {
			t.Fatal(err)
		}
		got, err := countAll(r)
		if got != want || err != nil {
			t.Fatalf("try %d: %d packets then %v; alone: %d packets", try, got, err, want)
		}
	}
}
