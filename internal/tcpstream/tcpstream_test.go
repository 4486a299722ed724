package tcpstream

import (
	"bytes"
	"io"
	"net/netip"
	"os"
	"testing"

	"github.com/iomtguard/iomtguard/internal/capture"
	"github.com/iomtguard/iomtguard/internal/packet"
)

// recorder collects each direction's bytes and gaps.
type recorder struct {
	data   [2][]byte
	gaps   [2]int
	closed []*Conn
}

func (r *recorder) Data(c *Conn, d Dir, b []byte) { r.data[d] = append(r.data[d], b...) }
func (r *recorder) Gap(c *Conn, d Dir, n int) {
	r.gaps[d] += n
	r.data[d] = append(r.data[d], bytes.Repeat([]byte{'_'}, n)...)
}
func (r *recorder) Closed(c *Conn) { r.closed = append(r.closed, c) }

func run(t *testing.T, name string, opts Options) (*recorder, []Segment) {
	t.Helper()
	f, err := os.Open("../../testdata/captures/" + name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rd, err := capture.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	tab := New(opts, rec)
	var segs []Segment
	for {
		var p capture.Packet
		if err := rd.Next(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		var fr packet.Frame
		packet.Decode(p.LinkType, p.Data, &fr)
		if !fr.IsTCP() {
			continue
		}
		var s Segment
		tab.Track(&fr, p.Timestamp, p.OrigLen, &s)
		segs = append(segs, s)
	}
	tab.Flush()
	return rec, segs
}

func TestArrivalOrder(t *testing.T) {
	p1, p2, p3 := "\x30\x08\x00\x03a/bone", "\x30\x08\x00\x03a/btwo", "\x30\x0a\x00\x03a/bthree"
	for _, c := range []struct {
		file string
		want string // client-to-server bytes; '_' marks gap bytes
		gaps int
	}{
		{"retransmission.pcap", p1 + p2, 0},
		{"ack-ahead.pcap", "\x10\x0d\x00\x04MQTT\x04\x02\x00\x3c\x00\x01A" + p1 + "__________" + p3, 10},
		{"data-ahead.pcap", p1 + "__________" + p3 + p1, 10},
		{"overlap.pcap", p1 + "__________" + p3, 10}, // the overlapping segment is dropped whole, as tshark does
	} {
		rec, _ := run(t, c.file, Options{})
		if got := string(rec.data[FromA]); got != c.want || rec.gaps[FromA] != c.gaps {
			t.Errorf("%s: got %q (gaps %d), want %q (gaps %d)", c.file, got, rec.gaps[FromA], c.want, c.gaps)
		}
	}
}

func TestReorder(t *testing.T) {
	p1, p2, p3 := "\x30\x08\x00\x03a/bone", "\x30\x08\x00\x03a/btwo", "\x30\x0a\x00\x03a/bthree"
	for _, c := range []struct {
		file, want string
	}{
		{"data-ahead.pcap", p1 + p2 + p3 + p1},
		{"ack-ahead.pcap", "\x10\x0d\x00\x04MQTT\x04\x02\x00\x3c\x00\x01A" + p1 + p2 + p3},
		{"overlap.pcap", p1 + p2 + p3},
		{"retransmission.pcap", p1 + p2},
	} {
		rec, _ := run(t, c.file, Options{Reorder: true})
		if got := string(rec.data[FromA]); got != c.want {
			t.Errorf("%s: got %q, want %q", c.file, got, c.want)
		}
	}
}

func TestSegmentValues(t *testing.T) {
	_, segs := run(t, "other-port.pcap", Options{})
	// SYN, SYN-ACK, ACK, CONNECT, CONNACK, PUBLISH, FIN, FIN, ACK
	if len(segs) != 9 {
		t.Fatalf("%d segments", len(segs))
	}
	if !segs[0].New || segs[1].New || segs[0].Conn != segs[8].Conn {
		t.Error("one connection expected")
	}
	if segs[0].RelSeq != 0 || segs[0].RelAck != 0 || segs[1].RelSeq != 0 || segs[1].RelAck != 1 || segs[2].RelAck != 1 {
		t.Errorf("relative numbers: %+v %+v %+v", segs[0], segs[1], segs[2])
	}
	if segs[3].RelSeq != 1 || segs[3].NextSeq != 17 {
		t.Errorf("CONNECT seq %d next %d", segs[3].RelSeq, segs[3].NextSeq)
	}
	if segs[0].Delta != 0 || segs[1].Delta != 1000 {
		t.Errorf("time deltas %d %d", segs[0].Delta, segs[1].Delta)
	}
	c := segs[0].Conn
	if c.A.Port() != 40012 || c.B.Port() != 2883 || c.State != StateClosed || c.Reason != ReasonFIN || !c.SynSeen {
		t.Errorf("conn %+v", c)
	}
	if c.Stat[FromA].Packets != 6 || c.Stat[FromB].Packets != 3 {
		t.Errorf("packets %d %d", c.Stat[FromA].Packets, c.Stat[FromB].Packets)
	}
}

// TestPortReuse: a SYN with a new initial sequence number on a known 4-tuple
// starts a new stream; a retransmitted SYN does not.
func TestPortReuse(t *testing.T) {
	rec := &recorder{}
	tab := New(Options{}, rec)
	mk := func(seq uint32, flags uint16, src, dst string) *packet.Frame {
		s := &packet.Segment{Seq: seq, Flags: flags, WScale: -1}
		s.Src, s.Dst = mustAP(src), mustAP(dst)
		var f packet.Frame
		packet.Decode(capture.LinkRaw, packet.AppendIPTCP(nil, s), &f)
		return &f
	}
	var s Segment
	tab.Track(mk(100, packet.FlagSYN, "10.0.0.1:5000", "10.0.0.2:1883"), 1, 60, &s)
	first := s.Conn.Index
	tab.Track(mk(100, packet.FlagSYN, "10.0.0.1:5000", "10.0.0.2:1883"), 2, 60, &s)
	if s.New || s.Conn.Index != first {
		t.Error("a retransmitted SYN opened a new stream")
	}
	tab.Track(mk(9000, packet.FlagSYN, "10.0.0.1:5000", "10.0.0.2:1883"), 3, 60, &s)
	if !s.New || s.Conn.Index == first {
		t.Error("a SYN with a new ISN did not open a new stream")
	}
	if len(rec.closed) != 1 || rec.closed[0].Reason != ReasonReused {
		t.Errorf("closed %v", rec.closed)
	}
	// A SYN-ACK first: its receiver is the initiator.
	tab.Track(mk(7, packet.FlagSYN|packet.FlagACK, "10.0.0.9:1883", "10.0.0.8:6000"), 4, 60, &s)
	if s.Conn.A != mustAP("10.0.0.8:6000") || s.Dir != FromB {
		t.Errorf("orientation: A=%v dir=%v", s.Conn.A, s.Dir)
	}
}

func TestMaxFlows(t *testing.T) {
	rec := &recorder{}
	tab := New(Options{MaxFlows: 10}, rec)
	for i := 0; i < 25; i++ {
		s := &packet.Segment{Seq: 1, Flags: packet.FlagSYN, WScale: -1}
		s.Src = mustAP("10.0.0.1:" + itoa(1000+i))
		s.Dst = mustAP("10.0.0.2:1883")
		var f packet.Frame
		packet.Decode(capture.LinkRaw, packet.AppendIPTCP(nil, s), &f)
		var seg Segment
		tab.Track(&f, int64(i), 60, &seg)
	}
	if tab.Len() != 10 || len(rec.closed) != 15 || rec.closed[0].Reason != ReasonEvicted || rec.closed[0].A.Port() != 1000 {
		t.Errorf("len %d closed %d first %+v", tab.Len(), len(rec.closed), rec.closed[0])
	}
}

func TestOutOfOrderLimit(t *testing.T) {
	rec := &recorder{}
	tab := New(Options{Reorder: true, MaxOutOfOrder: 100}, rec)
	send := func(seq uint32, n int) {
		s := &packet.Segment{Src: mustAP("10.0.0.1:1"), Dst: mustAP("10.0.0.2:1883"), Seq: seq, Flags: packet.FlagACK | packet.FlagPSH, WScale: -1, Payload: bytes.Repeat([]byte{'x'}, n)}
		var f packet.Frame
		packet.Decode(capture.LinkRaw, packet.AppendIPTCP(nil, s), &f)
		var seg Segment
		tab.Track(&f, 1, 60, &seg)
	}
	send(1000, 10)
	for i := 0; i < 5; i++ {
		send(1100+uint32(i*40), 40) // ahead of a hole of 90 bytes; over the limit at the third
	}
	if rec.gaps[FromA] != 90 || len(rec.data[FromA]) != 10+90+200 {
		t.Errorf("gaps %d, data %d", rec.gaps[FromA], len(rec.data[FromA]))
	}
}

func itoa(i int) string {
	var b []byte
	for i > 0 {
		b = append([]byte{byte('0' + i%10)}, b...)
		i /= 10
	}
	return string(b)
}

func mustAP(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }
