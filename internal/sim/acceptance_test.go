package sim_test

import (
	"bytes"
	"context"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/iomtguard/iomtguard/internal/analysis"
	"github.com/iomtguard/iomtguard/internal/capture"
	"github.com/iomtguard/iomtguard/internal/pipeline"
	"github.com/iomtguard/iomtguard/internal/sim"
)

func generate(t *testing.T, o sim.Options) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := capture.NewPcapngWriter(&buf, capture.LinkSLL, "icu0")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sim.Generate(o, w); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestFigure1Shape: ten minutes of icu-patient have the shape of the seed's
// Figure 1 (the dataset's patientMonitoring.csv: the frames carrying MQTT):
// frame.len mean 79.31, tcp.len mean 11.31, tcp.time_delta median 2.0 s,
// each within 10 %, and tcp.srcport minimum 1883.
func TestFigure1Shape(t *testing.T) {
	b := generate(t, sim.Options{Scenario: "icu-patient", Duration: 10 * time.Minute, Seed: 1})
	in, err := pipeline.NewInput("patient.pcapng", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	an := analysis.New(analysis.Options{})
	sum, err := pipeline.New(pipeline.Options{}, an).Run(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	d := an.Result(sum, nil).DescribeMQTT
	for _, c := range []struct {
		name      string
		got, want float64
	}{
		{"frame.len mean", d["frame.len"].Mean, 79.31},
		{"tcp.len mean", d["tcp.len"].Mean, 11.31},
		{"tcp.time_delta median", d["tcp.time_delta"].Q50, 2.0},
	} {
		if math.Abs(c.got-c.want) > 0.1*c.want {
			t.Errorf("%s = %.3f, the dataset %.2f (more than 10 %% apart)", c.name, c.got, c.want)
		}
	}
	if d["tcp.srcport"].Min != 1883 {
		t.Errorf("tcp.srcport min %v, want 1883", d["tcp.srcport"].Min)
	}
}

// TestTsharkReadsSimulations: tshark finds no malformed frame and no TCP
// analysis error in simulated captures, except the malformed packets and
// resets the attacks are made of.
func TestTsharkReadsSimulations(t *testing.T) {
	tshark, err := exec.LookPath("tshark")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("tshark not installed")
		}
		t.Skip("tshark not installed (apt-get install tshark)")
	}
	dir := t.TempDir()
	for _, c := range []struct {
		name    string
		opts    sim.Options
		allowed []string // expert summaries the attack is made of
	}{
		{"benign", sim.Options{Duration: 3 * time.Minute}, nil},
		{"tls", sim.Options{Duration: 2 * time.Minute, TLS: true}, nil},
		{"sessions", sim.Options{Duration: 3 * time.Minute, Attacks: []string{"bruteforce", "connect-flood", "slow-dos", "client-id-takeover", "wildcard-subscribe"}}, nil},
		{"floods", sim.Options{Duration: 2 * time.Minute, AttackDuration: 10 * time.Second, Attacks: []string{"publish-flood", "syn-flood"}}, nil},
		{"scan", sim.Options{Duration: 2 * time.Minute, Attacks: []string{"scan"}}, []string{"Connection reset (RST)"}},
		{"malformed", sim.Options{Duration: 2 * time.Minute, Attacks: []string{"malformed"}}, []string{"Connection reset (RST)", "Malformed", "Length cannot be 0", "Unknown", "Reserved"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			c.opts.Seed = 5
			f := filepath.Join(dir, c.name+".pcapng")
			os.WriteFile(f, generate(t, c.opts), 0o644)
			out, err := exec.Command(tshark, "-r", f, "-q", "-z", "expert,warn").CombinedOutput()
			if err != nil {
				t.Fatalf("tshark: %v\n%s", err, out)
			}
			for _, line := range strings.Split(string(out), "\n") {
				fields := strings.Fields(line)
				if len(fields) < 4 || !strings.ContainsAny(fields[0], "0123456789") {
					continue
				}
				ok := false
				for _, a := range c.allowed {
					ok = ok || strings.Contains(line, a)
				}
				if !ok {
					t.Errorf("tshark: %s", strings.TrimSpace(line))
				}
			}
		})
	}
}
