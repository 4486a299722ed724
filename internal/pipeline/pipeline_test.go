package pipeline_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/iomtguard/iomtguard/internal/mqtt"
	"github.com/iomtguard/iomtguard/internal/pcaptest"
	"github.com/iomtguard/iomtguard/internal/pipeline"
)

func open(t *testing.T, path string) pipeline.Input {
	t.Helper()
	in, err := pipeline.OpenInput(path)
	if err != nil {
		t.Fatal(err)
	}
	return in
}

// TestDamagedCapture cuts a capture in the middle of a record: the frames
// before the damage are analysed and the summary says where it stopped.
func TestDamagedCapture(t *testing.T) {
	b, err := os.ReadFile("../../testdata/captures/mqtt5.pcap")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "cut.pcap")
	os.WriteFile(path, b[:len(b)-30], 0o644)
	c := &counter{}
	sum, err := pipeline.New(pipeline.Options{}, c).Run(context.Background(), open(t, path))
	if err != nil {
		t.Fatal(err)
	}
	if c.frames != 21 || sum.Frames != 21 {
		t.Errorf("frames %d", c.frames)
	}
	if len(sum.Warnings) != 1 || !strings.Contains(sum.Warnings[0], "damaged after frame 21") || sum.Inputs[0].Damage == "" {
		t.Errorf("warnings %q", sum.Warnings)
	}
}

func TestBadCSVRow(t *testing.T) {
	b, err := os.ReadFile("../../testdata/icu-dataset/environmentMonitoring_excerpt.csv")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")
	lines[5] = strings.Replace(lines[5], "10.5.126", "10.5.999", 1)
	path := filepath.Join(t.TempDir(), "bad.csv")
	os.WriteFile(path, []byte(strings.Join(lines, "\n")), 0o644)
	c := &counter{}
	sum, err := pipeline.New(pipeline.Options{}, c).Run(context.Background(), open(t, path))
	if err != nil {
		t.Fatal(err)
	}
	if c.frames != 37 || sum.Inputs[0].BadRows != 1 || len(sum.Warnings) != 1 || !strings.Contains(sum.Warnings[0], "line 6") {
		t.Errorf("frames %d, summary %+v", c.frames, sum)
	}
	if c.mqtt != 37 {
		t.Errorf("MQTT packets %d, want 37 (one per row)", c.mqtt)
	}
}

func TestNotInput(t *testing.T) {
	path := filepath.Join(t.TempDir(), "notes.txt")
	os.WriteFile(path, []byte("hello, world\n"), 0o644)
	if _, err := pipeline.OpenInput(path); !errors.Is(err, pipeline.ErrNotInput) {
		t.Fatalf("got %v", err)
	}
	if _, err := pipeline.OpenInput(filepath.Join(t.TempDir(), "absent.pcap")); err == nil {
		t.Fatal("no error for a missing file")
	}
}

type orderCheck struct {
	pipeline.Nop
	last int64
	bad  int
	seen map[int]int
}

func (o *orderCheck) OnFrame(f *pipeline.Frame) {
	if f.TS < o.last {
		o.bad++
	}
	o.last = f.TS
	o.seen[f.Source]++
}

// TestMergeInTimeOrder reads two captures at once: frames come out in time order.
func TestMergeInTimeOrder(t *testing.T) {
	o := &orderCheck{seen: map[int]int{}}
	sum, err := pipeline.New(pipeline.Options{}, o).Run(context.Background(),
		open(t, "../../testdata/captures/mqtt5.pcap"), open(t, "../../testdata/captures/versions.pcap"))
	if err != nil {
		t.Fatal(err)
	}
	if o.bad != 0 || o.seen[0] != 22 || o.seen[1] != 15 || sum.Frames != 37 {
		t.Errorf("out of order %d, per input %v", o.bad, o.seen)
	}
}

// TestSteadyPathAllocations runs the pipeline over the benign MQTTset capture
// and checks that allocations come from new connections and first-seen
// strings only: far fewer than one per frame.
func TestSteadyPathAllocations(t *testing.T) {
	path := pcaptest.SharedCapture(t, "benign.pcap")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var frames int64
	allocs := testing.AllocsPerRun(3, func() {
		c := &counter{}
		pipeline.New(pipeline.Options{}, c).Run(context.Background(), newMemInput(t, data))
		frames = c.frames
	})
	if per := allocs / float64(frames); per > 0.05 {
		t.Errorf("%.0f allocations for %d frames (%.3f per frame)", allocs, frames, per)
	}
}

// TestWebSocketMQTT: every MQTT packet of the WebSocket scenario is
// decoded (tshark 4.0 decodes none of them), whatever the framing.
func TestWebSocketMQTT(t *testing.T) {
	b := websocketScenario(t)
	in, err := pipeline.NewInput("ws.pcap", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	c := &typeCounter{n: map[mqtt.Type]int{}}
	sum, err := pipeline.New(pipeline.Options{}, c).Run(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	want := map[mqtt.Type]int{mqtt.CONNECT: 2, mqtt.CONNACK: 2, mqtt.SUBSCRIBE: 1, mqtt.SUBACK: 1, mqtt.PUBLISH: 7, mqtt.DISCONNECT: 1}
	for typ, n := range want {
		if c.n[typ] != n {
			t.Errorf("%s: %d, want %d", typ, c.n[typ], n)
		}
	}
	if sum.WebSocketConns != 2 || sum.WebSocketMQTT != 2 || sum.MQTTConns != 2 {
		t.Errorf("summary: %d WebSocket connections, %d with MQTT, %d MQTT connections; want 2, 2, 2", sum.WebSocketConns, sum.WebSocketMQTT, sum.MQTTConns)
	}
	if c.ws != 14 {
		t.Errorf("%d packets marked as over WebSocket, want 14", c.ws)
	}
}

type typeCounter struct {
	pipeline.Nop
	n  map[mqtt.Type]int
	ws int
}

func (c *typeCounter) OnMQTT(ev *pipeline.MQTT) {
	c.n[ev.Pkt.Type]++
	if ev.Session.Transport == pipeline.TransportWebSocket {
		c.ws++
	}
}

func websocketScenario(t *testing.T) []byte {
	for _, sc := range pcaptest.Scenarios() {
		if sc.Name == "websocket" {
			return sc.Build()
		}
	}
	t.Fatal("no websocket scenario")
	return nil
}
