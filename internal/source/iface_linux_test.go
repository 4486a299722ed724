//go:build linux

package source

import (
	"fmt"
	"net"
	"os"
	"testing"
	"time"

	"github.com/iomtguard/iomtguard/internal/capture"
	"github.com/iomtguard/iomtguard/internal/packet"
	"github.com/iomtguard/iomtguard/internal/pipeline"
)

// TestInterfaceLoopback captures a TCP exchange on lo: every segment once
// (not twice, as AF_PACKET shows loopback traffic leaving and arriving),
// and only what the filter asks for.
func TestInterfaceLoopback(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("live capture needs root")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	f, _ := ParseFilter(fmt.Sprintf("tcp and port %d", port))
	s, err := Interface("lo", InterfaceOptions{}, Options{Filter: f, Tick: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	time.Sleep(200 * time.Millisecond)
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		buf := make([]byte, 64)
		for {
			n, err := c.Read(buf)
			if err != nil {
				c.Close()
				return
			}
			c.Write(buf[:n])
		}
	}()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 20; i++ {
		c.Write([]byte("ping"))
		c.Read(make([]byte, 4))
	}
	c.Close()
	seen := map[string]int{}
	data := 0
	var rec pipeline.Record
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		if err := s.Next(&rec); err != nil {
			t.Fatal(err)
		}
		if rec.Tick {
			if data >= 40 {
				break
			}
			continue
		}
		var fr packet.Frame
		packet.DecodeLen(capture.LinkEthernet, rec.Pkt.Data, rec.Pkt.OrigLen, &fr)
		if fr.SrcPort != uint16(port) && fr.DstPort != uint16(port) {
			t.Fatalf("the filter let through %v:%d > %v:%d", fr.Src, fr.SrcPort, fr.Dst, fr.DstPort)
		}
		key := fmt.Sprintf("%d>%d seq %d ack %d flags %x len %d", fr.SrcPort, fr.DstPort, fr.TCP.Seq, fr.TCP.Ack, fr.TCP.Flags, fr.PayloadLen)
		seen[key]++
		if fr.PayloadLen > 0 {
			data++
		}
	}
	if data != 40 {
		t.Errorf("%d data segments captured, want 40 (20 pings, 20 echoes)", data)
	}
	for k, n := range seen {
		if n > 1 {
			t.Errorf("segment seen %d times: %s", n, k)
		}
	}
	if st := s.Stats().Snapshot(); st.Filtered == 0 && st.Frames == 0 {
		t.Errorf("stats %+v", st)
	}
}
