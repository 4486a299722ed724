package hub_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/iomtguard/iomtguard/internal/analysis"
	"github.com/iomtguard/iomtguard/internal/capture"
	"github.com/iomtguard/iomtguard/internal/hub"
	"github.com/iomtguard/iomtguard/internal/sim"
	"github.com/iomtguard/iomtguard/internal/watch"
)

// simulate writes a simulated ward's capture.
func simulate(t *testing.T, o sim.Options) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), o.Ward+".pcapng")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w, err := capture.NewPcapngWriter(f, capture.LinkSLL, "icu0")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sim.Generate(o, w); err != nil {
		t.Fatal(err)
	}
	return p
}

// wardRun runs a sensor (runSensor) and returns the incidents its own
// watch found.
func wardRun(t *testing.T, o hub.SensorOptions, path string) map[string]bool {
	t.Helper()
	_, w := runSensor(t, o, path, 0)
	ids := map[string]bool{}
	for _, in := range w.Incidents() {
		ids[in.ID] = true
	}
	return ids
}

// TestCrossSite: a simulated group of two wards; one device identity of the
// first is cloned onto the second, and a password-guessing run is spread
// over both brokers, six guesses each (attack.bruteforce needs ten at one
// broker). Neither ward's sensor finds either; the hub finds both.
func TestCrossSite(t *testing.T) {
	a := simulate(t, sim.Options{Ward: "icu", Attacks: []string{"bruteforce"}, Guesses: 6, Seed: 1})
	b := simulate(t, sim.Options{Ward: "ward4", Clones: []string{"icu-bed1-ecg"}, Attacks: []string{"bruteforce"}, Guesses: 6, Seed: 2})
	data := t.TempDir()
	h, err := hub.Start(hub.Options{Data: data, Listen: "127.0.0.1:0", Name: "a"})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { h.Close() }()
	cross := []string{"attack.cloned-identity", "attack.distributed-bruteforce", "attack.bruteforce"}
	for _, w := range []struct{ site, path string }{{"icu", a}, {"ward4", b}} {
		ids := wardRun(t, hub.SensorOptions{URL: h.URL(), Site: w.site, Sensor: "s1"}, w.path)
		for _, id := range cross {
			if ids[id] {
				t.Errorf("the %s sensor alone found %s", w.site, id)
			}
		}
	}
	waitDrained(t, h)
	ins, err := h.DB().Incidents(hub.GroupSource, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, in := range ins {
		got[in.ID] = true
		t.Logf("hub: %s: %s; %v", in.ID, in.Title, in.Evidence.Notes)
		if in.ID == "attack.cloned-identity" && (len(in.Evidence.ClientIDs) != 1 || in.Evidence.ClientIDs[0] != "icu-bed1-ecg") {
			t.Errorf("cloned identities: %v", in.Evidence.ClientIDs)
		}
		if in.ID == "attack.distributed-bruteforce" && in.Evidence.Counts["refused_connects"] != 12 {
			t.Errorf("refused: %v", in.Evidence.Counts)
		}
	}
	for _, id := range cross[:2] {
		if !got[id] {
			t.Errorf("the hub did not find %s (found %v)", id, got)
		}
	}
	if got["attack.bruteforce"] {
		t.Error("the hub's group found a single-site attack.bruteforce")
	}
	// The report of the hub's history has them too.
	res, err := watch.Report(h.DB(), "", 0, analysis.Options{})
	if err != nil {
		t.Fatal(err)
	}
	rep := map[string]bool{}
	for _, f := range res.Findings {
		rep[f.ID] = true
	}
	if !rep["attack.cloned-identity"] || !rep["attack.distributed-bruteforce"] {
		t.Errorf("report findings: %v", rep)
	}
	// A restarted hub rebuilds its detectors from the stored facts and goes
	// on with the group's incidents: none opened twice.
	h.Close()
	if h, err = hub.Start(hub.Options{Data: data, Listen: "127.0.0.1:0", Name: "a"}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond) // its first evaluation, on an empty fetch
	h.Close()
	if h, err = hub.Start(hub.Options{Data: data, Listen: "127.0.0.1:0", Name: "a"}); err != nil {
		t.Fatal(err)
	}
	again, _ := h.DB().Incidents(hub.GroupSource, time.Time{})
	if len(again) != len(ins) {
		t.Errorf("after restarts the group has %d incidents, before %d", len(again), len(ins))
	}
}
