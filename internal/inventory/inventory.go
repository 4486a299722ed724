// Package inventory lists the devices on the network from what they do, as
// a pipeline consumer: every MQTT client (by client ID) and every host seen
// only through TLS or as a broker, with its addresses (and MAC on
// Ethernet), identity, role, a guess of its kind with the evidence for it,
// protocol versions, transport, credential kind, topics, rates, and first
// and last seen. Live, it reports devices that appear and devices that go
// silent. Memory is bounded: past MaxDevices the least recently seen
// device is forgotten, and counted.
package inventory

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/iomtguard/iomtguard/internal/mqtt"
	"github.com/iomtguard/iomtguard/internal/pipeline"
	"github.com/iomtguard/iomtguard/internal/tcpstream"
)

// Device is one device.
type Device struct {
	Key          string    `json:"key"` // the client ID, or broker:ADDR:PORT, or host:ADDR
	ClientID     string    `json:"client_id,omitempty"`
	Identity     string    `json:"identity,omitempty"` // the client certificate's subject, where TLS shows it
	Username     string    `json:"username,omitempty"`
	Addrs        []string  `json:"addresses"`
	MACs         []string  `json:"macs,omitempty"`
	Role         string    `json:"role"` // broker, sensor, actuator, monitor, gateway, client
	Kind         string    `json:"kind"` // ECG monitor, infusion pump, ... or unknown
	KindEvidence string    `json:"kind_evidence,omitempty"`
	Versions     []string  `json:"mqtt_versions,omitempty"`
	Transport    string    `json:"transport"`  // cleartext, tls, websocket
	Credential   string    `json:"credential"` // none, username, password, certificate, unknown (hidden by TLS)
	Published    []string  `json:"published,omitempty"`
	Subscribed   []string  `json:"subscribed,omitempty"`
	Brokers      []string  `json:"brokers,omitempty"`
	Connects     int64     `json:"connects"`
	Publishes    int64     `json:"publishes"`
	Bytes        int64     `json:"payload_bytes"`
	RatePerMin   float64   `json:"publishes_per_minute"` // over its time on the network
	FirstSeen    time.Time `json:"first_seen"`
	LastSeen     time.Time `json:"last_seen"`
	Silent       bool      `json:"silent,omitempty"`

	subscribes   bool
	cmdSubscribe bool
}

// Event is a device appearing, going silent, or coming back.
type Event struct {
	Kind   string    `json:"event"` // new, silent, back
	At     time.Time `json:"at"`
	Device Device    `json:"device"`
}

// Options of an inventory. Zero values give the defaults.
type Options struct {
	MaxDevices int           // default 10000
	MaxTopics  int           // topics kept per device and direction (default 32)
	Warmup     time.Duration // no "new" events before this much capture time (default 10 min: everything is new at first)
	Silent     time.Duration // a device quiet for this long (and ten times its usual gap) is silent (default 10 min)
}

// Inventory is the pipeline consumer.
type Inventory struct {
	pipeline.Nop
	opts    Options
	devs    map[string]*Device
	start   int64
	now     int64
	known   map[string]bool // keys restored from the history: not new
	events  []Event
	Evicted int64
	// EventsDropped counts the "new" events not kept (maxPendingEvents).
	EventsDropped int64
	newPending    int // "new" events in events
	byConn        map[*tcpstream.Conn]*connDevs
	// The last connection looked up in byConn and its entry (consecutive
	// packets are mostly on one connection: one map lookup saved each).
	lastConn *tcpstream.Conn
	lastCD   *connDevs
}

// New returns an inventory.
func New(opts Options) *Inventory {
	if opts.MaxDevices <= 0 {
		opts.MaxDevices = 10000
	}
	if opts.MaxTopics <= 0 {
		opts.MaxTopics = 32
	}
	if opts.Warmup <= 0 {
		opts.Warmup = 10 * time.Minute
	}
	if opts.Silent <= 0 {
		opts.Silent = 10 * time.Minute
	}
	return &Inventory{opts: opts, devs: map[string]*Device{}, known: map[string]bool{}, byConn: map[*tcpstream.Conn]*connDevs{}}
}

// Restore brings back a device from the history (it is not new).
func (inv *Inventory) Restore(d Device) {
	inv.known[d.Key] = true
	if len(inv.devs) < inv.opts.MaxDevices {
		cp := d
		inv.devs[d.Key] = &cp
	}
}

func (inv *Inventory) device(key string, ts int64) *Device {
	d := inv.devs[key]
	if d != nil {
		if d.Silent {
			d.Silent = false
			inv.event(Event{Kind: "back", At: time.Unix(0, ts).UTC(), Device: *d})
		}
		d.LastSeen = time.Unix(0, ts).UTC()
		return d
	}
	if len(inv.devs) >= inv.opts.MaxDevices {
		inv.evict()
	}
	t := time.Unix(0, ts).UTC()
	d = &Device{Key: key, FirstSeen: t, LastSeen: t, Role: "client", Kind: "unknown", Transport: "cleartext", Credential: "none"}
	inv.devs[key] = d
	if !inv.known[key] && ts-inv.start >= int64(inv.opts.Warmup) {
		inv.event(Event{Kind: "new", At: t, Device: *d})
	}
	return d
}

// evict makes room: the devices seen longest ago, a sixteenth of the
// table at once. One at a time, each new device past the limit walked the
// whole table: 100,000 clients connecting once each (a botnet, or a
// client-ID flood) took 55 s of analyze, the inventory's walks 34 s of them.
func (inv *Inventory) evict() {
	all := make([]*Device, 0, len(inv.devs))
	for _, d := range inv.devs {
		all = append(all, d)
	}
	slices.SortFunc(all, func(a, b *Device) int {
		if c := a.LastSeen.Compare(b.LastSeen); c != 0 {
			return c
		}
		return strings.Compare(a.Key, b.Key)
	})
	for _, d := range all[:max(1, len(all)/16)] {
		delete(inv.devs, d.Key)
		inv.Evicted++
	}
}

// maxPendingEvents bounds the "new" events kept until Events is called
// (watch calls it at each evaluation; analyze never does): a device a
// packet, each new, must not grow them without end.
const maxPendingEvents = 1000

// event records ev for Events, or counts it when too many are pending.
func (inv *Inventory) event(ev Event) {
	// Only "new" events are capped: a device goes silent, or comes back,
	// at most once between two calls of Events, so those are bounded by
	// MaxDevices, and they are the ones that matter during a flood.
	if ev.Kind == "new" && inv.newPending >= maxPendingEvents {
		inv.EventsDropped++
		return
	}
	if ev.Kind == "new" {
		inv.newPending++
	}
	inv.events = append(inv.events, ev)
}

func addOnce(list []string, v string, max int) []string {
	if v == "" || slices.Contains(list, v) || len(list) >= max {
		return list
	}
	return append(list, v)
}

// OnFrame follows the capture clock and the hosts' MAC addresses.
func (inv *Inventory) OnFrame(f *pipeline.Frame) {
	if inv.start == 0 {
		inv.start = f.TS
	}
	inv.now = max(inv.now, f.TS)
}

// OnTick follows the capture clock on a quiet network.
func (inv *Inventory) OnTick(ts int64) { inv.now = max(inv.now, ts) }

func macString(m [6]byte) string {
	return fmt.Sprintf("%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5])
}

// connDevs caches a connection's devices: the first packet sets them up,
// the others only count (no string is built per packet).
type connDevs struct {
	key            string
	client, broker *Device
}

// OnMQTT learns from each packet.
func (inv *Inventory) OnMQTT(ev *pipeline.MQTT) {
	p, s := ev.Pkt, ev.Session
	ts := ev.Frame.TS
	if inv.start == 0 {
		inv.start = ts
	}
	var cd *connDevs
	if ev.Conn == inv.lastConn && ev.Conn != nil {
		cd = inv.lastCD // the packet before was on this connection too
	} else if ev.Conn != nil {
		// The connection's slot, or byConn when the slot had no room.
		if cd, _ = ev.Conn.Slot(inv).(*connDevs); cd == nil {
			cd = inv.byConn[ev.Conn]
		}
		if cd != nil {
			inv.lastConn, inv.lastCD = ev.Conn, cd
		}
	}
	if cd == nil || cd.key != s.ClientID {
		if cd = inv.setup(ev); cd == nil {
			return
		}
	}
	d := cd.client
	t := time.Unix(0, ts).UTC()
	if d.Silent {
		d.Silent = false
		inv.event(Event{Kind: "back", At: t, Device: *d})
	}
	d.LastSeen = t
	if cd.broker != nil {
		cd.broker.LastSeen = t
	}
	switch {
	case p.Type == mqtt.CONNECT && ev.FromClient:
		d.Connects++
		d.Username = s.Username
		if s.Level != 0 {
			d.Versions = addOnce(d.Versions, s.Level.String(), 3)
			if cd.broker != nil {
				cd.broker.Versions = addOnce(cd.broker.Versions, s.Level.String(), 3)
			}
		}
		switch {
		case p.PasswordPresent():
			d.Credential = "password"
		case p.UsernamePresent():
			d.Credential = "username"
		case d.Credential != "certificate":
			d.Credential = "none"
		}
	case p.Type == mqtt.PUBLISH && ev.FromClient:
		d.Publishes++
		d.Bytes += int64(p.PayloadLen)
		if len(d.Published) < inv.opts.MaxTopics {
			d.Published = addOnce(d.Published, string(p.TopicName()), inv.opts.MaxTopics)
		}
		if span := t.Sub(d.FirstSeen).Minutes(); span >= 1 {
			d.RatePerMin = float64(d.Publishes) / span
		}
	case p.Type == mqtt.SUBSCRIBE && ev.FromClient:
		d.subscribes = true
		for _, f := range p.Filters {
			d.Subscribed = addOnce(d.Subscribed, string(f.Filter), inv.opts.MaxTopics)
			if commandTopic(string(f.Filter)) {
				d.cmdSubscribe = true
			}
		}
	}
}

// setup finds (or makes) the devices of a connection's first packet.
func (inv *Inventory) setup(ev *pipeline.MQTT) *connDevs {
	s := ev.Session
	ts := ev.Frame.TS
	client := ev.Conn.Src(s.ClientDir)
	broker := ev.Conn.Dst(s.ClientDir)
	key := s.ClientID
	if key == "" {
		if !s.ClientKnown {
			return nil
		}
		key = "host:" + client.Addr().String()
	}
	d := inv.device(key, ts)
	d.ClientID = s.ClientID
	d.Addrs = addOnce(d.Addrs, client.Addr().String(), 8)
	if l := ev.Frame.L; l != nil && l.HasMAC {
		mac := l.SrcMAC
		if !ev.FromClient {
			mac = l.DstMAC
		}
		d.MACs = addOnce(d.MACs, macString(mac), 4)
	}
	d.Brokers = addOnce(d.Brokers, broker.String(), 4)
	if s.Transport == pipeline.TransportWebSocket {
		d.Transport = "websocket"
	}
	if s.Level != 0 {
		d.Versions = addOnce(d.Versions, s.Level.String(), 3)
	}
	cd := &connDevs{key: s.ClientID, client: d}
	if s.ClientKnown {
		b := inv.device("broker:"+broker.String(), ts)
		b.Role, b.Kind, b.KindEvidence, b.Credential = "broker", "MQTT broker", "accepts MQTT connections on "+broker.String(), ""
		b.Addrs = addOnce(b.Addrs, broker.Addr().String(), 8)
		if l := ev.Frame.L; l != nil && l.HasMAC {
			mac := l.DstMAC
			if !ev.FromClient {
				mac = l.SrcMAC
			}
			b.MACs = addOnce(b.MACs, macString(mac), 4)
		}
		cd.broker = b
	}
	if len(inv.byConn) < 4*inv.opts.MaxDevices {
		inv.byConn[ev.Conn] = cd
		if ev.Conn != nil {
			ev.Conn.SetSlot(inv, cd)
		}
		inv.lastConn, inv.lastCD = ev.Conn, cd
	} else if inv.lastConn == ev.Conn {
		inv.lastConn, inv.lastCD = nil, nil
	}
	return cd
}

// OnFlow learns about TLS clients (their MQTT is hidden) and forgets
// connections.
func (inv *Inventory) OnFlow(f *pipeline.Flow) {
	if f.Kind != pipeline.FlowClosed {
		return
	}
	delete(inv.byConn, f.Conn)
	if f.Conn != nil {
		f.Conn.SetSlot(inv, nil)
	}
	if inv.lastConn == f.Conn {
		inv.lastConn, inv.lastCD = nil, nil
	}
	if f.Proto != pipeline.ProtoTLS || f.TLS == nil {
		return
	}
	c := f.Conn
	key := "host:" + c.A.Addr().String()
	if cn := subjectCN(f.TLS.ClientCertSubject); cn != "" {
		key = cn
	}
	d := inv.device(key, c.Last)
	d.Transport = "tls"
	d.Addrs = addOnce(d.Addrs, c.A.Addr().String(), 8)
	d.Brokers = addOnce(d.Brokers, c.B.String(), 4)
	if cn := subjectCN(f.TLS.ClientCertSubject); cn != "" {
		d.Identity, d.Credential = cn, "certificate"
	} else if d.Credential == "none" {
		d.Credential = "unknown (TLS)"
	}
	if t := time.Unix(0, c.Start).UTC(); t.Before(d.FirstSeen) {
		d.FirstSeen = t
	}
}

// subjectCN is the CN of an X.509 subject string (CN=bed1-ecg,O=...).
func subjectCN(s string) string {
	for _, part := range strings.Split(s, ",") {
		if k, v, ok := strings.Cut(strings.TrimSpace(part), "="); ok && strings.EqualFold(k, "CN") {
			return v
		}
	}
	return ""
}

// Events returns what happened since the last call (new, silent, back),
// checking for silent devices at the capture time reached.
func (inv *Inventory) Events() []Event {
	now := inv.now
	for _, d := range inv.devs {
		if d.Silent || d.Role == "broker" {
			continue
		}
		quiet := time.Unix(0, now).Sub(d.LastSeen)
		usual := time.Duration(0)
		if d.Publishes > 1 {
			usual = d.LastSeen.Sub(d.FirstSeen) / time.Duration(d.Publishes-1)
		}
		if quiet >= inv.opts.Silent && quiet >= 10*usual {
			d.Silent = true
			inv.event(Event{Kind: "silent", At: time.Unix(0, now).UTC(), Device: *d})
		}
	}
	evs := inv.events
	inv.events, inv.newPending = nil, 0
	for i := range evs {
		evs[i].Device = finish(evs[i].Device)
	}
	return evs
}

// Devices lists the devices, brokers first, then by key.
func (inv *Inventory) Devices() []Device {
	out := make([]Device, 0, len(inv.devs))
	for _, d := range inv.devs {
		out = append(out, finish(*d))
	}
	sort.Slice(out, func(i, j int) bool {
		if (out[i].Role == "broker") != (out[j].Role == "broker") {
			return out[i].Role == "broker"
		}
		return out[i].Key < out[j].Key
	})
	return out
}

// finish settles the role and the kind from everything seen.
func finish(d Device) Device {
	if d.Role != "broker" {
		pub, sub := d.Publishes > 0 || len(d.Published) > 0, d.subscribes || len(d.Subscribed) > 0
		switch {
		case pub && d.cmdSubscribe:
			d.Role = "actuator"
		case pub && !sub:
			d.Role = "sensor"
		case sub && !pub:
			d.Role = "monitor"
		case pub && sub:
			d.Role = "gateway"
		}
		d.Kind, d.KindEvidence = guessKind(&d)
	}
	slices.Sort(d.Published)
	slices.Sort(d.Subscribed)
	return d
}

// commandTopic says whether a topic or filter carries commands to a device.
func commandTopic(t string) bool {
	for _, w := range []string{"cmd", "command", "set", "dose", "control", "config", "alarm"} {
		for _, lvl := range strings.Split(strings.ToLower(t), "/") {
			if lvl == w || strings.HasPrefix(lvl, w) {
				return true
			}
		}
	}
	return false
}

// kinds are the device kinds recognised, with the words that name them in
// topics and client IDs (the ICU dataset's sensors, and common names).
var kinds = []struct{ kind, words string }{
	{"environment sensor", "barometer humidity co2 cogas smoke fire solar solarrad light noise airquality temperature"},
	{"ECG monitor", "ecg ekg electrocardio"},
	{"infusion pump", "pump infusion dose"},
	{"pulse oximeter", "spo2 oximeter oximetry pulseox"},
	{"blood pressure monitor", "bp nibp bloodpressure"},
	{"glucometer", "glu glucose glucometer"},
	{"airflow sensor", "air airflow breath resp respiration"},
	{"body temperature sensor", "temp bodytemp"},
	{"EMG sensor", "emg"},
	{"GSR sensor", "gsr"},
	{"ventilator", "vent ventilator"},
	{"bed control unit", "control controller"},
	{"nurse station", "nurse station dashboard"},
}

// guessKind names a device's kind from its client ID and topics, with the
// evidence.
func guessKind(d *Device) (string, string) {
	words := func(s string) []string {
		return strings.FieldsFunc(strings.ToLower(s), func(r rune) bool { return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9') })
	}
	try := func(source, text string) (string, string) {
		ws := words(text)
		for _, k := range kinds {
			for _, kw := range strings.Fields(k.words) {
				for _, w := range ws {
					if w == kw || (len(kw) >= 4 && strings.HasPrefix(w, kw)) {
						return k.kind, fmt.Sprintf("%s %q", source, text)
					}
				}
			}
		}
		return "", ""
	}
	// A name says what a device is; a topic may be a command to another
	// (a control unit publishes the pump's dose).
	if k, ev := try("client ID", d.ClientID); k != "" {
		return k, ev
	}
	if k, ev := try("identity", d.Identity); k != "" {
		return k, ev
	}
	for _, t := range d.Published {
		if k, ev := try("publishes", t); k != "" {
			return k, ev
		}
	}
	if d.Role == "monitor" && len(d.Subscribed) > 0 {
		return "monitoring station", fmt.Sprintf("subscribes to %d filters and publishes nothing", len(d.Subscribed))
	}
	return "unknown", ""
}

// Len is the number of devices.
func (inv *Inventory) Len() int { return len(inv.devs) }
