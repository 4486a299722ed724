package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/iomtguard/iomtguard/internal/analysis"
	"github.com/iomtguard/iomtguard/internal/demo"
	"github.com/iomtguard/iomtguard/internal/history"
)

// TestWatchKill9: watch is killed with SIGKILL in the middle of a replay;
// every incident it had announced (on its alert output) is in the history,
// and a restart on the same history goes on with them: incident numbers
// continue, and the restored incidents are on the dashboard from the start.
func TestWatchKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("runs watch as a process")
	}
	bin := binary(t)
	dir := t.TempDir()
	capPath := filepath.Join(dir, "demo.pcapng.gz")
	b, _ := io.ReadAll(demo.Open())
	os.WriteFile(capPath, b, 0o644)
	db, alerts := filepath.Join(dir, "ward.db"), filepath.Join(dir, "alerts.jsonl")
	// The demo's ten minutes at 40 times: 15 s; killed after 8.
	w := exec.Command(bin, "watch", "--replay", capPath, "--speed", "40", "--db", db, "--alerts", alerts, "--http", "off", "-q")
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(8 * time.Second)
	w.Process.Signal(syscall.SIGKILL)
	w.Wait()
	announced := map[int64]string{}
	f, _ := os.Open(alerts)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var a struct {
			Kind     string `json:"kind"`
			Incident int64  `json:"incident"`
			ID       string `json:"id"`
		}
		if json.Unmarshal(sc.Bytes(), &a) == nil && a.Kind == "incident" {
			announced[a.Incident] = a.ID
		}
	}
	f.Close()
	if len(announced) < 2 {
		t.Fatalf("only %d incidents announced before the kill: the test proves little", len(announced))
	}
	h, err := history.Open(db)
	if err != nil {
		t.Fatal(err)
	}
	stored, err := h.Incidents("", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	have := map[int64]string{}
	for _, in := range stored {
		have[in.Seq] = in.ID
	}
	for seq, id := range announced {
		if have[seq] != id {
			t.Errorf("incident %d (%s) was announced but is not in the history after kill -9", seq, id)
		}
	}
	last := h.LastIncident()
	minutes := 0
	h.Minutes("", time.Time{}, func(int64, int64, *analysis.State) error { minutes++; return nil })
	h.Close()
	t.Logf("after kill -9: %d incidents announced, %d stored, %d minutes of analysis stored", len(announced), len(stored), minutes)

	// Restart on the same history: the incidents are there from the start,
	// and new ones are numbered after them.
	alerts2 := filepath.Join(dir, "alerts2.jsonl")
	w = exec.Command(bin, "watch", "--replay", capPath, "--speed", "max", "--db", db, "--alerts", alerts2, "--http", "off", "-q")
	if out, err := w.CombinedOutput(); err != nil {
		t.Fatalf("restart: %v\n%s", err, out)
	}
	h, _ = history.Open(db)
	defer h.Close()
	after, _ := h.Incidents("", time.Time{})
	if h.LastIncident() < last || len(after) < len(stored) {
		t.Errorf("after the restart: last incident %d (was %d), %d stored (was %d)", h.LastIncident(), last, len(after), len(stored))
	}
	b2, _ := os.ReadFile(alerts2)
	sc = bufio.NewScanner(bytes.NewReader(b2))
	for sc.Scan() {
		var a struct {
			Kind, Status string
			Incident     int64
		}
		json.Unmarshal(sc.Bytes(), &a)
		if a.Kind == "incident" && a.Status == "open" && a.Incident <= last {
			t.Errorf("the restart opened incident %d again (numbers must continue after %d)", a.Incident, last)
		}
	}
}
