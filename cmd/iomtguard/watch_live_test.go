package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/iomtguard/iomtguard/internal/mosquittotest"
)

// netns is a network namespace joined to the host by a veth pair: the
// ward's broker runs inside, devices talk to it from the host, and watch
// captures on the host's end, as on a mirror port.
type netns struct {
	name, host, peer string
	hostIP, peerIP   string
}

func newNetns(t *testing.T) *netns {
	if os.Geteuid() != 0 {
		t.Skip("network namespaces need root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("the ip command (iproute2) is not installed")
	}
	id := rand.IntN(1 << 16)
	n := &netns{name: fmt.Sprintf("igw%d", id), host: fmt.Sprintf("igh%d", id), peer: fmt.Sprintf("ign%d", id),
		hostIP: fmt.Sprintf("10.231.%d.1", id%250), peerIP: fmt.Sprintf("10.231.%d.2", id%250)}
	run := func(args ...string) {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	run("netns", "add", n.name)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", n.name).Run() })
	run("link", "add", n.host, "type", "veth", "peer", "name", n.peer)
	t.Cleanup(func() { exec.Command("ip", "link", "del", n.host).Run() })
	run("link", "set", n.peer, "netns", n.name)
	run("addr", "add", n.hostIP+"/24", "dev", n.host)
	run("link", "set", n.host, "up")
	run("-n", n.name, "addr", "add", n.peerIP+"/24", "dev", n.peer)
	run("-n", n.name, "link", "set", n.peer, "up")
	run("-n", n.name, "link", "set", "lo", "up")
	return n
}

// TestWatchLiveEndToEnd: Mosquitto with passwords in a namespace, the
// simulated ward publishing to it from the host, and watch capturing on
// the host's end of the veth pair. The dashboard's count of readings
// agrees with the simulator's; a password-guessing run raises
// attack.bruteforce on the three alert outputs (JSON lines, syslog, a
// webhook) within 5 s of the rule's threshold being crossed.
func TestWatchLiveEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("a live run of a minute")
	}
	mosq := mosquittotest.Need(t, "mosquitto")
	mosquittotest.Need(t, "mosquitto_pub")
	n := newNetns(t)
	bin := binary(t)
	dir, _ := os.MkdirTemp("", "iomtguard-live-")
	os.Chmod(dir, 0o755)
	t.Cleanup(func() { os.RemoveAll(dir) })

	// The broker, with passwords, inside the namespace.
	pw := filepath.Join(dir, "passwd")
	if out, err := exec.Command("mosquitto_passwd", "-c", "-b", pw, "ward", "ward-password").CombinedOutput(); err != nil {
		t.Fatalf("mosquitto_passwd: %v\n%s", err, out)
	}
	exec.Command("mosquitto_passwd", "-b", pw, "bed1-ecg", "right-password").Run()
	os.Chmod(pw, 0o644)
	conf := filepath.Join(dir, "mosquitto.conf")
	os.WriteFile(conf, []byte(fmt.Sprintf("listener 1883 %s\nallow_anonymous false\npassword_file %s\npersistence false\n", n.peerIP, pw)), 0o644)
	broker := exec.Command("ip", "netns", "exec", n.name, mosq, "-c", conf)
	var blog bytes.Buffer
	broker.Stdout, broker.Stderr = &blog, &blog
	if err := broker.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { broker.Process.Kill(); broker.Wait() })
	brokerAddr := n.peerIP + ":1883"
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if c, err := net.Dial("tcp", brokerAddr); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("mosquitto did not start in the namespace:\n%s", blog.String())
		}
	}

	// The three alert outputs: a syslog collector (UDP), a webhook, a file.
	got := map[string]time.Time{} // output -> when attack.bruteforce arrived
	var mu sync.Mutex
	arrived := func(out string, body []byte) {
		if bytes.Contains(body, []byte(`"id":"attack.bruteforce"`)) {
			mu.Lock()
			if _, ok := got[out]; !ok {
				got[out] = time.Now()
			}
			mu.Unlock()
		}
	}
	udp, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	go func() {
		buf := make([]byte, 65536)
		for {
			k, _, err := udp.ReadFrom(buf)
			if err != nil {
				return
			}
			arrived("syslog", buf[:k])
		}
	}()
	hook := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		arrived("webhook", b)
	})}
	hl, _ := net.Listen("tcp", "127.0.0.1:0")
	go hook.Serve(hl)
	defer hook.Close()
	alerts := filepath.Join(dir, "alerts.jsonl")
	httpAddr := freeAddr(t)

	w := exec.Command(bin, "watch", "--interface", n.host, "--filter", "tcp port 1883", "--alerts", alerts,
		"--syslog", "udp://"+udp.LocalAddr().String(), "--webhook", "http://"+hl.Addr().String()+"/hook", "--http", httpAddr,
		"--db", filepath.Join(dir, "ward.db"), "-q")
	var wlog bytes.Buffer
	w.Stdout, w.Stderr = &wlog, &wlog
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { w.Process.Kill(); w.Wait() }()
	snapshot := func() map[string]any {
		resp, err := http.Get("http://" + httpAddr + "/api/snapshot")
		if err != nil {
			return nil
		}
		defer resp.Body.Close()
		var m map[string]any
		json.NewDecoder(resp.Body).Decode(&m)
		return m
	}
	for deadline := time.Now().Add(10 * time.Second); snapshot() == nil; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("watch did not start:\n%s", wlog.String())
		}
	}
	time.Sleep(time.Second) // the ring is bound

	// The ward.
	sim := exec.Command(bin, "simulate", "--broker", brokerAddr, "--duration", "20s", "--speed", "5", "--username", "ward", "--password", "ward-password")
	simOut, err := sim.Output()
	if err != nil {
		t.Fatalf("simulate: %v\n%s", err, simOut)
	}
	var st struct {
		Published int64 `json:"published"`
		Received  int64 `json:"received"`
	}
	json.Unmarshal(simOut, &st)
	totals := func() (float64, float64) {
		s := snapshot()
		tt, _ := s["totals"].(map[string]any)
		a, _ := tt["publish_from_clients"].(float64)
		b, _ := tt["publish_to_clients"].(float64)
		return a, b
	}
	diff := func(a float64, b int64) float64 { return (a - float64(b)) / float64(b) }
	// The last frames through the ring and the pipeline: a second or two
	// here, longer on a loaded machine.
	var pub, del float64
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(250 * time.Millisecond) {
		if pub, del = totals(); math.Abs(diff(pub, st.Published)) <= 0.01 || time.Now().After(deadline) {
			break
		}
	}
	t.Logf("simulator: %d published, %d delivered; dashboard: %.0f readings sent, %.0f delivered (%.2f %%, %.2f %%)",
		st.Published, st.Received, pub, del, 100*diff(pub, st.Published), 100*diff(del, st.Received))
	if st.Published < 500 || diff(pub, st.Published) > 0.01 || diff(pub, st.Published) < -0.01 {
		t.Errorf("readings: dashboard %.0f, simulator %d: more than 1 %% apart", pub, st.Published)
	}

	// Password guessing: wrong passwords for bed1-ecg, one connection each.
	// The rule: 10 refusals with 3 different credentials in its window.
	var crossed time.Time
	for i := 0; i < 14; i++ {
		exec.Command("mosquitto_pub", "-h", n.peerIP, "-p", "1883", "-i", fmt.Sprintf("guess-%d", i), "-u", "bed1-ecg", "-P",
			fmt.Sprintf("guess%d", i), "-t", "x", "-m", "y").Run()
		if i == 9 {
			crossed = time.Now()
		}
	}
	deadline := crossed.Add(15 * time.Second)
	for time.Now().Before(deadline) {
		b, _ := os.ReadFile(alerts)
		arrived("jsonl", b)
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n == 3 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, out := range []string{"jsonl", "syslog", "webhook"} {
		at, ok := got[out]
		if !ok {
			t.Errorf("no attack.bruteforce alert on %s", out)
			continue
		}
		d := at.Sub(crossed)
		t.Logf("attack.bruteforce on %s %.2f s after the 10th refusal", out, d.Seconds())
		if d > 5*time.Second {
			t.Errorf("%s: %.1f s after the threshold was crossed (want 5 s at most)", out, d.Seconds())
		}
	}
	s := snapshot()
	src, _ := s["source"].(map[string]any)
	stats, _ := src["stats"].(map[string]any)
	t.Logf("capture: %v frames, kernel drops %v, queue drops %v", stats["frames"], stats["kernel_drops"], stats["queue_drops"])

}
