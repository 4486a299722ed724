// Package websocket follows a WebSocket connection (RFC 6455) as a passive
// observer: the HTTP Upgrade handshake, then the frames of each direction,
// with masking, fragmentation, interleaved control frames and the
// permessage-deflate extension (RFC 7692) undone, so that the application
// bytes they carry (MQTT, for dashboards and mobile apps on 8080, 8083,
// 9001) can be decoded as if they had been sent on TCP.
//
// It never panics on input and holds at most MaxMessage bytes of one
// message and MaxHeader bytes of the handshake per direction.
package websocket

import (
	"bytes"
	"compress/flate"
	"errors"
	"io"
	"strings"
)

// Limits on what one connection can make the decoder hold.
const (
	MaxHeader  = 16 << 10 // bytes of the HTTP handshake
	MaxMessage = 1 << 20  // bytes of one (decompressed) message
	window     = 32 << 10 // the deflate window (RFC 7692 7.1.2.1: 2^15 at most)
)

// Looks reports whether b starts like the client's opening handshake: an
// HTTP GET asking to upgrade (the Upgrade header may come later).
func Looks(b []byte) bool { return bytes.HasPrefix(b, []byte("GET ")) }

// Handshake is what the opening handshake said.
type Handshake struct {
	Path         string // request target
	Host         string
	Protocols    string // Sec-WebSocket-Protocol offered by the client
	Protocol     string // the one the server chose
	Extensions   string // Sec-WebSocket-Extensions the server accepted
	Deflate      bool   // permessage-deflate in use
	Accepted     bool   // the server answered 101
	Status       int    // the server's HTTP status
	UserAgentLen int    // length of User-Agent (its value is not kept)
}

// Event says what a Feed call found.
type Event uint8

const (
	EventRequest  Event = 1 << iota // the client's upgrade request is complete
	EventResponse                   // the server's answer is complete
	EventClose                      // a close frame was seen
	EventError                      // the stream did not parse: Err says why
)

// Conn follows both directions of one connection. Direction 0 is the
// client's (masked frames), 1 the server's.
type Conn struct {
	HS      Handshake
	Err     error
	Upgrade bool // the client asked to upgrade (else not WebSocket)
	// FirstFrame is the size of the first frame the last Feed completed (0:
	// none), tshark's tcp.pdu.size for the segment.
	FirstFrame int
	// OnSecret, when set, is told where the client's upgrade request holds
	// credentials: the values of Authorization, Proxy-Authorization and
	// Cookie, and the query of the request target (where presigned URLs
	// and SAS tokens put theirs). Positions count the direction's bytes
	// from the first one given to Feed.
	OnSecret func(d int, from, to int64)
	dir      [2]direction
}

type direction struct {
	hdr        []byte // handshake bytes gathered
	open       bool   // frames follow
	buf        []byte // frame bytes gathered
	msg        []byte // the message being reassembled
	msgComp    bool   // the message's first frame had RSV1 (compressed)
	inMsg      bool
	dict       []byte // the last deflate window of output (context takeover)
	noTakeover bool
	failed     bool
	fed        int64 // bytes given to Feed
	done       int64 // bytes fully interpreted (Done)
	msgFrom    int64 // position of the first frame of the compressed message in progress
}

// Done is how many bytes of direction d have been fully interpreted: the
// handshake, and whole frames (of a compressed message, only once the
// message is complete). Bytes past it were held, or could not be read.
func (c *Conn) Done(d int) int64 {
	if d < 0 || d > 1 {
		return 0
	}
	return c.dir[d].done
}

// Feed gives the connection bytes of direction d (0 client, 1 server), in
// order. Application payload (the data of binary and text messages) is
// passed to out as it completes, possibly in several calls per message,
// with the positions (bytes of the direction from the first one fed) of
// the frames that carried it: the frame itself, or for a compressed
// message all of its frames. out must not keep the slice.
func (c *Conn) Feed(d int, b []byte, out func(p []byte, from, to int64)) Event {
	if d < 0 || d > 1 {
		return 0
	}
	x := &c.dir[d]
	c.FirstFrame = 0
	x.fed += int64(len(b))
	if x.failed {
		return 0
	}
	var ev Event
	if !x.open {
		var rest []byte
		var done bool
		ev, rest, done = c.handshake(d, b)
		if !done || x.failed {
			return ev
		}
		b = rest
	}
	if len(b) == 0 {
		return ev
	}
	x.buf = append(x.buf, b...)
	ev |= c.frames(d, out)
	if len(x.buf) == 0 {
		x.buf = x.buf[:0:0]
	}
	return ev
}

// handshake gathers one direction's HTTP head; it returns the bytes after it.
func (c *Conn) handshake(d int, b []byte) (Event, []byte, bool) {
	x := &c.dir[d]
	start := len(x.hdr)
	x.hdr = append(x.hdr, b...)
	i := bytes.Index(x.hdr, []byte("\r\n\r\n"))
	if i < 0 {
		if len(x.hdr) > MaxHeader {
			c.fail(d, errors.New("websocket: HTTP handshake longer than 16 KiB"))
			return EventError, nil, false
		}
		return 0, nil, false
	}
	head := string(x.hdr[:i])
	rest := b[max(0, i+4-start):]
	x.hdr = nil
	x.done = int64(i + 4)
	if d == 0 && c.OnSecret != nil {
		secretHeaders(head, func(from, to int) { c.OnSecret(d, int64(from), int64(to)) })
	}
	lines := strings.Split(head, "\r\n")
	hdr := map[string]string{}
	for _, l := range lines[1:] {
		k, v, ok := strings.Cut(l, ":")
		if ok {
			hdr[strings.ToLower(strings.TrimSpace(k))] = strings.TrimSpace(v)
		}
	}
	if d == 0 {
		f := strings.Fields(lines[0])
		if len(f) < 2 || f[0] != "GET" || !strings.EqualFold(hdr["upgrade"], "websocket") {
			c.fail(d, errors.New("websocket: not an upgrade request"))
			return EventError, nil, false
		}
		c.Upgrade = true
		c.HS.Path, _ = capped(f[1], 256)
		c.HS.Host, _ = capped(hdr["host"], 256)
		c.HS.Protocols, _ = capped(hdr["sec-websocket-protocol"], 256)
		c.HS.UserAgentLen = len(hdr["user-agent"])
		x.open = true
		return EventRequest, rest, true
	}
	f := strings.Fields(lines[0])
	if len(f) >= 2 {
		n := 0
		for _, ch := range f[1] {
			if ch < '0' || ch > '9' || n > 999 {
				break
			}
			n = n*10 + int(ch-'0')
		}
		c.HS.Status = n
	}
	if c.HS.Status != 101 {
		c.fail(d, errors.New("websocket: the server refused the upgrade"))
		c.dir[0].failed = true
		return EventResponse | EventError, nil, false
	}
	c.HS.Accepted = true
	c.HS.Protocol, _ = capped(hdr["sec-websocket-protocol"], 256)
	c.HS.Extensions, _ = capped(hdr["sec-websocket-extensions"], 256)
	for _, e := range strings.Split(c.HS.Extensions, ",") {
		params := strings.Split(e, ";")
		if strings.TrimSpace(params[0]) != "permessage-deflate" {
			continue
		}
		c.HS.Deflate = true
		for _, p := range params[1:] {
			switch strings.TrimSpace(strings.SplitN(p, "=", 2)[0]) {
			case "client_no_context_takeover":
				c.dir[0].noTakeover = true
			case "server_no_context_takeover":
				c.dir[1].noTakeover = true
			}
		}
	}
	x.open = true
	return EventResponse, rest, true
}

// secretHeaders reports the byte ranges of head (an HTTP request head) that
// hold credentials: the request target's query and the values of the
// Authorization, Proxy-Authorization and Cookie headers.
func secretHeaders(head string, report func(from, to int)) {
	off := 0
	for n, line := range strings.Split(head, "\r\n") {
		if n == 0 {
			if q := strings.IndexByte(line, '?'); q >= 0 {
				end := strings.LastIndex(line, " HTTP/")
				if end < q {
					end = len(line)
				}
				report(off+q+1, off+end)
			}
		} else if k, v, ok := strings.Cut(line, ":"); ok {
			switch strings.ToLower(strings.TrimSpace(k)) {
			case "authorization", "proxy-authorization", "cookie":
				if len(v) > 0 {
					report(off+len(k)+1, off+len(line))
				}
			}
		}
		off += len(line) + 2
	}
}

func capped(s string, n int) (string, bool) {
	if len(s) <= n {
		return s, false
	}
	return s[:n], true
}

func (c *Conn) fail(d int, err error) {
	c.dir[d].failed = true
	c.dir[d].buf, c.dir[d].msg, c.dir[d].hdr = nil, nil, nil
	if c.Err == nil {
		c.Err = err
	}
}

// Lost tells the decoder that bytes of direction d were never captured:
// frame boundaries cannot be found again, so the direction stops.
func (c *Conn) Lost(d int) {
	if d >= 0 && d <= 1 && c.dir[d].open && !c.dir[d].failed {
		c.fail(d, errors.New("websocket: bytes missing from the capture: framing lost"))
	}
}

// frames decodes the whole frames gathered in direction d.
func (c *Conn) frames(d int, out func([]byte, int64, int64)) Event {
	x := &c.dir[d]
	var ev Event
	for len(x.buf) >= 2 {
		b := x.buf
		from := x.fed - int64(len(x.buf))
		fin := b[0]&0x80 != 0
		rsv1 := b[0]&0x40 != 0
		op := b[0] & 0x0f
		masked := b[1]&0x80 != 0
		n := uint64(b[1] & 0x7f)
		hl := 2
		switch n {
		case 126:
			if len(b) < 4 {
				return ev
			}
			n, hl = uint64(b[2])<<8|uint64(b[3]), 4
		case 127:
			if len(b) < 10 {
				return ev
			}
			n = 0
			for i := 2; i < 10; i++ {
				n = n<<8 | uint64(b[i])
			}
			hl = 10
		}
		if masked {
			hl += 4
		}
		if b[0]&0x30 != 0 || (b[0]&0x40 != 0 && !c.HS.Deflate) {
			c.fail(d, errors.New("websocket: reserved bits set [RFC 6455 5.2]"))
			return ev | EventError
		}
		if n > MaxMessage {
			c.fail(d, errors.New("websocket: frame longer than 1 MiB"))
			return ev | EventError
		}
		if uint64(len(b)) < uint64(hl)+n {
			return ev
		}
		payload := b[hl : uint64(hl)+n]
		if masked {
			key := b[hl-4 : hl]
			for i := range payload {
				payload[i] ^= key[i&3]
			}
		}
		x.buf = b[uint64(hl)+n:]
		to := from + int64(hl) + int64(n)
		if c.FirstFrame == 0 {
			c.FirstFrame = hl + int(n)
		}
		switch {
		case op >= 8: // control frames: close, ping, pong; never fragmented [RFC 6455 5.5]
			if op == 8 {
				ev |= EventClose
			}
			if !x.inMsg || !x.msgComp {
				x.done = to
			}
		case op == 0: // continuation
			if !x.inMsg {
				c.fail(d, errors.New("websocket: continuation frame without a message [RFC 6455 5.4]"))
				return ev | EventError
			}
			if err := c.data(d, payload, fin, from, to, out); err != nil {
				return ev | EventError
			}
		case op == 1 || op == 2:
			if x.inMsg {
				c.fail(d, errors.New("websocket: new message inside a fragmented one [RFC 6455 5.4]"))
				return ev | EventError
			}
			x.inMsg, x.msgComp, x.msgFrom = true, rsv1, from
			if err := c.data(d, payload, fin, from, to, out); err != nil {
				return ev | EventError
			}
		default:
			c.fail(d, errors.New("websocket: reserved opcode [RFC 6455 5.2]"))
			return ev | EventError
		}
	}
	return ev
}

// data takes one data frame's payload of the message in progress; the
// frame spans [from, to) of the direction.
func (c *Conn) data(d int, p []byte, fin bool, from, to int64, out func([]byte, int64, int64)) error {
	x := &c.dir[d]
	if !x.msgComp {
		if len(p) > 0 {
			out(p, from, to)
		}
		if fin {
			x.inMsg = false
		}
		x.done = to
		return nil
	}
	if len(x.msg)+len(p) > MaxMessage {
		c.fail(d, errors.New("websocket: compressed message longer than 1 MiB"))
		return c.Err
	}
	x.msg = append(x.msg, p...)
	if !fin {
		return nil
	}
	x.inMsg = false
	// RFC 7692 7.2.2: append 00 00 ff ff and inflate, with the previous
	// messages' window as the dictionary (context takeover).
	in := append(x.msg, 0, 0, 0xff, 0xff)
	var dict []byte
	if !x.noTakeover {
		dict = x.dict
	}
	r := flate.NewReaderDict(bytes.NewReader(in), dict)
	plain, err := io.ReadAll(io.LimitReader(r, MaxMessage+1))
	x.msg = x.msg[:0]
	if err != nil && err != io.ErrUnexpectedEOF {
		c.fail(d, errors.New("websocket: a compressed message did not inflate: "+err.Error()))
		return c.Err
	}
	if len(plain) > MaxMessage {
		c.fail(d, errors.New("websocket: message inflates past 1 MiB"))
		return c.Err
	}
	if !x.noTakeover {
		x.dict = append(x.dict, plain...)
		if len(x.dict) > window {
			x.dict = append(x.dict[:0], x.dict[len(x.dict)-window:]...)
		}
	}
	if len(plain) > 0 {
		out(plain, x.msgFrom, to)
	}
	x.done = to
	return nil
}
