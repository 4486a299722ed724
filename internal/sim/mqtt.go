package sim

import (
	"fmt"
	"sort"
	"strings"

	"github.com/iomtguard/iomtguard/internal/mqtt"
)

// broker is a simulated MQTT broker (it behaves as Mosquitto 2.0 does by
// default: one session per client ID, the newer connection wins; retained
// messages; QoS 0 and 1; a malformed packet closes the connection).
type broker struct {
	e              *engine
	h              *host
	port           uint16
	requireAuth    bool // check user names and passwords
	allowAnonymous bool // accept CONNECT without a user name even when checking
	users          map[string]string
	sessions       map[string]*brokerConn
	subs           []subscription
	retained       map[string]retainedMsg
}

type retainedMsg struct {
	payload []byte
	qos     uint8
}

type subscription struct {
	filter string
	conn   *brokerConn
	qos    uint8
}

// brokerConn is the broker's side of one client connection.
type brokerConn struct {
	b         *broker
	t         *tcpConn
	fr        mqtt.Framer
	version   mqtt.Version
	clientID  string
	connected bool
	pkt       mqtt.Packet
	nextPID   uint16
	done      bool
}

func newBroker(e *engine, h *host, port uint16) *broker {
	return &broker{e: e, h: h, port: port, users: map[string]string{}, sessions: map[string]*brokerConn{}, retained: map[string]retainedMsg{}}
}

// accept attaches the broker to a new connection.
func (b *broker) accept(t *tcpConn) *brokerConn {
	bc := &brokerConn{b: b, t: t}
	t.onData[toServer] = bc.receive
	t.onClose[toServer] = func() { bc.gone() }
	return bc
}

func (bc *brokerConn) gone() {
	if bc.done {
		return
	}
	bc.done = true
	b := bc.b
	if bc.clientID != "" && b.sessions[bc.clientID] == bc {
		delete(b.sessions, bc.clientID)
	}
	kept := b.subs[:0]
	for _, s := range b.subs {
		if s.conn != bc {
			kept = append(kept, s)
		}
	}
	b.subs = kept
}

// receive parses bytes from the client.
func (bc *brokerConn) receive(data []byte) {
	var out mqtt.Frame
	for len(data) > 0 && !bc.done {
		n, st := bc.fr.Next(data, &out)
		data = data[n:]
		switch st {
		case mqtt.NeedMore:
			return
		case mqtt.Malformed:
			bc.kill()
			return
		case mqtt.Complete:
			mqtt.Decode(out.Bytes, out.Total, bc.version, &bc.pkt)
			bc.handle(&bc.pkt)
		}
	}
}

// kill drops the connection with a RST, as a broker does on a protocol violation.
func (bc *brokerConn) kill() {
	if bc.done {
		return
	}
	bc.gone()
	bc.b.e.after(bc.b.e.jitter(procDelayLo, procDelayHi), func() { bc.t.abort(toClient) })
}

func (bc *brokerConn) reply(p *mqtt.Packet) {
	b := mqtt.Append(nil, p)
	bc.b.e.after(bc.b.e.jitter(procDelayLo, procDelayHi), func() { bc.t.send(toClient, b) })
}

func (bc *brokerConn) handle(p *mqtt.Packet) {
	b := bc.b
	const fatal = mqtt.AnomalyMalformedLength | mqtt.AnomalyReservedFlags | mqtt.AnomalyInvalidQoS |
		mqtt.AnomalyUnassignedType | mqtt.AnomalyProtocolName | mqtt.AnomalyProtocolLevel | mqtt.AnomalyConnectReserved |
		mqtt.AnomalyTruncated | mqtt.AnomalyUTF8 | mqtt.AnomalyWildcardPublish | mqtt.AnomalyEmptyTopic
	if p.Anomalies&fatal != 0 {
		bc.kill()
		return
	}
	if !bc.connected && p.Type != mqtt.CONNECT {
		bc.kill() // [MQTT-3.1.0-1]
		return
	}
	switch p.Type {
	case mqtt.CONNECT:
		if bc.connected {
			bc.kill() // [MQTT-3.1.0-2]
			return
		}
		bc.version = mqtt.Version(p.ProtocolLevel)
		rc := byte(0)
		if b.requireAuth && !(b.allowAnonymous && !p.UsernamePresent()) {
			pass, ok := b.users[string(p.Username)]
			if !p.UsernamePresent() || !ok || !p.PasswordPresent() || pass != string(p.Password) {
				rc = 5 // not authorised (Mosquitto's answer to bad credentials in 3.1.1)
				if bc.version == mqtt.V5 {
					rc = 0x86
				}
			}
		}
		ack := &mqtt.Packet{Type: mqtt.CONNACK, Version: bc.version, ReasonCode: rc}
		bc.reply(ack)
		if rc != 0 {
			bc.done = true
			b.e.after(b.e.jitter(200_000, 600_000), func() { bc.t.close(toClient) })
			return
		}
		bc.connected = true
		bc.clientID = string(p.ClientID)
		if old := b.sessions[bc.clientID]; old != nil && old != bc {
			// Session takeover: the newer connection wins. [MQTT-3.1.4-3]
			old.gone()
			b.e.after(b.e.jitter(100_000, 300_000), func() { old.t.close(toClient) })
		}
		b.sessions[bc.clientID] = bc
	case mqtt.PUBLISH:
		if p.QoS == 1 {
			bc.reply(&mqtt.Packet{Type: mqtt.PUBACK, Version: bc.version, PacketID: p.PacketID})
		}
		topic := string(p.TopicName())
		if p.Retain {
			if len(p.Payload) == 0 {
				delete(b.retained, topic)
			} else {
				b.retained[topic] = retainedMsg{payload: append([]byte(nil), p.Payload...), qos: p.QoS}
			}
		}
		b.route(topic, p.Payload, p.QoS, bc)
	case mqtt.PUBACK:
	case mqtt.SUBSCRIBE:
		codes := make([]byte, len(p.Filters))
		var newSubs []subscription
		for i, f := range p.Filters {
			codes[i] = min(f.QoS(), 1)
			newSubs = append(newSubs, subscription{filter: string(f.Filter), conn: bc, qos: codes[i]})
		}
		b.subs = append(b.subs, newSubs...)
		bc.reply(&mqtt.Packet{Type: mqtt.SUBACK, Version: bc.version, PacketID: p.PacketID, ReasonCodes: codes})
		// Retained messages go to the new subscriber. [MQTT-3.3.1-6]
		// In topic order: the same seed gives the same bytes.
		topics := make([]string, 0, len(b.retained))
		for topic := range b.retained {
			topics = append(topics, topic)
		}
		sort.Strings(topics)
		for _, s := range newSubs {
			for _, topic := range topics {
				r := b.retained[topic]
				if topicMatch(s.filter, topic) {
					bc.forward(topic, r.payload, min(s.qos, r.qos), true, 2_000_000)
				}
			}
		}
	case mqtt.UNSUBSCRIBE:
		bc.reply(&mqtt.Packet{Type: mqtt.UNSUBACK, Version: bc.version, PacketID: p.PacketID})
	case mqtt.PINGREQ:
		bc.reply(&mqtt.Packet{Type: mqtt.PINGRESP})
	case mqtt.DISCONNECT:
		bc.gone()
	}
}

// route forwards a publication to every matching subscriber.
func (b *broker) route(topic string, payload []byte, qos uint8, from *brokerConn) {
	sent := map[*brokerConn]bool{}
	for _, s := range b.subs {
		if sent[s.conn] || s.conn.done || !topicMatch(s.filter, topic) {
			continue
		}
		sent[s.conn] = true
		s.conn.forward(topic, payload, min(qos, s.qos), false, 0)
	}
}

// forward sends a PUBLISH to this subscriber.
func (bc *brokerConn) forward(topic string, payload []byte, qos uint8, retain bool, delay int64) {
	p := &mqtt.Packet{Type: mqtt.PUBLISH, Version: bc.version, Topic: []byte(topic), Payload: payload, QoS: qos, Retain: retain}
	if qos > 0 {
		bc.nextPID++
		if bc.nextPID == 0 {
			bc.nextPID = 1
		}
		p.PacketID = bc.nextPID
	}
	raw := mqtt.Append(nil, p)
	bc.b.e.after(delay+bc.b.e.jitter(procDelayLo, procDelayHi), func() {
		if !bc.done {
			bc.t.send(toClient, raw)
		}
	})
}

// topicMatch matches an MQTT topic filter ('+' one level, '#' the rest).
// Filters starting with a wildcard do not match topics starting with '$'. [MQTT-4.7.2-1]
func topicMatch(filter, topic string) bool {
	if strings.HasPrefix(topic, "$") && (strings.HasPrefix(filter, "#") || strings.HasPrefix(filter, "+")) {
		return false
	}
	f := strings.Split(filter, "/")
	t := strings.Split(topic, "/")
	for i, part := range f {
		if part == "#" {
			return true
		}
		if i >= len(t) {
			return false
		}
		if part != "+" && part != t[i] {
			return false
		}
	}
	return len(f) == len(t)
}

// client is a simulated MQTT client (device, control unit, nurse station, invader).
type client struct {
	e         *engine
	b         *broker
	h         *host
	id        string
	user      string
	pass      string
	version   mqtt.Version
	keepalive uint16
	tag       frameTag
	t         *tcpConn
	fr        mqtt.Framer
	pkt       mqtt.Packet
	connected bool
	lastTx    int64
	nextPID   uint16
	// onConnack runs when the broker answers CONNECT (rc 0: accepted).
	onConnack func(rc byte)
	// onLost runs when the broker closes or resets the connection.
	onLost    func()
	received  int
	pingTimer int
	// tls, when set, makes the client connect to the broker's TLS port
	// with a certificate of its name.
	tls *wardPKI
}

// connect dials the broker and sends CONNECT.
func (c *client) connect() {
	port := c.b.port
	var link *tlsLink
	if c.tls != nil {
		port = tlsPort
		var err error
		if link, err = newTLSLink(c.tls, c.id); err != nil {
			c.e.fail(fmt.Errorf("sim: TLS for %s: %w", c.id, err))
			return
		}
	}
	sendConnect := func() {
		c.send(&mqtt.Packet{Type: mqtt.CONNECT, Version: c.version, ClientID: []byte(c.id), ConnectFlags: 0x02,
			KeepAlive: c.keepalive, Username: strBytes(c.user), Password: strBytes(c.pass)})
	}
	c.t = c.e.dial(c.h, c.b.h, port, c.tag, func(t *tcpConn) {
		c.e.after(c.e.jitter(20_000, 120_000), func() {
			if link != nil {
				link.start(t, func() { c.e.after(c.e.jitter(20_000, 120_000), sendConnect) })
				return
			}
			sendConnect()
		})
	})
	c.t.tls = link
	c.b.accept(c.t)
	c.t.onData[toClient] = c.receive
	c.t.onClose[toClient] = func() {
		was := c.connected
		c.connected = false
		if c.onLost != nil && (was || c.t.reset) {
			c.onLost()
		}
	}
}

func strBytes(s string) []byte {
	if s == "" {
		return nil
	}
	return []byte(s)
}

// send encodes and sends a packet now (the client's time).
func (c *client) send(p *mqtt.Packet) {
	if c.t == nil || c.t.closed || c.t.reset {
		return
	}
	if p.Version == 0 {
		p.Version = c.version
	}
	c.lastTx = c.e.now
	c.t.send(toServer, mqtt.Append(nil, p))
}

// sendRaw sends bytes as they are (malformed packets).
func (c *client) sendRaw(b []byte) {
	if c.t == nil || c.t.closed || c.t.reset {
		return
	}
	c.lastTx = c.e.now
	c.t.send(toServer, b)
}

func (c *client) receive(data []byte) {
	var out mqtt.Frame
	for len(data) > 0 {
		n, st := c.fr.Next(data, &out)
		data = data[n:]
		if st != mqtt.Complete {
			if st == mqtt.NeedMore {
				return
			}
			continue
		}
		mqtt.Decode(out.Bytes, out.Total, c.version, &c.pkt)
		c.received++
		switch c.pkt.Type {
		case mqtt.CONNACK:
			rc := c.pkt.ReasonCode
			c.connected = rc == 0
			if c.onConnack != nil {
				cb := c.onConnack
				c.e.after(c.e.jitter(procDelayLo, procDelayHi), func() { cb(rc) })
			}
			if rc == 0 {
				c.armKeepalive()
			}
		case mqtt.PUBLISH:
			if c.pkt.QoS == 1 {
				pid := c.pkt.PacketID
				c.e.after(c.e.jitter(procDelayLo, procDelayHi), func() {
					c.send(&mqtt.Packet{Type: mqtt.PUBACK, PacketID: pid})
				})
			}
		}
	}
}

// publish sends a PUBLISH now.
func (c *client) publish(topic string, payload []byte, qos uint8, retain bool) {
	if !c.connected {
		return
	}
	p := &mqtt.Packet{Type: mqtt.PUBLISH, Topic: []byte(topic), Payload: payload, QoS: qos, Retain: retain}
	if qos > 0 {
		c.nextPID++
		if c.nextPID == 0 {
			c.nextPID = 1
		}
		p.PacketID = c.nextPID
	}
	c.send(p)
}

// subscribe sends a SUBSCRIBE now.
func (c *client) subscribe(filters ...string) {
	c.nextPID++
	p := &mqtt.Packet{Type: mqtt.SUBSCRIBE, PacketID: c.nextPID}
	for _, f := range filters {
		p.Filters = append(p.Filters, mqtt.Subscription{Filter: []byte(f)})
	}
	c.send(p)
}

// armKeepalive sends PINGREQ when nothing was sent for a keep-alive period.
func (c *client) armKeepalive() {
	if c.keepalive == 0 {
		return
	}
	c.pingTimer++
	gen := c.pingTimer
	period := int64(c.keepalive) * 1e9
	var check func()
	check = func() {
		if gen != c.pingTimer || !c.connected || c.t.closed || c.t.reset {
			return
		}
		if idle := c.e.now - c.lastTx; idle >= period-5e6 {
			c.send(&mqtt.Packet{Type: mqtt.PINGREQ})
			c.e.after(period+c.e.jitter(0, 3_000_000), check)
			return
		} else {
			c.e.after(period-idle+c.e.jitter(0, 3_000_000), check)
		}
	}
	c.e.after(period, check)
}

// disconnect sends DISCONNECT and closes the connection.
func (c *client) disconnect() {
	if !c.connected {
		return
	}
	c.send(&mqtt.Packet{Type: mqtt.DISCONNECT})
	c.connected = false
	c.pingTimer++
	c.e.after(c.e.jitter(50_000, 200_000), func() { c.t.close(toServer) })
}
