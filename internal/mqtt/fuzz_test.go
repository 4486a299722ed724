package mqtt

import (
	"bytes"
	"testing"
)

// FuzzDecode decodes arbitrary bytes under every version. A packet that
// decodes without anomalies must survive a round trip: encode, decode, and
// encode again to the same bytes.
func FuzzDecode(f *testing.F) {
	seeds := []*Packet{
		{Type: CONNECT, Version: V5, ClientID: []byte("c"), ConnectFlags: 0xc6, KeepAlive: 1, WillTopic: []byte("w"), WillPayload: []byte("p"), Username: []byte("u"), Password: []byte("x")},
		{Type: PUBLISH, Version: V5, QoS: 2, PacketID: 1, Topic: []byte("a/b"), Payload: []byte("v"), Props: Properties{TopicAlias: 2, Seen: 1 << PropTopicAlias}},
		{Type: SUBSCRIBE, PacketID: 1, Filters: []Subscription{{Filter: []byte("+/#"), Options: 2}}},
		{Type: SUBACK, PacketID: 1, ReasonCodes: []byte{0, 0x80}},
		{Type: DISCONNECT, Version: V5, ReasonCode: 4},
	}
	for _, p := range seeds {
		f.Add(Append(nil, p), uint8(p.Version))
	}
	f.Fuzz(func(t *testing.T, b []byte, v uint8) {
		ver := Version(v % 6)
		var p Packet
		Decode(b, len(b), ver, &p)
		if p.Anomalies != 0 || len(b) == 0 {
			return
		}
		hl, rl, err := ParseFixedHeader(b)
		if err != nil || hl+rl != len(b) {
			return
		}
		enc := Append(nil, &p)
		var q Packet
		Decode(enc, len(enc), ver, &q)
		if q.Anomalies != 0 {
			t.Fatalf("re-encoded packet has anomalies %v: %x -> %x", q.Anomalies, b, enc)
		}
		if again := Append(nil, &q); !bytes.Equal(again, enc) {
			t.Fatalf("round trip differs: %x -> %x -> %x", b, enc, again)
		}
	})
}

// FuzzFramer feeds arbitrary bytes in arbitrary chunks with gaps.
func FuzzFramer(f *testing.F) {
	f.Add([]byte{0x30, 3, 0, 1, 'a', 0xc0, 0}, uint8(2), uint8(1))
	f.Fuzz(func(t *testing.T, b []byte, chunk, gap uint8) {
		fr := &Framer{MaxBuffer: 64}
		var out Frame
		step := int(chunk%16) + 1
		for i := 0; i < len(b); i += step {
			c := b[i:min(len(b), i+step)]
			for len(c) > 0 {
				n, st := fr.Next(c, &out)
				if n < 0 || n > len(c) || (n == 0 && st == NeedMore && len(c) > 0 && fr.Buffered() > 64) {
					t.Fatalf("consumed %d of %d", n, len(c))
				}
				c = c[n:]
				if st == Complete {
					var p Packet
					Decode(out.Bytes, out.Total, V5, &p)
				}
				if st == NeedMore {
					break
				}
			}
			if gap > 0 && i%int(gap) == 0 {
				fr.Gap(int(gap))
			}
		}
	})
}

// FuzzTopicName: the one-pass topic check flags exactly what the three
// separate checks it replaced flag (UTF-8, NUL, wildcards).
func FuzzTopicName(f *testing.F) {
	for _, s := range []string{"", "a/b", "bed1/ecg", "a/#", "+/x", "a\x00b", "caf\xc3\xa9/+", "\xff/a", "é#", "a\xc3", "\xe2\x82\xac\x00"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, s []byte) {
		var got, want Packet
		checkTopicName(&got, s)
		checkUTF8(&want, s)
		if bytes.ContainsAny(s, "#+") {
			want.Anomalies |= AnomalyWildcardPublish
		}
		if got.Anomalies != want.Anomalies {
			t.Fatalf("%q: %v, want %v", s, got.Anomalies, want.Anomalies)
		}
	})
}
