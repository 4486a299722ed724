package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/netip"
	"strings"

	"github.com/iomtguard/iomtguard/internal/capture"
	"github.com/iomtguard/iomtguard/internal/dataset"
	"github.com/iomtguard/iomtguard/internal/mqtt"
	"github.com/iomtguard/iomtguard/internal/packet"
	"github.com/iomtguard/iomtguard/internal/tcpstream"
	"github.com/iomtguard/iomtguard/internal/tlsinfo"
	"github.com/iomtguard/iomtguard/internal/websocket"
)

// Options configure the engine. The zero value is ready to use.
type Options struct {
	Flows tcpstream.Options
	// MQTTPorts are TCP ports whose traffic is decoded as MQTT whatever its
	// first bytes look like (default 1883 and 1884). Elsewhere MQTT is
	// recognised by its framing, and TLS by its record header, on any port.
	MQTTPorts []uint16
	// MaxPacketBuffer is how many bytes of one MQTT packet are held for
	// decoding (default 64 KiB); larger packets are decoded from their prefix.
	MaxPacketBuffer int
	Logger          *slog.Logger
	// Progress, when set, is called every 65,536 frames and at the end with the
	// bytes read so far and the total over all inputs.
	Progress func(done, total int64)
}

// InputSummary describes one input after the pass.
type InputSummary struct {
	Name    string `json:"name"`
	Format  string `json:"format"`
	Frames  int64  `json:"frames"`
	Damage  string `json:"damage,omitempty"`
	BadRows int    `json:"bad_rows,omitempty"`
}

// Summary describes the whole pass.
type Summary struct {
	Inputs         []InputSummary       `json:"inputs"`
	Frames         int64                `json:"frames"`
	Bytes          int64                `json:"bytes"`
	First          int64                `json:"first_ns"`
	Last           int64                `json:"last_ns"`
	Decoded        map[string]int64     `json:"decode_status"`
	LinkTypes      map[string]int64     `json:"link_types"`
	IPv4           int64                `json:"ipv4"`
	IPv6           int64                `json:"ipv6"`
	TCP            int64                `json:"tcp"`
	UDP            int64                `json:"udp"`
	OtherL4        int64                `json:"other_l4"`
	TCPStreams     int                  `json:"tcp_streams"`
	MQTTPackets    int64                `json:"mqtt_packets"`
	MQTTConns      int                  `json:"mqtt_connections"`
	TLSConns       int                  `json:"tls_connections"`
	WebSocketConns int                  `json:"websocket_connections"`
	WebSocketMQTT  int                  `json:"mqtt_over_websocket_connections"`
	Gaps           int64                `json:"tcp_gaps"`
	GapBytes       int64                `json:"tcp_gap_bytes"`
	Warnings       []string             `json:"warnings"`
	statusCount    [Malformed + 1]int64 `json:"-"`
	linkCount      map[capture.LinkType]int64
}

// Malformed is the last packet.Status, sizing the status counters.
const Malformed = packet.Malformed

// Span is the capture's duration in ns.
func (s *Summary) Span() int64 { return s.Last - s.First }

// Engine runs the single pass. Create one per run with New.
type Engine struct {
	opts     Options
	cons     []Consumer
	flows    *tcpstream.Table
	mqttPort [1024]uint64

	// The current run of frames of one link type, not yet in sum.linkCount.
	runLink  capture.LinkType
	runCount int64

	pkt    packet.Frame
	seg    tcpstream.Segment
	frame  Frame
	mqEv   MQTT
	mqPkt  mqtt.Packet
	altPkt mqtt.Packet
	tlsEv  TLS
	flowEv Flow
	anEv   Anomaly

	// brokers are the endpoints shown to be MQTT brokers by any connection
	// of the run (the destination of a CONNECT, the source of a CONNACK):
	// a connection picked up mid-stream takes its direction from them.
	brokers map[netip.AddrPort]struct{}

	spans   []mqtt.Span // scratch for credential spans
	secret  []mqtt.Span // the current frame's Secret
	rowData bool        // Data is being given an ICU CSV row's payload

	sum     Summary
	started bool
	first   int64
	prev    int64
	src     int
	inputs  []Input
}

// New returns an engine that will fan events out to consumers, in order.
func New(opts Options, consumers ...Consumer) *Engine {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.MaxPacketBuffer <= 0 {
		opts.MaxPacketBuffer = 64 << 10
	}
	if opts.MQTTPorts == nil {
		opts.MQTTPorts = []uint16{1883, 1884}
	}
	e := &Engine{opts: opts, cons: consumers, brokers: map[netip.AddrPort]struct{}{}}
	for _, p := range opts.MQTTPorts {
		e.mqttPort[p/64] |= 1 << (p % 64)
	}
	e.flows = tcpstream.New(opts.Flows, e)
	e.sum.linkCount = map[capture.LinkType]int64{}
	return e
}

func (e *Engine) isMQTTPort(p uint16) bool { return e.mqttPort[p/64]&(1<<(p%64)) != 0 }

// Run reads every input, merged in time order, to the end, then flushes the
// connection table and calls Finish on consumers that implement Finisher.
// A damaged input or bad CSV rows do not stop the run: they become warnings in
// the summary and Anomaly events. Run closes the inputs.
func (e *Engine) Run(ctx context.Context, inputs ...Input) (*Summary, error) {
	e.inputs = inputs
	defer func() {
		for _, in := range inputs {
			in.Close()
		}
	}()
	e.sum.Inputs = make([]InputSummary, len(inputs))
	for i, in := range inputs {
		e.sum.Inputs[i] = InputSummary{Name: in.Name(), Format: in.Format()}
	}
	recs := make([]Record, len(inputs))
	m := merger{recs: recs}
	for i := range inputs {
		if e.advance(i, &recs[i]) {
			m.push(i)
		}
	}
	var n int64
	for len(m.heap) > 0 {
		best := m.heap[0]
		e.src = best
		if recs[best].Tick {
			e.tick(recs[best].TS)
			if err := ctx.Err(); err != nil {
				return e.finish(), err
			}
			m.next(e.advance(best, &recs[best]))
			continue
		}
		e.sum.Inputs[best].Frames++
		if recs[best].Row != nil {
			e.row(recs[best].Row, recs[best].TS)
		} else {
			e.packet(&recs[best].Pkt)
		}
		if recs[best].Idle {
			e.idle()
		}
		n++
		if n&0xffff == 0 {
			if err := ctx.Err(); err != nil {
				return e.finish(), err
			}
			e.progress()
		}
		m.next(e.advance(best, &recs[best]))
	}
	e.progress()
	return e.finish(), nil
}

// merger orders the inputs by their next record's time, the lower index
// first on equal times: a binary heap of input indices, so that picking
// the next record costs log(inputs), not inputs (a day of a rotating
// capture is a thousand files or more, all given at once).
type merger struct {
	recs []Record
	heap []int
}

func (m *merger) less(a, b int) bool {
	ta, tb := m.recs[a].TS, m.recs[b].TS
	return ta < tb || ta == tb && a < b
}

func (m *merger) push(i int) {
	m.heap = append(m.heap, i)
	for c := len(m.heap) - 1; c > 0; {
		p := (c - 1) / 2
		if !m.less(m.heap[c], m.heap[p]) {
			break
		}
		m.heap[c], m.heap[p] = m.heap[p], m.heap[c]
		c = p
	}
}

// next puts the first input back in its place after it was advanced
// (live: it has another record), or takes it out.
func (m *merger) next(live bool) {
	if !live {
		last := len(m.heap) - 1
		m.heap[0] = m.heap[last]
		m.heap = m.heap[:last]
	}
	h := m.heap
	for p := 0; ; {
		c := 2*p + 1
		if c >= len(h) {
			return
		}
		if c+1 < len(h) && m.less(h[c+1], h[c]) {
			c++
		}
		if !m.less(h[c], h[p]) {
			return
		}
		h[c], h[p] = h[p], h[c]
		p = c
	}
}

// idle tells the consumers that hold events back to hand them on.
func (e *Engine) idle() {
	for _, c := range e.cons {
		if i, ok := c.(Idler); ok {
			i.OnIdle()
		}
	}
}

// tick passes the capture clock to the consumers that follow it; a tick
// earlier than the last frame is ignored (time never goes back).
func (e *Engine) tick(ts int64) {
	if ts < e.sum.Last {
		return
	}
	for _, c := range e.cons {
		if t, ok := c.(Ticker); ok {
			t.OnTick(ts)
		}
	}
}

func (e *Engine) progress() {
	if e.opts.Progress == nil {
		return
	}
	var done, total int64
	for _, in := range e.inputs {
		d, t := in.Progress()
		done += d
		total += t
	}
	e.opts.Progress(done, total)
}

// advance reads the next record of input i, turning errors into warnings.
func (e *Engine) advance(i int, rec *Record) bool {
	for {
		err := e.inputs[i].Next(rec)
		if err == nil {
			return true
		}
		if err == io.EOF {
			return false
		}
		var rowErr *dataset.RowError
		if errors.As(err, &rowErr) {
			is := &e.sum.Inputs[i]
			is.BadRows++
			if is.BadRows <= 20 {
				e.sum.Warnings = append(e.sum.Warnings, fmt.Sprintf("%s: %v (row skipped)", is.Name, err))
			}
			e.anomaly(Anomaly{Kind: AnomalyBadRow, Source: i, Detail: err.Error()})
			continue
		}
		var dmg *capture.DamageError
		msg := err.Error()
		if errors.As(err, &dmg) {
			msg = fmt.Sprintf("damaged after frame %d (byte offset %d): %s; results cover the frames before it", dmg.Packet, dmg.Offset, dmg.Reason)
		}
		e.sum.Inputs[i].Damage = msg
		e.sum.Warnings = append(e.sum.Warnings, fmt.Sprintf("%s: %s", e.inputs[i].Name(), msg))
		e.anomaly(Anomaly{Kind: AnomalyCaptureDamaged, Source: i, Frame: int(e.sum.Frames), TS: e.prev, Detail: msg})
		return false
	}
}

// beginFrame fills the fields every frame has and returns it.
func (e *Engine) beginFrame(ts int64, capLen, length int) *Frame {
	if !e.started {
		e.started = true
		e.first, e.prev = ts, ts
		e.sum.First = ts
	}
	e.sum.Frames++
	e.sum.Bytes += int64(length)
	if ts > e.sum.Last {
		e.sum.Last = ts
	}
	f := &e.frame
	*f = Frame{Num: int(e.sum.Frames), Source: e.src, TS: ts, Rel: ts - e.first, Delta: ts - e.prev,
		CapLen: capLen, Len: length, L: &e.pkt}
	e.prev = ts
	return f
}

func (e *Engine) packet(p *capture.Packet) {
	f := e.beginFrame(p.Timestamp, p.CapLen, p.OrigLen)
	// A record whose captured length exceeds its original length is
	// corrupt: frame.len stays the original length, and the bytes captured
	// are decoded (tshark does both).
	packet.DecodeLen(p.LinkType, p.Data, max(p.CapLen, p.OrigLen), &e.pkt)
	e.countLayers(p.LinkType)
	if e.pkt.IsTCP() {
		e.flows.Track(&e.pkt, p.Timestamp, p.OrigLen, &e.seg)
		f.TCP = &e.seg
		if e.seg.New {
			e.seg.Conn.FirstFrame = f.Num
			e.flowEvent(FlowOpened, e.seg.Conn)
		}
		if n := len(e.pkt.Payload); n > 0 {
			rel := e.seg.RelSeq
			if e.pkt.TCP.Flags&packet.FlagSYN != 0 {
				rel++
			}
			if a, ok := e.seg.Conn.App.(*connApp); ok {
				f.Proto = a.proto
				e.frameSecrets(f, a, e.seg.Dir, a.cred[e.seg.Dir].unwrap(rel), n)
			} else {
				// None of the connection's bytes has been read yet (this
				// segment is held out of order): it could be a CONNECT.
				e.secret = append(e.secret[:0], mqtt.Span{Len: n})
				f.Secret = e.secret
			}
		} else if a, ok := e.seg.Conn.App.(*connApp); ok {
			f.Proto = a.proto
		}
	}
	for _, c := range e.cons {
		c.OnFrame(f)
	}
}

func (e *Engine) countLayers(lt capture.LinkType) {
	st := e.pkt.Status
	e.sum.statusCount[st]++
	// The link type rarely changes: frames are counted in a run and the
	// run goes to the map when it does (a map update per frame was 2 % of
	// analyze's pass).
	if lt != e.runLink || e.runCount == 0 {
		e.foldLinkRun()
		e.runLink = lt
	}
	e.runCount++
	switch e.pkt.IPVersion {
	case 4:
		e.sum.IPv4++
	case 6:
		e.sum.IPv6++
	}
	if st == packet.OK {
		switch e.pkt.IPProto {
		case packet.ProtoTCP:
			e.sum.TCP++
		case packet.ProtoUDP:
			e.sum.UDP++
		default:
			e.sum.OtherL4++
		}
	}
}

// row turns one ICU dataset row into the same events a captured frame gives.
func (e *Engine) row(r *dataset.Row, ts int64) {
	length := r.FrameLen
	f := e.beginFrame(ts, length, length)
	// The file's own deltas are authoritative (merged inputs aside).
	if len(e.inputs) == 1 {
		f.Delta = int64(math.Round(r.TimeDelta * 1e9))
	}
	f.Row = r
	l := &e.pkt
	*l = packet.Frame{Status: packet.OK, LinkType: capture.LinkSLL, TCP: packet.TCP{WScale: -1}}
	l.Src, l.Dst = r.Src, r.Dst
	l.SrcPort, l.DstPort = r.SrcPort, r.DstPort
	l.IPProto = r.IPProto
	if l.IPProto == 0 && (r.SrcPort != 0 || r.DstPort != 0) {
		l.IPProto = packet.ProtoTCP
	}
	l.TTL = r.TTL
	switch {
	case r.Src.Is4():
		l.IPVersion, l.EtherType = 4, 0x0800
	case r.Src.Is6():
		l.IPVersion, l.EtherType = 6, 0x86dd
	default:
		l.Status = packet.NotIP
	}
	l.TCP.Flags = r.TCPFlags
	l.TCP.HdrLen = uint8(r.HdrLen)
	l.TCP.Window = uint16(r.Window)
	l.TCP.Checksum = r.Checksum
	l.TCP.Ack = r.TCPAck
	l.PayloadLen = r.TCPLen
	l.Payload = r.Payload
	e.countLayers(capture.LinkSLL)
	if l.IsTCP() {
		e.flows.Observe(l, ts, length, &e.seg)
		e.seg.RelAck = r.TCPAck
		e.seg.Delta = int64(math.Round(r.TCPTimeDelta * 1e9))
		f.TCP = &e.seg
		c := e.seg.Conn
		if e.seg.New {
			c.FirstFrame = f.Num
			e.flowEvent(FlowOpened, c)
		}
		switch {
		case len(r.Payload) > 0:
			e.rowData = true
			e.Data(c, e.seg.Dir, r.Payload)
			e.rowData = false
		case r.MsgType != 0:
			e.rowMQTT(c, e.seg.Dir, r)
		}
		if a, ok := c.App.(*connApp); ok {
			f.Proto = a.proto
			if n := len(r.Payload); n > 0 {
				e.frameSecrets(f, a, e.seg.Dir, a.cred[e.seg.Dir].rowPos-int64(n), n)
			}
		}
	}
	for _, c := range e.cons {
		c.OnFrame(f)
	}
}

// rowMQTT builds an MQTT packet from a row's mqtt.* columns (used when the row
// has no tcp.payload to decode).
func (e *Engine) rowMQTT(c *tcpstream.Conn, d tcpstream.Dir, r *dataset.Row) {
	app := e.app(c)
	if app.proto == ProtoUnknown || app.proto == ProtoOther {
		app.proto = ProtoMQTT
		e.newSession(c, app)
	}
	if app.proto != ProtoMQTT {
		return
	}
	p := &e.mqPkt
	p.Reset()
	p.Type = mqtt.Type(r.MsgType)
	p.Header = r.HdrFlags
	if p.Header == 0 {
		p.Header = r.MsgType << 4
	}
	p.RemainingLength = r.MQTTLen
	p.Version = app.sess.Version
	p.Dup, p.QoS, p.Retain = r.Dup, r.QoS, r.Retain
	switch p.Type {
	case mqtt.CONNECT:
		p.ProtocolLevel = r.Ver
		p.ConnectFlags = r.Conflags
		p.KeepAlive = uint16(r.KeepAlive)
		p.ClientID = []byte(r.ClientID)
		p.WillLen = r.WillMsgLen
		p.Present |= mqtt.FieldProtocol | mqtt.FieldConnectFlags | mqtt.FieldKeepAlive | mqtt.FieldClientIDLen | mqtt.FieldClientID
	case mqtt.CONNACK:
		p.AckFlags, p.ReasonCode = r.ConackFlags, r.ConackVal
		p.Present |= mqtt.FieldAckFlags | mqtt.FieldReasonCode
	case mqtt.PUBLISH:
		p.Topic = []byte(r.Topic)
		p.Payload = r.Msg
		p.PayloadLen = len(r.Msg)
		p.Present |= mqtt.FieldTopicLen | mqtt.FieldPayload
		if len(p.Topic) > 0 {
			p.Present |= mqtt.FieldTopic
		}
	case mqtt.SUBSCRIBE, mqtt.UNSUBSCRIBE:
		if r.Topic != "" {
			p.Filters = append(p.Filters, mqtt.Subscription{Filter: []byte(r.Topic), Options: r.QoS})
			p.Present |= mqtt.FieldTopicLen | mqtt.FieldTopic | mqtt.FieldFilters
		}
	}
	e.deliverMQTT(c, d, app.sess, p, r.MQTTLen+2, false)
}

// connApp is the engine's per-connection application state (Conn.App).
type connApp struct {
	proto AppProto
	tries int
	sess  *Session
	tls   *tlsState
	ws    *websocket.Conn // the connection upgraded to WebSocket (its frames carry the MQTT)
	wsDir tcpstream.Dir   // the direction of the client's upgrade request
	cred  [2]credTrack    // where each direction's credentials are (secrets.go)
}

type tlsState struct {
	hs tlsinfo.Handshake
	st [2]tlsinfo.Stream
}

func (e *Engine) app(c *tcpstream.Conn) *connApp {
	if a, ok := c.App.(*connApp); ok {
		return a
	}
	a := &connApp{}
	c.App = a
	return a
}

// Data implements tcpstream.Receiver.
func (e *Engine) Data(c *tcpstream.Conn, d tcpstream.Dir, b []byte) {
	app := e.app(c)
	t := &app.cred[d]
	at := t.rowPos
	if !e.rowData {
		at = t.unwrap(c.Pos(d))
	}
	t.pos, t.known = at, true
	end := at + int64(len(b))
	if app.proto == ProtoUnknown || (app.proto == ProtoOther && app.tries < 4) {
		e.classify(c, d, app, b)
	}
	switch {
	case app.ws != nil:
		if !t.wsSet {
			t.wsBase, t.wsSet = at, true
		}
		e.wsData(c, d, app, b)
		if app.ws != nil {
			t.scanned = t.wsBase + app.ws.Done(app.wsIndex(d))
		} else {
			t.scanned = end
		}
	case app.proto == ProtoMQTT:
		e.mqttData(c, d, app.sess, b, t, at)
		t.scanned = end
	case app.proto == ProtoTLS:
		e.tlsData(c, d, app, b)
		t.scanned = end
	default:
		t.scanned = end
	}
	t.pos, t.rowPos = end, end
}

// wsIndex is the WebSocket decoder's index of direction d (0: the client's).
func (a *connApp) wsIndex(d tcpstream.Dir) int {
	if d == a.wsDir {
		return 0
	}
	return 1
}

func (e *Engine) classify(c *tcpstream.Conn, d tcpstream.Dir, app *connApp, b []byte) {
	app.tries++
	switch {
	case tlsinfo.Looks(b):
		app.proto = ProtoTLS
		app.tls = &tlsState{}
		app.tls.st[0].FromClient = true
		e.sum.TLSConns++
		return
	case websocket.Looks(b):
		// An HTTP request: WebSocket if it asks to upgrade (decided as the
		// request completes), on any port.
		app.proto = ProtoWebSocket
		app.ws, app.wsDir = &websocket.Conn{}, d
		app.ws.OnSecret = func(wd int, from, to int64) {
			t := &app.cred[app.wsDir]
			t.add(t.wsBase+from, t.wsBase+to)
		}
		return
	case e.isMQTTPort(c.A.Port()) || e.isMQTTPort(c.B.Port()):
	case mqtt.LooksLikeConnect(b):
	case mqtt.Plausible(b):
	default:
		app.proto = ProtoOther
		return
	}
	app.proto = ProtoMQTT
	e.newSession(c, app)
}

func (e *Engine) newSession(c *tcpstream.Conn, app *connApp) {
	s := &Session{}
	for i := range s.framer {
		s.framer[i].MaxBuffer = e.opts.MaxPacketBuffer
	}
	switch {
	case c.SynSeen:
		// The side that opened the TCP connection is the MQTT client.
		s.ClientDir, s.ClientKnown = tcpstream.FromA, true
	case e.isMQTTPort(c.B.Port()):
		s.ClientDir, s.ClientKnown = tcpstream.FromA, true
	case e.isMQTTPort(c.A.Port()):
		s.ClientDir, s.ClientKnown = tcpstream.FromB, true
	default:
		e.knownBroker(c, s)
	}
	app.sess = s
	e.sum.MQTTConns++
	if e.rowData || !c.SynSeen {
		// The connection's first bytes may be the middle of a packet
		// (picked up mid-stream, or ICU CSV rows, which hold no sequence
		// numbers to order them by): mask until a packet decodes cleanly.
		app.cred[0].dubious, app.cred[1].dubious = true, true
	}
}

// maxBrokers bounds the table of known broker endpoints.
const maxBrokers = 10000

// knownBroker gives a session picked up mid-stream (no handshake, no
// CONNECT, no MQTT port) the direction an endpoint already shown to be a
// broker on another connection implies.
func (e *Engine) knownBroker(c *tcpstream.Conn, s *Session) {
	if _, ok := e.brokers[c.B]; ok {
		s.ClientDir, s.ClientKnown = tcpstream.FromA, true
	} else if _, ok := e.brokers[c.A]; ok {
		s.ClientDir, s.ClientKnown = tcpstream.FromB, true
	}
}

// learnDirection settles an unknown direction from the packet: a broker
// address known from another connection, or a packet only one side sends.
func (e *Engine) learnDirection(c *tcpstream.Conn, d tcpstream.Dir, s *Session, t mqtt.Type) {
	if e.knownBroker(c, s); s.ClientKnown {
		return
	}
	switch t {
	case mqtt.CONNECT, mqtt.SUBSCRIBE, mqtt.UNSUBSCRIBE, mqtt.PINGREQ:
		s.ClientDir, s.ClientKnown = d, true
	case mqtt.CONNACK, mqtt.SUBACK, mqtt.UNSUBACK, mqtt.PINGRESP:
		s.ClientDir, s.ClientKnown = 1-d, true
	}
}

// noteBroker records the broker end of a connection whose direction is known.
func (e *Engine) noteBroker(c *tcpstream.Conn, s *Session) {
	if !s.ClientKnown || len(e.brokers) >= maxBrokers {
		return
	}
	e.brokers[c.Dst(s.ClientDir)] = struct{}{}
}

// wsData follows a WebSocket connection: its messages are MQTT when the
// handshake chose an MQTT subprotocol ("mqtt", "mqttv3.1") or the client's
// first message is a CONNECT; their bytes then go to the MQTT framer as if
// sent on TCP.
func (e *Engine) wsData(c *tcpstream.Conn, d tcpstream.Dir, app *connApp, b []byte) {
	wd := app.wsIndex(d)
	t := &app.cred[d]
	ev := app.ws.Feed(wd, b, func(p []byte, from, to int64) {
		if app.sess == nil {
			if !strings.Contains(strings.ToLower(app.ws.HS.Protocol+","+app.ws.HS.Protocols), "mqtt") && !(wd == 0 && mqtt.LooksLikeConnect(p)) {
				return // WebSocket carrying something else
			}
			app.proto = ProtoMQTT
			e.newSession(c, app)
			app.sess.Transport = TransportWebSocket
			app.sess.ClientDir, app.sess.ClientKnown = app.wsDir, true
			e.sum.WebSocketMQTT++
		}
		// Positions inside the frames are not tracked: a frame (or
		// compressed message) that carried a credential is masked whole.
		if e.mqttData(c, d, app.sess, p, t, -1) {
			t.add(t.wsBase+from, t.wsBase+to)
		}
	})
	if ev&websocket.EventRequest != 0 {
		e.sum.WebSocketConns++
	}
	if e.frame.PDUSize == 0 && app.ws.FirstFrame > 0 {
		e.frame.PDUSize = app.ws.FirstFrame // tshark's tcp.pdu.size: the WebSocket frame
	}
	if ev&websocket.EventError != 0 && app.ws.Err != nil {
		if !app.ws.Upgrade {
			// A plain HTTP request: not WebSocket.
			app.ws, app.proto = nil, ProtoOther
			return
		}
		e.anomaly(Anomaly{Kind: AnomalyWebSocket, Frame: e.frame.Num, TS: e.frame.TS, Source: e.src, Conn: c, Dir: d, Detail: app.ws.Err.Error()})
	}
}

// mqttData frames and decodes MQTT bytes of direction d. b starts at stream
// position at (-1: unknown, inside WebSocket frames); the credentials found
// are recorded in t, and mqttData reports whether any of the packets b
// completed or continued holds, or may hold, credentials.
func (e *Engine) mqttData(c *tcpstream.Conn, d tcpstream.Dir, s *Session, b []byte, t *credTrack, at int64) (secret bool) {
	fr := &s.framer[d]
	var out mqtt.Frame
	consumed := 0
	pos := func(back int) int64 {
		if at < 0 {
			return -1
		}
		return at + int64(consumed-back)
	}
	dubFrom := at
loop:
	for len(b) > 0 {
		skipped := fr.Skipped
		n, st := fr.Next(b, &out)
		b = b[n:]
		if skipped = fr.Skipped - skipped; skipped > 0 && at >= 0 && mayCarry(e.app(c), d) {
			// Bytes passed over while looking for a packet boundary: not
			// understood, so possibly a credential.
			t.add(at+int64(consumed), at+int64(consumed)+skipped)
		}
		consumed += n
		switch st {
		case mqtt.NeedMore:
			break loop
		case mqtt.Malformed:
			s.Anomalies |= mqtt.AnomalyMalformedLength
			e.anomaly(Anomaly{Kind: AnomalyMQTTFraming, Frame: e.frame.Num, TS: e.frame.TS, Source: e.src, Conn: c, Dir: d,
				Bytes: len(out.Bytes), Detail: "remaining length longer than four bytes [MQTT-1.5.5]: framing lost, resynchronising"})
		case mqtt.Complete:
			if e.markPacket(t, pos(out.Total), out.Bytes, out.Total, out.Total, out.Gapped) {
				secret = true
			}
			if out.Gapped {
				// Part of the packet was never captured: it is reported, not
				// decoded (tshark, too, never completes such a packet).
				s.Lost++
				e.anomaly(Anomaly{Kind: AnomalyMQTTLost, Frame: e.frame.Num, TS: e.frame.TS, Source: e.src, Conn: c, Dir: d,
					Bytes: out.Total, Detail: fmt.Sprintf("MQTT packet of %d bytes lost part of its bytes to a capture gap", out.Total)})
				continue
			}
			mqtt.Decode(out.Bytes, out.Total, s.Version, &e.mqPkt)
			p := &e.mqPkt
			if s.Level == 0 && s.Version != mqtt.V5 && p.Type != mqtt.CONNECT &&
				p.Anomalies&(mqtt.AnomalyTruncated|mqtt.AnomalyTrailingBytes) != 0 {
				// No CONNECT seen: try MQTT 5, whose properties explain the extra bytes.
				mqtt.Decode(out.Bytes, out.Total, mqtt.V5, &e.altPkt)
				if e.altPkt.Anomalies&(mqtt.AnomalyTruncated|mqtt.AnomalyTrailingBytes|mqtt.AnomalyProperties) == 0 {
					s.Version, s.Guessed = mqtt.V5, true
					e.mqPkt, e.altPkt = e.altPkt, e.mqPkt
					p = &e.mqPkt
				}
			}
			if t.dubious && p.Anomalies == 0 {
				// In step again: what came before this packet since the
				// loss is masked, what follows is read as usual.
				if at >= 0 {
					t.add(dubFrom, pos(out.Total))
				}
				t.dubious = false
			}
			e.deliverMQTT(c, d, s, p, out.Total, false)
		}
	}
	if t.dubious && at >= 0 {
		t.add(dubFrom, at+int64(consumed))
	}
	// A packet still arriving: its credentials' place may already be known.
	if fr.Pending() {
		held, total := fr.PendingBytes()
		if e.markPacket(t, pos(fr.Got()), held, fr.Got(), total, fr.PendingGapped()) {
			secret = true
		}
	}
	return secret
}

func (e *Engine) deliverMQTT(c *tcpstream.Conn, d tcpstream.Dir, s *Session, p *mqtt.Packet, total int, gapped bool) {
	if p.Type == mqtt.CONNECT {
		if s.Connects > 0 {
			p.Anomalies |= mqtt.AnomalyDoubleConnect // [MQTT-3.1.0-2]
		}
		s.Connects++
		s.ClientDir, s.ClientKnown = d, true
		if p.Has(mqtt.FieldProtocol) {
			s.Level = mqtt.Version(p.ProtocolLevel)
			s.Version, s.Guessed = s.Level, false
		}
		if p.Has(mqtt.FieldConnectFlags) {
			s.Password = p.PasswordPresent()
			s.CleanStart = p.CleanStart()
			s.Will = p.WillFlag()
			s.WillRetain = p.ConnectFlags&0x20 != 0
			s.KeepAlive = p.KeepAlive
		}
		if p.Has(mqtt.FieldClientID) && s.ClientID != string(p.ClientID) {
			s.ClientID = string(p.ClientID)
		}
		if p.Has(mqtt.FieldUsername) && s.Username != string(p.Username) {
			s.Username = string(p.Username)
		}
	}
	if !s.ClientKnown {
		e.learnDirection(c, d, s, p.Type)
	}
	fromClient := d == s.ClientDir
	if !s.First {
		s.First = true
		// The connection's start was captured but its first MQTT packet is
		// not the client's CONNECT (a CONNACK, a PUBLISH, ...). [MQTT-3.1.0-1]
		if c.SynSeen && !(p.Type == mqtt.CONNECT && fromClient) {
			p.Anomalies |= mqtt.AnomalyMissingConnect
		}
	}
	if s.gap[d] {
		// Bytes of this direction were missing from the capture before this
		// packet: the session has a hole.
		s.gap[d] = false
		p.Anomalies |= mqtt.AnomalyStreamGap
	}
	if p.Type == mqtt.CONNECT || p.Type == mqtt.CONNACK {
		e.noteBroker(c, s)
	}
	switch p.Type {
	case mqtt.CONNACK:
		if p.Has(mqtt.FieldReasonCode) {
			s.ConnAck = true
			s.ReturnCode = p.ReasonCode
			s.Accepted = p.ReasonCode == 0
		}
	case mqtt.PUBLISH:
		s.Publishes++
		if alias := p.Props.TopicAlias; alias != 0 && p.Props.Has(mqtt.PropTopicAlias) {
			// [MQTT-3.3.2-12]: a topic alias stands for the topic last sent with it
			// in this direction.
			m := s.aliases[d]
			if len(p.Topic) > 0 {
				if m == nil {
					m = map[uint16][]byte{}
					s.aliases[d] = m
				}
				if string(m[alias]) != string(p.Topic) {
					m[alias] = append([]byte(nil), p.Topic...)
				}
			} else {
				p.AliasTopic = m[alias]
				if p.AliasTopic == nil {
					p.AliasTopic = []byte{}
				}
				p.Present |= mqtt.FieldTopic
			}
		}
	case mqtt.SUBSCRIBE:
		s.Subscribes++
	case mqtt.DISCONNECT:
		s.Disconnect = true
	}
	s.Packets[d]++
	s.Anomalies |= p.Anomalies
	e.sum.MQTTPackets++
	f := &e.frame
	ev := &e.mqEv
	*ev = MQTT{Frame: f, Conn: c, Dir: d, FromClient: fromClient, Session: s, Pkt: p, Index: f.MQTTPackets, Gapped: gapped}
	if f.MQTTPackets == 0 {
		f.PDUSize = total
	}
	f.MQTTPackets++
	for _, cs := range e.cons {
		cs.OnMQTT(ev)
	}
}

func (e *Engine) tlsData(c *tcpstream.Conn, d tcpstream.Dir, app *connApp, b []byte) {
	t := app.tls
	// The side that sent the first TLS bytes (the ClientHello) is the client.
	idx := 0
	if d == tcpstream.FromB {
		idx = 1
	}
	what := t.st[idx].Feed(&t.hs, b)
	if what == 0 {
		return
	}
	if what&tlsinfo.EventMalformed != 0 {
		e.anomaly(Anomaly{Kind: AnomalyTLSMalformed, Frame: e.frame.Num, TS: e.frame.TS, Source: e.src, Conn: c, Dir: d, Detail: "TLS record or handshake did not parse"})
	}
	ev := &e.tlsEv
	*ev = TLS{Frame: &e.frame, Conn: c, Dir: d, What: what, Info: &t.hs}
	for _, cs := range e.cons {
		cs.OnTLS(ev)
	}
}

// Gap implements tcpstream.Receiver.
func (e *Engine) Gap(c *tcpstream.Conn, d tcpstream.Dir, n int) {
	e.sum.Gaps++
	e.sum.GapBytes += int64(n)
	{
		// Bytes never read: a late copy of them is masked if they could
		// have held a credential (even before the connection's first byte
		// was read, when it is not yet known to carry MQTT).
		a := e.app(c)
		t := &a.cred[d]
		end := t.unwrap(c.Pos(d))
		t.pos, t.known = end, true
		if a.proto == ProtoMQTT && a.ws == nil && e.gapInside(a.sess, d, n, t, end-int64(n)) {
			// Inside a packet whose length and type are known: they were
			// its bytes (all of it marked if it may hold a credential).
		} else if mayCarry(a, d) {
			t.add(end-int64(n), end)
			t.dubious = true
		}
		if a.ws == nil {
			t.scanned = end
		}
	}
	if a, ok := c.App.(*connApp); ok && a.ws != nil {
		wd := 0
		if d != a.wsDir {
			wd = 1
		}
		a.ws.Lost(wd)
	}
	if a, ok := c.App.(*connApp); ok && a.proto == ProtoMQTT {
		a.sess.Anomalies |= mqtt.AnomalyStreamGap
		a.sess.gap[d] = true
		if a.sess.framer[d].Gap(n) {
			a.sess.Lost++
			e.anomaly(Anomaly{Kind: AnomalyMQTTLost, Frame: e.frame.Num, TS: e.frame.TS, Source: e.src, Conn: c, Dir: d,
				Detail: "MQTT packet in progress lost to a capture gap"})
		}
	}
	e.anomaly(Anomaly{Kind: AnomalyStreamGap, Frame: e.frame.Num, TS: e.frame.TS, Source: e.src, Conn: c, Dir: d, Bytes: n,
		Detail: fmt.Sprintf("%d bytes missing from the capture", n)})
}

// Closed implements tcpstream.Receiver.
func (e *Engine) Closed(c *tcpstream.Conn) {
	if a, ok := c.App.(*connApp); ok && a.proto == ProtoMQTT {
		for d := range a.sess.framer {
			fr := &a.sess.framer[d]
			if fr.Pending() {
				a.sess.Truncated++
				_, total := fr.PendingBytes()
				e.anomaly(Anomaly{Kind: AnomalyMQTTTruncated, Frame: e.frame.Num, TS: c.Last, Source: e.src, Conn: c,
					Dir: tcpstream.Dir(d), Bytes: total, Detail: "MQTT packet cut by the end of its stream"})
			}
		}
	}
	e.flowEvent(FlowClosed, c)
}

func (e *Engine) flowEvent(k FlowKind, c *tcpstream.Conn) {
	ev := &e.flowEv
	*ev = Flow{Kind: k, Conn: c}
	if a, ok := c.App.(*connApp); ok {
		ev.Proto = a.proto
		ev.Session = a.sess
		if a.tls != nil {
			ev.TLS = &a.tls.hs
		}
	}
	for _, cs := range e.cons {
		cs.OnFlow(ev)
	}
}

func (e *Engine) anomaly(a Anomaly) {
	e.anEv = a
	for _, cs := range e.cons {
		cs.OnAnomaly(&e.anEv)
	}
}

// foldLinkRun counts the current run of frames in its link type.
func (e *Engine) foldLinkRun() {
	if e.runCount > 0 {
		e.sum.linkCount[e.runLink.Normalize()] += e.runCount
		e.runCount = 0
	}
}

func (e *Engine) finish() *Summary {
	e.flows.Flush()
	e.foldLinkRun()
	s := &e.sum
	s.TCPStreams = e.flows.Streams()
	s.Decoded = map[string]int64{}
	for st, n := range s.statusCount {
		if n > 0 {
			s.Decoded[packet.Status(st).String()] = n
		}
	}
	s.LinkTypes = map[string]int64{}
	for lt, n := range s.linkCount {
		s.LinkTypes[lt.String()] = n
	}
	if s.Frames == 0 {
		s.Warnings = append(s.Warnings, "no frames were read")
	}
	for _, c := range e.cons {
		if f, ok := c.(Finisher); ok {
			f.Finish(s)
		}
	}
	return s
}

// AddrPortString formats an endpoint as tshark does for IPv4 and IPv6.
func AddrPortString(a netip.AddrPort) string { return a.String() }
