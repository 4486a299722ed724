package hub_test

import (
	"context"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/iomtguard/iomtguard/internal/hub"
	"github.com/iomtguard/iomtguard/internal/source"
	"github.com/iomtguard/iomtguard/internal/watch"
)

// TestSensorOutage: the hub's NATS goes away during a live-paced run (the
// replay at a fixed speed) and comes back; the sensor keeps working,
// spools to disk and sends the spool in order once the hub is back: the
// hub's totals equal the sensor's and analyze's. The outage lasts
// IOMTGUARD_OUTAGE (default 3s; the acceptance run uses 2m, with the
// replay slowed so that it outlasts it).
func TestSensorOutage(t *testing.T) {
	paths := sharedCaptures(t, "bruteforce.pcapng")
	outage := 3 * time.Second
	if v := os.Getenv("IOMTGUARD_OUTAGE"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatal(err)
		}
		outage = d
	}
	// The capture spans 33 minutes: at this speed the run lasts the outage
	// and about four seconds more.
	speed := (33 * time.Minute).Seconds() / (outage + 4*time.Second).Seconds()
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l.Addr().String()
	l.Close()
	data := t.TempDir()
	h, err := hub.Start(hub.Options{Data: data, Listen: addr, Name: "a"})
	if err != nil {
		t.Fatal(err)
	}
	s, err := hub.NewSensor(hub.SensorOptions{URL: h.URL(), Site: "icu", Sensor: "s1", Spool: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	src, err := source.Replay(paths[0], speed, source.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	w, err := watch.New(watch.Options{Input: src, Stats: src.Stats(), SourceKind: "replay", Name: "icu/s1", Uplink: s})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := w.Run(context.Background()); done <- err }()
	time.Sleep(time.Second)
	h.Close()
	start := time.Now()
	maxSpooled := 0
	shown := ""
	for time.Since(start) < outage {
		if st := s.Stats(); st.Spooled > maxSpooled {
			maxSpooled = st.Spooled
		}
		if snap := w.Snapshot(); strings.HasPrefix(snap.Status, "hub unreachable") {
			shown = snap.Status
		}
		time.Sleep(50 * time.Millisecond)
	}
	if shown == "" {
		t.Error("the dashboard's status never said the hub was unreachable")
	}
	h, err = hub.Start(hub.Options{Data: data, Listen: addr, Name: "a"})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	st := s.Stats()
	waitDrained(t, h)
	if maxSpooled == 0 || st.Unreachable == 0 {
		t.Errorf("the outage did not show: at most %d spooled, %d failed attempts", maxSpooled, st.Unreachable)
	}
	if st.Dropped != 0 || st.Published != st.Minutes+st.Events {
		t.Errorf("sensor: %+v", st)
	}
	runs, _ := h.DB().Intervals()
	if len(runs) != 1 || runs[0].Sent != st.Minutes || runs[0].Stored != st.Minutes {
		t.Errorf("the sensor sent %d minutes; the hub: %+v", st.Minutes, runs)
	}
	compareWithAnalyze(t, h, paths...)
	t.Logf("outage %s: up to %d messages spooled, %d failed attempts; sensor %+v; hub %+v", outage, maxSpooled, st.Unreachable, st, h.Stats())
}
