package packet

import (
	"bytes"
	"io"
	"net/netip"
	"os"
	"testing"

	"github.com/iomtguard/iomtguard/internal/capture"
)

func frames(t *testing.T, name string) []capture.Packet {
	t.Helper()
	f, err := os.Open("../../testdata/captures/" + name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := capture.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var out []capture.Packet
	for {
		var p capture.Packet
		if err := r.Next(&p); err != nil {
			if err != io.EOF {
				t.Fatal(err)
			}
			return out
		}
		p.Data = append([]byte(nil), p.Data...)
		out = append(out, p)
	}
}

func TestLinkTypes(t *testing.T) {
	for _, c := range []struct {
		file    string
		frame   int
		ver     uint8
		src     string
		sport   uint16
		vlan    uint16
		payload int
		proto   uint8
		status  Status
	}{
		{"vlan-ipv6.pcap", 0, 6, "2001:db8::1", 40013, 100, 0, ProtoTCP, OK},
		{"vlan-ipv6.pcap", 5, 6, "2001:db8::1", 40013, 100, 10, ProtoTCP, OK}, // with a hop-by-hop header
		{"sll2.pcapng", 3, 4, "192.168.5.10", 40014, 0, 18, ProtoTCP, OK},
		{"loopback-ipv6.pcap", 0, 4, "127.0.0.1", 40015, 0, 0, ProtoTCP, OK},
		{"loopback-ipv6.pcap", 5, 6, "::1", 40016, 0, 0, ProtoTCP, OK},
		{"raw-ip.pcap", 4, 4, "10.1.1.1", 5353, 0, 4, ProtoUDP, OK},
		{"raw-ip.pcap", 5, 4, "10.1.1.1", 0, 0, 8, ProtoICMP, OK},
	} {
		pkts := frames(t, c.file)
		var f Frame
		p := pkts[c.frame]
		Decode(p.LinkType, p.Data, &f)
		if f.Status != c.status || f.IPVersion != c.ver || f.Src != netip.MustParseAddr(c.src) || f.SrcPort != c.sport ||
			f.VLAN != c.vlan || f.PayloadLen != c.payload || f.IPProto != c.proto {
			t.Errorf("%s frame %d: status %v v%d src %v:%d vlan %d payload %d proto %d", c.file, c.frame+1,
				f.Status, f.IPVersion, f.Src, f.SrcPort, f.VLAN, f.PayloadLen, f.IPProto)
		}
	}
}

func TestBuildAndDecode(t *testing.T) {
	for _, link := range []capture.LinkType{capture.LinkEthernet, capture.LinkSLL, capture.LinkSLL2, capture.LinkNull, capture.LinkLoop, capture.LinkRaw} {
		for _, addrs := range [][2]string{{"10.0.0.1:1234", "10.0.0.2:1883"}, {"[fe80::1]:1234", "[fe80::2]:8883"}} {
			s := &Segment{Src: netip.MustParseAddrPort(addrs[0]), Dst: netip.MustParseAddrPort(addrs[1]), Seq: 7, Ack: 9,
				Flags: FlagSYN | FlagACK, Window: 1000, MSS: 1460, WScale: 7, SACKPerm: true, HasTS: true, TSVal: 5, TSEcr: 6, Payload: []byte("hi")}
			b := AppendFrame(nil, link, s)
			var f Frame
			Decode(link, b, &f)
			got := netip.AddrPortFrom(f.Src, f.SrcPort)
			if f.Status != OK || got != s.Src || f.TCP.Seq != 7 || f.TCP.Ack != 9 || f.TCP.Flags != FlagSYN|FlagACK ||
				f.TCP.MSS != 1460 || f.TCP.WScale != 7 || !f.TCP.SACKPerm || !f.TCP.HasTS || f.TCP.TSVal != 5 ||
				!bytes.Equal(f.Payload, []byte("hi")) {
				t.Errorf("%v %s: %+v", link, addrs[0], f)
			}
		}
	}
}

func TestEthernetPadding(t *testing.T) {
	s := &Segment{Src: netip.MustParseAddrPort("10.0.0.1:1"), Dst: netip.MustParseAddrPort("10.0.0.2:2"), Flags: FlagACK, WScale: -1}
	b := AppendFrame(nil, capture.LinkEthernet, s)
	b = append(b, 0, 0, 0, 0, 0, 0) // padding to the 60-byte minimum
	var f Frame
	Decode(capture.LinkEthernet, b, &f)
	if f.PayloadLen != 0 || len(f.Payload) != 0 {
		t.Errorf("padding taken as payload: %d %d", f.PayloadLen, len(f.Payload))
	}
}

func TestNonIP(t *testing.T) {
	arp := append(make([]byte, 12), 0x08, 0x06)
	arp = append(arp, make([]byte, 28)...)
	var f Frame
	Decode(capture.LinkEthernet, arp, &f)
	if f.Status != NotIP {
		t.Errorf("ARP: %v", f.Status)
	}
	Decode(capture.LinkType(147), arp, &f)
	if f.Status != UnsupportedLink {
		t.Errorf("user link: %v", f.Status)
	}
	frag := []byte{0x45, 0, 0, 28, 0, 1, 0x20, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0}
	Decode(capture.LinkRaw, frag, &f)
	if f.Status != Fragment {
		t.Errorf("fragment: %v", f.Status)
	}
}

// TestTruncatedFrames decodes every prefix of valid frames: no panic, and
// payloads never extend beyond the data.
func TestTruncatedFrames(t *testing.T) {
	for _, name := range []string{"vlan-ipv6.pcap", "sll2.pcapng", "loopback-ipv6.pcap", "raw-ip.pcap", "tls12.pcap"} {
		for _, p := range frames(t, name) {
			for n := 0; n <= len(p.Data); n++ {
				var f Frame
				Decode(p.LinkType, p.Data[:n], &f)
				if len(f.Payload) > n {
					t.Fatalf("%s: payload longer than the frame", name)
				}
			}
		}
	}
}

func TestDecodeDoesNotAllocate(t *testing.T) {
	p := frames(t, "vlan-ipv6.pcap")[5]
	var f Frame
	if n := testing.AllocsPerRun(1000, func() { Decode(p.LinkType, p.Data, &f) }); n != 0 {
		t.Errorf("Decode allocates %v times", n)
	}
}

func FuzzDecode(f *testing.F) {
	for _, lt := range []capture.LinkType{capture.LinkEthernet, capture.LinkSLL, capture.LinkSLL2, capture.LinkNull, capture.LinkRaw} {
		s := &Segment{Src: netip.MustParseAddrPort("[::1]:1"), Dst: netip.MustParseAddrPort("[::2]:2"), Flags: FlagACK, WScale: -1, Payload: []byte{1}}
		b := AppendFrame(nil, lt, s)
		f.Add(uint16(lt), b, uint16(len(b)))
		f.Add(uint16(lt), b, uint16(len(b)+100)) // a snap-length cut
	}
	f.Fuzz(func(t *testing.T, lt uint16, data []byte, reported uint16) {
		var fr Frame
		DecodeLen(capture.LinkType(lt), data, int(reported), &fr)
		if len(fr.Payload) > len(data) {
			t.Fatal("payload beyond the data")
		}
		if rep := max(int(reported), len(data)); fr.PayloadLen > rep {
			t.Fatalf("tcp.len %d beyond the reported length %d", fr.PayloadLen, rep)
		}
	})
}
