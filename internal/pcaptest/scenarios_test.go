package pcaptest

import (
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/iomtguard/iomtguard/internal/capture"
)

var update = flag.Bool("update", false, "rewrite testdata/captures from the scenarios")

// TestScenarioFiles keeps testdata/captures in step with Scenarios: with
// -update it writes every scenario's capture; without, it checks that each
// scenario has its file. (Captures with TLS are not byte-reproducible, so the
// files are generated once and committed.)
func TestScenarioFiles(t *testing.T) {
	dir := filepath.Join("..", "..", "testdata", "captures")
	for _, sc := range Scenarios() {
		t.Run(sc.Name, func(t *testing.T) {
			if *update {
				b := sc.Build()
				if err := os.WriteFile(filepath.Join(dir, ScenarioFile(sc.Name, b)), b, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			if _, err := FindScenarioFile(dir, sc.Name); err != nil {
				t.Fatalf("%v (run: go test ./internal/pcaptest -run TestScenarioFiles -update)", err)
			}
		})
	}
}

// TestScenariosDecode checks that every scenario builds a capture the reader accepts.
func TestScenariosDecode(t *testing.T) {
	for _, sc := range Scenarios() {
		b := sc.Build()
		if capture.Sniff(b) == capture.KindUnknown {
			t.Errorf("%s: not a capture", sc.Name)
		}
	}
}
