package inventory

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/iomtguard/iomtguard/internal/demo"
	"github.com/iomtguard/iomtguard/internal/pipeline"
	"github.com/iomtguard/iomtguard/internal/tcpstream"
)

// slotHog takes both slots of every connection it sees before any other
// consumer can, so that an inventory after it keeps its connections in
// byConn only.
type slotHog struct {
	pipeline.Nop
	a, b *int
	took int // connections whose slots it took
}

func (h *slotHog) take(c *tcpstream.Conn) {
	if c != nil && c.Slot(h.a) == nil && c.SetSlot(h.a, true) && c.SetSlot(h.b, true) {
		h.took++
	}
}
func (h *slotHog) OnFrame(f *pipeline.Frame) {
	if f.TCP != nil {
		h.take(f.TCP.Conn)
	}
}
func (h *slotHog) OnMQTT(ev *pipeline.MQTT) { h.take(ev.Conn) }

// TestSlotEqualsMap: an inventory that keeps its per-connection entries in
// the connections' slots lists exactly what one kept out of the slots (they
// are all taken) lists, on the demo ward and on real and crafted captures
// (MQTT 5, WebSocket, attacks, versions), synchronously and behind
// pipeline.Async.
func TestSlotEqualsMap(t *testing.T) {
	files := []string{"demo", "../../testdata/real/mosquitto-attacks.pcap", "../../testdata/real/mosquitto-ward.pcap",
		"../../testdata/real/websocket-aedes.pcap", "../../testdata/captures/mqtt5.pcap", "../../testdata/captures/websocket.pcap",
		"../../testdata/captures/versions.pcap", "../../testdata/captures/strings.pcap"}
	list := func(t *testing.T, file string, async bool, consumers ...pipeline.Consumer) {
		var in pipeline.Input
		var err error
		if file == "demo" {
			in, err = pipeline.NewInput("demo", demo.Open())
		} else {
			in, err = pipeline.OpenInput(file)
		}
		if err != nil {
			t.Fatal(err)
		}
		if async {
			// Run ends with Finish, which drains the consumers' goroutine.
			_, err = pipeline.New(pipeline.Options{}, pipeline.Async(consumers...)).Run(context.Background(), in)
		} else {
			_, err = pipeline.New(pipeline.Options{}, consumers...).Run(context.Background(), in)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, f := range files {
		for _, async := range []bool{false, true} {
			t.Run(filepath.Base(f)+map[bool]string{false: "", true: "/async"}[async], func(t *testing.T) {
				withSlot, withoutSlot := New(Options{}), New(Options{})
				list(t, f, async, withSlot)
				hog := &slotHog{a: new(int), b: new(int)}
				list(t, f, async, hog, withoutSlot)
				if hog.took == 0 {
					t.Fatal("the hog took no connection's slots: nothing compared")
				}
				var a, b bytes.Buffer
				if err := WriteJSON(&a, nil, at, withSlot.Devices()); err != nil {
					t.Fatal(err)
				}
				if err := WriteJSON(&b, nil, at, withoutSlot.Devices()); err != nil {
					t.Fatal(err)
				}
				if len(withSlot.Devices()) == 0 {
					t.Fatal("no devices: nothing compared")
				}
				if a.String() != b.String() {
					t.Errorf("devices differ with and without the connection slot:\n%s\n---\n%s", a.String(), b.String())
				}
			})
		}
	}
}
