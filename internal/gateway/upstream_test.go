package gateway_test

import (
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
	natsserver "github.com/nats-io/nats-server/v2/server"

	"github.com/iomtguard/iomtguard/internal/gateway"
	"github.com/iomtguard/iomtguard/internal/mosquittotest"
	"github.com/iomtguard/iomtguard/internal/mqtt"
	"github.com/iomtguard/iomtguard/internal/pki"
)

// TestUpstreamMosquitto: the gateway in front of Debian's Mosquitto (mTLS
// both ways): what the policy allows reaches Mosquitto, what Mosquitto
// carries reaches the devices that may read it, and nothing else crosses.
func TestUpstreamMosquitto(t *testing.T) {
	mosquittotest.Need(t, "mosquitto")
	dir := t.TempDir()
	pki.Init(dir, pki.Options{})
	pki.Issue(dir, "gateway", pki.Options{Server: true, Hosts: []string{"127.0.0.1", "localhost"}})
	pki.Issue(dir, "upstream-broker", pki.Options{Server: true, Hosts: []string{"127.0.0.1"}})
	for _, n := range []string{"bed1-ecg", "nurse-station", "hospital-app"} {
		pki.Issue(dir, n, pki.Options{})
	}
	read := func(n string) []byte { b, _ := os.ReadFile(filepath.Join(dir, n)); return b }
	mq := mosquittotest.StartWith(t, map[string][]byte{"ca.crt": read("ca.crt"), "server.crt": read("upstream-broker.crt"),
		"server.key": read("upstream-broker.key"), "acl": []byte("user gateway\ntopic readwrite #\nuser hospital-app\ntopic readwrite #\n")},
		"listener {{PORT}} 127.0.0.1\ncafile {{DIR}}/ca.crt\ncertfile {{DIR}}/server.crt\nkeyfile {{DIR}}/server.key\n"+
			"require_certificate true\nuse_identity_as_username true\nallow_anonymous false\nacl_file {{DIR}}/acl\n")
	pol := filepath.Join(dir, "policy.yaml")
	os.WriteFile(pol, []byte(`devices:
  bed1-ecg:      {publish: ["icu/bed1/ecg"]}
  nurse-station: {subscribe: ["icu/+/ecg", "icu/+/patient"]}
`), 0o644)
	audit := &syncBuf{}
	g, err := gateway.New(gateway.Config{Listen: "127.0.0.1:0", PKI: dir, Policy: pol, Metrics: "127.0.0.1:0", State: "none",
		Upstream: "mqtts://" + mq.Addr(), UpstreamCA: filepath.Join(dir, "ca.crt")}, gateway.Options{Audit: audit})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Start(); err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	// The broker paused between acknowledging a subscription and sending its
	// retained messages, as a loaded machine pauses it: upstream's retained
	// copy must still arrive once.
	if err := g.AddBrokerHook(&slowSubscribed{}); err != nil {
		t.Fatal(err)
	}
	tg := &testGW{g: g, dir: dir, audit: audit, pool: caPool(t, dir)}
	waitFor(t, 5*time.Second, "the upstream connection", func() bool {
		up, _ := g.Health()["upstream"].(map[string]any)
		return up["connected"] == true
	})
	// What Mosquitto's own clients see.
	upSub := func(args ...string) *exec.Cmd {
		bin := mosquittotest.Need(t, "mosquitto_sub")
		cmd := exec.Command(bin, append([]string{"-h", "127.0.0.1", "-p", strings.TrimPrefix(mq.Addr(), "127.0.0.1:"), "--cafile", filepath.Join(dir, "ca.crt"),
			"--cert", filepath.Join(dir, "hospital-app.crt"), "--key", filepath.Join(dir, "hospital-app.key"), "-i", "hospital-app-sub", "-v"}, args...)...)
		return cmd
	}
	upPub := func(args ...string) {
		bin := mosquittotest.Need(t, "mosquitto_pub")
		out, err := exec.Command(bin, append([]string{"-h", "127.0.0.1", "-p", strings.TrimPrefix(mq.Addr(), "127.0.0.1:"), "--cafile", filepath.Join(dir, "ca.crt"),
			"--cert", filepath.Join(dir, "hospital-app.crt"), "--key", filepath.Join(dir, "hospital-app.key"), "-i", "hospital-app-pub"}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("mosquitto_pub upstream: %v %s", err, out)
		}
	}
	// A retained reading upstream, before anyone subscribes at the gateway.
	upPub("-t", "icu/bed3/patient", "-m", "sealed-envelope", "-r")
	upPub("-t", "pharmacy/orders", "-m", "morphine", "-r")
	watch := upSub("-t", "#", "-W", "6")
	var upOut strings.Builder
	watch.Stdout = &upOut
	watch.Start()
	time.Sleep(300 * time.Millisecond)

	n := dialRaw(t, tg, "nurse-station")
	n.connectOK(mqtt.V5, "nurse-station", nil)
	n.subscribe(1, "icu/+/ecg", "icu/+/patient")
	e := dialRaw(t, tg, "bed1-ecg")
	e.connectOK(mqtt.V311, "bed1-ecg", nil)
	time.Sleep(300 * time.Millisecond) // the upstream subscriptions
	e.publish("icu/bed1/ecg", 1, false, []byte("72"), 1)
	e.expect(mqtt.PUBACK)
	e2 := dialRaw(t, tg, "bed1-ecg")
	e2.connectOK(mqtt.V5, "bed1-ecg", nil)
	e2.publish("icu/bed2/ecg", 1, false, []byte("forged"), 2) // outside its rights
	if p := e2.expect(mqtt.PUBACK); p.ReasonCode != 0x87 {
		t.Errorf("refused publish: 0x%02x", p.ReasonCode)
	}
	upPub("-t", "icu/bed2/ecg", "-m", "68")
	got := n.received(2 * time.Second)
	watch.Wait()
	want := map[string]int{"icu/bed3/patient": 1, "icu/bed1/ecg": 1, "icu/bed2/ecg": 1}
	have := map[string]int{}
	for _, topic := range got {
		have[topic]++
	}
	for topic, c := range want {
		if have[topic] != c {
			t.Errorf("the nurse station got %d messages on %s through upstream, want %d (all: %v)", have[topic], topic, c, got)
		}
	}
	if have["pharmacy/orders"] > 0 {
		t.Error("a topic outside the nurse station's rights crossed from upstream")
	}
	up := upOut.String()
	if !strings.Contains(up, "icu/bed1/ecg 72") {
		t.Errorf("upstream did not get the allowed reading:\n%s", up)
	}
	if strings.Contains(up, "forged") {
		t.Errorf("a refused publish reached upstream:\n%s", up)
	}
}

// slowSubscribed holds the broker after it has sent a SUBACK and before it
// reads its retained messages for the new subscriptions.
type slowSubscribed struct{ mochi.HookBase }

func (slowSubscribed) ID() string           { return "slow-subscribed" }
func (slowSubscribed) Provides(b byte) bool { return b == mochi.OnPacketSent }
func (slowSubscribed) OnPacketSent(_ *mochi.Client, pk packets.Packet, _ []byte) {
	if pk.FixedHeader.Type == packets.Suback {
		time.Sleep(300 * time.Millisecond)
	}
}

// TestClusterBansAndRevocations: two gateways sharing a NATS JetStream
// server act as one: a ban or a revocation at one applies at the other
// within a second.
func TestClusterBansAndRevocations(t *testing.T) {
	ns, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	defer ns.Shutdown()
	if !ns.ReadyForConnections(5 * time.Second) {
		t.Fatal("nats did not start")
	}
	dirA := t.TempDir()
	pki.Init(dirA, pki.Options{})
	pki.Issue(dirA, "gateway", pki.Options{Server: true, Hosts: []string{"127.0.0.1"}})
	for _, n := range []string{"bed1-ecg", "bed2-ecg"} {
		pki.Issue(dirA, n, pki.Options{})
	}
	// The second gateway has a copy of the PKI (another machine).
	dirB := t.TempDir()
	for _, f := range []string{"ca.crt", "gateway.crt", "gateway.key", "bed1-ecg.crt", "bed1-ecg.key", "bed2-ecg.crt", "bed2-ecg.key"} {
		b, _ := os.ReadFile(filepath.Join(dirA, f))
		os.WriteFile(filepath.Join(dirB, f), b, 0o600)
	}
	start := func(dir string) *testGW {
		pol := filepath.Join(dir, "policy.yaml")
		os.WriteFile(pol, []byte("devices:\n  \"bed*-ecg\": {publish: [\"icu/{identity}/ecg\"]}\n"), 0o644)
		audit := &syncBuf{}
		g, err := gateway.New(gateway.Config{Listen: "127.0.0.1:0", PKI: dir, Policy: pol, Metrics: "off", State: filepath.Join(dir, "state"),
			NATS: ns.ClientURL()}, gateway.Options{Audit: audit, AuditOptions: gateway.AuditOptions{PerKey: 1000, Rate: 1000}})
		if err != nil {
			t.Fatal(err)
		}
		if err := g.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { g.Close() })
		return &testGW{g: g, dir: dir, audit: audit, pool: caPool(t, dir)}
	}
	a, b := start(dirA), start(dirB)
	// A ban at A cuts bed1-ecg off at B.
	c := dialRaw(t, b, "bed1-ecg")
	c.connectOK(mqtt.V311, "bed1-ecg", nil)
	t0 := time.Now()
	if _, err := a.g.Ban("identity:bed1-ecg", "reported stolen", time.Hour); err != nil {
		t.Fatal(err)
	}
	if closed, _ := c.closed(10 * time.Second); !closed { // about 0.1 s here; a loaded CI machine under -race takes longer
		t.Fatal("the identity banned at A is still connected at B")
	}
	t.Logf("ban at A applied at B in %s", time.Since(t0).Round(time.Millisecond))
	if bans := b.g.Bans(); len(bans) != 1 || bans[0].Key != "identity:bed1-ecg" {
		t.Errorf("bans at B: %+v", bans)
	}
	// A revocation at A (its CRL) cuts bed2-ecg off at B, whose CRL does not list it.
	c2 := dialRaw(t, b, "bed2-ecg")
	c2.connectOK(mqtt.V311, "bed2-ecg", nil)
	t0 = time.Now()
	if err := pki.Revoke(dirA, "bed2-ecg", "key-compromise", pki.Options{}); err != nil {
		t.Fatal(err)
	}
	if closed, _ := c2.closed(10 * time.Second); !closed {
		t.Fatal("the certificate revoked at A is still connected at B")
	}
	t.Logf("revocation at A applied at B in %s (A reads its CRL within 1 s)", time.Since(t0).Round(time.Millisecond))
	r := dialRaw(t, b, "bed2-ecg")
	r.send(&mqtt.Packet{Type: mqtt.CONNECT, Version: mqtt.V311, ClientID: []byte("bed2-ecg"), ConnectFlags: 2, KeepAlive: 30})
	if p, err := r.recv(3 * time.Second); err == nil && p.Type == mqtt.CONNACK && p.ReasonCode == 0 {
		t.Error("the certificate revoked at A connected at B")
	}
	// Lifting at B lifts at A.
	b.g.LiftBan("identity:bed1-ecg")
	waitFor(t, 10*time.Second, "the lift at A", func() bool { return len(a.g.Bans()) == 0 })
	_ = context.Background
	_ = io.Discard
}
