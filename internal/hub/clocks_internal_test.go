package hub

import (
	"fmt"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/iomtguard/iomtguard/internal/detect"
	"github.com/iomtguard/iomtguard/internal/history"
	"github.com/iomtguard/iomtguard/internal/incident"
)

// minuteFacts is one minute of facts with clientID sending at broker.
func minuteFacts(m int64, clientID, src, broker string) *detect.Facts {
	from, to := m*60e9, m*60e9+59e9
	return &detect.Facts{From: from, To: to, Clients: []detect.ClientFact{{ClientID: clientID, Packets: 20,
		Sources: []string{src}, Brokers: []string{broker}, First: from, Last: to}}}
}

// TestSlowSensorKeepsOneIncident: the icu sensor's ten minutes arrive
// first, then ward4's, one minute at a time, the hub judging after each
// (as it does when a batch comes short). The clone is one incident, still
// open. Judged at the group's newest fact, the icu's last minute, the
// incident closed as quiet after ward4's second minute (its overlap then
// ended 8 minutes before) and opened again at each of ward4's minutes.
func TestSlowSensorKeepsOneIncident(t *testing.T) {
	db, err := history.Open(filepath.Join(t.TempDir(), "history.db"))
	if err != nil {
		t.Fatal(err)
	}
	h := &Hub{o: Options{Logger: slog.New(slog.DiscardHandler)}, db: db}
	defer db.Close()
	if err := h.restoreGroup(); err != nil {
		t.Fatal(err)
	}
	for m := int64(0); m < 10; m++ {
		h.addFacts("icu/s1", 1, m+1, minuteFacts(m, "icu-bed1-ecg", "10.0.1.5", "10.0.1.1"))
		h.evaluate()
	}
	for m := int64(0); m < 10; m++ {
		h.addFacts("ward4/s1", 1, m+1, minuteFacts(m, "icu-bed1-ecg", "10.0.4.9", "10.0.4.1"))
		h.evaluate()
	}
	if err := db.Sync(); err != nil {
		t.Fatal(err)
	}
	ins, err := db.Incidents(GroupSource, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	var clones []string
	open := false
	for _, in := range ins {
		if in.ID == "attack.cloned-identity" {
			clones = append(clones, fmt.Sprintf("#%d %s %s to %s", in.Seq, in.Status, in.FirstSeen.Format("15:04"), in.LastSeen.Format("15:04")))
			open = in.Status != incident.Closed
		}
	}
	if len(clones) != 1 || !open {
		t.Errorf("cloned-identity incidents %v, want one, open", clones)
	}
	if got := h.incidents.Load(); got != 1 {
		t.Errorf("%d group incidents opened, want 1", got)
	}
}

// TestJudgeAt: the judging time waits for the sensors heard from lately,
// and only for them.
func TestJudgeAt(t *testing.T) {
	t0 := time.Date(2026, 12, 3, 8, 0, 0, 0, time.UTC)
	min := func(m int64) int64 { return (29_000_000 + m) * 60e9 } // minutes of December 2025
	c := clocks{}
	if got := c.judgeAt(0, t0); got != 0 {
		t.Errorf("no facts: %d", got)
	}
	c.heard("icu/s1", min(10), t0)
	c.heard("ward4/s1", min(2), t0.Add(time.Second))
	if got := c.judgeAt(min(10), t0.Add(time.Second)); got != min(2) {
		t.Errorf("both active: judged at %d, want minute 2 (%d)", got, min(2))
	}
	// The icu's replay ended: past activeFor it no longer counts, and ward4
	// does while it sends.
	c.heard("ward4/s1", min(3), t0.Add(4*time.Minute))
	if got := c.judgeAt(min(10), t0.Add(4*time.Minute)); got != min(3) {
		t.Errorf("icu stopped: judged at %d, want minute 3 (%d)", got, min(3))
	}
	// Every sensor quiet: the group's newest.
	if got := c.judgeAt(min(10), t0.Add(time.Hour)); got != min(10) {
		t.Errorf("all quiet: judged at %d, want minute 10 (%d)", got, min(10))
	}
	// A sensor more than maxLag behind is not waited for.
	c.heard("old/s1", min(10)-maxLag-1, t0.Add(time.Hour))
	if got := c.judgeAt(min(10), t0.Add(time.Hour)); got != min(10) {
		t.Errorf("a sensor an hour behind held the judging time at %d ns", got)
	}
	// A newer fact never moves a sensor's clock back.
	c.heard("old/s1", min(0)-2*maxLag, t0.Add(time.Hour))
	if c["old/s1"].newest != min(10)-maxLag-1 {
		t.Errorf("a sensor's clock moved back to %d", c["old/s1"].newest)
	}
	// Bounded: the sensor heard from longest ago goes first; a day's
	// silence forgets one.
	big := clocks{}
	for i := 0; i <= maxClocks; i++ {
		big.heard(fmt.Sprintf("s/%d", i), min(1), t0.Add(time.Duration(i)*time.Millisecond))
	}
	if _, ok := big["s/0"]; len(big) != maxClocks || ok {
		t.Errorf("%d clocks kept (s/0 kept: %v), want %d without s/0", len(big), ok, maxClocks)
	}
	big.judgeAt(min(1), t0.Add(25*time.Hour))
	if len(big) != 0 {
		t.Errorf("%d clocks kept after a day's silence", len(big))
	}
}
