package gateway

import (
	"bytes"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// client is the gateway's state of one connected client.
type client struct {
	identity string
	src, ip  string
	version  byte
	since    time.Time
	serial   *big.Int               // the certificate's, for revocation
	rights   atomic.Pointer[rights] // replaced on a policy reload
	pwHash   string                 // the password hash it authenticated with ("" without a password file)

	mu      sync.Mutex
	pubs    *bucket
	bytes   *bucket
	sess    *bridgeSession
	aliases map[uint16]string // MQTT 5 topic aliases from the client, resolved before any check
	cur     pubDecision       // the PUBLISH being processed (OnPacketRead to OnPublish)
	sub     *subDecision      // the SUBSCRIBE being processed (OnSubscribe to OnSubscribed)
	upSubs  []string          // its allowed filters, subscribed upstream once it is processed (OnPacketProcessed)
}

// pubDecision is the verdict on the PUBLISH in flight through the hooks.
type pubDecision struct {
	set   bool
	v     verdict
	topic string
}

// subDecision carries a SUBSCRIBE's verdicts from OnSubscribe (which
// decides) to OnSubscribed (which audits them and makes the SUBACK's reason
// codes exact).
type subDecision struct {
	packetID uint16
	filters  []string
	verdicts []verdict
}

// denyMarker replaces a refused filter in the SUBSCRIBE handed to the
// broker: a filter the broker itself refuses ('#' not last [MQTT-4.7.1-2]),
// so that a refused filter can never be subscribed whatever the broker does
// with the rest. The SUBACK then gets the exact reason code.
const denyMarker = "#/iomtguard-refused"

// hook is the gateway's broker hook: every decision is taken here (after
// the listener's) and audited.
type hook struct {
	mqtt.HookBase
	g       *Gateway
	clients sync.Map // *mqtt.Client -> *client
	// latest is the connection established last for each client ID
	// (OnSessionEstablished to OnDisconnect): a will decided for another
	// connection with that ID was superseded by it (will.go).
	latest sync.Map // client ID -> *mqtt.Client
}

func (h *hook) ID() string { return "iomtguard-gateway" }

func (h *hook) Provides(b byte) bool {
	return bytes.Contains([]byte{mqtt.OnConnect, mqtt.OnConnectAuthenticate, mqtt.OnSessionEstablished, mqtt.OnDisconnect,
		mqtt.OnACLCheck, mqtt.OnPacketRead, mqtt.OnPacketEncode, mqtt.OnPublish, mqtt.OnSubscribe, mqtt.OnSubscribed,
		mqtt.OnUnsubscribed, mqtt.OnWill, mqtt.OnPacketProcessed}, []byte{b})
}

func (h *hook) get(cl *mqtt.Client) *client {
	c, _ := h.clients.Load(cl)
	if c == nil {
		return nil
	}
	return c.(*client)
}

// conn returns the gateway's connection of a broker client (nil for the
// inline client).
func conn(cl *mqtt.Client) *gwConn {
	c, _ := cl.Net.Conn.(*gwConn)
	return c
}

// v3Code maps a refusal to the CONNACK return codes of MQTT 3.1 and 3.1.1
// (1 to 5), which is all those versions define [MQTT-3.2.2.3].
func v3Code(v5 packets.Code) packets.Code {
	switch v5 {
	case packets.ErrBadUsernameOrPassword, packets.ErrMalformedUsername, packets.ErrMalformedPassword:
		return packets.ErrMalformedUsernameOrPassword // 4: bad user name or password
	case packets.ErrConnectionRateExceeded, packets.ErrServerBusy, packets.ErrServerUnavailable, packets.ErrQuotaExceeded:
		return packets.Err3ServerUnavailable // 3
	case packets.ErrClientIdentifierNotValid:
		return packets.Err3ClientIdentifierNotValid // 2
	case packets.ErrUnsupportedProtocolVersion:
		return packets.Err3UnsupportedProtocolVersion // 1
	}
	return packets.Err3NotAuthorized // 5
}

// refuseConnect sends the CONNACK for a refused CONNECT and returns the
// code sent.
func (h *hook) refuseConnect(cl *mqtt.Client, v5 packets.Code) packets.Code {
	c := v5
	if cl.Properties.ProtocolVersion < 5 {
		c = v3Code(v5)
	}
	h.g.srv.SendConnack(cl, c, false, nil)
	return c
}

func (h *hook) OnConnect(cl *mqtt.Client, pk packets.Packet) error {
	g := h.g
	now := g.now()
	gc := conn(cl)
	if gc == nil {
		return packets.ErrNotAuthorized
	}
	gc.connected.Store(true)
	id := gc.identity
	src := cl.Net.Remote
	rec := Record{Identity: id, ClientID: cl.ID, Source: src, Action: "connect"}
	deny := func(v5 packets.Code, reason, rule, metric string) error {
		sent := h.refuseConnect(cl, v5)
		rec.Reason, rec.Rule, rec.Code = reason, rule, code(sent.Code)
		g.deny(rec, metric)
		g.bridge.connect(cl, id, src, pk, sent.Code, now)
		return v5
	}
	if id == "" {
		return deny(packets.ErrNotAuthorized, "no verified client certificate", "tls", "no_identity")
	}
	if b, ok := g.bans.banned("identity:"+id, now); ok {
		return deny(packets.ErrBanned, "identity banned until "+b.Until.UTC().Format(time.RFC3339)+": "+b.Reason, "ban", "banned")
	}
	// One configuration for the whole decision: the rights stored below
	// are trusted while it stays in force (rightsIn), so the revocation
	// and password checks must come from it too.
	cfg := g.cur.Load()
	if gc.leaf != nil && cfg.revoked[gc.leaf.SerialNumber.Text(16)] {
		return deny(packets.ErrNotAuthorized, "client certificate revoked", "crl", "revoked")
	}
	pol, lim := cfg.pol, cfg.lim
	r, known := rightsOf(cfg, id)
	if !known {
		return deny(packets.ErrNotAuthorized, "certified identity "+id+" is not in the policy", "devices", "not_in_policy")
	}
	cid := string(pk.Connect.ClientIdentifier)
	switch {
	case cid == "" && g.cfg.ClientID != "any":
		cl.ID = id // the identity names the session
	case g.cfg.ClientID == "identity" && cid != id,
		g.cfg.ClientID == "prefix" && cid != id && !strings.HasPrefix(cid, id+"-") && !strings.HasPrefix(cid, id+"/"):
		return deny(packets.ErrClientIdentifierNotValid, fmt.Sprintf("client ID %q does not match the certificate identity %q", cid, id), "client_id", "client_id")
	}
	rec.ClientID = cl.ID
	existing, exists := g.srv.Clients.Get(cl.ID)
	if exists {
		// Taking over a session is for the identity that holds it.
		if ec := conn(existing); ec == nil || ec.identity != id {
			return deny(packets.ErrClientIdentifierNotValid, "client ID in use by another identity's session", "client_id", "client_id")
		}
	}
	if !exists && g.srv.Clients.Len() >= lim.MaxSessions {
		return deny(packets.ErrServerBusy, fmt.Sprintf("%d sessions held (limit %d)", g.srv.Clients.Len(), lim.MaxSessions), "limits.max_sessions", "sessions")
	}
	// Keep-alive: Mosquitto's max_keepalive. MQTT 5 clients are told the
	// server's keep-alive [MQTT-3.2.2-21]; MQTT 3.1.1 has no way to tell
	// them, so a longer (or no) keep-alive is refused as Mosquitto does.
	maxKA := uint16(lim.MaxKeepalive.V)
	if ka := pk.Connect.Keepalive; ka == 0 || ka > maxKA {
		if cl.Properties.ProtocolVersion < 5 {
			return deny(packets.ErrClientIdentifierNotValid, fmt.Sprintf("keep-alive %d s: 0 (none) or over the limit of %d s", ka, maxKA), "limits.max_keepalive", "keepalive")
		}
		cl.State.ServerKeepalive = true
		cl.State.Keepalive = maxKA
	}
	// The will is a PUBLISH by this identity, sent later: decided now
	// exactly as one.
	if pk.Connect.WillFlag {
		v := decidePublish(pol, &lim, r, pk.Connect.WillTopic, pk.Connect.WillRetain, pk.Connect.WillPayload)
		if v.ok() && len(pk.Connect.WillPayload) > lim.MaxPacketSize {
			v = verdict{packets.ErrPacketTooLarge, fmt.Sprintf("will payload of %d bytes over the packet limit of %d", len(pk.Connect.WillPayload), lim.MaxPacketSize), "limits.max_packet_size", "will"}
		}
		if !v.ok() {
			rec.Topic = pk.Connect.WillTopic
			return deny(v.code, "will message refused: "+v.reason, v.rule, "will")
		}
	}
	var pwHash string
	if pw := cfg.pw; pw != nil {
		user := string(pk.Connect.Username)
		hash, ok := pw[id]
		if !ok || user != id || !checkPassword(hash, string(pk.Connect.Password)) {
			reason := "bad user name or password"
			if !pk.Connect.PasswordFlag {
				reason = "no password"
			}
			g.authFailed("ip:"+hostOf(src), src, reason)
			g.authFailed("identity:"+id, src, reason)
			return deny(packets.ErrBadUsernameOrPassword, reason, "passwords", "password")
		}
		pwHash = hash
	}
	g.mu.Lock()
	w := g.idRate[id]
	if w == nil {
		if len(g.idRate) > maxTracked {
			clear(g.idRate)
		}
		w = newWindow(lim.ConnectsPerMinutePerIdentity + 1)
		g.idRate[id] = w
	}
	n := w.add(now, time.Minute)
	g.mu.Unlock()
	if n > lim.ConnectsPerMinutePerIdentity {
		reason := fmt.Sprintf("%d connects within a minute (limit %d)", n, lim.ConnectsPerMinutePerIdentity)
		g.ban("identity:"+id, src, reason)
		return deny(packets.ErrConnectionRateExceeded, "flapping: "+reason, "limits.connects_per_minute_per_identity", "flapping")
	}
	c := &client{identity: id, src: src, ip: hostOf(src), version: cl.Properties.ProtocolVersion, since: now, pwHash: pwHash,
		pubs: newBucket(float64(lim.PublishesPerSecond)), bytes: newBucket(float64(lim.BytesPerSecond))}
	if gc.leaf != nil {
		c.serial = gc.leaf.SerialNumber
	}
	c.rights.Store(r)
	h.clients.Store(cl, c)
	return nil
}

func (h *hook) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool {
	// Every check (certificate, policy, password) was made in OnConnect,
	// which sends the exact CONNACK for each refusal.
	return h.get(cl) != nil
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
	c.mu.Lock()
	c.sess = g.bridge.connect(cl, c.identity, c.src, pk, 0, g.now())
	c.mu.Unlock()
	// A new network connection to the session: a will held for this
	// client ID is not sent [MQTT-3.1.3-9], nor one the connection taken
	// over has yet to decide (OnWill).
	h.latest.Store(cl.ID, cl)
	g.wills.withdraw(cl.ID, c.identity)
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
	h.latest.CompareAndDelete(cl.ID, cl)
	c := h.get(cl)
	if c == nil {
		return
	}
	h.clients.Delete(cl)
	reason := "client disconnected"
	if err != nil {
		reason = err.Error()
	}
	if errors.Is(err, ErrMalformed) {
		h.g.deny(Record{Identity: c.identity, ClientID: cl.ID, Source: c.src, Action: "disconnect", Reason: reason + "; connection closed [MQTT-4.13.1]", Rule: "mqtt"}, "malformed")
	} else {
		h.g.audit.log(Record{Identity: c.identity, ClientID: cl.ID, Source: c.src, Action: "disconnect", Verdict: "info", Reason: reason})
	}
	c.mu.Lock()
	s := c.sess
	c.mu.Unlock()
	h.g.bridge.disconnect(s, h.g.now())
}

// OnPacketRead sees every packet first. For a PUBLISH it resolves the
// topic alias and takes the whole decision (rights, limits, sealed
// topics, retained messages, rate), which the later hooks enforce.
func (h *hook) OnPacketRead(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if pk.FixedHeader.Type != packets.Publish {
		return pk, nil
	}
	c := h.get(cl)
	if c == nil {
		return pk, packets.ErrRejectPacket
	}
	g := h.g
	cfg := g.cur.Load()
	lim := cfg.lim
	c.mu.Lock()
	if pk.Properties.TopicAliasFlag && pk.Properties.TopicAlias > 0 {
		// [MQTT-3.3.2-12]: the alias stands for the topic last sent with it.
		if pk.TopicName != "" {
			if c.aliases == nil {
				c.aliases = map[uint16]string{}
			}
			if len(c.aliases) < lim.MaxTopicAliases || c.aliases[pk.Properties.TopicAlias] != "" {
				c.aliases[pk.Properties.TopicAlias] = pk.TopicName
			}
		} else {
			pk.TopicName = c.aliases[pk.Properties.TopicAlias]
		}
	}
	c.mu.Unlock()
	now := g.now()
	v := decidePublish(cfg.pol, &lim, c.rightsIn(cfg), pk.TopicName, pk.FixedHeader.Retain, pk.Payload)
	if v.ok() && pk.FixedHeader.Retain && len(pk.Payload) > 0 {
		if n, full := g.retainedFull(pk.TopicName, lim.MaxRetained); full {
			v = verdict{packets.ErrQuotaExceeded, fmt.Sprintf("%d retained messages held (limit %d)", n, lim.MaxRetained), "limits.max_retained", "retained"}
		}
	}
	if v.ok() {
		c.mu.Lock()
		okRate := c.pubs.take(now, 1)
		okBytes := okRate && c.bytes.take(now, float64(len(pk.Payload)))
		c.mu.Unlock()
		switch {
		case !okRate:
			v = verdict{packets.ErrQuotaExceeded, fmt.Sprintf("over %d publishes a second", lim.PublishesPerSecond), "limits.publishes_per_second", "quota"}
		case !okBytes:
			v = verdict{packets.ErrQuotaExceeded, fmt.Sprintf("over %d payload bytes a second", lim.BytesPerSecond), "limits.bytes_per_second", "quota"}
		}
	}
	c.mu.Lock()
	c.cur = pubDecision{set: true, v: v, topic: pk.TopicName}
	c.mu.Unlock()
	if v.ok() {
		return pk, nil
	}
	qos := pk.FixedHeader.Qos
	h.auditPublishRefusal(cl, c, pk, v)
	if !strings.ContainsAny(pk.TopicName, "+#") && !mqtt.IsValidFilter(pk.TopicName, true) {
		// The broker drops a PUBLISH to $SYS before any hook: answer here.
		// (A wildcard in a topic is a protocol error the broker answers.)
		switch {
		case qos > 0 && c.version == 5:
			h.ack(cl, pk, v.code)
		case qos > 0:
			return pk, packets.ErrRejectPacket // closes the connection: 3.1.1 has no negative acknowledgement
		}
	}
	return pk, nil
}

// auditPublishRefusal writes the refusal with what the client is told.
func (h *hook) auditPublishRefusal(cl *mqtt.Client, c *client, pk packets.Packet, v verdict) {
	qos := pk.FixedHeader.Qos
	rec := Record{Identity: c.identity, ClientID: cl.ID, Source: c.src, Action: "publish", Topic: pk.TopicName, QoS: &qos,
		Bytes: len(pk.Payload), Reason: v.reason, Rule: v.rule}
	switch {
	case qos > 0 && c.version == 5:
		rec.Code = code(v.code.Code)
	case qos > 0:
		rec.Reason += "; MQTT 3.1.1 has no negative acknowledgement: connection closed"
	default:
		rec.Reason += "; QoS 0: dropped"
	}
	h.g.deny(rec, v.metric)
}

// ack answers a refused MQTT 5 PUBLISH with its reason code: PUBACK for QoS
// 1, PUBREC for QoS 2 [MQTT-3.3.4-1].
func (h *hook) ack(cl *mqtt.Client, pk packets.Packet, c packets.Code) {
	typ := byte(packets.Puback)
	if pk.FixedHeader.Qos == 2 {
		typ = packets.Pubrec
	}
	cl.WritePacket(packets.Packet{FixedHeader: packets.FixedHeader{Type: typ}, PacketID: pk.PacketID, ReasonCode: c.Code,
		Properties: packets.Properties{ReasonString: c.Reason}})
}

// OnPacketEncode sees every packet the broker sends. MQTT 3.1 and 3.1.1
// define no DISCONNECT from the server [MQTT-3.14]: for them it becomes
// nothing (the connection is then closed without it).
func (h *hook) OnPacketEncode(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	if pk.FixedHeader.Type == packets.Disconnect && cl.Properties.ProtocolVersion < 5 {
		pk.FixedHeader.Type = packets.Reserved // fails to encode: nothing is written
	}
	return pk
}

// OnACLCheck is the broker's check of a PUBLISH (write) and of a filter
// being subscribed or a message being delivered (read). Its answers come
// from the identity's rights alone, so it cannot be led to a grant; the
// decisions with their exact reason codes and audit lines are taken in
// OnPacketRead and OnSubscribe.
func (h *hook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	c := h.get(cl)
	if c == nil {
		return false
	}
	cfg := h.g.cur.Load()
	lim := cfg.lim
	r := c.rightsIn(cfg)
	if write {
		c.mu.Lock()
		cur := c.cur
		c.mu.Unlock()
		if cur.set && cur.topic == topic {
			// Decided in OnPacketRead from the same rights; a refusal is
			// sent in OnPublish with its exact reason code.
			return true
		}
		return checkTopicName(topic, &lim).ok() && r.mayPublish(topic)
	}
	return mayRead(&lim, r, topic)
}

// OnSubscribe decides each filter of a SUBSCRIBE: the rights, and the
// limits on filters per packet, subscriptions per client and filter
// length. A refused filter is replaced, in what the broker sees, by one it
// cannot subscribe; a filter sent twice is decided twice, the same way.
func (h *hook) OnSubscribe(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	c := h.get(cl)
	if c == nil {
		for i := range pk.Filters {
			pk.Filters[i].Filter = denyMarker
		}
		return pk
	}
	cfg := h.g.cur.Load()
	lim := cfg.lim
	r := c.rightsIn(cfg)
	d := &subDecision{packetID: pk.PacketID, filters: make([]string, len(pk.Filters)), verdicts: make([]verdict, len(pk.Filters))}
	held := cl.State.Subscriptions.Len()
	adding := map[string]bool{}
	for i := range pk.Filters {
		f := pk.Filters[i].Filter
		d.filters[i] = f
		v := decideSubscribe(&lim, r, f)
		if v.ok() {
			if i >= lim.MaxFiltersPerSubscribe {
				v = verdict{packets.ErrQuotaExceeded, fmt.Sprintf("more than %d filters in one SUBSCRIBE", lim.MaxFiltersPerSubscribe), "limits.max_filters_per_subscribe", "subscriptions"}
			} else if _, ok := cl.State.Subscriptions.Get(f); !ok && !adding[f] {
				if held+len(adding) >= lim.MaxSubscriptionsPerClient {
					v = verdict{packets.ErrQuotaExceeded, fmt.Sprintf("%d subscriptions held (limit %d per client)", held+len(adding), lim.MaxSubscriptionsPerClient), "limits.max_subscriptions_per_client", "subscriptions"}
				} else {
					adding[f] = true
				}
			}
		}
		d.verdicts[i] = v
		if !v.ok() {
			pk.Filters[i].Filter = denyMarker
		}
	}
	c.mu.Lock()
	c.sub = d
	c.mu.Unlock()
	return pk
}

// OnSubscribed audits each filter with the code the broker settled on and
// puts the exact reason code of each filter the gateway refused into the
// SUBACK (codes is the SUBACK's own list, written after this hook).
func (h *hook) OnSubscribed(cl *mqtt.Client, pk packets.Packet, codes []byte) {
	c := h.get(cl)
	if c == nil {
		return
	}
	g := h.g
	c.mu.Lock()
	d := c.sub
	s := c.sess
	c.mu.Unlock()
	if d == nil || d.packetID != pk.PacketID || len(d.filters) != len(codes) {
		return
	}
	now := g.now()
	for i, f := range d.filters {
		v := d.verdicts[i]
		rec := Record{Identity: c.identity, ClientID: cl.ID, Source: c.src, Action: "subscribe", Topic: f}
		switch {
		case !v.ok():
			codes[i] = v.code.Code
			if c.version < 5 {
				codes[i] = packets.ErrUnspecifiedError.Code // 0x80: the only failure code of 3.1.1 [MQTT-3.9.3]
			}
			rec.Reason, rec.Rule, rec.Code = v.reason, v.rule, code(codes[i])
			g.deny(rec, v.metric)
		case codes[i] >= packets.ErrUnspecifiedError.Code:
			rec.Reason, rec.Rule, rec.Code = brokerRefusal(codes[i]), "mqtt", code(codes[i])
			g.deny(rec, "invalid")
		default:
			rec.Verdict, rec.Code = "allow", code(codes[i])
			g.audit.log(rec)
			g.metrics.subAllowed.Inc()
			if g.up != nil {
				c.mu.Lock()
				c.upSubs = append(c.upSubs, f)
				c.mu.Unlock()
			}
		}
		g.bridge.subscribe(s, f, v.ok() && codes[i] < 0x80, now)
	}
	c.mu.Lock()
	if c.sub == d {
		c.sub = nil
	}
	c.mu.Unlock()
}

// brokerRefusal names a SUBACK code the broker chose itself.
func brokerRefusal(c byte) string {
	switch c {
	case packets.ErrTopicFilterInvalid.Code:
		return "invalid topic filter [MQTT-4.7.1]"
	case packets.ErrPacketIdentifierInUse.Code:
		return "packet identifier in use [MQTT-2.2.1-3]"
	case packets.ErrProtocolViolationInvalidSharedNoLocal.Code:
		return "no-local on a shared subscription [MQTT-3.8.3-4]"
	}
	return fmt.Sprintf("refused by the broker (reason code 0x%02x)", c)
}

// OnPacketProcessed subscribes upstream the filters of a SUBSCRIBE once
// the broker has finished it, retained messages included. Upstream answers
// a subscription with its retained messages; one that arrived while the
// broker was between adding the subscription and reading its retained
// store reached the client twice (live, then from the store), which a
// loaded machine made happen. Now a retained message from upstream is
// either in the store already (and not delivered again, see receive) or
// arrives after the client's retained delivery and is delivered once.
func (h *hook) OnPacketProcessed(cl *mqtt.Client, pk packets.Packet, _ error) {
	if pk.FixedHeader.Type != packets.Subscribe || h.g.up == nil {
		return
	}
	c := h.get(cl)
	if c == nil {
		return
	}
	c.mu.Lock()
	fs := c.upSubs
	c.upSubs = nil
	c.mu.Unlock()
	for _, f := range fs {
		h.g.upstreamSubscribe(cl.ID, f)
	}
}

// OnUnsubscribed releases upstream subscriptions no local client needs.
func (h *hook) OnUnsubscribed(cl *mqtt.Client, pk packets.Packet) {
	for _, f := range pk.Filters {
		h.g.upstreamUnsubscribe(cl.ID, f.Filter)
	}
}

// OnPublish enforces the verdict OnPacketRead took for this PUBLISH:
// refused ones get their exact reason code (MQTT 5), a closed connection
// (MQTT 3.1.1 QoS 1 and 2) or are dropped (QoS 0).
func (h *hook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if cl.Net.Inline {
		return pk, nil // the upstream relay delivering what upstream sent
	}
	c := h.get(cl)
	if c == nil {
		return pk, packets.ErrRejectPacket
	}
	g := h.g
	c.mu.Lock()
	cur := c.cur
	c.cur = pubDecision{}
	s := c.sess
	c.mu.Unlock()
	if !cur.set || cur.topic != pk.TopicName {
		// Not decided by OnPacketRead (cannot happen for a client's
		// PUBLISH): fail closed.
		cur.v = verdict{packets.ErrNotAuthorized, "publish not decided", "gateway", "not_authorized"}
		h.auditPublishRefusal(cl, c, pk, cur.v)
	}
	if !cur.v.ok() {
		qos := pk.FixedHeader.Qos
		switch {
		case qos == 2 && c.version == 5:
			h.ack(cl, pk, cur.v.code) // the broker would send a PUBACK [MQTT-4.3.3]
			return pk, packets.ErrRejectPacket
		case qos == 1 && c.version == 5:
			return pk, cur.v.code
		case qos > 0:
			cl.Stop(cur.v.code)
		}
		return pk, packets.ErrRejectPacket
	}
	g.metrics.pubAllowed.Inc()
	g.metrics.bytesIn.Add(float64(len(pk.Payload)))
	if g.cfg.AuditPublishes {
		qos := pk.FixedHeader.Qos
		g.audit.log(Record{Identity: c.identity, ClientID: cl.ID, Source: c.src, Action: "publish", Topic: pk.TopicName, QoS: &qos, Bytes: len(pk.Payload), Verdict: "allow"})
	}
	g.bridge.publish(s, pk, g.now())
	if g.up != nil {
		// Upstream mode: the hospital's broker delivers (and retains); the
		// local broker only acknowledges.
		g.up.publish(pk)
		return pk, packets.CodeSuccessIgnore
	}
	return pk, nil
}

// OnWill checks a will once more as it is sent, against the
// configuration in force then: a will refused now goes to a topic no one
// can receive; one with a delay is held by the gateway and decided again
// when the delay ends (will.go).
func (h *hook) OnWill(cl *mqtt.Client, will mqtt.Will) (mqtt.Will, error) {
	gc := conn(cl)
	g := h.g
	if gc == nil {
		return will, nil
	}
	cfg := g.cur.Load()
	var serial *big.Int
	if gc.leaf != nil {
		serial = gc.leaf.SerialNumber
	}
	pwHash := ""
	if c := h.get(cl); c != nil {
		serial, pwHash = c.serial, c.pwHash
	}
	refused := mqtt.Will{TopicName: refusedWill, Qos: 0, Flag: 1}
	rec := Record{Identity: gc.identity, ClientID: cl.ID, Source: cl.Net.Remote, Action: "publish", Topic: will.TopicName}
	delay := will.WillDelayInterval
	if cl.Properties.ProtocolVersion >= 5 {
		delay = min(delay, cl.Properties.Props.SessionExpiryInterval) // [MQTT-3.1.2-8]
	}
	// mochi sends what this returns now and queues nothing (will.go).
	cl.Properties.Will.WillDelayInterval = 0
	if delay > 0 {
		if cur, ok := h.latest.Load(cl.ID); ok && cur != cl {
			rec.Verdict, rec.Reason = "info", "will message not sent: a new connection to the session within the will delay [MQTT-3.1.3-9]"
			g.audit.log(rec)
			return refused, nil
		}
	}
	if v := g.decideWill(cfg, gc.identity, serial, pwHash, will); !v.ok() {
		rec.Reason, rec.Rule = "will message not sent: "+v.reason, v.rule
		g.deny(rec, "will")
		return refused, nil
	}
	if delay > 0 {
		max := cfg.lim.MaxSessions
		if max <= 0 {
			max = maxHeldWills
		}
		w := newHeldWill(gc.identity, cl.ID, cl.Net.Remote, pwHash, serial, will)
		switch g.wills.hold(w, time.Duration(delay)*time.Second, max, maxHeldWillsPerIdentity, maxHeldWillBytes, g.sendHeldWill) {
		case heldFull:
			rec.Reason = fmt.Sprintf("will message not sent: delayed wills held at their limit (%d, %d for one identity, %d MiB)", max, maxHeldWillsPerIdentity, maxHeldWillBytes>>20)
			rec.Rule = "limits.max_sessions"
			g.deny(rec, "will")
		case heldClosed:
			rec.Verdict, rec.Reason = "info", "delayed will message not sent: the gateway is stopping"
			g.audit.log(rec)
		}
		return refused, nil
	}
	if g.up != nil {
		g.sendWill(will)
		return refused, nil
	}
	return will, nil
}

// refusedWill is where a will refused at send time goes: a '$' topic that
// no wildcard matches and no right names.
const refusedWill = "$iomtguard/refused-will"

// forEach calls fn for every connected client.
func (h *hook) forEach(fn func(cl *mqtt.Client, c *client)) {
	h.clients.Range(func(k, v any) bool {
		fn(k.(*mqtt.Client), v.(*client))
		return true
	})
}
