package hub_test

import (
	"context"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/iomtguard/iomtguard/internal/analysis"
	"github.com/iomtguard/iomtguard/internal/hub"
)

// TestSpoolBoundAndRestart: with the hub away, the disk spool holds what
// fits in its bound and counts what it drops (nothing silently); a sensor
// that stops leaves its spool on disk, and the next run of the sensor
// sends it to the hub, in order, once the hub is up.
func TestSpoolBoundAndRestart(t *testing.T) {
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l.Addr().String()
	l.Close()
	dir := t.TempDir()
	st := analysis.New(analysis.Options{}).State()
	b, _ := st.Pack()
	s, err := hub.NewSensor(hub.SensorOptions{URL: "nats://" + addr, Site: "icu", Sensor: "s1", Spool: dir, MaxSpool: int64(4*len(b) + 2000)})
	if err != nil {
		t.Fatal(err)
	}
	for i := int64(1); i <= 10; i++ {
		s.Minute(i, st)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	err = s.Close(ctx)
	cancel()
	stats := s.Stats()
	if err == nil || !strings.Contains(err.Error(), "left in") || stats.Dropped == 0 || stats.Spooled == 0 || stats.Dropped+int64(stats.Spooled) != stats.Minutes+stats.Events {
		t.Fatalf("close: %v; %+v", err, stats)
	}
	files, _ := os.ReadDir(dir)
	if len(files) != stats.Spooled {
		t.Errorf("%d files in the spool, %d counted", len(files), stats.Spooled)
	}
	t.Logf("hub away: %d minutes spooled, %d dropped and counted", stats.Spooled, stats.Dropped)

	h, err := hub.Start(hub.Options{Data: t.TempDir(), Listen: addr, Name: "a"})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	s2, err := hub.NewSensor(hub.SensorOptions{URL: h.URL(), Site: "icu", Sensor: "s1", Spool: dir})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel = context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := s2.Close(ctx); err != nil {
		t.Fatal(err)
	}
	waitDrained(t, h)
	runs, _ := h.DB().Intervals()
	// The spooled ones are the first minutes (the later ones were
	// dropped), and the run's last word tells the hub how many it
	// numbered: what the sensor dropped shows at the hub as lost.
	if len(runs) != 1 || runs[0].Sent != stats.Minutes || runs[0].Stored != stats.Minutes-stats.Dropped {
		t.Errorf("the next run delivered %+v; the sensor numbered %d minutes and dropped %d", runs, stats.Minutes, stats.Dropped)
	}
	if files, _ := os.ReadDir(dir); len(files) != 0 {
		t.Errorf("%d files left in the spool", len(files))
	}
}

// TestSensorCloseDeadline: a replay's sensor (patient) with the hub away
// and its spool full waits for room, but Close gives up at its deadline;
// minutes handed over while it closes are counted, and doing so from other
// goroutines does not panic.
func TestSensorCloseDeadline(t *testing.T) {
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l.Addr().String()
	l.Close()
	st := analysis.New(analysis.Options{}).State()
	b, _ := st.Pack()
	s, err := hub.NewSensor(hub.SensorOptions{URL: "nats://" + addr, Site: "icu", Sensor: "s1", Spool: t.TempDir(),
		MaxSpool: int64(2*len(b) + 1000), Patient: true})
	if err != nil {
		t.Fatal(err)
	}
	stop, stopped := make(chan struct{}), make(chan struct{})
	go func() { // a pipeline that goes on handing over minutes
		defer close(stopped)
		for i := int64(1); ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			s.Minute(i, st)
		}
	}()
	time.Sleep(300 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	t0 := time.Now()
	err = s.Close(ctx)
	took := time.Since(t0)
	close(stop)
	<-stopped
	if took > 3*time.Second {
		t.Errorf("Close took %v with a deadline of 1 s", took)
	}
	st2 := s.Stats()
	if err == nil || st2.Spooled == 0 || st2.Minutes+st2.Events != int64(st2.Spooled)+st2.Dropped {
		t.Errorf("close: %v; %+v (every minute spooled or counted as dropped)", err, st2)
	}
}
