package gateway

import (
	"bytes"
	"fmt"
	"math/big"
	"strings"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Wills are decided when they are sent, against the configuration in
// force then (OnWill). An MQTT 5 will with a Will Delay Interval is sent
// later: mochi queues it when the connection drops and publishes it when
// the delay ends with no further check, so a certificate revoked, a
// password changed, a right removed or a ban within the delay would not
// stop it. The gateway holds such wills itself instead. OnWill sets the
// delay mochi sees to 0 and gives it a will to a topic no one receives
// (mochi's queue stays empty: its timer would also clear the will of the
// connection holding the client ID by then); the gateway publishes the
// real one when the delay ends, decided once more.
//
// The delay is the smaller of the will's and the session's expiry
// interval (the one granted, or changed by DISCONNECT): the will goes
// when the delay ends or the session ends, whichever comes first
// [MQTT-3.1.2-8]; with no session expiry it goes at once. A new network
// connection to the session within the delay withdraws it [MQTT-3.1.3-9]:
// a reconnect by the identity that left it (OnSessionEstablished), and a
// session takeover, whose old connection's will is decided after the new
// connection may already be established (superseded). So a will is held
// only while its session is, and their number is bounded by max_sessions;
// an identity holds at most maxHeldWillsPerIdentity.
//
// A held will carries what mochi carries of a will's MQTT 5 properties:
// its user properties (counted against maxHeldWillBytes). Content type,
// response topic and the others mochi drops for every will, held or not.

// maxHeldWills bounds the wills held when the policy's max_sessions is
// not set; maxHeldWillBytes bounds what they keep (a copy of topic,
// payload and names: not the CONNECT packet they were decoded from),
// since 10,000 wills of the default 256 KiB packet limit would be
// 2.5 GiB.
const (
	maxHeldWills            = 10000
	maxHeldWillsPerIdentity = 64
	maxHeldWillBytes        = 64 << 20
	heldWillOverhead        = 256 // bytes counted for each beyond its strings
	userPropertyOverhead    = 32  // and for each user property beyond its key and value
)

// heldWill is a will waiting for its delay to end.
type heldWill struct {
	identity, clientID, src, pwHash string
	serial                          *big.Int
	will                            mqtt.Will // topic, payload and user properties copied
	timer                           *time.Timer
}

// newHeldWill copies what a held will needs out of the client's will:
// mochi decodes the will's topic, payload and user properties as slices
// of the whole CONNECT packet, which a held reference would keep alive.
func newHeldWill(identity, clientID, src, pwHash string, serial *big.Int, w mqtt.Will) *heldWill {
	var user []packets.UserProperty
	if len(w.User) > 0 {
		user = make([]packets.UserProperty, 0, len(w.User)) // no room beyond what size counts
	}
	for _, u := range w.User {
		user = append(user, packets.UserProperty{Key: strings.Clone(u.Key), Val: strings.Clone(u.Val)})
	}
	return &heldWill{identity: strings.Clone(identity), clientID: strings.Clone(clientID), src: strings.Clone(src), pwHash: pwHash, serial: serial,
		will: mqtt.Will{TopicName: strings.Clone(w.TopicName), Payload: bytes.Clone(w.Payload), User: user, Qos: w.Qos, Retain: w.Retain, Flag: 1}}
}

// size is what a held will counts against maxHeldWillBytes.
func (w *heldWill) size() int {
	n := len(w.identity) + len(w.clientID) + len(w.src) + len(w.will.TopicName) + len(w.will.Payload) + heldWillOverhead
	for _, u := range w.will.User {
		n += len(u.Key) + len(u.Val) + userPropertyOverhead
	}
	return n
}

// key is where a held will is kept: per client ID and identity, so that
// another identity reusing the client ID (client_id: any) neither
// replaces nor withdraws a device's will.
func (w *heldWill) key() string { return w.clientID + "\x00" + w.identity }

// holdResult is why hold did not keep a will.
type holdResult int

const (
	held holdResult = iota
	heldFull
	heldClosed
)

func (r holdResult) ok() bool { return r == held }

// wills holds the delayed wills.
type wills struct {
	mu     sync.Mutex
	held   map[string]*heldWill // by key
	perID  map[string]int       // wills held per identity
	bytes  int                  // their sizes together
	closed bool
}

// hold keeps w for delay and then calls send with it, unless it was
// withdrawn or replaced (a second will for the same client ID and
// identity) before. It refuses past max wills, maxPerID for one identity
// or maxBytes held, and once closed.
func (ws *wills) hold(w *heldWill, delay time.Duration, max, maxPerID, maxBytes int, send func(*heldWill)) holdResult {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	if ws.closed {
		return heldClosed
	}
	old := ws.held[w.key()]
	n, id, b := len(ws.held)+1, ws.perID[w.identity]+1, ws.bytes+w.size()
	if old != nil {
		n, id, b = n-1, id-1, b-old.size()
	}
	if n > max || id > maxPerID || b > maxBytes {
		return heldFull
	}
	if old != nil {
		ws.drop(old)
	}
	if ws.held == nil {
		ws.held, ws.perID = map[string]*heldWill{}, map[string]int{}
	}
	ws.held[w.key()] = w
	ws.perID[w.identity]++
	ws.bytes += w.size()
	w.timer = time.AfterFunc(delay, func() {
		ws.mu.Lock()
		due := ws.held[w.key()] == w && !ws.closed
		if due {
			ws.drop(w)
		}
		ws.mu.Unlock()
		if due {
			send(w)
		}
	})
	return held
}

// drop forgets a held will (ws.mu held).
func (ws *wills) drop(w *heldWill) {
	w.timer.Stop()
	delete(ws.held, w.key())
	if ws.perID[w.identity]--; ws.perID[w.identity] <= 0 {
		delete(ws.perID, w.identity)
	}
	ws.bytes -= w.size()
}

// withdraw drops the will that identity left for a client ID, if any.
func (ws *wills) withdraw(clientID, identity string) {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	if w := ws.held[clientID+"\x00"+identity]; w != nil {
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

// willVerdict decides a will against cfg: the session still standing,
// the topic, retain flag and payload within its rights.
func willVerdict(cfg *config, identity string, serial *big.Int, pwHash string, w mqtt.Will) verdict {
	r, v := cfg.standing(identity, serial, pwHash)
	if !v.ok() {
		return v
	}
	lim := cfg.lim
	return decidePublish(cfg.pol, &lim, r, w.TopicName, w.Retain, w.Payload)
}

// decideWill is willVerdict with what the gateway's state adds: a ban of
// the identity, and the bound on retained messages (a will is a PUBLISH:
// past max_retained a retained one is refused with 0x97, as OnPacketRead
// refuses the device's own).
func (g *Gateway) decideWill(cfg *config, identity string, serial *big.Int, pwHash string, w mqtt.Will) verdict {
	if b, ok := g.bans.banned("identity:"+identity, g.now()); ok {
		return verdict{packets.ErrBanned, "identity banned until " + b.Until.UTC().Format(time.RFC3339) + ": " + b.Reason, "ban", "will"}
	}
	v := willVerdict(cfg, identity, serial, pwHash, w)
	if v.ok() && w.Retain && len(w.Payload) > 0 {
		if n, full := g.retainedFull(w.TopicName, cfg.lim.MaxRetained); full {
			v = verdict{packets.ErrQuotaExceeded, fmt.Sprintf("%d retained messages held (limit %d)", n, cfg.lim.MaxRetained), "limits.max_retained", "retained"}
		}
	}
	return v
}

// retainedFull reports whether a new retained message on topic would go
// past max: the topic holds none yet and the messages held, the broker's
// own $SYS ones not counted, are at max already; n is that count. (mochi
// keeps about 20 retained $SYS messages: counted, a max_retained under 21
// refused every device's retained message.) The $SYS messages are counted
// only at the limit, so the usual check stays one lookup.
func (g *Gateway) retainedFull(topic string, max int) (n int, full bool) {
	if _, held := g.srv.Topics.Retained.Get(topic); held {
		return 0, false
	}
	if n = g.srv.Topics.Retained.Len(); n < max {
		return n, false
	}
	n -= len(g.srv.Topics.Messages("$SYS/#"))
	return n, n >= max
}

// sendWill publishes a will the gateway decided to send: upstream when
// the gateway relays to an upstream broker, else into the local broker
// from the gateway's own inline client.
func (g *Gateway) sendWill(w mqtt.Will) {
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: w.Qos, Retain: w.Retain},
		TopicName: w.TopicName, Payload: w.Payload, Properties: packets.Properties{User: w.User}}
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
	if v := g.decideWill(g.cur.Load(), w.identity, w.serial, w.pwHash, w.will); !v.ok() {
		g.deny(Record{Identity: w.identity, ClientID: w.clientID, Source: w.src, Action: "publish", Topic: w.will.TopicName,
			Reason: "delayed will message not sent: " + v.reason, Rule: v.rule}, "will")
		return
	}
	g.sendWill(w.will)
}
