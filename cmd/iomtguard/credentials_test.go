package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"

	"github.com/iomtguard/iomtguard/internal/demo"
	"github.com/iomtguard/iomtguard/internal/mqtt"
	"github.com/iomtguard/iomtguard/internal/pcaptest"
	"github.com/iomtguard/iomtguard/internal/pipeline"
	"github.com/iomtguard/iomtguard/internal/pki"
)

// outputs gathers what commands wrote: stdout, stderr and files.
type outputs struct {
	t     *testing.T
	blobs map[string][]byte
}

func (o *outputs) add(name string, b []byte) { o.blobs[name] = append([]byte(nil), b...) }

// addTree adds every file under dir.
func (o *outputs) addTree(dir string) {
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if b, err := os.ReadFile(p); err == nil {
				o.add(p, b)
			}
		}
		return nil
	})
}

// run runs the binary and records its stdout and stderr; it returns the exit code.
func (o *outputs) run(env []string, args ...string) int {
	o.t.Helper()
	cmd := exec.Command(binary(o.t), args...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	name := strings.Join(args, " ")
	o.add(name+" (stdout)", stdout.Bytes())
	o.add(name+" (stderr)", stderr.Bytes())
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	} else if err != nil {
		o.t.Fatalf("%s: %v", name, err)
	}
	return 0
}

// credential is a secret and the forms it would take in an output.
type credential struct {
	s     string
	forms [][]byte
}

var digits = regexp.MustCompile(`^[0-9]+$`)

func credForms(s string) credential {
	h := hex.EncodeToString([]byte(s))
	var colon []string
	for i := 0; i < len(h); i += 2 {
		colon = append(colon, h[i:i+2])
	}
	c := credential{s: s, forms: [][]byte{[]byte(h), []byte(strings.Join(colon, ":"))}}
	if !digits.MatchString(s) { // a number can be a count in a report
		c.forms = append(c.forms, []byte(s))
	}
	return c
}

// in reports whether low (an output, lowered once by the caller: lowering
// it per credential made this test quadratic, ten minutes under -race)
// holds one of c's forms.
func (c credential) in(low []byte) bool {
	for _, f := range c.forms {
		if bytes.Contains(low, bytes.ToLower(f)) {
			return true
		}
	}
	return false
}

// passwordsIn decodes a capture and returns the passwords of its CONNECTs.
type pwCollector struct {
	pipeline.Nop
	seen map[string]bool
}

func (c *pwCollector) OnMQTT(ev *pipeline.MQTT) {
	if ev.Pkt.Type == mqtt.CONNECT && len(ev.Pkt.Password) >= 6 {
		c.seen[string(ev.Pkt.Password)] = true
	}
}

func passwordsIn(t *testing.T, path string) []string {
	in, err := pipeline.OpenInput(path)
	if err != nil {
		t.Fatal(err)
	}
	c := &pwCollector{seen: map[string]bool{}}
	if _, err := pipeline.New(pipeline.Options{}, c).Run(context.Background(), in); err != nil {
		t.Fatal(err)
	}
	var out []string
	for p := range c.seen {
		out = append(out, p)
	}
	return out
}

// TestNoCredentialsInOutputs runs every command that reads traffic or
// handles passwords, in every output format, on captures with known
// passwords (the demo's 270 brute-force guesses and device passwords, a
// simulated brute force, and a capture built to hide credentials in every
// way: split, retransmitted, late, reordered, mid-stream, MQTT 5
// authentication data, WebSocket frames and upgrade tokens), and greps all
// they wrote (stdout, stderr, every file) for each credential as text, hex
// and colon hex. Without --reveal-credentials none may appear; with it the
// same grep finds them (it is not blind).
func TestNoCredentialsInOutputs(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs every command")
	}
	dir := t.TempDir()
	o := &outputs{t: t, blobs: map[string][]byte{}}

	// The captures and their credentials.
	cc := pcaptest.Credentials()
	credPath := filepath.Join(dir, "credentials.pcap")
	os.WriteFile(credPath, cc.Pcap, 0o644)
	demoPath := filepath.Join(dir, "demo.pcapng.gz")
	b, _ := readAll(demo.Open())
	os.WriteFile(demoPath, b, 0o644)
	bfPath := filepath.Join(dir, "bf.pcapng")
	if code := o.run(nil, "simulate", "--attack", "bruteforce", "--duration", "3m", "--labels", filepath.Join(dir, "bf.yaml"), "-o", bfPath); code != 0 {
		t.Fatalf("simulate: exit %d", code)
	}
	secrets := map[string][]string{credPath: cc.Secrets, demoPath: passwordsIn(t, demoPath), bfPath: passwordsIn(t, bfPath)}
	if n := len(secrets[demoPath]); n < 200 {
		t.Fatalf("the demo capture holds %d passwords, expected its 270", n)
	}
	// The gateway's and the live simulator's passwords.
	gwPass, gwWrong, livePass := "GwQxPassw0rd-1", "GwQxWr0ng-Guess", "LiveQxSimPw-7"
	var all []credential
	for _, list := range secrets {
		for _, s := range list {
			all = append(all, credForms(s))
		}
	}
	for _, s := range []string{gwPass, gwWrong, livePass} {
		all = append(all, credForms(s))
	}

	// Positive control: revealed, the grep finds each capture's credentials.
	for path, list := range secrets {
		rev := &outputs{t: t, blobs: map[string][]byte{}}
		rev.run(nil, "export", "-q", "--payloads", "--reveal-credentials", path)
		found := 0
		var lows [][]byte
		for _, blob := range rev.blobs {
			lows = append(lows, bytes.ToLower(blob))
		}
		for _, s := range list {
			for _, low := range lows {
				if credForms(s).in(low) {
					found++
					break
				}
			}
		}
		// Every password of the demo and the simulation travels whole in one
		// segment; the built capture splits some across segments and hides
		// others in WebSocket frames (XOR-masked, compressed), where the
		// masking test of internal/export checks them byte by byte.
		want := len(list)
		if path == credPath {
			want = len(list) - 20
		}
		if found < want {
			t.Fatalf("%s revealed: the grep finds %d of %d credentials (want %d)", filepath.Base(path), found, len(list), want)
		}
		t.Logf("%s revealed: the grep finds %d of %d credentials", filepath.Base(path), found, len(list))
	}

	// Every command that reads a capture, in every output format.
	for i, path := range []string{credPath, demoPath, bfPath} {
		rep := filepath.Join(dir, fmt.Sprintf("report-%d", i))
		o.run(nil, "analyze", "-q", "--out", rep, path)
		o.addTree(rep)
		o.run(nil, "analyze", "--json", "-", "--no-report", path)
		for _, extra := range [][]string{nil, {"--payloads"}, {"--payloads", "--dialect", "released"}, {"--payloads", "--frames", "mqtt"}} {
			o.run(nil, append([]string{"export", "-q", "--format", "icu-csv"}, append(extra, path)...)...)
		}
		for _, extra := range [][]string{nil, {"--payloads"}} {
			o.run(nil, append([]string{"export", "-q", "--format", "jsonl"}, append(extra, path)...)...)
		}
		// The CSV a dataset user would pass on, read back in.
		csvPath := filepath.Join(dir, fmt.Sprintf("export-%d.csv", i))
		o.run(nil, "export", "-q", "--payloads", "-o", csvPath, path)
		o.addTree(csvPath)
		o.run(nil, "analyze", "-q", "--json", "-", "--no-report", csvPath)
		o.run(nil, "forecast", "--metric", "mqtt", "--json", path)
	}
	o.run(nil, "eval", "--labels", filepath.Join(dir, "bf.yaml"), bfPath)
	o.run(nil, "eval", "--json", "--labels", filepath.Join(dir, "bf.yaml"), bfPath)
	simCSV := filepath.Join(dir, "sim.csv")
	o.run(nil, "simulate", "--attack", "bruteforce", "--duration", "3m", "--format", "icu-csv", "-o", simCSV)
	o.addTree(simCSV)
	o.run(nil, "simulate", "--attack", "bruteforce", "--duration", "3m", "--format", "icu-csv", "--frames", "all", "-o", "-")
	simPasswords := passwordsIn(t, bfPath) // the same seed: the same guesses
	for _, s := range simPasswords {
		all = append(all, credForms(s))
	}

	// The gateway: a password file, clients that send wrong and right passwords.
	gatewayRun(t, o, dir, gwPass, gwWrong)
	// The live simulator against a broker, with a password.
	liveRun(t, o, livePass)

	leaks := 0
	for name, blob := range o.blobs {
		low := bytes.ToLower(blob)
		for _, c := range all {
			if c.in(low) {
				leaks++
				if leaks <= 20 {
					t.Errorf("%s holds the credential %q", name, c.s)
				}
			}
		}
	}
	t.Logf("%d outputs of %d command runs grepped for %d credentials: %d leaks", len(o.blobs), countRuns(o), len(all), leaks)
}

func countRuns(o *outputs) int {
	n := 0
	for name := range o.blobs {
		if strings.HasSuffix(name, "(stdout)") {
			n++
		}
	}
	return n
}

func readAll(r interface{ Read([]byte) (int, error) }) ([]byte, error) {
	var buf bytes.Buffer
	_, err := buf.ReadFrom(r)
	return buf.Bytes(), err
}

// gatewayRun starts the gateway with a password file, connects with a wrong
// and then the right password, and records its stderr, audit log, state
// directory, health and metrics.
func gatewayRun(t *testing.T, o *outputs, dir, right, wrong string) {
	ca := filepath.Join(dir, "ca")
	if _, err := pki.Init(ca, pki.Options{}); err != nil {
		t.Fatal(err)
	}
	pki.Issue(ca, "gateway", pki.Options{Server: true, Hosts: []string{"127.0.0.1"}})
	pki.Issue(ca, "bed1-ecg", pki.Options{})
	pol := filepath.Join(dir, "ward.yaml")
	os.WriteFile(pol, []byte("devices:\n  bed1-ecg: {publish: [\"icu/bed1/ecg\"]}\n"), 0o644)
	pw := filepath.Join(dir, "gateway.passwd")
	cmd := exec.Command(binary(t), "gateway", "passwd", "--file", pw, "--user", "bed1-ecg")
	cmd.Stdin = strings.NewReader(right + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("gateway passwd: %v\n%s", err, out)
	} else {
		o.add("gateway passwd (output)", out)
	}
	listen, metrics := freeAddr(t), freeAddr(t)
	audit, state := filepath.Join(dir, "audit.jsonl"), filepath.Join(dir, "state")
	gw := exec.Command(binary(t), "gateway", "--pki", ca, "--policy", pol, "--passwords", pw, "--listen", listen,
		"--metrics", metrics, "--audit", audit, "--state", state)
	var stderr, stdout bytes.Buffer
	gw.Stderr, gw.Stdout = &stderr, &stdout
	if err := gw.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		gw.Process.Kill()
		gw.Wait()
		o.add("gateway (stderr)", stderr.Bytes())
		o.add("gateway (stdout)", stdout.Bytes())
		o.addTree(audit)
		o.addTree(state)
		o.addTree(pw)
	}()
	get := func(path string) []byte {
		resp, err := http.Get("http://" + metrics + path)
		if err != nil {
			return nil
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		b.ReadFrom(resp.Body)
		return b.Bytes()
	}
	for deadline := time.Now().Add(10 * time.Second); get("/healthz") == nil; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the gateway did not start:\n%s", stderr.String())
		}
	}
	pool := x509.NewCertPool()
	caPEM, _ := os.ReadFile(filepath.Join(ca, "ca.crt"))
	pool.AppendCertsFromPEM(caPEM)
	pair, _ := tls.LoadX509KeyPair(filepath.Join(ca, "bed1-ecg.crt"), filepath.Join(ca, "bed1-ecg.key"))
	cfg := &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", Certificates: []tls.Certificate{pair}}
	codes := map[string]byte{}
	for _, p := range []string{wrong, wrong + "2", right} {
		c, err := tls.Dial("tcp", listen, cfg)
		if err != nil {
			t.Fatal(err)
		}
		c.Write(mqtt.Append(nil, &mqtt.Packet{Type: mqtt.CONNECT, Version: mqtt.V311, ClientID: []byte("bed1-ecg"), ConnectFlags: 0xc2,
			KeepAlive: 30, Username: []byte("bed1-ecg"), Password: []byte(p)}))
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 4)
		n, _ := c.Read(buf)
		if n == 4 {
			codes[p] = buf[3]
		}
		c.Close()
	}
	if codes[right] != 0 || codes[wrong] == 0 {
		t.Errorf("gateway CONNACK codes: right password %d, wrong %d (want 0 and a refusal)", codes[right], codes[wrong])
	}
	time.Sleep(300 * time.Millisecond) // the audit summary of the refusals
	o.add("gateway /metrics", get("/metrics"))
	o.add("gateway /healthz", get("/healthz"))
	o.add("gateway /bans", get("/bans"))
}

// liveRun runs the live simulator with a password against an in-process
// broker that accepts everyone.
func liveRun(t *testing.T, o *outputs, password string) {
	srv := mochi.New(&mochi.Options{Logger: slog.New(slog.DiscardHandler)})
	srv.AddHook(new(auth.AllowHook), nil)
	addr := freeAddr(t)
	if err := srv.AddListener(listeners.NewTCP(listeners.Config{ID: "t", Address: addr})); err != nil {
		t.Fatal(err)
	}
	go srv.Serve()
	defer srv.Close()
	waitListening(t, addr)
	if code := o.run([]string{"IOMTGUARD_MQTT_PASSWORD=" + password}, "simulate", "--broker", addr, "--duration", "10s", "--speed", "5",
		"--username", "ward"); code != 0 {
		t.Errorf("simulate --broker: exit %d", code)
	}
	o.run(nil, "simulate", "--broker", addr, "--duration", "10s", "--username", "ward", "--password", password)
}

func waitListening(t *testing.T, addr string) {
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing listens on %s", addr)
		}
	}
}
