package gateway

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// TestWillsBounded: the wills held for their delay are bounded in number,
// per identity and in bytes; a second will for the same client ID and
// identity replaces the first (only the second is sent), another
// identity's will for that client ID neither replaces nor withdraws it, a
// withdrawn one is not sent, and none is held or sent after close.
func TestWillsBounded(t *testing.T) {
	var ws wills
	var mu sync.Mutex
	var sent []string
	send := func(w *heldWill) {
		mu.Lock()
		sent = append(sent, w.clientID+"/"+w.identity+":"+string(w.will.Payload))
		mu.Unlock()
	}
	w := func(id, identity, payload string) *heldWill {
		return newHeldWill(identity, id, "", "", nil, mqtt.Will{TopicName: "t", Payload: []byte(payload)})
	}
	const d = 100 * time.Millisecond
	hold := func(h *heldWill, max, perID, maxBytes int) bool {
		return ws.hold(h, d, max, perID, maxBytes, send) == held
	}
	if !hold(w("a", "dev", "1"), 3, 2, 1<<20) || !hold(w("b", "dev", "1"), 3, 2, 1<<20) {
		t.Fatal("two wills refused under a limit of three, two per identity")
	}
	if hold(w("c", "dev", "1"), 3, 2, 1<<20) {
		t.Error("a third will of one identity held past its limit of two")
	}
	if !hold(w("a", "dev", "2"), 3, 2, 1<<20) {
		t.Error("a second will for a held client ID refused at the identity's limit")
	}
	if !hold(w("a", "other", "x"), 3, 2, 1<<20) {
		t.Error("another identity's will for the same client ID refused")
	}
	if hold(w("z", "third", "1"), 3, 2, 1<<20) {
		t.Error("a fourth will held past a limit of three")
	}
	ws.withdraw("b", "other") // another identity reusing the client ID
	if ws.len() != 3 {
		t.Errorf("another identity withdrew a will: %d held, want 3", ws.len())
	}
	ws.withdraw("b", "dev")
	ws.withdraw("a", "other")
	if ws.len() != 1 {
		t.Errorf("%d wills held, want 1", ws.len())
	}
	for deadline := time.Now().Add(10 * time.Second); ws.len() > 0 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(2 * d) // anything else due would have come by now
	mu.Lock()
	if len(sent) != 1 || sent[0] != "a/dev:2" {
		t.Errorf("sent %v, want only a's second will", sent)
	}
	mu.Unlock()

	// Bytes: what is kept (names, topic, payload and an overhead), not
	// the payload alone.
	one := w("x", "dev", "12").size()
	if one != len("dev")+len("x")+len("t")+2+heldWillOverhead {
		t.Errorf("size %d", one)
	}
	if !ws.hold(w("x", "dev", "12"), time.Hour, 10, 10, 2*one, send).ok() || !ws.hold(w("y", "dev", "34"), time.Hour, 10, 10, 2*one, send).ok() {
		t.Fatal("two wills refused under a budget of two")
	}
	if ws.hold(w("z", "dev", "5"), time.Hour, 10, 10, 2*one, send).ok() {
		t.Error("a will held past the byte budget")
	}
	if !ws.hold(w("x", "dev", "56"), time.Hour, 10, 10, 2*one, send).ok() || ws.bytes != 2*one {
		t.Errorf("replacing a will by one of the same size at the budget: %d bytes held, want %d", ws.bytes, 2*one)
	}
	ws.withdraw("x", "dev")
	ws.withdraw("y", "dev")
	if ws.bytes != 0 || ws.len() != 0 || len(ws.perID) != 0 {
		t.Errorf("%d wills, %d bytes, %d identities held after withdrawing all", ws.len(), ws.bytes, len(ws.perID))
	}

	hold(w("d", "dev", "1"), 3, 2, 1<<20)
	ws.close()
	if ws.hold(w("e", "dev", "1"), d, 3, 2, 1<<20, send) != heldClosed || ws.len() != 0 {
		t.Error("a will held after close")
	}
	time.Sleep(4 * d)
	mu.Lock()
	defer mu.Unlock()
	if len(sent) != 1 {
		t.Errorf("sent after close: %v", sent)
	}
}

// TestHeldWillCopies: a held will keeps copies of its strings, payload
// and user properties, not slices of the CONNECT packet mochi decoded them
// from, and counts the user properties it keeps.
func TestHeldWillCopies(t *testing.T) {
	packet := []byte("bed1-ecg" + "icu/bed1/ecg" + "lead off" + "ward" + "icu")
	topic := unsafeString(packet[8:20])
	user := []packets.UserProperty{{Key: unsafeString(packet[28:32]), Val: unsafeString(packet[32:35])}}
	w := newHeldWill("bed1-ecg", unsafeString(packet[:8]), "", "", nil, mqtt.Will{TopicName: topic, Payload: packet[20:28], User: user})
	copy(packet, bytes.Repeat([]byte("x"), len(packet)))
	if w.clientID != "bed1-ecg" || w.will.TopicName != "icu/bed1/ecg" || string(w.will.Payload) != "lead off" {
		t.Errorf("the held will changed with the packet: %q %q %q", w.clientID, w.will.TopicName, w.will.Payload)
	}
	if len(w.will.User) != 1 || w.will.User[0].Key != "ward" || w.will.User[0].Val != "icu" {
		t.Errorf("the held will's user properties changed with the packet: %+v", w.will.User)
	}
	if strings.Contains(w.will.TopicName, "x") {
		t.Error("topic shares the packet's memory")
	}
	bare := newHeldWill("bed1-ecg", "bed1-ecg", "", "", nil, mqtt.Will{TopicName: "icu/bed1/ecg", Payload: []byte("lead off")})
	if got, want := w.size()-bare.size(), len("ward")+len("icu")+userPropertyOverhead; got != want {
		t.Errorf("a user property of 7 bytes counts %d bytes, want %d", got, want)
	}
}

// unsafeString is a string sharing b's memory, as mochi's decoded fields
// share the packet's.
func unsafeString(b []byte) string { return unsafe.String(&b[0], len(b)) }
