package hub_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/iomtguard/iomtguard/internal/analysis"
	"github.com/iomtguard/iomtguard/internal/detect"
	"github.com/iomtguard/iomtguard/internal/hub"
	"github.com/iomtguard/iomtguard/internal/pipeline"
	"github.com/iomtguard/iomtguard/internal/sim"
)

// seconds cuts a run into one Analyzer per second and keeps each second's
// State and session facts: what a sensor reporting every second sends.
type seconds struct {
	pipeline.Nop
	cur    *analysis.Analyzer
	facts  *detect.FactCollector
	sec    int64
	origin int64
	states []*analysis.State
	fs     []*detect.Facts
}

func (s *seconds) roll(ts int64) {
	if s.cur == nil {
		s.origin = ts
	}
	if k := ts / 1e9; s.cur == nil || k != s.sec {
		s.flush()
		s.cur, s.sec = analysis.New(analysis.Options{Origin: s.origin}), k
	}
}

func (s *seconds) flush() {
	if s.cur != nil {
		s.states = append(s.states, s.cur.State())
		s.fs = append(s.fs, s.facts.Take())
	}
}

func (s *seconds) OnFrame(f *pipeline.Frame) { s.roll(f.TS); s.cur.OnFrame(f) }
func (s *seconds) OnMQTT(m *pipeline.MQTT) {
	s.roll(m.Frame.TS)
	s.cur.OnMQTT(m)
	s.facts.OnMQTT(m)
}
func (s *seconds) OnFlow(f *pipeline.Flow) {
	if s.cur != nil {
		s.cur.OnFlow(f)
		s.facts.OnFlow(f)
	}
}
func (s *seconds) Finish(*pipeline.Summary) { s.flush() }

// renamed is f with sensor i's own client IDs (each ward's devices have
// their own identities; the same IDs at 200 sensors would be 200 clones).
func renamed(f *detect.Facts, i int) *detect.Facts {
	c := *f
	c.Clients = make([]detect.ClientFact, len(f.Clients))
	for k, cl := range f.Clients {
		cl.ClientID = fmt.Sprintf("w%d-%s", i, cl.ClientID)
		c.Clients[k] = cl
	}
	return &c
}

// procCPU is a process's user and system time (s), from /proc.
func procCPU(t *testing.T, pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	u, _ := strconv.ParseFloat(f[11], 64)
	s, _ := strconv.ParseFloat(f[12], 64)
	return (u + s) / 100 // clock ticks (USER_HZ 100)
}

// TestHubLoad (a benchmark, run by scripts/bench_hub.sh): IOMTGUARD_HUB_SENSORS
// sensors (default 200) each report every second, for IOMTGUARD_HUB_SECONDS
// (default 30), to the hub at IOMTGUARD_HUB_URL whose process is
// IOMTGUARD_HUB_PID: what each sends is one second of a simulated 20-bed
// ICU (its analysis State, packed, and its session facts). It reports the
// hub process's CPU over the run (its share of one core) and the bytes per
// sensor-second the sensors published.
func TestHubLoad(t *testing.T) {
	url, pidS := os.Getenv("IOMTGUARD_HUB_URL"), os.Getenv("IOMTGUARD_HUB_PID")
	if url == "" || pidS == "" {
		t.Skip("a benchmark: scripts/bench_hub.sh runs it against a hub process")
	}
	pid, _ := strconv.Atoi(pidS)
	n, secs := 200, 30
	if v, err := strconv.Atoi(os.Getenv("IOMTGUARD_HUB_SENSORS")); err == nil {
		n = v
	}
	if v, err := strconv.Atoi(os.Getenv("IOMTGUARD_HUB_SECONDS")); err == nil {
		secs = v
	}
	path := simulate(t, sim.Options{Ward: "icu", Beds: 20, Duration: 2 * time.Minute, Seed: 7})
	in, err := pipeline.OpenInput(path)
	if err != nil {
		t.Fatal(err)
	}
	cut := &seconds{facts: detect.NewFactCollector()}
	if _, err := pipeline.New(pipeline.Options{}, cut).Run(context.Background(), in); err != nil {
		t.Fatal(err)
	}
	var frames int64
	for _, st := range cut.states {
		frames += st.Summary.Frames
	}
	t.Logf("%d sensors, %d s, each second one of %d seconds of a 20-bed ICU (%.0f frames a second)", n, secs, len(cut.states), float64(frames)/float64(len(cut.states)))

	sensors := make([]*hub.Sensor, n)
	for i := range sensors {
		s, err := hub.NewSensor(hub.SensorOptions{URL: url, Site: fmt.Sprintf("site%d", i/20), Sensor: fmt.Sprintf("s%d", i%20)})
		if err != nil {
			t.Fatal(err)
		}
		sensors[i] = s
	}
	time.Sleep(2 * time.Second) // connected
	cpu0, t0 := procCPU(t, pid), time.Now()
	var wg sync.WaitGroup
	for i, s := range sensors {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(time.Second)
			defer tick.Stop()
			time.Sleep(time.Duration(i) * time.Second / time.Duration(n)) // spread over the second
			for k := 0; k < secs; k++ {
				j := (i + k) % len(cut.states)
				s.Minute(int64(k), cut.states[j])
				if f := cut.fs[j]; f != nil {
					s.Facts(int64(k), renamed(f, i))
				}
				<-tick.C
			}
		}()
	}
	wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var published int64
	var wire uint64
	for _, s := range sensors {
		if err := s.Close(ctx); err != nil {
			t.Error(err)
		}
		st := s.Stats()
		published += st.Published
		wire += st.WireBytes
	}
	// The hub has caught up when its process goes quiet.
	for prev := procCPU(t, pid); ; {
		time.Sleep(500 * time.Millisecond)
		c := procCPU(t, pid)
		if c-prev < 0.02 {
			break
		}
		prev = c
	}
	cpu, wall := procCPU(t, pid)-cpu0, time.Since(t0).Seconds()
	perSensorSecond := float64(wire) / float64(n*secs)
	t.Logf("hub process: %.2f s of CPU in %.1f s: %.1f %% of one core; %d messages acknowledged; %.0f bytes per sensor-second on the wire (its State packed, its facts, NATS headers and protocol)",
		cpu, wall, 100*cpu/wall, published, perSensorSecond)
	fmt.Printf("RESULT sensors=%d seconds=%d hub_cpu_s=%.2f wall_s=%.1f core_share=%.3f bytes_per_sensor_second=%.0f\n",
		n, secs, cpu, wall, cpu/wall, perSensorSecond)
}
