package gateway

import (
	"sync"
	"testing"
	"time"
)

// TestWillsBounded: the wills held for their delay are bounded in number
// and in payload bytes, a second
// will for the same client ID replaces the first (only the second is
// sent), a withdrawn one is not sent, and none is sent after close.
func TestWillsBounded(t *testing.T) {
	var ws wills
	var mu sync.Mutex
	var sent []string
	send := func(w *heldWill) {
		mu.Lock()
		sent = append(sent, w.clientID+":"+string(w.will.Payload))
		mu.Unlock()
	}
	w := func(id, payload string) *heldWill {
		h := &heldWill{clientID: id, identity: "dev"}
		h.will.Payload = []byte(payload)
		return h
	}
	const d = 100 * time.Millisecond
	if !ws.hold(w("a", "1"), d, 2, 1<<20, send) || !ws.hold(w("b", "1"), d, 2, 1<<20, send) {
		t.Fatal("two wills refused under a limit of two")
	}
	if ws.hold(w("c", "1"), d, 2, 1<<20, send) {
		t.Error("a third will held past a limit of two")
	}
	if !ws.hold(w("a", "2"), d, 2, 1<<20, send) {
		t.Error("a second will for a held client ID refused at the limit")
	}
	ws.withdraw("b", "other") // another identity reusing the client ID
	if ws.len() != 2 {
		t.Errorf("another identity withdrew a will: %d held, want 2", ws.len())
	}
	ws.withdraw("b", "dev")
	if ws.len() != 1 {
		t.Errorf("%d wills held, want 1", ws.len())
	}
	for deadline := time.Now().Add(10 * time.Second); ws.len() > 0 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(2 * d) // anything else due would have come by now
	mu.Lock()
	if len(sent) != 1 || sent[0] != "a:2" {
		t.Errorf("sent %v, want only a's second will", sent)
	}
	mu.Unlock()
	if ws.len() != 0 {
		t.Errorf("%d wills held after they were sent", ws.len())
	}
	// Payload bytes: 3 held of a budget of 4, a will of 2 refused, one
	// replacing a held will of 2 bytes by one of 3 accepted.
	if !ws.hold(w("x", "12"), time.Hour, 10, 4, send) || !ws.hold(w("y", "3"), time.Hour, 10, 4, send) {
		t.Fatal("3 bytes refused under a budget of 4")
	}
	if ws.hold(w("z", "45"), time.Hour, 10, 4, send) {
		t.Error("5 bytes held under a budget of 4")
	}
	if !ws.hold(w("x", "123"), time.Hour, 10, 4, send) || ws.bytes != 4 {
		t.Errorf("replacing 2 bytes by 3 under a budget of 4: %d bytes held", ws.bytes)
	}
	ws.withdraw("x", "dev")
	ws.withdraw("y", "dev")
	if ws.bytes != 0 || ws.len() != 0 {
		t.Errorf("%d wills, %d bytes held after withdrawing all", ws.len(), ws.bytes)
	}
	ws.hold(w("d", "1"), d, 2, 1<<20, send)
	ws.close()
	if ws.hold(w("e", "1"), d, 2, 1<<20, send) || ws.len() != 0 {
		t.Error("a will held after close")
	}
	time.Sleep(4 * d)
	mu.Lock()
	defer mu.Unlock()
	if len(sent) != 1 {
		t.Errorf("sent after close: %v", sent)
	}
}
