package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/iomtguard/iomtguard/internal/mqtt"
	"github.com/iomtguard/iomtguard/internal/tcpstream"
	"github.com/iomtguard/iomtguard/internal/tlsinfo"
)

// recorder writes down everything a consumer can observe of each event:
// every exported field, the connection's and session's exported fields as
// of the event, and which connection, session and frame object it is (as
// an ordinal of first appearance, since consumers key maps on them).
type recorder struct {
	hashes   []uint64 // of every event's text: the texts of a large capture's events took gigabytes under -race
	keepAt   int      // the index of the event whose text to keep (-1: none)
	kept     string
	conns    map[*tcpstream.Conn]int
	sessions map[*Session]int
	finished bool
}

func newRecorder() *recorder {
	return &recorder{conns: map[*tcpstream.Conn]int{}, sessions: map[*Session]int{}, keepAt: -1}
}

func (r *recorder) conn(c *tcpstream.Conn) string {
	if c == nil {
		return "conn=nil"
	}
	id, ok := r.conns[c]
	if !ok {
		id = len(r.conns)
		r.conns[c] = id
	}
	var facts tcpstream.Conn
	c.CopyFacts(&facts)
	return fmt.Sprintf("conn#%d %s", id, dump(&facts))
}

func (r *recorder) session(s *Session) string {
	if s == nil {
		return "session=nil"
	}
	id, ok := r.sessions[s]
	if !ok {
		id = len(r.sessions)
		r.sessions[s] = id
	}
	facts := *s
	facts.framer, facts.aliases, facts.gap = [2]mqtt.Framer{}, [2]map[uint16][]byte{}, [2]bool{}
	return fmt.Sprintf("session#%d %s", id, dump(&facts))
}

func (r *recorder) frame(f *Frame) string {
	if f == nil {
		return "frame=nil"
	}
	s := fmt.Sprintf("frame %d src %d ts %d rel %d delta %d cap %d len %d proto %v mqtt %d pdu %d secret %v",
		f.Num, f.Source, f.TS, f.Rel, f.Delta, f.CapLen, f.Len, f.Proto, f.MQTTPackets, f.PDUSize, f.Secret)
	if f.L != nil {
		s += " L " + dump(f.L)
	}
	if f.TCP != nil {
		seg := *f.TCP
		seg.Conn = nil
		s += fmt.Sprintf(" seg %s %s", dump(&seg), r.conn(f.TCP.Conn))
	}
	if f.Row != nil {
		s += " row " + dump(f.Row)
	}
	return s
}

// dump writes v's exported fields as JSON: byte slices as base64, which is
// far cheaper than fmt's %+v (a decimal per byte) on every payload.
func dump(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprintf("%+v", v)
	}
	return string(b)
}

func hs(h *tlsinfo.Handshake) string {
	if h == nil {
		return "tls=nil"
	}
	return fmt.Sprintf("%+v", *h)
}

func (r *recorder) add(s string) {
	if len(r.hashes) == r.keepAt {
		r.kept = s
	}
	h := fnv.New64a()
	h.Write([]byte(s))
	r.hashes = append(r.hashes, h.Sum64())
}

func (r *recorder) OnFrame(f *Frame) { r.add("F " + r.frame(f)) }
func (r *recorder) OnMQTT(m *MQTT) {
	r.add(fmt.Sprintf("M dir %v client %v index %d gapped %v pkt %s | %s | %s | %s", m.Dir, m.FromClient, m.Index, m.Gapped, dump(m.Pkt),
		r.frame(m.Frame), r.conn(m.Conn), r.session(m.Session)))
}
func (r *recorder) OnTLS(t *TLS) {
	r.add(fmt.Sprintf("T dir %v what %v %s | %s | %s", t.Dir, t.What, hs(t.Info), r.frame(t.Frame), r.conn(t.Conn)))
}
func (r *recorder) OnFlow(f *Flow) {
	r.add(fmt.Sprintf("L kind %v proto %v %s | %s | %s", f.Kind, f.Proto, hs(f.TLS), r.conn(f.Conn), r.session(f.Session)))
}
func (r *recorder) OnAnomaly(a *Anomaly) {
	x := *a
	x.Conn = nil
	r.add(fmt.Sprintf("A %+v %s", x, r.conn(a.Conn)))
}
func (r *recorder) OnTick(ts int64)   { r.add(fmt.Sprintf("K %d", ts)) }
func (r *recorder) Finish(s *Summary) { r.finished = true }

// TestAsyncSameEvents: consumers behind Async observe exactly what they
// observe synchronously (every field of every event, the connection and
// session facts as of each event, which object is which), on every test
// capture, the real ones, a CSV, several inputs merged, with batches cut
// after every frame and with the default size.
func TestAsyncSameEvents(t *testing.T) {
	var paths []string
	for _, pat := range []string{"../../testdata/captures/*", "../../testdata/real/*.pcap", "../../testdata/icu-dataset/*.csv", "../../../shared/data/captures/*"} {
		m, _ := filepath.Glob(pat)
		for _, p := range m {
			if ext := filepath.Ext(p); ext == ".pcap" || ext == ".pcapng" || ext == ".csv" || ext == ".gz" {
				paths = append(paths, p)
			}
		}
	}
	if len(paths) < 20 {
		t.Fatalf("only %d test inputs", len(paths))
	}
	runs := [][]string{{paths[0], paths[1], paths[2]}} // merged
	for _, p := range paths {
		runs = append(runs, []string{p})
	}
	defer func(f, b int) { asyncFrames, asyncBytes = f, b }(asyncFrames, asyncBytes)
	events, ran := 0, 0
	for _, run := range runs {
		limit := int64(64 << 20)
		if raceOn {
			limit = 256 << 10 // the race detector is tenfold slower: the small captures suffice
		}
		if st, err := os.Stat(run[0]); err != nil || st.Size() > limit {
			continue
		}
		name := strings.Join(run, "+")
		open := func() []Input {
			var ins []Input
			for _, p := range run {
				in, err := OpenInput(p)
				if err != nil {
					t.Fatalf("%s: %v", p, err)
				}
				ins = append(ins, in)
			}
			return ins
		}
		record := func(cons func(*recorder) Consumer, keepAt int) *recorder {
			r := newRecorder()
			r.keepAt = keepAt
			if _, err := New(Options{}, cons(r)).Run(context.Background(), open()...); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			return r
		}
		direct := func(r *recorder) Consumer { return r }
		sync := record(direct, -1)
		cuts := []int{1, 7, 2048}
		for _, cut := range cuts {
			asyncFrames = cut
			var a *AsyncConsumers
			behind := func(r *recorder) Consumer { a = Async(r); return a }
			async := record(behind, -1)
			if !async.finished {
				t.Fatalf("%s: Finish not passed on", name)
			}
			if len(async.hashes) != len(sync.hashes) {
				t.Fatalf("%s (batches of %d): %d events, synchronously %d", name, cut, len(async.hashes), len(sync.hashes))
			}
			for i := range sync.hashes {
				if async.hashes[i] != sync.hashes[i] {
					st, at := record(direct, i).kept, record(behind, i).kept
					t.Fatalf("%s (batches of %d): event %d differs:\nsync  %s\nasync %s", name, cut, i, around(st, at), around(at, st))
				}
			}
			if len(a.conns) != 0 || len(a.sessions) != 0 {
				t.Errorf("%s: %d connection and %d session copies left after the run", name, len(a.conns), len(a.sessions))
			}
		}
		events += len(sync.hashes)
		ran++
		t.Logf("%s: %d events", name, len(sync.hashes))
	}
	t.Logf("%d runs, %d events each way, identical", ran, events)
}

// around is the part of a where it first differs from b.
func around(a, b string) string {
	i := 0
	for i < len(a) && i < len(b) && a[i] == b[i] {
		i++
	}
	lo, hi := max(0, i-200), min(len(a), i+200)
	return fmt.Sprintf("…%s…", a[lo:hi])
}

// TestSessionCopyFacts: every exported field of a Session reaches the copy
// Async gives consumers (a field added to Session and not to copyFacts
// fails here), and the decoder's state does not.
func TestSessionCopyFacts(t *testing.T) {
	var src Session
	v := reflect.ValueOf(&src).Elem()
	for i := 0; i < v.NumField(); i++ {
		f := v.Field(i)
		if !v.Type().Field(i).IsExported() {
			continue
		}
		switch f.Kind() {
		case reflect.Bool:
			f.SetBool(true)
		case reflect.String:
			f.SetString("x" + v.Type().Field(i).Name)
		case reflect.Int, reflect.Int64, reflect.Int32, reflect.Int16, reflect.Int8:
			f.SetInt(int64(i + 1))
		case reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uint:
			f.SetUint(uint64(i + 1))
		case reflect.Array:
			for j := 0; j < f.Len(); j++ {
				f.Index(j).SetInt(int64(i + j + 1))
			}
		default:
			t.Fatalf("field %s of kind %s: teach this test to set it", v.Type().Field(i).Name, f.Kind())
		}
	}
	src.aliases[0] = map[uint16][]byte{1: []byte("t")}
	var dst Session
	src.copyFacts(&dst)
	want := src
	want.aliases, want.framer, want.gap = dst.aliases, dst.framer, dst.gap
	if !reflect.DeepEqual(dst, want) {
		t.Fatalf("copy differs:\n got %+v\nwant %+v", dst, want)
	}
	if dst.aliases[0] != nil {
		t.Fatal("the decoder's aliases were copied")
	}
}
