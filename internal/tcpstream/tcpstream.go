// Package tcpstream tracks TCP connections and reassembles each direction into
// an in-order byte stream.
//
// Two ordering policies are offered (see Options.Reorder); the default
// follows tshark so that counts agree with it.
//
// The tracker numbers connections and derives per-frame values the way tshark
// does (tcp.stream, relative sequence and acknowledgement numbers, tcp.time_delta,
// a new stream when a SYN reuses a 4-tuple with a new initial sequence number), so
// that exports agree with tshark's field export. Reassembly is lean: in-order
// segments are passed through without copying; only out-of-order segments are
// copied and held, within per-stream and global byte limits. Retransmitted bytes
// are never delivered twice; overlapping bytes keep their first copy; data the
// capture missed is reported as a gap (immediately when the peer acknowledges
// past it, otherwise when the limits or the end of the stream force it).
package tcpstream

import (
	"log/slog"
	"net/netip"
	"time"
)

// Options bound the tracker's memory. The zero value gives the defaults.
type Options struct {
	// Reorder holds segments that arrive ahead of a hole and delivers them in
	// sequence order once the hole fills (as Zeek and Suricata do, and
	// Wireshark with tcp.reassemble_out_of_order). The default follows tshark's
	// default instead: bytes are taken in arrival order, a jump ahead is a gap,
	// and a segment starting below the highest sequence number already seen in
	// its direction is a retransmission and is not delivered, even when its
	// bytes were only captured late. The default keeps counts equal to tshark's.
	Reorder bool
	// MaxFlows is the most connections tracked at once (default 65536). When
	// full, the least recently active connection is closed with ReasonEvicted.
	// An MQTT connection with its session and the consumers' state holds
	// about 1.1 KB: 262,144 of them (the default before) were 290 MB, past
	// analyze's bound of 256 MB, when a capture held that many open (a
	// connection storm that never closes them).
	MaxFlows int
	// MaxEmbryonic is the most connections kept at once that have seen only
	// their initiator's SYN (default 16384, about 10 MB): past it the one
	// whose SYN is oldest is closed with ReasonEvicted, counted as every
	// closed connection is. Only a flood or a scan has that many SYNs
	// unanswered at once: a benign capture's connections are the same.
	MaxEmbryonic int
	// MaxOutOfOrder is the most out-of-order bytes held per direction (default
	// 256 KiB); beyond it the oldest hole is declared a gap.
	MaxOutOfOrder int
	// MaxOutOfOrderTotal is the most out-of-order bytes held over all
	// connections (default 64 MiB).
	MaxOutOfOrderTotal int
	// Linger is how long (capture time) a closed connection is kept so that its
	// last ACKs are matched to it (default 2 minutes).
	Linger time.Duration
	// IdleTimeout closes connections without packets for this long, capture
	// time (default 0: never; MQTT keep-alives can be hours long).
	IdleTimeout time.Duration
	Logger      *slog.Logger
}

func (o *Options) defaults() {
	if o.MaxFlows <= 0 {
		o.MaxFlows = 65536
	}
	if o.MaxEmbryonic <= 0 {
		o.MaxEmbryonic = 16384
	}
	if o.MaxOutOfOrder <= 0 {
		o.MaxOutOfOrder = 256 << 10
	}
	if o.MaxOutOfOrderTotal <= 0 {
		o.MaxOutOfOrderTotal = 64 << 20
	}
	if o.Linger <= 0 {
		o.Linger = 2 * time.Minute
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// Dir is a direction within a connection: FromA is from the initiator (the
// side that sent the SYN, or the first packet seen) to the responder.
type Dir uint8

const (
	FromA Dir = 0
	FromB Dir = 1
)

// State of a connection.
type State uint8

const (
	StateNew         State = iota // first packet was not a SYN: joined mid-connection
	StateSynSent                  // SYN seen
	StateEstablished              // SYN-ACK or data seen
	StateClosing                  // one FIN seen
	StateClosed                   // FIN both ways
	StateReset                    // RST seen
)

func (s State) String() string {
	return [...]string{"mid-stream", "syn-sent", "established", "closing", "closed", "reset"}[s]
}

// CloseReason says why a connection left the table.
type CloseReason uint8

const (
	ReasonOpen    CloseReason = iota // still open
	ReasonFIN                        // closed by FIN from both sides
	ReasonRST                        // reset
	ReasonReused                     // a new SYN reused the 4-tuple
	ReasonIdle                       // idle timeout
	ReasonEvicted                    // the table was full
	ReasonEnd                        // end of the capture
)

func (r CloseReason) String() string {
	return [...]string{"open", "fin", "rst", "port-reuse", "idle", "evicted", "end-of-capture"}[r]
}

// Analysis flags for one segment, in the spirit of tshark's tcp.analysis.
type Analysis uint8

const (
	Retransmission Analysis = 1 << iota // all its bytes were seen before
	Overlap                             // part of its bytes were seen before
	OutOfOrder                          // arrived ahead of a hole
	GapBefore                           // a gap was declared before its data
	ZeroWindow                          // window 0 (not RST)
	KeepAliveSeg                        // a TCP keep-alive probe
)

// Stats holds per-direction counters.
type Stats struct {
	Packets  int64
	Bytes    int64 // frame bytes
	Payload  int64 // TCP payload bytes (tcp.len)
	Flags    uint16
	Retrans  int64 // retransmitted segments
	Gaps     int64 // gaps declared
	GapBytes int64
	SYNs     int64
	RSTs     int64
	FINs     int64
}

// Conn is one TCP connection. The tracker owns it; consumers may keep a pointer
// for the life of the connection and read it, but only App is theirs to set.
type Conn struct {
	Index  int            // tcp.stream
	A, B   netip.AddrPort // A is the initiator
	Start  int64          // first packet, ns
	Last   int64          // last packet, ns
	State  State
	Reason CloseReason
	Stat   [2]Stats
	// SynSeen is true when the connection's opening SYN was captured (its
	// start is known).
	SynSeen bool
	// SynAgain is true when the connection began with a SYN sent again
	// after an earlier connection of the same SYN (4-tuple and sequence
	// number) was evicted unanswered (past MaxEmbryonic): it is that
	// attempt once more, which those who count attempts have counted.
	SynAgain bool
	// FirstFrame is the number of the connection's first frame (set by the
	// caller that numbers frames; 0 when none does).
	FirstFrame int
	// App is free for the application-layer decoder's per-connection state.
	App any

	half       [2]half
	tsPrev     int64
	key        key
	prev, next *Conn // LRU list, most recent first
	closedAt   int64
	inClosed   bool
	inEmbryo   bool // in Table.embryo: only the initiator's SYN seen
	removed    bool
	slots      [2]connSlot // consumers' state for this connection (Slot, SetSlot)
}

type connSlot struct{ owner, val any }

// Slot returns what owner stored for this connection with SetSlot, or nil.
// It finds a consumer's per-connection state by a field instead of a map
// keyed by the connection (profiling analyze: the analyzer's and the
// inventory's lookups by connection were about 5 % of the engine's core,
// a cache miss each in a table of thousands of connections).
func (c *Conn) Slot(owner any) any {
	for i := range c.slots {
		if c.slots[i].owner == owner {
			return c.slots[i].val
		}
	}
	return nil
}

// SetSlot stores v for owner (nil v frees owner's slot) and reports
// whether it did: a connection has room for two owners, and the others keep
// their own maps. An owner is a non-nil pointer to a type of non-zero size
// (owners are compared; a nil owner is refused). Copies (CopyFacts) have no
// slots.
func (c *Conn) SetSlot(owner, v any) bool {
	if owner == nil {
		return false
	}
	free := -1
	for i := range c.slots {
		switch c.slots[i].owner {
		case owner:
			if v == nil {
				c.slots[i] = connSlot{}
			} else {
				c.slots[i].val = v
			}
			return true
		case nil:
			if free < 0 {
				free = i
			}
		}
	}
	if v == nil {
		return true
	}
	if free < 0 {
		return false
	}
	c.slots[free] = connSlot{owner, v}
	return true
}

// CopyFacts sets the exported fields of dst (but App) to those of c: a
// consumer on another goroutine reads the copy while the table goes on
// updating c.
func (c *Conn) CopyFacts(dst *Conn) {
	dst.Index, dst.A, dst.B, dst.Start, dst.Last = c.Index, c.A, c.B, c.Start, c.Last
	dst.State, dst.Reason, dst.Stat, dst.SynSeen, dst.FirstFrame = c.State, c.Reason, c.Stat, c.SynSeen, c.FirstFrame
	dst.SynAgain = c.SynAgain
}

// SameFacts reports whether dst, a copy CopyFacts made of c, still holds
// c's facts: nothing but these fields changes once a connection exists.
func (c *Conn) SameFacts(dst *Conn) bool {
	return dst.Last == c.Last && dst.Stat == c.Stat && dst.State == c.State && dst.Reason == c.Reason &&
		dst.SynSeen == c.SynSeen && dst.FirstFrame == c.FirstFrame && dst.Index == c.Index && dst.Start == c.Start &&
		dst.SynAgain == c.SynAgain
}

// Duration is the time from first to last packet.
func (c *Conn) Duration() time.Duration { return time.Duration(c.Last - c.Start) }

// Src returns the source endpoint of direction d.
func (c *Conn) Src(d Dir) netip.AddrPort {
	if d == FromA {
		return c.A
	}
	return c.B
}

// Dst returns the destination endpoint of direction d.
func (c *Conn) Dst(d Dir) netip.AddrPort {
	if d == FromA {
		return c.B
	}
	return c.A
}

// Pos is the relative sequence number (as Segment.RelSeq counts) of the
// next byte of direction d to reach the Receiver; during a Data call, that
// of the call's first byte, and during a Gap call, that of the first byte
// after the gap.
func (c *Conn) Pos(d Dir) uint32 {
	h := &c.half[d]
	return h.next - h.baseSeq
}

// Open reports whether the connection has not been closed or reset.
func (c *Conn) Open() bool { return c.State != StateClosed && c.State != StateReset }

type segment struct {
	seq  uint32
	data []byte
}

type half struct {
	baseSeq  uint32
	baseSet  bool
	next     uint32 // next expected sequence number (absolute)
	nextSet  bool
	fin      bool
	finSeq   uint32
	ooo      []segment
	oooBytes int
}

// Segment describes one frame's TCP segment after tracking.
type Segment struct {
	Conn     *Conn
	Dir      Dir
	New      bool   // this frame opened the connection
	RelSeq   uint32 // tcp.seq (relative)
	RelAck   uint32 // tcp.ack (relative when ACK is set, raw otherwise)
	NextSeq  uint32 // relative sequence number after this segment (tcp.nxtseq)
	Delta    int64  // ns since the previous frame of this connection (tcp.time_delta)
	Analysis Analysis
}

// Receiver gets each direction's reassembled bytes, in order.
type Receiver interface {
	// Data delivers in-order bytes of direction d. b aliases the frame or a
	// held segment; it is valid only during the call.
	Data(c *Conn, d Dir, b []byte)
	// Gap reports n bytes of direction d that will not be delivered: missing
	// from the capture, or (in arrival order) inside a segment dropped because
	// it overlapped bytes already delivered.
	Gap(c *Conn, d Dir, n int)
	// Closed reports a connection leaving the table; c is not used again.
	Closed(c *Conn)
}
