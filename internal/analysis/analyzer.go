package analysis

import (
	"fmt"
	"math"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/iomtguard/iomtguard/internal/capture"
	"github.com/iomtguard/iomtguard/internal/dataset"
	"github.com/iomtguard/iomtguard/internal/mqtt"
	"github.com/iomtguard/iomtguard/internal/packet"
	"github.com/iomtguard/iomtguard/internal/pipeline"
	"github.com/iomtguard/iomtguard/internal/stats"
	"github.com/iomtguard/iomtguard/internal/tcpstream"
)

// Options configure an analysis. Zero values give the defaults.
type Options struct {
	Interval        time.Duration // traffic series interval (default 1 s, as the seed)
	Horizon         int           // forecast steps (default 60: the next minute)
	FitWindow       int           // the model is fitted to the last FitWindow points (default 3600)
	MaxPQ           int           // largest ARIMA p and q tried (default 2, the seed's grid)
	KMin, KMax      int           // k-means k range (default 2..6)
	Seed            uint64        // k-means seed
	AnomalyLevel    float64       // one-step interval coverage for anomalies (default 0.999)
	RobustZ         float64       // residual modified z threshold (default 3.5)
	OutlierDistance float64       // k-means outlier: standardised distance above this (default 3)
	OutlierShare    float64       // and a point shared by at most this share of frames (default 0.001)
	MaxFlowRows     int           // flows kept in the table (default 1000)
	MaxTopics       int           // topics tracked (default 10000; the rest are counted together)
	MaxHosts        int           // hosts tracked (default 100000)
	// The least a series needs for the model (and its anomalies) to be
	// fitted: ModelMinIntervals intervals (default 60), a mean of
	// ModelMinMean packets per interval (default 1) and traffic in a
	// ModelMinActive share of the intervals (default 0.25).
	ModelMinIntervals int
	ModelMinMean      float64
	ModelMinActive    float64
	// Now is the clock of Result.Generated and of the timings (default
	// time.Now; a fixed clock makes the output reproducible for golden tests).
	Now func() time.Time
	// NoKMeans and NoModel skip the k-means and the ARIMA model in Result
	// (a live window that shows only tables).
	NoKMeans, NoModel bool
	// NoColumns skips the Figure 1 columns (their State and Result are
	// empty): a live run's minutes when nothing keeps them (no history, no
	// hub), where they were a fifth of the consumers' time.
	NoColumns bool
	// Concurrent adds the Figure 1 columns' values on a goroutine of their
	// own (columns.go): analyze's single pass then uses a second core.
	Concurrent bool
	// ColumnCap is how many values other than small integers each Figure 1
	// column holds before its quartiles come from a sketch (default
	// stats.DefaultCap; a test sets it small to reach the sketch).
	ColumnCap int
	// Origin, when set, is the run's first frame (ns): series intervals
	// and relative times count from it, so that the analyzers of the
	// minutes of a live run merge (state.go). Zero: this analyzer's first frame.
	Origin int64
}

func (o *Options) defaults() {
	if o.Interval <= 0 {
		o.Interval = time.Second
	}
	if o.Horizon <= 0 {
		o.Horizon = 60
	}
	if o.FitWindow <= 0 {
		o.FitWindow = 3600
	}
	if o.MaxPQ <= 0 {
		o.MaxPQ = 2
	}
	if o.KMin <= 0 {
		o.KMin = 2
	}
	if o.KMax < o.KMin {
		o.KMax = max(6, o.KMin)
	}
	if o.AnomalyLevel <= 0 {
		o.AnomalyLevel = 0.999
	}
	if o.RobustZ <= 0 {
		o.RobustZ = 3.5
	}
	if o.OutlierDistance <= 0 {
		o.OutlierDistance = 3
	}
	if o.OutlierShare <= 0 {
		o.OutlierShare = 0.001
	}
	if o.MaxFlowRows <= 0 {
		o.MaxFlowRows = 1000
	}
	if o.MaxTopics <= 0 {
		o.MaxTopics = 10000
	}
	if o.MaxHosts <= 0 {
		o.MaxHosts = 100000
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.ModelMinIntervals <= 0 {
		o.ModelMinIntervals = 60
	}
	if o.ModelMinMean <= 0 {
		o.ModelMinMean = 1
	}
	if o.ModelMinActive <= 0 {
		o.ModelMinActive = 0.25
	}
}

// The described fields, in report order: the seed's Figure 1 columns first.
var describeFields = []string{"frame.time_delta", "frame.time_relative", "frame.len", "tcp.srcport", "tcp.dstport",
	"tcp.time_delta", "tcp.len", "tcp.ack", "ip.ttl", "tcp.hdr_len", "tcp.window_size_value", "mqtt.len"}

const (
	fTimeDelta = iota
	fTimeRel
	fFrameLen
	fSrcPort
	fDstPort
	fTCPDelta
	fTCPLen
	fTCPAck
	fTTL
	fHdrLen
	fWindow
	fMQTTLen
	nFields
)

type topicAgg struct {
	t          Topic
	publishers map[string]bool
	// The last publisher counted: a topic's messages mostly come from one
	// client, whose name and address are then not looked up again (the
	// per-message map updates were a tenth of OnMQTT).
	lastPub   string
	lastAddr  netip.Addr
	lastRound int64  // hostsOver when lastAddr was marked a publisher
	seq       uint32 // when it was made (evict.go)
	credit    int64  // what it brought before it was let in
}

// hostAgg is a host's sums. Its sets are made when they get a second
// member (clientIDs: a first): a flood from spoofed addresses makes a host
// of every address, each with one peer and no client ID, and the two maps
// made for each were a fifth of analyze's memory on 1M spoofed SYNs.
type hostAgg struct {
	h           Host
	clientID    string              // the first client ID (hasClientID)
	hasClientID bool                // clientID is set: "" is a client ID too
	clientIDs   map[string]bool     // every client ID, once there are two
	peer        netip.Addr          // the first peer
	peers       map[netip.Addr]bool // every peer, once there are two
	broker      bool
	publisher   bool
	subscriber  bool
	client      bool
	tlsClient   bool   // a client of MQTT over TLS (what it publishes is hidden)
	seq         uint32 // when it was made (evict.go)
	credit      int64  // what it brought before it was let in (evict.go)
}

// edgeAgg is a conversation between two hosts (pairKey), written out as an
// Edge when reported (edgeOut).
type edgeAgg struct {
	packets, bytes, flows int64
	seq                   uint32 // when it was made (evict.go)
	credit                int64  // what it brought before it was let in
}

type pairKey struct{ a, b netip.Addr }

type portKey struct {
	port uint16
	udp  bool
}

type kpoint struct {
	count      int64
	firstFrame int
	firstTS    int64
}

// Analyzer is the pipeline consumer that gathers everything the report needs.
type Analyzer struct {
	pipeline.Nop
	opts Options
	cols *colWorker // the worker of a frame's numbers (Options.Concurrent), or nil
	rec  frameRec   // a frame's numbers, when there is no worker

	// Frames by decode status and the current link type's run, not yet in
	// sum's maps (sumFrame, foldCounts).
	statusN [packet.Malformed + 1]int64
	linkT   capture.LinkType
	linkN   int64

	frameMQTT  bool
	firstLen   int
	msgTypes   [16]int64
	lengths    map[int]int64
	lenSmall   [4096]int64 // the common lengths (addLength's 4096)
	nLarge     int         // lengths of 4096 and more in lengths (addLength), counted without a map update (foldLengths moves them to lengths)
	qos        [4]int64
	retained   int64
	publishes  int64
	payload    int64
	anomalies  map[string]int64
	topics     map[string]*topicAgg
	topicOther int64 // publishes of topics not in topics (refused or let go)
	// Subscription filters -> their subscribers (subscribe): those with a
	// wildcard and those without apart, at most MaxTopics of each.
	subs, wildSubs map[string]map[string]bool
	subsRefused    int64 // subscriptions turned away past the bound (subscribe)
	hosts          map[netip.Addr]*hostAgg
	pairs          map[pairKey]*edgeAgg
	// The bounds of hosts and pairs (evict.go): entries let go and
	// newcomers refused, when each was made, who may come in.
	hostsOver, hostsRefused   int64 // hosts let go (it changes at every eviction) and refused
	edgesOver, edgesRefused   int64
	hostSeq, edgeSeq          uint32
	hostDoor, edgeDoor        admission
	hostsSeen                 stats.Distinct // every address that reached hosts
	topicsOver, topicsRefused int64
	topicSeq                  uint32
	topicDoor                 admission
	topicsSeen                stats.Distinct
	clientIDsOver             int64          // client IDs not kept in clientIDs (MaxHosts)
	clientIDsSeen             stats.Distinct // every client ID, once clientIDs is full
	ports                     map[portKey]*Port
	flows                     []Flow
	flowStates                map[string]int
	flowProtos                map[string]int
	flowCount                 int
	brokers                   map[netip.Addr]bool
	clientIDs                 map[string]bool
	versions                  map[string]int
	cleartext                 int
	tls                       *tlsAgg
	packets                   *Series
	mqttSeries                *Series
	start                     int64
	started                   bool
	fromCSV                   bool
	sum                       SummaryState // the frames' own Summary (state.go)
	conns                     map[*tcpstream.Conn]*connAcc
	lastConn                  *tcpstream.Conn // the last connection summed and its sums (a one-entry cache of conns)
	lastAcc                   *connAcc
	first                     int64 // first and last frame (ns)
	last                      int64

	// The worker's fields (Options.Concurrent: apply writes them for every
	// frame on its own goroutine), on cache lines of their own. Beside the
	// engine's per-frame fields, each write took the line from the other
	// core: profiling analyze put 27 ns a frame on reading started.
	_       [128]byte
	all, mq [nFields]stats.Describer
	kpts    map[[2]int32]*kpoint
	kcache  [1 << kcacheBits]kcacheEntry // recent points of kpts (kpointRow)
	kFrames int64
	_       [128]byte
}

// New returns an analyzer.
func New(opts Options) *Analyzer {
	opts.defaults()
	a := &Analyzer{opts: opts, lengths: map[int]int64{}, anomalies: map[string]int64{}, topics: map[string]*topicAgg{},
		subs: map[string]map[string]bool{}, wildSubs: map[string]map[string]bool{}, hosts: map[netip.Addr]*hostAgg{}, pairs: map[pairKey]*edgeAgg{},
		ports: map[portKey]*Port{}, flowStates: map[string]int{}, flowProtos: map[string]int{}, brokers: map[netip.Addr]bool{},
		clientIDs: map[string]bool{}, versions: map[string]int{}, kpts: map[[2]int32]*kpoint{}, tls: newTLSAgg(opts.MaxHosts),
		conns:   map[*tcpstream.Conn]*connAcc{},
		packets: NewSeries(opts.Interval, MetricPackets), mqttSeries: NewSeries(opts.Interval, MetricMQTT)}
	if opts.Origin != 0 {
		a.SetOrigin(opts.Origin)
	}
	for i := range a.all {
		a.all[i].Cap, a.mq[i].Cap = opts.ColumnCap, opts.ColumnCap
	}
	if opts.Concurrent && !opts.NoColumns {
		a.startColumns()
	}
	return a
}

// SetOrigin makes intervals and relative times count from ts, the run's
// first frame (a live run's minutes then merge).
// connAcc is a connection's traffic not yet counted in its hosts.
type connAcc struct {
	frames [2]int64 // by direction: from A, from B
	bytes  [2]int64
	// MQTT roles (and a client ID) of A and B that their hosts could not
	// take when the host table refused them (mark), for connHosts.
	roles       [2]uint8
	clientID    string
	hasClientID bool
	idSide      uint8
}

// MQTT roles of a host (mark).
const (
	roleClient uint8 = 1 << iota
	rolePublisher
	roleSubscriber
)

// mark gives the sender of ev an MQTT role (and a client ID): on its host,
// or, when the host table refuses it for now, on its connection's sums,
// for when the connection is counted in its hosts (evict.go). It reports
// whether the host took it.
func (a *Analyzer) mark(ev *pipeline.MQTT, role uint8, id []byte, hasID bool) bool {
	ip := ev.Conn.Src(ev.Dir).Addr()
	h := a.hosts[ip]
	if h == nil {
		acc := a.connSums(ev.Conn)
		// Weighed on the connection's frames so far, which connHosts
		// will bring again: an ask that does not add them (remember).
		if h = a.host(ip, acc.frames[0]+acc.frames[1], false); h == nil {
			side := uint8(0)
			if ev.Dir != tcpstream.FromA {
				side = 1
			}
			acc.roles[side] |= role
			if hasID {
				acc.clientID, acc.hasClientID, acc.idSide = string(id), true, side
			}
			return false
		}
	}
	h.setRoles(role)
	if hasID {
		h.addClientID(string(id))
	}
	return true
}

func (h *hostAgg) setRoles(r uint8) {
	h.client = h.client || r&roleClient != 0
	h.publisher = h.publisher || r&rolePublisher != 0
	h.subscriber = h.subscriber || r&roleSubscriber != 0
}

// connHostTook gives host h, side side of the connection whose sums are
// acc, the MQTT roles its host could not take before.
func (acc *connAcc) connHostTook(h *hostAgg, side uint8) {
	h.setRoles(acc.roles[side])
	if acc.hasClientID && acc.idSide == side {
		h.addClientID(acc.clientID)
	}
}

// maxConnAcc bounds the connections summed at once (past it they are
// flushed to their hosts and summing starts again).
const maxConnAcc = 1 << 20

// flushConns counts every open connection's traffic so far in its hosts
// and conversation.
func (a *Analyzer) flushConns() {
	for c, acc := range a.conns {
		a.connHosts(c, acc)
		c.SetSlot(a, nil)
	}
	clear(a.conns)
	a.lastConn, a.lastAcc = nil, nil
}

// connHosts counts a connection's traffic in its hosts and conversation.
func (a *Analyzer) connHosts(c *tcpstream.Conn, acc *connAcc) {
	if acc.frames[0]+acc.frames[1] == 0 {
		return
	}
	src, dst := c.A.Addr(), c.B.Addr()
	pk, by := acc.frames[0]+acc.frames[1], acc.bytes[0]+acc.bytes[1]
	if h := a.host(src, pk, true); h != nil {
		h.traffic(pk, acc.bytes[0], acc.bytes[1], dst)
		acc.connHostTook(h, 0)
	}
	if h := a.host(dst, pk, true); h != nil {
		h.traffic(pk, acc.bytes[1], acc.bytes[0], src)
		acc.connHostTook(h, 1)
	}
	if e := a.edge(src, dst, pk, true); e != nil {
		e.packets += pk
		e.bytes += by
	}
	*acc = connAcc{}
}

func (a *Analyzer) SetOrigin(ts int64) {
	a.syncColumns()
	a.started, a.start = true, ts
	a.packets.SetOrigin(ts)
	a.mqttSeries.SetOrigin(ts)
}

// OnMQTT counts the packet.
func (a *Analyzer) OnMQTT(ev *pipeline.MQTT) {
	p := ev.Pkt
	a.sumMQTT(p)
	if !a.frameMQTT {
		a.frameMQTT = true
		a.firstLen = p.RemainingLength
	}
	if a.cols != nil {
		a.cols.mqttAt(ev.Frame.TS)
	} else {
		a.mqttSeries.OnMQTT(ev)
	}
	a.msgTypes[p.Type&15]++
	if l := p.RemainingLength; l >= 0 && l < len(a.lenSmall) {
		a.lenSmall[l]++
	} else {
		a.addLength(l, 1)
	}
	if p.Anomalies != 0 {
		p.Anomalies.Each(func(x mqtt.Anomalies) { a.anomalies[x.Name()]++ })
	}
	s := ev.Session
	clientName := func() string {
		if s.ClientID != "" {
			return s.ClientID
		}
		return ev.Conn.Src(s.ClientDir).Addr().String()
	}
	switch p.Type {
	case mqtt.CONNECT:
		if p.Has(mqtt.FieldClientID) {
			a.addClientID(p.ClientID)
		}
		if b := ev.Conn.Dst(ev.Dir).Addr(); len(a.brokers) < 1000 {
			a.brokers[b] = true
		}
		a.mark(ev, roleClient, p.ClientID, p.Has(mqtt.FieldClientID))
	case mqtt.PUBLISH:
		a.publishes++
		a.payload += int64(p.PayloadLen)
		a.qos[p.QoS&3]++
		if p.Retain {
			a.retained++
		}
		t := a.topic(p.TopicName(), 1)
		if t == nil {
			a.topicOther++
			break
		}
		t.t.Publishes++
		t.t.Bytes += int64(p.PayloadLen)
		if p.Retain {
			t.t.Retained++
		}
		if p.QoS < 3 {
			t.t.QoS[p.QoS]++
		}
		if ev.FromClient {
			if s.ClientID == "" || s.ClientID != t.lastPub {
				if len(t.publishers) < 50 {
					t.publishers[clientName()] = true
				}
				t.lastPub = s.ClientID
			}
			// lastAddr's host is a publisher already, unless hosts were
			// let go since (hostsOver grows at every eviction).
			if src := ev.Conn.Src(ev.Dir).Addr(); src != t.lastAddr || t.lastRound != a.hostsOver {
				if a.mark(ev, rolePublisher, nil, false) {
					t.lastAddr, t.lastRound = src, a.hostsOver
				}
			}
		}
	case mqtt.SUBSCRIBE:
		for _, f := range p.Filters {
			a.subscribe(string(f.Filter), clientName())
		}
		a.mark(ev, roleSubscriber, nil, false)
	}
}

// subscribe records that client subscribed to filter (at most 50
// subscribers kept for each). Filters with a wildcard and those without are
// kept apart, at most MaxTopics of each, the first seen: a client
// subscribing to thousands of single topics (enumerating them) cannot
// crowd out a '#' that comes after and matches them all, and a topic's
// subscribers are a lookup among the filters without wildcards and a walk
// through those with (at 10,000 of each, a walk through all of them for
// each of 10,000 topics was 10^8 matches). Each refusal is counted: a
// SUBSCRIBE's filter turned away (a client that asks again is counted
// again), or, in a merge, a subscriber of a State's filter turned away.
func (a *Analyzer) subscribe(filter, client string) {
	table := a.subs
	if strings.ContainsAny(filter, "+#") {
		table = a.wildSubs
	}
	m := table[filter]
	if m == nil {
		if len(table) >= a.opts.MaxTopics {
			a.subsRefused++
			return
		}
		m = map[string]bool{}
		table[filter] = m
	}
	if len(m) < 50 {
		m[client] = true
	}
}

// addLength counts n messages of MQTT length l: every length below 4096
// (lenSmall's, at most 4,096 of them) and at most 100,000 others, the first
// seen (a run and its minutes merged count the same ones).
func (a *Analyzer) addLength(l int, n int64) {
	if l >= 0 && l < len(a.lenSmall) {
		a.lengths[l] += n
		return
	}
	if c, ok := a.lengths[l]; ok {
		a.lengths[l] = c + n
	} else if a.nLarge < 100000 {
		a.lengths[l] = n
		a.nLarge++
	}
}

// foldLengths moves the counts of lenSmall into lengths.
func (a *Analyzer) foldLengths() {
	for l, n := range a.lenSmall {
		if n > 0 {
			a.lengths[l] += n
			a.lenSmall[l] = 0
		}
	}
}

func (a *Analyzer) add(i int, v float64) {
	if a.opts.NoColumns {
		return
	}
	a.all[i].Add(v)
	if a.frameMQTT {
		a.mq[i].Add(v)
	}
}

// OnFrame adds the frame's fields.
func (a *Analyzer) OnFrame(f *pipeline.Frame) {
	if !a.started {
		a.started, a.start = true, f.TS
	}
	a.sumFrame(f)
	// A frame's numbers (the series, the Figure 1 columns, the k-means
	// points) go through one frameRec, applied by the worker or here.
	switch {
	case f.Row != nil:
		a.stopColumns() // rows are summed in place (columns.go)
		a.packets.OnFrame(f)
		a.mqttSeries.OnFrame(f)
		a.fromCSV = true
		a.addRow(f.Row)
	case a.cols != nil:
		a.queueFrame(f)
		a.addTraffic(f)
	default:
		fillRec(&a.rec, f, a.frameMQTT, a.firstLen)
		a.apply(&a.rec)
		a.addTraffic(f)
	}
	a.frameMQTT = false
}

// addTraffic adds a frame's traffic to its connection, hosts and port.
func (a *Analyzer) addTraffic(f *pipeline.Frame) {
	l := f.L
	if f.TCP != nil && l.IsTCP() {
		// A connection's frames are summed per connection (one lookup by
		// pointer) and go to its hosts and conversation when it closes, or
		// when a live window's minute ends (State): a live window then
		// shows connections that have not closed yet. (Counting hosts per
		// frame cost a sixth of the pass: five map updates a frame.)
		if c := f.TCP.Conn; c != nil {
			acc := a.lastAcc
			if c != a.lastConn {
				acc = a.connSums(c)
				a.lastConn, a.lastAcc = c, acc
			}
			d := f.TCP.Dir
			acc.frames[d]++
			acc.bytes[d] += int64(f.Len)
		}
	} else if l.Status == packet.OK || l.Status == packet.Fragment {
		if l.Src.IsValid() {
			a.frameHosts(l.Src, l.Dst, int64(f.Len))
			if l.IsUDP() {
				k := portKey{port: min(l.SrcPort, l.DstPort), udp: true}
				p := a.ports[k]
				if p == nil && len(a.ports) < 65536 {
					p = &Port{Port: k.port, Proto: "udp", Service: service(k.port, true)}
					a.ports[k] = p
				}
				if p != nil {
					p.Packets++
					p.Bytes += int64(f.Len)
				}
			}
		}
	}
}

// connSums is the sums of connection c, made when it has none. Its slot
// holds them while they are in conns (flushConns and OnFlow free it);
// conns is the authority when the slot had no room.
func (a *Analyzer) connSums(c *tcpstream.Conn) *connAcc {
	if acc, _ := c.Slot(a).(*connAcc); acc != nil {
		return acc
	}
	acc := a.conns[c]
	if acc == nil {
		if len(a.conns) >= maxConnAcc {
			a.flushConns()
		}
		acc = &connAcc{}
		a.conns[c] = acc
	}
	c.SetSlot(a, acc)
	return acc
}

// addRow adds an ICU dataset row's own values (its columns are authoritative).
func (a *Analyzer) addRow(r *dataset.Row) {
	rowValues(r, a.add)
	if r.Has[dataset.ColFrameLen] && r.Has[dataset.ColTCPLen] {
		a.kpointRow(r.FrameLen, r.TCPLen, int(r.Line), int64(math.Round(r.TimeRelative*1e9)))
	}
}

// rowValues calls add with each Figure 1 value a row has.
func rowValues(r *dataset.Row, add func(i int, v float64)) {
	put := func(i, c int, v float64) {
		if r.Has[c] {
			add(i, v)
		}
	}
	put(fTimeDelta, dataset.ColTimeDelta, r.TimeDelta)
	put(fTimeRel, dataset.ColTimeRelative, r.TimeRelative)
	put(fFrameLen, dataset.ColFrameLen, float64(r.FrameLen))
	put(fSrcPort, dataset.ColSrcPort, float64(r.SrcPort))
	put(fDstPort, dataset.ColDstPort, float64(r.DstPort))
	put(fTCPDelta, dataset.ColTCPTimeDelta, r.TCPTimeDelta)
	put(fTCPLen, dataset.ColTCPLen, float64(r.TCPLen))
	put(fTCPAck, dataset.ColTCPAck, float64(r.TCPAck))
	put(fTTL, dataset.ColIPTTL, float64(r.TTL))
	put(fHdrLen, dataset.ColHdrLen, float64(r.HdrLen))
	put(fWindow, dataset.ColWindow, float64(r.Window))
	put(fMQTTLen, dataset.ColMQTTLen, float64(r.MQTTLen))
}

func (a *Analyzer) kpointRow(flen, tlen, frame int, ts int64) {
	a.kFrames++
	k := [2]int32{int32(flen), int32(tlen)}
	// A direct-mapped cache before the map: a capture has few distinct
	// points, met again and again (profiling analyze: the map lookup for
	// every TCP frame was 5 % of its pass). Points are never removed from
	// kpts, so a cached one stays right.
	c := &a.kcache[(uint32(flen)*0x9E3779B1^uint32(tlen)*0x85EBCA6B)>>(32-kcacheBits)]
	if c.p != nil && c.k == k {
		c.p.count++
		return
	}
	if p := a.kpts[k]; p != nil {
		p.count++
		c.k, c.p = k, p
		return
	}
	if len(a.kpts) >= 200000 {
		return // points past the cap are not clustered (documented on MaxKPoints)
	}
	p := &kpoint{count: 1, firstFrame: frame, firstTS: ts}
	a.kpts[k] = p
	c.k, c.p = k, p
}

const kcacheBits = 10

type kcacheEntry struct {
	k [2]int32
	p *kpoint
}

func (a *Analyzer) frameHosts(src, dst netip.Addr, n int64) {
	if h := a.host(src, 1, true); h != nil {
		h.traffic(1, n, 0, dst)
	}
	if h := a.host(dst, 1, true); h != nil {
		h.traffic(1, 0, n, src)
	}
	if e := a.edge(src, dst, 1, true); e != nil {
		e.packets++
		e.bytes += n
	}
}

// OnFlow records a TCP connection when it leaves the table.
func (a *Analyzer) OnFlow(ev *pipeline.Flow) {
	if ev.Kind != pipeline.FlowClosed {
		return
	}
	a.sumFlow(ev)
	c := ev.Conn
	acc := a.conns[c]
	if acc != nil {
		a.connHosts(c, acc)
		delete(a.conns, c)
		c.SetSlot(a, nil)
	}
	if c == a.lastConn {
		a.lastConn, a.lastAcc = nil, nil
	}
	a.flowCount++
	st := c.State.String()
	a.flowStates[st]++
	proto := ev.Proto.String()
	a.flowProtos[proto]++
	pk := c.Stat[0].Packets + c.Stat[1].Packets
	by := c.Stat[0].Bytes + c.Stat[1].Bytes
	mqttTLS := false
	if ev.Proto == pipeline.ProtoTLS && ev.TLS != nil {
		a.tls.add(ev)
		mqttTLS = tlsPorts[c.B.Port()] || hasMQTTALPN(ev.TLS.ALPN)
	}
	if ev.Proto == pipeline.ProtoMQTT && ev.Session != nil {
		v := ev.Session.Level.String()
		if ev.Session.Level == 0 {
			v = "unknown"
		}
		a.versions[v]++
		a.cleartext++
	}
	if ev.Session != nil && ev.Session.Transport == pipeline.TransportWebSocket {
		proto = "mqtt/websocket"
	}
	fl := Flow{Stream: c.Index, Client: c.A.String(), Server: c.B.String(), Start: float64(c.Start-a.start) / 1e9,
		Duration: float64(c.Last-c.Start) / 1e9, Packets: pk, Bytes: by, Proto: proto, State: st, Closed: c.Reason.String(),
		Flags: flagString(c.Stat[0].Flags | c.Stat[1].Flags)}
	if ev.Session != nil {
		fl.ClientID = ev.Session.ClientID
		fl.MQTTPkts = ev.Session.Packets[0] + ev.Session.Packets[1]
	}
	a.keepFlow(fl)
	// Ports (the responder's), hosts and conversations.
	k := portKey{port: c.B.Port()}
	p := a.ports[k]
	if p == nil && len(a.ports) < 65536 {
		p = &Port{Port: k.port, Proto: "tcp", Service: service(k.port, false)}
		a.ports[k] = p
	}
	if p != nil {
		p.Flows++
		p.Packets += pk
		p.Bytes += by
		if ev.Proto == pipeline.ProtoMQTT && p.Service == "" {
			p.Service = "mqtt (recognised)"
		}
		if ev.Proto == pipeline.ProtoTLS && p.Service == "" {
			p.Service = "tls (recognised)"
		}
		if ev.Session != nil && ev.Session.Transport == pipeline.TransportWebSocket && !strings.Contains(p.Service, "websocket") {
			p.Service = "mqtt over websocket"
		}
	}
	src, dst := c.A.Addr(), c.B.Addr()
	if a.fromCSV {
		// Dataset rows carry no frame of their own per host: the connection
		// counts them when it closes.
		a.rowFlowHosts(c)
		if acc != nil {
			// Rows have no frames of their own: connHosts had none to
			// count, and the roles its hosts could not take wait still.
			for side, ip := range [2]netip.Addr{c.A.Addr(), c.B.Addr()} {
				if h := a.hosts[ip]; h != nil {
					acc.connHostTook(h, uint8(side))
				}
			}
		}
	}
	// One host at a time: making one may let another go (evict.go).
	if mqttTLS || ev.Proto == pipeline.ProtoMQTT && ev.Session != nil && ev.Session.ClientDir == tcpstream.FromA && ev.Session.Connects > 0 {
		if h := a.host(dst, 0, false); h != nil {
			h.broker = true
		}
	}
	if mqttTLS {
		if h := a.host(src, 0, false); h != nil {
			h.tlsClient = true
		}
	}
	if e := a.edge(src, dst, 0, false); e != nil {
		e.flows++
	}
}

// rowFlowHosts counts a connection of dataset rows in its hosts and
// conversation (rows are not counted one by one).
func (a *Analyzer) rowFlowHosts(c *tcpstream.Conn) {
	src, dst := c.A.Addr(), c.B.Addr()
	pk := c.Stat[0].Packets + c.Stat[1].Packets
	by := c.Stat[0].Bytes + c.Stat[1].Bytes
	if h := a.host(src, pk, true); h != nil {
		h.traffic(pk, c.Stat[0].Bytes, c.Stat[1].Bytes, dst)
	}
	if h := a.host(dst, pk, true); h != nil {
		h.traffic(pk, c.Stat[1].Bytes, c.Stat[0].Bytes, src)
	}
	if e := a.edge(src, dst, pk, true); e != nil {
		e.packets += pk
		e.bytes += by
	}
}

// edgeOut is the conversation e of key k as reported.
func edgeOut(k pairKey, e *edgeAgg) Edge {
	return Edge{A: k.a.String(), B: k.b.String(), Packets: e.packets, Bytes: e.bytes, Flows: e.flows}
}

// traffic counts frames the host took part in, the bytes it sent and
// received in them, and their peer.
func (h *hostAgg) traffic(frames, sent, recv int64, peer netip.Addr) {
	h.h.Frames += frames
	h.h.Bytes += sent + recv
	h.h.SentBytes += sent
	h.h.RecvBytes += recv
	h.addPeer(peer)
}

// addPeer records a peer of the host, up to 10,000 of them.
func (h *hostAgg) addPeer(p netip.Addr) {
	switch {
	case !h.peer.IsValid():
		h.peer = p
	case h.peers == nil:
		if p != h.peer {
			h.peers = map[netip.Addr]bool{h.peer: true, p: true}
		}
	case len(h.peers) < 10000:
		h.peers[p] = true
	}
}

// peerCount is the number of the host's peers recorded.
func (h *hostAgg) peerCount() int {
	if h.peers == nil && h.peer.IsValid() {
		return 1
	}
	return len(h.peers)
}

// peerList is the host's peers recorded, as text, sorted.
func (h *hostAgg) peerList() []string {
	if h.peers == nil && h.peer.IsValid() {
		return []string{h.peer.String()}
	}
	return addrList(h.peers)
}

// addClientID records a client ID the host used, up to 20 of them.
func (h *hostAgg) addClientID(id string) {
	switch {
	case !h.hasClientID:
		h.clientID, h.hasClientID = id, true
	case h.clientIDs == nil:
		if id != h.clientID {
			h.clientIDs = map[string]bool{h.clientID: true, id: true}
		}
	case len(h.clientIDs) < 20:
		h.clientIDs[id] = true
	}
}

// clientIDSet is the set of client IDs the host used.
func (h *hostAgg) clientIDSet() map[string]bool {
	if h.clientIDs == nil && h.hasClientID {
		return map[string]bool{h.clientID: true}
	}
	return h.clientIDs
}

// keepFlow keeps the MaxFlowRows largest flows (by bytes).
func (a *Analyzer) keepFlow(f Flow) {
	if len(a.flows) < 2*a.opts.MaxFlowRows {
		a.flows = append(a.flows, f)
		return
	}
	// Compact: keep the largest half.
	sort.Slice(a.flows, func(i, j int) bool { return a.flows[i].Bytes > a.flows[j].Bytes })
	a.flows = a.flows[:a.opts.MaxFlowRows]
	a.flows = append(a.flows, f)
}

func hasMQTTALPN(alpn []string) bool {
	for _, p := range alpn {
		if p == "mqtt" || p == "x-amzn-mqtt-ca" {
			return true
		}
	}
	return false
}

func flagString(f uint16) string {
	var b strings.Builder
	for _, x := range []struct {
		bit uint16
		c   byte
	}{{packet.FlagSYN, 'S'}, {packet.FlagACK, 'A'}, {packet.FlagPSH, 'P'}, {packet.FlagFIN, 'F'}, {packet.FlagRST, 'R'}, {packet.FlagURG, 'U'}} {
		if f&x.bit != 0 {
			b.WriteByte(x.c)
		}
	}
	return b.String()
}

// service names a well-known port.
func service(port uint16, udp bool) string {
	if udp {
		switch port {
		case 53:
			return "dns"
		case 123:
			return "ntp"
		case 5353:
			return "mdns"
		case 5683:
			return "coap"
		case 1900:
			return "ssdp"
		}
		return ""
	}
	switch port {
	case 1883:
		return "mqtt"
	case 8883:
		return "mqtt over tls"
	case 8884:
		return "mqtt over tls (alt)"
	case 443:
		return "https"
	case 80:
		return "http"
	case 22:
		return "ssh"
	case 23:
		return "telnet"
	case 502:
		return "modbus"
	case 104:
		return "dicom"
	case 2575:
		return "hl7"
	case 5683:
		return "coap"
	}
	return ""
}

func keys[K comparable, V any](m map[K]V, less func(a, b K) int) []K {
	out := make([]K, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.SortFunc(out, less)
	return out
}

func sortedStrings(m map[string]bool) []string {
	return keys(m, strings.Compare)
}

func fmtPct(n, total int64) string {
	if total == 0 {
		return "0 %"
	}
	return fmt.Sprintf("%.1f %%", 100*float64(n)/float64(total))
}
