package gateway

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/iomtguard/iomtguard/internal/mqtt"
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
	in           inbound
}

// inbound checks the client's bytes packet by packet with iomtguard's own
// MQTT decoder (fuzzed; it never panics) before the broker reads them: the
// broker sees only packets that decode without a structural error. A
// malformed packet, or one over the size limit, is never handed on: the
// read fails and the broker closes the connection [MQTT-4.13.1]. (The
// fuzz target found a SUBSCRIBE that panics mochi's decoder and with it
// the whole gateway.)
type inbound struct {
	version   mqtt.Version
	maxPacket int
	buf       []byte // bytes read from TLS, not yet checked
	ready     []byte // checked packets not yet read by the broker
	err       error
	pkt       mqtt.Packet
	scratch   []byte
}

// malformed marks the packet faults the gateway closes a connection for.
const malformed = mqtt.AnomalyMalformedLength | mqtt.AnomalyTruncated | mqtt.AnomalyTrailingBytes | mqtt.AnomalyProperties |
	mqtt.AnomalyUnassignedType | mqtt.AnomalyReservedFlags | mqtt.AnomalyInvalidQoS | mqtt.AnomalyNoFilters | mqtt.AnomalyUTF8 |
	mqtt.AnomalyBadFilter | mqtt.AnomalyPacketIDZero | mqtt.AnomalyProtocolName | mqtt.AnomalyProtocolLevel | mqtt.AnomalyConnectReserved |
	mqtt.AnomalyWillFlags

// ErrMalformed is the read error of a connection closed for a malformed
// packet.
var ErrMalformed = errors.New("malformed packet")

func (c *gwConn) Read(p []byte) (int, error) {
	in := &c.in
	for len(in.ready) == 0 {
		if in.err != nil {
			return 0, in.err
		}
		if len(in.scratch) == 0 {
			in.scratch = make([]byte, 16<<10)
		}
		n, err := c.Conn.Read(in.scratch)
		in.buf = append(in.buf, in.scratch[:n]...)
		in.check()
		if err != nil && in.err == nil {
			in.err = err
		}
	}
	n := copy(p, in.ready)
	in.ready = in.ready[n:]
	if len(in.ready) == 0 {
		in.ready = nil
	}
	return n, nil
}

// check moves every whole, well-formed packet from buf to ready, or sets
// err at the first bad one.
func (in *inbound) check() {
	for in.err == nil && len(in.buf) > 0 {
		hl, rl, err := mqtt.ParseFixedHeader(in.buf)
		if err == mqtt.ErrShort {
			return
		}
		if err != nil {
			in.err = fmt.Errorf("%w: remaining length longer than four bytes [MQTT-1.5.5]", ErrMalformed)
			return
		}
		total := hl + rl
		if in.maxPacket > 0 && total > in.maxPacket {
			in.err = fmt.Errorf("%w: %d bytes over the packet limit of %d [MQTT-3.2.2-15]", ErrMalformed, total, in.maxPacket)
			return
		}
		if len(in.buf) < total {
			return
		}
		pk := in.buf[:total]
		if in.version == 0 && mqtt.Type(pk[0]>>4) != mqtt.CONNECT {
			// Not a CONNECT first: the broker refuses it unread [MQTT-3.1.0-1].
			in.ready = append(in.ready, pk...)
			in.buf = in.buf[total:]
			continue
		}
		mqtt.Decode(pk, total, in.version, &in.pkt)
		if a := in.pkt.Anomalies & malformed; a != 0 {
			in.err = fmt.Errorf("%w: %s %s", ErrMalformed, in.pkt.Type, a)
			return
		}
		if in.pkt.Type == mqtt.CONNECT && in.version == 0 {
			in.version = mqtt.Version(in.pkt.ProtocolLevel)
		}
		if in.pkt.Type == mqtt.DISCONNECT && in.version == mqtt.V5 && rl == 1 {
			// A reason code without the property length (allowed when
			// the remaining length is 1, and what libmosquitto sends):
			// mochi reads the reason code only from a remaining length of
			// 2, so 0x04 "disconnect with will message" would drop the
			// will. The same packet with an empty property length.
			pk = []byte{pk[0], 2, pk[hl], 0}
		}
		in.ready = append(in.ready, pk...)
		in.buf = in.buf[total:]
	}
	if len(in.buf) == 0 {
		in.buf = in.buf[:0:0]
	}
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

// SetDeadline is the broker's keep-alive deadline (1.5 times the
// keep-alive, set before every packet it reads): it applies to reads. The
// write deadline stays Write's. Set on both, it replaced the write timeout
// with the keep-alive's: a client that stopped reading but went on sending
// (a PINGREQ now and then) held a write, and the broker's lock on its
// connection, for 45 s at a keep-alive of 30 s and for 90 minutes at the
// longest allowed, instead of write_timeout (TestWriteTimeoutHolds).
func (c *gwConn) SetDeadline(t time.Time) error {
	if c.writeTimeout <= 0 {
		return c.Conn.SetDeadline(t)
	}
	return c.Conn.SetReadDeadline(t)
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
			gc := &gwConn{Conn: s, raw: rc, writeTimeout: lim.WriteTimeout.Seconds(), in: inbound{maxPacket: lim.MaxPacketSize}}
			if st := s.ConnectionState(); len(st.PeerCertificates) > 0 {
				gc.leaf = st.PeerCertificates[0]
				gc.identity = gc.leaf.Subject.CommonName
			}
			// CONNECT must follow within the handshake timeout; the broker
			// sets the keep-alive deadline once it has read it.
			rc.SetReadDeadline(time.Now().Add(lim.HandshakeTimeout.Seconds()))
			defer func() {
				// No client may take the gateway down: should the broker
				// panic on what a client sent, that client is cut off.
				if p := recover(); p != nil {
					l.g.log.Error("gateway: panic handling a client: connection closed", "source", src, "identity", gc.identity, "panic", fmt.Sprint(p))
					l.g.deny(Record{Identity: gc.identity, Source: src, Action: "disconnect", Reason: "internal error on this client's packets: connection closed", Rule: "gateway"}, "panic")
					gc.Close()
				}
			}()
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
//
// It does not call the broker's closeClients: mochi v2.7.9's
// Clients.GetByListener takes the clients' read lock and, holding it, takes
// it again (Clients.Len). A client ending at that moment (attachClient's
// Clients.Delete, waiting for the write lock) blocks the second read for
// good, and with it every later use of the clients, Gateway.Close too: the
// CI run of 2026-12-03 13:25 hung ten minutes on it, the goroutine dump
// showing those three. disconnectClients does the same work under one read.
func (l *tlsListener) Close(listeners.CloseFn) {
	l.end.Store(true)
	if l.listen != nil {
		l.listen.Close()
	}
	done := make(chan struct{})
	go func() {
		l.disconnectClients()
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

// disconnectClients sends this listener's broker clients the broker's
// DISCONNECT (server shutting down) and stops them, as mochi's
// closeListenerClients does, reading the clients under a single lock.
func (l *tlsListener) disconnectClients() {
	for _, cl := range l.g.srv.Clients.GetAll() {
		if cl.Net.Listener == l.id && !cl.Closed() {
			_ = l.g.srv.DisconnectClient(cl, packets.ErrServerShuttingDown)
		}
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
