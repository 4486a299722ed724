package hub_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/iomtguard/iomtguard/internal/analysis"
	"github.com/iomtguard/iomtguard/internal/detect"
	"github.com/iomtguard/iomtguard/internal/hub"
	"github.com/iomtguard/iomtguard/internal/pipeline"
	"github.com/iomtguard/iomtguard/internal/sim"
	"github.com/iomtguard/iomtguard/internal/watch"
)

func gz(s string) []byte {
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	w.Write([]byte(s))
	w.Close()
	return b.Bytes()
}

// TestHubRefusesDamage: what a broken or hostile sensor sends. Refused and
// counted at once: a minute that is not gzip, of another version, cut
// short, without its headers, inflating to 100 MB, or from the future; an
// event that is not JSON; facts from the future, with more keys than a
// sensor keeps, or a span that ends before it begins. A minute whose
// gzip and version are right but whose JSON is not is stored (the hub
// checks, it does not decode) and the report leaves it out with a warning,
// with the good minutes still reported.
func TestHubRefusesDamage(t *testing.T) {
	h, err := hub.Start(hub.Options{Data: t.TempDir(), Listen: "127.0.0.1:0", Name: "a"})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	nc, err := nats.Connect(h.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	path := simulate(t, sim.Options{Ward: "icu", Duration: time.Minute, Seed: 3})
	in, err := pipeline.OpenInput(path)
	if err != nil {
		t.Fatal(err)
	}
	a := analysis.New(analysis.Options{})
	if _, err := pipeline.New(pipeline.Options{}, a).Run(context.Background(), in); err != nil {
		t.Fatal(err)
	}
	st := a.State()
	good, _ := st.Pack()
	other := gz(`{"version":99,"origin":0}`)
	minute := func(seq, min string, body []byte, hdr bool) {
		m := nats.NewMsg(hub.Subject("icu", "s1", hub.KindMinute))
		if hdr {
			m.Header.Set(hub.HeaderRun, "1")
			m.Header.Set(hub.HeaderSeq, seq)
			m.Header.Set(hub.HeaderMinute, min)
			m.Header.Set(hub.HeaderFrames, "1")
		}
		m.Data = body
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := js.PublishMsg(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	minute("1", "100", []byte("not gzip"), true)
	minute("2", "101", other, true)
	minute("3", "102", good[:len(good)-4], true)
	minute("4", "103", good, false)
	minute("5", "104", gz(`{"version":1,"origin":[[[`), true) // checked, not decoded: stored
	minute("6", "105", good, true)
	bomb := gz(`{"version":1,` + strings.Repeat(" ", 100<<20) + `}`) // 100 MB inflated, 100 kB sent
	minute("7", "106", bomb, true)
	minute("8", strconv.FormatInt(time.Now().Add(48*time.Hour).Unix()/60, 10), good, true) // from the future
	event := func(ev hub.Event) {
		b, _ := json.Marshal(ev)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := js.Publish(ctx, hub.Subject("icu", "s1", hub.KindEvent), b); err != nil {
			t.Fatal(err)
		}
	}
	future := time.Now().Add(48 * time.Hour).UnixNano()
	event(hub.Event{Run: 1, Seq: 1, Facts: &detect.Facts{From: future, To: future}})
	many := &detect.Facts{}
	for i := 0; i <= detect.MaxFactKeys; i++ {
		many.Clients = append(many.Clients, detect.ClientFact{ClientID: strconv.Itoa(i)})
	}
	event(hub.Event{Run: 1, Seq: 2, Facts: many})
	event(hub.Event{Run: 1, Seq: 3, Facts: &detect.Facts{Clients: []detect.ClientFact{{ClientID: "x", First: 2, Last: 1}}}})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	js.Publish(ctx, hub.Subject("icu", "s1", hub.KindEvent), []byte("{not json"))
	js.Publish(ctx, "iomtguard.sensor.icu.s1.other", []byte("x"))
	waitDrained(t, h)
	if st := h.Stats(); st.Rejected != 11 || st.Minutes != 2 {
		t.Errorf("stats: %+v", st)
	}
	// A report of the history: the damaged minute left out, said so; the
	// good one reported.
	res, err := watch.Report(h.DB(), "", 0, analysis.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Overview.Frames != st.Summary.Frames || len(res.Warnings) == 0 || !strings.Contains(strings.Join(res.Warnings, " "), "1 stored minutes could not be read") {
		t.Errorf("report: %d frames (want %d), warnings %q", res.Overview.Frames, st.Summary.Frames, res.Warnings)
	}
}

// TestHubFactsRedelivered: the same facts event published again (another
// message ID, as a sensor retrying after a lost acknowledgement would, or
// a replay of it) is not counted twice by the cross-site detectors.
func TestHubFactsRedelivered(t *testing.T) {
	h, err := hub.Start(hub.Options{Data: t.TempDir(), Listen: "127.0.0.1:0", Name: "a"})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	nc, err := nats.Connect(h.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	at := time.Date(2026, 1, 5, 8, 3, 0, 0, time.UTC).UnixNano()
	send := func(site string, seq int64, id string) {
		ev := hub.Event{Run: 7, Seq: seq, Minute: at / 60e9, Facts: &detect.Facts{From: at, To: at,
			Auth: []detect.AuthFact{{Source: "10.5.127.10", User: "bed1-pump", Refused: 6, Distinct: 6, First: at, Last: at}}}}
		b, _ := json.Marshal(ev)
		m := nats.NewMsg(hub.Subject(site, "s1", hub.KindEvent))
		m.Data = b
		m.Header.Set(jetstream.MsgIDHeader, id)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := js.PublishMsg(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	send("icu", 1, "a")
	send("ward4", 1, "b")
	send("icu", 1, "c") // the same event again
	waitDrained(t, h)
	ins, _ := h.DB().Incidents(hub.GroupSource, time.Time{})
	if len(ins) != 1 || ins[0].Evidence.Counts["refused_connects"] != 12 {
		t.Fatalf("group incidents: %+v", ins)
	}
}
