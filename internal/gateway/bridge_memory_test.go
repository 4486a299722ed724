package gateway_test

import (
	"testing"
	"time"

	"github.com/iomtguard/iomtguard/internal/mqtt"
)

// TestEndedSessionsMemory: every session that ends stays in the
// connect-flood detector fed by the bridge (up to 4M of them), with its
// client ID. mochi decodes that as a string sharing the whole CONNECT
// packet's memory, so the bridge copies it. (Found by a review: a client
// connecting and disconnecting with ~200 KiB CONNECTs pinned ~200 KiB
// each time, for good, with no session, will or client left.)
func TestEndedSessionsMemory(t *testing.T) {
	tg := startCID(t, reviewPolicy, "prefix")
	const n = 200
	props := bigUserProps()
	before := heapNow()
	for i := 0; i < n; i++ {
		x := dialRaw(t, tg, "intruder")
		x.connectOK(mqtt.V5, "intruder-"+itoa(i), func(p *mqtt.Packet) { p.Props.Raw = props })
		x.c.Close()
	}
	time.Sleep(time.Second)
	grew := heapNow() - before
	sessions, hooked, held := tg.g.Counts()
	t.Logf("after %d connections of ~195 KiB CONNECTs: heap +%d MiB; %d sessions, %d clients, %d wills held", n, grew>>20, sessions, hooked, held)
	if sessions == 0 && hooked == 0 && grew > 20<<20 {
		t.Errorf("%d ended connections still hold %d MiB of their CONNECT packets", n, grew>>20)
	}
}
