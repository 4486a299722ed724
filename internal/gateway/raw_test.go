package gateway_test

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/iomtguard/iomtguard/internal/mqtt"
)

// raw is an MQTT client on iomtguard's own codec, for attacks no client
// library would send and for checking the exact packets the gateway sends
// back.
type raw struct {
	t  testing.TB
	c  net.Conn
	br *bufio.Reader
	v  mqtt.Version
}

// dialRaw opens a TLS connection as identity name ("" for no certificate).
func dialRaw(t testing.TB, tg *testGW, name string) *raw {
	t.Helper()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", tg.g.Addr(), tg.tlsConfig(t, name))
	if err != nil {
		t.Fatalf("dial as %s: %v", name, err)
	}
	r := &raw{t: t, c: c, br: bufio.NewReaderSize(c, 64<<10), v: mqtt.V311}
	t.Cleanup(func() { c.Close() })
	return r
}

func (r *raw) send(p *mqtt.Packet) {
	r.t.Helper()
	if p.Version == 0 {
		p.Version = r.v
	}
	r.sendBytes(mqtt.Append(nil, p))
}

func (r *raw) sendBytes(b []byte) {
	r.c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	r.c.Write(b)
}

// recv reads the next packet (io.EOF once the gateway closed the
// connection, a timeout error if nothing came).
func (r *raw) recv(timeout time.Duration) (*mqtt.Packet, error) {
	r.c.SetReadDeadline(time.Now().Add(timeout))
	var hdr [5]byte
	b, err := r.br.ReadByte()
	if err != nil {
		return nil, eof(err)
	}
	hdr[0] = b
	n, mul, i := 0, 1, 1
	for ; i < 5; i++ {
		x, err := r.br.ReadByte()
		if err != nil {
			return nil, eof(err)
		}
		hdr[i] = x
		n += int(x&0x7f) * mul
		mul *= 128
		if x&0x80 == 0 {
			break
		}
	}
	whole := make([]byte, i+1+n)
	copy(whole, hdr[:i+1])
	if _, err := io.ReadFull(r.br, whole[i+1:]); err != nil {
		return nil, eof(err)
	}
	p := &mqtt.Packet{}
	mqtt.Decode(whole, len(whole), r.v, p)
	return p, nil
}

func eof(err error) error {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return err
	}
	return io.EOF
}

// expect reads packets until one of type want (skipping PUBLISH and
// PINGRESP), failing the test on anything else or nothing.
func (r *raw) expect(want mqtt.Type) *mqtt.Packet {
	r.t.Helper()
	for {
		p, err := r.recv(5 * time.Second)
		if err != nil {
			r.t.Fatalf("waiting for %s: %v", want, err)
		}
		if p.Type == want {
			return p
		}
		if p.Type != mqtt.PUBLISH && p.Type != mqtt.PINGRESP {
			r.t.Fatalf("waiting for %s: got %s (reason 0x%02x)", want, p.Type, p.ReasonCode)
		}
	}
}

// closed reports whether the gateway closes the connection within
// timeout, and every packet it sent before doing so.
func (r *raw) closed(timeout time.Duration) (bool, []*mqtt.Packet) {
	var got []*mqtt.Packet
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		p, err := r.recv(time.Until(deadline))
		if err == io.EOF {
			return true, got
		}
		if err != nil {
			return false, got
		}
		got = append(got, p)
	}
	return false, got
}

// connect sends CONNECT (client ID id, MQTT v, keep-alive 30 s; edit
// changes it) and returns the CONNACK.
func (r *raw) connect(v mqtt.Version, id string, edit func(*mqtt.Packet)) *mqtt.Packet {
	r.t.Helper()
	r.v = v
	p := &mqtt.Packet{Type: mqtt.CONNECT, Version: v, ClientID: []byte(id), ConnectFlags: 0x02, KeepAlive: 30}
	if edit != nil {
		edit(p)
	}
	r.send(p)
	ack, err := r.recv(5 * time.Second)
	if err != nil {
		r.t.Fatalf("connect %s: %v", id, err)
	}
	if ack.Type != mqtt.CONNACK {
		r.t.Fatalf("connect %s: got %s", id, ack.Type)
	}
	return ack
}

// connectOK connects and fails the test unless accepted.
func (r *raw) connectOK(v mqtt.Version, id string, edit func(*mqtt.Packet)) {
	r.t.Helper()
	if ack := r.connect(v, id, edit); ack.ReasonCode != 0 {
		r.t.Fatalf("connect %s refused: 0x%02x", id, ack.ReasonCode)
	}
}

// subscribe sends one SUBSCRIBE with filters (QoS 1) and returns the
// SUBACK's reason codes.
func (r *raw) subscribe(id uint16, filters ...string) []byte {
	r.t.Helper()
	p := &mqtt.Packet{Type: mqtt.SUBSCRIBE, PacketID: id}
	for _, f := range filters {
		p.Filters = append(p.Filters, mqtt.Subscription{Filter: []byte(f), Options: 1})
	}
	r.send(p)
	return r.expect(mqtt.SUBACK).ReasonCodes
}

// publish sends a PUBLISH.
func (r *raw) publish(topic string, qos byte, retain bool, payload []byte, id uint16) {
	r.send(&mqtt.Packet{Type: mqtt.PUBLISH, Topic: []byte(topic), QoS: qos, Retain: retain, Payload: payload, PacketID: id})
}

// received collects the PUBLISH topics that arrive within d.
func (r *raw) received(d time.Duration) []string {
	return r.publishes(d, func(p *mqtt.Packet) string { return string(p.Topic) })
}

// publishes collects what each PUBLISH arriving within d says through
// show, acknowledging those of QoS 1.
func (r *raw) publishes(d time.Duration, show func(*mqtt.Packet) string) []string {
	var got []string
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		p, err := r.recv(time.Until(deadline))
		if err != nil {
			break
		}
		if p.Type == mqtt.PUBLISH {
			got = append(got, show(p))
			if p.QoS > 0 {
				r.send(&mqtt.Packet{Type: mqtt.PUBACK, PacketID: p.PacketID})
			}
		}
	}
	return got
}

func hex(b []byte) string { return fmt.Sprintf("% x", b) }
