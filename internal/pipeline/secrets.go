package pipeline

import (
	"github.com/iomtguard/iomtguard/internal/mqtt"
	"github.com/iomtguard/iomtguard/internal/tcpstream"
)

// Credential masking.
//
// Every output that carries a frame's raw bytes (the ICU CSV's tcp.payload)
// must be able to hide the credentials in them, byte for byte, keeping the
// length: CONNECT passwords, MQTT 5 authentication data, and the
// Authorization, Cookie and query-string tokens of a WebSocket upgrade. The
// engine finds them as it reads each direction of a connection and gives
// each Frame the spans of its payload that hold them (Frame.Secret).
//
// Positions are in stream coordinates (a direction's relative sequence
// numbers, unwrapped to 64 bits), so a frame is masked however its bytes
// reach the decoder: a CONNECT split over several segments (the password's
// position is known once its length field has arrived, before any of its
// bytes are emitted), a retransmitted copy of an earlier segment (its bytes
// match a range already found), bytes the capture missed and then showed
// late (recorded as unread), and MQTT inside WebSocket frames (the whole
// frame, or compressed message, that carried a packet with credentials).
//
// Bytes not yet read in order when their frame is emitted (held out of
// order, a WebSocket frame or compressed message still arriving) are masked
// whenever the direction could still carry a credential there: before a
// connection's CONNECT, and on MQTT 5 connections, whose AUTH packets can
// come at any time. Masking too much is the price of never masking too
// little.

// maxSecretRanges bounds the ranges kept per direction; the oldest go first
// (a retransmission that old of a credential is not expected).
const maxSecretRanges = 32

type span64 struct{ from, to int64 }

// credTrack is one direction's record of where its credentials are.
type credTrack struct {
	ranges  []span64 // secret, or unread and possibly secret
	pos     int64    // stream position of the next byte to arrive
	known   bool     // pos is set (the reference for unwrapping)
	scanned int64    // bytes before this position have been read
	rowPos  int64    // ICU CSV input: bytes of the direction's payload columns so far
	wsBase  int64    // stream position of the first byte given to the WebSocket decoder
	wsSet   bool
	// dubious: bytes were lost where a credential could have been, so what
	// follows may be the rest of one read out of step; everything is
	// masked until a packet decodes cleanly.
	dubious bool
}

// unwrap turns a 32-bit relative sequence number into a 64-bit position
// near the last one seen.
func (t *credTrack) unwrap(x uint32) int64 {
	if !t.known {
		return int64(x)
	}
	return t.pos + int64(int32(x-uint32(t.pos)))
}

// add records [from, to) as secret, merged with a range it touches.
func (t *credTrack) add(from, to int64) {
	if to <= from {
		return
	}
	for i := range t.ranges {
		r := &t.ranges[i]
		if from <= r.to && to >= r.from {
			r.from, r.to = min(r.from, from), max(r.to, to)
			return
		}
	}
	if len(t.ranges) == maxSecretRanges {
		copy(t.ranges, t.ranges[1:])
		t.ranges = t.ranges[:len(t.ranges)-1]
	}
	t.ranges = append(t.ranges, span64{from, to})
}

// mayCarry reports whether direction d of the connection could still carry
// a credential in bytes not yet read.
func mayCarry(a *connApp, d tcpstream.Dir) bool {
	switch a.proto {
	case ProtoUnknown:
		return true
	case ProtoWebSocket:
		return d == a.wsDir
	case ProtoMQTT:
		s := a.sess
		// MQTT 5 AUTH can come at any time; before any packet, the first
		// one may be the CONNECT. A 3.x connection is past its credentials
		// once the CONNECT is read (or was sent before the capture began).
		return s.Version == mqtt.V5 || !s.First
	}
	return false
}

// markPacket records the credentials of an MQTT packet whose first byte is
// at stream position start (positions unknown when start < 0: WebSocket).
// held is what the framer kept of it, got how many of its bytes have gone
// by, total its size; gapped says bytes of it were never captured. It
// reports whether the packet holds (or may hold) credentials.
func (e *Engine) markPacket(t *credTrack, start int64, held []byte, got, total int, gapped bool) bool {
	if len(held) == 0 || !mqtt.MayHoldSecret(mqtt.Type(held[0]>>4)) {
		return false
	}
	if gapped {
		// Where its fields were cannot be known: all of it.
		if start >= 0 {
			t.add(start, start+int64(total))
		}
		return true
	}
	final := len(held) < got || got >= total // nothing more of it will be seen
	e.spans = mqtt.Secrets(held, total, final, e.spans[:0])
	if start >= 0 {
		for _, s := range e.spans {
			t.add(start+int64(s.Off), start+int64(s.End()))
		}
	}
	pending := got < total
	return len(e.spans) > 0 || pending
}

// gapInside reports whether a gap of n bytes at stream position at falls
// inside the MQTT packet direction d is reading, one whose length is known
// (the framer stays in step across it). If that packet may hold a
// credential, all of it is recorded as secret.
func (e *Engine) gapInside(s *Session, d tcpstream.Dir, n int, t *credTrack, at int64) bool {
	fr := &s.framer[d]
	held, total := fr.PendingBytes()
	if !fr.Pending() || total == 0 || fr.Got()+n >= total || len(held) == 0 {
		return false
	}
	if mqtt.MayHoldSecret(mqtt.Type(held[0] >> 4)) {
		start := at - int64(fr.Got())
		t.add(start, start+int64(total))
	}
	return true
}

// frameSecrets fills f.Secret for a frame whose TCP payload of n bytes
// starts at stream position from in direction d.
func (e *Engine) frameSecrets(f *Frame, a *connApp, d tcpstream.Dir, from int64, n int) {
	t := &a.cred[d]
	to := from + int64(n)
	out := e.secret[:0]
	for _, r := range t.ranges {
		if lo, hi := max(r.from, from), min(r.to, to); hi > lo {
			out = append(out, mqtt.Span{Off: int(lo - from), Len: int(hi - lo)})
		}
	}
	if to > t.scanned && mayCarry(a, d) {
		lo := max(t.scanned, from)
		out = append(out, mqtt.Span{Off: int(lo - from), Len: int(to - lo)})
	}
	e.secret = out
	if len(out) > 0 {
		f.Secret = out
	}
}

// MaskByte replaces each byte of a credential in masked output.
const MaskByte = '*'

// MaskSecrets overwrites the credential bytes of b, a copy of the frame's
// TCP payload (or of its first len(b) bytes), with MaskByte.
func (f *Frame) MaskSecrets(b []byte) {
	for _, s := range f.Secret {
		end := min(s.End(), len(b))
		for i := s.Off; i < end; i++ {
			b[i] = MaskByte
		}
	}
}
