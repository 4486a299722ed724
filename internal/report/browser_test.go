package report_test

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/iomtguard/iomtguard/internal/analysis"
	"github.com/iomtguard/iomtguard/internal/browsertest"
	"github.com/iomtguard/iomtguard/internal/demo"
	"github.com/iomtguard/iomtguard/internal/pipeline"
	"github.com/iomtguard/iomtguard/internal/report"
)

// sections are the report's ten sections, in order.
var sections = []string{"overview", "describe", "mqtt", "network", "kmeans", "graph", "forecast", "anomalies", "findings", "inventory"}

// demoReport analyses the built-in demo capture and writes its report.
func demoReport(t *testing.T, dir string) *analysis.Result {
	t.Helper()
	in, err := pipeline.NewInput(demo.Name, demo.Open())
	if err != nil {
		t.Fatal(err)
	}
	an := analysis.New(analysis.Options{})
	sum, err := pipeline.New(pipeline.Options{}, an).Run(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	res := an.Result(sum, nil)
	if err := report.Write(dir, res); err != nil {
		t.Fatal(err)
	}
	return res
}

// TestReportInBrowser opens the demo report in headless Chromium: no console
// message of level warning or error, no request other than the page itself,
// the ten sections present, every figure drawn with data marks and no two
// labels of a figure overlapping; it saves a full-page screenshot and a PDF
// print (to $IOMTGUARD_ARTIFACTS when set) for a person to look at.
//
// Without a browser the test skips, unless IOMTGUARD_REQUIRE_BROWSER=1 (set
// by .ci/run, which installs Chromium).
func TestReportInBrowser(t *testing.T) {
	path := browsertest.Need(t)
	dir := t.TempDir()
	demoReport(t, dir)
	page := "file://" + filepath.ToSlash(filepath.Join(dir, report.HTMLFile))

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	b, err := browsertest.Open(ctx, path, 1280, 900)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for _, p := range checkPage(t, b, page) {
		t.Error(p)
	}

	// Screenshot and print.
	png, err := b.Screenshot()
	if err != nil {
		t.Fatal(err)
	}
	pdf, err := b.PDF()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(pdf), "%PDF-") || len(pdf) < 10000 {
		t.Errorf("print: %d bytes, not a PDF of the report", len(pdf))
	}
	out := os.Getenv("IOMTGUARD_ARTIFACTS")
	if out == "" {
		out = t.TempDir()
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{"report-demo.png": png, "report-demo.pdf": pdf} {
		if err := os.WriteFile(filepath.Join(out, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("screenshot (%d bytes) and print (%d bytes) in %s", len(png), len(pdf), out)
}

// checkPage loads page and returns what is wrong with it.
func checkPage(t *testing.T, b *browsertest.Page, page string) (problems []string) {
	t.Helper()
	if err := b.Navigate(page); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // late console messages and requests

	// Console and network.
	problems = append(problems, b.Logs()...)
	want, _ := url.Parse(page)
	for _, r := range b.Requests() {
		got, _ := url.Parse(r)
		if got == nil || got.Scheme != "file" || got.Path != want.Path {
			problems = append(problems, fmt.Sprintf("the page made a request: %s", r))
		}
	}

	// Sections.
	ids, err := browsertest.Eval[[]string](b, `[...document.querySelectorAll("main section[id], body section[id]")].map(s => s.id)`)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(ids, ",") != strings.Join(sections, ",") {
		problems = append(problems, fmt.Sprintf("sections = %v, want %v", ids, sections))
	}

	// Figures: drawn, with data marks, with no overlapping labels.
	const probe = `[...document.querySelectorAll("figure[data-figure]")].map(f => {
	  const svg = f.querySelector("svg");
	  if (!svg) return {name: f.dataset.figure, width: 0, height: 0, marks: 0, overlaps: []};
	  const r = svg.getBoundingClientRect();
	  const rects = [...svg.querySelectorAll("rect")].slice(1)
	      .filter(e => { const b = e.getBBox(); return b.height > 0 && b.width > 0 && !(b.width == 10 && b.height == 10); });
	  const marks = rects.length + svg.querySelectorAll("circle, polyline, polygon, path").length;
	  const texts = [...svg.querySelectorAll("text")].filter(t => t.textContent.trim() != "")
	      .map(t => ({s: t.textContent, b: t.getBoundingClientRect()}));
	  const overlaps = [];
	  for (let i = 0; i < texts.length; i++) for (let j = i + 1; j < texts.length; j++) {
	    const a = texts[i].b, c = texts[j].b;
	    const w = Math.min(a.right, c.right) - Math.max(a.left, c.left);
	    const h = Math.min(a.bottom, c.bottom) - Math.max(a.top, c.top);
	    if (w > 1 && h > 1 && w * h > 0.15 * Math.min(a.width * a.height, c.width * c.height))
	      overlaps.push(texts[i].s + " / " + texts[j].s);
	  }
	  const outside = texts.filter(t => t.b.left < r.left - 1 || t.b.right > r.right + 1 || t.b.top < r.top - 1 || t.b.bottom > r.bottom + 1).map(t => t.s);
	  return {name: f.dataset.figure, width: r.width, height: r.height, marks, overlaps, outside};
	})`
	figs, err := browsertest.Eval[[]struct {
		Name          string
		Width, Height float64
		Marks         int
		Overlaps      []string
		Outside       []string
	}](b, probe)
	if err != nil {
		t.Fatal(err)
	}
	if len(figs) < 7 {
		problems = append(problems, fmt.Sprintf("%d figures in the page, want 7 (Figures 2 to 8)", len(figs)))
	}
	for _, f := range figs {
		if f.Width < 300 || f.Height < 200 {
			problems = append(problems, fmt.Sprintf("%s: drawn %gx%g px", f.Name, f.Width, f.Height))
		}
		if f.Marks < 2 {
			problems = append(problems, fmt.Sprintf("%s: %d data marks: the figure is empty", f.Name, f.Marks))
		}
		for _, o := range f.Overlaps {
			problems = append(problems, fmt.Sprintf("%s: labels overlap: %s", f.Name, o))
		}
		for _, o := range f.Outside {
			problems = append(problems, fmt.Sprintf("%s: label outside the figure: %s", f.Name, o))
		}
	}

	return problems
}

// TestBrowserCheckCatchesProblems shows that checkPage fails a page with a
// request to the network, a console error, a missing section, an empty
// figure and overlapping labels.
func TestBrowserCheckCatchesProblems(t *testing.T) {
	path := browsertest.Need(t)
	dir := t.TempDir()
	var sec strings.Builder
	for _, id := range sections[:8] {
		fmt.Fprintf(&sec, `<section id="%s"><h2>%s</h2></section>`, id, id)
	}
	bad := `<!doctype html><html><head><meta charset="utf-8"></head><body><main>` + sec.String() +
		`<img src="http://192.0.2.1/pixel.png"><script>console.error("broken")</script>` +
		`<figure data-figure="a.svg"><svg xmlns="http://www.w3.org/2000/svg" width="400" height="300"><rect width="400" height="300" fill="#fff"/>` +
		`<text x="10" y="20">overlapping label</text><text x="12" y="22">overlapping label</text></svg></figure></main></body></html>`
	page := filepath.Join(dir, "bad.html")
	if err := os.WriteFile(page, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b, err := browsertest.Open(ctx, path, 1280, 900)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	got := strings.Join(checkPage(t, b, "file://"+filepath.ToSlash(page)), "\n")
	for _, want := range []string{"request: http://192.0.2.1/pixel.png", "console error", "sections =", "figures in the page", "data marks", "labels overlap"} {
		if !strings.Contains(got, want) {
			t.Errorf("problems do not mention %q:\n%s", want, got)
		}
	}
}
