package gateway

import (
	"fmt"
	"os"
	"runtime"
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

// TestMain fails the package, with every goroutine's stack, when a
// gateway's Close had to give up waiting for a broker client: Close itself
// returns (it must, whatever the clients do), so without this a client that
// never ends would go unnoticed.
func TestMain(m *testing.M) {
	var stuck atomic.Bool
	stuckClose = func() {
		stuck.Store(true)
		buf := make([]byte, 8<<20)
		n := runtime.Stack(buf, true)
		fmt.Fprintf(os.Stderr, "gateway: Close gave up waiting for a broker client; every goroutine:\n%s\n", buf[:n])
	}
	code := m.Run()
	if stuck.Load() && code == 0 {
		fmt.Fprintln(os.Stderr, "FAIL: a gateway's Close found a broker client that never ended (stacks above)")
		code = 1
	}
	os.Exit(code)
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
