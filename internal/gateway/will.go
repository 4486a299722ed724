package gateway

import (
	"math/big"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Wills are decided when they are sent, against the configuration in
// force then (OnWill). An MQTT 5 will with a Will Delay Interval is sent
// later: mochi queues it when the connection drops and publishes it when
// the delay ends with no further check, so a certificate revoked, a
// password changed or a right removed within the delay would not stop
// it. The gateway holds such wills itself instead: mochi is given a will
// to a topic no one receives, and the gateway publishes the real one when
// the delay ends, decided once more against the configuration in force
// then. A reconnect with the same client ID within the delay withdraws it
// [MQTT-3.1.3-9], as mochi would. What is lost: the will's MQTT 5
// properties (user properties, content type), which a publish by the
// gateway does not carry.

// maxHeldWills bounds the wills held for their delay when the policy's
// max_sessions is not set: each belongs to a session that ended.
// maxHeldWillBytes bounds their payloads together: 10,000 wills of the
// default 256 KiB packet limit would be 2.5 GiB.
const (
	maxHeldWills     = 10000
	maxHeldWillBytes = 64 << 20
)

// heldWill is a will waiting for its delay to end.
type heldWill struct {
	identity, clientID, src, pwHash string
	serial                          *big.Int
	will                            mqtt.Will
	timer                           *time.Timer
}

// wills holds the delayed wills, by client ID.
type wills struct {
	mu     sync.Mutex
	held   map[string]*heldWill
	bytes  int // payload bytes held
	closed bool
}

// hold keeps w for delay and then calls send with it, unless it was
// withdrawn or replaced (a second will for the same client ID) before.
// It refuses (false) past max wills or maxBytes of payload held, or once
// closed.
func (ws *wills) hold(w *heldWill, delay time.Duration, max, maxBytes int, send func(*heldWill)) bool {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	old := ws.held[w.clientID]
	n, b := len(ws.held)+1, ws.bytes+len(w.will.Payload)
	if old != nil {
		n, b = n-1, b-len(old.will.Payload)
	}
	if ws.closed || n > max || b > maxBytes {
		return false
	}
	if old != nil {
		ws.drop(old)
	}
	if ws.held == nil {
		ws.held = map[string]*heldWill{}
	}
	ws.held[w.clientID] = w
	ws.bytes += len(w.will.Payload)
	w.timer = time.AfterFunc(delay, func() {
		ws.mu.Lock()
		due := ws.held[w.clientID] == w && !ws.closed
		if due {
			ws.drop(w)
		}
		ws.mu.Unlock()
		if due {
			send(w)
		}
	})
	return true
}

// drop forgets a held will (ws.mu held).
func (ws *wills) drop(w *heldWill) {
	w.timer.Stop()
	delete(ws.held, w.clientID)
	ws.bytes -= len(w.will.Payload)
}

// withdraw drops the will held for a client ID, if any, when identity is
// the one that left it: another identity reusing the client ID (possible
// with client_id: any) does not silence a device's will.
func (ws *wills) withdraw(clientID, identity string) {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	if w := ws.held[clientID]; w != nil && w.identity == identity {
		ws.drop(w)
	}
}

// len is how many wills are held.
func (ws *wills) len() int {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	return len(ws.held)
}

// close drops every will held: a gateway that stops sends none of them,
// as mochi's queue is lost with the broker.
func (ws *wills) close() {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	ws.closed = true
	for _, w := range ws.held {
		ws.drop(w)
	}
}

// willVerdict decides a will against cfg: the certificate not revoked,
// the identity still in the policy, its password unchanged, the topic,
// retain flag and payload within its rights.
func willVerdict(cfg *config, identity string, serial *big.Int, pwHash string, w mqtt.Will) verdict {
	if serial != nil && cfg.revoked[serial.Text(16)] {
		return verdict{packets.ErrNotAuthorized, "client certificate revoked", "crl", "will"}
	}
	r, known := rightsOf(cfg, identity)
	if !known {
		return verdict{packets.ErrNotAuthorized, "identity no longer in the policy", "devices", "will"}
	}
	if h, ok := cfg.pw[identity]; cfg.pw != nil && (!ok || h != pwHash) {
		return verdict{packets.ErrNotAuthorized, "password changed or removed", "passwords", "will"}
	}
	lim := cfg.lim
	return decidePublish(cfg.pol, &lim, r, w.TopicName, w.Retain, w.Payload)
}

// sendWill publishes a will the gateway decided to send: upstream when
// the gateway relays to an upstream broker, else into the local broker
// from the gateway's own inline client.
func (g *Gateway) sendWill(w mqtt.Will) {
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: w.Qos, Retain: w.Retain},
		TopicName: w.TopicName, Payload: w.Payload}
	if g.up != nil {
		g.up.publish(pk)
		return
	}
	pk.PacketID = uint16(w.Qos) // as mochi's Publish: a packet ID for the validity checks, never acknowledged
	if err := g.srv.InjectPacket(g.willFrom, pk); err != nil {
		g.log.Warn("gateway: a delayed will could not be published", "error", err)
	}
}

// sendHeldWill is the end of a will's delay: decided again, then sent or
// refused (audited).
func (g *Gateway) sendHeldWill(w *heldWill) {
	if v := willVerdict(g.cur.Load(), w.identity, w.serial, w.pwHash, w.will); !v.ok() {
		g.deny(Record{Identity: w.identity, ClientID: w.clientID, Source: w.src, Action: "publish", Topic: w.will.TopicName,
			Reason: "delayed will message not sent: " + v.reason, Rule: v.rule}, "will")
		return
	}
	g.sendWill(w.will)
}
