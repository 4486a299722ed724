package mqtt

import (
	"bytes"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func roundTrip(t *testing.T, p *Packet) *Packet {
	t.Helper()
	b := Append(nil, p)
	var got Packet
	Decode(b, len(b), p.Version, &got)
	if got.Anomalies != 0 {
		t.Fatalf("%v: anomalies %v in %x", p.Type, got.Anomalies, b)
	}
	again := Append(nil, &got)
	if !bytes.Equal(again, b) {
		t.Fatalf("%v: re-encoding differs:\n %x\n %x", p.Type, again, b)
	}
	return &got
}

func TestAllTypes(t *testing.T) {
	for _, v := range []Version{V31, V311, V5} {
		props := Properties{}
		if v == V5 {
			props.SessionExpiry = 60
			props.Set(PropSessionExpiry)
		}
		cases := []*Packet{
			{Type: CONNECT, Version: v, ClientID: []byte("bed1-ecg"), ConnectFlags: 0x06 | 0x20, KeepAlive: 60,
				WillTopic: []byte("icu/will"), WillPayload: []byte("gone"), Username: []byte("u"), Password: []byte("p")},
			{Type: CONNACK, Version: v, AckFlags: 1, ReasonCode: 0},
			{Type: PUBLISH, Version: v, QoS: 1, PacketID: 3, Retain: true, Topic: []byte("icu/bed1/ecg"), Payload: []byte("hr=72")},
			{Type: PUBACK, Version: v, PacketID: 3},
			{Type: PUBREC, Version: v, PacketID: 4},
			{Type: PUBREL, Version: v, PacketID: 4},
			{Type: PUBCOMP, Version: v, PacketID: 4},
			{Type: SUBSCRIBE, Version: v, PacketID: 5, Filters: []Subscription{{Filter: []byte("icu/+/ecg"), Options: 1}, {Filter: []byte("a/#")}}},
			{Type: SUBACK, Version: v, PacketID: 5, ReasonCodes: []byte{1, 0}},
			{Type: UNSUBSCRIBE, Version: v, PacketID: 6, Filters: []Subscription{{Filter: []byte("a/#")}}},
			{Type: UNSUBACK, Version: v, PacketID: 6},
			{Type: PINGREQ, Version: v},
			{Type: PINGRESP, Version: v},
			{Type: DISCONNECT, Version: v},
		}
		if v == V5 {
			cases[0].Props = props
			cases = append(cases, &Packet{Type: AUTH, Version: v, ReasonCode: 0x18, Props: Properties{AuthMethod: []byte("SCRAM"), Seen: 1 << PropAuthMethod}})
			cases = append(cases, &Packet{Type: DISCONNECT, Version: v, ReasonCode: 0x8E})
		}
		for _, p := range cases {
			got := roundTrip(t, p)
			if got.Type != p.Type {
				t.Errorf("%v: type %v", p.Type, got.Type)
			}
			switch p.Type {
			case CONNECT:
				if string(got.ClientID) != "bed1-ecg" || !got.PasswordPresent() || got.KeepAlive != 60 ||
					string(got.WillTopic) != "icu/will" || Version(got.ProtocolLevel) != v {
					t.Errorf("v%d CONNECT: %+v", v, got)
				}
				if v == V5 && got.Props.SessionExpiry != 60 {
					t.Errorf("session expiry lost")
				}
			case PUBLISH:
				if string(got.Topic) != "icu/bed1/ecg" || got.PacketID != 3 || got.QoS != 1 || !got.Retain || string(got.Payload) != "hr=72" || got.PayloadLen != 5 {
					t.Errorf("v%d PUBLISH: %+v", v, got)
				}
			case SUBSCRIBE:
				if len(got.Filters) != 2 || string(got.Filters[0].Filter) != "icu/+/ecg" || got.Filters[0].QoS() != 1 {
					t.Errorf("v%d SUBSCRIBE: %+v", v, got.Filters)
				}
			case SUBACK:
				if !bytes.Equal(got.ReasonCodes, []byte{1, 0}) {
					t.Errorf("v%d SUBACK: %v", v, got.ReasonCodes)
				}
			}
		}
	}
}

func TestAnomalies(t *testing.T) {
	for _, c := range []struct {
		name string
		in   []byte
		v    Version
		want Anomalies
	}{
		{"publish qos3", []byte{0x36, 5, 0, 1, 'a', 0, 1}, V311, AnomalyInvalidQoS},
		{"publish dup with qos0", []byte{0x38, 3, 0, 1, 'a'}, V311, AnomalyReservedFlags},
		{"subscribe flags 0", []byte{0x80, 6, 0, 1, 0, 1, 'x', 0}, V311, AnomalyReservedFlags},
		{"pingreq flags", []byte{0xc1, 0}, V311, AnomalyReservedFlags},
		{"type 0", []byte{0x00, 0}, V311, AnomalyUnassignedType},
		{"auth before v5", []byte{0xf0, 0}, V311, AnomalyUnassignedType},
		{"empty topic", []byte{0x30, 3, 0, 0, 'x'}, V311, AnomalyEmptyTopic},
		{"wildcard publish", []byte{0x30, 5, 0, 3, 'a', '/', '#'}, V311, AnomalyWildcardPublish},
		{"packet id 0", []byte{0x32, 5, 0, 1, 'a', 0, 0}, V311, AnomalyPacketIDZero},
		{"subscribe without filters", []byte{0x82, 2, 0, 1}, V311, AnomalyNoFilters},
		{"bad filter", []byte{0x82, 7, 0, 1, 0, 2, 'a', '#', 0}, V311, AnomalyBadFilter},
		{"subscribe qos3", []byte{0x82, 6, 0, 1, 0, 1, 'x', 3}, V311, AnomalyInvalidQoS},
		{"connect reserved flag", []byte{0x10, 13, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x03, 0, 60, 0, 1, 'c'}, V311, AnomalyConnectReserved},
		{"connect bad name", []byte{0x10, 13, 0, 4, 'M', 'Q', 'X', 'X', 4, 0x02, 0, 60, 0, 1, 'c'}, V311, AnomalyProtocolName},
		{"connect bad level", []byte{0x10, 13, 0, 4, 'M', 'Q', 'T', 'T', 9, 0x02, 0, 60, 0, 1, 'c'}, V311, AnomalyProtocolLevel},
		{"will qos without will", []byte{0x10, 13, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x0a, 0, 60, 0, 1, 'c'}, V311, AnomalyWillFlags},
		{"password without user", []byte{0x10, 16, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x42, 0, 60, 0, 1, 'c', 0, 1, 'p'}, V311, AnomalyPasswordNoUser},
		{"client id not utf-8", []byte{0x10, 13, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0, 60, 0, 1, 0xff}, V311, AnomalyUTF8},
		{"connect truncated", []byte{0x10, 8, 0, 4, 'M', 'Q', 'T', 'T', 4, 2}, V311, AnomalyTruncated | AnomalyMalformedLength},
		{"puback trailing", []byte{0x40, 3, 0, 1, 9}, V311, AnomalyTrailingBytes | AnomalyMalformedLength},
		{"connack bad code", []byte{0x20, 2, 0, 9}, V311, AnomalyReasonCode},
		{"v5 bad property", []byte{0x30, 7, 0, 1, 'a', 2, 0x7f, 0, 'x'}, V5, AnomalyProperties},
		{"v5 duplicate property", []byte{0x30, 9, 0, 1, 'a', 4, 0x01, 0, 0x01, 0, 'x'}, V5, AnomalyProperties},
		{"v5 puback bad reason", []byte{0x40, 3, 0, 1, 0x05}, V5, AnomalyReasonCode},
	} {
		t.Run(c.name, func(t *testing.T) {
			var p Packet
			Decode(c.in, len(c.in), c.v, &p)
			if p.Anomalies != c.want {
				t.Errorf("anomalies %v, want %v", p.Anomalies, c.want)
			}
		})
	}
}

func TestMalformedLength(t *testing.T) {
	if _, _, err := ParseFixedHeader([]byte{0x30, 0xff, 0xff, 0xff, 0xff, 1}); err != ErrMalformedLength {
		t.Errorf("five-byte length: %v", err)
	}
	if hl, rl, err := ParseFixedHeader([]byte{0x30, 0xff, 0xff, 0xff, 0x7f}); err != nil || hl != 5 || rl != MaxRemainingLength {
		t.Errorf("largest length: %d %d %v", hl, rl, err)
	}
	if _, _, err := ParseFixedHeader([]byte{0x30, 0x80}); err != ErrShort {
		t.Errorf("short: %v", err)
	}
}

// TestPresentMirrorsTshark checks which fields a packet cut short still has:
// tshark adds each field it reads before failing, and so does Decode.
func TestPresentMirrorsTshark(t *testing.T) {
	full := Append(nil, &Packet{Type: CONNECT, Version: V311, ClientID: []byte("abcdef"), ConnectFlags: 2, KeepAlive: 60})
	var p Packet
	// Cut inside the client ID: its length is present, the ID is not.
	cut := full[:len(full)-2]
	cut[1] = byte(len(full) - 2) // keep the announced length: the packet is really shorter
	Decode(cut, len(full), V311, &p)
	if !p.Has(FieldClientIDLen) || p.Has(FieldClientID) || !p.Has(FieldKeepAlive) {
		t.Errorf("present %b", p.Present)
	}
}

// TestLargePublishPrefix decodes a PUBLISH from its first bytes only.
func TestLargePublishPrefix(t *testing.T) {
	b := Append(nil, &Packet{Type: PUBLISH, Topic: []byte("big"), Payload: make([]byte, 100000)})
	var p Packet
	Decode(b[:100], len(b), V311, &p)
	if string(p.Topic) != "big" || p.PayloadLen != 100000 || len(p.Payload) != 100-4-5 || p.Anomalies != 0 {
		t.Errorf("topic %q payload %d/%d anomalies %v", p.Topic, len(p.Payload), p.PayloadLen, p.Anomalies)
	}
}

func stream(pkts ...*Packet) []byte {
	var b []byte
	for _, p := range pkts {
		b = Append(b, p)
	}
	return b
}

func frameAll(fr *Framer, chunks [][]byte) (types []Type, sizes []int) {
	var out Frame
	for _, c := range chunks {
		for len(c) > 0 {
			n, st := fr.Next(c, &out)
			c = c[n:]
			if st == Complete {
				types = append(types, Type(out.Bytes[0]>>4))
				sizes = append(sizes, out.Total)
			}
			if st == NeedMore {
				break
			}
		}
	}
	return
}

// TestFramerSplits splits a stream at every position into two chunks and at
// every byte: the packets found are always the same.
func TestFramerSplits(t *testing.T) {
	s := stream(&Packet{Type: CONNECT, ClientID: []byte("x"), KeepAlive: 5},
		&Packet{Type: PUBLISH, Topic: []byte("t"), Payload: make([]byte, 300)}, // two-byte length
		&Packet{Type: PINGREQ}, &Packet{Type: SUBSCRIBE, PacketID: 1, Filters: []Subscription{{Filter: []byte("#")}}})
	want := []Type{CONNECT, PUBLISH, PINGREQ, SUBSCRIBE}
	for i := 0; i <= len(s); i++ {
		got, _ := frameAll(&Framer{}, [][]byte{s[:i], s[i:]})
		if !cmp.Equal(got, want) {
			t.Fatalf("split at %d: %v", i, got)
		}
	}
	var bytewise [][]byte
	for i := range s {
		bytewise = append(bytewise, s[i:i+1])
	}
	if got, _ := frameAll(&Framer{}, bytewise); !cmp.Equal(got, want) {
		t.Fatalf("byte by byte: %v", got)
	}
}

func TestFramerBoundedBuffer(t *testing.T) {
	big := Append(nil, &Packet{Type: PUBLISH, Topic: []byte("t"), Payload: make([]byte, 1<<20)})
	fr := &Framer{MaxBuffer: 4096}
	var out Frame
	rest := big
	var got *Frame
	for len(rest) > 0 {
		n, st := fr.Next(rest[:min(len(rest), 1460)], &out)
		rest = rest[n:]
		if fr.Buffered() > 4096 {
			t.Fatalf("holds %d bytes", fr.Buffered())
		}
		if st == Complete {
			got = &out
		}
	}
	if got == nil || got.Total != len(big) || len(got.Bytes) != 4096 {
		t.Fatalf("got %+v", got)
	}
}

func TestFramerGaps(t *testing.T) {
	p1 := Append(nil, &Packet{Type: PUBLISH, Topic: []byte("a"), Payload: []byte("0123456789")})
	p2 := Append(nil, &Packet{Type: PINGREQ})
	// A gap inside a packet of known length: the framer stays in step.
	fr := &Framer{}
	var out Frame
	fr.Next(p1[:5], &out)
	fr.Gap(4)
	n, st := fr.Next(p1[9:], &out)
	if st != Complete || !out.Gapped || n != len(p1)-9 {
		t.Fatalf("in-packet gap: %v %+v", st, out)
	}
	if _, st := fr.Next(p2, &out); st != Complete || out.Gapped {
		t.Fatalf("after the gap: %v", st)
	}
	// A gap past the packet end: the packet is lost; garbage is skipped to the next header.
	fr = &Framer{}
	fr.Next(p1[:5], &out)
	if !fr.Gap(100) {
		t.Error("a lost packet was not reported")
	}
	types, _ := frameAll(fr, [][]byte{append([]byte{0xff, 0xff, 0x07}, p2...)})
	if !cmp.Equal(types, []Type{PINGREQ}) {
		t.Fatalf("resync: %v", types)
	}
}

func TestPlausible(t *testing.T) {
	good := stream(&Packet{Type: PUBLISH, Topic: []byte("a/b"), Payload: []byte("1")}, &Packet{Type: PINGRESP})
	if !Plausible(good) || !Plausible(good[:len(good)-1]) {
		t.Error("MQTT not recognised")
	}
	for _, s := range []string{"GET / HTTP/1.1\r\n", "SSH-2.0-OpenSSH", "\x16\x03\x01\x00\xa5\x01"} {
		if Plausible([]byte(s)) {
			t.Errorf("%q taken for MQTT", s)
		}
	}
	if !LooksLikeConnect(Append(nil, &Packet{Type: CONNECT, Version: V31})) || LooksLikeConnect(good) {
		t.Error("LooksLikeConnect")
	}
}

func TestDecodeDoesNotAllocate(t *testing.T) {
	b := Append(nil, &Packet{Type: PUBLISH, QoS: 1, PacketID: 9, Topic: []byte("icu/bed1/ecg"), Payload: []byte("72")})
	s := Append(nil, &Packet{Type: SUBSCRIBE, PacketID: 1, Filters: []Subscription{{Filter: []byte("a")}, {Filter: []byte("b")}}})
	var p Packet
	if n := testing.AllocsPerRun(1000, func() { Decode(b, len(b), V311, &p); Decode(s, len(s), V311, &p) }); n != 0 {
		t.Errorf("Decode allocates %v times", n)
	}
	fr := &Framer{}
	var out Frame
	data := stream(&Packet{Type: PINGREQ}, &Packet{Type: PUBLISH, Topic: []byte("x")})
	if n := testing.AllocsPerRun(1000, func() {
		for rest := data; len(rest) > 0; {
			k, _ := fr.Next(rest, &out)
			rest = rest[k:]
		}
	}); n != 0 {
		t.Errorf("Framer allocates %v times", n)
	}
}

func TestTypeNames(t *testing.T) {
	for i := 0; i < 16; i++ {
		name := Type(i).String()
		if got, ok := TypeByName(name); !ok || got != Type(i) {
			t.Errorf("%d %s", i, name)
		}
	}
}
