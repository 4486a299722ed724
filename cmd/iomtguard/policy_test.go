package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/iomtguard/iomtguard/internal/pcaptest"
)

// TestPolicySuggestShared: on the shared real captures (MQTTset's benign
// capture, verimqtt's loopback capture) the suggested policy is small,
// reads back as analyze and the gateway read it, and refuses nothing of
// its own baseline; the benign policy names the brute-force capture's
// attacker as an unknown peer.
func TestPolicySuggestShared(t *testing.T) {
	dir := pcaptest.SharedDir(t)
	tmp := t.TempDir()
	for _, c := range []struct {
		capture  string
		maxLines int
	}{{"benign.pcap", 120}, {"verimqtt-loopback.pcapng", 60}} {
		in := filepath.Join(dir, "data", "captures", c.capture)
		out := filepath.Join(tmp, c.capture+".yaml")
		so, errs, code := runCLI(t, "policy", "suggest", in, "-o", out, "--review", "-q")
		if code != 0 {
			t.Fatalf("%s: exit %d\n%s\n%s", c.capture, code, so, errs)
		}
		if !strings.Contains(so, "refuses nothing") {
			t.Errorf("%s: review: %s", c.capture, so)
		}
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		if n := strings.Count(string(b), "\n"); n > c.maxLines {
			t.Errorf("%s: the policy has %d lines, want at most %d:\n%s", c.capture, n, c.maxLines, b)
		}
		if so, errs, code := runCLI(t, "policy", "check", out); code != 0 || !strings.Contains(so, "gateway: ready") {
			t.Errorf("%s: policy check: exit %d\n%s\n%s", c.capture, code, so, errs)
		}
	}
	// A baseline with an attack in it is said to be one.
	_, errs, code := runCLI(t, "policy", "suggest", filepath.Join(dir, "data", "captures", "bruteforce.pcapng"), "-o", filepath.Join(tmp, "bf.yaml"), "-q")
	if code != 0 || !strings.Contains(errs, "warning: the baseline holds an attack") || !strings.Contains(errs, "attack.bruteforce") {
		t.Errorf("suggest from the brute force: exit %d, stderr %s", code, errs)
	}
	pol := filepath.Join(tmp, "benign.pcap.yaml")
	bf := filepath.Join(dir, "data", "captures", "bruteforce.pcapng")
	so, _, code := runCLI(t, "policy", "check", pol, bf, "-q")
	if code != 1 || !strings.Contains(so, "client ") {
		t.Errorf("the brute force under the benign policy: exit %d\n%s", code, so)
	}
}

// TestPolicySuggestRefuses: nothing is learned from a capture without a
// device, nor with a headroom that is not a number.
func TestPolicySuggestRefuses(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty.pcap")
	// A pcap header and no frame.
	os.WriteFile(empty, []byte{0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 1, 0, 0, 0}, 0o644)
	if _, errs, code := runCLI(t, "policy", "suggest", empty, "-q"); code != 2 || !strings.Contains(errs, "nothing to learn") {
		t.Errorf("empty baseline: exit %d: %s", code, errs)
	}
	ward := filepath.Join(dir, "w.pcapng")
	if _, errs, code := runCLI(t, "simulate", "--duration", "1m", "-o", ward); code != 0 {
		t.Fatal(errs)
	}
	for _, h := range []string{"NaN", "0.5", "1e9"} {
		if _, errs, code := runCLI(t, "policy", "suggest", ward, "--headroom", h, "-q"); code != 2 || !strings.Contains(errs, "headroom") {
			t.Errorf("--headroom %s: exit %d: %s", h, code, errs)
		}
	}
}
