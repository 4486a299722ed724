package watch

import (
	"context"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/iomtguard/iomtguard/internal/mqtt"
	"github.com/iomtguard/iomtguard/internal/source"
)

// TestLiveCapacity measures watch on a live interface (lo, AF_PACKET):
// clients write MQTT PUBLISH packets to a broker stand-in at a paced rate
// (IOMTGUARD_LIVE_RATE messages/s, default 150,000) for
// IOMTGUARD_LIVE_SECONDS (default 8); it reports the messages decoded
// against those written, and the drops, which must be counted if any.
// A benchmark in the form of a test: it needs root, and runs only when
// IOMTGUARD_LIVE_RATE is set (scripts and the README's figures).
func TestLiveCapacity(t *testing.T) {
	rateS := os.Getenv("IOMTGUARD_LIVE_RATE")
	if rateS == "" || os.Geteuid() != 0 {
		t.Skip("set IOMTGUARD_LIVE_RATE (messages/s) and run as root")
	}
	var rate, secs float64 = 150000, 8
	fmt.Sscan(rateS, &rate)
	if s := os.Getenv("IOMTGUARD_LIVE_SECONDS"); s != "" {
		fmt.Sscan(s, &secs)
	}
	maxBatch := 64 // messages per write (IOMTGUARD_LIVE_BATCH=1: about one frame per message)
	if s := os.Getenv("IOMTGUARD_LIVE_BATCH"); s != "" {
		fmt.Sscan(s, &maxBatch)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	go func() { // the broker stand-in reads and discards
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				buf := make([]byte, 1<<16)
				for {
					if _, err := c.Read(buf); err != nil {
						c.Close()
						return
					}
				}
			}()
		}
	}()
	f, _ := source.ParseFilter(fmt.Sprintf("tcp port %d", port))
	src, err := source.Interface("lo", source.InterfaceOptions{RingMB: 128}, source.Options{Filter: f})
	if err != nil {
		t.Fatal(err)
	}
	w, err := New(Options{Input: src, Stats: src.Stats(), SourceKind: "interface"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { w.Run(ctx); close(done) }()
	time.Sleep(300 * time.Millisecond)

	const clients = 50
	var written atomic.Int64
	var wg sync.WaitGroup
	stop := time.Now().Add(time.Duration(secs * float64(time.Second)))
	per := rate / clients // messages per second per client
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			c, err := net.Dial("tcp", l.Addr().String())
			if err != nil {
				return
			}
			defer c.Close()
			c.Write(mqtt.Append(nil, &mqtt.Packet{Type: mqtt.CONNECT, Version: mqtt.V311, ClientID: []byte(fmt.Sprintf("bed%d-ecg", i)), ConnectFlags: 2, KeepAlive: 60}))
			pub := mqtt.Append(nil, &mqtt.Packet{Type: mqtt.PUBLISH, Topic: []byte(fmt.Sprintf("%d/ecg", i)), Payload: []byte("72")})
			start := time.Now()
			sent := 0
			batch := make([]byte, 0, 64*len(pub))
			for time.Now().Before(stop) {
				due := int(per * time.Since(start).Seconds())
				if due <= sent {
					time.Sleep(time.Millisecond)
					continue
				}
				n := min(due-sent, maxBatch)
				batch = batch[:0]
				for k := 0; k < n; k++ {
					batch = append(batch, pub...)
				}
				if _, err := c.Write(batch); err != nil {
					return
				}
				sent += n
				written.Add(int64(n))
			}
		}(i)
	}
	wg.Wait()
	time.Sleep(2 * time.Second)
	cancel()
	<-done
	s := w.Snapshot()
	wrote := written.Load()
	got := s.Totals.Published
	st := s.Source.Stats
	t.Logf("%d PUBLISH written in %.0f s (%.0f/s); watch decoded %d (%.0f/s, %.2f %%); frames %d; kernel drops %d, queue drops %d",
		wrote, secs, float64(wrote)/secs, got, float64(got)/secs, 100*float64(got)/float64(wrote), st.Frames, st.KernelDrops, st.QueueDrops)
	if got < wrote && st.KernelDrops == 0 && st.QueueDrops == 0 {
		// A message can be lost only with the frame that carried it.
		t.Errorf("%d messages missing with no drop counted", wrote-got)
	}
}
