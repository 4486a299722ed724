// Package browser drives a headless Chromium over the DevTools protocol, with
// no dependency beyond the standard library: a minimal WebSocket client
// (RFC 6455, client side) and the few protocol methods the report checks
// use. It exists so that tests can open report.html in a real browser,
// watch the console and the network, measure the drawn SVG and take a
// full-page screenshot.
package browser

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"time"
)

// Find returns the path of a Chromium or Chrome binary, or "".
func Find() string {
	if p := os.Getenv("IOMTGUARD_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// Browser is a running headless browser.
type Browser struct {
	cmd     *exec.Cmd
	profile string
	ws      *wsConn

	mu      sync.Mutex
	nextID  int64
	waiting map[int64]chan reply
	events  chan Event
	closed  chan struct{}
	readErr error
}

// Event is a protocol event.
type Event struct {
	Method    string          `json:"method"`
	Params    json.RawMessage `json:"params"`
	SessionID string          `json:"sessionId"`
}

type reply struct {
	Result json.RawMessage `json:"result"`
	Error  *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

var listening = regexp.MustCompile(`DevTools listening on (ws://\S+)`)

// Launch starts a headless browser with no network access beyond what the
// page asks for, no first-run work and a throw-away profile.
func Launch(ctx context.Context, path string) (*Browser, error) {
	profile, err := os.MkdirTemp("", "iomtguard-chromium-")
	if err != nil {
		return nil, err
	}
	args := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--no-default-browser-check", "--disable-background-networking", "--disable-component-update",
		"--disable-sync", "--disable-extensions", "--disable-dev-shm-usage", "--hide-scrollbars",
		"--remote-debugging-port=0", "--user-data-dir=" + profile, "about:blank"}
	cmd := exec.Command(path, args...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		os.RemoveAll(profile)
		return nil, err
	}
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sent := false
		for sc.Scan() {
			if m := listening.FindStringSubmatch(sc.Text()); m != nil && !sent {
				found <- m[1]
				sent = true
			}
		}
		if !sent {
			close(found)
		}
	}()
	var wsURL string
	select {
	case u, ok := <-found:
		if !ok {
			cmd.Process.Kill()
			cmd.Wait()
			os.RemoveAll(profile)
			return nil, errors.New("browser exited before opening its DevTools port")
		}
		wsURL = u
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		cmd.Wait()
		os.RemoveAll(profile)
		return nil, errors.New("browser did not open its DevTools port within 30 s")
	case <-ctx.Done():
		cmd.Process.Kill()
		cmd.Wait()
		os.RemoveAll(profile)
		return nil, ctx.Err()
	}
	ws, err := dial(wsURL)
	if err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		os.RemoveAll(profile)
		return nil, err
	}
	b := &Browser{cmd: cmd, profile: profile, ws: ws, waiting: map[int64]chan reply{},
		events: make(chan Event, 4096), closed: make(chan struct{})}
	go b.readLoop()
	return b, nil
}

// Close stops the browser and removes its profile.
func (b *Browser) Close() error {
	b.ws.close()
	b.cmd.Process.Kill()
	b.cmd.Wait()
	return os.RemoveAll(b.profile)
}

func (b *Browser) readLoop() {
	defer close(b.closed)
	for {
		msg, err := b.ws.read()
		if err != nil {
			b.mu.Lock()
			b.readErr = err
			for _, ch := range b.waiting {
				close(ch)
			}
			b.waiting = map[int64]chan reply{}
			b.mu.Unlock()
			return
		}
		var m struct {
			ID int64 `json:"id"`
			reply
			Event
		}
		if json.Unmarshal(msg, &m) != nil {
			continue
		}
		if m.ID != 0 {
			b.mu.Lock()
			ch := b.waiting[m.ID]
			delete(b.waiting, m.ID)
			b.mu.Unlock()
			if ch != nil {
				ch <- m.reply
			}
			continue
		}
		select {
		case b.events <- m.Event:
		default: // a test that does not read events must not stall the browser
		}
	}
}

// Events delivers protocol events in order (the buffer holds 4096).
func (b *Browser) Events() <-chan Event { return b.events }

// Call sends a method (to the page session when session is not empty) and
// decodes its result into out (when out is not nil).
func (b *Browser) Call(ctx context.Context, session, method string, params any, out any) error {
	b.mu.Lock()
	if b.readErr != nil {
		b.mu.Unlock()
		return b.readErr
	}
	b.nextID++
	id := b.nextID
	ch := make(chan reply, 1)
	b.waiting[id] = ch
	b.mu.Unlock()
	msg := map[string]any{"id": id, "method": method}
	if params != nil {
		msg["params"] = params
	}
	if session != "" {
		msg["sessionId"] = session
	}
	data, err := json.Marshal(msg)
	if err != nil {
		return err
	}
	if err := b.ws.write(data); err != nil {
		return err
	}
	select {
	case r, ok := <-ch:
		if !ok {
			return fmt.Errorf("%s: connection to the browser lost", method)
		}
		if r.Error != nil {
			return fmt.Errorf("%s: %s (%d)", method, r.Error.Message, r.Error.Code)
		}
		if out != nil {
			return json.Unmarshal(r.Result, out)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%s: %w", method, ctx.Err())
	}
}

// NewPage opens a blank page and returns its session ID, with the Page,
// Runtime, Log and Network domains enabled so that their events arrive.
func (b *Browser) NewPage(ctx context.Context, width, height int) (string, error) {
	var t struct {
		TargetID string `json:"targetId"`
	}
	if err := b.Call(ctx, "", "Target.createTarget", map[string]any{"url": "about:blank"}, &t); err != nil {
		return "", err
	}
	var s struct {
		SessionID string `json:"sessionId"`
	}
	if err := b.Call(ctx, "", "Target.attachToTarget", map[string]any{"targetId": t.TargetID, "flatten": true}, &s); err != nil {
		return "", err
	}
	for _, d := range []string{"Page.enable", "Runtime.enable", "Log.enable", "Network.enable"} {
		if err := b.Call(ctx, s.SessionID, d, nil, nil); err != nil {
			return "", err
		}
	}
	err := b.Call(ctx, s.SessionID, "Emulation.setDeviceMetricsOverride",
		map[string]any{"width": width, "height": height, "deviceScaleFactor": 1, "mobile": false}, nil)
	return s.SessionID, err
}

// Navigate loads url in the page and waits for its load event; it returns
// every event seen on the way (console messages, requests).
func (b *Browser) Navigate(ctx context.Context, session, url string) ([]Event, error) {
	if err := b.Call(ctx, session, "Page.navigate", map[string]any{"url": url}, nil); err != nil {
		return nil, err
	}
	var seen []Event
	for {
		select {
		case ev := <-b.events:
			seen = append(seen, ev)
			if ev.Method == "Page.loadEventFired" && ev.SessionID == session {
				// Let late console messages arrive.
				deadline := time.After(300 * time.Millisecond)
				for {
					select {
					case ev := <-b.events:
						seen = append(seen, ev)
					case <-deadline:
						return seen, nil
					}
				}
			}
		case <-ctx.Done():
			return seen, ctx.Err()
		case <-b.closed:
			return seen, errors.New("browser closed")
		}
	}
}

// Eval evaluates a JavaScript expression in the page (through the
// protocol, which the page's Content-Security-Policy does not restrict) and
// decodes its JSON-serialisable value into out.
func (b *Browser) Eval(ctx context.Context, session, expr string, out any) error {
	var r struct {
		Result struct {
			Value json.RawMessage `json:"value"`
		} `json:"result"`
		Exception *struct {
			Text string `json:"text"`
		} `json:"exceptionDetails"`
	}
	if err := b.Call(ctx, session, "Runtime.evaluate", map[string]any{"expression": expr, "returnByValue": true}, &r); err != nil {
		return err
	}
	if r.Exception != nil {
		return fmt.Errorf("evaluate: %s", r.Exception.Text)
	}
	return json.Unmarshal(r.Result.Value, out)
}

// Screenshot captures the whole page (not only the viewport) as PNG.
func (b *Browser) Screenshot(ctx context.Context, session string) ([]byte, error) {
	var m struct {
		CSS struct {
			Width  float64 `json:"width"`
			Height float64 `json:"height"`
		} `json:"cssContentSize"`
	}
	if err := b.Call(ctx, session, "Page.getLayoutMetrics", nil, &m); err != nil {
		return nil, err
	}
	var r struct {
		Data string `json:"data"`
	}
	err := b.Call(ctx, session, "Page.captureScreenshot", map[string]any{"format": "png", "captureBeyondViewport": true,
		"clip": map[string]any{"x": 0, "y": 0, "width": m.CSS.Width, "height": m.CSS.Height, "scale": 1}}, &r)
	if err != nil {
		return nil, err
	}
	return base64.StdEncoding.DecodeString(r.Data)
}

// PDF prints the page as the browser's print dialog would (A4).
func (b *Browser) PDF(ctx context.Context, session string) ([]byte, error) {
	var r struct {
		Data string `json:"data"`
	}
	err := b.Call(ctx, session, "Page.printToPDF", map[string]any{"paperWidth": 8.27, "paperHeight": 11.69, "printBackground": true}, &r)
	if err != nil {
		return nil, err
	}
	return base64.StdEncoding.DecodeString(r.Data)
}

// wsConn is the client side of a WebSocket connection, enough for the
// DevTools protocol: text messages, fragmented or not, of any size.
type wsConn struct {
	c  net.Conn
	br *bufio.Reader
	wm sync.Mutex
}

func dial(raw string) (*wsConn, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, err
	}
	c, err := net.DialTimeout("tcp", u.Host, 10*time.Second)
	if err != nil {
		return nil, err
	}
	var key [16]byte
	rand.Read(key[:])
	k := base64.StdEncoding.EncodeToString(key[:])
	req := "GET " + u.RequestURI() + " HTTP/1.1\r\nHost: " + u.Host + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: " + k + "\r\nSec-WebSocket-Version: 13\r\n\r\n"
	if _, err := io.WriteString(c, req); err != nil {
		c.Close()
		return nil, err
	}
	br := bufio.NewReaderSize(c, 1<<16)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		c.Close()
		return nil, err
	}
	if resp.StatusCode != http.StatusSwitchingProtocols || !strings.EqualFold(resp.Header.Get("Upgrade"), "websocket") {
		c.Close()
		return nil, fmt.Errorf("websocket handshake: %s", resp.Status)
	}
	return &wsConn{c: c, br: br}, nil
}

func (w *wsConn) close() { w.c.Close() }

// write sends one masked text frame.
func (w *wsConn) write(p []byte) error {
	w.wm.Lock()
	defer w.wm.Unlock()
	hdr := []byte{0x81}
	switch n := len(p); {
	case n < 126:
		hdr = append(hdr, 0x80|byte(n))
	case n < 1<<16:
		hdr = append(hdr, 0x80|126, byte(n>>8), byte(n))
	default:
		hdr = append(hdr, 0x80|127)
		hdr = binary.BigEndian.AppendUint64(hdr, uint64(n))
	}
	var mask [4]byte
	rand.Read(mask[:])
	hdr = append(hdr, mask[:]...)
	buf := make([]byte, len(hdr)+len(p))
	copy(buf, hdr)
	for i, c := range p {
		buf[len(hdr)+i] = c ^ mask[i%4]
	}
	_, err := w.c.Write(buf)
	return err
}

// read returns the next whole text or binary message, answering pings.
func (w *wsConn) read() ([]byte, error) {
	var msg []byte
	for {
		var h [2]byte
		if _, err := io.ReadFull(w.br, h[:]); err != nil {
			return nil, err
		}
		fin, op := h[0]&0x80 != 0, h[0]&0x0f
		n := uint64(h[1] & 0x7f)
		switch n {
		case 126:
			var b [2]byte
			if _, err := io.ReadFull(w.br, b[:]); err != nil {
				return nil, err
			}
			n = uint64(binary.BigEndian.Uint16(b[:]))
		case 127:
			var b [8]byte
			if _, err := io.ReadFull(w.br, b[:]); err != nil {
				return nil, err
			}
			n = binary.BigEndian.Uint64(b[:])
		}
		if n > 1<<30 {
			return nil, fmt.Errorf("websocket frame of %d bytes", n)
		}
		var mask [4]byte
		if h[1]&0x80 != 0 {
			if _, err := io.ReadFull(w.br, mask[:]); err != nil {
				return nil, err
			}
		}
		payload := make([]byte, n)
		if _, err := io.ReadFull(w.br, payload); err != nil {
			return nil, err
		}
		if h[1]&0x80 != 0 {
			for i := range payload {
				payload[i] ^= mask[i%4]
			}
		}
		switch op {
		case 0x8:
			return nil, io.EOF
		case 0x9: // ping: answer with a pong carrying the same data
			w.wm.Lock()
			w.c.Write(append([]byte{0x8a, 0x80 | byte(len(payload))}, append(make([]byte, 4), payload...)...))
			w.wm.Unlock()
			continue
		case 0xa:
			continue
		}
		msg = append(msg, payload...)
		if fin {
			return msg, nil
		}
	}
}
