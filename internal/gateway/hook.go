package gateway

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"strings"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/iomtguard/iomtguard/internal/policy"
	"github.com/iomtguard/iomtguard/internal/seal"
)

// client is the gateway's state of one connected client.
type client struct {
	identity  string
	src, ip   string
	version   byte
	since     time.Time
	pubRights []string // publish filters, from the policy at connect
	mu        sync.Mutex
	pubs      *bucket
	bytes     *bucket
	sess      *bridgeSession
	subbing   map[string]bool // filters of the SUBSCRIBE being decided
}

// hook is the gateway's broker hook: every decision is taken here (after
// the listener's) and audited.
type hook struct {
	mqtt.HookBase
	g       *Gateway
	clients sync.Map // *mqtt.Client -> *client
}

func (h *hook) ID() string { return "iomtguard-gateway" }

func (h *hook) Provides(b byte) bool {
	return bytes.Contains([]byte{mqtt.OnConnect, mqtt.OnConnectAuthenticate, mqtt.OnSessionEstablished, mqtt.OnDisconnect,
		mqtt.OnACLCheck, mqtt.OnPublish, mqtt.OnSubscribe}, []byte{b})
}

func (h *hook) get(cl *mqtt.Client) *client {
	c, _ := h.clients.Load(cl)
	if c == nil {
		return nil
	}
	return c.(*client)
}

// v3 return codes for what MQTT 3.1.1 lacks.
func (h *hook) refuse(cl *mqtt.Client, v5 packets.Code) packets.Code {
	c := v5
	if cl.Properties.ProtocolVersion < 5 {
		switch v5 {
		case packets.ErrNotAuthorized, packets.ErrBanned:
			c = packets.Err3NotAuthorized
		case packets.ErrConnectionRateExceeded, packets.ErrServerBusy:
			c = packets.Err3ServerUnavailable
		case packets.ErrClientIdentifierNotValid:
			c = packets.Err3ClientIdentifierNotValid
		}
	}
	h.g.srv.SendConnack(cl, c, false, nil)
	return c
}

// identity is the verified client certificate's common name.
func identity(cl *mqtt.Client) string {
	if tc, ok := cl.Net.Conn.(*tls.Conn); ok {
		if st := tc.ConnectionState(); len(st.PeerCertificates) > 0 {
			return st.PeerCertificates[0].Subject.CommonName
		}
	}
	return ""
}

func (h *hook) OnConnect(cl *mqtt.Client, pk packets.Packet) error {
	g := h.g
	now := g.now()
	id := identity(cl)
	src := cl.Net.Remote
	rec := Record{Identity: id, ClientID: cl.ID, Source: src, Action: "connect"}
	deny := func(v5 packets.Code, reason, metric string) error {
		sent := h.refuse(cl, v5)
		rec.Reason, rec.Code = reason, code(sent.Code)
		g.deny(rec, metric)
		g.bridge.connect(cl, id, src, pk, sent.Code, now)
		return v5
	}
	if id == "" {
		return deny(packets.ErrNotAuthorized, "no verified client certificate", "no_identity")
	}
	if b, ok := g.bans.banned("identity:"+id, now); ok {
		return deny(packets.ErrBanned, "identity banned until "+b.Until.UTC().Format(time.RFC3339)+": "+b.Reason, "banned")
	}
	if _, _, known := g.pol.Rights(id); !known {
		return deny(packets.ErrNotAuthorized, "certified identity "+id+" is not in the policy", "not_in_policy")
	}
	cid := string(pk.Connect.ClientIdentifier)
	switch {
	case cid == "" && g.cfg.ClientID != "any":
		cl.ID = id // the identity names the session
	case g.cfg.ClientID == "identity" && cid != id,
		g.cfg.ClientID == "prefix" && cid != id && !strings.HasPrefix(cid, id+"-") && !strings.HasPrefix(cid, id+"/"):
		return deny(packets.ErrClientIdentifierNotValid, fmt.Sprintf("client ID %q does not match the certificate identity %q", cid, id), "client_id")
	}
	rec.ClientID = cl.ID
	g.mu.Lock()
	w := g.idRate[id]
	if w == nil {
		w = newWindow(g.limits.ConnectsPerMinutePerIdentity + 1)
		g.idRate[id] = w
	}
	n := w.add(now, time.Minute)
	g.mu.Unlock()
	if n > g.limits.ConnectsPerMinutePerIdentity {
		reason := fmt.Sprintf("%d connects within a minute (limit %d)", n, g.limits.ConnectsPerMinutePerIdentity)
		g.ban("identity:"+id, src, reason)
		return deny(packets.ErrConnectionRateExceeded, "flapping: "+reason, "flapping")
	}
	pubRights, _, _ := g.pol.Rights(id)
	h.clients.Store(cl, &client{identity: id, src: src, ip: hostOf(src), version: cl.Properties.ProtocolVersion, since: now,
		pubRights: pubRights, pubs: newBucket(float64(g.limits.PublishesPerSecond)), bytes: newBucket(float64(g.limits.BytesPerSecond)),
		subbing: map[string]bool{}})
	return nil
}

func (h *hook) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool {
	g := h.g
	c := h.get(cl)
	if c == nil {
		return false
	}
	if g.passwords == nil {
		return true
	}
	user := string(pk.Connect.Username)
	hash, ok := g.passwords[c.identity]
	if ok && user == c.identity && checkPassword(hash, string(pk.Connect.Password)) {
		return true
	}
	reason := "bad user name or password"
	if !pk.Connect.PasswordFlag {
		reason = "no password"
	}
	g.deny(Record{Identity: c.identity, ClientID: cl.ID, Source: c.src, Action: "connect", Reason: reason, Code: code(packets.ErrBadUsernameOrPassword.Code)}, "password")
	g.bridge.connect(cl, c.identity, c.src, pk, packets.ErrBadUsernameOrPassword.Code, g.now())
	h.clients.Delete(cl)
	g.authFailed("ip:"+c.ip, c.src, reason)
	g.authFailed("identity:"+c.identity, c.src, reason)
	return false
}

func (h *hook) OnSessionEstablished(cl *mqtt.Client, pk packets.Packet) {
	c := h.get(cl)
	if c == nil {
		return
	}
	g := h.g
	g.audit.log(Record{Identity: c.identity, ClientID: cl.ID, Source: c.src, Action: "connect", Verdict: "allow",
		Reason: fmt.Sprintf("certificate %s, MQTT %s", c.identity, version(c.version)), Code: code(0)})
	g.metrics.connAllowed.Inc()
	c.sess = g.bridge.connect(cl, c.identity, c.src, pk, 0, g.now())
}

func version(v byte) string {
	switch v {
	case 3:
		return "3.1"
	case 4:
		return "3.1.1"
	case 5:
		return "5.0"
	}
	return fmt.Sprint(v)
}

func (h *hook) OnDisconnect(cl *mqtt.Client, err error, expire bool) {
	c := h.get(cl)
	if c == nil {
		return
	}
	h.clients.Delete(cl)
	reason := "client disconnected"
	if err != nil {
		reason = err.Error()
	}
	h.g.audit.log(Record{Identity: c.identity, ClientID: cl.ID, Source: c.src, Action: "disconnect", Verdict: "info", Reason: reason})
	h.g.bridge.disconnect(c.sess, h.g.now())
}

// wildcardAll reports a filter matching every topic, or the broker's $SYS tree.
func wildcardAll(f string) bool {
	if strings.HasPrefix(f, "$SYS") && strings.ContainsAny(f, "#+") {
		return true
	}
	for {
		if f == "#" {
			return true
		}
		rest, ok := strings.CutPrefix(f, "+/")
		if !ok {
			return false
		}
		f = rest
	}
}

func (h *hook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	c := h.get(cl)
	if c == nil {
		return false
	}
	g := h.g
	if write {
		for _, f := range c.pubRights {
			if policy.TopicMatch(f, topic) {
				return true
			}
		}
		g.deny(Record{Identity: c.identity, ClientID: cl.ID, Source: c.src, Action: "publish", Topic: topic,
			Reason: "topic outside the identity's publish rights", Code: code(packets.ErrNotAuthorized.Code)}, "not_authorized")
		return false
	}
	// Delivery of a message on a subscription decided before (mochi checks
	// every delivery): allowed. Only filters being subscribed are decided.
	c.mu.Lock()
	deciding := c.subbing[topic]
	delete(c.subbing, topic)
	c.mu.Unlock()
	if !deciding {
		return true
	}
	ok, reason := true, ""
	switch {
	case wildcardAll(topic):
		if ok = g.pol.NamesSubscription(c.identity, topic); !ok {
			reason = "'#' and '$SYS' subscriptions are refused unless the policy names them"
		}
	case !g.pol.MaySubscribe(c.identity, topic):
		ok, reason = false, "filter outside the identity's subscribe rights"
	}
	g.bridge.subscribe(c.sess, topic, ok, g.now())
	if !ok {
		g.deny(Record{Identity: c.identity, ClientID: cl.ID, Source: c.src, Action: "subscribe", Topic: topic, Reason: reason,
			Code: code(packets.ErrNotAuthorized.Code)}, "not_authorized")
		return false
	}
	g.audit.log(Record{Identity: c.identity, ClientID: cl.ID, Source: c.src, Action: "subscribe", Topic: topic, Verdict: "allow"})
	g.metrics.subAllowed.Inc()
	return true
}

// OnSubscribe notes the filters being subscribed, so that OnACLCheck tells
// a subscription from a delivery.
func (h *hook) OnSubscribe(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	if c := h.get(cl); c != nil {
		c.mu.Lock()
		for _, f := range pk.Filters {
			c.subbing[f.Filter] = true
		}
		c.mu.Unlock()
	}
	return pk
}

// refusePublish turns a refused PUBLISH into what each protocol allows: an
// MQTT 5 acknowledgement with the reason code for QoS 1 and 2; for MQTT
// 3.1.1, which has no negative acknowledgement, closing the connection
// rather than leaving a QoS 1 or 2 publisher waiting; QoS 0 is dropped.
func (h *hook) refusePublish(cl *mqtt.Client, c *client, pk packets.Packet, v5 packets.Code, reason, metric string) error {
	qos := pk.FixedHeader.Qos
	rec := Record{Identity: c.identity, ClientID: cl.ID, Source: c.src, Action: "publish", Topic: pk.TopicName, QoS: &qos,
		Bytes: len(pk.Payload), Reason: reason}
	switch {
	case qos > 0 && c.version == 5:
		rec.Code = code(v5.Code)
		h.g.deny(rec, metric)
		return v5
	case qos > 0:
		rec.Reason += "; MQTT 3.1.1 has no negative acknowledgement: connection closed"
		h.g.deny(rec, metric)
		h.g.srv.DisconnectClient(cl, v5)
		return packets.ErrRejectPacket
	}
	rec.Reason += "; QoS 0: dropped"
	h.g.deny(rec, metric)
	return packets.ErrRejectPacket
}

func (h *hook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	c := h.get(cl)
	if c == nil {
		return pk, packets.ErrRejectPacket
	}
	g := h.g
	topic := pk.TopicName
	if g.pol.Sealed(topic) {
		hd, err := seal.Inspect(pk.Payload)
		switch {
		case err != nil:
			return pk, h.refusePublish(cl, c, pk, packets.ErrPayloadFormatInvalid, "sealed topic: the payload is not an iomtguard seal envelope ("+err.Error()+")", "not_sealed")
		case !hd.ForTopic(topic):
			return pk, h.refusePublish(cl, c, pk, packets.ErrPayloadFormatInvalid, "sealed topic: the envelope was sealed for another topic", "not_sealed")
		}
	}
	if pk.FixedHeader.Retain && len(pk.Payload) > 0 && g.pol.RetainRefused(topic) {
		return pk, h.refusePublish(cl, c, pk, packets.ErrRetainNotSupported, "retained messages are refused on this topic", "retain")
	}
	now := g.now()
	c.mu.Lock()
	okRate := c.pubs.take(now, 1)
	okBytes := okRate && c.bytes.take(now, float64(len(pk.Payload)))
	c.mu.Unlock()
	if !okRate {
		return pk, h.refusePublish(cl, c, pk, packets.ErrQuotaExceeded, fmt.Sprintf("over %d publishes a second", g.limits.PublishesPerSecond), "quota")
	}
	if !okBytes {
		return pk, h.refusePublish(cl, c, pk, packets.ErrQuotaExceeded, fmt.Sprintf("over %d payload bytes a second", g.limits.BytesPerSecond), "quota")
	}
	g.metrics.pubAllowed.Inc()
	g.metrics.bytesIn.Add(float64(len(pk.Payload)))
	if g.cfg.AuditPublishes {
		qos := pk.FixedHeader.Qos
		g.audit.log(Record{Identity: c.identity, ClientID: cl.ID, Source: c.src, Action: "publish", Topic: topic, QoS: &qos, Bytes: len(pk.Payload), Verdict: "allow"})
	}
	g.bridge.publish(c.sess, pk, now)
	return pk, nil
}
