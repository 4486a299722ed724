package detect

import (
	"crypto/tls"
	"fmt"
	"net/netip"
	"sort"
	"strings"

	"github.com/iomtguard/iomtguard/internal/mqtt"
	"github.com/iomtguard/iomtguard/internal/pipeline"
	"github.com/iomtguard/iomtguard/internal/policy"
	"github.com/iomtguard/iomtguard/internal/stats"
	"github.com/iomtguard/iomtguard/internal/tcpstream"
)

// --- posture.cleartext-mqtt, posture.cleartext-credentials --------------------

var cleartextSpec = Spec{
	Name: "cleartext",
	IDs:  []string{"posture.cleartext-mqtt", "posture.cleartext-credentials"},
	Rule: "Every MQTT session iomtguard can decode ran without TLS: it is reported as cleartext MQTT (MQTT inside " +
		"WebSocket on plain HTTP too). A CONNECT with the password flag set on such a session sent its password in " +
		"the clear (the password itself is never kept).",
	New: newCleartext,
}

type cleartext struct {
	pipeline.Nop
	tab              *sessTable
	sessions         int64
	websocket        int64 // of them over WebSocket
	brokers, clients map[string]bool
	span             span
	frames           exemplars
	creds            int64
	users, credIDs   map[string]bool
	credIDsSeen      stats.Distinct // every client ID that sent a password (credIDs keeps 1,000)
	credSpan         span
	credFrames       exemplars
}

func newCleartext(e *Env) Detector {
	return &cleartext{tab: e.sessions, brokers: map[string]bool{}, clients: map[string]bool{}, users: map[string]bool{}, credIDs: map[string]bool{}}
}

func (*cleartext) uses() events { return evMQTT }

func (c *cleartext) OnMQTT(m *pipeline.MQTT) {
	t := m.Frame.TS
	if st := c.tab.cur; !st.counted {
		st.counted = true
		c.sessions++
		if m.Session.Transport == pipeline.TransportWebSocket {
			c.websocket++
		}
		if len(c.brokers) < 1000 {
			c.brokers[brokerEnd(m).String()] = true
		}
		c.span.add(t)
		c.frames.add(m.Frame.Num)
	}
	c.span.add(t)
	p := m.Pkt
	if p.Type != mqtt.CONNECT || !m.FromClient {
		return
	}
	if len(c.clients) < 1000 {
		c.clients[idString(m.Session.ClientID)] = true
	}
	if p.PasswordPresent() {
		c.creds++
		if u := p.Username; len(u) > 0 && len(c.users) < 1000 {
			c.users[printable(string(u), 64)] = true
		}
		id := idString(m.Session.ClientID)
		if len(c.credIDs) < 1000 {
			c.credIDs[id] = true
		}
		c.credIDsSeen.Add(stats.Hash(id))
		c.credSpan.add(t)
		c.credFrames.add(m.Frame.Num)
	}
}

func (c *cleartext) Findings(Models) []Finding {
	if c.sessions == 0 {
		return nil
	}
	ev := Evidence{Counts: map[string]int64{"sessions": c.sessions}, Targets: sorted(c.brokers, 20), ClientIDs: sorted(c.clients, 30), Frames: c.frames}
	if c.websocket > 0 {
		ev.Counts["over_websocket"] = c.websocket
		ev.Notes = append(ev.Notes, fmt.Sprintf("%s carried MQTT inside WebSocket on plain HTTP (ws://): as readable as MQTT on 1883; use wss:// (TLS)", plural(c.websocket, "session")))
	}
	f := newFinding("posture.cleartext-mqtt", c.span.first, c.span.last, ev)
	f.Title = fmt.Sprintf("MQTT in cleartext: %s with %s", plural(c.sessions, "session"), joinSet(c.brokers, 3))
	out := []Finding{f}
	if c.creds > 0 {
		ev := Evidence{Counts: map[string]int64{"connects_with_password": c.creds}, Usernames: sorted(c.users, 30),
			ClientIDs: sorted(c.credIDs, 30), Targets: sorted(c.brokers, 20), Frames: c.credFrames,
			Notes: []string{"the passwords are not shown; treat every one of them as exposed"}}
		f := newFinding("posture.cleartext-credentials", c.credSpan.first, c.credSpan.last, ev)
		// Past the 1,000 kept, the number of clients is estimated (it said
		// 1,000 for 300,000 clients).
		clients := plural(int64(len(c.credIDs)), "client")
		if len(c.credIDs) >= 1000 {
			clients = fmt.Sprintf("about %s", plural(max(c.credIDsSeen.Estimate(), 1000), "client"))
		}
		f.Title = fmt.Sprintf("Passwords sent in cleartext: %s from %s", plural(c.creds, "CONNECT"), clients)
		out = append(out, f)
	}
	return out
}

// --- posture.anonymous-access ------------------------------------------------

var anonymousSpec = Spec{
	Name: "anonymous",
	IDs:  []string{"posture.anonymous-access"},
	Rule: "A CONNECT with neither user name nor password (nor an MQTT 5 authentication method) that the broker " +
		"accepted: a CONNACK with code 0, or, when the CONNACK was not captured, further packets from the client.",
	New: newAnonymous,
}

type anonPending struct {
	frame int  // the anonymous CONNECT
	more  bool // the client sent more packets
}

type anonymous struct {
	pipeline.Nop
	pending  map[*pipeline.Session]*anonPending
	sessions int64
	inferred int64
	clients  map[string]bool
	brokers  map[string]bool
	span     span
	frames   exemplars
}

func newAnonymous(*Env) Detector {
	return &anonymous{pending: map[*pipeline.Session]*anonPending{}, clients: map[string]bool{}, brokers: map[string]bool{}}
}

func (*anonymous) uses() events { return evMQTT | evFlow }

func (a *anonymous) accept(s *pipeline.Session, broker string, t int64, frame int) {
	delete(a.pending, s)
	a.sessions++
	if len(a.clients) < 1000 {
		a.clients[idString(s.ClientID)] = true
	}
	if len(a.brokers) < 1000 {
		a.brokers[broker] = true
	}
	a.span.add(t)
	a.frames.add(frame)
}

func (a *anonymous) OnMQTT(m *pipeline.MQTT) {
	p := m.Pkt
	switch {
	case p.Type == mqtt.CONNECT && m.FromClient:
		anon := p.ConnectFlags&0xc0 == 0 && !p.Props.Has(mqtt.PropAuthMethod)
		if anon && len(a.pending) < maxKeys {
			a.pending[m.Session] = &anonPending{frame: m.Frame.Num}
		} else {
			delete(a.pending, m.Session)
		}
	case p.Type == mqtt.CONNACK && !m.FromClient:
		if pd, ok := a.pending[m.Session]; ok {
			if p.ReasonCode == 0 {
				a.accept(m.Session, brokerEnd(m).String(), m.Frame.TS, pd.frame)
			} else {
				delete(a.pending, m.Session)
			}
		}
	case m.FromClient && p.Type != mqtt.DISCONNECT:
		if pd, ok := a.pending[m.Session]; ok {
			pd.more = true
		}
	}
}

// OnFlow decides the sessions whose CONNACK was never captured: accepted
// when the client went on sending (a broker closes a refused connection).
func (a *anonymous) OnFlow(f *pipeline.Flow) {
	if f.Kind != pipeline.FlowClosed || f.Session == nil {
		return
	}
	pd, ok := a.pending[f.Session]
	if !ok {
		return
	}
	if pd.more && !f.Session.ConnAck {
		a.inferred++
		a.accept(f.Session, f.Conn.Dst(f.Session.ClientDir).String(), f.Conn.Start, pd.frame)
	}
	delete(a.pending, f.Session)
}

func (a *anonymous) Findings(Models) []Finding {
	if a.sessions == 0 {
		return nil
	}
	ev := Evidence{Counts: map[string]int64{"anonymous_sessions": a.sessions}, ClientIDs: sorted(a.clients, 30), Targets: sorted(a.brokers, 10), Frames: a.frames}
	if a.inferred > 0 {
		ev.Notes = append(ev.Notes, fmt.Sprintf("%d of them without a captured CONNACK: accepted, since the client went on sending", a.inferred))
	}
	f := newFinding("posture.anonymous-access", a.span.first, a.span.last, ev)
	f.Title = fmt.Sprintf("Anonymous access: %s accepted %s without credentials", joinSet(a.brokers, 2), plural(a.sessions, "session"))
	return []Finding{f}
}

// --- posture.legacy-protocol --------------------------------------------------

var legacySpec = Spec{
	Name: "legacy-protocol",
	IDs:  []string{"posture.legacy-protocol"},
	Rule: "A CONNECT with protocol level 3 (MQTT 3.1, protocol name MQIsdp).",
	New:  func(*Env) Detector { return &legacy{clients: map[string]bool{}} },
}

type legacy struct {
	pipeline.Nop
	n       int64
	clients map[string]bool
	span    span
	frames  exemplars
}

func (*legacy) uses() events { return evMQTT }

func (l *legacy) OnMQTT(m *pipeline.MQTT) {
	p := m.Pkt
	if p.Type == mqtt.CONNECT && m.FromClient && p.Has(mqtt.FieldProtocol) && p.ProtocolLevel == 3 {
		l.n++
		if len(l.clients) < 1000 {
			l.clients[idString(m.Session.ClientID)] = true
		}
		l.span.add(m.Frame.TS)
		l.frames.add(m.Frame.Num)
	}
}

func (l *legacy) Findings(Models) []Finding {
	if l.n == 0 {
		return nil
	}
	ev := Evidence{Counts: map[string]int64{"connects": l.n}, ClientIDs: sorted(l.clients, 30), Frames: l.frames}
	f := newFinding("posture.legacy-protocol", l.span.first, l.span.last, ev)
	f.Title = fmt.Sprintf("MQTT 3.1 in use by %s", plural(int64(len(l.clients)), "client"))
	return []Finding{f}
}

// --- posture.weak-tls ---------------------------------------------------------

var weakTLSSpec = Spec{
	Name: "weak-tls",
	IDs:  []string{"posture.weak-tls"},
	Rule: "A TLS session that negotiated a version below 1.2 (or below the policy's tls.min_version), a cipher " +
		"suite with known weaknesses (NULL, export, anonymous, RC4, DES or 3DES, CBC with SHA-256), or, when the " +
		"policy sets tls.require_client_cert, a TLS 1.2 handshake in which the server asked for no client " +
		"certificate or the client sent none (TLS 1.3 hides this).",
	New: func(e *Env) Detector {
		return &weakTLS{env: e, reasons: map[string]int64{}, servers: map[string]bool{}}
	},
}

type weakTLS struct {
	pipeline.Nop
	env     *Env
	reasons map[string]int64
	servers map[string]bool
	span    span
	severe  bool
}

func (*weakTLS) uses() events { return evFlow }

var versionNames = map[uint16]string{0x0300: "SSL 3.0", 0x0301: "TLS 1.0", 0x0302: "TLS 1.1", 0x0303: "TLS 1.2", 0x0304: "TLS 1.3"}

// weakSuite names a cipher suite with known weaknesses.
func weakSuite(id uint16) (string, bool) {
	for _, s := range tls.InsecureCipherSuites() {
		if s.ID == id {
			return s.Name, true
		}
	}
	switch {
	case id <= 0x0002 || (id >= 0x002c && id <= 0x002e) || id == 0x003b || id == 0xc001 || id == 0xc006 || id == 0xc00b || id == 0xc010 || id == 0xc015:
		return fmt.Sprintf("NULL cipher 0x%04x", id), true
	case id >= 0x0003 && id <= 0x001b:
		return fmt.Sprintf("export, anonymous or DES suite 0x%04x", id), true
	case id == 0x0034 || id == 0x003a || id == 0x006c || id == 0x006d || (id >= 0xc016 && id <= 0xc019):
		return fmt.Sprintf("anonymous suite 0x%04x", id), true
	}
	return "", false
}

func (w *weakTLS) OnFlow(f *pipeline.Flow) {
	if f.Kind != pipeline.FlowClosed || f.TLS == nil || f.TLS.Version == 0 {
		return
	}
	hs := f.TLS
	server := f.Conn.B.String()
	var why []string
	min := uint16(0x0303)
	if w.env.Policy.TLS.MinVersion == "1.3" {
		min = 0x0304
	}
	if hs.Version < min {
		name := versionNames[hs.Version]
		if name == "" {
			name = fmt.Sprintf("0x%04x", hs.Version)
		}
		why = append(why, name)
		w.severe = w.severe || hs.Version < 0x0303
	}
	if name, weak := weakSuite(hs.Suite); weak {
		why = append(why, name)
		w.severe = true
	}
	if w.env.Policy.TLS.RequireClientCert && hs.Version <= 0x0303 {
		switch {
		case !hs.CertRequested:
			why = append(why, "no client certificate requested")
		case hs.ClientCertSeen && !hs.ClientCertSent:
			why = append(why, "client sent no certificate")
		}
	}
	if len(why) == 0 {
		return
	}
	for _, r := range why {
		w.reasons[r]++
	}
	if len(w.servers) < 1000 {
		w.servers[server] = true
	}
	w.span.add(f.Conn.Start)
	w.span.add(f.Conn.Last)
}

func (w *weakTLS) Findings(Models) []Finding {
	if len(w.reasons) == 0 {
		return nil
	}
	ev := Evidence{Counts: map[string]int64{}, Targets: sorted(w.servers, 20)}
	var rs []string
	for r, n := range w.reasons {
		ev.Counts[r] = n
		rs = append(rs, r)
	}
	sort.Strings(rs)
	f := newFinding("posture.weak-tls", w.span.first, w.span.last, ev)
	if w.severe {
		f.Severity = High
	}
	f.Title = "Weak TLS: " + strings.Join(rs, ", ")
	return []Finding{f}
}

// --- posture.unknown-peer, posture.segmentation-violation ---------------------

var inventorySpec = Spec{
	Name: "inventory",
	IDs:  []string{"posture.unknown-peer", "posture.segmentation-violation"},
	Rule: "Only with a policy. With inventory.hosts, any unicast address in a frame that the inventory does not " +
		"list is an unknown peer; with inventory.clients, any client ID it does not list. With zones, a TCP " +
		"connection between two zones (hosts in no zone are in zone 'other') on a port that no flows rule " +
		"allows is a segmentation violation.",
	New: newInventory,
}

type peerInfo struct {
	frames int64
	first  int
	ts     int64
}

type flowPair struct {
	from, to string
	port     uint16
}

type inventory struct {
	pipeline.Nop
	p           *policy.Policy
	hosts       bool
	known       map[netip.Addr]bool
	unknown     map[netip.Addr]*peerInfo
	ids         map[string]*peerInfo
	violations  map[flowPair]*violation
	span, vspan span
}

type violation struct {
	n      int64
	ex     string
	frames exemplars
}

func newInventory(e *Env) Detector {
	return &inventory{p: e.Policy, hosts: len(e.Policy.Inventory.Hosts) > 0, known: map[netip.Addr]bool{},
		unknown: map[netip.Addr]*peerInfo{}, ids: map[string]*peerInfo{}, violations: map[flowPair]*violation{}}
}

func (i *inventory) uses() events {
	var ev events
	if i.hosts {
		ev |= evFrame
	}
	if len(i.p.Inventory.Clients) > 0 {
		ev |= evMQTT
	}
	if len(i.p.Zones) > 0 {
		ev |= evFlow
	}
	return ev
}

// Peer reports whether a is an address the inventory judges: a unicast
// host (not multicast, unspecified or the limited broadcast). Whoever
// learns an inventory for this detector (policy suggest) counts the same.
func Peer(a netip.Addr) bool {
	return a.IsValid() && !a.IsMulticast() && !a.IsUnspecified() && a != netip.AddrFrom4([4]byte{255, 255, 255, 255})
}

// JudgedFlow reports whether the segmentation rule judges a connection:
// one that got an answer or carried data (unanswered attempts are scans'
// business). Whoever learns flows for it (policy suggest) counts the same.
func JudgedFlow(c *tcpstream.Conn) bool {
	return c.Stat[tcpstream.FromB].Packets > 0 || c.Stat[tcpstream.FromA].Payload > 0
}

func (i *inventory) host(a netip.Addr, f *pipeline.Frame) {
	if !Peer(a) {
		return
	}
	known, ok := i.known[a]
	if !ok {
		known = i.p.KnownHost(a)
		if len(i.known) < maxKeys {
			i.known[a] = known
		}
	}
	if known {
		return
	}
	u := i.unknown[a]
	if u == nil {
		if len(i.unknown) >= 10000 {
			return
		}
		u = &peerInfo{first: f.Num, ts: f.TS}
		i.unknown[a] = u
	}
	u.frames++
	i.span.add(f.TS)
}

func (i *inventory) OnFrame(f *pipeline.Frame) {
	if f.L == nil || f.L.IPVersion == 0 {
		return
	}
	i.host(f.L.Src.Unmap(), f)
	i.host(f.L.Dst.Unmap(), f)
}

func (i *inventory) OnMQTT(m *pipeline.MQTT) {
	if m.Pkt.Type != mqtt.CONNECT || !m.FromClient || len(i.p.Inventory.Clients) == 0 {
		return
	}
	id := m.Session.ClientID
	if i.p.KnownClient(id) {
		return
	}
	u := i.ids[id]
	if u == nil {
		if len(i.ids) >= 10000 {
			return
		}
		u = &peerInfo{first: m.Frame.Num, ts: m.Frame.TS}
		i.ids[id] = u
	}
	u.frames++
	i.span.add(m.Frame.TS)
}

func (i *inventory) OnFlow(f *pipeline.Flow) {
	if f.Kind != pipeline.FlowClosed || len(i.p.Zones) == 0 {
		return
	}
	c := f.Conn
	if !JudgedFlow(c) {
		return
	}
	za, zb := i.p.ZoneOf(c.A.Addr()), i.p.ZoneOf(c.B.Addr())
	if i.p.FlowAllowed(za, zb, c.B.Port()) {
		return
	}
	k := flowPair{za, zb, c.B.Port()}
	v := i.violations[k]
	if v == nil {
		if len(i.violations) >= 10000 {
			return
		}
		v = &violation{ex: fmt.Sprintf("%s → %s", c.A, c.B)}
		i.violations[k] = v
	}
	v.n++
	v.frames.add(c.FirstFrame)
	i.vspan.add(c.Start)
}

func (i *inventory) Findings(Models) []Finding {
	var out []Finding
	if len(i.unknown) > 0 || len(i.ids) > 0 {
		ev := Evidence{Counts: map[string]int64{"unknown_hosts": int64(len(i.unknown)), "unknown_client_ids": int64(len(i.ids))}}
		addrs := make([]netip.Addr, 0, len(i.unknown))
		for a := range i.unknown {
			addrs = append(addrs, a)
		}
		sort.Slice(addrs, func(x, y int) bool {
			return i.unknown[addrs[x]].frames > i.unknown[addrs[y]].frames || i.unknown[addrs[x]].frames == i.unknown[addrs[y]].frames && addrs[x].Less(addrs[y])
		})
		var frames exemplars
		for n, a := range addrs {
			if n < 20 {
				ev.Sources = append(ev.Sources, a.String())
				ev.Notes = append(ev.Notes, fmt.Sprintf("host %s: %d frames from %s", a, i.unknown[a].frames, fmtTime(i.unknown[a].ts)))
			}
			frames.add(i.unknown[a].first)
		}
		ids := map[string]bool{}
		for id, u := range i.ids {
			ids[printable(id, 64)] = true
			frames.add(u.first)
		}
		sort.Ints(frames)
		ev.ClientIDs, ev.Frames = sorted(ids, 30), frames
		f := newFinding("posture.unknown-peer", i.span.first, i.span.last, ev)
		f.Title = fmt.Sprintf("%d hosts and %d client IDs outside the inventory", len(i.unknown), len(i.ids))
		out = append(out, f)
	}
	if len(i.violations) > 0 {
		ev := Evidence{Counts: map[string]int64{}}
		keys := make([]flowPair, 0, len(i.violations))
		for k := range i.violations {
			keys = append(keys, k)
		}
		sort.Slice(keys, func(x, y int) bool { return i.violations[keys[x]].n > i.violations[keys[y]].n })
		var total int64
		var frames exemplars
		for n, k := range keys {
			v := i.violations[k]
			total += v.n
			for _, fr := range v.frames {
				frames.add(fr)
			}
			if n < 20 {
				ev.Notes = append(ev.Notes, fmt.Sprintf("%s → %s port %d: %d connections (e.g. %s)", k.from, k.to, k.port, v.n, v.ex))
			}
		}
		ev.Counts["connections"] = total
		sort.Ints(frames)
		ev.Frames = frames
		f := newFinding("posture.segmentation-violation", i.vspan.first, i.vspan.last, ev)
		f.Title = fmt.Sprintf("Segmentation violations: %d connections on %d zone paths the policy does not allow", total, len(keys))
		out = append(out, f)
	}
	return out
}
