package incident

import (
	"testing"
	"time"

	"github.com/iomtguard/iomtguard/internal/detect"
)

var t0 = time.Date(2026, 1, 5, 8, 0, 0, 0, time.UTC)

func bf(first, last time.Duration, refused int64, sev detect.Severity) detect.Finding {
	return detect.Finding{ID: "attack.bruteforce", Severity: sev, Title: "Password guessing", First: t0.Add(first), Last: t0.Add(last),
		Evidence: detect.Evidence{Counts: map[string]int64{"refused_connects": refused}}}
}

func kinds(evs []Event) string {
	s := ""
	for _, e := range evs {
		s += string(e.Kind) + " "
	}
	return s
}

// TestLifecycle: a finding reported every second is one incident: opened
// once, updated at most every UpdateEvery (at once when its severity
// rises), closed after CloseAfter of quiet; when the attack resumes, a new
// incident counts only its own refusals.
func TestLifecycle(t *testing.T) {
	tr := New(Options{CloseAfter: time.Minute, UpdateEvery: 30 * time.Second}, 0)
	var all []Event
	for s := 0; s <= 120; s++ {
		now := t0.Add(time.Duration(s) * time.Second)
		var fs []detect.Finding
		if s >= 10 && s <= 50 {
			fs = append(fs, bf(10*time.Second, time.Duration(s)*time.Second, int64(s-9), detect.High))
		} else if s > 50 {
			fs = append(fs, bf(10*time.Second, 50*time.Second, 41, detect.High)) // still reported, nothing new
		}
		all = append(all, tr.Observe(now, fs)...)
	}
	// s=40: update (30 s after the opening); s=70: the changes of 41-50, which waited; s=110: closed.
	if got := kinds(all); got != "open update update closed " {
		t.Fatalf("events %q", got)
	}
	if c := all[3].Incident; c.Count != 41 || !c.LastSeen.Equal(t0.Add(50*time.Second)) || c.Seq != 1 || c.Status != Closed {
		t.Errorf("closed incident %+v", c)
	}
	// It resumes: a second incident, counting from where the first stopped.
	evs := tr.Observe(t0.Add(200*time.Second), []detect.Finding{bf(10*time.Second, 200*time.Second, 45, detect.High)})
	if len(evs) != 1 || evs[0].Kind != Open || evs[0].Incident.Seq != 2 || evs[0].Incident.Count != 4 {
		t.Fatalf("resumed: %+v", evs)
	}
	// A rise in severity is reported at once.
	evs = tr.Observe(t0.Add(201*time.Second), []detect.Finding{bf(10*time.Second, 201*time.Second, 46, detect.Critical)})
	if len(evs) != 1 || evs[0].Kind != Update || evs[0].Incident.Severity != detect.Critical {
		t.Fatalf("severity rise: %+v", evs)
	}
}

// TestRestore: after a restart the detectors count from zero again; an
// open incident restored from the history goes on with its count, and a
// closed one does not reopen on the old evidence.
func TestRestore(t *testing.T) {
	tr := New(Options{}, 0)
	tr.Restore(Incident{Seq: 7, ID: "attack.bruteforce", Status: Open, Severity: detect.High, FirstSeen: t0, LastSeen: t0.Add(time.Minute), Count: 100})
	tr.Restore(Incident{Seq: 5, ID: "posture.cleartext-mqtt", Status: Closed, LastSeen: t0.Add(2 * time.Minute)})
	evs := tr.Observe(t0.Add(2*time.Minute), []detect.Finding{bf(90*time.Second, 2*time.Minute, 3, detect.High),
		{ID: "posture.cleartext-mqtt", Severity: detect.High, First: t0, Last: t0.Add(2 * time.Minute), Evidence: detect.Evidence{Counts: map[string]int64{"sessions": 9}}}})
	if len(evs) != 0 {
		t.Fatalf("events right after the restore: %+v", evs)
	}
	inc := tr.Incidents()
	if inc[0].Seq != 7 || inc[0].Count != 103 || !inc[0].FirstSeen.Equal(t0) {
		t.Errorf("restored open incident %+v", inc[0])
	}
	if tr.Last() != 7 {
		t.Errorf("last %d", tr.Last())
	}
	evs = tr.Observe(t0.Add(3*time.Minute), []detect.Finding{{ID: "posture.cleartext-mqtt", Severity: detect.High, First: t0, Last: t0.Add(3 * time.Minute),
		Evidence: detect.Evidence{Counts: map[string]int64{"sessions": 10}}}})
	if len(evs) != 1 || evs[0].Kind != Open || evs[0].Incident.Seq != 8 {
		t.Errorf("new activity after a closed one: %+v", evs)
	}
}
