package gateway

import (
	"flag"
	"fmt"
	"os"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"
)

// AddBrokerHook adds a hook to the gateway's broker after its own, so a
// test can widen a window between two of the broker's steps.
func (g *Gateway) AddBrokerHook(h mochi.Hook) error { return g.srv.AddHook(h, nil) }

// SetCloseWait sets how long Close waits for the broker's clients and what
// it calls when it gives up, for one test; the returned function restores
// both.
func SetCloseWait(wait time.Duration, stuck func()) (restore func()) {
	oldWait, oldStuck := brokerCloseWait, stuckClose
	brokerCloseWait, stuckClose = wait, stuck
	return func() { brokerCloseWait, stuckClose = oldWait, oldStuck }
}

// TestMain fails the package, with the stacks that matter, when a
// gateway's Close had to give up waiting for a broker client: Close itself
// returns (it must, whatever the clients do), so without this a client that
// never ends would go unnoticed. A watchdog does the same for a test that
// hangs, a minute before go test's own time-out: that one prints every
// goroutine of the process, and the stacks of the hung test were lost in
// thousands of lines, of which a CI log keeps the tail.
func TestMain(m *testing.M) {
	var stuck atomic.Bool
	var stuckStacks atomic.Value
	stuckClose = func() {
		stuck.Store(true)
		s := gatewayStacks()
		stuckStacks.Store(s)
		fmt.Fprintf(os.Stderr, "gateway: Close gave up waiting for a broker client; the goroutines in the gateway:\n%s\n", s)
	}
	// A minute before go test's own time-out, which prints every goroutine
	// of the process (thousands of lines, of which a CI log keeps the tail).
	flag.Parse()
	var watchdog *time.Timer
	if d, _ := flag.Lookup("test.timeout").Value.(flag.Getter).Get().(time.Duration); d > 2*time.Minute {
		watchdog = time.AfterFunc(d-time.Minute, func() {
			if s, ok := stuckStacks.Load().(string); ok {
				fmt.Fprintf(os.Stderr, "an earlier Close gave up on a broker client; the goroutines then:\n%s\n", s)
			}
			fmt.Fprintf(os.Stderr, "FAIL: the gateway's tests still running a minute before their time-out of %s; the goroutines in the gateway and its tests:\n%s\n", d, gatewayStacks())
			os.Exit(2)
		})
	}
	code := m.Run()
	if watchdog != nil {
		watchdog.Stop()
	}
	if stuck.Load() && code == 0 {
		fmt.Fprintf(os.Stderr, "FAIL: a gateway's Close found a broker client that never ended; the goroutines then:\n%s\n", stuckStacks.Load())
		code = 1
	}
	os.Exit(code)
}

// gatewayStacks is every goroutine whose stack passes through the
// gateway's code or its tests (the broker's clients, the listener, the
// test that waits), without the runtime's and the libraries' idle ones,
// each as its state, the frame it waits in and the project's frames (a CI
// log keeps only the last lines of a failure).
func gatewayStacks() string {
	buf := make([]byte, 32<<20)
	buf = buf[:runtime.Stack(buf, true)]
	all := strings.Split(string(buf), "\n\n")
	var out []string
	for _, g := range all {
		if !strings.Contains(g, "iomtguard/internal/gateway") || strings.Contains(g, "gatewayStacks") {
			continue
		}
		lines := strings.Split(g, "\n")
		short := []string{lines[0]}
		for i := 1; i+1 < len(lines); i += 2 {
			fn, at := strings.TrimSpace(lines[i]), strings.TrimSpace(lines[i+1])
			if i == 1 || strings.Contains(fn, "iomtguard/iomtguard/") || strings.Contains(fn, "mochi-mqtt/") || strings.HasPrefix(fn, "created by") {
				if j := strings.LastIndex(fn, "("); j > 0 && !strings.HasPrefix(fn, "created by") {
					fn = fn[:j]
				}
				fn = strings.ReplaceAll(strings.ReplaceAll(fn, "github.com/iomtguard/iomtguard/internal/", ""), "github.com/mochi-mqtt/server/v2", "mochi")
				if j := strings.LastIndex(at, " +0x"); j > 0 {
					at = at[:j]
				}
				short = append(short, "  "+fn+" "+at[strings.LastIndex(at, "/")+1:])
			}
		}
		out = append(out, strings.Join(short, "\n"))
	}
	// The longest blocked last, a test's own goroutine after the others
	// blocked as long: what a log's tail keeps is what explains the hang.
	blocked := func(g string) (int, bool) {
		m := 0
		if h := g[:strings.Index(g, "\n")]; strings.Contains(h, " minutes]") {
			f := strings.Fields(h[strings.LastIndex(h, ",")+1:])
			m, _ = strconv.Atoi(f[0])
		}
		return m, strings.Contains(g, "_test.go")
	}
	sort.SliceStable(out, func(i, j int) bool {
		mi, ti := blocked(out[i])
		mj, tj := blocked(out[j])
		if mi != mj {
			return mi < mj
		}
		return !ti && tj
	})
	var tests []string
	for _, m := range regexp.MustCompile(`gateway(?:_test)?\.(Test\w+)`).FindAllStringSubmatch(strings.Join(out, "\n"), -1) {
		if m[1] != "TestMain" && !slices.Contains(tests, m[1]) {
			tests = append(tests, m[1])
		}
	}
	return fmt.Sprintf("%d of %d goroutines:\n%s\ntests running: %s", len(out), len(all), strings.Join(out, "\n"), strings.Join(tests, ", "))
}

// PutInForceOnly does what a reload does while it holds the reload lock,
// f included, and stops before apply: the files are read again and put
// in force, the open sessions are not walked. It holds open, for a test,
// the moment inside Reload between its Store and its apply.
func (g *Gateway) PutInForceOnly(f func()) error {
	g.reloadMu.Lock()
	defer g.reloadMu.Unlock()
	f()
	next, err := g.loadConfig(g.cur.Load())
	if next != nil {
		g.cur.Store(next)
	}
	return err
}

// FlushAudit writes out what the audit log holds in its buffer.
func (g *Gateway) FlushAudit() { g.audit.flush() }

// Counts: sessions held by the broker, clients known to the hook,
// wills held by the gateway.
func (g *Gateway) Counts() (sessions, hooked, held int) {
	g.hook.clients.Range(func(any, any) bool { hooked++; return true })
	return g.srv.Clients.Len(), hooked, g.wills.len()
}

// HeldWillBytes is what the held wills count against their byte budget.
func (g *Gateway) HeldWillBytes() int {
	g.wills.mu.Lock()
	defer g.wills.mu.Unlock()
	return g.wills.bytes
}

// WedgeClients leaves the broker's table of clients as mochi's recursive
// read lock does (tlsListener.Close): a reader that never lets go and a
// writer waiting behind it, so that every later reader waits too. Unwedge
// lets both go.
func (g *Gateway) WedgeClients() (unwedge func()) {
	g.srv.Clients.RLock()
	go g.srv.Clients.Delete("wedge")
	time.Sleep(100 * time.Millisecond) // the writer is waiting by then
	return g.srv.Clients.RUnlock
}
