package history

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/iomtguard/iomtguard/internal/analysis"
	"github.com/iomtguard/iomtguard/internal/detect"
	"github.com/iomtguard/iomtguard/internal/incident"
	"github.com/iomtguard/iomtguard/internal/inventory"
)

func TestRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "h.db")
	h, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 1, 5, 8, 0, 0, 0, time.UTC)
	committed := 0
	in := incident.Incident{Seq: 3, ID: "attack.bruteforce", Severity: detect.High, Status: incident.Open, Title: "x", FirstSeen: t0, LastSeen: t0.Add(time.Minute), Count: 12}
	h.SaveIncident("", incident.Event{Kind: incident.Open, Incident: in}, func() { committed++ })
	in.Count, in.Status = 20, incident.Closed
	h.SaveIncident("", incident.Event{Kind: incident.Closed, Incident: in}, func() { committed++ })
	h.SaveDevice("", inventory.Device{Key: "bed1-ecg", Kind: "ECG monitor", FirstSeen: t0, LastSeen: t0}, nil)
	st := &analysis.State{Version: analysis.StateVersion, Origin: t0.UnixNano()}
	st.Summary.Frames = 42
	h.SaveMinute("", 1, t0.Unix()/60, st)
	h.SaveMinute("", 1, t0.Unix()/60, st) // saved again as it fills: replaced
	if err := h.Sync(); err != nil {
		t.Fatal(err)
	}
	if committed != 2 {
		t.Errorf("%d after-commit calls", committed)
	}
	h.Close()

	h, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	ins, err := h.Incidents("", time.Time{})
	if err != nil || len(ins) != 1 || ins[0].Count != 20 || ins[0].Status != incident.Closed || h.LastIncident() != 3 {
		t.Fatalf("incidents %+v %v", ins, err)
	}
	devs, _ := h.Devices("")
	if len(devs) != 1 || devs[0].Kind != "ECG monitor" {
		t.Fatalf("devices %+v", devs)
	}
	n := 0
	h.Minutes("", time.Time{}, func(run, minute int64, st *analysis.State) error {
		n++
		if st.Summary.Frames != 42 {
			t.Errorf("minute state %+v", st.Summary)
		}
		return nil
	})
	if n != 1 {
		t.Errorf("%d minutes", n)
	}
	h.Retain(t0.Add(time.Hour))
	h.Sync()
	if ins, _ := h.Incidents("", time.Time{}); len(ins) != 0 {
		t.Errorf("retention kept %d closed incidents", len(ins))
	}
}

// TestQueueBytesBound: minute States waiting for a slow disk are bounded
// in bytes: past MaxQueuedBytes a live run drops them (counted), a patient
// one (a replay) waits for room and loses nothing.
func TestQueueBytesBound(t *testing.T) {
	h, err := Open(filepath.Join(t.TempDir(), "h.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	st := &analysis.State{Version: analysis.StateVersion}
	h.queued.Store(MaxQueuedBytes) // the disk is behind by the whole budget
	h.SaveMinute("", 1, 1, st)
	if h.Dropped.Load() != 1 {
		t.Fatalf("over the budget: dropped %d, want 1", h.Dropped.Load())
	}
	h.Patient = true
	t0 := time.Now() // before the goroutine: it may run its whole sleep before this line would
	go func() { time.Sleep(100 * time.Millisecond); h.queued.Add(-MaxQueuedBytes) }()
	h.SaveMinute("", 1, 2, st)
	if h.Dropped.Load() != 1 || time.Since(t0) < 90*time.Millisecond {
		t.Fatalf("patient: dropped %d after %v; want it to wait for room", h.Dropped.Load(), time.Since(t0))
	}
	if err := h.Sync(); err != nil {
		t.Fatal(err)
	}
	if q := h.queued.Load(); q != 0 {
		t.Fatalf("%d bytes still counted as queued after every write", q)
	}
}
