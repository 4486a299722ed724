package export_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/iomtguard/iomtguard/internal/export"
	"github.com/iomtguard/iomtguard/internal/pcaptest"
	"github.com/iomtguard/iomtguard/internal/pipeline"
)

// The fixtures in testdata/tshark were written by scripts/tshark_fixtures.sh
// from tshark 4.0.17 (testdata/tshark/VERSION).
const fixtures = "../../testdata/tshark"

type msgCounter struct {
	pipeline.Nop
	n map[int]int
}

func (c *msgCounter) OnMQTT(ev *pipeline.MQTT) { c.n[int(ev.Pkt.Type)]++ }

func runCounts(t *testing.T, path string) map[int]int {
	t.Helper()
	in, err := pipeline.OpenInput(path)
	if err != nil {
		t.Fatal(err)
	}
	c := &msgCounter{n: map[int]int{}}
	if _, err := pipeline.New(pipeline.Options{}, c).Run(context.Background(), in); err != nil {
		t.Fatal(err)
	}
	return c.n
}

func readCounts(t *testing.T, path string) map[int]int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[int]int{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if line == "" {
			continue
		}
		var typ, n int
		if _, err := fmt.Sscan(line, &typ, &n); err != nil {
			t.Fatalf("%s: %q: %v", path, line, err)
		}
		out[typ] = n
	}
	return out
}

func fmtCounts(m map[int]int) string {
	var keys []int
	for k := range m {
		keys = append(keys, k)
	}
	sort.Ints(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%d:%d ", k, m[k])
	}
	return b.String()
}

// exportICU returns the icu-csv export of path without its header and without
// the class and label columns, which tshark does not have.
func exportICU(t *testing.T, path string) []byte {
	t.Helper()
	in, err := pipeline.OpenInput(path)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	x := export.NewICUCSV(&buf, export.DialectTshark, "", "")
	x.Payloads = true
	x.RevealCredentials = true // as tshark writes them (masking: TestMasking)
	if _, err := pipeline.New(pipeline.Options{MaxPacketBuffer: 16 << 20}, x).Run(context.Background(), in); err != nil {
		t.Fatal(err)
	}
	if err := x.Close(); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	sc := bufio.NewScanner(&buf)
	sc.Buffer(nil, 1<<28)
	sc.Scan() // header
	for sc.Scan() {
		line := strings.TrimSuffix(sc.Text(), ",,")
		out.WriteString(line)
		out.WriteByte('\n')
	}
	return out.Bytes()
}

func scenario(name string) (pcaptest.Scenario, bool) {
	for _, sc := range pcaptest.Scenarios() {
		if sc.Name == name {
			return sc, true
		}
	}
	return pcaptest.Scenario{}, false
}

// TestTsharkScenarios compares MQTT packet counts by type and the whole
// icu-csv export of every built-in scenario with tshark's.
func TestTsharkScenarios(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(fixtures, "*.counts"))
	if len(files) == 0 {
		t.Fatal("no fixtures in testdata/tshark")
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".counts")
		t.Run(name, func(t *testing.T) {
			capPath, err := pcaptest.FindScenarioFile("../../testdata/captures", name)
			if err != nil {
				t.Fatal(err)
			}
			sc, _ := scenario(name)
			got, want := runCounts(t, capPath), readCounts(t, f)
			same := fmtCounts(got) == fmtCounts(want)
			switch {
			case sc.TsharkDiffers != "" && !same:
				t.Logf("known difference (%s): got %s, tshark %s", sc.TsharkDiffers, fmtCounts(got), fmtCounts(want))
			case !same:
				t.Errorf("MQTT packets by type: got %s, tshark %s", fmtCounts(got), fmtCounts(want))
			}
			wantCSV, err := os.ReadFile(filepath.Join(fixtures, name+".icu.csv"))
			if err != nil {
				t.Fatal(err)
			}
			gotCSV := exportICU(t, capPath)
			if !bytes.Equal(gotCSV, wantCSV) {
				if sc.TsharkDiffers != "" && sc.DiffFrames == nil {
					t.Logf("known difference in the export: %s", sc.TsharkDiffers)
					return
				}
				may := map[int]bool{}
				for _, n := range sc.DiffFrames {
					may[n] = true
				}
				gl, wl := strings.Split(string(gotCSV), "\n"), strings.Split(string(wantCSV), "\n")
				differ := 0
				for i := 0; i < len(gl) && i < len(wl); i++ {
					if gl[i] == wl[i] {
						continue
					}
					// The fixtures have no header row: row i+1 is frame i+1.
					if !may[i+1] {
						t.Fatalf("icu-csv row %d differs from tshark's:\n got  %s\n want %s", i+1, gl[i], wl[i])
					}
					differ++
				}
				if len(gl) != len(wl) {
					t.Fatalf("icu-csv: %d rows, tshark %d", len(gl), len(wl))
				}
				t.Logf("known difference in %d frames (%s)", differ, sc.TsharkDiffers)
			}
		})
	}
}

// TestTsharkShared checks the shared MQTTset and verimqtt captures: counts by
// type equal tshark's, and the icu-csv export is byte for byte tshark's.
func TestTsharkShared(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(fixtures, "shared", "*.counts"))
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".counts")
		t.Run(name, func(t *testing.T) {
			capPath := pcaptest.SharedCapture(t, name)
			got, want := runCounts(t, capPath), readCounts(t, f)
			if fmtCounts(got) != fmtCounts(want) {
				t.Errorf("MQTT packets by type: got %s, tshark %s", fmtCounts(got), fmtCounts(want))
			}
			sum, err := os.ReadFile(filepath.Join(fixtures, "shared", name+".icu.sha256"))
			if err != nil {
				t.Fatal(err)
			}
			h := sha256.Sum256(exportICU(t, capPath))
			if hex.EncodeToString(h[:]) != strings.TrimSpace(string(sum)) {
				t.Errorf("icu-csv export differs from tshark's (SHA-256 %x); compare with scripts/compare_icu.py", h)
			}
		})
	}
}

// TestRealWebSocketCounts: MQTT over WebSocket between real software
// (aedes and mochi-mqtt brokers, MQTT.js clients, permessage-deflate;
// scripts/websocket_capture.sh) decodes to exactly the packets the clients
// themselves counted sending and receiving (tshark 4.0 decodes none).
func TestRealWebSocketCounts(t *testing.T) {
	got := runCounts(t, "../../testdata/real/websocket-aedes.pcap")
	want := readCounts(t, "../../testdata/real/websocket-aedes.counts")
	if fmtCounts(got) != fmtCounts(want) {
		t.Errorf("MQTT packets by type: got %s, the clients' own counts %s", fmtCounts(got), fmtCounts(want))
	}
}
