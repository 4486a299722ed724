// Package detect turns decoded traffic into findings a security engineer can
// act on: attacks (brute force, floods, slow DoS, fuzzing, scans, wildcard
// snooping, client ID takeover), posture weaknesses (cleartext MQTT and
// credentials, anonymous access, retained or cleartext patient data, unknown
// peers, broken segmentation, weak TLS, legacy MQTT) and traffic anomalies.
//
// Detectors are pipeline consumers registered in one ordered list
// (Registry); each has a name, a documented rule and thresholds that a
// policy file can tune. Every finding carries a stable ID, a severity,
// evidence (never a password), the controls it maps to (HIPAA 45 CFR
// 164.312, IEC 62443-3-3, FDA premarket cybersecurity) and the defence
// that fixes it.
package detect

import (
	"sort"
	"time"
)

// Severity of a finding.
type Severity string

const (
	Info     Severity = "info"
	Low      Severity = "low"
	Medium   Severity = "medium"
	High     Severity = "high"
	Critical Severity = "critical"
)

// Rank orders severities (critical highest).
func (s Severity) Rank() int {
	switch s {
	case Critical:
		return 4
	case High:
		return 3
	case Medium:
		return 2
	case Low:
		return 1
	}
	return 0
}

// Finding is one thing an analysis found.
type Finding struct {
	ID          string    `json:"id"`
	Severity    Severity  `json:"severity"`
	Title       string    `json:"title"`
	Explanation string    `json:"explanation"`
	Category    string    `json:"category"` // attack, posture, behaviour
	First       time.Time `json:"first"`
	Last        time.Time `json:"last"`
	Evidence    Evidence  `json:"evidence"`
	Controls    Controls  `json:"controls"`
	Defence     Defence   `json:"defence"`
	Detector    string    `json:"detector"`
}

// Evidence backs a finding. It never holds a password or a clinical payload.
type Evidence struct {
	Counts    map[string]int64 `json:"counts,omitempty"`
	Sources   []string         `json:"sources,omitempty"`
	Targets   []string         `json:"targets,omitempty"`
	ClientIDs []string         `json:"client_ids,omitempty"`
	Usernames []string         `json:"usernames,omitempty"`
	Topics    []string         `json:"topics,omitempty"`
	Frames    []int            `json:"example_frames,omitempty"`
	Notes     []string         `json:"notes,omitempty"`
}

// Controls are the requirements a finding maps to.
type Controls struct {
	HIPAA    []string `json:"hipaa"`    // 45 CFR 164.312 paragraphs
	IEC62443 []string `json:"iec62443"` // IEC 62443-3-3 foundational requirements
	FDA      []string `json:"fda"`      // FDA premarket cybersecurity control categories
}

// Defence is what to change.
type Defence struct {
	Framework string `json:"framework"` // the seed's framework part: encryption, certificate authentication, segmentation, monitoring
	Change    string `json:"change"`
	Gateway   string `json:"gateway_policy,omitempty"` // iomtguard gateway policy (YAML)
	Mosquitto string `json:"mosquitto,omitempty"`      // mosquitto.conf / ACL lines
}

// Sort orders findings: severity (highest first), then category, then ID.
func Sort(fs []Finding) {
	cat := map[string]int{"attack": 0, "posture": 1, "behaviour": 2}
	sort.SliceStable(fs, func(i, j int) bool {
		if a, b := fs[i].Severity.Rank(), fs[j].Severity.Rank(); a != b {
			return a > b
		}
		if a, b := cat[fs[i].Category], cat[fs[j].Category]; a != b {
			return a < b
		}
		return fs[i].ID < fs[j].ID
	})
}
