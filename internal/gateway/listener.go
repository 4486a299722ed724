package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mochi-mqtt/server/v2/listeners"
)

// tlsListener is the gateway's listener: it refuses banned addresses,
// addresses over their connection or connect-rate limits and excess
// concurrent handshakes before any TLS work, completes the TLS handshake
// (client certificate required) with a timeout, and only then hands the
// connection to the broker.
type tlsListener struct {
	id       string
	address  string
	g        *Gateway
	listen   net.Listener
	end      atomic.Bool
	handshks chan struct{} // concurrent handshakes
	wg       sync.WaitGroup
}

const maxHandshakes = 512

func newTLSListener(id, address string, g *Gateway) *tlsListener {
	return &tlsListener{id: id, address: address, g: g, handshks: make(chan struct{}, maxHandshakes)}
}

func (l *tlsListener) ID() string       { return l.id }
func (l *tlsListener) Protocol() string { return "mqtts" }
func (l *tlsListener) Address() string {
	if l.listen != nil {
		return l.listen.Addr().String()
	}
	return l.address
}

func (l *tlsListener) Init(*slog.Logger) error {
	var err error
	l.listen, err = net.Listen("tcp", l.address)
	return err
}

// trackedConn decrements its address's connection count once, on Close.
type trackedConn struct {
	net.Conn
	once sync.Once
	done func()
}

func (c *trackedConn) Close() error {
	c.once.Do(c.done)
	return c.Conn.Close()
}

func (l *tlsListener) Serve(establish listeners.EstablishFn) {
	for {
		if l.end.Load() {
			return
		}
		conn, err := l.listen.Accept()
		if err != nil {
			if l.end.Load() || errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(5 * time.Millisecond) // e.g. too many open files: back off
			continue
		}
		ip := hostOf(conn.RemoteAddr().String())
		if !l.g.admit(ip, conn.RemoteAddr().String()) {
			conn.Close()
			continue
		}
		select {
		case l.handshks <- struct{}{}:
		default:
			l.g.release(ip)
			l.g.deny(Record{Source: conn.RemoteAddr().String(), Action: "tls", Reason: "too many handshakes in progress"}, "busy")
			conn.Close()
			continue
		}
		tc := &trackedConn{Conn: conn, done: func() { l.g.release(ip) }}
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			s := tls.Server(tc, l.g.tlsConfig)
			ctx, cancel := context.WithTimeout(context.Background(), l.g.handshakeTimeout)
			err := s.HandshakeContext(ctx)
			cancel()
			<-l.handshks
			if err != nil {
				l.g.tlsFailed(ip, conn.RemoteAddr().String(), err)
				s.Close()
				return
			}
			establish(l.id, s)
		}()
	}
}

func (l *tlsListener) Close(closeClients listeners.CloseFn) {
	l.end.Store(true)
	if l.listen != nil {
		l.listen.Close()
	}
	closeClients(l.id)
	l.wg.Wait()
}

// hostOf returns the address part of host:port.
func hostOf(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return strings.TrimSpace(addr)
}
