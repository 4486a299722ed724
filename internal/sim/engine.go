// Package sim simulates the ICU of the IoT Healthcare Security Dataset
// (Hussain et al., Sensors 2021, Tables 1 and 2): beds of patient sensors
// with a control unit, environment sensors, an MQTT broker and a
// nurse-station subscriber, over TCP as Linux hosts speak it (handshakes,
// sequence and acknowledgement numbers, TCP timestamps, delayed ACKs, FIN),
// with attacks and posture weaknesses that can be switched on. It writes
// pcap or pcapng, with the ground truth of every attack.
//
// The same options and seed give the same bytes: all randomness comes from
// one seeded generator and events run in a fixed order.
package sim

import (
	"container/heap"
	"fmt"
	"math/rand/v2"
	"net/netip"

	"github.com/iomtguard/iomtguard/internal/capture"
	"github.com/iomtguard/iomtguard/internal/packet"
)

// event is a scheduled action.
type event struct {
	at  int64
	seq uint64
	fn  func()
}

type eventQueue []*event

func (q eventQueue) Len() int { return len(q) }
func (q eventQueue) Less(i, j int) bool {
	if q[i].at != q[j].at {
		return q[i].at < q[j].at
	}
	return q[i].seq < q[j].seq
}
func (q eventQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *eventQueue) Push(x any)   { *q = append(*q, x.(*event)) }
func (q *eventQueue) Pop() any {
	old := *q
	e := old[len(old)-1]
	*q = old[:len(old)-1]
	return e
}

// engine is the discrete-event core and the wire: every frame goes through
// emit, which timestamps it at the capture point (the broker's interface).
type engine struct {
	rng    *rand.Rand
	now    int64
	q      eventQueue
	seq    uint64
	w      capture.Writer
	link   capture.LinkType
	buf    []byte
	frames int
	err    error
	start  int64
	end    int64
	// tags of the frame being written (attack name, class)
	written []frameTag
	addrs   map[netip.Addr]string // host names by address: the plan gives each its own
}

type frameTag struct {
	attack string // "" for benign
	class  string
}

func newEngine(seed uint64, w capture.Writer, link capture.LinkType, start, end int64) *engine {
	return &engine{rng: rand.New(rand.NewPCG(seed, 0x1c0ffee)), w: w, link: link, now: start, start: start, end: end}
}

// after schedules fn d ns from now.
func (e *engine) after(d int64, fn func()) {
	e.seq++
	heap.Push(&e.q, &event{at: e.now + d, seq: e.seq, fn: fn})
}

// at schedules fn at time t.
func (e *engine) at(t int64, fn func()) {
	e.seq++
	heap.Push(&e.q, &event{at: t, seq: e.seq, fn: fn})
}

// run processes events until the queue is empty or time passes until.
func (e *engine) run(until int64) {
	for e.q.Len() > 0 && e.err == nil {
		ev := heap.Pop(&e.q).(*event)
		if ev.at > until {
			heap.Push(&e.q, ev)
			return
		}
		if ev.at > e.now {
			e.now = ev.at
		}
		ev.fn()
	}
}

// jitter returns a duration uniformly in [lo, hi] ns.
func (e *engine) jitter(lo, hi int64) int64 {
	if hi <= lo {
		return lo
	}
	return lo + e.rng.Int64N(hi-lo+1)
}

// emit writes one frame at the current time.
func (e *engine) emit(s *packet.Segment, tag frameTag) {
	if e.err != nil {
		return
	}
	e.buf = packet.AppendFrame(e.buf[:0], e.link, s)
	if err := e.w.WritePacket(e.now, e.buf, len(e.buf)); err != nil {
		e.err = err
		return
	}
	e.frames++
	e.written = append(e.written, tag)
}

// host is a simulated machine.
type host struct {
	ip       netip.Addr
	mac      [6]byte
	nextPort uint16
	tsBase   uint32
	ipid     uint16
	name     string
	class    string
}

func (e *engine) newHost(ip string, name, class string) *host {
	a := netip.MustParseAddr(ip) // addresses come from the plan in icu.go, not from input
	if e.addrs == nil {
		e.addrs = map[netip.Addr]string{}
	}
	if other, dup := e.addrs[a]; dup && other != name && name != "spoofed" {
		e.fail(fmt.Errorf("sim: address plan gives %s to both %s and %s", a, other, name))
	}
	e.addrs[a] = name
	b := a.As16()
	h := &host{ip: a, name: name, class: class, nextPort: uint16(32768 + e.rng.IntN(20000)), tsBase: e.rng.Uint32(), ipid: uint16(e.rng.Uint32())}
	h.mac = [6]byte{0x02, 0x42, b[12], b[13], b[14], b[15]}
	return h
}

// ephemeral returns the next ephemeral port (Linux: 32768-60999).
func (h *host) ephemeral() uint16 {
	p := h.nextPort
	h.nextPort++
	if h.nextPort > 60999 {
		h.nextPort = 32768
	}
	return p
}

// tsval is the host's TCP timestamp clock (1 ms ticks, as Linux).
func (h *host) tsval(now int64) uint32 { return h.tsBase + uint32(now/1e6) }

// fail stops the simulation with err.
func (e *engine) fail(err error) {
	if e.err == nil {
		e.err = err
	}
}
