package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/iomtguard/iomtguard/internal/pki"
)

// TestFlagBoundaries runs every command with each numeric flag at its
// boundaries (zero, negative, huge, not a number) where such a value means
// nothing: each must end with exit code 2 and a one-line error, never a
// panic, a silent default or a hang.
func TestFlagBoundaries(t *testing.T) {
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca")
	if _, err := pki.Init(ca, pki.Options{}); err != nil {
		t.Fatal(err)
	}
	pki.Issue(ca, "gateway", pki.Options{Server: true, Hosts: []string{"127.0.0.1"}})
	pol := filepath.Join(dir, "p.yaml")
	os.WriteFile(pol, []byte("devices:\n  x: {publish: [a]}\n"), 0o644)
	capf := "../../testdata/captures/retransmission.pcap"
	out := filepath.Join(dir, "out.pcapng")
	ints := []string{"0", "-1", "9999999999999", "x"}
	durs := []string{"0s", "-5m", "876000h", "x"}
	floats := []string{"0", "-1", "NaN", "1e309", "x"}
	cases := []struct {
		args   []string // "{}" is replaced by each value
		values []string
	}{
		{[]string{"analyze", "--no-report", "--json", os.DevNull, "--horizon", "{}", capf}, ints},
		{[]string{"analyze", "--no-report", "--json", os.DevNull, "--interval", "{}", capf}, durs},
		{[]string{"analyze", "--no-report", "--json", os.DevNull, "--anomaly-level", "{}", capf}, append(floats, "1", "2")},
		{[]string{"analyze", "--no-report", "--json", os.DevNull, "--robust-z", "{}", capf}, floats},
		{[]string{"forecast", "--horizon", "{}", capf}, ints},
		{[]string{"forecast", "--interval", "{}", capf}, durs},
		{[]string{"forecast", "--level", "{}", capf}, append(floats, "1")},
		{[]string{"forecast", "--max-pq", "{}", capf}, []string{"-1", "9999999999999", "x"}},
		{[]string{"forecast", "--anomaly-level", "{}", capf}, append(floats, "1")},
		{[]string{"forecast", "--robust-z", "{}", capf}, floats},
		{[]string{"simulate", "-o", out, "--beds", "{}"}, ints},
		{[]string{"simulate", "-o", out, "--duration", "{}"}, durs},
		{[]string{"simulate", "-o", out, "--attack", "scan", "--attack-start", "{}"}, []string{"-5m", "876000h", "x"}},
		{[]string{"simulate", "-o", out, "--attack", "scan", "--attack-duration", "{}"}, []string{"-5m", "876000h", "x"}},
		{[]string{"simulate", "--broker", "127.0.0.1:1", "--speed", "{}"}, floats},
		{[]string{"simulate", "--broker", "127.0.0.1:1", "--beds", "{}"}, ints},
		{[]string{"simulate", "--broker", "127.0.0.1:1", "--duration", "{}"}, durs},
		{[]string{"pki", "init", "--dir", filepath.Join(dir, "ca2"), "--days", "{}"}, ints},
		{[]string{"pki", "issue", "--dir", ca, "--name", "dev", "--days", "{}"}, ints},
		{[]string{"open", "--key", filepath.Join(dir, "none.key"), "--topic", "t", "--max-age", "{}"}, []string{"x"}}, // negative: no limit
		{[]string{"gateway", "--pki", ca, "--policy", pol, "--listen", "127.0.0.1:0", "--metrics", "off", "--state", "none", "--audit-keep", "{}"}, ints},
		{[]string{"gateway", "--pki", ca, "--policy", pol, "--listen", "127.0.0.1:0", "--metrics", "off", "--state", "none", "--audit-max-size", "{}"}, []string{"0", "x"}},
		{[]string{"gateway", "--pki", ca, "--policy", pol, "--listen", "127.0.0.1:0", "--metrics", "off", "--state", "none", "--watch-interval", "{}"}, durs},
		{[]string{"gateway", "bans", "--admin", "127.0.0.1:1", "--add", "identity:x", "--for", "{}"}, []string{"0s", "-5m", "x"}},
		{[]string{"analyze", "--inventory", "{}"}, []string{"devices.txt", "devices"}},
		{[]string{"inventory", "diff", "{}", "flags_test.go"}, []string{"missing.json", "flags_test.go", "root.go"}},
	}
	for _, c := range cases {
		for _, v := range c.values {
			args := make([]string, len(c.args))
			for i, a := range c.args {
				args[i] = strings.ReplaceAll(a, "{}", v)
			}
			name := strings.Join(args[:2], " ") + " " + v
			t.Run(name, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				var o, e bytes.Buffer
				err := runIO(ctx, args, strings.NewReader(""), &o, &e)
				if err == nil {
					t.Fatalf("%v: accepted", args)
				}
				if code := exitCode(err); code != 2 {
					t.Errorf("%v: exit %d, want 2: %v", args, code, err)
				}
				msg := err.Error()
				if msg == "" || strings.Contains(strings.TrimSpace(msg), "\n") {
					t.Errorf("%v: error is not one line: %q", args, msg)
				}
			})
		}
	}
}
