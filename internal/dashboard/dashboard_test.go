package dashboard_test

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/iomtguard/iomtguard/internal/browsertest"
	"github.com/iomtguard/iomtguard/internal/dashboard"
	"github.com/iomtguard/iomtguard/internal/demo"
	"github.com/iomtguard/iomtguard/internal/source"
	"github.com/iomtguard/iomtguard/internal/watch"
)

// TestDashboardInBrowser replays the demo at 30 times real time through
// watch and opens the dashboard in headless Chromium: the page fills from
// the live stream, its values change between two moments, it logs no
// error and asks for nothing outside its own origin; a screenshot is kept.
func TestDashboardInBrowser(t *testing.T) {
	chrome := browsertest.Need(t)
	path := filepath.Join(t.TempDir(), "demo.pcapng.gz")
	b, _ := io.ReadAll(demo.Open())
	os.WriteFile(path, b, 0o644)
	src, err := source.Replay(path, 30, source.Options{Tick: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	w, err := watch.New(watch.Options{Input: src, Stats: src.Stats(), SourceKind: "replay", Evaluate: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	srv, _, err := dashboard.Start(dashboard.Options{Addr: "127.0.0.1:0", Snapshot: func() any { return w.Snapshot() }})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p, err := browsertest.Open(context.Background(), chrome, 1400, 1000)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := p.Navigate(srv.URL); err != nil {
		t.Fatal(err)
	}
	// The replay starts once the page is up: a browser slow to start on a
	// loaded machine must not find it already over.
	done := make(chan struct{})
	go func() { w.Run(ctx); close(done) }()
	read := func() (string, string) {
		v, _ := browsertest.Eval[string](p, `document.getElementById("s-rate").textContent`)
		c, _ := browsertest.Eval[string](p, `document.getElementById("clock").textContent`)
		return v, c
	}
	var first, firstClock string
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if first, firstClock = read(); strings.Contains(first, "since start") && !strings.HasPrefix(first, "0 ") {
			break
		}
	}
	if !strings.Contains(first, "since start") {
		t.Fatalf("the page never filled: %q", first)
	}
	time.Sleep(3 * time.Second)
	second, secondClock := read()
	if second == first || secondClock == firstClock {
		t.Errorf("nothing changed in 3 s of a live run: %q / %q then %q / %q", first, firstClock, second, secondClock)
	}
	// Let the incidents come in before the picture.
	for deadline := time.Now().Add(25 * time.Second); time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
		n, _ := browsertest.Eval[int](p, `document.querySelectorAll("#incidents .inc").length`)
		if n >= 3 {
			break
		}
	}
	n, _ := browsertest.Eval[int](p, `document.querySelectorAll("#incidents .inc").length`)
	rows, _ := browsertest.Eval[int](p, `document.querySelectorAll("#devices tbody tr").length`)
	if n == 0 || rows == 0 {
		t.Errorf("incidents shown %d, device rows %d", n, rows)
	}
	png, err := p.Screenshot()
	if err != nil {
		t.Fatal(err)
	}
	dir := os.Getenv("IOMTGUARD_ARTIFACTS")
	if dir == "" {
		dir = t.TempDir()
	}
	os.WriteFile(filepath.Join(dir, "dashboard.png"), png, 0o644)
	t.Logf("screenshot: %s (%d bytes); %d incidents and %d devices shown", filepath.Join(dir, "dashboard.png"), len(png), n, rows)
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
	cancel()
	<-done
}

// TestToken: away from loopback the dashboard needs its token; it is
// read-only everywhere.
func TestToken(t *testing.T) {
	srv, token, err := dashboard.Start(dashboard.Options{Addr: "0.0.0.0:0", Snapshot: func() any { return map[string]int{"x": 1} }})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if len(token) < 16 {
		t.Fatalf("token %q", token)
	}
	base := "http://" + srv.Addr() + "/api/snapshot"
	get := func(u string, hdr map[string]string) int {
		req, _ := http.NewRequest("GET", u, nil)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if c := get(base, nil); c != 401 {
		t.Errorf("no token: %d", c)
	}
	if c := get(base+"?token=wrong", nil); c != 401 {
		t.Errorf("wrong token: %d", c)
	}
	if c := get(base+"?token="+token, nil); c != 200 {
		t.Errorf("token in the URL: %d", c)
	}
	if c := get(base, map[string]string{"Authorization": "Bearer " + token}); c != 200 {
		t.Errorf("bearer token: %d", c)
	}
	resp, _ := http.Post("http://"+srv.Addr()+"/api/snapshot?token="+token, "text/plain", nil)
	if resp.StatusCode != 405 {
		t.Errorf("POST: %d", resp.StatusCode)
	}
	resp.Body.Close()
}
