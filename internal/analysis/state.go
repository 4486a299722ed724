package analysis

import (
	"cmp"
	"maps"
	"net/netip"
	"slices"
	"sort"

	"github.com/iomtguard/iomtguard/internal/mqtt"
	"github.com/iomtguard/iomtguard/internal/packet"
	"github.com/iomtguard/iomtguard/internal/pipeline"
	"github.com/iomtguard/iomtguard/internal/stats"
)

// Mergeable analyses.
//
// An Analyzer's data is a State: plain values that merge. A live run keeps
// one Analyzer per minute of capture time and merges minutes into its
// windows (5 minutes, an hour, a day); the history stores each minute's
// State and `report --since` merges them; a sensor sends its hub the State
// of each interval and the hub merges sensors. The Result of the merged
// State is the Result `analyze` gives for the same frames: exactly, where
// every part kept its values (the Figure 1 quartiles fall back on a sketch
// only past a Describer's cap, and say so), because every part of the
// merge is a sum, a union or a top-N of sums.

// StateVersion changes when State's meaning does; a reader refuses others.
const StateVersion = 1

// State is an Analyzer's data.
type State struct {
	Version int   `json:"version"`
	Origin  int64 `json:"origin"` // the run's first frame (ns): series and relative times count from it
	First   int64 `json:"first"`  // this part's first and last frame (ns)
	Last    int64 `json:"last"`

	All        [nFields]stats.DescriberState `json:"all"`
	MQ         [nFields]stats.DescriberState `json:"mqtt_frames"`
	MsgTypes   [16]int64                     `json:"msgtypes"`
	Lengths    map[int]int64                 `json:"lengths,omitempty"`
	QoS        [4]int64                      `json:"qos"`
	Retained   int64                         `json:"retained"`
	Publishes  int64                         `json:"publishes"`
	Payload    int64                         `json:"payload"`
	Anomalies  map[string]int64              `json:"anomalies,omitempty"`
	Topics     []TopicState                  `json:"topics,omitempty"`
	TopicOther int64                         `json:"topic_other,omitempty"`
	// The bound of Topics, as the hosts' below.
	TopicsOver    int64  `json:"topics_over,omitempty"`
	TopicsRefused int64  `json:"topics_refused,omitempty"`
	TopicSketch   []byte `json:"topic_sketch,omitempty"`
	// Client IDs past ClientIDs' bound, and then their sketch.
	ClientIDsOver  int64               `json:"client_ids_over,omitempty"`
	ClientIDSketch []byte              `json:"client_id_sketch,omitempty"`
	Subs           map[string][]string `json:"subs,omitempty"`
	SubsRefused    int64               `json:"subs_refused,omitempty"`
	Hosts          []HostState         `json:"hosts,omitempty"`
	// The bounds of Hosts and Pairs (evict.go): entries let go, newcomers
	// refused, and, when any was, the sketch that counts the hosts.
	HostsOver    int64          `json:"hosts_over,omitempty"`
	HostsRefused int64          `json:"hosts_refused,omitempty"`
	HostSketch   []byte         `json:"host_sketch,omitempty"`
	Pairs        []Edge         `json:"pairs,omitempty"`
	EdgesOver    int64          `json:"edges_over,omitempty"`
	EdgesRefused int64          `json:"edges_refused,omitempty"`
	Ports        []Port         `json:"ports,omitempty"`
	Flows        []Flow         `json:"flows,omitempty"`
	FlowStates   map[string]int `json:"flow_states,omitempty"`
	FlowProtos   map[string]int `json:"flow_protos,omitempty"`
	FlowCount    int            `json:"flow_count"`
	Brokers      []string       `json:"brokers,omitempty"`
	ClientIDs    []string       `json:"client_ids,omitempty"`
	Versions     map[string]int `json:"versions,omitempty"`
	Cleartext    int            `json:"cleartext"`
	TLS          TLSState       `json:"tls"`
	KPoints      []KPointState  `json:"kpoints,omitempty"`
	KFrames      int64          `json:"kframes"`
	Packets      SeriesState    `json:"packets"`
	MQTT         SeriesState    `json:"mqtt"`
	FromCSV      bool           `json:"from_csv,omitempty"`
	Summary      SummaryState   `json:"summary"`
}

// TopicState is one topic and its publishers.
type TopicState struct {
	Topic      Topic    `json:"topic"`
	Publishers []string `json:"publishers,omitempty"`
}

// HostState is one host with its bookkeeping.
type HostState struct {
	Host       Host     `json:"host"`
	ClientIDs  []string `json:"client_ids,omitempty"`
	Peers      []string `json:"peers,omitempty"`
	Broker     bool     `json:"broker,omitempty"`
	Publisher  bool     `json:"publisher,omitempty"`
	Subscriber bool     `json:"subscriber,omitempty"`
	Client     bool     `json:"client,omitempty"`
	TLSClient  bool     `json:"tls_client,omitempty"`
}

// TLSState is the TLS section's data.
type TLSState struct {
	Res     TLSResult `json:"result"`
	Clients []string  `json:"clients,omitempty"`
	Servers []string  `json:"servers,omitempty"`
}

// KPointState is one distinct (frame length, TCP length) point.
type KPointState struct {
	FrameLen   int32 `json:"f"`
	TCPLen     int32 `json:"t"`
	Count      int64 `json:"n"`
	FirstFrame int   `json:"frame"`
	FirstTS    int64 `json:"ts"`
}

// SeriesState is a per-interval series.
type SeriesState struct {
	Offset  int       `json:"offset"`
	Values  []float64 `json:"values,omitempty"`
	Dropped int64     `json:"dropped,omitempty"`
}

// SummaryState is what the pipeline's Summary says about these frames,
// counted by the Analyzer itself (so that parts merge into a Summary).
type SummaryState struct {
	Frames         int64            `json:"frames"`
	Bytes          int64            `json:"bytes"`
	Decoded        map[string]int64 `json:"decoded,omitempty"`
	LinkTypes      map[string]int64 `json:"link_types,omitempty"`
	IPv4           int64            `json:"ipv4"`
	IPv6           int64            `json:"ipv6"`
	TCP            int64            `json:"tcp"`
	UDP            int64            `json:"udp"`
	OtherL4        int64            `json:"other_l4"`
	TCPStreams     int              `json:"tcp_streams"`
	MQTTPackets    int64            `json:"mqtt_packets"`
	MQTTConns      int              `json:"mqtt_connections"`
	TLSConns       int              `json:"tls_connections"`
	WebSocketConns int              `json:"websocket_connections"`
	WebSocketMQTT  int              `json:"mqtt_over_websocket_connections"`
	Gaps           int64            `json:"tcp_gaps"`
	GapBytes       int64            `json:"tcp_gap_bytes"`
}

func (s *SummaryState) add(o *SummaryState) {
	s.Frames += o.Frames
	s.Bytes += o.Bytes
	s.Decoded = addCounts(s.Decoded, o.Decoded)
	s.LinkTypes = addCounts(s.LinkTypes, o.LinkTypes)
	s.IPv4 += o.IPv4
	s.IPv6 += o.IPv6
	s.TCP += o.TCP
	s.UDP += o.UDP
	s.OtherL4 += o.OtherL4
	s.TCPStreams += o.TCPStreams
	s.MQTTPackets += o.MQTTPackets
	s.MQTTConns += o.MQTTConns
	s.TLSConns += o.TLSConns
	s.WebSocketConns += o.WebSocketConns
	s.WebSocketMQTT += o.WebSocketMQTT
	s.Gaps += o.Gaps
	s.GapBytes += o.GapBytes
}

func addCounts[K comparable, V int | int64](dst, src map[K]V) map[K]V {
	if len(src) == 0 {
		return dst
	}
	if dst == nil {
		dst = map[K]V{}
	}
	for k, v := range src {
		dst[k] += v
	}
	return dst
}

func setList(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func addrList(m map[netip.Addr]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k.String())
	}
	sort.Strings(out)
	return out
}

// ReuseColumns gives a the storage of old's Figure 1 columns, emptied; old
// must not be used again (a live run's next minute takes the columns of the
// one that closed).
func (a *Analyzer) ReuseColumns(old *Analyzer) {
	if old == nil {
		return
	}
	old.stopColumns() // old is done with, whether its columns are taken or not
	if a.sum.Frames != 0 {
		return
	}
	for i := range a.all {
		a.all[i], a.mq[i] = old.all[i], old.mq[i]
		a.all[i].Reset()
		a.mq[i].Reset()
		old.all[i], old.mq[i] = stats.Describer{}, stats.Describer{}
	}
}

// State returns the analyzer's data. The State shares the analyzer's
// slices: an analyzer that goes on (a live minute saved as it fills) must
// have its State read at once, as the history encodes it before it
// returns.
func (a *Analyzer) State() *State {
	// Connections still open count in their hosts up to now.
	a.flushConns()
	a.foldCounts()
	a.foldLengths()
	a.syncColumns()
	st := &State{Version: StateVersion, Origin: a.packets.Origin(), First: a.first, Last: a.last, MsgTypes: a.msgTypes,
		Lengths: a.lengths, QoS: a.qos, Retained: a.retained, Publishes: a.publishes, Payload: a.payload,
		Anomalies: a.anomalies, TopicOther: a.topicOther, SubsRefused: a.subsRefused, HostsOver: a.hostsOver, HostsRefused: a.hostsRefused, EdgesOver: a.edgesOver, EdgesRefused: a.edgesRefused, Flows: a.flows, FlowStates: a.flowStates,
		FlowProtos: a.flowProtos, FlowCount: a.flowCount, Versions: a.versions, Cleartext: a.cleartext, KFrames: a.kFrames,
		FromCSV: a.fromCSV, Summary: a.sum}
	if a.hostsOver+a.hostsRefused > 0 {
		st.HostSketch = a.hostsSeen.Registers()
	}
	st.TopicsOver, st.TopicsRefused = a.topicsOver, a.topicsRefused
	if st.ClientIDsOver = a.clientIDsOver; a.clientIDsOver > 0 {
		st.ClientIDSketch = a.clientIDsSeen.Registers()
	}
	if a.topicsOver+a.topicsRefused > 0 {
		st.TopicSketch = a.topicsSeen.Registers()
	}
	for i := range a.all {
		st.All[i], st.MQ[i] = a.all[i].State(), a.mq[i].State()
	}
	for _, t := range a.topics {
		st.Topics = append(st.Topics, TopicState{Topic: t.t, Publishers: setList(t.publishers)})
	}
	sort.Slice(st.Topics, func(i, j int) bool { return st.Topics[i].Topic.Topic < st.Topics[j].Topic.Topic })
	if len(a.subs)+len(a.wildSubs) > 0 {
		st.Subs = map[string][]string{}
		for _, table := range []map[string]map[string]bool{a.subs, a.wildSubs} {
			for f, m := range table {
				st.Subs[f] = setList(m)
			}
		}
	}
	for _, h := range a.hosts {
		st.Hosts = append(st.Hosts, HostState{Host: h.h, ClientIDs: setList(h.clientIDSet()), Peers: h.peerList(), Broker: h.broker,
			Publisher: h.publisher, Subscriber: h.subscriber, Client: h.client, TLSClient: h.tlsClient})
	}
	sort.Slice(st.Hosts, func(i, j int) bool { return st.Hosts[i].Host.Addr < st.Hosts[j].Host.Addr })
	for k, e := range a.pairs {
		st.Pairs = append(st.Pairs, edgeOut(k, e))
	}
	sort.Slice(st.Pairs, func(i, j int) bool {
		if st.Pairs[i].A != st.Pairs[j].A {
			return st.Pairs[i].A < st.Pairs[j].A
		}
		return st.Pairs[i].B < st.Pairs[j].B
	})
	for _, p := range a.ports {
		st.Ports = append(st.Ports, *p)
	}
	sort.Slice(st.Ports, func(i, j int) bool {
		if st.Ports[i].Port != st.Ports[j].Port {
			return st.Ports[i].Port < st.Ports[j].Port
		}
		return st.Ports[i].Proto < st.Ports[j].Proto
	})
	st.Brokers = addrList(a.brokers)
	st.ClientIDs = setList(a.clientIDs)
	st.TLS = TLSState{Res: a.tls.res, Clients: addrList(a.tls.clients)}
	for s := range a.tls.servers {
		st.TLS.Servers = append(st.TLS.Servers, s.String())
	}
	sort.Strings(st.TLS.Servers)
	for k, p := range a.kpts {
		st.KPoints = append(st.KPoints, KPointState{FrameLen: k[0], TCPLen: k[1], Count: p.count, FirstFrame: p.firstFrame, FirstTS: p.firstTS})
	}
	sort.Slice(st.KPoints, func(i, j int) bool {
		if st.KPoints[i].FrameLen != st.KPoints[j].FrameLen {
			return st.KPoints[i].FrameLen < st.KPoints[j].FrameLen
		}
		return st.KPoints[i].TCPLen < st.KPoints[j].TCPLen
	})
	st.Packets = SeriesState{Offset: a.packets.Offset, Values: a.packets.Values, Dropped: a.packets.Dropped}
	st.MQTT = SeriesState{Offset: a.mqttSeries.Offset, Values: a.mqttSeries.Values, Dropped: a.mqttSeries.Dropped}
	return st
}

// Merge adds a State (of the same run: the same origin) to the analyzer.
func (a *Analyzer) Merge(st *State) {
	if st == nil {
		return
	}
	a.syncColumns()
	if !a.packets.started {
		a.packets.SetOrigin(st.Origin)
		a.mqttSeries.SetOrigin(st.Origin)
	}
	if !a.started || (st.Summary.Frames > 0 && st.First < a.first) {
		a.started = true
		a.start = a.packets.Origin()
	}
	if st.Summary.Frames > 0 {
		if a.sum.Frames == 0 || st.First < a.first {
			a.first = st.First
		}
		if st.Last > a.last {
			a.last = st.Last
		}
	}
	// Relative times of another run count from its own first frame: shift
	// them to this one's.
	delta := float64(st.Origin-a.packets.Origin()) / 1e9
	for i := range a.all {
		all, mq := st.All[i], st.MQ[i]
		if i == fTimeRel && delta != 0 {
			all, mq = all.Shifted(delta), mq.Shifted(delta)
		}
		a.all[i].MergeState(all)
		a.mq[i].MergeState(mq)
	}
	for i, n := range st.MsgTypes {
		a.msgTypes[i] += n
	}
	for _, l := range keys(st.Lengths, cmp.Compare[int]) { // the same ones whatever the map's order
		a.addLength(l, st.Lengths[l])
	}
	for i, n := range st.QoS {
		a.qos[i] += n
	}
	a.retained += st.Retained
	a.publishes += st.Publishes
	a.payload += st.Payload
	a.anomalies = addCounts(a.anomalies, st.Anomalies)
	for _, ts := range st.Topics {
		t := a.topic([]byte(ts.Topic.Topic), ts.Topic.Publishes)
		if t == nil {
			a.topicOther += ts.Topic.Publishes
			continue
		}
		t.t.Publishes += ts.Topic.Publishes
		t.t.Bytes += ts.Topic.Bytes
		t.t.Retained += ts.Topic.Retained
		for i := range t.t.QoS {
			t.t.QoS[i] += ts.Topic.QoS[i]
		}
		for _, p := range ts.Publishers {
			if len(t.publishers) < 50 {
				t.publishers[p] = true
			}
		}
	}
	a.topicOther += st.TopicOther
	a.topicsOver += st.TopicsOver
	a.topicsRefused += st.TopicsRefused
	a.topicsSeen.MergeRegisters(st.TopicSketch)
	for _, f := range slices.Sorted(maps.Keys(st.Subs)) {
		for _, s := range st.Subs[f] {
			a.subscribe(f, s)
		}
	}
	a.subsRefused += st.SubsRefused
	for _, hs := range st.Hosts {
		ip, err := netip.ParseAddr(hs.Host.Addr)
		if err != nil {
			continue
		}
		h := a.host(ip, hs.Host.Frames, true)
		if h == nil {
			continue
		}
		h.h.Frames += hs.Host.Frames
		h.h.Bytes += hs.Host.Bytes
		h.h.SentBytes += hs.Host.SentBytes
		h.h.RecvBytes += hs.Host.RecvBytes
		for _, c := range hs.ClientIDs {
			h.addClientID(c)
		}
		for _, p := range hs.Peers {
			if pa, err := netip.ParseAddr(p); err == nil {
				h.addPeer(pa)
			}
		}
		h.broker = h.broker || hs.Broker
		h.publisher = h.publisher || hs.Publisher
		h.subscriber = h.subscriber || hs.Subscriber
		h.client = h.client || hs.Client
		h.tlsClient = h.tlsClient || hs.TLSClient
	}
	a.hostsOver += st.HostsOver
	a.hostsRefused += st.HostsRefused
	a.hostsSeen.MergeRegisters(st.HostSketch)
	for _, e := range st.Pairs {
		x, err1 := netip.ParseAddr(e.A)
		y, err2 := netip.ParseAddr(e.B)
		if err1 != nil || err2 != nil {
			continue
		}
		p := a.edge(x, y, e.Packets, true)
		if p == nil {
			continue
		}
		p.packets += e.Packets
		p.bytes += e.Bytes
		p.flows += e.Flows
	}
	a.edgesOver += st.EdgesOver
	a.edgesRefused += st.EdgesRefused
	for _, po := range st.Ports {
		k := portKey{port: po.Port, udp: po.Proto == "udp"}
		p := a.ports[k]
		if p == nil {
			if len(a.ports) >= 65536 {
				continue
			}
			cp := po
			cp.Flows, cp.Packets, cp.Bytes = 0, 0, 0
			p = &cp
			a.ports[k] = p
		}
		p.Flows += po.Flows
		p.Packets += po.Packets
		p.Bytes += po.Bytes
		if p.Service == "" || (po.Service != "" && len(po.Service) > len(p.Service)) {
			p.Service = po.Service
		}
	}
	for _, f := range st.Flows {
		a.keepFlow(f)
	}
	a.flowStates = addCounts(a.flowStates, st.FlowStates)
	a.flowProtos = addCounts(a.flowProtos, st.FlowProtos)
	a.flowCount += st.FlowCount
	for _, b := range st.Brokers {
		if ip, err := netip.ParseAddr(b); err == nil && len(a.brokers) < 1000 {
			a.brokers[ip] = true
		}
	}
	for _, c := range st.ClientIDs {
		a.addClientID([]byte(c))
	}
	a.clientIDsOver += st.ClientIDsOver
	a.clientIDsSeen.MergeRegisters(st.ClientIDSketch)
	a.versions = addCounts(a.versions, st.Versions)
	a.cleartext += st.Cleartext
	a.tls.merge(&st.TLS)
	for _, p := range st.KPoints {
		k := [2]int32{p.FrameLen, p.TCPLen}
		q := a.kpts[k]
		if q == nil {
			if len(a.kpts) >= 200000 {
				continue
			}
			a.kpts[k] = &kpoint{count: p.Count, firstFrame: p.FirstFrame, firstTS: p.FirstTS}
			continue
		}
		q.count += p.Count
		if p.FirstTS < q.firstTS || (p.FirstTS == q.firstTS && p.FirstFrame < q.firstFrame) {
			q.firstFrame, q.firstTS = p.FirstFrame, p.FirstTS
		}
	}
	a.kFrames += st.KFrames
	a.packets.Merge(&Series{Interval: a.packets.Interval, Values: st.Packets.Values, Offset: st.Packets.Offset, Dropped: st.Packets.Dropped,
		started: true, first: st.Origin})
	a.mqttSeries.Merge(&Series{Interval: a.mqttSeries.Interval, Values: st.MQTT.Values, Offset: st.MQTT.Offset, Dropped: st.MQTT.Dropped,
		started: true, first: st.Origin})
	a.fromCSV = a.fromCSV || st.FromCSV
	a.foldCounts()
	a.sum.add(&st.Summary)
}

// merge adds another TLS section.
func (t *tlsAgg) merge(o *TLSState) {
	r := &t.res
	r.Sessions += o.Res.Sessions
	r.MQTT += o.Res.MQTT
	r.ByVersion = addCounts(r.ByVersion, o.Res.ByVersion)
	r.BySuite = addCounts(r.BySuite, o.Res.BySuite)
	r.ClientCerts = addCounts(r.ClientCerts, o.Res.ClientCerts)
	for _, row := range o.Res.Rows {
		if len(r.Rows) < MaxTLSRows {
			r.Rows = append(r.Rows, row)
		} else {
			r.Dropped++
		}
	}
	r.Dropped += o.Res.Dropped
	for _, c := range o.Clients {
		if ip, err := netip.ParseAddr(c); err == nil && len(t.clients) < t.max {
			t.clients[ip] = true
		}
	}
	for _, s := range o.Servers {
		if ap, err := netip.ParseAddrPort(s); err == nil && len(t.servers) < t.max {
			t.servers[ap] = true
		}
	}
}

// OwnSummary is the pipeline Summary of the frames this analyzer saw (or
// the States merged into it), for a Result made without a pipeline run.
func (a *Analyzer) OwnSummary() *pipeline.Summary {
	a.foldCounts()
	s := a.sum
	out := &pipeline.Summary{Frames: s.Frames, Bytes: s.Bytes, First: a.first, Last: a.last, Decoded: orEmpty(s.Decoded),
		LinkTypes: orEmpty(s.LinkTypes), IPv4: s.IPv4, IPv6: s.IPv6, TCP: s.TCP, UDP: s.UDP, OtherL4: s.OtherL4, TCPStreams: s.TCPStreams,
		MQTTPackets: s.MQTTPackets, MQTTConns: s.MQTTConns, TLSConns: s.TLSConns, WebSocketConns: s.WebSocketConns,
		WebSocketMQTT: s.WebSocketMQTT, Gaps: s.Gaps, GapBytes: s.GapBytes, Warnings: []string{}}
	return out
}

func orEmpty(m map[string]int64) map[string]int64 {
	if m == nil {
		return map[string]int64{}
	}
	return m
}

// foldCounts moves the per-frame counters of decode status and link type
// into the summary's maps; whatever reads a.sum calls it first.
func (a *Analyzer) foldCounts() {
	for st, n := range a.statusN {
		if n > 0 {
			a.foldStatus(packet.Status(st), n)
			a.statusN[st] = 0
		}
	}
	a.foldLink()
}

func (a *Analyzer) foldStatus(st packet.Status, n int64) {
	if a.sum.Decoded == nil {
		a.sum.Decoded = map[string]int64{}
	}
	a.sum.Decoded[st.String()] += n
}

func (a *Analyzer) foldLink() {
	if a.linkN == 0 {
		return
	}
	if a.sum.LinkTypes == nil {
		a.sum.LinkTypes = map[string]int64{}
	}
	a.sum.LinkTypes[a.linkT.String()] += a.linkN
	a.linkN = 0
}

// sumFrame counts a frame in the analyzer's own summary.
func (a *Analyzer) sumFrame(f *pipeline.Frame) {
	s := &a.sum
	s.Frames++
	s.Bytes += int64(f.Len)
	if a.sum.Frames == 1 || f.TS < a.first {
		a.first = f.TS
	}
	if f.TS > a.last {
		a.last = f.TS
	}
	l := f.L
	// Counted in an array and a one-entry cache, folded into the summary's
	// maps when it is read (foldCounts): two string-keyed map updates a
	// frame were a twentieth of watch's pass.
	if int(l.Status) < len(a.statusN) {
		a.statusN[l.Status]++
	} else {
		a.foldStatus(l.Status, 1)
	}
	if lt := l.LinkType.Normalize(); lt == a.linkT && a.linkN > 0 {
		a.linkN++
	} else {
		a.foldLink()
		a.linkT, a.linkN = lt, 1
	}
	switch l.IPVersion {
	case 4:
		s.IPv4++
	case 6:
		s.IPv6++
	}
	if l.Status == 0 {
		switch {
		case l.IsTCP():
			s.TCP++
		case l.IsUDP():
			s.UDP++
		default:
			s.OtherL4++
		}
	}
}

// sumFlow counts a connection when it leaves the table.
func (a *Analyzer) sumFlow(ev *pipeline.Flow) {
	s := &a.sum
	s.TCPStreams++
	switch ev.Proto {
	case pipeline.ProtoMQTT:
		s.MQTTConns++
		if ev.Session != nil && ev.Session.Transport == pipeline.TransportWebSocket {
			s.WebSocketMQTT++
			s.WebSocketConns++
		}
	case pipeline.ProtoTLS:
		s.TLSConns++
	case pipeline.ProtoWebSocket:
		s.WebSocketConns++
	}
}

// OnAnomaly counts the capture's gaps (for the own summary).
func (a *Analyzer) OnAnomaly(an *pipeline.Anomaly) {
	if an.Kind == pipeline.AnomalyStreamGap {
		a.sum.Gaps++
		a.sum.GapBytes += int64(an.Bytes)
	}
}

// sumMQTT counts an MQTT packet.
func (a *Analyzer) sumMQTT(*mqtt.Packet) { a.sum.MQTTPackets++ }
