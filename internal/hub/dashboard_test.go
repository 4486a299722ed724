package hub_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/iomtguard/iomtguard/internal/browsertest"
	"github.com/iomtguard/iomtguard/internal/dashboard"
	"github.com/iomtguard/iomtguard/internal/hub"
	"github.com/iomtguard/iomtguard/internal/sim"
)

// TestHubDashboard: two simulated wards through their sensors into a hub;
// the hub's dashboard shows the group and each site (a view a page cannot
// invent is refused), with the cross-site incidents in every view; in
// headless Chromium the site selector lists the views, choosing a site
// changes what the page shows, and the page logs no error and asks for
// nothing outside its origin. A screenshot is kept.
func TestHubDashboard(t *testing.T) {
	a := simulate(t, sim.Options{Ward: "icu", Attacks: []string{"bruteforce"}, Guesses: 6, Seed: 1})
	b := simulate(t, sim.Options{Ward: "ward4", Beds: 4, Clones: []string{"icu-bed1-ecg"}, Attacks: []string{"bruteforce"}, Guesses: 6, Seed: 2})
	h, err := hub.Start(hub.Options{Data: t.TempDir(), Listen: "127.0.0.1:0", Name: "a"})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	wardRun(t, hub.SensorOptions{URL: h.URL(), Site: "icu", Sensor: "s1"}, a)
	wardRun(t, hub.SensorOptions{URL: h.URL(), Site: "ward4", Sensor: "s1"}, b)
	waitDrained(t, h)
	srv, _, err := dashboard.Start(dashboard.Options{Addr: "127.0.0.1:0", Views: h.Views, SnapshotOf: func(v string) any { return h.View(v) }})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	get := func(view string) (*hub.Snapshot, int) {
		resp, err := http.Get(srv.URL + "api/snapshot?view=" + url.QueryEscape(view))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 {
			return nil, resp.StatusCode
		}
		var s struct {
			hub.Snapshot
			Frames  int64 `json:"-"`
			Windows map[string]struct {
				Result struct {
					Overview struct {
						Frames int64 `json:"frames"`
					} `json:"overview"`
				} `json:"result"`
			} `json:"windows"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
			t.Fatal(err)
		}
		out := s.Snapshot
		out.Totals.Frames = s.Windows["1h"].Result.Overview.Frames
		return &out, 200
	}
	group, _ := get("group")
	icu, _ := get("icu")
	ward4, _ := get("ward4")
	if group == nil || icu == nil || ward4 == nil {
		t.Fatal("a view is missing")
	}
	if strings.Join(group.Views, ",") != "group,icu,ward4" {
		t.Errorf("views: %v", group.Views)
	}
	if icu.Totals.Frames == 0 || icu.Totals.Frames+ward4.Totals.Frames != group.Totals.Frames {
		t.Errorf("frames in the last hour: icu %d + ward4 %d, group %d", icu.Totals.Frames, ward4.Totals.Frames, group.Totals.Frames)
	}
	if len(ward4.Devices) <= len(icu.Devices) || len(group.Devices) != len(icu.Devices)+len(ward4.Devices) {
		t.Errorf("devices: icu %d, ward4 %d, group %d", len(icu.Devices), len(ward4.Devices), len(group.Devices))
	}
	for _, v := range []*hub.Snapshot{group, icu, ward4} {
		ids := map[string]bool{}
		for _, in := range v.Incidents {
			ids[in.ID] = true
		}
		if !ids["attack.cloned-identity"] || !ids["attack.distributed-bruteforce"] {
			t.Errorf("view %s: incidents %v", v.View, ids)
		}
	}
	if _, code := get("../etc"); code != 404 {
		t.Errorf("an invented view: %d", code)
	}

	chrome := browsertest.Need(t)
	p, err := browsertest.Open(t.Context(), chrome, 1400, 1000)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := p.Navigate(srv.URL); err != nil {
		t.Fatal(err)
	}
	source := func() string {
		s, _ := browsertest.Eval[string](p, `document.getElementById("source").textContent`)
		return s
	}
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline) && !strings.Contains(source(), "group"); time.Sleep(200 * time.Millisecond) {
	}
	opts, _ := browsertest.Eval[string](p, `[...document.querySelectorAll("#view option")].map(o => o.value).join(",")`)
	if opts != "group,icu,ward4" || !strings.Contains(source(), "2 sites") {
		t.Fatalf("selector %q, source %q", opts, source())
	}
	if _, err := browsertest.Eval[bool](p, `(() => { const s = document.getElementById("view"); s.value = "ward4"; s.dispatchEvent(new Event("change")); return true })()`); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline) && !strings.HasPrefix(source(), "hub ward4"); time.Sleep(200 * time.Millisecond) {
	}
	if !strings.HasPrefix(source(), "hub ward4: 1 site") {
		t.Errorf("after choosing ward4 the page shows %q", source())
	}
	n, _ := browsertest.Eval[int](p, `document.querySelectorAll("#incidents .inc").length`)
	rows, _ := browsertest.Eval[int](p, `document.querySelectorAll("#devices tbody tr").length`)
	if n < 2 || rows != len(ward4.Devices) {
		t.Errorf("ward4 page: %d incidents, %d device rows (want %d)", n, rows, len(ward4.Devices))
	}
	png, err := p.Screenshot()
	if err != nil {
		t.Fatal(err)
	}
	dir := os.Getenv("IOMTGUARD_ARTIFACTS")
	if dir == "" {
		dir = t.TempDir()
	}
	os.WriteFile(filepath.Join(dir, "hub-dashboard.png"), png, 0o644)
	if logs := p.Logs(); len(logs) > 0 {
		t.Errorf("the page logged:\n%s", strings.Join(logs, "\n"))
	}
	own, _ := url.Parse(srv.URL)
	for _, r := range p.Requests() {
		u, err := url.Parse(r)
		if err != nil || (u.Host != own.Host && u.Scheme != "data") {
			t.Errorf("a request outside the page's origin: %s", r)
		}
	}
}
