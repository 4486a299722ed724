package pcaptest

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"fmt"
	"io"
	"math/big"
	mrand "math/rand/v2"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/iomtguard/iomtguard/internal/capture"
	"github.com/iomtguard/iomtguard/internal/mqtt"
	"github.com/iomtguard/iomtguard/internal/packet"
)

// Scenario is a named capture built in code. Comment says what it holds.
type Scenario struct {
	Name    string
	Comment string
	Build   func() []byte // capture file bytes
	// DecodeAs lists tshark decode-as rules needed for tshark to see MQTT
	// (non-standard ports).
	DecodeAs []string
	// TsharkDiffers explains where tshark is known to decode differently;
	// DiffFrames lists the frames whose icu-csv rows may differ (nil: any,
	// for differences that shift every count), the rest must be equal.
	TsharkDiffers string
	DiffFrames    []int
}

// Publish encodes a QoS 0 MQTT 3.1.1 PUBLISH.
func Publish(topic, payload string) []byte {
	return mqtt.Append(nil, &mqtt.Packet{Type: mqtt.PUBLISH, Topic: []byte(topic), Payload: []byte(payload)})
}

// Connect encodes a CONNECT with clean session and keep-alive 60.
func Connect(id string, v mqtt.Version) []byte {
	return mqtt.Append(nil, &mqtt.Packet{Type: mqtt.CONNECT, ClientID: []byte(id), Version: v, ConnectFlags: 2, KeepAlive: 60})
}

var connack = []byte{0x20, 2, 0, 0}

const t0 = int64(1_700_000_000) * 1e9

// Scenarios lists every built-in test capture.
func Scenarios() []Scenario {
	p1, p2, p3 := Publish("a/b", "one"), Publish("a/b", "two"), Publish("a/b", "three")
	return []Scenario{
		{Name: "ack-ahead", Comment: "a zero-length ACK shows 13 bytes the capture missed; the bytes arrive later and are a retransmission", Build: func() []byte {
			c := New(capture.LinkEthernet, t0)
			k := c.NewConn("10.0.0.1:40000", "10.0.0.2:1883")
			k.Handshake()
			k.Send(0, Connect("A", mqtt.V311))
			k.Send(1, connack)
			k.Send(0, p1)
			s := k.Seq[0]
			k.Skip(0, len(p2))
			k.Ack(0)
			k.SendAt(0, s, p2)
			k.Send(0, p3)
			return c.Pcap()
		}},
		{Name: "data-ahead", Comment: "a segment arrives ahead of a hole; the missing segment comes after it", Build: func() []byte {
			c := New(capture.LinkEthernet, t0)
			k := c.NewConn("10.0.0.1:40001", "10.0.0.2:1883")
			k.Handshake()
			k.Send(0, p1)
			s := k.Seq[0]
			k.Skip(0, len(p2))
			k.Send(0, p3)
			k.SendAt(0, s, p2)
			k.Send(0, p1)
			return c.Pcap()
		}},
		{Name: "retransmission", Comment: "a PUBLISH sent twice with the same sequence number", Build: func() []byte {
			c := New(capture.LinkEthernet, t0)
			k := c.NewConn("10.0.0.1:40002", "10.0.0.2:1883")
			k.Handshake()
			s := k.Seq[0]
			k.Send(0, p1)
			k.SendAt(0, s, p1)
			k.Send(0, p2)
			return c.Pcap()
		}},
		{Name: "overlap", Comment: "a segment overlapping the tail of the previous one", Build: func() []byte {
			c := New(capture.LinkEthernet, t0)
			k := c.NewConn("10.0.0.1:40003", "10.0.0.2:1883")
			k.Handshake()
			s := k.Seq[0]
			k.Send(0, p1)
			both := append(append([]byte{}, p1[5:]...), p2...)
			k.SendAt(0, s+5, both)
			k.Seq[0] = s + 5 + uint32(len(both))
			k.Send(0, p3)
			return c.Pcap()
		}},
		{Name: "lost-middle", Comment: "a PUBLISH over three segments whose middle one is never captured, then another PUBLISH", Build: func() []byte {
			c := New(capture.LinkEthernet, t0)
			k := c.NewConn("10.0.0.1:40004", "10.0.0.2:1883")
			k.Handshake()
			big := Publish("x/y", string(make([]byte, 60)))
			k.Send(0, big[:20])
			k.Skip(0, 20)
			k.Send(0, big[40:])
			k.Send(0, p3)
			return c.Pcap()
		}},
		{Name: "late-middle", Comment: "the middle segment of a three-segment PUBLISH is captured after the third", Build: func() []byte {
			c := New(capture.LinkEthernet, t0)
			k := c.NewConn("10.0.0.1:40005", "10.0.0.2:1883")
			k.Handshake()
			big := Publish("x/y", string(make([]byte, 60)))
			k.Send(0, big[:20])
			s := k.Seq[0]
			k.Skip(0, 20)
			k.Send(0, big[40:])
			k.SendAt(0, s, big[20:40])
			k.Send(0, p3)
			return c.Pcap()
		}},
		{Name: "split-length", Comment: "a PUBLISH whose two-byte remaining length is split between segments",
			TsharkDiffers: "tshark 4.0 throws on the split length field and parses the next segment from its first byte: 93 bogus packets; iomtguard reads the one PUBLISH",
			Build: func() []byte {
				c := New(capture.LinkEthernet, t0)
				k := c.NewConn("10.0.0.1:40006", "10.0.0.2:1883")
				k.Handshake()
				big := Publish("x/y", string(make([]byte, 300)))
				k.Send(0, append(append([]byte{}, p1...), big[:2]...))
				k.Send(0, big[2:])
				k.Send(0, p3)
				return c.Pcap()
			}},
		{Name: "packed", Comment: "3,000 PUBLISH packets packed into two large segments, one packet split between them", Build: func() []byte {
			c := New(capture.LinkEthernet, t0)
			k := c.NewConn("10.0.0.1:40007", "10.0.0.2:1883")
			k.Handshake()
			var buf []byte
			for i := 0; i < 3000; i++ {
				buf = append(buf, Publish("t", "v")...)
			}
			k.Send(0, buf[:len(buf)/2+3])
			k.Send(0, buf[len(buf)/2+3:])
			return c.Pcap()
		}},
		{Name: "strings", Comment: "client IDs and topics with quotes, backslashes, control characters, NUL, UTF-8 and invalid UTF-8", Build: func() []byte {
			c := New(capture.LinkEthernet, t0)
			k := c.NewConn("10.0.0.1:40008", "10.0.0.2:1883")
			k.Handshake()
			k.Send(0, Connect("id\"q\\b\n\x01é\xff,x", mqtt.V311))
			k.Send(0, Publish("to\"p\\ic\t\x7f\x00ü\xc3", "x"))
			var id []byte
			for ch := 1; ch < 0x20; ch++ {
				id = append(id, 'a', byte(ch))
			}
			id = append(id, 'a', 0x7f, 'a', 0x80, 'a', 0xc3, 'a', 0xed, 0xa0, 0x80, 'a', 0xf4, 0x90, 0x80, 0x80, 'z')
			k2 := c.NewConn("10.0.0.1:40020", "10.0.0.2:1883")
			k2.Handshake()
			k2.Send(0, Connect(string(id), mqtt.V311))
			return c.Pcap()
		}},
		{Name: "versions", Comment: "an MQTT 3.1 session with SUBSCRIBE and PUBREL, an MQTT 5 session refused with 0x86, and a session whose CONNECT was not captured", Build: func() []byte {
			c := New(capture.LinkEthernet, t0)
			k := c.NewConn("10.0.0.1:40009", "10.0.0.2:1883")
			k.Handshake()
			k.Send(0, Connect("v31", mqtt.V31))
			k.Send(1, connack)
			k.Send(0, mqtt.Append(nil, &mqtt.Packet{Type: mqtt.SUBSCRIBE, PacketID: 1, Filters: []mqtt.Subscription{{Filter: []byte("s/#"), Options: 1}}}))
			k.Send(0, []byte{0x62, 2, 0, 1})
			k2 := c.NewConn("10.0.0.1:40010", "10.0.0.2:1883")
			k2.Handshake()
			k2.Send(0, Connect("v5", mqtt.V5))
			k2.Send(1, []byte{0x20, 3, 0, 0x86, 0})
			k2.Send(0, mqtt.Append(nil, &mqtt.Packet{Type: mqtt.PUBLISH, Version: mqtt.V5, Topic: []byte("v/5"), Payload: []byte("z")}))
			k3 := c.NewConn("10.0.0.1:40011", "10.0.0.2:1883")
			k3.Send(1, []byte{0x20, 2, 0, 5})
			k3.Send(0, p1)
			return c.Pcap()
		}},
		{Name: "other-port", Comment: "MQTT on TCP port 2883", DecodeAs: []string{"tcp.port==2883,mqtt"}, Build: func() []byte {
			c := New(capture.LinkEthernet, t0)
			k := c.NewConn("10.0.0.1:40012", "10.0.0.2:2883")
			k.Handshake()
			k.Send(0, Connect("np", mqtt.V311))
			k.Send(1, connack)
			k.Send(0, p1)
			k.Close()
			return c.Pcap()
		}},
		{Name: "mqtt5", Comment: "an MQTT 5 session using properties in every packet type, a will with properties, AUTH, and reason codes", Build: mqtt5Session},
		{Name: "malformed", Comment: "reserved flags, QoS 3, type 0, AUTH on 3.1.1, a double CONNECT, an empty topic, a wildcard in a PUBLISH, a truncated CONNECT",
			Build: malformedSession},
		{Name: "vlan-ipv6", Comment: "802.1Q and 802.1ad tagged Ethernet, IPv6 with a hop-by-hop header", Build: func() []byte {
			c := New(capture.LinkEthernet, t0)
			k := c.NewConn("[2001:db8::1]:40013", "[2001:db8::2]:1883")
			k.TS = true
			k.Handshake()
			k.Send(0, Connect("six", mqtt.V311))
			k.Send(1, connack)
			k.Send(0, p1)
			// Re-frame every frame with VLAN tags (and the last with a hop-by-hop header).
			for i := range c.frames {
				f := c.frames[i].data
				tagged := append([]byte{}, f[:12]...)
				tagged = append(tagged, 0x88, 0xa8, 0x00, 0x64, 0x81, 0x00, 0x00, 0x0a)
				tagged = append(tagged, f[12:]...)
				c.frames[i].data = tagged
			}
			last := c.frames[len(c.frames)-1].data
			ip := 14 + 8
			hbh := []byte{last[ip+6], 0, 1, 4, 0, 0, 0, 0}
			out := append([]byte{}, last[:ip+40]...)
			out[ip+6] = 0
			binary.BigEndian.PutUint16(out[ip+4:], binary.BigEndian.Uint16(last[ip+4:])+8)
			out = append(out, hbh...)
			out = append(out, last[ip+40:]...)
			c.frames[len(c.frames)-1].data = out
			return c.Pcap()
		}},
		{Name: "sll2", Comment: "Linux cooked capture v2", Build: func() []byte {
			c := New(capture.LinkSLL2, t0)
			k := c.NewConn("192.168.5.10:40014", "192.168.5.1:1883")
			k.Handshake()
			k.Send(0, Connect("sll2", mqtt.V311))
			k.Send(1, connack)
			k.Send(0, p2)
			return c.Pcapng()
		}},
		{Name: "loopback-ipv6", Comment: "BSD loopback (DLT_NULL) with IPv4 and IPv6 sessions", Build: func() []byte {
			c := New(capture.LinkNull, t0)
			k := c.NewConn("127.0.0.1:40015", "127.0.0.1:1883")
			k.Handshake()
			k.Send(0, Connect("lo4", mqtt.V311))
			k.Send(1, connack)
			k6 := c.NewConn("[::1]:40016", "[::1]:1883")
			k6.Handshake()
			k6.Send(0, Connect("lo6", mqtt.V5))
			k6.Send(1, []byte{0x20, 3, 0, 0, 0})
			k6.Send(0, mqtt.Append(nil, &mqtt.Packet{Type: mqtt.DISCONNECT, Version: mqtt.V5}))
			return c.Pcap()
		}},
		{Name: "raw-ip", Comment: "raw IPv4 link type with a UDP datagram and an ICMP packet between MQTT frames", Build: func() []byte {
			c := New(capture.LinkRaw, t0)
			k := c.NewConn("10.1.1.1:40017", "10.1.1.2:1883")
			k.Handshake()
			k.Send(0, Connect("raw", mqtt.V311))
			c.Raw(udpPacket())
			c.Raw([]byte{0x45, 0, 0, 28, 0, 1, 0, 0, 64, 1, 0, 0, 10, 1, 1, 1, 10, 1, 1, 2, 8, 0, 0xf7, 0xff, 0, 0, 0, 0})
			k.Send(1, connack)
			return c.Pcap()
		}},
		{Name: "bogus-lengths", Comment: "IPv4 total lengths past the frame's end (whole frame and snap-cut), an IPv6 payload length past it, and a record whose captured length exceeds its original length, each carrying MQTT",
			Build: bogusLengths},
		{Name: "icmp-error", Comment: "an MQTT session and two ICMP port-unreachable messages quoting its TCP segments: 8 bytes of the header, and the whole segment",
			Build: icmpError, DiffFrames: []int{5, 8, 9},
			TsharkDiffers: "tshark dissects the TCP header quoted in an ICMP error as TCP: it fills the frame's TCP columns (ports; with a whole quoted header also flags, ack, tcp.time_delta) and counts the quoted segment in its connection, so the next frame's tcp.time_delta is measured from the ICMP frame, and it counts the MQTT packet in a whole quoted segment; iomtguard keeps the ICMP frame out of the connection (the quoted segment was not sent again, so neither its timing nor its MQTT packet belongs to the session) and leaves its TCP columns empty"},
		{Name: "websocket", Comment: "MQTT over WebSocket: an mqtt subprotocol on 9001 with masked client frames, a PUBLISH fragmented over two frames around a ping, two packets in one frame and a frame split over two segments; permessage-deflate with context takeover on 8083; a plain HTTP GET on 8080",
			Build: websocketSession, DecodeAs: []string{"tcp.port==9001,http", "tcp.port==8083,http"},
			DiffFrames:    []int{6, 7, 8, 9, 10, 12, 14, 15, 26, 27, 28, 29, 30},
			TsharkDiffers: "tshark 4.0 does not decode MQTT inside WebSocket (its MQTT dissector is not registered for a WebSocket subprotocol): it counts no MQTT and leaves the mqtt.* columns of the frames carrying it empty (and tcp.pdu.size is the WebSocket frame's); iomtguard decodes the 14 MQTT packets"},
		{Name: "tls12", Comment: "MQTT over TLS 1.2 on port 8883 with a client certificate requested and sent", Build: func() []byte { return tlsSession(tls.VersionTLS12, true) }},
		{Name: "tls13", Comment: "TLS 1.3 on a non-standard port (8884) without client certificates", Build: func() []byte { return tlsSession(tls.VersionTLS13, false) }},
		{Name: "multi-section", Comment: "pcapng with two sections (big- and little-endian) and interfaces with microsecond and 2^-20 s resolutions, and a simple packet block",
			TsharkDiffers: "a simple packet block has no timestamp: tshark leaves its frame times empty and computes tcp.time_delta from time 0; iomtguard gives it the previous packet's time",
			Build:         multiSection},
	}
}

// Gzip compresses a capture.
func Gzip(b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	zw.Close()
	return buf.Bytes()
}

// bogusLengths builds frames whose length fields disagree with the frame.
func bogusLengths() []byte {
	c := New(capture.LinkEthernet, t0)
	k := c.NewConn("10.0.0.2:40000", "10.0.0.1:1883")
	k.Handshake()
	k.Send(FromClient, Connect("bogus", mqtt.V311))
	k.Send(FromServer, connack)
	// A pure ACK whose IPv4 header claims 137 bytes (the frame has 66).
	k.Ack(FromClient)
	f := c.Last()
	binary.BigEndian.PutUint16(f[16:], 137)
	fixIPv4Checksum(f[14:])
	// A PUBLISH in a record whose captured length (its bytes) exceeds its
	// original length: a corrupt record header.
	k.Send(FromClient, Publish("1/ecg", "72.5"))
	c.SetOrig(len(c.Last()) - 10)
	k.Send(FromClient, Publish("1/ecg", "72.6"))
	// Another connection: a pure ACK claiming 137 bytes, cut by a snap
	// length (the record says 100 bytes were on the wire).
	k2 := c.NewConn("10.0.0.3:40002", "10.0.0.1:1883")
	k2.Handshake()
	k2.Send(FromClient, Connect("snapped", mqtt.V311))
	k2.Ack(FromClient)
	f2 := c.Last()
	binary.BigEndian.PutUint16(f2[16:], 137)
	fixIPv4Checksum(f2[14:])
	c.SetOrig(100)
	// IPv6: a payload length past the frame's end.
	k6 := c.NewConn("[fd00::2]:40001", "[fd00::1]:1883")
	k6.Handshake()
	k6.Send(FromClient, Connect("bogus6", mqtt.V311))
	k6.Ack(FromServer)
	f6 := c.Last()
	binary.BigEndian.PutUint16(f6[14+4:], 500)
	k6.Send(FromClient, Publish("1/spo2", "97"))
	return c.Pcap()
}

// icmpError builds a session interrupted by ICMP port-unreachable messages
// quoting its segments.
func icmpError() []byte {
	c := New(capture.LinkEthernet, t0)
	k := c.NewConn("10.0.0.2:40000", "10.0.0.1:1883")
	k.Handshake()
	pub := Publish("1/ecg", "72")
	k.Send(FromClient, pub)
	quote := func(n int) {
		seg := k.seg(FromClient, k.Seq[FromClient], packet.FlagACK|packet.FlagPSH, pub)
		ip := packet.AppendIPTCP(nil, seg)
		if n < len(ip) {
			ip = ip[:n]
		}
		icmp := append([]byte{3, 3, 0, 0, 0, 0, 0, 0}, ip...)
		binary.BigEndian.PutUint16(icmp[2:], ^onesSum(icmp))
		outer := []byte{0x45, 0, 0, 0, 0, 1, 0, 0, 64, 1, 0, 0, 10, 0, 0, 254, 10, 0, 0, 2}
		binary.BigEndian.PutUint16(outer[2:], uint16(20+len(icmp)))
		fixIPv4Checksum(outer)
		eth := append(make([]byte, 12), 0x08, 0x00)
		c.Raw(append(append(eth, outer...), icmp...))
	}
	quote(28) // 8 bytes of the TCP header, as RFC 792 asks
	k.Send(FromClient, pub)
	k.Ack(FromServer)
	quote(1000) // the whole segment, as Linux quotes
	k.Send(FromClient, pub)
	k.Ack(FromServer)
	return c.Pcap()
}

// onesSum is the one's-complement sum of b (not inverted).
func onesSum(b []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	return uint16(sum)
}

// WSFrame encodes one WebSocket frame (RFC 6455 5.2): masked when key is
// not nil, RSV1 set when compressed.
func WSFrame(op byte, payload []byte, fin, compressed bool, key []byte) []byte {
	b0 := op
	if fin {
		b0 |= 0x80
	}
	if compressed {
		b0 |= 0x40
	}
	out := []byte{b0}
	mask := byte(0)
	if key != nil {
		mask = 0x80
	}
	switch n := len(payload); {
	case n < 126:
		out = append(out, mask|byte(n))
	case n < 1<<16:
		out = append(out, mask|126, byte(n>>8), byte(n))
	default:
		out = append(out, mask|127)
		out = binary.BigEndian.AppendUint64(out, uint64(n))
	}
	if key == nil {
		return append(out, payload...)
	}
	out = append(out, key...)
	for i, c := range payload {
		out = append(out, c^key[i&3])
	}
	return out
}

// WSUpgrade is a client's upgrade request and the server's answer.
func WSUpgrade(host, protocol, extensions string) (req, resp []byte) {
	req = []byte("GET /mqtt HTTP/1.1\r\nHost: " + host + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: " + protocol + "\r\n")
	if extensions != "" {
		req = append(req, "Sec-WebSocket-Extensions: "+extensions+"\r\n"...)
	}
	req = append(req, "\r\n"...)
	resp = []byte("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nSec-WebSocket-Protocol: " + protocol + "\r\n")
	if extensions != "" {
		resp = append(resp, "Sec-WebSocket-Extensions: "+extensions+"\r\n"...)
	}
	resp = append(resp, "\r\n"...)
	return req, resp
}

func websocketSession() []byte {
	c := New(capture.LinkEthernet, t0)
	key := []byte{0x37, 0xfa, 0x21, 0x3d}
	// 9001: the mqtt subprotocol, uncompressed.
	k := c.NewConn("10.0.0.2:41000", "10.0.0.1:9001")
	k.Handshake()
	req, resp := WSUpgrade("10.0.0.1:9001", "mqtt", "")
	k.Send(FromClient, req)
	k.Send(FromServer, resp)
	k.Send(FromClient, WSFrame(2, Connect("dashboard", mqtt.V311), true, false, key))
	k.Send(FromServer, WSFrame(2, connack, true, false, nil))
	sub := mqtt.Append(nil, &mqtt.Packet{Type: mqtt.SUBSCRIBE, Version: mqtt.V311, PacketID: 1, Filters: []mqtt.Subscription{{Filter: []byte("+/ecg")}}})
	k.Send(FromClient, WSFrame(2, sub, true, false, key))
	k.Send(FromServer, WSFrame(2, []byte{0x90, 3, 0, 1, 0}, true, false, nil))
	pub := Publish("1/ecg", "72")
	// A PUBLISH fragmented over two frames with a ping between them.
	k.Send(FromServer, append(append(WSFrame(2, pub[:5], false, false, nil), WSFrame(9, []byte("hi"), true, false, nil)...),
		WSFrame(0, pub[5:], true, false, nil)...))
	k.Send(FromClient, WSFrame(10, []byte("hi"), true, false, key))
	// Two packets in one frame, and a frame split over two segments.
	k.Send(FromServer, WSFrame(2, append(Publish("2/ecg", "80"), Publish("3/ecg", "65")...), true, false, nil))
	f := WSFrame(2, Publish("1/ecg", "71"), true, false, nil)
	k.Send(FromServer, f[:6])
	k.Send(FromServer, f[6:])
	k.Send(FromClient, WSFrame(2, []byte{0xe0, 0}, true, false, key)) // DISCONNECT
	k.Send(FromClient, WSFrame(8, []byte{0x03, 0xe8}, true, false, key))
	k.Send(FromServer, WSFrame(8, []byte{0x03, 0xe8}, true, false, nil))
	k.Close()
	// 8083: permessage-deflate with context takeover.
	z := c.NewConn("10.0.0.3:41001", "10.0.0.1:8083")
	z.Handshake()
	req, resp = WSUpgrade("10.0.0.1:8083", "mqtt", "permessage-deflate")
	z.Send(FromClient, req)
	z.Send(FromServer, resp)
	var zb bytes.Buffer
	zw, _ := flate.NewWriter(&zb, flate.BestCompression)
	deflate := func(m []byte) []byte {
		zb.Reset()
		zw.Write(m)
		zw.Flush()
		b := zb.Bytes()
		return append([]byte(nil), b[:len(b)-4]...) // RFC 7692 7.2.1: drop 00 00 ff ff
	}
	z.Send(FromClient, WSFrame(2, deflate(Connect("mobile-app", mqtt.V5)), true, true, key))
	z.Send(FromServer, WSFrame(2, []byte{0x20, 3, 0, 0, 0}, true, false, nil))
	for i := 0; i < 3; i++ { // the same PUBLISH: later copies are back-references into the window
		z.Send(FromClient, WSFrame(2, deflate(mqtt.Append(nil, &mqtt.Packet{Type: mqtt.PUBLISH, Version: mqtt.V5, Topic: []byte("1/alarm"), Payload: []byte("silenced")})), true, true, key))
	}
	z.Close()
	// 8080: an ordinary HTTP request, not WebSocket.
	h := c.NewConn("10.0.0.4:41002", "10.0.0.1:8080")
	h.Handshake()
	h.Send(FromClient, []byte("GET /status HTTP/1.1\r\nHost: 10.0.0.1\r\n\r\n"))
	h.Send(FromServer, []byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
	h.Close()
	return c.Pcap()
}

func fixIPv4Checksum(ip []byte) {
	ip[10], ip[11] = 0, 0
	var sum uint32
	for i := 0; i+1 < 20; i += 2 {
		sum += uint32(ip[i])<<8 | uint32(ip[i+1])
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	binary.BigEndian.PutUint16(ip[10:], ^uint16(sum))
}

func udpPacket() []byte {
	b := []byte{0x45, 0, 0, 32, 0, 2, 0, 0, 64, 17, 0, 0, 10, 1, 1, 1, 10, 1, 1, 2}
	b = append(b, 0x14, 0xe9, 0x14, 0xe9, 0, 12, 0, 0, 'm', 'd', 'n', 's')
	return b
}

func mqtt5Session() []byte {
	c := New(capture.LinkEthernet, t0)
	k := c.NewConn("10.0.0.5:40018", "10.0.0.2:1883")
	k.Handshake()
	con := &mqtt.Packet{Type: mqtt.CONNECT, Version: mqtt.V5, ClientID: []byte("pump-7"), ConnectFlags: 0x2e, KeepAlive: 30,
		WillTopic: []byte("icu/bed7/pump/status"), WillPayload: []byte("offline"), Username: []byte("pump-7"), Password: []byte("s3cret!")}
	con.Props.SessionExpiry, con.Props.ReceiveMaximum = 3600, 20
	con.Props.Set(mqtt.PropSessionExpiry)
	con.Props.Set(mqtt.PropReceiveMaximum)
	con.WillProps.WillDelay = 5
	con.WillProps.Set(mqtt.PropWillDelay)
	k.Send(0, mqtt.Append(nil, con))
	ack := &mqtt.Packet{Type: mqtt.CONNACK, Version: mqtt.V5}
	ack.Props.AssignedClientID, ack.Props.TopicAliasMaximum = []byte("pump-7"), 10
	ack.Props.Set(mqtt.PropAssignedClientID)
	ack.Props.Set(mqtt.PropTopicAliasMaximum)
	k.Send(1, mqtt.Append(nil, ack))
	auth := &mqtt.Packet{Type: mqtt.AUTH, Version: mqtt.V5, ReasonCode: 0x18}
	auth.Props.AuthMethod = []byte("SCRAM-SHA-256")
	auth.Props.Set(mqtt.PropAuthMethod)
	k.Send(0, mqtt.Append(nil, auth))
	pub := &mqtt.Packet{Type: mqtt.PUBLISH, Version: mqtt.V5, QoS: 1, PacketID: 7, Topic: []byte("icu/bed7/pump/rate"), Payload: []byte("12.5 ml/h")}
	pub.Props.TopicAlias, pub.Props.ContentType = 1, []byte("text/plain")
	pub.Props.Set(mqtt.PropTopicAlias)
	pub.Props.Set(mqtt.PropContentType)
	k.Send(0, mqtt.Append(nil, pub))
	k.Send(1, mqtt.Append(nil, &mqtt.Packet{Type: mqtt.PUBACK, Version: mqtt.V5, PacketID: 7, ReasonCode: 0x10}))
	alias := &mqtt.Packet{Type: mqtt.PUBLISH, Version: mqtt.V5, QoS: 2, PacketID: 8, Payload: []byte("12.6 ml/h")}
	alias.Props.TopicAlias = 1
	alias.Props.Set(mqtt.PropTopicAlias)
	k.Send(0, mqtt.Append(nil, alias))
	k.Send(1, mqtt.Append(nil, &mqtt.Packet{Type: mqtt.PUBREC, Version: mqtt.V5, PacketID: 8}))
	k.Send(0, mqtt.Append(nil, &mqtt.Packet{Type: mqtt.PUBREL, Version: mqtt.V5, PacketID: 8}))
	k.Send(1, mqtt.Append(nil, &mqtt.Packet{Type: mqtt.PUBCOMP, Version: mqtt.V5, PacketID: 8}))
	sub := &mqtt.Packet{Type: mqtt.SUBSCRIBE, Version: mqtt.V5, PacketID: 9, Filters: []mqtt.Subscription{
		{Filter: []byte("icu/bed7/pump/cmd"), Options: 0x1d}, {Filter: []byte("icu/bed7/alarms/+"), Options: 1}}}
	sub.Props.SubscriptionID = 42
	sub.Props.Set(mqtt.PropSubscriptionID)
	k.Send(0, mqtt.Append(nil, sub))
	k.Send(1, mqtt.Append(nil, &mqtt.Packet{Type: mqtt.SUBACK, Version: mqtt.V5, PacketID: 9, ReasonCodes: []byte{1, 0x87}}))
	k.Send(0, mqtt.Append(nil, &mqtt.Packet{Type: mqtt.UNSUBSCRIBE, Version: mqtt.V5, PacketID: 10, Filters: []mqtt.Subscription{{Filter: []byte("icu/bed7/pump/cmd")}}}))
	k.Send(1, mqtt.Append(nil, &mqtt.Packet{Type: mqtt.UNSUBACK, Version: mqtt.V5, PacketID: 10, ReasonCodes: []byte{0}}))
	k.Send(0, []byte{0xc0, 0})
	k.Send(1, []byte{0xd0, 0})
	dis := &mqtt.Packet{Type: mqtt.DISCONNECT, Version: mqtt.V5, ReasonCode: 0x04}
	dis.Props.ReasonString = []byte("bye")
	dis.Props.Set(mqtt.PropReasonString)
	k.Send(0, mqtt.Append(nil, dis))
	k.Close()
	return c.Pcap()
}

func malformedSession() []byte {
	c := New(capture.LinkEthernet, t0)
	k := c.NewConn("10.0.0.6:40019", "10.0.0.2:1883")
	k.Handshake()
	k.Send(0, Connect("fuzz", mqtt.V311))
	k.Send(1, connack)
	k.Send(0, []byte{0x31, 5, 0, 1, 'a', 'b', 'c'})            // PUBLISH with retain: fine
	k.Send(0, []byte{0x36, 5, 0, 1, 'a', 0, 1})                // QoS 3
	k.Send(0, []byte{0x82, 6, 0, 1, 0, 1, '#', 0})             // SUBSCRIBE with correct flags, '#'
	k.Send(0, []byte{0x80, 6, 0, 2, 0, 1, 'x', 0})             // SUBSCRIBE with reserved flags 0
	k.Send(0, []byte{0x00, 0})                                 // type 0
	k.Send(0, []byte{0xf0, 0})                                 // AUTH on 3.1.1
	k.Send(0, Connect("fuzz-again", mqtt.V311))                // double CONNECT
	k.Send(0, []byte{0x30, 3, 0, 0, 'x'})                      // empty topic
	k.Send(0, Publish("a/+/c", "w"))                           // wildcard in a PUBLISH
	k.Send(0, []byte{0x10, 8, 0, 4, 'M', 'Q', 'T', 'T', 4, 2}) // CONNECT cut inside its variable header
	k.Send(0, []byte{0xc0, 0})
	k.Reset(0)
	return c.Pcap()
}

// tlsSession runs a real crypto/tls handshake over an in-memory pipe and
// records each write as one TCP segment.
func tlsSession(version uint16, clientCert bool) []byte {
	ca, caKey := selfSigned("iomtguard test CA", nil, nil, true)
	srv, srvKey := selfSigned("broker.icu.local", ca, caKey, false)
	cli, cliKey := selfSigned("bed1-ecg", ca, caKey, false)
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	port := "8883"
	if version == tls.VersionTLS13 {
		port = "8884"
	}
	scfg := &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{srv.Raw}, PrivateKey: srvKey}},
		MinVersion: version, MaxVersion: version, Rand: zeroRand{}}
	ccfg := &tls.Config{RootCAs: pool, ServerName: "broker.icu.local", MinVersion: version, MaxVersion: version, Rand: zeroRand{}}
	if clientCert {
		scfg.ClientAuth = tls.RequireAndVerifyClientCert
		scfg.ClientCAs = pool
		ccfg.Certificates = []tls.Certificate{{Certificate: [][]byte{cli.Raw}, PrivateKey: cliKey}}
	}
	a, b := tcpPair()
	var mu sync.Mutex
	var writes []struct {
		dir  int
		data []byte
	}
	rec := func(conn net.Conn, dir int) net.Conn {
		return &recConn{Conn: conn, fn: func(p []byte) {
			mu.Lock()
			writes = append(writes, struct {
				dir  int
				data []byte
			}{dir, append([]byte(nil), p...)})
			mu.Unlock()
		}}
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		s := tls.Server(rec(b, 1), scfg)
		if s.Handshake() == nil {
			buf := make([]byte, 64)
			s.Read(buf)
			s.Write(connack)
		}
		s.Close()
	}()
	cl := tls.Client(rec(a, 0), ccfg)
	if cl.Handshake() == nil {
		cl.Write(Connect("bed1-ecg", mqtt.V311))
		buf := make([]byte, 4)
		io.ReadFull(cl, buf)
	}
	cl.Close()
	wg.Wait()
	c := New(capture.LinkEthernet, t0)
	k := c.NewConn("10.0.0.7:40021", "10.0.0.2:"+port)
	k.Handshake()
	for _, w := range writes {
		k.Send(w.dir, w.data)
	}
	return c.Pcap()
}

type recConn struct {
	net.Conn
	fn func([]byte)
}

func (r *recConn) Write(p []byte) (int, error) {
	r.fn(p)
	return r.Conn.Write(p)
}

// zeroRand makes handshakes deterministic enough for golden files (key
// shares still vary with Go's own randomness in some versions).
type zeroRand struct{}

func (zeroRand) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 7
	}
	return len(p), nil
}

func selfSigned(cn string, parent *x509.Certificate, parentKey *ecdsa.PrivateKey, isCA bool) (*x509.Certificate, *ecdsa.PrivateKey) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(mrand.Int64N(1 << 62)), Subject: pkix.Name{CommonName: cn, Organization: []string{"ICU test"}},
		NotBefore: time.Unix(1_690_000_000, 0), NotAfter: time.Unix(1_990_000_000, 0), IsCA: isCA, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		DNSNames: []string{cn}}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		panic(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return cert, key
}

// multiSection writes a pcapng by hand: section 1 big-endian with a
// microsecond interface, section 2 little-endian with a 2^-20 s interface and
// a simple packet block.
func multiSection() []byte {
	frame := func(sport uint16, payload []byte, seq uint32, flags uint16) []byte {
		s := &packet.Segment{Src: mustAP("10.9.0.1", sport), Dst: mustAP("10.9.0.2", 1883), Seq: seq, Ack: 1, Flags: flags, Window: 500, WScale: -1, Payload: payload}
		return packet.AppendFrame(nil, capture.LinkEthernet, s)
	}
	var out []byte
	for sec, order := range []binary.AppendByteOrder{binary.BigEndian, binary.LittleEndian} {
		o := order
		block := func(typ uint32, body []byte) {
			for len(body)%4 != 0 {
				body = append(body, 0)
			}
			n := uint32(12 + len(body))
			out = o.AppendUint32(out, typ)
			out = o.AppendUint32(out, n)
			out = append(out, body...)
			out = o.AppendUint32(out, n)
		}
		var shb []byte
		shb = o.AppendUint32(shb, 0x1a2b3c4d)
		shb = o.AppendUint16(shb, 1)
		shb = o.AppendUint16(shb, 0)
		shb = o.AppendUint64(shb, ^uint64(0))
		if o == binary.BigEndian {
			out = append(out, 0x0a, 0x0d, 0x0d, 0x0a)
			out = o.AppendUint32(out, uint32(12+len(shb)))
			out = append(out, shb...)
			out = o.AppendUint32(out, uint32(12+len(shb)))
		} else {
			block(0x0a0d0d0a, shb)
		}
		var idb []byte
		idb = o.AppendUint16(idb, uint16(capture.LinkEthernet))
		idb = o.AppendUint16(idb, 0)
		idb = o.AppendUint32(idb, 65535)
		res := byte(6)
		if sec == 1 {
			res = 0x80 | 20
		}
		idb = o.AppendUint16(idb, 9)
		idb = o.AppendUint16(idb, 1)
		idb = append(idb, res, 0, 0, 0)
		idb = append(idb, 0, 0, 0, 0)
		block(1, idb)
		var ts uint64
		if sec == 0 {
			ts = uint64(1_700_000_000)*1e6 + 250_000
		} else {
			ts = uint64(1_700_000_001)<<20 | 1<<19 // 1_700_000_001.5 s
		}
		pkts := [][]byte{frame(50000+uint16(sec), Connect("sec", mqtt.V311), 100, packet.FlagPSH|packet.FlagACK)}
		for i, p := range pkts {
			var epb []byte
			epb = o.AppendUint32(epb, 0)
			t := ts + uint64(i)
			epb = o.AppendUint32(epb, uint32(t>>32))
			epb = o.AppendUint32(epb, uint32(t))
			epb = o.AppendUint32(epb, uint32(len(p)))
			epb = o.AppendUint32(epb, uint32(len(p)))
			epb = append(epb, p...)
			block(6, epb)
		}
		if sec == 1 {
			p := frame(50001, Publish("s/p", "b"), 100+uint32(len(Connect("sec", mqtt.V311))), packet.FlagPSH|packet.FlagACK)
			var spb []byte
			spb = o.AppendUint32(spb, uint32(len(p)))
			spb = append(spb, p...)
			block(3, spb)
		}
	}
	return out
}

func mustAP(a string, port uint16) netip.AddrPort {
	return netip.AddrPortFrom(netip.MustParseAddr(a), port)
}

// ScenarioFile names a scenario's capture file by its format.
func ScenarioFile(name string, b []byte) string {
	if capture.Sniff(b) == capture.KindPcapng {
		return name + ".pcapng"
	}
	return name + ".pcap"
}

// FindScenarioFile returns the path of a scenario's committed capture in dir.
func FindScenarioFile(dir, name string) (string, error) {
	for _, ext := range []string{".pcap", ".pcapng"} {
		p := filepath.Join(dir, name+ext)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("no capture for scenario %s in %s", name, dir)
}

// tcpPair returns two ends of a loopback TCP connection (kernel-buffered, so
// that TLS 1.3's post-handshake messages do not block as on net.Pipe).
func tcpPair() (net.Conn, net.Conn) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	ch := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			panic(err)
		}
		ch <- c
	}()
	a, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		panic(err)
	}
	return a, <-ch
}

// TLSSession returns a capture of one MQTT session over TLS of the given
// version (a real crypto/tls handshake), with or without a client
// certificate.
func TLSSession(version uint16, clientCert bool) []byte { return tlsSession(version, clientCert) }
