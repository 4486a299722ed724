package pcaptest

import (
	"bytes"
	"compress/flate"
	"fmt"
	"slices"

	"github.com/iomtguard/iomtguard/internal/capture"
	"github.com/iomtguard/iomtguard/internal/mqtt"
)

// CredentialCapture is a capture built to leak credentials in every way a
// capture can hold them, with the list of them, so that a test can grep
// every output for each.
type CredentialCapture struct {
	Pcap    []byte
	Secrets []string // every credential in it (each at least 8 bytes, and distinctive)
	// Exact lists the credentials whose bytes iomtguard can place exactly:
	// all of them travel on connections to 10.9.1.0/24 (the rest, to
	// 10.9.2.0/24, are masked conservatively: whole WebSocket frames, bytes
	// read out of order). On those connections masking must cover these and
	// nothing else; ExactCopies says how many times each is on the wire.
	Exact       []string
	ExactCopies map[string]int
}

// Credentials builds the credential capture: CONNECT passwords split across
// segments at every byte, retransmitted, captured late (after a gap),
// reordered, over MQTT 3.1, 3.1.1 and 5 (with authentication data in
// CONNECT, CONNACK and AUTH), on a port other than 1883, in a CONNECT larger
// than the decoder's buffer, in a malformed CONNECT, and in WebSocket
// (masked frames, a fragmented message, permessage-deflate, and tokens in the
// upgrade request's query, Authorization and Cookie).
func Credentials() CredentialCapture {
	var cc CredentialCapture
	cc.ExactCopies = map[string]int{}
	secret := func(exact bool, format string, a ...any) string {
		s := fmt.Sprintf(format, a...)
		if !slices.Contains(cc.Secrets, s) {
			cc.Secrets = append(cc.Secrets, s)
		}
		if exact {
			cc.Exact = append(cc.Exact, s)
			cc.ExactCopies[s]++
		}
		return s
	}
	c := New(capture.LinkEthernet, t0)
	port := 42000
	conn := func(server string) *Conn {
		port++
		k := c.NewConn(fmt.Sprintf("10.9.0.%d:%d", port%200+1, port), server)
		k.Handshake()
		return k
	}
	connect := func(v mqtt.Version, id, pw string) []byte {
		return mqtt.Append(nil, &mqtt.Packet{Type: mqtt.CONNECT, Version: v, ClientID: []byte(id), ConnectFlags: 0xc2, KeepAlive: 60,
			Username: []byte("user-" + id), Password: []byte(pw)})
	}
	ack := []byte{0x20, 2, 0, 0}

	// A 3.1.1 CONNECT split in two at every byte.
	whole := connect(mqtt.V311, "split", "Sp1itQx00Vv")
	for cut := 1; cut < len(whole); cut++ {
		pw := secret(true, "Sp1itQx%02dVv", cut)
		b := connect(mqtt.V311, "split", pw)
		k := conn("10.9.1.1:1883")
		k.Send(FromClient, b[:cut])
		k.Send(FromClient, b[cut:])
		k.Send(FromServer, ack)
		k.Close()
	}
	// Sent byte by byte.
	{
		pw := secret(true, "BytQx-By7e-Zz")
		b := connect(mqtt.V311, "bytes", pw)
		k := conn("10.9.1.1:1883")
		for i := range b {
			k.Send(FromClient, b[i:i+1])
		}
		k.Close()
	}
	// Retransmitted: the same segment twice, and a copy much later.
	{
		pw := secret(true, "ReQx7ransm1t")
		b := connect(mqtt.V311, "retx", pw)
		k := conn("10.9.1.1:1883")
		seq := k.Seq[FromClient]
		k.Send(FromClient, b)
		k.SendAt(FromClient, seq, b)
		k.Send(FromServer, ack)
		for i := 0; i < 40; i++ {
			k.Send(FromClient, Publish("bed/1/ecg", "72"))
		}
		k.SendAt(FromClient, seq, b)
		k.Close()
		cc.ExactCopies[pw] = 3
	}
	// The middle of the CONNECT captured after its end (a gap, then a late copy).
	{
		pw := secret(false, "LaQxMiddl3-Pw")
		b := connect(mqtt.V311, "late", pw)
		k := conn("10.9.2.1:1883")
		seq := k.Seq[FromClient]
		at := bytes.Index(b, []byte(pw))
		k.Send(FromClient, b[:at])
		k.Skip(FromClient, 10)
		k.Send(FromClient, b[at+10:])
		k.SendAt(FromClient, seq+uint32(at), b[at:at+10])
		k.Close()
	}
	// Reordered: the second half before the first.
	{
		pw := secret(false, "ReQx0rdered-Pw")
		b := connect(mqtt.V311, "reorder", pw)
		k := conn("10.9.2.1:1883")
		seq := k.Seq[FromClient]
		half := len(b) / 2
		k.SendAt(FromClient, seq+uint32(half), b[half:])
		k.SendAt(FromClient, seq, b[:half])
		k.Skip(FromClient, len(b))
		k.Close()
	}
	// Picked up mid-stream: the capture begins inside a CONNECT, at its user name.
	{
		pw := secret(false, "MidQxStr3am-Pw")
		b := connect(mqtt.V311, "mid", pw)
		port++
		k := c.NewConn(fmt.Sprintf("10.9.0.%d:%d", port%200+1, port), "10.9.2.2:1883")
		at := bytes.Index(b, []byte("user-mid"))
		k.Send(FromClient, b[at:])
		k.Send(FromServer, ack)
		k.Send(FromClient, Publish("bed/2/ecg", "70"))
		k.Close()
	}
	// MQTT 3.1 (MQIsdp), and a port that is not 1883.
	{
		k := conn("10.9.1.1:1883")
		k.Send(FromClient, connect(mqtt.V31, "legacy", secret(true, "LegQx31-Pw-88")))
		k.Send(FromServer, ack)
		k.Close()
		o := conn("10.9.1.2:2883")
		o.Send(FromClient, connect(mqtt.V311, "other-port", secret(true, "OthQxP0rt-Pw9")))
		o.Send(FromServer, ack)
		o.Close()
	}
	// MQTT 5: authentication data in CONNECT, CONNACK and AUTH, and a password.
	{
		k := conn("10.9.1.1:1883")
		con := &mqtt.Packet{Type: mqtt.CONNECT, Version: mqtt.V5, ClientID: []byte("v5"), ConnectFlags: 0xc2, KeepAlive: 30,
			Username: []byte("v5-user"), Password: []byte(secret(true, "FivQx-Pw-555"))}
		con.Props.AuthMethod, con.Props.AuthData = []byte("SCRAM-SHA-256"), []byte(secret(true, "n,,n=v5,r=QxNonce7Abc"))
		con.Props.Set(mqtt.PropAuthMethod)
		con.Props.Set(mqtt.PropAuthData)
		k.Send(FromClient, mqtt.Append(nil, con))
		au := &mqtt.Packet{Type: mqtt.AUTH, Version: mqtt.V5, ReasonCode: 0x18}
		au.Props.AuthMethod, au.Props.AuthData = []byte("SCRAM-SHA-256"), []byte(secret(true, "r=QxSrvN0nce,s=QxSa1t"))
		au.Props.Set(mqtt.PropAuthMethod)
		au.Props.Set(mqtt.PropAuthData)
		k.Send(FromServer, mqtt.Append(nil, au))
		au2 := *au
		au2.Props.AuthData = []byte(secret(true, "c=biws,p=QxPr00fQrs"))
		k.Send(FromClient, mqtt.Append(nil, &au2))
		ca := &mqtt.Packet{Type: mqtt.CONNACK, Version: mqtt.V5}
		ca.Props.AuthMethod, ca.Props.AuthData = []byte("SCRAM-SHA-256"), []byte(secret(true, "v=QxSig9Tuv"))
		ca.Props.Set(mqtt.PropAuthMethod)
		ca.Props.Set(mqtt.PropAuthData)
		k.Send(FromServer, mqtt.Append(nil, ca))
		k.Send(FromClient, mqtt.Append(nil, &mqtt.Packet{Type: mqtt.PUBLISH, Version: mqtt.V5, Topic: []byte("bed/5/spo2"), Payload: []byte("97")}))
		k.Close()
	}
	// A CONNECT larger than the decoder's 64 KiB buffer: the password lies
	// past what is held of it.
	{
		pw := secret(false, "PaQxBuff3r-Pw")
		b := mqtt.Append(nil, &mqtt.Packet{Type: mqtt.CONNECT, Version: mqtt.V311, ClientID: bytes.Repeat([]byte("c"), 40000), ConnectFlags: 0xc2,
			KeepAlive: 60, Username: bytes.Repeat([]byte("u"), 40000), Password: []byte(pw)})
		k := conn("10.9.2.1:1883")
		for i := 0; i < len(b); i += 1400 {
			k.Send(FromClient, b[i:min(i+1400, len(b))])
		}
		k.Close()
	}
	// A malformed CONNECT: the user name's length runs past the packet.
	{
		pw := secret(false, "MaQxf0rmed-Pw")
		b := connect(mqtt.V311, "bad", pw)
		i := bytes.Index(b, []byte("user-bad"))
		b[i-1] = 250
		k := conn("10.9.2.1:1883")
		k.Send(FromClient, b)
		k.Close()
	}
	// WebSocket: tokens in the upgrade request; the CONNECT in a masked
	// frame, in a fragmented message split over segments, and compressed.
	key := []byte{0x5a, 0x11, 0xc3, 0x09}
	wsReq := func(host string) []byte {
		return []byte("GET /mqtt?token=" + secret(false, "QxQu3ryTok") + " HTTP/1.1\r\nHost: " + host +
			"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nAuthorization: Bearer " + secret(false, "QxB3arerTok") +
			"\r\nCookie: session=" + secret(false, "QxC00kieSes") +
			"\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n")
	}
	{
		k := conn("10.9.2.3:9001")
		_, resp := WSUpgrade("h", "mqtt", "")
		k.Send(FromClient, wsReq("10.9.2.3:9001"))
		k.Send(FromServer, resp)
		k.Send(FromClient, WSFrame(2, connect(mqtt.V311, "ws", secret(false, "QxW5Frame-Pw")), true, false, key))
		k.Send(FromServer, WSFrame(2, ack, true, false, nil))
		k.Close()
	}
	{
		k := conn("10.9.2.3:9001")
		_, resp := WSUpgrade("h", "mqtt", "")
		k.Send(FromClient, wsReq("10.9.2.3:9001"))
		k.Send(FromServer, resp)
		b := connect(mqtt.V311, "ws-frag", secret(false, "QxW5Frag-Pw"))
		half := len(b) - 12
		f := append(WSFrame(2, b[:half], false, false, key), WSFrame(0, b[half:], true, false, key)...)
		k.Send(FromClient, f[:len(f)-9])
		k.Send(FromClient, f[len(f)-9:])
		k.Close()
	}
	{
		k := conn("10.9.2.3:8083")
		_, resp := WSUpgrade("h", "mqtt", "permessage-deflate")
		k.Send(FromClient, wsReq("10.9.2.3:8083"))
		k.Send(FromServer, resp)
		var zb bytes.Buffer
		zw, _ := flate.NewWriter(&zb, flate.NoCompression)
		zw.Write(connect(mqtt.V311, "ws-deflate", secret(false, "QxW5Defl-Pw")))
		zw.Flush()
		z := zb.Bytes()
		k.Send(FromClient, WSFrame(2, z[:len(z)-4], true, true, key))
		k.Close()
	}
	cc.Pcap = c.Pcap()
	return cc
}
