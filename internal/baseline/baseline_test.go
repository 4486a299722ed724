package baseline_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/iomtguard/iomtguard/internal/baseline"
	"github.com/iomtguard/iomtguard/internal/capture"
	"github.com/iomtguard/iomtguard/internal/detect"
	"github.com/iomtguard/iomtguard/internal/mqtt"
	"github.com/iomtguard/iomtguard/internal/pipeline"
	"github.com/iomtguard/iomtguard/internal/sim"
	"github.com/iomtguard/iomtguard/internal/tcpstream"
)

// simulate writes a simulated ward capture and returns it as an input.
func simulate(t *testing.T, o sim.Options) pipeline.Input {
	t.Helper()
	var buf bytes.Buffer
	w, err := capture.NewPcapngWriter(&buf, capture.LinkSLL, "sim")
	if err != nil {
		t.Fatal(err)
	}
	o.Link = capture.LinkSLL
	if _, err := sim.Generate(o, w); err != nil {
		t.Fatal(err)
	}
	in, err := pipeline.NewInput("sim.pcapng", bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	return in
}

func learn(t *testing.T, o sim.Options) *baseline.Baseline {
	t.Helper()
	l := baseline.NewLearner()
	if _, err := pipeline.New(pipeline.Options{}, l).Run(context.Background(), simulate(t, o)); err != nil {
		t.Fatal(err)
	}
	b, err := l.Build(baseline.BuildOptions{Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func score(t *testing.T, b *baseline.Baseline, o sim.Options) []baseline.Scored {
	t.Helper()
	var out []baseline.Scored
	s := baseline.NewScorer(b, func(x baseline.Scored) { out = append(out, x) })
	c := &scorerConsumer{s: s}
	if _, err := pipeline.New(pipeline.Options{}, c).Run(context.Background(), simulate(t, o)); err != nil {
		t.Fatal(err)
	}
	return out
}

type scorerConsumer struct {
	pipeline.Nop
	s *baseline.Scorer
}

func (c *scorerConsumer) OnMQTT(m *pipeline.MQTT)   { c.s.OnMQTT(m) }
func (c *scorerConsumer) OnTLS(t *pipeline.TLS)     { c.s.OnTLS(t) }
func (c *scorerConsumer) OnFrame(f *pipeline.Frame) { c.s.OnFrame(f) }
func (c *scorerConsumer) OnFlow(f *pipeline.Flow)   { c.s.OnFlow(f) }

// TestHijackedPumpFound: learned on one benign hour of a four-bed ward,
// scored on another seed with bed 1's pump hijacked: every minute of the
// hijack is anomalous, with words naming the new topic and the period; no
// minute of any other device is, and none before the attack.
func TestHijackedPumpFound(t *testing.T) {
	b := learn(t, sim.Options{Beds: 4, Duration: 3 * time.Hour, Seed: 1})
	if b.Trained < 16 || b.HeldOut < 16 || b.ForestThreshold <= 0.5 || b.DeviationThreshold < 3 {
		t.Fatalf("baseline: %d trained, %d held out, thresholds %v %v", b.Trained, b.HeldOut, b.ForestThreshold, b.DeviationThreshold)
	}
	start := time.Date(2026, 1, 5, 8, 0, 0, 0, time.UTC)
	ws := score(t, b, sim.Options{Beds: 4, Duration: 40 * time.Minute, Seed: 9, Start: start, Attacks: []string{"device-hijack"},
		AttackStart: 20 * time.Minute, AttackDuration: 10 * time.Minute})
	attackFrom := start.Add(20*time.Minute).UnixNano() / int64(time.Minute)
	// The minute after the attack carries it still: the pump's next reading
	// comes seconds after the attack's last message, not ten minutes.
	attackTo := start.Add(31*time.Minute).UnixNano() / int64(time.Minute)
	hits := 0
	for _, w := range ws {
		during := w.Window >= attackFrom && w.Window < attackTo
		switch {
		case w.Key == "bed1-pump" && during:
			if w.Window == attackTo-1 {
				continue // after it: may be anomalous or not
			}
			if !w.Anomalous {
				t.Errorf("hijacked minute %d not anomalous (score %.2f)", w.Window-attackFrom, w.Score)
				continue
			}
			hits++
			if !strings.Contains(w.Why, "1/pump/dose for the first time") {
				t.Errorf("why: %q", w.Why)
			}
		case w.Anomalous:
			t.Errorf("false alarm: %s minute %d: %.2f: %s", w.Key, w.Window-attackFrom, w.Score, w.Why)
		}
	}
	if hits < 9 {
		t.Errorf("%d hijacked minutes found, want at least 9", hits)
	}
}

// TestUnknownDeviceUsesItsShape: a bed the baseline never saw is scored
// against its shape (bed#-ecg), its own address and topic not taken as new.
func TestUnknownDeviceUsesItsShape(t *testing.T) {
	b := learn(t, sim.Options{Beds: 3, Duration: 3 * time.Hour, Seed: 2})
	ws := score(t, b, sim.Options{Beds: 5, Duration: 20 * time.Minute, Seed: 3})
	var grouped int
	for _, w := range ws {
		if strings.HasPrefix(w.Key, "bed5-") {
			if !w.Group {
				t.Errorf("%s scored against its own profile, which it does not have", w.Key)
			}
			grouped++
		}
		if w.Anomalous {
			t.Errorf("false alarm: %s: %.2f: %s", w.Key, w.Score, w.Why)
		}
	}
	if grouped == 0 {
		t.Error("no minute of bed 5 was scored")
	}
}

// TestSaveLoad: a baseline read back scores as the one written; a damaged
// or foreign file is refused with ErrBaseline.
func TestSaveLoad(t *testing.T) {
	b := learn(t, sim.Options{Beds: 2, Duration: time.Hour, Seed: 4})
	path := filepath.Join(t.TempDir(), "ward.baseline")
	if err := b.Save(path); err != nil {
		t.Fatal(err)
	}
	c, err := baseline.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	o := sim.Options{Beds: 2, Duration: 10 * time.Minute, Seed: 5}
	w1, w2 := score(t, b, o), score(t, c, o)
	if len(w1) == 0 || len(w1) != len(w2) {
		t.Fatalf("%d and %d minutes scored", len(w1), len(w2))
	}
	type k struct {
		key string
		w   int64
	}
	want := map[k]float64{}
	for _, w := range w1 {
		want[k{w.Key, w.Window}] = w.Score
	}
	for _, w := range w2 {
		if s, ok := want[k{w.Key, w.Window}]; !ok || s != w.Score {
			t.Fatalf("%s minute %d: %v written, %v read back", w.Key, w.Window, s, w.Score)
		}
	}
	raw, _ := os.ReadFile(path)
	var plain bytes.Buffer
	zr, _ := gzip.NewReader(bytes.NewReader(raw))
	plain.ReadFrom(zr)
	for name, doc := range map[string]string{
		"not gzip":      "hello",
		"cut short":     string(raw[:len(raw)/2]),
		"cyclic forest": strings.Replace(plain.String(), `"l":1,`, `"l":0,`, 1),
		"no forest":     strings.Replace(plain.String(), `"forest":{`, `"forestx":{`, 1),
		"threshold":     strings.Replace(plain.String(), `"forest_threshold":`, `"forest_threshold":7,"x":`, 1),
	} {
		data := []byte(doc)
		if name != "not gzip" && name != "cut short" {
			var z bytes.Buffer
			zw := gzip.NewWriter(&z)
			zw.Write(data)
			zw.Close()
			data = z.Bytes()
		}
		if _, err := baseline.Read(bytes.NewReader(data)); err == nil {
			t.Errorf("%s: read without an error", name)
		}
	}
}

// TestAUC against hand-computed values, ties counting half.
func TestAUC(t *testing.T) {
	for _, c := range []struct {
		pos, neg []float64
		want     float64
	}{
		{[]float64{3, 4}, []float64{1, 2}, 1},
		{[]float64{1, 2}, []float64{3, 4}, 0},
		{[]float64{2}, []float64{2}, 0.5},
		{[]float64{1, 3}, []float64{2, 2}, 0.5},
		{[]float64{2, 3}, []float64{1, 2, 4}, (1 + 0.5 + 0 + 1 + 1 + 0) / 6.0},
	} {
		if got := baseline.AUC(c.pos, c.neg); math.Abs(got-c.want) > 1e-12 {
			t.Errorf("AUC(%v, %v) = %v, want %v", c.pos, c.neg, got, c.want)
		}
	}
}

// TestForestIsolatesOutliers: a point far from a cloud scores above 99 %
// of the cloud's points, in one dimension and, far out on every feature, in
// three. (Not above them all: a point beyond every cut ends where the
// cloud's most extreme point does, and axis-parallel cuts isolate a point
// extreme on several features as fast as one far out on one. This is why
// the baseline adds the largest deviation to the forest's score.)
func TestForestIsolatesOutliers(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, c := range []struct {
		dim     int
		outlier []float64
	}{{1, []float64{8}}, {1, []float64{-8}}, {3, []float64{6, 6, -6}}} {
		var xs [][]float64
		for range 2000 {
			x := make([]float64, c.dim)
			for i := range x {
				x[i] = rng.NormFloat64()
			}
			xs = append(xs, x)
		}
		f, err := baseline.TrainForest(xs, 100, 256, 1)
		if err != nil {
			t.Fatal(err)
		}
		var in []float64
		for _, x := range xs {
			in = append(in, f.Score(x))
		}
		slices.Sort(in)
		if s, p99 := f.Score(c.outlier), in[len(in)*99/100]; s <= p99 {
			t.Errorf("outlier %v scores %.3f, not above the cloud's 99th percentile %.3f", c.outlier, s, p99)
		}
	}
	if _, err := baseline.TrainForest([][]float64{{1}}, 10, 256, 1); err == nil {
		t.Error("a forest of one point was trained")
	}
}

// TestHijackThroughTLS: on a ward speaking MQTT over TLS, where no MQTT is
// visible, a device is its certificate's name and its records stand for
// its messages: the hijacked pump's minutes are found, in words that say
// records.
func TestHijackThroughTLS(t *testing.T) {
	b := learn(t, sim.Options{Beds: 4, Duration: 3 * time.Hour, Seed: 1, TLS: true})
	if b.Devices["bed1-pump"] == nil {
		t.Fatal("no profile for bed1-pump (its certificate's name)")
	}
	start := time.Date(2026, 1, 5, 8, 0, 0, 0, time.UTC)
	ws := score(t, b, sim.Options{Beds: 4, Duration: 40 * time.Minute, Seed: 9, Start: start, TLS: true, Attacks: []string{"device-hijack"},
		AttackStart: 20 * time.Minute, AttackDuration: 10 * time.Minute})
	from := start.Add(20*time.Minute).UnixNano() / int64(time.Minute)
	hits := 0
	for _, w := range ws {
		if w.Key == "bed1-pump" && w.Window >= from && w.Window < from+10 && w.Anomalous {
			hits++
			if !strings.Contains(w.Why, "TLS records") {
				t.Errorf("why: %q", w.Why)
			}
		}
	}
	if hits < 9 {
		t.Errorf("%d of the 10 hijacked minutes found through TLS", hits)
	}
}

// publish is a PUBLISH event from client id at ts.
func publish(id string, ts int64, topic string) *pipeline.MQTT {
	return &pipeline.MQTT{Frame: &pipeline.Frame{TS: ts}, FromClient: true, Session: &pipeline.Session{ClientID: id},
		Pkt: &mqtt.Packet{Type: mqtt.PUBLISH, Topic: []byte(topic), PayloadLen: 3}}
}

// TestJunkClientIDsDoNotBlind: 25,000 client IDs used once fill the
// device table past its bound; a device with a profile of its own is
// still followed, and the junk is forgotten after an hour of silence.
func TestJunkClientIDsDoNotBlind(t *testing.T) {
	b := &baseline.Baseline{Devices: map[string]*baseline.Profile{"bed1-ecg": {Windows: 100}}, Groups: map[string]*baseline.Profile{}}
	var got []string
	tr := baseline.NewTracker(func(key string) (*baseline.Profile, bool) {
		p := b.Devices[key]
		return p, false
	}, func(o baseline.Obs) { got = append(got, o.Key) })
	t0 := int64(1e15)
	for i := range 25000 {
		tr.OnMQTT(publish(fmt.Sprintf("junk-%d", i), t0+int64(i)*1e6, "x"))
	}
	for m := int64(0); m < 3; m++ {
		tr.OnMQTT(publish("bed1-ecg", t0+(m+1)*int64(time.Minute), "1/ecg"))
	}
	tr.Advance(t0 + 5*int64(time.Minute))
	if !slices.Contains(got, "bed1-ecg") {
		t.Fatalf("bed1-ecg was not followed behind 25,000 junk client IDs (%d evicted)", tr.Evicted)
	}
	if tr.Evicted == 0 {
		t.Error("nothing evicted: the bound did not hold")
	}
	// An hour later the junk is forgotten: new devices are followed again.
	got = nil
	tr.OnMQTT(publish("bed9-new", t0+70*int64(time.Minute), "9/ecg"))
	tr.Advance(t0 + 72*int64(time.Minute))
	if !slices.Contains(got, "bed9-new") {
		t.Error("a new device is not followed an hour after the junk")
	}
}

// TestLearningIsDeterministic: the same capture learns the same baseline,
// byte for byte.
func TestLearningIsDeterministic(t *testing.T) {
	o := sim.Options{Beds: 3, Duration: time.Hour, Seed: 5}
	dir := t.TempDir()
	var files [][]byte
	for i := range 3 {
		path := filepath.Join(dir, fmt.Sprint(i))
		if err := learn(t, o).Save(path); err != nil {
			t.Fatal(err)
		}
		b, _ := os.ReadFile(path)
		files = append(files, b)
	}
	for i := 1; i < len(files); i++ {
		if !bytes.Equal(files[0], files[i]) {
			t.Fatalf("learning run %d wrote another baseline than run 0", i)
		}
	}
}

// TestPrintable: names shown in words and tables carry no control
// character and are cut.
func TestPrintable(t *testing.T) {
	got := baseline.Printable("w/\x1b[2J\x1b]0;OWNED\x07cam"+strings.Repeat("x", 300), 40)
	if strings.ContainsAny(got, "\x1b\x07") || !strings.HasSuffix(got, "…") || len(got) > 80 {
		t.Errorf("Printable: %q", got)
	}
}

// TestDetectorThroughTLS: the detector, as analyze runs it, follows a TLS
// ward's devices by their frames: the hijacked pump is the finding's.
func TestDetectorThroughTLS(t *testing.T) {
	b := learn(t, sim.Options{Beds: 4, Duration: 3 * time.Hour, Seed: 1, TLS: true})
	det, err := detect.NewWith(nil, detect.Options{Baseline: b})
	if err != nil {
		t.Fatal(err)
	}
	in := simulate(t, sim.Options{Beds: 4, Duration: 40 * time.Minute, Seed: 9, TLS: true, Attacks: []string{"device-hijack"},
		AttackStart: 20 * time.Minute, AttackDuration: 10 * time.Minute})
	if _, err := pipeline.New(pipeline.Options{}, det).Run(context.Background(), in); err != nil {
		t.Fatal(err)
	}
	for _, f := range det.Findings(detect.Models{}) {
		if f.ID == "anomaly.device-behaviour" {
			if !slices.Contains(f.Evidence.ClientIDs, "bed1-pump") || len(f.Evidence.ClientIDs) != 1 {
				t.Errorf("devices: %v, want bed1-pump alone", f.Evidence.ClientIDs)
			}
			return
		}
	}
	t.Error("no anomaly.device-behaviour on the TLS ward's hijacked pump")
}

// TestConnCacheCountsAsLookups: the tracker's per-connection cache (the
// device's window, its profile, its peers and last topic) must count every
// packet as the lookups do. Two trackers get the same random stream of
// devices reconnecting, client IDs changing on a connection, the client's
// side learned the other way on a session without a client ID, topics
// alternating and new, windows closing and dropped, a gap, timestamps
// going back, and profiles learned as windows close; one sees each connection as one
// pointer (so the cache hits), the other a new copy of it for every packet
// (so it never does). Their windows must be the same, field for field.
func TestConnCacheCountsAsLookups(t *testing.T) {
	for seed := range uint64(6) {
		rng := rand.New(rand.NewPCG(seed, 99))
		type tracked struct {
			tr    *baseline.Tracker
			got   []baseline.Obs
			known map[string]*baseline.Profile
		}
		mk := func() *tracked {
			x := &tracked{known: map[string]*baseline.Profile{}}
			x.tr = baseline.NewTracker(func(key string) (*baseline.Profile, bool) {
				p := x.known[key]
				return p, p != nil && strings.HasPrefix(key, "g")
			}, func(o baseline.Obs) {
				// (a window's topics and peers come in map order)
				o.Topics, o.Peers = slices.Sorted(slices.Values(o.Topics)), slices.Sorted(slices.Values(o.Peers))
				x.got = append(x.got, o)
				// Learn as a learner does: a window's topics and peers
				// become the device's profile from then on.
				x.known[o.Key] = &baseline.Profile{Windows: 5, Topics: o.Topics, Peers: o.Peers}
			})
			return x
		}
		cached, fresh := mk(), mk()
		type conn struct {
			c    *tcpstream.Conn
			sess *pipeline.Session
		}
		broker := netip.MustParseAddrPort("10.0.0.1:1883")
		newConn := func(dev int) conn {
			a := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 1, byte(dev)}), uint16(40000+rng.IntN(20000)))
			return conn{&tcpstream.Conn{A: a, B: broker}, &pipeline.Session{ClientID: fmt.Sprintf("dev%d", dev)}}
		}
		conns := make([]conn, 12)
		for i := range conns {
			conns[i] = newConn(i % 6)
			if i%6 == 5 {
				conns[i].sess.ClientID = "" // known by its address
			}
			if i%6 == 4 {
				conns[i].sess.ClientID = "g-shaped"
			}
		}
		ts := int64(1e15)
		for range 20000 {
			switch r := rng.IntN(1000); {
			case r < 3: // a gap of some minutes
				ts += int64(rng.IntN(5)+1) * int64(time.Minute)
			case r < 10: // a packet stamped earlier
				ts -= int64(rng.IntN(70)) * int64(time.Second)
			default:
				ts += int64(rng.IntN(400)) * int64(time.Millisecond)
			}
			i := rng.IntN(len(conns))
			cn := conns[i]
			switch r := rng.IntN(1000); {
			case r < 2: // the windows under way are dropped (the end of learning)
				for _, x := range []*tracked{cached, fresh} {
					x.tr.Flush()
				}
			case r < 5: // the connection closes; the device comes back on another
				for _, x := range []*tracked{cached, fresh} {
					x.tr.OnFlow(&pipeline.Flow{Kind: pipeline.FlowClosed, Conn: cn.c})
				}
				conns[i] = newConn(i % 6)
				conns[i].sess.ClientID = cn.sess.ClientID
				continue
			case r < 8: // the session's client ID changes on the same connection
				cn.sess.ClientID = fmt.Sprintf("dev%d", rng.IntN(8))
			case r < 12: // the client's side is learned the other way (a session picked up mid-stream)
				cn.sess.ClientDir ^= 1
			}
			pkt := &mqtt.Packet{Type: mqtt.PUBLISH, PayloadLen: rng.IntN(200), QoS: byte(rng.IntN(2))}
			switch r := rng.IntN(100); {
			case r < 5:
				pkt.Type = mqtt.SUBSCRIBE
			case r < 8:
				pkt.Type = mqtt.CONNECT
			case r < 12:
				pkt.Topic = []byte(fmt.Sprintf("new/%d", rng.IntN(500)))
			case r < 13:
				pkt.Topic = nil // an empty topic (an alias)
			default:
				pkt.Topic = []byte(fmt.Sprintf("ward/%d/%s", i%6, []string{"ecg", "spo2", "hr"}[rng.IntN(3)]))
			}
			fromClient := rng.IntN(20) != 0
			sess := *cn.sess
			cached.tr.OnMQTT(&pipeline.MQTT{Frame: &pipeline.Frame{TS: ts}, FromClient: fromClient, Session: cn.sess, Conn: cn.c, Pkt: pkt})
			copyConn := *cn.c
			fresh.tr.OnMQTT(&pipeline.MQTT{Frame: &pipeline.Frame{TS: ts}, FromClient: fromClient, Session: &sess, Conn: &copyConn, Pkt: pkt})
		}
		for _, x := range []*tracked{cached, fresh} {
			x.tr.Flush()
		}
		if len(cached.got) < 100 {
			t.Fatalf("seed %d: only %d windows", seed, len(cached.got))
		}
		if len(cached.got) != len(fresh.got) {
			t.Fatalf("seed %d: %d windows with the cache, %d without", seed, len(cached.got), len(fresh.got))
		}
		for i := range cached.got {
			if a, b := cached.got[i], fresh.got[i]; fmt.Sprintf("%+v", a) != fmt.Sprintf("%+v", b) {
				t.Fatalf("seed %d, window %d:\n cached %+v\n fresh  %+v", seed, i, a, b)
			}
		}
	}
}
