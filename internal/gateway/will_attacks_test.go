package gateway_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/iomtguard/iomtguard/internal/gateway"
	"github.com/iomtguard/iomtguard/internal/mqtt"
	"github.com/iomtguard/iomtguard/internal/pki"
)

// startCID is startWith with the gateway's client_id mode.
func startCID(t *testing.T, policyYAML, mode string) *testGW {
	t.Helper()
	dir := t.TempDir()
	if _, err := pki.Init(dir, pki.Options{}); err != nil {
		t.Fatal(err)
	}
	if _, err := pki.Issue(dir, "gateway", pki.Options{Server: true, Hosts: []string{"127.0.0.1", "localhost"}}); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"bed1-ecg", "nurse-station", "intruder"} {
		if _, err := pki.Issue(dir, n, pki.Options{}); err != nil {
			t.Fatal(err)
		}
	}
	pol := filepath.Join(dir, "policy.yaml")
	os.WriteFile(pol, []byte(policyYAML), 0o644)
	cfg := gateway.Config{Listen: "127.0.0.1:0", PKI: dir, Policy: pol, Metrics: "off", ClientID: mode, State: filepath.Join(dir, "state")}
	return serve(t, dir, cfg, gateway.AuditOptions{PerKey: 1 << 20, Rate: 1 << 20})
}

// delayedWill sets an MQTT 5 will on topic with a delay, and a session
// expiry unless expiry < 0.
func delayedWill(topic, payload string, delay uint32, expiry int64, clean bool) func(*mqtt.Packet) {
	return func(p *mqtt.Packet) {
		if !clean {
			p.ConnectFlags &^= 0x02
		}
		p.ConnectFlags |= 0x04
		p.WillTopic, p.WillPayload = []byte(topic), []byte(payload)
		p.WillProps.WillDelay = delay
		p.WillProps.Seen |= 1 << mqtt.PropWillDelay
		if expiry >= 0 {
			p.Props.SessionExpiry = uint32(expiry)
			p.Props.Seen |= 1 << mqtt.PropSessionExpiry
		}
	}
}

// bed1 keeps what arrived on bed1's topics.
func bed1(got []string) []string {
	var out []string
	for _, g := range got {
		if strings.HasPrefix(g, "icu/bed1/") {
			out = append(out, g)
		}
	}
	return out
}

// payloads collects topic=payload of the PUBLISHes arriving within d.
func payloads(r *raw, d time.Duration) []string {
	return r.publishes(d, func(p *mqtt.Packet) string { return string(p.Topic) + "=" + string(p.Payload) })
}

// TestWillTakeover: a device whose old connection is still open at the
// broker (half-open TCP, NAT rebinding) reconnects with the same client ID
// and Clean Start 0. Its new network connection to the session is made
// before the old one's Will Delay Interval has passed, so the old will
// must not be sent [MQTT-3.1.3-9]; and the new connection's own will is
// sent when it drops. (Found by a review: the old connection's will,
// decided after the new connection withdrew held wills, went out while
// the device was connected; and mochi's queued placeholder, when its
// delay ended, cleared the new connection's will, 3 runs in 24.)
func TestWillTakeover(t *testing.T) {
	tg := startAttack(t, attackPolicy)
	n := dialRaw(t, tg, "nurse-station")
	n.connectOK(mqtt.V5, "nurse-station", nil)
	n.subscribe(1, "icu/+/ecg")
	old := dialRaw(t, tg, "bed1-ecg")
	old.connectOK(mqtt.V5, "bed1-ecg", delayedWill("icu/bed1/ecg", "old connection's will", 2, 60, false))
	// The device comes back on a new connection; the old one is still open.
	cur := dialRaw(t, tg, "bed1-ecg")
	cur.connectOK(mqtt.V5, "bed1-ecg", delayedWill("icu/bed1/ecg", "new connection's will", 2, 60, false))
	if ok, _ := old.closed(5 * time.Second); !ok {
		t.Fatal("the old connection was not taken over")
	}
	if got := payloads(n, 5*time.Second); len(got) != 0 {
		t.Errorf("the device reconnected (Clean Start 0) before the will delay passed, yet a will was sent while it is connected [MQTT-3.1.3-9]: %v", got)
	}
	// The connection in use drops: its own will must come after 2 s.
	cur.c.Close()
	if got := payloads(n, 6*time.Second); len(got) != 1 || got[0] != "icu/bed1/ecg=new connection's will" {
		t.Errorf("the current connection's will after it dropped: got %v, want [icu/bed1/ecg=new connection's will]", got)
	}
}

const reviewPolicy = `devices:
  bed1-ecg:      {publish: ["icu/bed1/ecg"]}
  nurse-station: {subscribe: ["icu/+/ecg"]}
  intruder:      {publish: ["icu/intruder/ecg"]}
limits:
  handshake_timeout: 2s
  connects_per_minute_per_ip: 100000
  connects_per_minute_per_identity: 100000
  auth_failures_before_ban: 100000
`

// TestWillOtherIdentity: with client_id: any, another identity reusing a
// device's client ID does not silence the device's held will: the
// device's session (a will is held only while it is) keeps the client ID
// from other identities, and held wills are kept per client ID and
// identity (TestWillsBounded). (Found by a review: an intruder's will
// with the longest delay replaced the device's, which was never sent.)
func TestWillOtherIdentity(t *testing.T) {
	tg := startCID(t, reviewPolicy, "any")
	n := dialRaw(t, tg, "nurse-station")
	n.connectOK(mqtt.V5, "nurse-station", nil)
	n.subscribe(1, "icu/+/ecg")
	d := dialRaw(t, tg, "bed1-ecg")
	d.connectOK(mqtt.V5, "bed1-ecg", delayedWill("icu/bed1/ecg", "lead off", 3, 60, true))
	d.c.Close()
	time.Sleep(300 * time.Millisecond)
	x := dialRaw(t, tg, "intruder")
	if ack := x.connect(mqtt.V5, "bed1-ecg", delayedWill("icu/intruder/ecg", "x", 4294967295, 4294967295, true)); ack == nil || ack.ReasonCode == 0 {
		t.Errorf("another identity took the client ID of a session held: %+v", ack)
	}
	x.c.Close()
	if got := bed1(payloads(n, 6*time.Second)); len(got) != 1 || got[0] != "icu/bed1/ecg=lead off" {
		t.Errorf("the device's delayed will: got %v, want [icu/bed1/ecg=lead off]; another identity's will replaced it", got)
	}
}

// TestWillsNotExhausted: a will is held no longer than its session (with
// no Session Expiry it goes at once), so wills with the longest delay
// (2^32-1 s) left by one identity under several client IDs (client_id:
// prefix) do not fill the held-will limit for the others. (Found by a
// review: four such wills under max_sessions 4 refused every device's
// delayed will for good.)
func TestWillsNotExhausted(t *testing.T) {
	tg := startCID(t, reviewPolicy+"  max_sessions: 4\n", "prefix")
	n := dialRaw(t, tg, "nurse-station")
	n.connectOK(mqtt.V5, "nurse-station", nil)
	n.subscribe(1, "icu/+/ecg")
	for i := 0; i < 4; i++ {
		x := dialRaw(t, tg, "intruder")
		x.connectOK(mqtt.V5, "intruder-"+itoa(i), delayedWill("icu/intruder/ecg", "x", 4294967295, -1, true))
		x.c.Close()
		time.Sleep(200 * time.Millisecond)
	}
	// No session is held by the intruder now; the device's session is.
	d := dialRaw(t, tg, "bed1-ecg")
	d.connectOK(mqtt.V5, "bed1-ecg", delayedWill("icu/bed1/ecg", "lead off", 1, 60, true))
	d.c.Close()
	if got := bed1(payloads(n, 5*time.Second)); len(got) != 1 || got[0] != "icu/bed1/ecg=lead off" {
		t.Errorf("the device's delayed will: got %v, want [icu/bed1/ecg=lead off]", got)
		tg.g.FlushAudit()
		for _, l := range strings.Split(tg.audit.raw(), "\n") {
			if strings.Contains(l, "will") {
				t.Log(l)
			}
		}
	}
}

// TestWillAtSessionEnd: the will is sent when the delay ends or the
// session ends, whichever first [MQTT-3.1.2-8]: here the session the
// gateway granted (max_session_expiry 2 s), not the hour the client asked
// for. (Found by a review: the will was held for the hour.)
func TestWillAtSessionEnd(t *testing.T) {
	tg := startCID(t, reviewPolicy+"  max_session_expiry: 2s\n", "identity")
	n := dialRaw(t, tg, "nurse-station")
	n.connectOK(mqtt.V5, "nurse-station", nil)
	n.subscribe(1, "icu/+/ecg")
	d := dialRaw(t, tg, "bed1-ecg")
	ack := d.connect(mqtt.V5, "bed1-ecg", delayedWill("icu/bed1/ecg", "lead off", 3600, 3600, true))
	if ack.ReasonCode != 0 || ack.Props.SessionExpiry != 2 {
		t.Fatalf("CONNACK 0x%02x, session expiry %d, want 0 and 2", ack.ReasonCode, ack.Props.SessionExpiry)
	}
	d.c.Close()
	if got := payloads(n, 6*time.Second); len(got) != 1 {
		t.Errorf("the session ended 2 s after the disconnect, its will was not sent with it [MQTT-3.1.2-8]: got %v", got)
	}
}

// TestWillShutdownAudit: a delayed will of a client disconnected by the
// gateway's shutdown is not audited as refused at the held-will limit.
// (Found by a review: every such client got that refusal.)
func TestWillShutdownAudit(t *testing.T) {
	tg := startCID(t, reviewPolicy, "identity")
	d := dialRaw(t, tg, "bed1-ecg")
	d.connectOK(mqtt.V5, "bed1-ecg", delayedWill("icu/bed1/ecg", "lead off", 5, 60, true))
	tg.g.Close()
	for _, s := range strings.Split(tg.audit.raw(), "\n") {
		if strings.Contains(s, "held at their limit") {
			t.Errorf("a shutdown audited as the held-will limit: %s", s)
		}
	}
}

// TestWillBanDuringDelay: a ban of the identity within a held will's
// delay stops the will, as a ban of a connected identity withdraws its
// will (cutOff). (Found by a review: the will was sent.)
func TestWillBanDuringDelay(t *testing.T) {
	tg := startCID(t, reviewPolicy, "identity")
	n := dialRaw(t, tg, "nurse-station")
	n.connectOK(mqtt.V5, "nurse-station", nil)
	n.subscribe(1, "icu/+/ecg")
	d := dialRaw(t, tg, "bed1-ecg")
	d.connectOK(mqtt.V5, "bed1-ecg", delayedWill("icu/bed1/ecg", "lead off", 2, 60, true))
	d.c.Close()
	time.Sleep(300 * time.Millisecond)
	if _, err := tg.g.Ban("identity:bed1-ecg", "compromised", time.Hour); err != nil {
		t.Fatal(err)
	}
	if got := payloads(n, 4*time.Second); len(got) != 0 {
		t.Errorf("the held will of an identity banned within its delay was sent: %v", got)
	}
}
