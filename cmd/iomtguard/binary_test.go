package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/iomtguard/iomtguard/internal/pki"
)

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// binary builds the iomtguard command once for the tests that run it as
// a process (signals, exit codes, the README's examples).
func binary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "iomtguard-bin-")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "iomtguard")
		cmd := exec.Command("go", "build", "-o", binPath, ".")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestGatewaySignals runs the gateway as a process: SIGHUP reloads the
// policy (with the file watch off), and SIGTERM ends it within seconds
// although a TLS client that never sends CONNECT and a subscriber that
// never reads are connected.
func TestGatewaySignals(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := binary(t)
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca")
	pki.Init(ca, pki.Options{})
	pki.Issue(ca, "gateway", pki.Options{Server: true, Hosts: []string{"127.0.0.1"}})
	pki.Issue(ca, "bed1-ecg", pki.Options{})
	pol := filepath.Join(dir, "ward.yaml")
	os.WriteFile(pol, []byte("devices:\n  bed1-ecg: {publish: [\"icu/bed1/ecg\"]}\n"), 0o644)
	listen, metrics := freeAddr(t), freeAddr(t)
	audit := filepath.Join(dir, "audit.jsonl")
	cmd := exec.Command(bin, "gateway", "--pki", ca, "--policy", pol, "--listen", listen, "--metrics", metrics,
		"--audit", audit, "--state", filepath.Join(dir, "state"), "--watch-interval", "1h")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	health := func() map[string]any {
		resp, err := http.Get("http://" + metrics + "/healthz")
		if err != nil {
			return nil
		}
		defer resp.Body.Close()
		var m map[string]any
		json.NewDecoder(resp.Body).Decode(&m)
		return m
	}
	for deadline := time.Now().Add(10 * time.Second); health() == nil; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the gateway did not start:\n%s", stderr.String())
		}
	}
	loaded := func() string {
		cfg, _ := health()["config"].(map[string]any)
		p, _ := cfg["policy"].(map[string]any)
		s, _ := p["loaded"].(string)
		return s
	}
	before := loaded()
	time.Sleep(20 * time.Millisecond)
	os.WriteFile(pol, []byte("devices:\n  bed1-ecg: {publish: [\"icu/bed1/ecg\", \"icu/bed1/status\"]}\n"), 0o644)
	cmd.Process.Signal(syscall.SIGHUP)
	for deadline := time.Now().Add(5 * time.Second); loaded() == before; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("SIGHUP did not reload the policy:\n%s", stderr.String())
		}
	}

	// Clients that would hold a naive shutdown: one that never sends
	// CONNECT, one that subscribes and never reads.
	pool := x509.NewCertPool()
	b, _ := os.ReadFile(filepath.Join(ca, "ca.crt"))
	pool.AppendCertsFromPEM(b)
	pair, _ := tls.LoadX509KeyPair(filepath.Join(ca, "bed1-ecg.crt"), filepath.Join(ca, "bed1-ecg.key"))
	cfg := &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", Certificates: []tls.Certificate{pair}}
	silent, err := tls.Dial("tcp", listen, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	raw, err := net.Dial("tcp", listen)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	t0 := time.Now()
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("exit after SIGTERM: %v\n%s", err, stderr.String())
		}
		t.Logf("SIGTERM to exit: %s", time.Since(t0).Round(time.Millisecond))
	case <-time.After(8 * time.Second):
		t.Fatalf("the gateway did not stop within 8 s of SIGTERM:\n%s", stderr.String())
	}
	log, _ := os.ReadFile(audit)
	if !strings.Contains(string(log), `"action":"reload"`) || !strings.Contains(string(log), `"action":"stop"`) {
		t.Errorf("audit log lacks the reload or the stop:\n%s", log)
	}
}

// TestExitMessages: a command that fails prints one line naming why, and
// one whose report already said why (a failing eval) prints no empty
// "iomtguard: " line after it.
func TestExitMessages(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := binary(t)
	dir := t.TempDir()
	labels := filepath.Join(dir, "labels.yaml")
	os.WriteFile(labels, []byte("captures:\n  mqtt5.pcap:\n    must: [attack.bruteforce]\n"), 0o644)
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"eval", "--labels", labels, "../../testdata/captures/mqtt5.pcap"}, 1, "0 of 1 captures pass"},
		{[]string{"forecast", "--series", labels}, 2, "iomtguard: "},
		{[]string{"analyze", "--interval", "-1s"}, 2, "iomtguard: --interval"},
	} {
		cmd := exec.Command(bin, c.args...)
		out, _ := cmd.CombinedOutput()
		if cmd.ProcessState.ExitCode() != c.code || !strings.Contains(string(out), c.want) {
			t.Errorf("%v: exit %d, want %d with %q:\n%s", c.args, cmd.ProcessState.ExitCode(), c.code, c.want, out)
		}
		for _, l := range strings.Split(string(out), "\n") {
			if strings.TrimSpace(l) == "iomtguard:" {
				t.Errorf("%v prints an empty error line:\n%s", c.args, out)
			}
		}
	}
}

// TestAnalyzeTooManyFiles gives analyze more files than the process may
// open (every input given is open until it ends): the error names the
// limit and what to do, not only the system's "too many open files".
func TestAnalyzeTooManyFiles(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("needs bash for ulimit")
	}
	bin := binary(t)
	src, err := os.ReadFile("../../testdata/captures/mqtt5.pcap")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var files []string
	for i := range 80 {
		p := filepath.Join(dir, fmt.Sprintf("ring-%02d.pcap", i))
		os.WriteFile(p, src, 0o644)
		files = append(files, p)
	}
	args := append([]string{"-c", `ulimit -n 40 && exec "$0" analyze -q --no-report --json /dev/null "$@"`, bin}, files...)
	cmd := exec.Command("bash", args...)
	out, _ := cmd.CombinedOutput()
	if code := cmd.ProcessState.ExitCode(); code != 2 || !strings.Contains(string(out), "80 files given at once, past this process's limit of open files (ulimit -n)") {
		t.Errorf("exit %d:\n%s", code, out)
	}
}
