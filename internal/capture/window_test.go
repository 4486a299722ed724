package capture

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"
	"testing/iotest"
)

// TestWindowReads reads one capture of records from 1 byte to 200 kB
// (larger than the window's first size, and than its last) through
// readers that return a byte at a time, half of what is asked, or all of
// it: every packet is the same, the window never grows past its size
// unless a record needs it, and it is given up at the end, clean or cut
// short.
func TestWindowReads(t *testing.T) {
	var recs [][]byte
	for i, n := range []int{1, 60, 1500, windowStart - 16, windowStart + 1, 3000, 200_000, 40, MaxPacketLen, 9} {
		recs = append(recs, bytes.Repeat([]byte{byte(i + 1)}, n))
	}
	for range 300 {
		recs = append(recs, bytes.Repeat([]byte{0xab}, 1400))
	}
	data := pcapFile(binary.LittleEndian, pcapMagicMicro, recs...)
	readers := map[string]func(io.Reader) io.Reader{
		"whole":    func(r io.Reader) io.Reader { return r },
		"half":     iotest.HalfReader,
		"one byte": iotest.OneByteReader,
	}
	for name, wrap := range readers {
		for _, cut := range []int{0, 700} {
			r, err := NewReader(wrap(bytes.NewReader(data[:len(data)-cut])))
			if err != nil {
				t.Fatal(err)
			}
			w := r.(*pcapReader).w
			var p Packet
			n := 0
			for {
				err = r.Next(&p)
				if err != nil {
					break
				}
				if !bytes.Equal(p.Data, recs[n]) {
					t.Fatalf("%s: record %d differs", name, n)
				}
				if len(w.buf) > windowSize && len(recs[n]) < windowSize/2 {
					t.Fatalf("%s: window of %d bytes after a record of %d", name, len(w.buf), len(recs[n]))
				}
				n++
			}
			var dmg *DamageError
			switch {
			case cut == 0 && (err != io.EOF || n != len(recs)):
				t.Errorf("%s: %d records, then %v", name, n, err)
			case cut > 0 && (!errors.As(err, &dmg) || n != len(recs)-1):
				t.Errorf("%s, cut: %d records, then %v", name, n, err)
			}
			if w.buf != nil {
				t.Errorf("%s (cut %d): the window (%d bytes) is still held at the end", name, cut, len(w.buf))
			}
		}
	}
}
