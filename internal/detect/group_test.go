package detect_test

import (
	"fmt"
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

// TestGroupOneCredentialRetried: a device retrying one wrong password at two
// wards, interval after interval, is not a guessing attack: each sensor's
// distinct credentials count once, not once per interval.
func TestGroupOneCredentialRetried(t *testing.T) {
	g := detect.NewGroup()
	for i := int64(1); i <= 6; i++ {
		for _, s := range []string{"icu/s1", "ward4/s1"} {
			g.Add(s, &detect.Facts{From: i * minute, To: i * minute, Auth: []detect.AuthFact{{Source: "10.5.126.7", User: "bed1-pump", Refused: 2, Distinct: 1, First: i * minute, Last: i * minute}}})
		}
	}
	if ids(g.Findings())["attack.distributed-bruteforce"] {
		t.Error("one credential retried at two wards called a guessing attack")
	}
}

// TestGroupOneSensorCannotFillTables: a sensor sending ever new client IDs
// is held to its share; another sensor's clone is still found.
func TestGroupOneSensorCannotFillTables(t *testing.T) {
	g := detect.NewGroup()
	for i := 0; i < 30; i++ {
		f := &detect.Facts{From: 0, To: 9 * minute}
		for k := 0; k < 1000; k++ {
			f.Clients = append(f.Clients, detect.ClientFact{ClientID: fmt.Sprintf("junk-%d-%d", i, k), Packets: 1, First: 0, Last: 9 * minute})
		}
		g.Add("rogue/s1", f)
	}
	if g.Dropped < 10000 {
		t.Errorf("dropped %d of 30,000 junk identities", g.Dropped)
	}
	g.Add("icu/s1", clientFacts("bed1-ecg", "10.5.126.110", 0, 9*minute))
	g.Add("ward4/s1", clientFacts("bed1-ecg", "10.5.126.200", 0, 9*minute))
	if !ids(g.Findings())["attack.cloned-identity"] {
		t.Error("a clone went unseen behind the junk")
	}
}
