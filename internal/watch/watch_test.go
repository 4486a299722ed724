package watch

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/iomtguard/iomtguard/internal/alert"
	"github.com/iomtguard/iomtguard/internal/analysis"
	"github.com/iomtguard/iomtguard/internal/demo"
	"github.com/iomtguard/iomtguard/internal/detect"
	"github.com/iomtguard/iomtguard/internal/history"
	"github.com/iomtguard/iomtguard/internal/pipeline"
	"github.com/iomtguard/iomtguard/internal/source"
)

func demoFile(t *testing.T) string {
	p := filepath.Join(t.TempDir(), "demo.pcapng.gz")
	b, _ := io.ReadAll(demo.Open())
	os.WriteFile(p, b, 0o644)
	return p
}

// TestReplayDemo: the demo replayed at full speed through watch gives the
// attacks as incidents, in the alerts and the history; the report of the
// history equals analyze of the capture (Figure 1 exactly, and the counts).
func TestReplayDemo(t *testing.T) {
	path := demoFile(t)
	dir := t.TempDir()
	h, err := history.Open(filepath.Join(dir, "h.db"))
	if err != nil {
		t.Fatal(err)
	}
	h.Patient = true // as watch --replay makes it: no minute dropped
	src, err := source.Replay(path, 0, source.Options{})
	if err != nil {
		t.Fatal(err)
	}
	jl, err := alert.NewJSONLines(filepath.Join(dir, "alerts.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	w, err := New(Options{Input: src, Stats: src.Stats(), SourceKind: "replay", History: h, Alerts: alert.Multi{jl}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	jl.Close()
	ids := map[string]bool{}
	for _, in := range w.Incidents() {
		ids[in.ID] = true
	}
	for _, want := range []string{"attack.bruteforce", "attack.slow-dos", "attack.wildcard-subscribe", "posture.cleartext-mqtt"} {
		if !ids[want] {
			t.Errorf("no incident %s (incidents: %v)", want, ids)
		}
	}
	b, _ := os.ReadFile(filepath.Join(dir, "alerts.jsonl"))
	if !strings.Contains(string(b), `"id":"attack.bruteforce"`) || !strings.Contains(string(b), `"status":"open"`) {
		t.Errorf("alerts:\n%s", b)
	}
	snap := w.Snapshot()
	if snap.Totals.Frames != 16093 || snap.Totals.ByType["PUBLISH"] == 0 || snap.Windows["1h"] == nil {
		t.Errorf("snapshot: frames %d, types %v, windows %v", snap.Totals.Frames, snap.Totals.ByType, len(snap.Windows))
	}
	h.Close()

	// The report of the history, against analyze.
	h, _ = history.Open(filepath.Join(dir, "h.db"))
	defer h.Close()
	fixed := func() time.Time { return time.Unix(0, 0) }
	got, err := Report(h, "", 0, analysis.Options{Now: fixed})
	if err != nil {
		t.Fatal(err)
	}
	in, _ := pipeline.OpenInput(path)
	a := analysis.New(analysis.Options{Now: fixed})
	det, _ := detect.New(nil)
	sum, _ := pipeline.New(pipeline.Options{}, a, det).Run(context.Background(), in)
	want := a.Result(sum, det.Findings)
	for _, f := range want.DescribeOrder {
		if g, w := got.Describe[f], want.Describe[f]; g != w {
			t.Errorf("describe %s: history %+v, analyze %+v", f, g, w)
		}
		if g, w := got.DescribeMQTT[f], want.DescribeMQTT[f]; g != w {
			t.Errorf("describe_mqtt %s: history %+v, analyze %+v", f, g, w)
		}
	}
	if got.Overview.Frames != want.Overview.Frames || got.Overview.MQTTPackets != want.Overview.MQTTPackets || len(got.Topics) != len(want.Topics) ||
		got.MQTT.MsgTypes["3"] != want.MQTT.MsgTypes["3"] {
		t.Errorf("overview: history %+v\nanalyze %+v", got.Overview, want.Overview)
	}
	fids := map[string]bool{}
	for _, f := range got.Findings {
		fids[f.ID] = true
	}
	for _, f := range want.Findings {
		if !fids[f.ID] && f.Category == "attack" {
			t.Errorf("the history's report lacks %s", f.ID)
		}
	}
}
