package hub_test

import (
	"context"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/iomtguard/iomtguard/internal/analysis"
	"github.com/iomtguard/iomtguard/internal/detect"
	"github.com/iomtguard/iomtguard/internal/hub"
	"github.com/iomtguard/iomtguard/internal/pipeline"
	"github.com/iomtguard/iomtguard/internal/source"
	"github.com/iomtguard/iomtguard/internal/watch"
)

// sharedCaptures returns the shared captures named, or skips.
func sharedCaptures(t *testing.T, names ...string) []string {
	t.Helper()
	var out []string
	for _, n := range names {
		p := filepath.Join("..", "..", "..", "shared", "data", "captures", n)
		if _, err := os.Stat(p); err != nil {
			t.Skipf("needs ../shared/data/captures/%s (the shared data beside the repository): %v", n, err)
		}
		out = append(out, p)
	}
	return out
}

// sensorRun replays a capture through watch with a sensor linked to url,
// and returns the sensor's counters once it has delivered everything.
func sensorRun(t *testing.T, o hub.SensorOptions, path string) hub.SensorStats {
	t.Helper()
	o.Patient = true
	s, err := hub.NewSensor(o)
	if err != nil {
		t.Fatal(err)
	}
	src, err := source.Replay(path, 0, source.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	w, err := watch.New(watch.Options{Input: src, Stats: src.Stats(), SourceKind: "replay", Name: hub.Source(o.Site, o.Sensor), Uplink: s})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	return s.Stats()
}

// analyzeEach is analyze of each capture, merged in time order (as a hub
// merges its sensors' minutes), and the findings analyze gives for each.
func analyzeEach(t *testing.T, opts analysis.Options, paths ...string) (*analysis.Result, map[string]bool) {
	t.Helper()
	ids := map[string]bool{}
	var states []*analysis.State
	for _, p := range paths {
		in, err := pipeline.OpenInput(p)
		if err != nil {
			t.Fatal(err)
		}
		a := analysis.New(opts)
		det, _ := detect.New(nil)
		sum, err := pipeline.New(pipeline.Options{}, a, det).Run(context.Background(), in)
		if err != nil {
			t.Fatal(err)
		}
		states = append(states, a.State())
		for _, f := range a.Result(sum, det.Findings).Findings {
			ids[f.ID] = true
		}
	}
	sort.Slice(states, func(i, j int) bool { return states[i].First < states[j].First })
	all := analysis.New(opts)
	for _, st := range states {
		all.Merge(st)
	}
	return all.Result(all.OwnSummary(), nil), ids
}

// waitDrained waits until the hub has stored and acknowledged everything.
func waitDrained(t *testing.T, h *hub.Hub) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if h.Pending(context.Background()) == 0 {
			if err := h.DB().Sync(); err != nil {
				t.Fatal(err)
			}
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("the hub did not catch up: %d pending, %+v", h.Pending(context.Background()), h.Stats())
}

// compareWithAnalyze checks the hub's group-wide report against analyze of
// each capture merged: frames, bytes, MQTT packets by type, topics, hosts,
// Figure 1 exactly, and the findings.
func compareWithAnalyze(t *testing.T, h *hub.Hub, paths ...string) {
	t.Helper()
	fixed := func() time.Time { return time.Unix(0, 0) }
	got, err := watch.Report(h.DB(), "", 0, analysis.Options{Now: fixed})
	if err != nil {
		t.Fatal(err)
	}
	want, wantIDs := analyzeEach(t, analysis.Options{Now: fixed}, paths...)
	if got.Overview.Frames != want.Overview.Frames || got.Overview.Bytes != want.Overview.Bytes || got.Overview.MQTTPackets != want.Overview.MQTTPackets {
		t.Errorf("overview: hub %+v\nanalyze %+v", got.Overview, want.Overview)
	}
	for k, v := range want.MQTT.MsgTypes {
		if got.MQTT.MsgTypes[k] != v {
			t.Errorf("MQTT type %s: hub %d, analyze %d", k, got.MQTT.MsgTypes[k], v)
		}
	}
	if len(got.Topics) != len(want.Topics) || len(got.Hosts) != len(want.Hosts) {
		t.Errorf("topics %d/%d, hosts %d/%d (hub/analyze)", len(got.Topics), len(want.Topics), len(got.Hosts), len(want.Hosts))
	}
	for _, f := range want.DescribeOrder {
		if g, w := got.Describe[f], want.Describe[f]; g != w {
			t.Errorf("describe %s: hub %+v, analyze %+v", f, g, w)
		}
		if g, w := got.DescribeMQTT[f], want.DescribeMQTT[f]; g != w {
			t.Errorf("describe_mqtt %s: hub %+v, analyze %+v", f, g, w)
		}
	}
	gotIDs := map[string]bool{}
	for _, f := range got.Findings {
		gotIDs[f.ID] = true
	}
	if a, b := keys(gotIDs), keys(wantIDs); !equal(a, b) {
		t.Errorf("findings: hub %v, analyze %v", a, b)
	}
}

func keys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestHubEqualsAnalyze: three sensors at two sites replay three captures
// into a hub with its embedded NATS; the hub's group-wide report equals
// analyze of the three captures, and every minute each sensor numbered is
// stored once.
func TestHubEqualsAnalyze(t *testing.T) {
	paths := sharedCaptures(t, "benign.pcap", "bruteforce.pcapng", "flood.pcap")
	h, err := hub.Start(hub.Options{Data: t.TempDir(), Listen: "127.0.0.1:0", Name: "a"})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	names := [][2]string{{"icu", "s1"}, {"icu", "s2"}, {"ward4", "s1"}}
	sent := map[string]int64{}
	for i, p := range paths {
		st := sensorRun(t, hub.SensorOptions{URL: h.URL(), Site: names[i][0], Sensor: names[i][1]}, p)
		if st.Dropped != 0 || st.Published != st.Minutes+st.Events {
			t.Errorf("sensor %v: %+v", names[i], st)
		}
		sent[hub.Source(names[i][0], names[i][1])] = st.Minutes
	}
	waitDrained(t, h)
	runs, err := h.DB().Intervals()
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 3 {
		t.Fatalf("runs: %+v", runs)
	}
	for _, r := range runs {
		if r.Sent != r.Stored || r.Sent != sent[r.Source] {
			t.Errorf("%s: the sensor sent %d minutes, numbered up to %d, the hub stored %d", r.Source, sent[r.Source], r.Sent, r.Stored)
		}
	}
	compareWithAnalyze(t, h, paths...)
	t.Logf("hub: %+v; runs %+v", h.Stats(), runs)
}
