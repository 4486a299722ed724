package mqtt

// Span is a run of bytes within one MQTT packet: Off from the packet's first
// byte (the fixed header), Len bytes long.
type Span struct{ Off, Len int }

// End is the offset just past the span.
func (s Span) End() int { return s.Off + s.Len }

// maxSecretProps bounds the properties Secrets walks in one list: past it the
// rest of the list is taken as secret (a list that long is not a device's).
const maxSecretProps = 64

// MayHoldSecret reports whether a packet of type t can carry credentials:
// a CONNECT (password, MQTT 5 authentication data), and an MQTT 5 CONNACK or
// AUTH (authentication data). A DISCONNECT may not carry authentication data
// [MQTT-3.14.2.2] but has the same layout as AUTH: one that does is masked too.
func MayHoldSecret(t Type) bool { return t == CONNECT || t == CONNACK || t == AUTH || t == DISCONNECT }

// Secrets appends to dst the spans of b that hold credentials: a CONNECT's
// password and any MQTT 5 Authentication Data property (CONNECT, CONNACK,
// AUTH). b holds the packet's first bytes (fixed header included) and total
// is its full size, so it can be called on a packet still arriving: a span
// is reported as soon as the length field in front of it has arrived, and
// may reach past len(b) (the bytes still to come are secret too).
//
// It is deliberately conservative: when the packet is complete (len(b) >=
// total) but a CONNECT that announces a password, or a property list, does
// not parse, everything from the first byte that could not be accounted for
// to the end of the packet is reported. CONNACK and AUTH are read as MQTT 5
// whatever the connection's version (a 3.x CONNACK has no room for
// properties, so nothing is found in one). final says that b is all of the
// packet there will ever be (the rest was skipped or lost): a walk that
// stops for want of bytes is then treated as one that broke. Secrets never
// panics and reads at most a fixed number of fields, so calling it again as
// a packet grows is cheap.
func Secrets(b []byte, total int, final bool, dst []Span) []Span {
	hl, rl, err := ParseFixedHeader(b)
	if err != nil {
		return dst
	}
	t := Type(b[0] >> 4)
	if !MayHoldSecret(t) {
		return dst
	}
	if total > hl+rl || total <= 0 {
		total = hl + rl
	}
	w := walker{b: b, off: hl, end: hl + rl, complete: final || len(b) >= total}
	switch t {
	case CONNECT:
		dst = w.connect(dst)
	case CONNACK:
		if rl > 2 {
			w.off += 2
			dst = w.props(dst)
		}
	case AUTH, DISCONNECT:
		if rl > 1 {
			w.off++
			dst = w.props(dst)
		}
	}
	return dst
}

// walker reads length fields only; stop is set once it can go no further.
type walker struct {
	b        []byte
	off, end int
	complete bool // all of the packet that will be seen is in b
	stop     bool // the walk can go no further
	bad      bool // ... because a field runs past the packet's end
}

// need reports whether n more bytes are readable; when they are not, the
// walk stops (for want of bytes, or because the packet ends first).
func (w *walker) need(n int) bool {
	switch {
	case w.stop:
	case w.off+n > w.end:
		w.stop, w.bad = true, true
	case w.off+n > len(w.b):
		w.stop = true
	default:
		return true
	}
	return false
}

// malformed reports whether the walk stopped on the packet's own bytes (a
// field longer than the packet) rather than for want of bytes not yet here.
func (w *walker) malformed() bool { return w.complete || w.bad }

func (w *walker) u8() int {
	if !w.need(1) {
		return 0
	}
	w.off++
	return int(w.b[w.off-1])
}

func (w *walker) u16() int {
	if !w.need(2) {
		return 0
	}
	w.off += 2
	return int(w.b[w.off-2])<<8 | int(w.b[w.off-1])
}

// skip passes n bytes; a field that overruns the packet stops the walk.
func (w *walker) skip(n int) {
	if w.stop {
		return
	}
	if w.off+n > w.end {
		w.stop, w.bad = true, true
		return
	}
	w.off += n
}

// secret reports the n bytes at the cursor (cut at the packet's end) and passes them.
func (w *walker) secret(dst []Span, n int) []Span {
	if w.stop {
		return dst
	}
	s := Span{w.off, min(n, w.end-w.off)}
	if s.Len > 0 {
		dst = append(dst, s)
	}
	w.skip(n)
	return dst
}

// rest reports the packet from the cursor to its end.
func (w *walker) rest(dst []Span, from int) []Span {
	if from < w.end {
		dst = append(dst, Span{from, w.end - from})
	}
	w.stop = true
	return dst
}

func (w *walker) varint() (int, bool) {
	v := 0
	for i := 0; i < 4; i++ {
		b := w.u8()
		if w.stop {
			return 0, false
		}
		v |= (b & 0x7f) << (7 * i)
		if b&0x80 == 0 {
			return v, true
		}
	}
	w.stop, w.bad = true, true
	return 0, false
}

// connect walks a CONNECT in the decoder's order: protocol name, level,
// flags, keep-alive, MQTT 5 properties, client ID, will, user name, password.
func (w *walker) connect(dst []Span) []Span {
	w.skip(w.u16()) // protocol name
	level := w.u8()
	flags := w.u8()
	w.u16() // keep-alive
	if w.stop {
		return dst
	}
	password := flags&0x40 != 0
	// good is the end of the last field read whole: when the walk breaks on
	// a complete packet, what follows it may be the password.
	good := w.off
	fallback := func() []Span {
		if password && w.malformed() {
			return w.rest(dst, good)
		}
		return dst
	}
	if level == int(V5) {
		dst = w.props(dst)
		if w.stop {
			return fallback()
		}
		good = w.off
	}
	w.skip(w.u16()) // client ID
	if w.stop {
		return fallback()
	}
	good = w.off
	if flags&0x04 != 0 {
		if level == int(V5) {
			dst = w.props(dst)
		}
		w.skip(w.u16()) // will topic
		w.skip(w.u16()) // will payload
		if w.stop {
			return fallback()
		}
		good = w.off
	}
	if flags&0x80 != 0 && w.off < w.end {
		w.skip(w.u16()) // user name
		if w.stop {
			return fallback()
		}
		good = w.off
	}
	if password && w.off < w.end {
		n := w.u16()
		if w.stop {
			return fallback()
		}
		dst = w.secret(dst, n)
	}
	if password && w.complete && !w.stop && w.off < w.end {
		// Bytes after the last field: unaccounted for, so possibly the
		// password (a length field the sender got wrong).
		return w.rest(dst, w.off)
	}
	return dst
}

// props walks an MQTT 5 property list, reporting Authentication Data. An
// identifier it does not know, or more properties than any device sends,
// makes the rest of the list secret: its bytes cannot be told apart.
func (w *walker) props(dst []Span) []Span {
	start := w.off
	l, ok := w.varint()
	if !ok {
		if w.malformed() {
			return w.rest(dst, start)
		}
		return dst
	}
	end := w.off + l
	if end > w.end {
		w.bad = true
		return w.rest(dst, w.off)
	}
	for i := 0; w.off < end; i++ {
		if i == maxSecretProps {
			dst = append(dst, Span{w.off, end - w.off})
			w.off = end
			return dst
		}
		at := w.off
		id := w.u8()
		if w.stop {
			return dst
		}
		switch id {
		case PropPayloadFormat, PropRequestProblemInfo, PropRequestResponseInfo, PropRetainAvailable,
			PropWildcardSubAvailable, PropSubIDAvailable, PropSharedSubAvailable, PropMaximumQoS:
			w.skip(1)
		case PropTopicAlias, PropServerKeepAlive, PropReceiveMaximum, PropTopicAliasMaximum:
			w.skip(2)
		case PropMessageExpiry, PropSessionExpiry, PropWillDelay, PropMaximumPacketSize:
			w.skip(4)
		case PropSubscriptionID:
			w.varint()
		case PropContentType, PropResponseTopic, PropCorrelationData, PropAssignedClientID,
			PropAuthMethod, PropResponseInfo, PropServerReference, PropReasonString:
			w.skip(w.u16())
		case PropUserProperty:
			w.skip(w.u16())
			w.skip(w.u16())
		case PropAuthData:
			n := w.u16()
			if !w.stop {
				dst = w.secret(dst, n)
			}
		default:
			dst = append(dst, Span{at, end - at})
			w.off = end
			return dst
		}
		if w.stop {
			if w.malformed() {
				return w.rest(dst, at)
			}
			return dst
		}
	}
	// A last property that overran the list: the list's length still
	// bounds it (as the decoder reads it).
	w.off = end
	return dst
}
