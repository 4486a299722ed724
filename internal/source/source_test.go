package source

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/iomtguard/iomtguard/internal/capture"
	"github.com/iomtguard/iomtguard/internal/packet"
	"github.com/iomtguard/iomtguard/internal/pcaptest"
	"github.com/iomtguard/iomtguard/internal/pipeline"
)

// frames returns a capture of n PUBLISH frames, 10 ms apart.
func frames(n int) []byte {
	c := pcaptest.New(capture.LinkEthernet, 1_700_000_000e9)
	k := c.NewConn("10.0.0.5:40000", "10.0.0.1:1883")
	k.Handshake()
	for i := 0; i < n; i++ {
		c.Tick(10e6)
		k.Send(pcaptest.FromClient, pcaptest.Publish("1/ecg", "72"))
	}
	return c.Pcap()
}

// drain reads a source to its end, returning frames and ticks seen.
func drain(t *testing.T, s *Source, limit time.Duration) (n, ticks int, err error) {
	t.Helper()
	deadline := time.Now().Add(limit)
	var rec pipeline.Record
	for time.Now().Before(deadline) {
		err = s.Next(&rec)
		if err != nil {
			return n, ticks, err
		}
		if rec.Tick {
			ticks++
			continue
		}
		n++
	}
	return n, ticks, nil
}

func TestStream(t *testing.T) {
	pr, pw := io.Pipe()
	s := Stream("-", pr, Options{Tick: 50 * time.Millisecond})
	defer s.Close()
	data := frames(500)
	go func() {
		pw.Write(data[:len(data)/2])
		time.Sleep(200 * time.Millisecond) // a quiet moment: ticks
		pw.Write(data[len(data)/2:])
		pw.Close()
	}()
	n, ticks, err := drain(t, s, 10*time.Second)
	if err != io.EOF || n != 503 || ticks == 0 {
		t.Fatalf("frames %d (want 503), ticks %d, err %v", n, ticks, err)
	}
	if st := s.Stats().Snapshot(); st.Frames != 503 || st.QueueDrops != 0 {
		t.Errorf("stats %+v", st)
	}
}

// TestStreamCut: a stream cut in the middle of a record ends damaged, with
// the frames before it.
func TestStreamCut(t *testing.T) {
	data := frames(20)
	s := Stream("-", bytes.NewReader(data[:len(data)-10]), Options{})
	defer s.Close()
	n, _, err := drain(t, s, 5*time.Second)
	var dmg *capture.DamageError
	if n != 22 || err == nil || !errors.As(err, &dmg) || s.Stats().Damaged.Load() != 1 {
		t.Fatalf("frames %d, err %v", n, err)
	}
}

func TestReplaySpeed(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.pcap")
	os.WriteFile(path, frames(100), 0o644) // 1 s of capture
	for _, c := range []struct {
		speed    float64
		min, max time.Duration
	}{{4, 200 * time.Millisecond, 800 * time.Millisecond}, {0, 0, 200 * time.Millisecond}} {
		s, err := Replay(path, c.speed, Options{})
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		n, _, err := drain(t, s, 10*time.Second)
		d := time.Since(start)
		s.Close()
		if err != io.EOF || n != 103 || d < c.min || d > c.max {
			t.Errorf("speed %v: %d frames in %s (want %s to %s), %v", c.speed, n, d, c.min, c.max, err)
		}
	}
}

// TestDir: files already there, a file that grows while read, then a new
// file (rotation): every frame once, in order.
func TestDir(t *testing.T) {
	dir := t.TempDir()
	a, b := frames(50), frames(30)
	os.WriteFile(filepath.Join(dir, "ward-0001.pcap"), a, 0o644)
	os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("not a capture"), 0o644)
	f, _ := os.Create(filepath.Join(dir, "ward-0002.pcap"))
	f.Write(b[:len(b)/2])
	s, err := Dir(dir, 300*time.Millisecond, Options{Tick: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got := make(chan int, 1)
	go func() {
		n, _, _ := drain(t, s, 3*time.Second)
		got <- n
	}()
	time.Sleep(300 * time.Millisecond)
	f.Write(b[len(b)/2:])
	f.Close()
	time.Sleep(300 * time.Millisecond)
	os.WriteFile(filepath.Join(dir, "ward-0003.pcap"), frames(10), 0o644)
	if n := <-got; n != 53+33+13 {
		t.Errorf("%d frames from three files, want %d", n, 53+33+13)
	}
	if st := s.Stats().Snapshot(); st.Files != 3 {
		t.Errorf("files %d", st.Files)
	}
}

func TestFilter(t *testing.T) {
	c := pcaptest.New(capture.LinkEthernet, 0)
	mk := func(src, dst string) packet.Frame {
		k := c.NewConn(src, dst)
		k.Send(pcaptest.FromClient, []byte("x"))
		var f packet.Frame
		d := c.Last()
		packet.DecodeLen(capture.LinkEthernet, d, len(d), &f)
		return f
	}
	pub := mk("10.5.126.110:40000", "10.5.126.84:1883")
	web := mk("10.9.0.1:50000", "10.5.126.84:443")
	for _, c := range []struct {
		expr     string
		pub, web bool
	}{
		{"tcp", true, true},
		{"port 1883", true, false},
		{"dst port 1883 and src net 10.5.126.0/24", true, false},
		{"host 10.5.126.84", true, true},
		{"src host 10.5.126.84", false, false},
		{"not port 1883", false, true},
		{"(port 1883 or port 443) and not src host 10.9.0.1", true, false},
		{"net 10.5.126.0 mask 255.255.255.0 && !port 443", true, false},
		{"portrange 1000-2000", true, false},
		{"tcp port 1883", true, false},
		{"tcp dst port 443", false, true},
		{"udp port 1883", false, false},
		{"udp", false, false},
	} {
		f, err := ParseFilter(c.expr)
		if err != nil {
			t.Fatalf("%s: %v", c.expr, err)
		}
		if f.Match(&pub) != c.pub || f.Match(&web) != c.web {
			t.Errorf("%s: publish %v web %v, want %v %v", c.expr, f.Match(&pub), f.Match(&web), c.pub, c.web)
		}
	}
	for _, bad := range []string{"port", "host 10.0.0", "port 70000", "tcp and", "(tcp", "src tcp", "frobnicate"} {
		if _, err := ParseFilter(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
	if f, err := ParseFilter("  "); f != nil || err != nil {
		t.Errorf("empty filter: %v %v", f, err)
	}
}
