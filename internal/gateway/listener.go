package gateway

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mochi-mqtt/server/v2/listeners"
)

// tlsListener is the gateway's listener: it refuses banned addresses,
// addresses over their connection or connect-rate limits and handshakes
// over their fair share before any TLS work, completes the TLS handshake
// (client certificate required) within the handshake timeout, gives the
// client the same time again to send CONNECT, and only then hands the
// connection to the broker. It keeps every connection it accepted so that
// shutdown ends in seconds whatever the clients do.
type tlsListener struct {
	id      string
	address string
	g       *Gateway
	listen  net.Listener
	end     atomic.Bool
	slots   *slots
	wg      sync.WaitGroup

	mu    sync.Mutex
	conns map[*rawConn]struct{}
}

func newTLSListener(id, address string, g *Gateway) *tlsListener {
	lim := g.limits()
	return &tlsListener{id: id, address: address, g: g, conns: map[*rawConn]struct{}{},
		slots: newSlots(lim.MaxHandshakes, lim.HandshakesPerIP, lim.HandshakesPerSubnet)}
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

// rawConn is an accepted TCP connection: closing it forgets it and gives
// its address's connection back, once.
type rawConn struct {
	net.Conn
	l    *tlsListener
	ip   string
	once sync.Once
}

func (c *rawConn) Close() error {
	c.once.Do(func() {
		c.l.mu.Lock()
		delete(c.l.conns, c)
		c.l.mu.Unlock()
		c.l.g.release(c.ip)
	})
	return c.Conn.Close()
}

// gwConn is what the broker holds for a client: the TLS connection with
// the verified identity, and a deadline on every write so that a client
// that stops reading cannot hold the broker's buffers for longer than the
// write timeout.
type gwConn struct {
	*tls.Conn
	raw          *rawConn
	identity     string
	leaf         *x509.Certificate
	writeTimeout time.Duration
	connected    atomic.Bool // the broker's OnConnect hook saw its CONNECT
	deadlineSet  atomic.Int64
}

// Write gives each write at least three quarters of the write timeout: the
// deadline moves forward only when a quarter of it has passed (profiled:
// setting it on every PUBACK cost a fifth of the QoS 1 throughput).
func (c *gwConn) Write(b []byte) (int, error) {
	if c.writeTimeout > 0 {
		now := time.Now()
		if last := c.deadlineSet.Load(); now.UnixNano()-last > int64(c.writeTimeout/4) {
			c.deadlineSet.Store(now.UnixNano())
			c.Conn.SetWriteDeadline(now.Add(c.writeTimeout))
		}
	}
	return c.Conn.Write(b)
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
		src := conn.RemoteAddr().String()
		ip := hostOf(src)
		if !l.g.admit(ip, src) {
			conn.Close()
			continue
		}
		rc := &rawConn{Conn: conn, l: l, ip: ip}
		l.mu.Lock()
		if l.end.Load() {
			l.mu.Unlock()
			rc.Close()
			return
		}
		l.conns[rc] = struct{}{}
		l.mu.Unlock()

		lim := l.g.limits()
		ctx, cancel := context.WithTimeout(context.Background(), lim.HandshakeTimeout.Seconds())
		addr, _ := netip.ParseAddr(ip)
		sl, why := l.slots.acquire(addr, func() { cancel(); rc.Close() })
		if sl == nil {
			cancel()
			l.g.deny(Record{Source: src, Action: "tls", Reason: why, Rule: "limits.max_handshakes"}, "busy")
			rc.Close()
			continue
		}
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			s := tls.Server(rc, l.g.tlsConfig)
			err := s.HandshakeContext(ctx)
			cancel()
			evicted := l.slots.wasEvicted(sl)
			l.slots.release(sl)
			if err != nil {
				if evicted {
					l.g.deny(Record{Source: src, Action: "tls", Reason: "TLS handshake too slow: its slot was given to a handshake from a less busy subnet",
						Rule: "limits.max_handshakes"}, "busy")
				} else {
					l.g.tlsFailed(ip, src, err)
				}
				s.Close()
				return
			}
			gc := &gwConn{Conn: s, raw: rc, writeTimeout: lim.WriteTimeout.Seconds()}
			if st := s.ConnectionState(); len(st.PeerCertificates) > 0 {
				gc.leaf = st.PeerCertificates[0]
				gc.identity = gc.leaf.Subject.CommonName
			}
			// CONNECT must follow within the handshake timeout; the broker
			// sets the keep-alive deadline once it has read it.
			rc.SetReadDeadline(time.Now().Add(lim.HandshakeTimeout.Seconds()))
			err = establish(l.id, gc)
			if !gc.connected.Load() {
				l.g.beforeConnect(gc, src, err)
			}
			gc.Close()
		}()
	}
}

// Close stops accepting, disconnects the broker's clients, then closes
// every connection still open (handshakes, clients that never sent
// CONNECT, clients that stopped reading), so that it returns within
// seconds whatever the clients do.
func (l *tlsListener) Close(closeClients listeners.CloseFn) {
	l.end.Store(true)
	if l.listen != nil {
		l.listen.Close()
	}
	done := make(chan struct{})
	go func() {
		closeClients(l.id)
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
	}
	l.closeAll()
	waited := make(chan struct{})
	go func() {
		l.wg.Wait()
		close(waited)
	}()
	select {
	case <-waited:
	case <-time.After(3 * time.Second):
		l.g.log.Warn("gateway: connections still closing at shutdown")
	}
}

func (l *tlsListener) closeAll() {
	l.mu.Lock()
	conns := make([]*rawConn, 0, len(l.conns))
	for c := range l.conns {
		conns = append(conns, c)
	}
	l.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
}
