package websocket_test

import (
	"bytes"
	"compress/flate"
	"strings"
	"testing"

	"github.com/iomtguard/iomtguard/internal/pcaptest"
	"github.com/iomtguard/iomtguard/internal/websocket"
)

var key = []byte{1, 2, 3, 4}

// open returns a connection past its handshake (permessage-deflate when ext).
func open(t *testing.T, ext string) *websocket.Conn {
	t.Helper()
	c := &websocket.Conn{}
	req, resp := pcaptest.WSUpgrade("h", "mqtt", ext)
	if ev := c.Feed(0, req, nil); ev&websocket.EventRequest == 0 {
		t.Fatalf("request: %v %v", ev, c.Err)
	}
	if ev := c.Feed(1, resp, nil); ev&websocket.EventResponse == 0 || !c.HS.Accepted || c.HS.Protocol != "mqtt" {
		t.Fatalf("response: %v %+v %v", ev, c.HS, c.Err)
	}
	return c
}

func collect(c *websocket.Conn, d int, chunks ...[]byte) (string, websocket.Event) {
	var out bytes.Buffer
	var ev websocket.Event
	for _, b := range chunks {
		ev |= c.Feed(d, append([]byte(nil), b...), func(p []byte, _, _ int64) { out.Write(p) })
	}
	return out.String(), ev
}

func TestFrames(t *testing.T) {
	c := open(t, "")
	f := pcaptest.WSFrame
	// Masked, fragmented around a ping, and split byte by byte.
	stream := append(append(f(2, []byte("hello "), false, false, key), f(9, []byte("p"), true, false, key)...), f(0, []byte("world"), true, false, key)...)
	var chunks [][]byte
	for i := range stream {
		chunks = append(chunks, stream[i:i+1])
	}
	if got, _ := collect(c, 0, chunks...); got != "hello world" {
		t.Errorf("client: %q", got)
	}
	// Unmasked server frames with 16- and 64-bit lengths.
	big := strings.Repeat("x", 70000)
	got, _ := collect(c, 1, f(2, []byte(strings.Repeat("y", 300)), true, false, nil), f(2, []byte(big), true, false, nil))
	if got != strings.Repeat("y", 300)+big {
		t.Errorf("server: %d bytes", len(got))
	}
	if _, ev := collect(c, 1, f(8, nil, true, false, nil)); ev&websocket.EventClose == 0 {
		t.Error("close frame not seen")
	}
}

func TestDeflateContextTakeover(t *testing.T) {
	c := open(t, "permessage-deflate")
	var zb bytes.Buffer
	zw, _ := flate.NewWriter(&zb, flate.BestCompression)
	msg := func(s string) []byte {
		zb.Reset()
		zw.Write([]byte(s))
		zw.Flush()
		b := zb.Bytes()
		return pcaptest.WSFrame(2, append([]byte(nil), b[:len(b)-4]...), true, true, key)
	}
	m := "PUBLISH 1/alarm silenced by nurse station 3"
	got, ev := collect(c, 0, msg(m), msg(m), msg(m))
	if got != m+m+m || ev&websocket.EventError != 0 {
		t.Errorf("got %q, error %v", got, c.Err)
	}
}

// TestHostile: what an attacker sends stops the direction with a reason,
// and nothing it sends makes the decoder hold more than its limits.
func TestHostile(t *testing.T) {
	f := pcaptest.WSFrame
	for _, c := range []struct {
		name  string
		ext   string
		bytes []byte
		want  string
	}{
		{"reserved bits", "", []byte{0xb2, 0x80, 1, 2, 3, 4}, "reserved bits"},
		{"continuation first", "", f(0, []byte("x"), true, false, key), "continuation"},
		{"reserved opcode", "", f(3, []byte("x"), true, false, key), "reserved opcode"},
		{"frame over 1 MiB", "", []byte{0x82, 0xff, 0, 0, 0, 0, 0x7f, 0xff, 0xff, 0xff, 1, 2, 3, 4}, "longer than 1 MiB"},
		{"compression not negotiated", "", f(2, []byte{1, 2}, true, true, key), "reserved bits"},
		{"not deflate", "permessage-deflate", f(2, []byte{0xff, 0xff, 0xff}, true, true, key), "did not inflate"},
	} {
		t.Run(c.name, func(t *testing.T) {
			w := open(t, c.ext)
			_, ev := collect(w, 0, c.bytes)
			if ev&websocket.EventError == 0 || w.Err == nil || !strings.Contains(w.Err.Error(), c.want) {
				t.Errorf("event %v, error %v, want %q", ev, w.Err, c.want)
			}
		})
	}
	// A deflate bomb: 100 MB of zeros in a few KB.
	w := open(t, "permessage-deflate")
	var zb bytes.Buffer
	zw, _ := flate.NewWriter(&zb, flate.BestCompression)
	zero := make([]byte, 1<<20)
	for i := 0; i < 100; i++ {
		zw.Write(zero)
	}
	zw.Flush()
	b := zb.Bytes()
	if len(b) > 1<<20 {
		t.Fatalf("bomb of %d bytes", len(b))
	}
	got, ev := collect(w, 0, pcaptest.WSFrame(2, b[:len(b)-4], true, true, key))
	if ev&websocket.EventError == 0 || len(got) > 0 {
		t.Errorf("a deflate bomb: %d bytes out, error %v", len(got), w.Err)
	}
	// A handshake that never ends is cut at 16 KiB.
	h := &websocket.Conn{}
	ev = h.Feed(0, []byte("GET / HTTP/1.1\r\n"+strings.Repeat("X-Pad: aaaaaaaaaaaaaaaaaaaaaaaa\r\n", 1000)), nil)
	if ev&websocket.EventError == 0 {
		t.Error("an endless handshake was accepted")
	}
	// A refused upgrade ends both directions.
	r := &websocket.Conn{}
	req, _ := pcaptest.WSUpgrade("h", "mqtt", "")
	r.Feed(0, req, nil)
	if ev := r.Feed(1, []byte("HTTP/1.1 403 Forbidden\r\n\r\n"), nil); ev&websocket.EventError == 0 || r.HS.Status != 403 {
		t.Errorf("refused upgrade: %v %+v", ev, r.HS)
	}
	// After a capture gap a direction stops.
	g := open(t, "")
	g.Lost(0)
	if got, _ := collect(g, 0, f(2, []byte("x"), true, false, key)); got != "" {
		t.Errorf("decoded %q after a gap", got)
	}
}

// FuzzConn: no input panics the decoder or makes it hand out more than
// the limits allow.
func FuzzConn(f *testing.F) {
	req, resp := pcaptest.WSUpgrade("h", "mqtt", "permessage-deflate")
	f.Add(req, resp, pcaptest.WSFrame(2, []byte("abc"), true, false, key), pcaptest.WSFrame(2, []byte("abc"), false, false, nil))
	f.Add(req, resp, []byte{0xc2, 0x83, 1, 2, 3, 4, 0xff, 0, 1}, []byte{0x88, 0})
	f.Fuzz(func(t *testing.T, a, b, c, d []byte) {
		w := &websocket.Conn{}
		out := 0
		emit := func(p []byte, _, _ int64) {
			out += len(p)
			if len(p) > websocket.MaxMessage {
				t.Fatalf("a message of %d bytes", len(p))
			}
		}
		w.Feed(0, a, emit)
		w.Feed(1, b, emit)
		w.Feed(0, c, emit)
		w.Feed(1, d, emit)
	})
}

// TestPositions: out is told which bytes of the direction carried each
// piece of payload (a compressed message: all of its frames), Done stops
// short of a frame or compressed message still arriving, and the upgrade
// request's credentials are reported where they are.
func TestPositions(t *testing.T) {
	req := []byte("GET /mqtt?X-Amz-Signature=abc123 HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Authorization: Basic cHVtcDpzM2NyZXQ=\r\nCookie: sid=xyz\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n")
	c := &websocket.Conn{}
	var secrets []string
	c.OnSecret = func(d int, from, to int64) { secrets = append(secrets, string(req[from:to])) }
	if c.Feed(0, append([]byte(nil), req[:30]...), nil); c.Done(0) != 0 {
		t.Fatalf("Done during the handshake: %d", c.Done(0))
	}
	c.Feed(0, append([]byte(nil), req[30:]...), nil)
	if want := []string{"X-Amz-Signature=abc123", " Basic cHVtcDpzM2NyZXQ=", " sid=xyz"}; strings.Join(secrets, "|") != strings.Join(want, "|") {
		t.Fatalf("secrets %q, want %q", secrets, want)
	}
	if c.Done(0) != int64(len(req)) {
		t.Fatalf("Done after the handshake %d, want %d", c.Done(0), len(req))
	}
	_, resp := pcaptest.WSUpgrade("h", "mqtt", "")
	c.Feed(1, resp, nil)

	f := pcaptest.WSFrame
	a := f(2, []byte("plain"), true, false, key)
	b := f(2, []byte("split"), true, false, key)
	type piece struct {
		s        string
		from, to int64
	}
	var got []piece
	emit := func(p []byte, from, to int64) { got = append(got, piece{string(p), from, to}) }
	base := int64(len(req))
	c.Feed(0, append(append([]byte(nil), a...), b[:3]...), emit)
	if c.Done(0) != base+int64(len(a)) {
		t.Fatalf("Done with a frame half here: %d, want %d", c.Done(0), base+int64(len(a)))
	}
	c.Feed(0, append([]byte(nil), b[3:]...), emit)
	want := []piece{{"plain", base, base + int64(len(a))}, {"split", base + int64(len(a)), base + int64(len(a)+len(b))}}
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("pieces %+v, want %+v", got, want)
	}
}
