package analysis_test

import (
	"bytes"
	"context"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/iomtguard/iomtguard/internal/analysis"
	"github.com/iomtguard/iomtguard/internal/demo"
	"github.com/iomtguard/iomtguard/internal/mqtt"
	"github.com/iomtguard/iomtguard/internal/packet"
	"github.com/iomtguard/iomtguard/internal/pipeline"
	"github.com/iomtguard/iomtguard/internal/report"
	"github.com/iomtguard/iomtguard/internal/stats"
	"github.com/iomtguard/iomtguard/internal/tcpstream"
)

// minutes splits a run into one Analyzer per minute of capture time, as a
// live run does, and keeps each minute's State (encoded, as the history
// stores it: State.Pack).
type minutes struct {
	pipeline.Nop
	opts   analysis.Options
	width  time.Duration
	cur    *analysis.Analyzer
	min    int64
	origin int64
	states [][]byte
}

// stateEvery reads its analyzer's State every so many frames, and the
// analyzer goes on.
type stateEvery struct {
	*analysis.Analyzer
	every, n, states int
}

func (s *stateEvery) OnFrame(f *pipeline.Frame) {
	s.Analyzer.OnFrame(f)
	if s.n++; s.n%s.every == 0 {
		s.Analyzer.State()
		s.states++
	}
}

func (m *minutes) roll(ts int64) {
	if m.cur == nil {
		m.origin = ts
	}
	if k := ts / int64(m.width); m.cur == nil || k != m.min {
		m.flush()
		o := m.opts
		o.Origin = m.origin
		m.cur, m.min = analysis.New(o), k
	}
}

func (m *minutes) flush() {
	if m.cur == nil {
		return
	}
	b, err := m.cur.State().Pack()
	if err != nil {
		panic(err)
	}
	m.states = append(m.states, b)
	m.cur.Close()
	m.cur = nil
}

func (m *minutes) OnFrame(f *pipeline.Frame) { m.roll(f.TS); m.cur.OnFrame(f) }
func (m *minutes) OnMQTT(e *pipeline.MQTT) {
	m.roll(e.Frame.TS)
	m.cur.OnMQTT(e)
}
func (m *minutes) OnFlow(e *pipeline.Flow) {
	if m.cur != nil {
		m.cur.OnFlow(e)
	}
}
func (m *minutes) OnAnomaly(a *pipeline.Anomaly) {
	if m.cur != nil {
		m.cur.OnAnomaly(a)
	}
}
func (m *minutes) OnTLS(t *pipeline.TLS) {
	if m.cur != nil {
		m.cur.OnTLS(t)
	}
}
func (m *minutes) Finish(*pipeline.Summary) { m.flush() }

// TestMergedMinutesEqualAnalyze: a capture analysed whole, and the same
// capture as one Analyzer per minute whose States are encoded, decoded and
// merged, give the same Result (every section of analysis.json).
func TestMergedMinutesEqualAnalyze(t *testing.T) {
	demoPath := filepath.Join(t.TempDir(), "demo.pcapng.gz")
	b, _ := io.ReadAll(demo.Open())
	os.WriteFile(demoPath, b, 0o644)
	files := []string{"../../testdata/real/mosquitto-attacks.pcap", "../../testdata/real/mosquitto-ward.pcap", "../../testdata/real/websocket-aedes.pcap",
		demoPath}
	fixed := func() time.Time { return time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC) }
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			opts := analysis.Options{Now: fixed}
			in, err := pipeline.OpenInput(f)
			if err != nil {
				t.Fatal(err)
			}
			whole := analysis.New(opts)
			// The same with the columns on their own goroutine (as analyze
			// runs), and the minutes likewise: their States are read while
			// the worker may still hold values.
			copts := opts
			copts.Concurrent = true
			wholeC := analysis.New(copts)
			width := time.Minute
			if !strings.Contains(f, "demo") {
				width = 2 * time.Second // short captures: parts of two seconds
			}
			mins := &minutes{opts: copts, width: width}
			// And an analyzer whose State is read every 97 frames and goes
			// on (watch's live window): open connections are counted in
			// their hosts at each State and summed again from zero after.
			// It comes first, so that it has a connection slot (the two
			// after it take the other; the minutes keep maps).
			live := &stateEvery{Analyzer: analysis.New(opts), every: 97}
			sum, err := pipeline.New(pipeline.Options{}, live, whole, wholeC, mins).Run(context.Background(), in)
			if err != nil {
				t.Fatal(err)
			}
			merged := analysis.New(opts)
			for _, b := range mins.states {
				st, err := analysis.Unpack(b)
				if err != nil {
					t.Fatal(err)
				}
				merged.Merge(st)
			}
			own := merged.OwnSummary()
			own.Inputs, own.Warnings = sum.Inputs, sum.Warnings
			a, b := whole.Result(sum, nil), merged.Result(own, nil)
			ja, jb := encode(t, a), encode(t, b)
			if jc := encode(t, wholeC.Result(sum, nil)); jc != ja {
				t.Fatalf("the columns on their own goroutine differ:\n%s", firstDiff(ja, jc))
			}
			if live.states < 2 {
				t.Fatalf("only %d States read mid-run", live.states)
			}
			if jl := encode(t, live.Result(sum, nil)); jl != ja {
				t.Fatalf("an analyzer whose State was read %d times differs:\n%s", live.states, firstDiff(ja, jl))
			}
			if ja != jb {
				t.Fatalf("%d minutes merged differ from the whole:\n%s", len(mins.states), firstDiff(ja, jb))
			}
			if len(mins.states) < 2 {
				t.Fatalf("only %d part: nothing merged", len(mins.states))
			}
			t.Logf("%d parts of %s merged: equal", len(mins.states), width)
		})
	}
}

func encode(t *testing.T, r *analysis.Result) string {
	r.Timings = nil
	var b bytes.Buffer
	if err := report.JSON(&b, r); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func firstDiff(a, b string) string {
	la, lb := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := 0; i < len(la) && i < len(lb); i++ {
		if la[i] != lb[i] {
			lo := max(0, i-3)
			return "whole:\n" + strings.Join(la[lo:min(len(la), i+3)], "\n") + "\nmerged:\n" + strings.Join(lb[lo:min(len(lb), i+3)], "\n")
		}
	}
	return "lengths differ"
}

// FuzzUnpack: what a history file or a hub hands Unpack may be damaged or
// hostile; it is refused with an error, never a panic, and what it accepts
// packs again.
func FuzzUnpack(f *testing.F) {
	st := analysis.New(analysis.Options{}).State()
	b, _ := st.Pack()
	f.Add(b)
	f.Add(b[:len(b)/2])
	f.Add([]byte{0x1f, 0x8b})
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := analysis.Unpack(b)
		if err != nil {
			return
		}
		if _, err := st.Pack(); err != nil {
			t.Fatal(err)
		}
	})
}

// TestUnpackRefuses: another version, a cut blob, not gzip.
func TestUnpackRefuses(t *testing.T) {
	st := analysis.New(analysis.Options{}).State()
	st.Version = analysis.StateVersion + 1
	b, _ := st.Pack()
	if _, err := analysis.Unpack(b); err == nil || !strings.Contains(err.Error(), "version") {
		t.Errorf("another version: %v", err)
	}
	st.Version = analysis.StateVersion
	b, _ = st.Pack()
	if _, err := analysis.Unpack(b[:len(b)-9]); err == nil {
		t.Error("a cut blob was accepted")
	}
	if _, err := analysis.Unpack([]byte("{}")); err == nil {
		t.Error("not gzip was accepted")
	}
}

// FuzzCheckPacked: CheckPacked never panics, and what Unpack accepts it
// accepts too.
func FuzzCheckPacked(f *testing.F) {
	b, _ := analysis.New(analysis.Options{}).State().Pack()
	f.Add(b)
	f.Add(b[:len(b)-3])
	f.Fuzz(func(t *testing.T, b []byte) {
		err := analysis.CheckPacked(b, 0)
		if _, uerr := analysis.Unpack(b); uerr == nil && err != nil {
			t.Fatalf("Unpack accepts what CheckPacked refuses: %v", err)
		}
	})
}

// TestConcurrentMQTTWithoutFrame: MQTT packets that reach the analyzer
// with no frame of their time after them (data a stream's end flushes) are
// counted by the worker as in place, in the series and the columns.
func TestConcurrentMQTTWithoutFrame(t *testing.T) {
	fixed := func() time.Time { return time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC) }
	conn := &tcpstream.Conn{A: netip.MustParseAddrPort("10.0.0.2:40000"), B: netip.MustParseAddrPort("10.0.0.1:1883")}
	sess := &pipeline.Session{ClientID: "bed1-pump", ClientKnown: true}
	var out []string
	for _, concurrent := range []bool{false, true} {
		a := analysis.New(analysis.Options{Now: fixed, Concurrent: concurrent})
		frame := func(ts int64) *pipeline.Frame {
			return &pipeline.Frame{TS: ts, Len: 60, L: &packet.Frame{}}
		}
		mq := func(ts int64) {
			a.OnMQTT(&pipeline.MQTT{Frame: frame(ts), Conn: conn, Session: sess, FromClient: true,
				Pkt: &mqtt.Packet{Type: mqtt.PUBLISH, Topic: []byte("ward/bed1/pump"), RemainingLength: 30, Present: mqtt.FieldTopic}})
		}
		base := int64(1_700_000_000e9)
		for s := int64(0); s < 5; s++ {
			ts := base + s*1e9
			mq(ts)
			a.OnFrame(frame(ts))
		}
		mq(base + 5e9) // at the next second, no frame follows
		mq(base + 5e9)
		mq(base + 7e9) // and later still
		r := a.Result(&pipeline.Summary{Frames: 5}, nil)
		out = append(out, encode(t, r))
		if n := len(r.Series.MQTT); n != 8 || r.Series.MQTT[5] != 2 || r.Series.MQTT[7] != 1 {
			t.Errorf("concurrent %v: MQTT series %v, want 8 seconds with 2 at 5 s and 1 at 7 s", concurrent, r.Series.MQTT)
		}
	}
	if out[0] != out[1] {
		t.Fatalf("the worker differs from the analysis in place:\n%s", firstDiff(out[0], out[1]))
	}
}

// TestRefineColumns: columns past their cap, given a second pass over the
// same capture, have the quartiles of the columns that held every value
// (and say they are exact); without the second pass they are flagged.
func TestRefineColumns(t *testing.T) {
	fixed := func() time.Time { return time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC) }
	for _, f := range []string{"../../testdata/real/mosquitto-ward.pcap", "../../testdata/real/mosquitto-attacks.pcap"} {
		t.Run(filepath.Base(f), func(t *testing.T) {
			run := func(cons ...pipeline.Consumer) *pipeline.Summary {
				in, err := pipeline.OpenInput(f)
				if err != nil {
					t.Fatal(err)
				}
				sum, err := pipeline.New(pipeline.Options{}, cons...).Run(context.Background(), in)
				if err != nil {
					t.Fatal(err)
				}
				return sum
			}
			whole := analysis.New(analysis.Options{Now: fixed})
			capped := analysis.New(analysis.Options{Now: fixed, ColumnCap: 20, Concurrent: true})
			sum := run(whole, capped)
			c := capped.Refiner(1 << 20)
			if c == nil {
				t.Fatal("no column past a cap of 20")
			}
			flagged := analysis.New(analysis.Options{Now: fixed, ColumnCap: 20})
			run(c, flagged)
			exact, missed := capped.Refine(c)
			if len(missed) > 0 || len(exact) == 0 {
				t.Fatalf("made exact %q, missed %q", exact, missed)
			}
			want, got, rough := whole.Result(sum, nil), capped.Result(sum, nil), flagged.Result(sum, nil)
			for _, m := range []struct {
				name      string
				want, got map[string]stats.Summary
			}{{"describe", want.Describe, got.Describe}, {"describe_mqtt", want.DescribeMQTT, got.DescribeMQTT}} {
				for col, w := range m.want {
					g := m.got[col]
					if g.Q25 != w.Q25 || g.Q50 != w.Q50 || g.Q75 != w.Q75 || !g.Exact || g.Count != w.Count {
						t.Errorf("%s %s: %+v, want the quartiles of %+v", m.name, col, g, w)
					}
				}
			}
			sketched := 0
			for _, s := range rough.Describe {
				if !s.Exact {
					sketched++
				}
			}
			if sketched == 0 {
				t.Error("no column flagged without the second pass")
			}
			t.Logf("%d columns made exact by the second pass (%d flagged without it)", len(exact), sketched)
		})
	}
}

// TestManyBatches: enough frames that the worker's buffers are each
// returned and filled again and the pass waits for them (the demo, 16,093
// frames, fills two batches of 8,192 and the worker has five buffers),
// with the worker and a State read mid-run at a count that is not a
// multiple of the batch, give the Result of the run without the worker.
// It fails when a buffer goes back to the pass without being emptied, or
// a batch is lost. (From an independent review: at 1,024 records a batch
// only TestMergedMinutesEqualAnalyze reused buffers.)
func TestManyBatches(t *testing.T) {
	var ins []pipeline.Input
	for range 6 {
		in, err := pipeline.NewInput("demo", demo.Open())
		if err != nil {
			t.Fatal(err)
		}
		ins = append(ins, in)
	}
	fixed := func() time.Time { return time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC) }
	opts := analysis.Options{Now: fixed}
	copts := opts
	copts.Concurrent = true
	whole, wholeC := analysis.New(opts), analysis.New(copts)
	live := &stateEvery{Analyzer: analysis.New(copts), every: 5003}
	sum, err := pipeline.New(pipeline.Options{}, whole, wholeC, live).Run(context.Background(), ins...)
	if err != nil {
		t.Fatal(err)
	}
	if least := int64(2 * (analysis.RecQueued + 1) * analysis.RecBatch); sum.Frames < least {
		t.Fatalf("%d frames: fewer than twice what the worker's buffers hold (%d)", sum.Frames, least)
	}
	ja := encode(t, whole.Result(sum, nil))
	if jc := encode(t, wholeC.Result(sum, nil)); jc != ja {
		t.Fatalf("the worker differs:\n%s", firstDiff(ja, jc))
	}
	if jl := encode(t, live.Result(sum, nil)); jl != ja {
		t.Fatalf("the worker with %d States read mid-run differs:\n%s", live.states, firstDiff(ja, jl))
	}
}
