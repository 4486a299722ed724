package sim

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net"
	"sync"
	"time"
)

// The --tls posture: devices, control units and the nurse station speak
// MQTT inside TLS 1.2 on port 8883 with certificates from the ward's CA, as
// a hardened ICU does. Each connection runs a real crypto/tls handshake (in
// memory, when the TCP connection opens) whose flights are then sent over
// the simulated TCP, and every MQTT write afterwards is sealed into TLS
// records with the session's keys and opened by the other side. The bytes
// of TLS (keys, randoms) come from crypto/rand: with TLS the capture's
// timing and sizes follow the seed, its bytes do not.

const tlsPort = 8883

// wardPKI is the simulation's CA and its certificates, made once.
type wardPKI struct {
	pool   *x509.CertPool
	broker tls.Certificate
	ca     *x509.Certificate
	caKey  *ecdsa.PrivateKey
	certs  map[string]tls.Certificate
	now    time.Time
}

func newWardPKI(now time.Time) (*wardPKI, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ICU ward CA"}, NotBefore: now.Add(-time.Hour),
		NotAfter: now.Add(365 * 24 * time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	ca, _ := x509.ParseCertificate(der)
	p := &wardPKI{pool: x509.NewCertPool(), ca: ca, caKey: key, certs: map[string]tls.Certificate{}, now: now}
	p.pool.AddCert(ca)
	if p.broker, err = p.issue("broker.icu.local", true); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *wardPKI) issue(name string, server bool) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(int64(len(p.certs) + 2)), Subject: pkix.Name{CommonName: name},
		NotBefore: p.now.Add(-time.Hour), NotAfter: p.now.Add(365 * 24 * time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.DNSNames = []string{name}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, &key.PublicKey, p.caKey)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

func (p *wardPKI) cert(name string) (tls.Certificate, error) {
	if c, ok := p.certs[name]; ok {
		return c, nil
	}
	c, err := p.issue(name, false)
	if err == nil {
		p.certs[name] = c
	}
	return c, err
}

// errWouldBlock tells crypto/tls that no more bytes are there yet; it is a
// temporary net.Error, which tls.Conn does not treat as fatal.
type wouldBlock struct{}

func (wouldBlock) Error() string   { return "sim: no data yet" }
func (wouldBlock) Timeout() bool   { return true }
func (wouldBlock) Temporary() bool { return true }

// swConn is one side's transport under tls.Conn: an in-memory pipe during
// the handshake, then buffers the simulation fills and drains.
type swConn struct {
	net.Conn // the pipe end during the handshake
	sync     bool
	rec      func([]byte)
	in, out  bytes.Buffer
}

func (c *swConn) Read(p []byte) (int, error) {
	if !c.sync {
		return c.Conn.Read(p)
	}
	if c.in.Len() == 0 {
		return 0, wouldBlock{}
	}
	return c.in.Read(p)
}

func (c *swConn) Write(p []byte) (int, error) {
	if !c.sync {
		c.rec(p)
		return c.Conn.Write(p)
	}
	return c.out.Write(p)
}

// flight is one handshake write.
type flight struct {
	d int // direction (toServer: the client wrote it)
	b []byte
}

// tlsLink is the TLS of one simulated connection. side[toServer] is the
// client's tls.Conn (it writes what travels to the server), side[toClient]
// the broker's.
type tlsLink struct {
	side    [2]*tls.Conn
	conn    [2]*swConn
	flights []flight
	next    int    // next flight to send
	got     [2]int // handshake bytes delivered per direction
	want    [2]int // handshake bytes expected per direction so far
	up      bool
	onUp    func()
	buf     []byte
}

// newTLSLink runs the handshake in memory and returns the link with its
// flights recorded (not yet sent).
func newTLSLink(p *wardPKI, clientName string) (*tlsLink, error) {
	cert, err := p.cert(clientName)
	if err != nil {
		return nil, err
	}
	a, b := net.Pipe()
	l := &tlsLink{buf: make([]byte, 1<<16)}
	var mu sync.Mutex
	rec := func(d int) func([]byte) {
		return func(x []byte) {
			mu.Lock()
			defer mu.Unlock()
			if n := len(l.flights); n > 0 && l.flights[n-1].d == d {
				l.flights[n-1].b = append(l.flights[n-1].b, x...)
				return
			}
			l.flights = append(l.flights, flight{d, append([]byte(nil), x...)})
		}
	}
	l.conn[toServer] = &swConn{Conn: a, rec: rec(toServer)}
	l.conn[toClient] = &swConn{Conn: b, rec: rec(toClient)}
	l.side[toServer] = tls.Client(l.conn[toServer], &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: p.pool,
		ServerName: "broker.icu.local", MinVersion: tls.VersionTLS12, MaxVersion: tls.VersionTLS12, Time: func() time.Time { return p.now }})
	l.side[toClient] = tls.Server(l.conn[toClient], &tls.Config{Certificates: []tls.Certificate{p.broker}, ClientCAs: p.pool,
		ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12, MaxVersion: tls.VersionTLS12,
		SessionTicketsDisabled: true, Time: func() time.Time { return p.now }})
	errc := make(chan error, 2)
	go func() { errc <- l.side[toClient].Handshake() }()
	go func() { errc <- l.side[toServer].Handshake() }()
	err1, err2 := <-errc, <-errc
	a.Close()
	b.Close()
	if err := errors.Join(err1, err2); err != nil {
		return nil, err
	}
	l.conn[toServer].sync, l.conn[toClient].sync = true, true
	return l, nil
}

// start sends the handshake over t; onUp runs when its last flight has
// arrived.
func (l *tlsLink) start(t *tcpConn, onUp func()) {
	l.onUp = onUp
	l.sendFlight(t)
}

func (l *tlsLink) sendFlight(t *tcpConn) {
	if l.next >= len(l.flights) {
		return
	}
	f := l.flights[l.next]
	l.next++
	l.want[f.d] += len(f.b)
	t.sendBytes(f.d, f.b)
}

// seal turns plaintext written in direction d into TLS records.
func (l *tlsLink) seal(d int, p []byte) []byte {
	l.side[d].Write(p)
	out := append([]byte(nil), l.conn[d].out.Bytes()...)
	l.conn[d].out.Reset()
	return out
}

// deliver takes bytes arriving in direction d: handshake bytes advance the
// handshake; records are opened and their plaintext passed to cb.
func (l *tlsLink) deliver(t *tcpConn, d int, b []byte, cb func([]byte)) {
	if !l.up {
		l.got[d] += len(b)
		if l.got[d] < l.want[d] {
			return
		}
		if l.next < len(l.flights) {
			t.e.after(t.e.jitter(procDelayLo, procDelayHi)+200_000, func() { l.sendFlight(t) })
			return
		}
		l.up = true
		if l.onUp != nil {
			l.onUp()
		}
		return
	}
	r := l.side[1-d]
	l.conn[1-d].in.Write(b)
	for {
		n, err := r.Read(l.buf)
		if n > 0 {
			cb(append([]byte(nil), l.buf[:n]...))
		}
		if err != nil || n == 0 {
			return
		}
	}
}
