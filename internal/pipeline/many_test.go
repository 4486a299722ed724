package pipeline_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/iomtguard/iomtguard/internal/capture"
	"github.com/iomtguard/iomtguard/internal/mqtt"
	"github.com/iomtguard/iomtguard/internal/pcaptest"
	"github.com/iomtguard/iomtguard/internal/pipeline"
)

// Many inputs given at once: a rotating capture's files (read one after
// another) or several sensors' captures of the same hour (read side by
// side).

// fakeInput gives records at the times listed, in that order (not always
// increasing: a capture's clock can step back).
type fakeInput struct {
	ts []int64
	i  int
}

func (f *fakeInput) Name() string                  { return "fake" }
func (f *fakeInput) Format() string                { return "pcap" }
func (f *fakeInput) Progress() (done, total int64) { return int64(f.i), int64(len(f.ts)) }
func (f *fakeInput) Close() error                  { return nil }
func (f *fakeInput) Next(rec *pipeline.Record) error {
	if f.i == len(f.ts) {
		return io.EOF
	}
	*rec = pipeline.Record{TS: f.ts[f.i], Pkt: capture.Packet{Timestamp: f.ts[f.i]}}
	f.i++
	return nil
}

type arrival struct {
	src int
	ts  int64
}

type arrivals struct {
	pipeline.Nop
	got []arrival
}

func (a *arrivals) OnFrame(f *pipeline.Frame) { a.got = append(a.got, arrival{f.Source, f.TS}) }

// TestMergeManyInputs: with many inputs, the next frame is still the one
// with the earliest time among the inputs' next records, the input given
// first on equal times (the rule of the scan over every input that the
// merge replaced), with ties, clocks that step back and inputs that end
// early or are empty.
func TestMergeManyInputs(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	for round := range 20 {
		n := 1 + rng.IntN(60)
		lists := make([][]int64, n)
		for i := range lists {
			ts := int64(rng.IntN(50))
			for range rng.IntN(40) {
				lists[i] = append(lists[i], ts)
				ts += int64(rng.IntN(4)) - 1 // sometimes back, often equal
			}
		}
		// The reference: scan every input's next record.
		var want []arrival
		heads := make([]int, n)
		for {
			best := -1
			for i := range lists {
				if heads[i] < len(lists[i]) && (best < 0 || lists[i][heads[i]] < lists[best][heads[best]]) {
					best = i
				}
			}
			if best < 0 {
				break
			}
			want = append(want, arrival{best, lists[best][heads[best]]})
			heads[best]++
		}
		ins := make([]pipeline.Input, n)
		for i := range ins {
			ins[i] = &fakeInput{ts: lists[i]}
		}
		a := &arrivals{}
		if _, err := pipeline.New(pipeline.Options{}, a).Run(context.Background(), ins...); err != nil {
			t.Fatal(err)
		}
		if len(a.got) != len(want) {
			t.Fatalf("round %d: %d frames, want %d", round, len(a.got), len(want))
		}
		for i := range want {
			if a.got[i] != want[i] {
				t.Fatalf("round %d (%d inputs): frame %d from input %d at %d, want input %d at %d",
					round, n, i+1, a.got[i].src, a.got[i].ts, want[i].src, want[i].ts)
			}
		}
	}
}

// eventHash digests every frame's time and decoded payload and every MQTT
// packet's topic and payload: a byte of a frame read from a buffer that
// another file's reader had reused changes it.
type eventHash struct {
	pipeline.Nop
	frames, mqtt int
	h            [sha256.Size]byte
	buf          []byte
}

func (e *eventHash) mix(b []byte) {
	e.buf = append(append(e.buf[:0], e.h[:]...), b...)
	e.h = sha256.Sum256(e.buf)
}

func (e *eventHash) OnFrame(f *pipeline.Frame) {
	e.frames++
	e.mix(binary.BigEndian.AppendUint64(append([]byte{'F'}, f.L.Payload...), uint64(f.TS)))
}

func (e *eventHash) OnMQTT(ev *pipeline.MQTT) {
	e.mqtt++
	e.mix(append(append([]byte{'M'}, ev.Pkt.Topic...), ev.Pkt.Payload...))
}

// devices builds a capture of n sensors publishing readings of about 1 kB
// (each one different) over their own connections, frames interleaved in
// time: 4 MB in all, so that every part of it read alone still reads
// through several windows.
func devices(t *testing.T, n, readings int) []byte {
	t.Helper()
	c := pcaptest.New(capture.LinkEthernet, int64(1_750_000_000)*1e9)
	conns := make([]*pcaptest.Conn, n)
	for i := range conns {
		conns[i] = c.NewConn(fmt.Sprintf("10.1.0.%d:4%04d", 10+i, i), "10.1.0.2:1883")
		conns[i].Handshake()
		conns[i].Send(0, pcaptest.Connect(fmt.Sprintf("sensor-%d", i), mqtt.V311))
	}
	for r := range readings {
		for i, k := range conns {
			payload := bytes.Repeat(fmt.Appendf(nil, "%d:%06d;", i, r), 90)
			k.Send(0, pcaptest.Publish(fmt.Sprintf("ward/%d/spo2", i), string(payload)))
		}
	}
	return c.Pcap()
}

// splitFiles writes the frames of capture into files under dir: part(i)
// says which file frame i goes to; the files alternate pcap, pcapng and
// gzip-compressed pcap.
func splitFiles(t *testing.T, dir string, capture_ []byte, files int, part func(i int) int) []string {
	t.Helper()
	r, err := capture.NewReader(bytes.NewReader(capture_))
	if err != nil {
		t.Fatal(err)
	}
	type out struct {
		buf bytes.Buffer
		w   interface {
			WritePacket(ts int64, data []byte, origLen int) error
			Flush() error
		}
	}
	outs := make([]*out, files)
	for i := range outs {
		o := &out{}
		if i%3 == 1 {
			o.w, err = capture.NewPcapngWriter(&o.buf, capture.LinkEthernet, "eth0")
		} else {
			o.w, err = capture.NewPcapWriter(&o.buf, capture.LinkEthernet)
		}
		if err != nil {
			t.Fatal(err)
		}
		outs[i] = o
	}
	var p capture.Packet
	for i := 0; ; i++ {
		if err := r.Next(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		if err := outs[part(i)].w.WritePacket(p.Timestamp, p.Data, p.OrigLen); err != nil {
			t.Fatal(err)
		}
	}
	var paths []string
	for i, o := range outs {
		o.w.Flush()
		b, name := o.buf.Bytes(), fmt.Sprintf("part-%03d.pcap", i)
		switch i % 3 {
		case 1:
			name += "ng"
		case 2:
			b, name = pcaptest.Gzip(b), name+".gz"
		}
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, path)
	}
	return paths
}

func runHash(t *testing.T, paths ...string) *eventHash {
	t.Helper()
	ins := make([]pipeline.Input, len(paths))
	for i, p := range paths {
		ins[i] = open(t, p)
	}
	e := &eventHash{}
	sum, err := pipeline.New(pipeline.Options{}, e).Run(context.Background(), ins...)
	if err != nil {
		t.Fatal(err)
	}
	if len(sum.Warnings) > 0 {
		t.Fatalf("warnings: %q", sum.Warnings)
	}
	return e
}

// TestSplitCaptureSameEvents cuts one capture into files two ways: in
// time (a rotating capture: each file after the other) and by sensor
// (files side by side, read in turns). Read together, either set gives
// the same frames and MQTT packets, byte for byte, as the whole capture:
// the readers hand their windows on to each other as they grow and end,
// and none may hand on one whose bytes are still to be used.
func TestSplitCaptureSameEvents(t *testing.T) {
	const sensors, readings = 6, 600
	whole := devices(t, sensors, readings)
	dir := t.TempDir()
	wholePath := filepath.Join(dir, "whole.pcap")
	if err := os.WriteFile(wholePath, whole, 0o644); err != nil {
		t.Fatal(err)
	}
	want := runHash(t, wholePath)
	if want.mqtt < sensors*readings {
		t.Fatalf("the whole capture gave %d MQTT packets, want at least %d", want.mqtt, sensors*readings)
	}
	frames := want.frames
	cases := []struct {
		name  string
		files int
		part  func(i int) int
	}{
		{"in time", 40, func(i int) int { return i * 40 / frames }},
		// Each frame after the handshakes belongs to sensor i%sensors; the
		// handshakes go to the first file.
		{"by sensor", sensors, func(i int) int { return max(0, i-4*sensors) % sensors }},
		{"in turns", 7, func(i int) int { return i % 7 }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			paths := splitFiles(t, t.TempDir(), whole, tc.files, tc.part)
			got := runHash(t, paths...)
			if got.frames != want.frames || got.mqtt != want.mqtt || got.h != want.h {
				t.Errorf("%d files: %d frames, %d MQTT packets, digest %x; the whole: %d, %d, %x",
					tc.files, got.frames, got.mqtt, got.h[:6], want.frames, want.mqtt, want.h[:6])
			}
		})
	}
}

// TestWaitingInputsHoldLittle opens 100 captures at once, as analyze does
// with the files of a rotating capture, and reads the first frame of each
// (the merge needs every input's first time): what they hold must stay
// small, for the files are read one after another. Each held 4 MiB of
// buffers before (a 1 MiB buffer to sniff the format, another in the
// capture reader, a 2 MiB window): 200 files of 5,450 frames took 4.5 s
// and 250 MB, against 0.6 s and 60 MB for the same frames in one file.
func TestWaitingInputsHoldLittle(t *testing.T) {
	capBytes := devices(t, 2, 60) // 125 kB: more than one window
	t.Run("pcap", func(t *testing.T) { waitingInputs(t, capBytes, ".pcap", 48<<10) })
	// gzip's decompressor keeps its 32 KiB window and tables besides.
	t.Run("gzip", func(t *testing.T) { waitingInputs(t, pcaptest.Gzip(capBytes), ".pcap.gz", 96<<10) })
	// A dataset CSV's reader keeps a 64 KiB buffer (1 MiB before: 200
	// CSVs of a capture split by time held 200 MiB and took 15 s, against
	// 2.8 s for the same rows in one file).
	csv := []byte("frame.time_relative,frame.len,ip.src,ip.dst,tcp.srcport,tcp.dstport\n")
	for i := range 4000 {
		csv = fmt.Appendf(csv, "%d.%06d,74,10.0.0.%d,10.0.0.1,%d,1883\n", i/100, i%100*10000, 2+i%200, 40000+i%1000)
	}
	t.Run("csv", func(t *testing.T) { waitingInputs(t, csv, ".csv", 96<<10) })
}

func waitingInputs(t *testing.T, capBytes []byte, ext string, each int64) {
	dir := t.TempDir()
	const n = 100
	var paths []string
	for i := range n {
		p := filepath.Join(dir, fmt.Sprintf("rot-%03d%s", i, ext))
		if err := os.WriteFile(p, capBytes, 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	// Two collections empty the pools of windows that earlier readers left.
	var before, after runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&before)
	ins := make([]pipeline.Input, n)
	recs := make([]pipeline.Record, n)
	for i, p := range paths {
		ins[i] = open(t, p)
		if err := ins[i].Next(&recs[i]); err != nil {
			t.Fatal(err)
		}
	}
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&after)
	held := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	for _, in := range ins {
		in.Close()
	}
	runtime.KeepAlive(recs)
	t.Logf("%d inputs waiting hold %d KiB", n, held>>10)
	if limit := n * each; held > limit {
		t.Errorf("%d inputs waiting hold %d KiB, more than %d KiB", n, held>>10, limit>>10)
	}
}
