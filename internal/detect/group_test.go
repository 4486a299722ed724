package detect_test

import (
	"testing"

	"github.com/iomtguard/iomtguard/internal/detect"
)

const minute = int64(60e9)

func clientFacts(id, src string, from, to int64) *detect.Facts {
	return &detect.Facts{From: from, To: to, Clients: []detect.ClientFact{{ClientID: id, Packets: 10, Sources: []string{src}, Brokers: []string{"10.0.0.1:1883"}, First: from, Last: to}}}
}

func ids(fs []detect.Finding) map[string]bool {
	out := map[string]bool{}
	for _, f := range fs {
		out[f.ID] = true
	}
	return out
}

// TestGroupClone: the same identity alive at two sensors for minutes is a
// clone; a device moved from one ward to the next (one shared minute at
// most), or two devices with different IDs, is not.
func TestGroupClone(t *testing.T) {
	g := detect.NewGroup()
	g.Add("icu/s1", clientFacts("bed1-ecg", "10.5.126.110", 0, 4*minute))
	g.Add("ward4/s1", clientFacts("bed1-ecg", "10.5.126.200", 4*minute+1, 9*minute)) // moved: shares minute 4 only
	g.Add("ward4/s1", clientFacts("bed2-ecg", "10.5.126.111", 0, 9*minute))
	if f := ids(g.Findings()); f["attack.cloned-identity"] {
		t.Errorf("a device that moved wards was called a clone")
	}
	g.Add("icu/s1", clientFacts("bed1-ecg", "10.5.126.110", 5*minute, 9*minute)) // back, while the other still runs
	fs := g.Findings()
	if !ids(fs)["attack.cloned-identity"] {
		t.Fatalf("no clone: %+v", fs)
	}
	if fs[0].Evidence.ClientIDs[0] != "bed1-ecg" || fs[0].Severity != detect.Critical || fs[0].Controls.HIPAA == nil {
		t.Errorf("finding: %+v", fs[0])
	}
}

// TestGroupDistributedBruteforce: refusals at two sensors that add up to
// the threshold within the window are one attack; the same number at one
// sensor is the sensor's business (attack.bruteforce there), not the
// group's; refusals older than the window do not count.
func TestGroupDistributedBruteforce(t *testing.T) {
	auth := func(src string, n, at int64) *detect.Facts {
		return &detect.Facts{From: at, To: at, Auth: []detect.AuthFact{{Source: src, User: "bed1-pump", Refused: n, Distinct: n, First: at, Last: at}}}
	}
	g := detect.NewGroup()
	g.Add("icu/s1", auth("10.5.127.10", 12, minute))
	if ids(g.Findings())["attack.distributed-bruteforce"] {
		t.Error("one sensor's refusals made a cross-site finding")
	}
	g = detect.NewGroup()
	g.Add("icu/s1", auth("10.5.127.10", 5, minute))
	g.Add("ward4/s1", auth("10.5.127.10", 4, 2*minute))
	if ids(g.Findings())["attack.distributed-bruteforce"] {
		t.Error("9 refusals made an attack")
	}
	g.Add("ward4/s1", auth("10.5.127.10", 1, 3*minute))
	if !ids(g.Findings())["attack.distributed-bruteforce"] {
		t.Error("10 refusals at two sensors: no finding")
	}
	g = detect.NewGroup()
	g.Add("icu/s1", auth("10.5.127.10", 5, minute))
	g.Add("ward4/s1", auth("10.5.127.10", 5, 20*minute)) // the first is out of the 10-minute window
	if ids(g.Findings())["attack.distributed-bruteforce"] {
		t.Error("refusals 19 minutes apart counted together")
	}
}
