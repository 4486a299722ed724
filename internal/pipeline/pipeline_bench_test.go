package pipeline_test

import (
	"bytes"
	"context"
	"io"
	"os"
	"testing"

	"github.com/iomtguard/iomtguard/internal/capture"
	"github.com/iomtguard/iomtguard/internal/export"
	"github.com/iomtguard/iomtguard/internal/pcaptest"
	"github.com/iomtguard/iomtguard/internal/pipeline"
)

// memInput serves a capture held in memory, so that benchmarks measure
// decoding rather than the disk.
type memInput struct {
	r    capture.Reader
	size int64
}

func (m *memInput) Name() string                  { return "mem" }
func (m *memInput) Format() string                { return m.r.Format() }
func (m *memInput) Progress() (done, total int64) { return 0, m.size }
func (m *memInput) Close() error                  { return nil }
func (m *memInput) Next(rec *pipeline.Record) error {
	rec.Row = nil
	if err := m.r.Next(&rec.Pkt); err != nil {
		return err
	}
	rec.TS = rec.Pkt.Timestamp
	return nil
}

func newMemInput(tb testing.TB, data []byte) *memInput {
	r, err := capture.NewReader(bytes.NewReader(data))
	if err != nil {
		tb.Fatal(err)
	}
	return &memInput{r: r, size: int64(len(data))}
}

type counter struct {
	pipeline.Nop
	frames, mqtt int64
}

func (c *counter) OnFrame(*pipeline.Frame) { c.frames++ }
func (c *counter) OnMQTT(*pipeline.MQTT)   { c.mqtt++ }

// BenchmarkDecode measures decode + TCP tracking + MQTT on the 1.09M-frame
// benchmark capture, on one core, from memory.
func BenchmarkDecode(b *testing.B) {
	data, err := os.ReadFile(pcaptest.BenchCapture(b))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	var frames int64
	for b.Loop() {
		c := &counter{}
		eng := pipeline.New(pipeline.Options{}, c)
		if _, err := eng.Run(context.Background(), newMemInput(b, data)); err != nil {
			b.Fatal(err)
		}
		frames = c.frames
	}
	b.ReportMetric(float64(frames)*float64(b.N)/b.Elapsed().Seconds(), "frames/s")
	b.ReportMetric(float64(frames), "frames/op")
}

// BenchmarkExportICU measures the icu-csv export (with payloads, as tshark
// writes them) of the benchmark capture to io.Discard.
func BenchmarkExportICU(b *testing.B) {
	data, err := os.ReadFile(pcaptest.BenchCapture(b))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		x := export.NewICUCSV(io.Discard, export.DialectTshark, "", "")
		x.Payloads = true
		eng := pipeline.New(pipeline.Options{}, x)
		if _, err := eng.Run(context.Background(), newMemInput(b, data)); err != nil {
			b.Fatal(err)
		}
		x.Close()
	}
}
