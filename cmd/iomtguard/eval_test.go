package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/iomtguard/iomtguard/internal/demo"
	"github.com/iomtguard/iomtguard/internal/pcaptest"
)

// TestEvalShared: every shared capture is analysed as ../shared/data/labels.yaml says.
func TestEvalShared(t *testing.T) {
	dir := pcaptest.SharedDir(t)
	out, errs, code := runCLI(t, "eval", "--labels", filepath.Join(dir, "data", "labels.yaml"))
	if code != 0 {
		t.Fatalf("exit %d:\n%s\n%s", code, out, errs)
	}
	if !strings.Contains(out, "5 of 5 captures pass") {
		t.Errorf("%s", out)
	}
}

// TestEvalDemo: the built-in demo capture against its ground truth.
func TestEvalDemo(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, demo.Name), mustRead(t, demo.Open()), 0o644); err != nil {
		t.Fatal(err)
	}
	labels := filepath.Join(dir, "labels.yaml")
	os.WriteFile(labels, demo.Labels, 0o644)
	out, errs, code := runCLI(t, "eval", "--labels", labels)
	if code != 0 {
		t.Fatalf("exit %d:\n%s\n%s", code, out, errs)
	}
}

// TestEvalSimulatedAttacks: each attack the simulator mounts is found, and no
// other attack is reported (the ground truth's must and must_not).
func TestEvalSimulatedAttacks(t *testing.T) {
	if testing.Short() {
		t.Skip("simulates nine captures")
	}
	dir := t.TempDir()
	attacks := []string{"bruteforce", "client-id-takeover", "connect-flood", "malformed", "publish-flood", "scan", "slow-dos", "syn-flood", "wildcard-subscribe"}
	var files []string
	var labels strings.Builder
	labels.WriteString("captures:\n")
	for i, a := range attacks {
		f := filepath.Join(dir, a+".pcapng")
		truth := filepath.Join(dir, a+".yaml")
		args := []string{"simulate", "--duration", "4m", "--beds", "1", "--seed", string(rune('1' + i)), "--attack", a,
			"--attack-start", "90s", "--attack-duration", "30s", "--labels", truth, "-o", f}
		if i%2 == 1 {
			args = append(args, "--anonymous")
		}
		if _, errs, code := runCLI(t, args...); code != 0 {
			t.Fatalf("simulate %s: %s", a, errs)
		}
		b, _ := os.ReadFile(truth)
		// Keep the captures: section of each truth file, merged.
		s := string(b)
		s = s[strings.Index(s, "captures:\n")+len("captures:\n"):]
		if k := strings.Index(s, "\nattacks:"); k >= 0 {
			s = s[:k+1]
		}
		labels.WriteString(s)
		files = append(files, f)
	}
	// A ward that speaks TLS, benign and with a brute force on the cleartext port.
	for i, extra := range [][]string{nil, {"--attack", "bruteforce"}} {
		f := filepath.Join(dir, fmt.Sprintf("tls-%d.pcapng", i))
		truth := filepath.Join(dir, fmt.Sprintf("tls-%d.yaml", i))
		args := append([]string{"simulate", "--tls", "--duration", "3m", "--beds", "1", "--attack-start", "60s", "--attack-duration", "30s",
			"--labels", truth, "-o", f}, extra...)
		if _, errs, code := runCLI(t, args...); code != 0 {
			t.Fatalf("simulate --tls: %s", errs)
		}
		b, _ := os.ReadFile(truth)
		s := string(b)
		s = s[strings.Index(s, "captures:\n")+len("captures:\n"):]
		if k := strings.Index(s, "\nattacks:"); k >= 0 {
			s = s[:k+1]
		}
		if k := strings.Index(s, "\nsummary:"); k >= 0 {
			s = s[:k+1]
		}
		labels.WriteString(s)
		files = append(files, f)
	}
	lf := filepath.Join(dir, "labels.yaml")
	os.WriteFile(lf, []byte(labels.String()), 0o644)
	out, errs, code := runCLI(t, append([]string{"eval", "--labels", lf}, files...)...)
	if code != 0 {
		t.Fatalf("exit %d:\n%s\n%s", code, out, errs)
	}
	t.Log("\n" + out)
}

// TestEvalRealSoftware: captures of Mosquitto and its clients (made by
// scripts/real_captures.sh) against their labels.
func TestEvalRealSoftware(t *testing.T) {
	out, errs, code := runCLI(t, "eval", "--labels", "../../testdata/real/labels.yaml")
	if code != 0 {
		t.Fatalf("exit %d:\n%s\n%s", code, out, errs)
	}
}

// TestEvalInventory: simulate --labels writes what each device is; eval
// scores the inventory's guesses of kind and role against it (a ward of
// 5 beds: 58 devices; through TLS the roles cannot be seen, the kinds
// still can from the certificates' names).
func TestEvalInventory(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		name  string
		extra []string
		role  string
	}{{"clear", nil, "1.00"}, {"tls", []string{"--tls"}, "0.00"}} {
		capture, truth := filepath.Join(dir, c.name+".pcapng"), filepath.Join(dir, c.name+".yaml")
		args := append([]string{"simulate", "--beds", "5", "--duration", "5m", "--seed", "3", "-o", capture, "--labels", truth}, c.extra...)
		if _, errs, code := runCLI(t, args...); code != 0 {
			t.Fatalf("simulate: %s", errs)
		}
		out, errs, code := runCLI(t, "eval", "--labels", truth, capture)
		if code != 0 {
			t.Fatalf("eval: exit %d\n%s\n%s", code, out, errs)
		}
		var line string
		for _, l := range strings.Split(out, "\n") {
			if strings.HasPrefix(l, c.name+".pcapng") && strings.Contains(l, "(") {
				line = l
			}
		}
		f := strings.Fields(line)
		// capture, devices, listed, precision, (n, of, m), recall, role
		if len(f) < 9 || f[1] != "58" || f[2] != "58" || f[3] != "1.00" || f[7] != "1.00" || f[8] != c.role {
			t.Errorf("%s: inventory line %q\n%s", c.name, line, out)
		}
	}
}
