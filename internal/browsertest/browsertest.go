// Package browsertest drives headless Chromium through chromedp for the
// tests that check pages as a person's browser shows them (the report, the
// dashboard): it records console messages, exceptions and every request the
// page makes, so a test can insist on a page that works offline and
// quietly. It is test support: no command imports it.
//
// Tests skip without Chromium unless IOMTGUARD_REQUIRE_BROWSER=1 (set by
// .ci/run, which installs it); IOMTGUARD_CHROMIUM names another binary.
package browsertest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"testing"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// Find returns the Chromium binary, or "".
func Find() string {
	if p := os.Getenv("IOMTGUARD_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "headless-shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// Need returns the Chromium binary or skips the test (fails it when
// IOMTGUARD_REQUIRE_BROWSER=1).
func Need(t testing.TB) string {
	t.Helper()
	p := Find()
	if p == "" {
		if os.Getenv("IOMTGUARD_REQUIRE_BROWSER") == "1" {
			t.Fatal("no Chromium found and IOMTGUARD_REQUIRE_BROWSER=1")
		}
		t.Skip("no Chromium on PATH (apt-get install chromium); set IOMTGUARD_CHROMIUM to use another binary")
	}
	return p
}

// Page is one browser tab with what it logged and requested.
type Page struct {
	Ctx    context.Context // run chromedp actions with it
	mu     sync.Mutex
	logs   []string // console warnings and errors, exceptions, failed loads
	reqs   []string // every URL the page requested
	cancel []context.CancelFunc
}

// Open starts Chromium (binary path) with a tab of width x height.
func Open(ctx context.Context, path string, width, height int) (*Page, error) {
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path), chromedp.NoSandbox, chromedp.DisableGPU, chromedp.WindowSize(width, height),
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true))
	actx, c1 := chromedp.NewExecAllocator(ctx, opts...)
	tctx, c2 := chromedp.NewContext(actx)
	p := &Page{Ctx: tctx, cancel: []context.CancelFunc{c2, c1}}
	err := chromedp.Listen(tctx, func(ev any) {
		p.mu.Lock()
		defer p.mu.Unlock()
		switch e := ev.(type) {
		case *network.EventRequestWillBeSent:
			p.reqs = append(p.reqs, e.Request.URL)
		case *network.EventLoadingFailed:
			if !e.Canceled {
				p.logs = append(p.logs, "a request failed: "+e.ErrorText)
			}
		}
	})
	if err == nil {
		_, err = chromedp.Call(tctx, network.Enable, network.EnableParams{})
	}
	if err != nil {
		p.Close()
		return nil, fmt.Errorf("browsertest: start %s: %w", path, err)
	}
	console := chromedp.Console(tctx)
	go func() {
		for m, err := range console {
			if err != nil {
				return
			}
			switch m.Type {
			case chromedp.ConsoleWarning, chromedp.ConsoleError, chromedp.ConsoleException, "assert":
				p.mu.Lock()
				p.logs = append(p.logs, fmt.Sprintf("console %s: %s", m.Type, m.Text))
				p.mu.Unlock()
			}
		}
	}()
	return p, nil
}

// Close ends the browser.
func (p *Page) Close() {
	for _, c := range p.cancel {
		c()
	}
}

// Logs returns the console warnings and errors and the exceptions so far.
func (p *Page) Logs() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.logs...)
}

// Requests returns every URL the page requested so far.
func (p *Page) Requests() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.reqs...)
}

// Navigate loads url and waits for its body.
func (p *Page) Navigate(url string) error {
	return chromedp.Do(p.Ctx, chromedp.Navigate(url), chromedp.WaitReady("body"))
}

// Eval evaluates a JavaScript expression into out (decoded as JSON).
func Eval[T any](p *Page, expr string) (T, error) {
	return chromedp.Run(p.Ctx, chromedp.Evaluate[T](expr))
}

// Screenshot captures the whole page as PNG.
func (p *Page) Screenshot() ([]byte, error) {
	return chromedp.Run(p.Ctx, chromedp.FullScreenshot(100)) // 100: PNG (below it, JPEG)
}

// PDF prints the page on A4.
func (p *Page) PDF() ([]byte, error) {
	bg := true
	return chromedp.Run(p.Ctx, chromedp.PrintToPDF(func(pp *page.PrintToPDFParams) {
		pp.PaperWidth, pp.PaperHeight, pp.PrintBackground = 8.27, 11.69, &bg
	}))
}
