package detect

import (
	"fmt"
	"hash/maphash"
	"net/netip"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/iomtguard/iomtguard/internal/mqtt"
	"github.com/iomtguard/iomtguard/internal/pipeline"
	"github.com/iomtguard/iomtguard/internal/policy"
	"github.com/iomtguard/iomtguard/internal/tcpstream"
)

// --- attack.malformed --------------------------------------------------------

var malformedSpec = Spec{
	Name: "malformed",
	IDs:  []string{"attack.malformed"},
	Rule: "Counts, per client address, events of these kinds: MQTT packets that break the specification (the " +
		"decoder's anomalies, a capture's truncation aside), lost framing, PUBLISH to a reserved '$' topic, topic " +
		"names with '..', runs of empty levels or control characters, client IDs over 128 bytes or not UTF-8, " +
		"MQTT connections the client aborted with a reset, and connections to a broker closed without a byte " +
		"sent. A source with min_events events of at least two kinds, or min_violations specification breaches, " +
		"is fuzzing the broker.",
	Params: []Param{
		{"min_events", 10, "", "events of two kinds or more"},
		{"min_violations", 5, "", "specification breaches alone"},
	},
	New: newMalformed,
}

// Kinds of malformation evidence.
const (
	mkViolation = iota
	mkFraming
	mkReservedTopic
	mkOddTopic
	mkOddClientID
	mkAborted
	mkEmpty
	mkKinds
)

var mkKeys = [mkKinds]string{"spec_violations", "framing_lost", "reserved_topic_publishes", "odd_topic_names",
	"odd_client_ids", "client_resets", "empty_connections"}

var mkNames = [mkKinds]string{"specification breaches", "framing lost", "PUBLISH to '$' topics", "odd topic names",
	"odd client IDs", "MQTT connections reset by the client", "connections closed without a byte"}

type malAgg struct {
	n          [mkKinds]int64
	anomalies  map[string]int64
	span       span
	frames     exemplars
	topics     map[string]bool
	targets    map[string]bool
	emptyPorts map[netip.AddrPort]int64
}

type malformed struct {
	pipeline.Nop
	seed                     maphash.Seed
	minEvents, minViolations int64
	srcs                     map[netip.Addr]*malAgg
	brokers                  map[netip.AddrPort]bool
	tab                      *sessTable
	// once holds the first event of sources not in srcs once srcs is half
	// full: past that a source comes in at its second event. 120,000
	// segments of garbage from spoofed addresses, one each, filled the
	// table and hid a client fuzzing the broker after them (TestMalformed).
	once firstSight[netip.Addr, malEvent]
	// clock is the events' time, taken once a frame (two events of one
	// packet stamped a day ahead moved it, and every source looked quiet);
	// gate paces the sweeps of a full srcs.
	clock     steadyClock
	lastFrame int
	gate      sweepGate
}

// malEvent is an event of add (kind < 0: an empty connection, of agg).
type malEvent struct {
	kind  int
	t     int64
	frame int
}

// samePacket: two events of one packet (a breach on a '$' topic) are one
// sighting, or one spoofed segment each let every address in (an
// independent review).
func samePacket(first, e malEvent) bool { return e.frame != 0 && first.frame == e.frame }

func newMalformed(e *Env) Detector {
	return &malformed{seed: e.hashSeed(), minEvents: int64(e.P("min_events")), minViolations: int64(e.P("min_violations")),
		srcs: map[netip.Addr]*malAgg{}, brokers: map[netip.AddrPort]bool{}, tab: e.sessions}
}

func (*malformed) uses() events { return evMQTT | evFlow | evAnomaly }

// agg is a's aggregate: made when new while srcs is under half full; past
// that, at a's second event (add, which counts the first too; a source
// whose first sign is an empty connection has that one uncounted), and
// never past maxKeys: a full srcs lets the lightest quiet sources go first
// (sweep).
func (d *malformed) agg(a netip.Addr, t int64) *malAgg { return d.admit(a, -1, t, 0) }

func (d *malformed) admit(a netip.Addr, kind int, t int64, frame int) *malAgg {
	if frame == 0 || frame != d.lastFrame {
		d.clock.see(t)
		d.lastFrame = frame
	}
	g := d.srcs[a]
	if g != nil {
		return g
	}
	first := malEvent{kind: -1}
	if len(d.srcs) >= maxKeys/2 {
		var again bool
		if first, again = d.once.again(maphash.Comparable(d.seed, a), a, malEvent{kind, t, frame}, samePacket); !again {
			return nil
		}
	}
	if len(d.srcs) >= maxKeys && !d.sweep() {
		return nil
	}
	g = &malAgg{anomalies: map[string]int64{}, topics: map[string]bool{}, targets: map[string]bool{}, emptyPorts: map[netip.AddrPort]int64{}}
	d.srcs[a] = g
	if first.kind >= 0 {
		g.n[first.kind]++
		g.span.add(first.t)
		g.frames.add(first.frame)
	}
	return g
}

// fuzzing reports whether a source's counts make it a finding.
func (d *malformed) fuzzing(counts *[mkKinds]int64) bool {
	var total int64
	kinds := 0
	for _, n := range counts {
		total += n
		if n > 0 {
			kinds++
		}
	}
	return total >= d.minEvents && kinds >= 2 || counts[mkViolation]+counts[mkFraming] >= d.minViolations
}

// malQuiet is how long a source that is not yet a finding must have had no
// event for a sweep to let it go.
const malQuiet = 60e9

// malWeights bounds the weights sweep tells apart (heavier ones are one).
const malWeights = 64

// sweep lets go of sources that are not a finding (their empty connections
// counted as if to a broker) and have had no event for malQuiet, the
// lightest first (fewest events), at least maxKeys/8 of them when there are
// so many, and reports whether there is room now. Two segments of garbage
// from each of 100,000 spoofed addresses filled the table for good, and a
// client fuzzing the broker after them went unseen (in a watch, any 100,000
// sources of a stray malformed packet over its whole run:
// TestMalformedSourcesSwept). Lightest first: a slow fuzzer's events count
// up between the chaff's sweeps.
func (d *malformed) sweep() bool {
	if !d.gate.open(d.clock.now, 1e9) {
		return false
	}
	var hist [malWeights]int
	for _, g := range d.srcs {
		if w, ok, free := d.mayGo(g); ok {
			hist[w]++
		} else if free > 0 {
			d.gate.wait(free)
		}
	}
	cut, n := 0, 0
	for ; cut < malWeights-1; cut++ {
		if n += hist[cut]; n >= maxKeys/8 {
			break
		}
	}
	before := len(d.srcs)
	for a, g := range d.srcs {
		if w, ok, _ := d.mayGo(g); ok && w <= cut {
			delete(d.srcs, a)
		}
	}
	d.gate.done(before-len(d.srcs) < maxKeys/8)
	return len(d.srcs) < maxKeys
}

// mayGo reports whether sweep may let g go, and its weight (its events,
// at most malWeights-1); when g is kept only for being recent, free is
// when it may go (0: never, it is a finding). Its empty connections count
// as if to a broker.
func (d *malformed) mayGo(g *malAgg) (w int, ok bool, free int64) {
	counts := g.n
	for _, n := range g.emptyPorts {
		counts[mkEmpty] += n
	}
	if d.fuzzing(&counts) {
		return 0, false, 0
	}
	if g.span.last+malQuiet >= d.clock.now {
		return 0, false, g.span.last + malQuiet + 1
	}
	var sum int64
	for _, n := range counts {
		sum += n
	}
	return int(min(sum, malWeights-1)), true, 0
}

func (d *malformed) add(a netip.Addr, kind int, t int64, frame int) *malAgg {
	g := d.admit(a, kind, t, frame)
	if g == nil {
		return nil
	}
	g.n[kind]++
	g.span.add(t)
	g.frames.add(frame)
	return g
}

// oddTopic reports a topic name that probes a broker's topic handling.
func oddTopic(t []byte) bool {
	s := string(t)
	if strings.Contains(s, "..") || strings.Contains(s, "///") || len(s) > 1024 {
		return true
	}
	for _, c := range t {
		if c < 0x20 || c == 0x7f {
			return true
		}
	}
	return false
}

func (d *malformed) OnMQTT(m *pipeline.MQTT) {
	if !m.FromClient {
		return
	}
	p := m.Pkt
	d.tab.cur.clientSent = true
	src, t, fr := clientAddr(m), m.Frame.TS, m.Frame.Num
	if p.Type == mqtt.CONNECT && len(d.brokers) < maxKeys {
		d.brokers[brokerEnd(m)] = true
	}
	if an := p.Anomalies & protocolErrors; an != 0 {
		if g := d.add(src, mkViolation, t, fr); g != nil {
			an.Each(func(a mqtt.Anomalies) { g.anomalies[a.Name()]++ })
		}
	}
	switch p.Type {
	case mqtt.PUBLISH:
		topic := p.TopicName()
		switch {
		case len(topic) > 0 && topic[0] == '$':
			if g := d.add(src, mkReservedTopic, t, fr); g != nil && len(g.topics) < 20 {
				g.topics[printable(string(topic), 64)] = true
			}
		case oddTopic(topic):
			if g := d.add(src, mkOddTopic, t, fr); g != nil && len(g.topics) < 20 {
				g.topics[printable(string(topic), 64)] = true
			}
		}
	case mqtt.SUBSCRIBE, mqtt.UNSUBSCRIBE:
		for _, f := range p.Filters {
			if oddTopic(f.Filter) {
				if g := d.add(src, mkOddTopic, t, fr); g != nil && len(g.topics) < 20 {
					g.topics[printable(string(f.Filter), 64)] = true
				}
			}
		}
	case mqtt.CONNECT:
		if len(p.ClientID) > 128 || !utf8.Valid(p.ClientID) {
			d.add(src, mkOddClientID, t, fr)
		}
	}
}

func (d *malformed) OnAnomaly(a *pipeline.Anomaly) {
	if a.Kind != pipeline.AnomalyMQTTFraming || a.Conn == nil {
		return
	}
	// Framing is lost in the direction a.Dir; the client is the initiator.
	if a.Dir == tcpstream.FromA {
		d.add(a.Conn.A.Addr().Unmap(), mkFraming, a.TS, a.Frame)
	}
}

func (d *malformed) OnFlow(f *pipeline.Flow) {
	if f.Kind != pipeline.FlowClosed {
		return
	}
	c := f.Conn
	src := c.A.Addr().Unmap()
	a := c.Stat[tcpstream.FromA]
	if s := f.Session; s != nil {
		if st := d.tab.cur; st != nil && st.clientSent {
			if c.Stat[s.ClientDir].RSTs > 0 {
				if g := d.add(src, mkAborted, c.Last, 0); g != nil && len(g.targets) < 1000 {
					g.targets[c.B.String()] = true
				}
			}
			return
		}
	}
	// A connection the server accepted (SYN-ACK) and the client closed or
	// reset without sending a byte; counted when it went to a broker.
	b := c.Stat[tcpstream.FromB]
	if c.SynSeen && b.Packets > b.RSTs && b.RSTs == 0 && a.Payload == 0 && (a.RSTs > 0 || a.FINs > 0) {
		if g := d.agg(src, c.Last); g != nil && len(g.emptyPorts) < 1000 {
			g.emptyPorts[c.B]++
			g.span.add(c.Start)
		}
	}
}

func (d *malformed) Findings(Models) []Finding {
	ev := Evidence{Counts: map[string]int64{}}
	var sp span
	srcs, topics, targets := map[string]bool{}, map[string]bool{}, map[string]bool{}
	var frames exemplars
	anomalies := map[string]int64{}
	addrs := make([]netip.Addr, 0, len(d.srcs))
	for a := range d.srcs {
		addrs = append(addrs, a)
	}
	sort.Slice(addrs, func(i, j int) bool { return addrs[i].Less(addrs[j]) })
	for _, src := range addrs {
		g := d.srcs[src]
		counts := g.n // a copy: Findings may be called again (the gateway calls it periodically)
		var emptyTargets []string
		for ep, n := range g.emptyPorts {
			if d.brokers[ep] || ep.Port() == 1883 || ep.Port() == 8883 {
				counts[mkEmpty] += n
				emptyTargets = append(emptyTargets, ep.String())
			}
		}
		if !d.fuzzing(&counts) {
			continue
		}
		srcs[src.String()] = true
		for _, t := range emptyTargets {
			targets[t] = true
		}
		sp.add(g.span.first)
		sp.add(g.span.last)
		var parts []string
		for k, n := range counts {
			if n > 0 {
				ev.Counts[mkKeys[k]] += n
				parts = append(parts, fmt.Sprintf("%d %s", n, mkNames[k]))
			}
		}
		ev.Notes = append(ev.Notes, fmt.Sprintf("%s: %s", src, strings.Join(parts, ", ")))
		for k, n := range g.anomalies {
			anomalies[k] += n
		}
		for k := range g.topics {
			topics[k] = true
		}
		for k := range g.targets {
			targets[k] = true
		}
		for _, f := range g.frames {
			frames.add(f)
		}
	}
	if len(srcs) == 0 {
		return nil
	}
	if len(anomalies) > 0 {
		var names []string
		for k := range anomalies {
			names = append(names, k)
		}
		sort.Strings(names)
		var parts []string
		for _, k := range names {
			parts = append(parts, fmt.Sprintf("%s %d", k, anomalies[k]))
		}
		ev.Notes = append(ev.Notes, "specification breaches: "+strings.Join(parts, ", "))
	}
	sort.Ints(frames)
	ev.Sources, ev.Topics, ev.Targets, ev.Frames = sorted(srcs, 20), sorted(topics, 20), sorted(targets, 10), frames
	f := newFinding("attack.malformed", sp.first, sp.last, ev)
	f.Title = "Malformed MQTT (fuzzing) from " + joinSet(srcs, 3)
	return []Finding{f}
}

// --- attack.wildcard-subscribe -----------------------------------------------

var wildcardSpec = Spec{
	Name: "wildcard-subscribe",
	IDs:  []string{"attack.wildcard-subscribe"},
	Rule: "A SUBSCRIBE filter that matches every topic ('#', '+/#', '+/+/#', ...), a wildcard filter on the " +
		"broker's '$SYS' tree, or, when the policy has a devices section, any filter it does not give that client.",
	New: newWildcard,
}

type wildcard struct {
	pipeline.Nop
	env     *Env
	n       int64
	refused int64
	kinds   [numSubKinds]int64 // subscriptions of each kind, for the title
	filters map[string]int64
	clients map[string]bool
	srcs    map[string]bool
	span    span
	frames  exemplars
	pending map[*pipeline.Session]map[uint16]bool // SUBSCRIBE packet IDs that asked for a flagged filter
}

func newWildcard(e *Env) Detector {
	return &wildcard{env: e, filters: map[string]int64{}, clients: map[string]bool{}, srcs: map[string]bool{},
		pending: map[*pipeline.Session]map[uint16]bool{}}
}

func (*wildcard) uses() events { return evMQTT | evFlow }

// catchAll reports a filter that matches every topic: '#' after any number
// of '+' levels.
func catchAll(f string) bool {
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

// What a flagged subscription reaches.
const (
	subEvery        = iota // every topic: '#', '+/#', ...
	subSys                 // the broker's $SYS tree
	subWildOutside         // a wildcard filter outside the client's rights
	subTopicOutside        // a plain topic outside them
	numSubKinds
)

// subPhrases name each kind in a title.
var subPhrases = [numSubKinds]string{"every topic", "the broker's $SYS tree", "wildcard filters outside its rights", "topics outside its rights"}

// why says what a subscription reaches (ok false: nothing to report). A
// shared subscription ($share/GROUP/FILTER) is judged by its FILTER.
func (w *wildcard) why(client, filter string) (kind int, why string, ok bool) {
	_, inner, shared, err := policy.SplitShared(filter)
	if err != nil || inner == "" {
		inner = filter
	}
	note := ""
	if shared {
		note = ", shared"
	}
	switch {
	case catchAll(inner):
		return subEvery, "every topic" + note, true
	case strings.HasPrefix(inner, "$SYS") && strings.ContainsAny(inner, "#+"):
		return subSys, "the broker's $SYS tree" + note, true
	case w.env.Policy.HasDevices() && !w.env.Policy.MaySubscribe(client, filter):
		if strings.ContainsAny(inner, "#+") {
			return subWildOutside, "a wildcard outside the client's rights in the policy" + note, true
		}
		return subTopicOutside, "a topic outside the client's rights in the policy" + note, true
	}
	return 0, "", false
}

// title names the finding for what the subscriptions did.
func (w *wildcard) title(clients []string) string {
	var what []string
	for k, n := range w.kinds {
		if n > 0 {
			what = append(what, subPhrases[k])
		}
	}
	lead := "Subscription to "
	if w.n > 1 {
		lead = "Subscriptions to "
	}
	if len(what) > 1 {
		what = []string{strings.Join(what[:len(what)-1], ", ") + " and " + what[len(what)-1]}
	}
	return fmt.Sprintf("%s%s by %s", lead, what[0], joinShort(clients, 3))
}

func (w *wildcard) OnMQTT(m *pipeline.MQTT) {
	p := m.Pkt
	switch {
	case p.Type == mqtt.SUBSCRIBE && m.FromClient && p.Anomalies&protocolErrors == 0:
		// A malformed SUBSCRIBE closes the connection [MQTT-4.8.0-1]: it
		// subscribes to nothing, and attack.malformed reports it.
		hit := false
		for _, f := range p.Filters {
			filter := string(f.Filter)
			kind, why, ok := w.why(m.Session.ClientID, filter)
			if !ok {
				continue
			}
			hit = true
			w.n++
			w.kinds[kind]++
			if len(w.filters) < 100 {
				w.filters[printable(filter, 64)+" ("+why+")"]++
			}
		}
		if !hit {
			return
		}
		if len(w.clients) < 1000 {
			w.clients[idString(m.Session.ClientID)] = true
		}
		if len(w.srcs) < 1000 {
			w.srcs[clientAddr(m).String()] = true
		}
		w.span.add(m.Frame.TS)
		w.frames.add(m.Frame.Num)
		if len(w.pending) < maxKeys {
			ids := w.pending[m.Session]
			if ids == nil {
				ids = map[uint16]bool{}
				w.pending[m.Session] = ids
			}
			ids[p.PacketID] = true
		}
	case p.Type == mqtt.SUBACK && !m.FromClient:
		ids := w.pending[m.Session]
		if !ids[p.PacketID] {
			return
		}
		delete(ids, p.PacketID)
		for _, rc := range p.ReasonCodes {
			if rc >= 0x80 {
				w.refused++
				break
			}
		}
	}
}

func (w *wildcard) OnFlow(f *pipeline.Flow) {
	if f.Kind == pipeline.FlowClosed && f.Session != nil {
		delete(w.pending, f.Session)
	}
}

func (w *wildcard) Findings(Models) []Finding {
	if w.n == 0 {
		return nil
	}
	ev := Evidence{Counts: map[string]int64{"subscriptions": w.n, "refused_by_broker": w.refused},
		ClientIDs: sorted(w.clients, 20), Sources: sorted(w.srcs, 20), Frames: w.frames}
	var fs []string
	for k := range w.filters {
		fs = append(fs, k)
	}
	sort.Strings(fs)
	ev.Topics = fs
	f := newFinding("attack.wildcard-subscribe", w.span.first, w.span.last, ev)
	f.Title = w.title(ev.ClientIDs)
	if w.refused > 0 && w.refused >= w.n {
		f.Explanation += " The broker refused these subscriptions: the attempt failed, but shows intent."
	}
	return []Finding{f}
}
