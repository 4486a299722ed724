package mqtt

// Framer splits one direction of a byte stream into MQTT control packets. It
// handles several packets in one chunk, one packet across many chunks, packets
// larger than the buffer limit (decoded from their first bytes, the rest
// skipped and counted), and gaps in the stream (missing bytes): inside a packet
// whose length is known it resynchronises exactly at the next packet; otherwise
// it searches for the next plausible fixed header.
//
// Memory is bounded: at most MaxBuffer bytes of one packet are held.
type Framer struct {
	// MaxBuffer is how many bytes of a single packet are kept for decoding
	// (default 64 KiB). Larger packets are decoded from their prefix; their
	// PayloadLen is still exact.
	MaxBuffer int

	buf      []byte // bytes of the current packet held so far
	total    int    // size of the current packet once its header is known, else 0
	got      int    // bytes of the current packet seen (held or skipped)
	gapped   bool   // the current packet lost bytes to a gap
	resync   bool   // searching for the next plausible header after a gap or bad length
	Resyncs  int    // times framing was lost and searched for again
	Skipped  int64  // bytes discarded while resynchronising
	afterGap bool   // bytes were lost at a packet boundary: check the next start
}

// Status of a call to Next.
type Status uint8

const (
	// NeedMore: all input consumed, no packet complete.
	NeedMore Status = iota
	// Complete: a packet is returned.
	Complete
	// Malformed: bytes that cannot be framed were consumed (a bad length field);
	// framing resumes at the next plausible header.
	Malformed
)

// Frame holds one framed packet returned by Next. Bytes aliases either the
// input chunk or the framer's buffer, valid until the next call.
type Frame struct {
	Bytes  []byte // the packet, or its first MaxBuffer bytes
	Total  int    // the packet's full size
	Gapped bool   // part of the packet was lost to a stream gap
}

func (f *Framer) maxBuf() int {
	if f.MaxBuffer <= 0 {
		return 64 << 10
	}
	return f.MaxBuffer
}

// Buffered is the number of bytes the framer currently holds.
func (f *Framer) Buffered() int { return len(f.buf) }

// Next consumes bytes from data and reports the first complete packet in it.
// It returns how many bytes it consumed; call again with the rest.
func (f *Framer) Next(data []byte, out *Frame) (int, Status) {
	consumed := 0
	if f.afterGap && len(data) > 0 {
		f.afterGap = false
		if !plausibleAt(data, 0, 1) {
			f.resync = true
			f.Resyncs++
		}
	}
	if f.resync {
		n, ok := findHeader(data)
		f.Skipped += int64(n)
		consumed += n
		data = data[n:]
		if !ok {
			return consumed, NeedMore
		}
		f.resync = false
	}
	// Fast path: nothing buffered and the whole packet is in data.
	if len(f.buf) == 0 && f.total == 0 {
		if len(data) == 0 {
			return consumed, NeedMore
		}
		hl, rl, err := ParseFixedHeader(data)
		switch err {
		case nil:
			tot := hl + rl
			if tot <= len(data) {
				*out = Frame{Bytes: data[:tot:tot], Total: tot}
				return consumed + tot, Complete
			}
			f.total = tot
		case ErrMalformedLength:
			*out = Frame{Bytes: data[:5:5], Total: 5}
			f.resync = true
			f.Resyncs++
			return consumed + 5, Malformed
		}
	}
	// Slow path: accumulate.
	for len(data) > 0 {
		if f.total == 0 {
			// Header not yet known: add bytes one at a time until it parses.
			f.buf = append(f.buf, data[0])
			data = data[1:]
			consumed++
			f.got++
			hl, rl, err := ParseFixedHeader(f.buf)
			if err == ErrShort {
				continue
			}
			if err == ErrMalformedLength {
				*out = Frame{Bytes: f.buf, Total: len(f.buf)}
				f.reset()
				f.resync = true
				f.Resyncs++
				return consumed, Malformed
			}
			f.total = hl + rl
			if f.got >= f.total {
				return consumed, f.complete(out)
			}
			continue
		}
		want := f.total - f.got
		n := want
		if n > len(data) {
			n = len(data)
		}
		keep := f.maxBuf() - len(f.buf)
		if keep > n {
			keep = n
		}
		if keep > 0 {
			f.buf = append(f.buf, data[:keep]...)
		}
		f.got += n
		data = data[n:]
		consumed += n
		if f.got >= f.total {
			return consumed, f.complete(out)
		}
	}
	return consumed, NeedMore
}

func (f *Framer) complete(out *Frame) Status {
	*out = Frame{Bytes: f.buf, Total: f.total, Gapped: f.gapped}
	f.reset()
	return Complete
}

func (f *Framer) reset() {
	f.buf = f.buf[:0]
	f.total, f.got, f.gapped = 0, 0, false
	if cap(f.buf) > 4*f.maxBuf() {
		f.buf = nil
	}
}

// Gap tells the framer that n bytes of the stream are missing. Inside a packet
// whose length is known, the framer stays in step and skips them (the packet
// is returned with Gapped set). Otherwise the packet in progress, if any, is
// lost (Gap returns true) and framing restarts at the next byte, as tshark
// does, unless that byte cannot start a packet: then the framer searches for
// the next plausible header.
func (f *Framer) Gap(n int) (lost bool) {
	if n <= 0 || f.resync {
		return false
	}
	if f.total > 0 && f.got+n < f.total {
		f.got += n
		f.gapped = true
		return false
	}
	lost = f.got > 0
	f.reset()
	f.afterGap = true
	return lost
}

// Pending reports whether a packet is partially read (at end of stream it is
// reported as truncated by the caller).
func (f *Framer) Pending() bool { return f.got > 0 }

// Got is how many bytes of the incomplete packet have gone by (held,
// skipped past the buffer limit, or lost to gaps).
func (f *Framer) Got() int { return f.got }

// PendingGapped reports whether the incomplete packet lost bytes to a gap
// (what is held of it is then not contiguous).
func (f *Framer) PendingGapped() bool { return f.gapped }

// PendingBytes returns what is held of an incomplete packet and its announced size.
func (f *Framer) PendingBytes() ([]byte, int) { return f.buf, f.total }

// Reset discards all state.
func (f *Framer) Reset() {
	f.reset()
	f.resync, f.afterGap = false, false
}

// findHeader returns the offset of the first position in b where a plausible
// MQTT packet starts: a known type with the flags its type requires, a valid
// length, and, when the packet ends inside b, another plausible header (or the
// end of b) right after it.
func findHeader(b []byte) (int, bool) {
	for i := 0; i < len(b); i++ {
		if plausibleAt(b, i, 2) {
			return i, true
		}
	}
	return len(b), false
}

func plausibleAt(b []byte, i, depth int) bool {
	if i >= len(b) {
		return true
	}
	t := Type(b[i] >> 4)
	fl := b[i] & 0x0f
	switch t {
	case Reserved:
		return false
	case PUBLISH:
		if (fl>>1)&3 == 3 {
			return false
		}
	case PUBREL, SUBSCRIBE, UNSUBSCRIBE:
		if fl != 2 {
			return false
		}
	default:
		if fl != 0 {
			return false
		}
	}
	hl, rl, err := ParseFixedHeader(b[i:])
	if err == ErrShort {
		return true
	}
	if err != nil {
		return false
	}
	switch t {
	case PINGREQ, PINGRESP:
		if rl != 0 {
			return false
		}
	case PUBACK, PUBREC, PUBREL, PUBCOMP, CONNACK:
		if rl < 2 {
			return false
		}
	case PUBLISH:
		if rl < 2 {
			return false
		}
		if i+hl+2 <= len(b) {
			tl := int(b[i+hl])<<8 | int(b[i+hl+1])
			if tl+2 > rl {
				return false
			}
		}
	case CONNECT:
		if rl < 10 {
			return false
		}
	}
	end := i + hl + rl
	if end > len(b) || depth == 0 {
		return true
	}
	return plausibleAt(b, end, depth-1)
}

// Plausible reports whether b starts with a run of well-formed MQTT packets:
// at least one complete packet, every complete packet plausible, and the last
// one either complete or cut by the end of b. It is how MQTT is recognised on
// ports other than 1883 when the CONNECT was not captured.
func Plausible(b []byte) bool {
	i, n := 0, 0
	var p Packet
	for i < len(b) {
		if !plausibleAt(b, i, 0) {
			return false
		}
		hl, rl, err := ParseFixedHeader(b[i:])
		if err != nil {
			return n > 0
		}
		end := i + hl + rl
		if end > len(b) {
			return n > 0 || Type(b[i]>>4) == PUBLISH
		}
		Decode(b[i:end], end-i, V311, &p)
		if p.Anomalies&^(AnomalyUTF8) != 0 {
			return false
		}
		n++
		i = end
	}
	return n > 0
}

// LooksLikeConnect reports whether b starts with an MQTT CONNECT: type 1,
// flags 0, and the protocol name "MQTT" or "MQIsdp".
func LooksLikeConnect(b []byte) bool {
	if len(b) < 2 || b[0] != 0x10 {
		return false
	}
	hl, _, err := ParseFixedHeader(b)
	if err != nil {
		return false
	}
	r := b[hl:]
	if len(r) >= 6 && r[0] == 0 && r[1] == 4 && string(r[2:6]) == "MQTT" {
		return true
	}
	return len(r) >= 8 && r[0] == 0 && r[1] == 6 && string(r[2:8]) == "MQIsdp"
}
