package mqtt

import (
	"bytes"
	"slices"
	"testing"
)

// covered reports whether every byte of [off, off+n) lies in one of spans.
func covered(spans []Span, off, n int) bool {
	for i := off; i < off+n; i++ {
		in := false
		for _, s := range spans {
			if i >= s.Off && i < s.End() {
				in = true
				break
			}
		}
		if !in {
			return false
		}
	}
	return true
}

// secretOffsets finds where the decoder read the password and the
// authentication data: the offsets of the slices it aliases in b.
func secretOffsets(b []byte, p *Packet) [][2]int {
	var out [][2]int
	add := func(s []byte) {
		if len(s) == 0 {
			return
		}
		for i := 0; i+len(s) <= len(b); i++ {
			if &b[i] == &s[0] {
				out = append(out, [2]int{i, len(s)})
				return
			}
		}
	}
	add(p.Props.AuthData)
	add(p.Password)
	slices.SortFunc(out, func(a, b [2]int) int { return a[0] - b[0] })
	return out
}

func secretSeeds() []*Packet {
	auth := Properties{AuthMethod: []byte("SCRAM-SHA-256"), AuthData: []byte("n,,n=pump,r=fyko+d2lbbFgONRv9qkxdawL"), UserProperties: 0}
	auth.Set(PropAuthMethod)
	auth.Set(PropAuthData)
	withAlias := Properties{SessionExpiry: 60, ReceiveMaximum: 10, AuthMethod: []byte("x"), AuthData: []byte("tok3n")}
	withAlias.Set(PropSessionExpiry)
	withAlias.Set(PropReceiveMaximum)
	withAlias.Set(PropAuthMethod)
	withAlias.Set(PropAuthData)
	return []*Packet{
		{Type: CONNECT, Version: V311, ClientID: []byte("bed1-ecg"), ConnectFlags: 0xc2, KeepAlive: 60, Username: []byte("ecg"), Password: []byte("hunter2!")},
		{Type: CONNECT, Version: V31, ClientID: []byte("legacy"), ConnectFlags: 0xc2, KeepAlive: 60, Username: []byte("u"), Password: []byte("MQIsdp-pass")},
		{Type: CONNECT, Version: V311, ClientID: []byte("pump-7"), ConnectFlags: 0xee, KeepAlive: 30, WillTopic: []byte("icu/bed7/pump/status"), WillPayload: []byte("offline"), Username: []byte("pump-7"), Password: []byte("s3cret!")},
		{Type: CONNECT, Version: V5, ClientID: []byte("v5"), ConnectFlags: 0xc2, KeepAlive: 10, Props: withAlias, Username: []byte("u5"), Password: []byte("five-pass")},
		{Type: CONNECT, Version: V5, ClientID: []byte("w5"), ConnectFlags: 0xc6, KeepAlive: 10, WillTopic: []byte("w"), WillPayload: []byte("bye"), Props: auth, Username: []byte("u"), Password: []byte("p")},
		{Type: CONNACK, Version: V5, ReasonCode: 0, Props: auth},
		{Type: AUTH, Version: V5, ReasonCode: 0x18, Props: auth},
		{Type: CONNECT, Version: V311, ClientID: []byte("nopass"), ConnectFlags: 0x02, KeepAlive: 60},
		{Type: CONNACK, Version: V311},
	}
}

// TestSecretsMatchDecoder: on well-formed packets, the spans are exactly
// where the decoder reads the password and the authentication data, and on
// every prefix (the packet still arriving) the secret bytes already there
// are covered: a frame that ends mid-password is masked up to its end.
func TestSecretsMatchDecoder(t *testing.T) {
	for i, p := range secretSeeds() {
		b := Append(nil, p)
		var d Packet
		Decode(b, len(b), p.Version, &d)
		if d.Anomalies != 0 {
			t.Fatalf("seed %d: decoder anomalies %v", i, d.Anomalies)
		}
		want := secretOffsets(b, &d)
		got := Secrets(b, len(b), true, nil)
		if len(got) != len(want) {
			t.Fatalf("seed %d (%v): spans %v, decoder reads secrets at %v", i, p.Type, got, want)
		}
		for j, w := range want {
			if got[j] != (Span{w[0], w[1]}) {
				t.Fatalf("seed %d: span %d is %v, decoder reads %v", i, j, got[j], w)
			}
		}
		for k := 1; k < len(b); k++ {
			part := Secrets(b[:k], len(b), false, nil)
			for _, w := range want {
				if lo, hi := w[0], min(w[0]+w[1], k); hi > lo && !covered(part, lo, hi-lo) {
					t.Fatalf("seed %d, prefix %d: secret bytes [%d,%d) not covered by %v", i, k, lo, hi, part)
				}
			}
			for _, s := range part {
				if !covered(got, s.Off, s.Len) {
					t.Fatalf("seed %d, prefix %d: span %v is not secret in the whole packet (%v)", i, k, s, got)
				}
			}
		}
	}
}

// TestSecretsMalformed: a complete CONNECT that announces a password but
// does not parse has everything after its last sound field treated as secret.
func TestSecretsMalformed(t *testing.T) {
	good := Append(nil, &Packet{Type: CONNECT, Version: V311, ClientID: []byte("c"), ConnectFlags: 0xc2, KeepAlive: 60, Username: []byte("user"), Password: []byte("pw-123")})
	// The user name's length claims more than the packet holds.
	bad := append([]byte(nil), good...)
	i := bytes.Index(bad, []byte("user"))
	bad[i-1] = 200
	spans := Secrets(bad, len(bad), true, nil)
	if pw := bytes.Index(bad, []byte("pw-123")); !covered(spans, pw, 6) {
		t.Fatalf("password of a malformed CONNECT not covered: %v", spans)
	}
	// Unknown property in an MQTT 5 CONNACK: the rest of the list is secret.
	ack := Append(nil, &Packet{Type: CONNACK, Version: V5, Props: Properties{AuthData: []byte("zz"), Seen: 1 << PropAuthData}})
	j := bytes.Index(ack, []byte{PropAuthData})
	ack[j] = 0x7f
	if spans := Secrets(ack, len(ack), true, nil); !covered(spans, j, len(ack)-j) {
		t.Fatalf("unknown property: rest of list not covered: %v", spans)
	}
}

// TestSecretsFinal: a packet whose held prefix stops before its password
// (the rest was skipped past the buffer limit) is secret from there on.
func TestSecretsFinal(t *testing.T) {
	b := Append(nil, &Packet{Type: CONNECT, Version: V311, ClientID: bytes.Repeat([]byte("c"), 300), ConnectFlags: 0xc2, KeepAlive: 60, Username: []byte("u"), Password: []byte("pw")})
	pw := bytes.Index(b, []byte("pw"))
	if s := Secrets(b[:100], len(b), false, nil); len(s) != 0 {
		t.Fatalf("prefix, more to come: %v", s)
	}
	if s := Secrets(b[:100], len(b), true, nil); !covered(s, pw, 2) {
		t.Fatalf("prefix, nothing more to come: %v does not cover the password at %d", s, pw)
	}
}

// FuzzSecrets: Secrets never panics, its spans stay inside the packet, and
// wherever the decoder reads a password or authentication data, the spans
// cover it, on the whole packet and on every prefix.
func FuzzSecrets(f *testing.F) {
	for _, p := range secretSeeds() {
		f.Add(Append(nil, p), uint16(0))
	}
	f.Fuzz(func(t *testing.T, b []byte, cut uint16) {
		hl, rl, err := ParseFixedHeader(b)
		total := len(b)
		if err == nil {
			total = hl + rl
		}
		spans := Secrets(b, total, false, nil)
		for _, s := range spans {
			if s.Off < 0 || s.Len <= 0 || s.End() > total {
				t.Fatalf("span %v outside the packet of %d bytes", s, total)
			}
		}
		if err != nil || len(b) < total || !MayHoldSecret(Type(b[0]>>4)) {
			return
		}
		b = b[:total]
		var p Packet
		for _, v := range []Version{V31, V311, V5} {
			if Type(b[0]>>4) == CONNECT {
				v = VersionUnknown
			}
			Decode(b, len(b), v, &p)
			for _, w := range secretOffsets(b, &p) {
				if !covered(spans, w[0], w[1]) {
					t.Fatalf("decoder (version %d) reads a secret at [%d,+%d) not covered by %v: %x", v, w[0], w[1], spans, b)
				}
				k := int(cut) % len(b)
				part := Secrets(b[:k], total, false, nil)
				if lo, hi := w[0], min(w[0]+w[1], k); hi > lo && !covered(part, lo, hi-lo) {
					t.Fatalf("prefix %d: secret [%d,%d) not covered by %v: %x", k, lo, hi, part, b)
				}
			}
		}
	})
}
