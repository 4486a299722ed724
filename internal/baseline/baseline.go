// Package baseline learns how each MQTT device of a network normally
// behaves, online and without labels, and scores later behaviour against
// it: the input of the anomaly.device-behaviour detector.
//
// A device is an MQTT client ID. Its traffic is cut into windows of one
// minute of capture time; each window gives a vector of features (Features:
// publishes, payload sizes, topics and new topics, period, QoS and retain
// use, subscriptions, connections, peers and new peers). Learning keeps,
// per device, the mean and variance of each feature over its windows
// (Welford), its topics and its peers, and the same pooled over devices of
// the same shape (the client ID with its digits replaced: bed7-pump is
// scored against bed#-pump when it has no profile of its own). A window is
// then described by how far each feature is from the device's normal, in
// standard deviations, at two time scales (the window itself, and a damped
// average with a half-life of ten windows), and an isolation forest (Liu,
// Ting, Zhou, ICDM 2008) trained on the learning period's windows scores
// how unusual that description is. The alarm threshold is the highest
// score of learning windows the forest did not see (every other window is
// held out), so the learning period itself raises no alarm.
//
// The package takes pipeline events and returns numbers and words; it does
// no I/O except Save and Load.
package baseline

import (
	"fmt"
	"math"
	"net/netip"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/iomtguard/iomtguard/internal/mqtt"
	"github.com/iomtguard/iomtguard/internal/pipeline"
	"github.com/iomtguard/iomtguard/internal/tcpstream"
	"github.com/iomtguard/iomtguard/internal/tlsinfo"
)

// Window is the length of a scored window of capture time.
const Window = time.Minute

// The features of a window, in Vector order.
const (
	FPublishes = iota
	FPayloadMean
	FPayloadMax
	FTopics
	FNewTopics
	FPeriod
	FQoSShare
	FRetained
	FSubscribes
	FConnects
	FPeers
	FNewPeers
	NumFeatures
)

// Features names the features.
var Features = [NumFeatures]string{"publishes", "payload_mean", "payload_max", "topics", "new_topics", "period_s",
	"qos_share", "retained", "subscribes", "connects", "peers", "new_peers"}

// floors are the smallest standard deviations used (a feature constant
// while learning would otherwise make any change infinitely unusual): a
// new topic or peer is 4 deviations, one more CONNECT 2.
var floors = [NumFeatures]float64{1, 2, 2, 0.5, 0.25, 0.1, 0.05, 0.5, 0.5, 0.5, 0.5, 0.25}

// Vector is one window's features.
type Vector [NumFeatures]float64

// Obs is one device's window.
type Obs struct {
	Key    string
	Window int64 // capture time / Window
	V      Vector
	// Undefined marks the features the window has no value of (bit i for
	// feature i): payload sizes, QoS share and period without a publish. A
	// pump publishing every ten minutes is then learned as publishing
	// every ten minutes, not as a mixture of that and nothing.
	Undefined uint16
	NewTopics []string // up to 3, for the explanation
	NewPeers  []string
	// Topics and Peers are all of the window's (for learning).
	Topics []string
	Peers  []string
	// TLS: the device was seen through TLS (its publishes are records).
	TLS bool
	// Partial: the device's first window in the run, which may have
	// started part-way (the capture's start, a device joining): learning
	// takes its topics and peers, not its numbers, and it is not scored.
	Partial bool
}

// Limits on what a device's window and profile keep (an outsider can make
// topics and addresses grow).
const (
	maxWindowTopics  = 256
	maxProfileTopics = 128
	maxProfilePeers  = 64
	maxDevices       = 20000
	maxTopicClocks   = 64
	// maxName bounds the bytes of a client ID or topic kept (a longer one
	// is known by its first bytes): 64 kB names must not make profiles
	// of megabytes.
	maxName = 256
)

func clip(s string) string {
	if len(s) > maxName {
		return s[:maxName]
	}
	return s
}

// Printable shows a client ID or topic in words and tables: control
// characters escaped (no terminal escape sequence gets through), at most n
// runes.
func Printable(s string, n int) string {
	var b strings.Builder
	i := 0
	for _, r := range s {
		if i == n {
			b.WriteString("…")
			break
		}
		i++
		switch {
		case r == utf8.RuneError:
			b.WriteString(`\ufffd`)
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0):
			fmt.Fprintf(&b, `\x%02x`, r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

type acc struct {
	window                int64
	pubs, paySum, payMax  float64
	lastPub, firstPub     int64
	gapSum                float64          // with one publish: the gap since the previous one on its topic
	lastOn                map[string]int64 // each topic's last publish (kept across windows)
	qos, retained         float64
	subs, connects        float64
	topics                map[string]struct{}
	peers                 map[netip.Addr]struct{}
	newTopics, newPeers   []string
	nNewTopics, nNewPeers float64
	seenWindows           int  // windows this device has had in this run
	tls                   bool // seen through TLS: its publishes are records
	active                bool
}

// Tracker turns MQTT events into device windows. Through TLS (where MQTT
// is not visible) a device is its client certificate's common name, and
// its records stand for its messages: the TLS frames it sends with data
// count as its publishes, with their sizes and period; its handshakes as
// its connections. known, when set, gives
// the profile whose topics and peers count as not new, and whether it is a
// shape's (then topics are compared by shape, and the device's own address
// is not new: it has none learned).
type Tracker struct {
	known   func(key string) (*Profile, bool)
	emit    func(Obs)
	devs    map[string]*acc
	now     int64 // the current window (capture time / Window)
	tls     map[*tcpstream.Conn]*tlsConn
	conns   map[*tcpstream.Conn]*connCache
	Evicted int64 // devices not tracked: the table was full
}

// connCache is what a connection's packets looked up in the current
// window: its device's window, the profile, and the last topic counted.
// Profiling analyze --baseline: the per-packet lookups (the device by
// client ID, its profile, its two peers, its topic: six map operations a
// message) were most of the scoring's cost. An entry holds only while no
// window has closed since it was made and no Flush (closing a window is
// when an acc goes inactive or starts another window, and when a
// learner's profiles change), so every packet counts exactly as with the
// lookups (TestConnCacheCountsAsLookups).
type connCache struct {
	clientID  string        // the session's client ID it is for
	clientDir tcpstream.Dir // and its client's side (without a client ID, the device is its address)
	a         *acc
	p         *Profile
	group     bool
	window    int64  // t.now when made
	topic     string // the last topic counted in a.topics (when hasTopic)
	hasTopic  bool
}

// maxConnCache bounds the connections cached (closed ones are forgotten;
// past the bound the cache starts again).
const maxConnCache = 100000

// NewTracker makes a tracker that calls emit with each complete window.
func NewTracker(known func(string) (*Profile, bool), emit func(Obs)) *Tracker {
	return &Tracker{known: known, emit: emit, devs: map[string]*acc{}, tls: map[*tcpstream.Conn]*tlsConn{},
		conns: map[*tcpstream.Conn]*connCache{}}
}

// tlsConn is a TLS connection whose client showed a certificate.
type tlsConn struct {
	key       string
	clientDir tcpstream.Dir
}

// maxTLSConns bounds the TLS connections followed (closed ones are
// forgotten).
const maxTLSConns = 100000

// OnTLS follows the connections whose client sends a certificate: the
// client's direction from its hello, the device from the certificate.
func (t *Tracker) OnTLS(ev *pipeline.TLS) {
	if ev.Conn == nil || ev.Info == nil || ev.What&tlsinfo.EventClientCertificate == 0 {
		return
	}
	cn := clip(commonName(ev.Info.ClientCertSubject))
	if cn == "" || t.tls[ev.Conn] != nil || len(t.tls) >= maxTLSConns {
		return
	}
	t.tls[ev.Conn] = &tlsConn{key: cn, clientDir: ev.Dir}
	var ts int64
	if ev.Frame != nil {
		ts = ev.Frame.TS
		t.Advance(ts)
	}
	a, p, group := t.device(cn, ts)
	if a == nil {
		return
	}
	a.connects++
	t.peers(a, p, group, ev.Conn.Src(ev.Dir), ev.Conn.Dst(ev.Dir))
}

// OnFrame counts a TLS device's data frames.
func (t *Tracker) OnFrame(f *pipeline.Frame) {
	if len(t.tls) == 0 || f.TCP == nil || f.TCP.Conn == nil || f.L == nil {
		return
	}
	c := t.tls[f.TCP.Conn]
	if c == nil {
		return
	}
	t.Advance(f.TS)
	if f.TCP.Dir != c.clientDir || f.L.PayloadLen == 0 {
		return
	}
	a, _, _ := t.device(c.key, f.TS)
	if a == nil {
		return
	}
	a.tls = true
	a.publish(f.TS, nil, float64(f.L.PayloadLen), false, false)
}

// OnFlow forgets a closed connection.
func (t *Tracker) OnFlow(f *pipeline.Flow) {
	if f.Kind == pipeline.FlowClosed && f.Conn != nil {
		delete(t.tls, f.Conn)
		delete(t.conns, f.Conn)
	}
}

// commonName is a certificate subject's CN ("" when it has none).
func commonName(subject string) string {
	for _, part := range strings.Split(subject, ",") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(part), "CN="); ok {
			return v
		}
	}
	return ""
}

// OnMQTT counts a packet the client sent.
func (t *Tracker) OnMQTT(m *pipeline.MQTT) {
	if m.Frame == nil || m.Session == nil {
		return
	}
	ts := m.Frame.TS
	t.Advance(ts)
	if !m.FromClient || m.Pkt == nil {
		return
	}
	c := t.conns[m.Conn]
	if c == nil || c.window != t.now || c.clientID != m.Session.ClientID || c.clientDir != m.Session.ClientDir {
		c = nil
		key := clip(m.Session.ClientID)
		if key == "" {
			// The broker names such a client: here it is its address.
			if m.Conn == nil {
				return
			}
			key = "(no client ID)@" + m.Conn.Src(m.Session.ClientDir).Addr().Unmap().String()
		}
		a, p, group := t.device(key, ts)
		if a == nil {
			return
		}
		if m.Conn != nil {
			t.peers(a, p, group, m.Conn.Src(m.Session.ClientDir), m.Conn.Dst(m.Session.ClientDir))
			if a.window == t.now { // (not for a packet older than the window under way)
				if len(t.conns) >= maxConnCache {
					clear(t.conns)
				}
				c = &connCache{clientID: m.Session.ClientID, clientDir: m.Session.ClientDir, a: a, p: p, group: group, window: t.now}
				t.conns[m.Conn] = c
			}
		}
		if c == nil {
			c = &connCache{a: a, p: p, group: group}
		}
	}
	a := c.a
	switch m.Pkt.Type {
	case mqtt.PUBLISH:
		tb := m.Pkt.TopicName()
		a.publish(ts, tb, float64(m.Pkt.PayloadLen), m.Pkt.QoS > 0, m.Pkt.Retain)
		if len(tb) > maxName {
			tb = tb[:maxName] // a long topic is known by its first bytes
		}
		if !c.hasTopic || c.topic != string(tb) {
			a.topic(c.p, c.group, tb)
			c.topic, c.hasTopic = string(tb), true
		}
	case mqtt.SUBSCRIBE:
		a.subs++
	case mqtt.CONNECT:
		a.connects++
	}
}

// device is key's window under way (nil when the table is full), with the
// profile novelty is judged against.
func (t *Tracker) device(key string, ts int64) (*acc, *Profile, bool) {
	a := t.devs[key]
	if a == nil {
		// Past the bound, only devices with a learned profile of their own
		// are followed: junk client IDs by the thousand must not blind
		// the detector to the ward's devices.
		if len(t.devs) >= maxDevices && !t.learned(key) {
			t.Evicted++
			return nil, nil, false
		}
		a = &acc{window: ts / int64(Window)}
		t.devs[key] = a
	}
	if !a.active {
		a.reset(ts / int64(Window))
	}
	a.active = true
	var p *Profile
	var group bool
	if t.known != nil {
		p, group = t.known(key)
	}
	return a, p, group
}

// learned says whether key has a profile of its own (bounded by the
// baseline's own bound on devices).
func (t *Tracker) learned(key string) bool {
	if t.known == nil || len(t.devs) >= 2*maxDevices {
		return false
	}
	p, group := t.known(key)
	return p != nil && !group
}

// peers counts the client's and the server's addresses; the client's own
// is not new to a shape's or the ward's profile (it has none learned).
func (t *Tracker) peers(a *acc, p *Profile, group bool, client, server netip.AddrPort) {
	for i, ap := range []netip.AddrPort{client, server} {
		addr := ap.Addr().Unmap()
		if _, ok := a.peers[addr]; ok || len(a.peers) >= maxWindowTopics {
			continue
		}
		a.peers[addr] = struct{}{}
		if p != nil && !(group && i == 0) && !p.hasPeer(addr.String()) {
			a.nNewPeers++
			if len(a.newPeers) < 3 {
				a.newPeers = append(a.newPeers, addr.String())
			}
		}
	}
}

// publish counts a message (through TLS, a data frame; topic nil).
func (a *acc) publish(ts int64, topic []byte, size float64, qos, retain bool) {
	a.pubs++
	a.paySum += size
	a.payMax = max(a.payMax, size)
	prev, had := a.lastOn[string(topic)]
	if had || len(a.lastOn) < maxTopicClocks {
		a.lastOn[string(topic)] = ts
	}
	if a.pubs == 1 {
		a.firstPub = ts
		// From the previous message on the same topic: another topic's
		// (an attack's last message) would make the device's next
		// reading look early.
		if had && ts > prev {
			a.gapSum = float64(ts-prev) / 1e9
		}
	}
	a.lastPub = ts
	if qos {
		a.qos++
	}
	if retain {
		a.retained++
	}
}

// topic counts a topic published to, and whether it is new; tb is
// clipped to maxName bytes by its caller (OnMQTT, whose cache compares the
// clipped topic): a long topic is known by its first bytes.
func (a *acc) topic(p *Profile, group bool, tb []byte) {
	if _, ok := a.topics[string(tb)]; ok || len(a.topics) >= maxWindowTopics {
		return
	}
	topic := string(tb)
	a.topics[topic] = struct{}{}
	if p != nil && !p.hasTopic(topic) && !(group && p.hasTopic(Shape(topic))) {
		a.nNewTopics++
		if len(a.newTopics) < 3 {
			a.newTopics = append(a.newTopics, topic)
		}
	}
}

func (a *acc) reset(w int64) {
	last, on := a.lastPub, a.lastOn
	if on == nil {
		on = map[string]int64{}
	}
	seen, tls := a.seenWindows, a.tls
	*a = acc{window: w, lastPub: last, lastOn: on, seenWindows: seen, tls: tls, topics: map[string]struct{}{}, peers: map[netip.Addr]struct{}{}}
}

// Advance closes the windows that end at or before ts.
func (t *Tracker) Advance(ts int64) {
	w := ts / int64(Window)
	if w <= t.now {
		return // the devices are walked once a window, not once a packet
	}
	t.now = w
	// In key order: the shapes' and the ward's statistics add windows in
	// it, and the same capture must learn the same baseline.
	var due []string
	for key, a := range t.devs {
		switch {
		case a.active && a.window < w:
			due = append(due, key)
		case !a.active && w-a.window > forgetAfter:
			// Not heard of for an hour: forgotten (it starts again with a
			// part window if it comes back), so that client IDs used once
			// do not fill the table.
			delete(t.devs, key)
		}
	}
	sort.Strings(due)
	for _, key := range due {
		t.close(key, t.devs[key])
	}
}

// forgetAfter is how many windows a silent device is kept.
const forgetAfter = 60

// close emits a device's window.
func (t *Tracker) close(key string, a *acc) {
	a.active = false
	a.seenWindows++
	var v Vector
	var undef uint16
	v[FPublishes] = a.pubs
	if a.pubs > 0 {
		v[FPayloadMean] = a.paySum / a.pubs
		v[FQoSShare] = a.qos / a.pubs
	} else {
		undef |= 1<<FPayloadMean | 1<<FPayloadMax | 1<<FQoSShare
	}
	v[FPayloadMax] = a.payMax
	v[FTopics] = float64(len(a.topics))
	v[FNewTopics] = a.nNewTopics
	// The period: the mean gap between the window's publishes, or, with
	// one publish, the gap since the one before (a pump publishing every
	// ten minutes has a period of ten minutes, not none).
	switch {
	case a.pubs >= 2:
		v[FPeriod] = float64(a.lastPub-a.firstPub) / 1e9 / (a.pubs - 1)
	case a.pubs == 1 && a.gapSum > 0:
		v[FPeriod] = a.gapSum
	default:
		undef |= 1 << FPeriod
	}
	v[FRetained] = a.retained
	v[FSubscribes] = a.subs
	v[FConnects] = a.connects
	v[FPeers] = float64(len(a.peers))
	v[FNewPeers] = a.nNewPeers
	o := Obs{Key: key, Window: a.window, V: v, Undefined: undef, TLS: a.tls, NewTopics: a.newTopics, NewPeers: a.newPeers, Partial: a.seenWindows == 1}
	for topic := range a.topics {
		o.Topics = append(o.Topics, topic)
	}
	for addr := range a.peers {
		o.Peers = append(o.Peers, addr.String())
	}
	t.emit(o)
}

// Flush drops the windows under way: they are not complete (the end of a
// capture cuts them), and a part window looks like a drop in rate.
func (t *Tracker) Flush() {
	for _, a := range t.devs {
		a.active = false
	}
	clear(t.conns)
}

// --- profiles -------------------------------------------------------------------

// Profile is one device's (or one shape's) normal. N counts the windows
// each feature was defined in (Mean and M2 are over those).
type Profile struct {
	Windows int64              `json:"windows"`
	N       [NumFeatures]int64 `json:"n"`
	Mean    Vector             `json:"mean"`
	M2      Vector             `json:"m2"`
	Topics  []string           `json:"topics"`
	Peers   []string           `json:"peers"`
	topics  map[string]bool
	peers   map[string]bool
}

func (p *Profile) hasTopic(s string) bool {
	p.index()
	return p.topics[s]
}

func (p *Profile) hasPeer(s string) bool {
	p.index()
	return p.peers[s]
}

func (p *Profile) index() {
	if p.topics != nil {
		return
	}
	p.topics, p.peers = map[string]bool{}, map[string]bool{}
	for _, s := range p.Topics {
		p.topics[s] = true
	}
	for _, s := range p.Peers {
		p.peers[s] = true
	}
}

func (p *Profile) add(v Vector, undef uint16) {
	p.Windows++
	for i, x := range v {
		if undef&(1<<i) != 0 {
			continue
		}
		p.N[i]++
		d := x - p.Mean[i]
		p.Mean[i] += d / float64(p.N[i])
		p.M2[i] += d * (x - p.Mean[i])
	}
}

func (p *Profile) learnTopic(s string) {
	p.index()
	if !p.topics[s] && len(p.Topics) < maxProfileTopics {
		p.topics[s] = true
		p.Topics = append(p.Topics, s)
	}
}

func (p *Profile) learnPeer(s string) {
	p.index()
	if !p.peers[s] && len(p.Peers) < maxProfilePeers {
		p.peers[s] = true
		p.Peers = append(p.Peers, s)
	}
}

// Std is feature i's standard deviation, at least its floor and 5 % of
// its mean.
func (p *Profile) Std(i int) float64 {
	var v float64
	if p.N[i] > 1 {
		v = p.M2[i] / float64(p.N[i]-1)
	}
	return max(math.Sqrt(v), floors[i], 0.05*math.Abs(p.Mean[i]))
}

var digits = regexp.MustCompile(`[0-9]+`)

// Shape is the group a client ID belongs to: its digits replaced by #.
func Shape(key string) string { return digits.ReplaceAllString(key, "#") }

// sortedCopy returns the profile's sets in order (stable files).
func (p *Profile) sortSets() {
	slices.Sort(p.Topics)
	slices.Sort(p.Peers)
}
