package tcpstream

import (
	"fmt"
	"testing"

	"github.com/iomtguard/iomtguard/internal/capture"
	"github.com/iomtguard/iomtguard/internal/packet"
)

// send tracks one segment from src to dst.
func send(tab *Table, ts int64, src, dst string, seq, ack uint32, flags uint16, payload string) *Conn {
	s := &packet.Segment{Src: mustAP(src), Dst: mustAP(dst), Seq: seq, Ack: ack, Flags: flags, WScale: -1, Payload: []byte(payload)}
	var f packet.Frame
	packet.Decode(capture.LinkRaw, packet.AppendIPTCP(nil, s), &f)
	var seg Segment
	tab.Track(&f, ts, 60, &seg)
	return seg.Conn
}

// TestSynFloodBounded: a flood of SYNs from spoofed addresses holds at most
// MaxEmbryonic connections, each one past it closed (evicted, counted); the
// connections that were answered, or carried more than a SYN, stay, however
// long the flood; a SYN sent again is still unanswered; an answer takes a
// connection out of the SYNs' count.
func TestSynFloodBounded(t *testing.T) {
	rec := &recorder{}
	const cap = 50
	tab := New(Options{MaxEmbryonic: cap}, rec)
	broker := "10.0.0.2:1883"
	// Two devices connect before the flood: one answered, one mid-stream.
	pump := send(tab, 1, "10.0.0.5:40000", broker, 100, 0, packet.FlagSYN, "")
	send(tab, 2, broker, "10.0.0.5:40000", 900, 101, packet.FlagSYN|packet.FlagACK, "")
	ecg := send(tab, 3, "10.0.0.6:40001", broker, 500, 1, packet.FlagACK|packet.FlagPSH, "\x30\x03\x00\x01a")
	// A SYN that gets no answer for now, then sent again during the flood.
	late := send(tab, 4, "10.0.0.7:40002", broker, 700, 0, packet.FlagSYN, "")
	for i := range 1000 {
		src := fmt.Sprintf("198.51.%d.%d:%d", i/250, i%250, 1024+i)
		send(tab, int64(10+i), src, broker, uint32(i), 0, packet.FlagSYN, "")
		if i%(cap/2) == 0 {
			send(tab, int64(10+i), "10.0.0.7:40002", broker, 700, 0, packet.FlagSYN, "") // the same SYN again
		}
		if tab.nEmbryo > cap {
			t.Fatalf("after %d SYNs: %d connections with only a SYN, more than %d", i+1, tab.nEmbryo, cap)
		}
	}
	if tab.Len() != 2+cap {
		t.Errorf("%d connections in the table, want the 2 answered and %d SYNs", tab.Len(), cap)
	}
	if pump.removed || ecg.removed || late.removed {
		t.Errorf("evicted: pump %v, ecg %v, the SYN sent again %v", pump.removed, ecg.removed, late.removed)
	}
	evicted := 0
	for _, c := range rec.closed {
		if c.Reason != ReasonEvicted || c.State != StateSynSent {
			t.Fatalf("closed %v (state %v, reason %v)", c.A, c.State, c.Reason)
		}
		evicted++
	}
	if evicted != 1000-cap+1 {
		t.Errorf("%d evicted, want %d", evicted, 1000-cap+1)
	}
	// The late SYN is answered: no longer counted among the SYNs.
	send(tab, 2000, broker, "10.0.0.7:40002", 77, 701, packet.FlagSYN|packet.FlagACK, "")
	if late.inEmbryo || tab.nEmbryo != cap-1 {
		t.Errorf("answered: in the SYNs' list %v, %d there", late.inEmbryo, tab.nEmbryo)
	}
	// A reset of an unanswered SYN closes it and leaves the count right.
	last := send(tab, 2001, "203.0.113.9:999", broker, 5, 0, packet.FlagSYN, "")
	send(tab, 2002, broker, "203.0.113.9:999", 0, 6, packet.FlagRST|packet.FlagACK, "")
	if last.inEmbryo || !last.inClosed || tab.nEmbryo != cap-1 {
		t.Errorf("reset: in the SYNs' list %v, closed %v, %d there", last.inEmbryo, last.inClosed, tab.nEmbryo)
	}
	tab.Flush()
	if tab.Len() != 0 || tab.nEmbryo != 0 || tab.embryo.head != nil {
		t.Errorf("after Flush: %d connections, %d SYNs", tab.Len(), tab.nEmbryo)
	}
}

// TestSynFloodMaxFlows: with MaxFlows reached, an unanswered SYN goes
// before an established connection.
func TestSynFloodMaxFlows(t *testing.T) {
	rec := &recorder{}
	tab := New(Options{MaxFlows: 10, MaxEmbryonic: 100}, rec)
	broker := "10.0.0.2:1883"
	var est []*Conn
	for i := range 5 {
		est = append(est, send(tab, int64(i), fmt.Sprintf("10.0.0.%d:4000", 10+i), broker, 1, 1, packet.FlagACK|packet.FlagPSH, "x"))
	}
	for i := range 50 {
		send(tab, int64(100+i), fmt.Sprintf("198.51.100.%d:5000", i), broker, 1, 0, packet.FlagSYN, "")
	}
	for i, c := range est {
		if c.removed {
			t.Errorf("established connection %d evicted before unanswered SYNs", i)
		}
	}
	if tab.Len() != 10 || tab.nEmbryo != 5 {
		t.Errorf("%d connections, %d SYNs; want 10 and 5", tab.Len(), tab.nEmbryo)
	}
}

// TestSynAgainAfterEviction: SYNs sent again after their connection was
// evicted unanswered (more clients retrying at once than MaxEmbryonic) are
// marked SynAgain, so that the attempts are counted once: 5 clients, each
// sending its SYN 3 times, with room for 4 (an independent review: each
// retransmission was an attempt of its own). A new sequence number on the
// same 4-tuple is a new attempt.
func TestSynAgainAfterEviction(t *testing.T) {
	rec := &recorder{}
	tab := New(Options{MaxEmbryonic: 4}, rec)
	for round := range 3 {
		for i := range 5 {
			send(tab, int64(round*10+i), fmt.Sprintf("198.51.100.%d:5000", i), "10.0.0.2:1883", 77, 0, packet.FlagSYN, "")
		}
	}
	send(tab, 100, "198.51.100.0:5000", "10.0.0.2:1883", 999, 0, packet.FlagSYN, "") // a new attempt
	tab.Flush()
	first := 0
	for _, c := range rec.closed {
		if !c.SynAgain {
			first++
		}
	}
	if first != 6 || len(rec.closed) != tab.Streams() {
		t.Errorf("%d connections closed, %d of them first attempts; want 6 first attempts", len(rec.closed), first)
	}
}
