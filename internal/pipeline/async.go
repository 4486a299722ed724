package pipeline

import (
	"slices"

	"github.com/iomtguard/iomtguard/internal/dataset"
	"github.com/iomtguard/iomtguard/internal/mqtt"
	"github.com/iomtguard/iomtguard/internal/packet"
	"github.com/iomtguard/iomtguard/internal/tcpstream"
	"github.com/iomtguard/iomtguard/internal/tlsinfo"
)

// Idler is implemented by consumers that hold events back (Async): the
// engine calls OnIdle when its input may wait before the next record (a
// live source's batch is used up), so that nothing waits behind a quiet
// network.
type Idler interface {
	OnIdle()
}

// AsyncConsumers runs consumers on a goroutine of their own, behind the
// engine's: decoding and reassembly on one core, aggregation and detection
// on the other (profiling analyze and watch showed the two halves of about
// equal cost). Create it with Async and give it to New as one consumer.
//
// The engine reuses its events; AsyncConsumers copies each into a batch
// (frames, decoded layers, payload bytes, MQTT packets into an arena, so
// that a batch costs no allocation once warm) and delivers the batch, in
// the same order, on its goroutine. Consumers see the same contract as
// synchronous ones, with one difference that they cannot notice: the
// *tcpstream.Conn and *Session they get are copies that this type keeps
// one per connection (so that pointer identity holds, as consumers use it
// as a map key), refreshed with the engine's values as of each event.
//
// Ticks, OnIdle and Finish hand the pending batch on at once; Finish
// waits until every event is delivered, then calls the consumers'
// Finish on the caller's goroutine. Nothing is dropped: a full queue makes
// the engine wait.
type AsyncConsumers struct {
	cons       []Consumer
	full, free chan *asyncBatch
	done       chan struct{}
	cur        *asyncBatch
	finished   bool
	conns      map[*tcpstream.Conn]*tcpstream.Conn // worker side: the copies consumers see
	// The copy shadowConn refreshed last, from which batch slot.
	lastBatch  *asyncBatch
	lastConn   int32
	lastShadow *tcpstream.Conn
	sessions   map[*Session]*Session
}

// Async starts the goroutine that will run consumers.
func Async(consumers ...Consumer) *AsyncConsumers {
	const depth = 4
	a := &AsyncConsumers{cons: consumers, full: make(chan *asyncBatch, depth), free: make(chan *asyncBatch, depth+1),
		done: make(chan struct{}), conns: map[*tcpstream.Conn]*tcpstream.Conn{}, sessions: map[*Session]*Session{}}
	for i := 0; i < depth; i++ {
		a.free <- newAsyncBatch()
	}
	a.cur = newAsyncBatch()
	go a.work()
	return a
}

// A batch is handed on when it holds this many frames or arena bytes
// (variables for the tests, which cut batches everywhere).
var (
	asyncFrames = 2048
	asyncBytes  = 1 << 20
)

type asyncKind uint8

const (
	aFrame asyncKind = iota
	aMQTT
	aTLS
	aFlow
	aAnomaly
	aTick
)

type asyncEvent struct {
	kind asyncKind
	i    int32 // index in the kind's slice
}

type connRef struct {
	orig  *tcpstream.Conn
	facts tcpstream.Conn
}

type sessRef struct {
	orig  *Session
	facts Session
}

type asyncFrame struct {
	f              Frame // L, TCP, Row and Secret are set at delivery
	seg            tcpstream.Segment
	hasSeg         bool
	layers         int32 // the decoded layers' copy in the batch; -1: none
	conn, row      int32 // -1: none
	secLo, secHi   int32
	hasSecret      bool
	rowPay, rowMsg [2]int32
}

// asyncLayers is the copy of a frame's decoded layers. The MQTT events of
// a frame and the frame itself share one (the layers do not change once
// decoded; copying them, payload and all, once per event was a fifth of the
// engine side's time).
type asyncLayers struct {
	l            packet.Frame
	payLo, payHi int32 // L.Payload in the arena
}

type asyncMQTT struct {
	ev                     MQTT
	frame, conn, sess, pkt int32
}

type asyncTLS struct {
	ev          TLS
	frame, conn int32
}

type asyncFlow struct {
	ev         Flow
	conn, sess int32
}

type asyncAnomaly struct {
	ev   Anomaly
	conn int32
}

type asyncBatch struct {
	evs    []asyncEvent
	frames []asyncFrame
	mqtts  []asyncMQTT
	tlss   []asyncTLS
	flows  []asyncFlow
	anoms  []asyncAnomaly
	ticks  []int64
	conns  []connRef
	sess   []sessRef
	layers []asyncLayers
	// The last frame whose layers were copied: its number, and its copy.
	lastNum    int
	lastLayers int32
	pkts       []mqtt.Packet
	rows       []dataset.Row
	arena      []byte
	subs       []mqtt.Subscription
	spans      []mqtt.Span
}

func newAsyncBatch() *asyncBatch { return &asyncBatch{lastLayers: -1} }

func (b *asyncBatch) reset() {
	clear(b.pkts) // drop references to the arenas of earlier batches
	clear(b.tlss)
	clear(b.flows)
	clear(b.sess)
	b.evs, b.frames, b.mqtts, b.tlss, b.flows, b.anoms, b.ticks = b.evs[:0], b.frames[:0], b.mqtts[:0], b.tlss[:0], b.flows[:0], b.anoms[:0], b.ticks[:0]
	b.conns, b.sess, b.pkts, b.rows, b.arena, b.subs, b.spans = b.conns[:0], b.sess[:0], b.pkts[:0], b.rows[:0], b.arena[:0], b.subs[:0], b.spans[:0]
	b.layers, b.lastNum, b.lastLayers = b.layers[:0], 0, -1
}

// --- the engine's side -------------------------------------------------

// bytes copies p into the arena; slice gives the copy back, nil for nil
// and empty for empty, as consumers may tell them apart.
func (b *asyncBatch) bytes(p []byte) (lo, hi int32) {
	if p == nil {
		return -1, -1
	}
	lo = int32(len(b.arena))
	b.arena = append(b.arena, p...)
	return lo, int32(len(b.arena))
}

func (b *asyncBatch) slice(lo, hi int32) []byte {
	switch {
	case lo < 0:
		return nil
	case lo == hi:
		return []byte{}
	}
	return b.arena[lo:hi:hi]
}

func (b *asyncBatch) conn(c *tcpstream.Conn) int32 {
	if c == nil {
		return -1
	}
	// A frame's MQTT events and the frame itself mostly see the same
	// facts: one copy serves them (copying them for each event was a
	// quarter of the engine side's time).
	if n := len(b.conns); n > 0 && b.conns[n-1].orig == c && c.SameFacts(&b.conns[n-1].facts) {
		return int32(n - 1)
	}
	b.conns = append(b.conns, connRef{orig: c})
	r := &b.conns[len(b.conns)-1]
	c.CopyFacts(&r.facts)
	return int32(len(b.conns) - 1)
}

func (b *asyncBatch) session(s *Session) int32 {
	if s == nil {
		return -1
	}
	b.sess = append(b.sess, sessRef{orig: s})
	s.copyFacts(&b.sess[len(b.sess)-1].facts) // the decoder's state stays with the engine
	return int32(len(b.sess) - 1)
}

// frame copies f into slot i (a new slot when i < 0) and returns the slot.
func (b *asyncBatch) frame(f *Frame, i int32) int32 {
	if i < 0 {
		b.frames = append(b.frames, asyncFrame{})
		i = int32(len(b.frames) - 1)
	}
	af := &b.frames[i]
	af.f = *f
	af.f.L, af.f.TCP, af.f.Row, af.f.Secret = nil, nil, nil, nil
	af.layers, af.conn, af.row, af.hasSeg, af.hasSecret = -1, -1, -1, false, false
	if f.L != nil {
		if f.Num != b.lastNum || b.lastLayers < 0 {
			b.layers = append(b.layers, asyncLayers{l: *f.L})
			r := &b.layers[len(b.layers)-1]
			r.payLo, r.payHi = b.bytes(f.L.Payload)
			r.l.Payload = nil
			b.lastNum, b.lastLayers = f.Num, int32(len(b.layers)-1)
		}
		af.layers = b.lastLayers
	}
	if f.TCP != nil {
		af.seg, af.hasSeg = *f.TCP, true
		af.seg.Conn = nil
		af.conn = b.conn(f.TCP.Conn)
	}
	if f.Row != nil {
		b.rows = append(b.rows, *f.Row)
		af.row = int32(len(b.rows) - 1)
		af.rowPay[0], af.rowPay[1] = b.bytes(f.Row.Payload)
		af.rowMsg[0], af.rowMsg[1] = b.bytes(f.Row.Msg)
	}
	if f.Secret != nil {
		af.hasSecret = true
		af.secLo = int32(len(b.spans))
		b.spans = append(b.spans, f.Secret...)
		af.secHi = int32(len(b.spans))
	}
	return i
}

// frameOf copies the frame an MQTT or TLS event belongs to as it is at
// the event (the engine completes the frame after its MQTT packets: what
// a consumer sees must not depend on whether it runs behind Async).
func (b *asyncBatch) frameOf(f *Frame) int32 {
	if f == nil {
		return -1
	}
	return b.frame(f, -1)
}

func (a *AsyncConsumers) OnFrame(f *Frame) {
	b := a.cur
	i := b.frame(f, -1)
	b.evs = append(b.evs, asyncEvent{aFrame, i})
	if len(b.frames) >= asyncFrames || len(b.arena) >= asyncBytes {
		a.ship()
	}
}

func (a *AsyncConsumers) OnMQTT(m *MQTT) {
	b := a.cur
	am := asyncMQTT{ev: *m, frame: b.frameOf(m.Frame), conn: b.conn(m.Conn), sess: b.session(m.Session), pkt: -1}
	if m.Pkt != nil {
		b.pkts = append(b.pkts, mqtt.Packet{})
		b.arena, b.subs = m.Pkt.CopyTo(&b.pkts[len(b.pkts)-1], b.arena, b.subs)
		am.pkt = int32(len(b.pkts) - 1)
	}
	am.ev.Frame, am.ev.Conn, am.ev.Session, am.ev.Pkt = nil, nil, nil, nil
	b.mqtts = append(b.mqtts, am)
	b.evs = append(b.evs, asyncEvent{aMQTT, int32(len(b.mqtts) - 1)})
}

func (a *AsyncConsumers) OnTLS(t *TLS) {
	b := a.cur
	at := asyncTLS{ev: *t, frame: b.frameOf(t.Frame), conn: b.conn(t.Conn)}
	at.ev.Frame, at.ev.Conn = nil, nil
	at.ev.Info = cloneHandshake(t.Info)
	b.tlss = append(b.tlss, at)
	b.evs = append(b.evs, asyncEvent{aTLS, int32(len(b.tlss) - 1)})
}

func (a *AsyncConsumers) OnFlow(f *Flow) {
	b := a.cur
	af := asyncFlow{ev: *f, conn: b.conn(f.Conn), sess: b.session(f.Session)}
	af.ev.Conn, af.ev.Session = nil, nil
	af.ev.TLS = cloneHandshake(f.TLS)
	b.flows = append(b.flows, af)
	b.evs = append(b.evs, asyncEvent{aFlow, int32(len(b.flows) - 1)})
}

func (a *AsyncConsumers) OnAnomaly(an *Anomaly) {
	b := a.cur
	aa := asyncAnomaly{ev: *an, conn: b.conn(an.Conn)}
	aa.ev.Conn = nil
	b.anoms = append(b.anoms, aa)
	b.evs = append(b.evs, asyncEvent{aAnomaly, int32(len(b.anoms) - 1)})
}

// OnTick is handed on at once: a tick is what a quiet network has.
func (a *AsyncConsumers) OnTick(ts int64) {
	b := a.cur
	b.ticks = append(b.ticks, ts)
	b.evs = append(b.evs, asyncEvent{aTick, int32(len(b.ticks) - 1)})
	a.ship()
}

// OnIdle hands on what is pending.
func (a *AsyncConsumers) OnIdle() {
	if len(a.cur.evs) > 0 {
		a.ship()
	}
}

// Finish delivers what is pending, waits for the consumers to have it all,
// then calls their Finish.
func (a *AsyncConsumers) Finish(s *Summary) {
	if a.finished {
		return
	}
	a.finished = true
	if len(a.cur.evs) > 0 {
		a.full <- a.cur
	}
	a.cur = nil
	close(a.full)
	<-a.done
	for _, c := range a.cons {
		if f, ok := c.(Finisher); ok {
			f.Finish(s)
		}
	}
}

func (a *AsyncConsumers) ship() {
	a.full <- a.cur
	a.cur = <-a.free
}

func cloneHandshake(h *tlsinfo.Handshake) *tlsinfo.Handshake {
	if h == nil {
		return nil
	}
	c := *h
	c.OfferedVersions = slices.Clone(h.OfferedVersions)
	c.OfferedSuites = slices.Clone(h.OfferedSuites)
	c.ALPN = slices.Clone(h.ALPN)
	c.Alerts = slices.Clone(h.Alerts)
	return &c
}

// --- the consumers' side -----------------------------------------------

func (a *AsyncConsumers) work() {
	defer close(a.done)
	for b := range a.full {
		a.deliver(b)
		a.lastBatch, a.lastShadow = nil, nil
		b.reset()
		a.free <- b
	}
}

// shadowConn refreshes and returns the consumers' copy of a connection.
func (a *AsyncConsumers) shadowConn(b *asyncBatch, i int32) *tcpstream.Conn {
	if i < 0 {
		return nil
	}
	if b == a.lastBatch && i == a.lastConn {
		return a.lastShadow // refreshed from this copy already
	}
	r := &b.conns[i]
	c := a.conns[r.orig]
	if c == nil {
		c = &tcpstream.Conn{}
		a.conns[r.orig] = c
	}
	r.facts.CopyFacts(c)
	a.lastBatch, a.lastConn, a.lastShadow = b, i, c
	return c
}

func (a *AsyncConsumers) shadowSession(b *asyncBatch, i int32) *Session {
	if i < 0 {
		return nil
	}
	r := &b.sess[i]
	s := a.sessions[r.orig]
	if s == nil {
		s = &Session{}
		a.sessions[r.orig] = s
	}
	r.facts.copyFacts(s)
	return s
}

// fixFrame points a frame slot's copy at the batch's copies.
func (a *AsyncConsumers) fixFrame(b *asyncBatch, i int32) *Frame {
	if i < 0 {
		return nil
	}
	af := &b.frames[i]
	f := &af.f
	if af.layers >= 0 {
		r := &b.layers[af.layers]
		r.l.Payload = b.slice(r.payLo, r.payHi)
		f.L = &r.l
	}
	if af.hasSeg {
		af.seg.Conn = a.shadowConn(b, af.conn)
		f.TCP = &af.seg
	}
	if af.row >= 0 {
		r := &b.rows[af.row]
		r.Payload = b.slice(af.rowPay[0], af.rowPay[1])
		r.Msg = b.slice(af.rowMsg[0], af.rowMsg[1])
		f.Row = r
	}
	if af.hasSecret {
		f.Secret = b.spans[af.secLo:af.secHi:af.secHi]
	}
	return f
}

func (a *AsyncConsumers) deliver(b *asyncBatch) {
	for _, ev := range b.evs {
		switch ev.kind {
		case aFrame:
			f := a.fixFrame(b, ev.i)
			for _, c := range a.cons {
				c.OnFrame(f)
			}
		case aMQTT:
			am := &b.mqtts[ev.i]
			m := &am.ev
			m.Frame = a.fixFrame(b, am.frame)
			m.Conn = a.shadowConn(b, am.conn)
			m.Session = a.shadowSession(b, am.sess)
			if am.pkt >= 0 {
				m.Pkt = &b.pkts[am.pkt]
			}
			for _, c := range a.cons {
				c.OnMQTT(m)
			}
		case aTLS:
			at := &b.tlss[ev.i]
			t := &at.ev
			t.Frame = a.fixFrame(b, at.frame)
			t.Conn = a.shadowConn(b, at.conn)
			for _, c := range a.cons {
				c.OnTLS(t)
			}
		case aFlow:
			af := &b.flows[ev.i]
			f := &af.ev
			f.Conn = a.shadowConn(b, af.conn)
			f.Session = a.shadowSession(b, af.sess)
			for _, c := range a.cons {
				c.OnFlow(f)
			}
			if f.Kind == FlowClosed && af.conn >= 0 {
				// The connection is not used again: neither are its copies.
				delete(a.conns, b.conns[af.conn].orig)
				a.lastBatch, a.lastShadow = nil, nil
				if af.sess >= 0 {
					delete(a.sessions, b.sess[af.sess].orig)
				}
			}
		case aAnomaly:
			an := &b.anoms[ev.i]
			x := &an.ev
			x.Conn = a.shadowConn(b, an.conn)
			for _, c := range a.cons {
				c.OnAnomaly(x)
			}
		case aTick:
			ts := b.ticks[ev.i]
			for _, c := range a.cons {
				if t, ok := c.(Ticker); ok {
					t.OnTick(ts)
				}
			}
		}
	}
}
