package main

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/iomtguard/iomtguard/internal/analysis"
	"github.com/iomtguard/iomtguard/internal/detect"
	"github.com/iomtguard/iomtguard/internal/pipeline"
	"github.com/iomtguard/iomtguard/internal/policy"
	"github.com/iomtguard/iomtguard/internal/report"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// TestGolden keeps analysis.json and report.html of two committed captures
// under review: any change to what the analysis says or how the report
// shows it changes a golden file (go test ./cmd/iomtguard -run Golden
// -update rewrites them). The clock is fixed, so the files are
// reproducible.
func TestGolden(t *testing.T) {
	clock := func() time.Time { return time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC) }
	for _, name := range []string{"mosquitto-attacks.pcap", "mosquitto-ward.pcap"} {
		t.Run(name, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("../../testdata/real", name))
			if err != nil {
				t.Fatal(err)
			}
			in, err := pipeline.NewInput(name, bytes.NewReader(b))
			if err != nil {
				t.Fatal(err)
			}
			res, err := analyzeInputs(context.Background(), []pipeline.Input{in}, analysis.Options{Now: clock}, &policy.Policy{}, detect.Options{}, nil)
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			if err := report.Write(dir, res); err != nil {
				t.Fatal(err)
			}
			base := strings.TrimSuffix(name, ".pcap")
			for _, f := range []struct{ got, golden string }{{report.JSONFile, base + ".analysis.json"}, {report.HTMLFile, base + ".report.html"}} {
				got, _ := os.ReadFile(filepath.Join(dir, f.got))
				path := filepath.Join("../../testdata/golden", f.golden)
				if *update {
					os.MkdirAll(filepath.Dir(path), 0o755)
					if err := os.WriteFile(path, got, 0o644); err != nil {
						t.Fatal(err)
					}
					continue
				}
				want, err := os.ReadFile(path)
				if err != nil {
					t.Fatalf("%v (run: go test ./cmd/iomtguard -run Golden -update)", err)
				}
				if !bytes.Equal(got, want) {
					gl, wl := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
					for i := 0; i < len(gl) && i < len(wl); i++ {
						if gl[i] != wl[i] {
							t.Fatalf("%s differs from %s at line %d:\n got  %.300s\n want %.300s\n(if the change is intended: go test ./cmd/iomtguard -run Golden -update)", f.got, path, i+1, gl[i], wl[i])
						}
					}
					t.Fatalf("%s: %d lines, golden %d", f.got, len(gl), len(wl))
				}
			}
		})
	}
}
