package capture

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"testing"
)

// pcapFile builds a classic pcap: order, magic, and records of (sec, frac, data).
func pcapFile(order binary.ByteOrder, magic uint32, recs ...[]byte) []byte {
	var b []byte
	app := binary.BigEndian.AppendUint32
	app16 := binary.BigEndian.AppendUint16
	if order == binary.LittleEndian {
		app = binary.LittleEndian.AppendUint32
		app16 = binary.LittleEndian.AppendUint16
	}
	b = app(b, magic)
	b = app16(b, 2)
	b = app16(b, 4)
	b = app(b, 0)
	b = app(b, 0)
	b = app(b, 65535)
	b = app(b, uint32(LinkEthernet))
	for i, r := range recs {
		b = app(b, 1_700_000_000+uint32(i))
		b = app(b, 123)
		b = app(b, uint32(len(r)))
		b = app(b, uint32(len(r))+4)
		b = append(b, r...)
	}
	return b
}

func readAll(t *testing.T, data []byte) ([]Packet, error) {
	t.Helper()
	r, err := NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	var out []Packet
	for {
		var p Packet
		err := r.Next(&p)
		if err != nil {
			if err == io.EOF {
				return out, nil
			}
			return out, err
		}
		p.Data = append([]byte(nil), p.Data...)
		out = append(out, p)
	}
}

func TestPcapByteOrdersAndResolutions(t *testing.T) {
	for _, c := range []struct {
		name   string
		order  binary.ByteOrder
		magic  uint32
		fracNS int64
	}{
		{"le-micro", binary.LittleEndian, pcapMagicMicro, 123_000},
		{"be-micro", binary.BigEndian, pcapMagicMicro, 123_000},
		{"le-nano", binary.LittleEndian, pcapMagicNano, 123},
		{"be-nano", binary.BigEndian, pcapMagicNano, 123},
	} {
		t.Run(c.name, func(t *testing.T) {
			pkts, err := readAll(t, pcapFile(c.order, c.magic, []byte{1, 2, 3}, []byte{4, 5}))
			if err != nil {
				t.Fatal(err)
			}
			if len(pkts) != 2 {
				t.Fatalf("got %d packets", len(pkts))
			}
			if got, want := pkts[1].Timestamp, int64(1_700_000_001)*1e9+c.fracNS; got != want {
				t.Errorf("timestamp %d, want %d", got, want)
			}
			if pkts[0].CapLen != 3 || pkts[0].OrigLen != 7 || !bytes.Equal(pkts[0].Data, []byte{1, 2, 3}) {
				t.Errorf("packet 1: %+v", pkts[0])
			}
			if pkts[0].LinkType != LinkEthernet {
				t.Errorf("link type %v", pkts[0].LinkType)
			}
		})
	}
}

func TestPcapDamage(t *testing.T) {
	good := pcapFile(binary.LittleEndian, pcapMagicMicro, []byte{1, 2, 3, 4}, []byte{5, 6, 7, 8})
	// Cut inside the second record's data.
	pkts, err := readAll(t, good[:len(good)-2])
	var dmg *DamageError
	if !errors.As(err, &dmg) {
		t.Fatalf("err %v, want a DamageError", err)
	}
	if len(pkts) != 1 || dmg.Packet != 1 || dmg.Offset != 24+16+4 {
		t.Errorf("packets %d, damage %+v", len(pkts), dmg)
	}
	// A record claiming more than MaxPacketLen.
	bad := append([]byte{}, good...)
	binary.LittleEndian.PutUint32(bad[24+8:], MaxPacketLen+1)
	if _, err := readAll(t, bad); !errors.As(err, &dmg) || dmg.Packet != 0 {
		t.Errorf("oversized record: %v", err)
	}
	// A microsecond field out of range.
	bad = append([]byte{}, good...)
	binary.LittleEndian.PutUint32(bad[24+4:], 1_000_000)
	if _, err := readAll(t, bad); !errors.As(err, &dmg) {
		t.Errorf("bad microseconds: %v", err)
	}
}

func TestNotCapture(t *testing.T) {
	for _, in := range [][]byte{nil, []byte("hi"), []byte("frame.len,ip.src\n1,2\n"), make([]byte, 100)} {
		if _, err := NewReader(bytes.NewReader(in)); !errors.Is(err, ErrNotCapture) {
			t.Errorf("%q: got %v, want ErrNotCapture", in, err)
		}
	}
}

func TestGzip(t *testing.T) {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(pcapFile(binary.LittleEndian, pcapMagicNano, []byte{9}))
	zw.Close()
	r, err := NewReader(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if r.Format() != "pcap+gzip" {
		t.Errorf("format %q", r.Format())
	}
	var p Packet
	if err := r.Next(&p); err != nil || p.Data[0] != 9 {
		t.Fatalf("%v %v", err, p)
	}
}

// TestPcapngSections reads the multi-section scenario: a big-endian section with
// a microsecond interface, a little-endian one with a 2^-20 s interface, and a
// simple packet block (which has no timestamp: the previous one is used).
func TestPcapngSections(t *testing.T) {
	data, err := os.ReadFile("../../testdata/captures/multi-section.pcapng")
	if err != nil {
		t.Fatal(err)
	}
	pkts, err := readAll(t, data)
	if err != nil {
		t.Fatal(err)
	}
	if len(pkts) != 3 {
		t.Fatalf("got %d packets, want 3", len(pkts))
	}
	want := []int64{1_700_000_000_250_000_000, 1_700_000_001_500_000_000, 1_700_000_001_500_000_000}
	for i, p := range pkts {
		if p.Timestamp != want[i] {
			t.Errorf("packet %d: timestamp %d, want %d", i+1, p.Timestamp, want[i])
		}
	}
}

func TestPcapngResolution(t *testing.T) {
	for _, c := range []struct {
		resol byte
		ts    uint64
		want  int64
	}{
		{6, 1_500_000, 1_500_000_000},
		{9, 1_500_000_000, 1_500_000_000},
		{3, 1500, 1_500_000_000},
		{12, 1_500_000_000_000, 1_500_000_000},
		{0x80 | 10, 1536, 1_500_000_000},
	} {
		ifc := iface{mul: 1000, div: 1}
		var p pcapngReader
		p.order = binary.LittleEndian
		opts := []byte{9, 0, 1, 0, c.resol, 0, 0, 0, 0, 0, 0, 0}
		body := append([]byte{1, 0, 0, 0, 0xff, 0xff, 0, 0}, opts...)
		if err := p.readIDB(body); err != nil {
			t.Fatal(err)
		}
		ifc = p.ifaces[0]
		if got := ifc.nanos(c.ts); got != c.want {
			t.Errorf("resolution %#x: %d -> %d ns, want %d", c.resol, c.ts, got, c.want)
		}
	}
}

// TestTruncationNeverPanics cuts valid files at every length: reading returns
// at most the complete packets and never panics (gopacket's decode_oob style).
func TestTruncationNeverPanics(t *testing.T) {
	files := [][]byte{pcapFile(binary.BigEndian, pcapMagicNano, []byte{1, 2, 3}, []byte{4, 5, 6, 7})}
	if b, err := os.ReadFile("../../testdata/captures/multi-section.pcapng"); err == nil {
		files = append(files, b)
	}
	for _, f := range files {
		full, _ := readAll(t, f)
		for n := 0; n < len(f); n++ {
			pkts, _ := readAll(t, f[:n])
			if len(pkts) > len(full) {
				t.Fatalf("cut at %d: %d packets from a file of %d", n, len(pkts), len(full))
			}
		}
	}
}

func TestWriters(t *testing.T) {
	for _, ng := range []bool{false, true} {
		var buf bytes.Buffer
		var w Writer
		var err error
		if ng {
			w, err = NewPcapngWriter(&buf, LinkSLL, "eth0")
		} else {
			w, err = NewPcapWriter(&buf, LinkSLL)
		}
		if err != nil {
			t.Fatal(err)
		}
		w.WritePacket(1_700_000_000_123_456_789, []byte{1, 2, 3}, 10)
		w.WritePacket(1_700_000_001_000_000_001, []byte{4}, 1)
		w.Flush()
		pkts, err := readAll(t, buf.Bytes())
		if err != nil || len(pkts) != 2 {
			t.Fatalf("pcapng=%v: %v %d", ng, err, len(pkts))
		}
		if pkts[0].Timestamp != 1_700_000_000_123_456_789 || pkts[0].OrigLen != 10 || pkts[1].Data[0] != 4 || pkts[1].LinkType != LinkSLL {
			t.Errorf("pcapng=%v: %+v", ng, pkts)
		}
	}
}
