package sim

import (
	"fmt"
	"io"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// GroundTruth is what a simulation contains: its attacks with their time
// intervals and sources, and a label for every frame.
type GroundTruth struct {
	Scenario  string
	Seed      uint64
	Start     time.Time
	Duration  time.Duration
	Attacks   []AttackTruth
	Frames    int
	Anonymous bool
	RetainPHI bool
	TLS       bool
	// Devices are the ward's benign devices: what each is, in the words
	// of iomtguard's inventory (iomtguard eval scores its guesses).
	Devices []DeviceTruth
	tags    []frameTag
}

// DeviceTruth is what a simulated device is.
type DeviceTruth struct {
	ClientID string `yaml:"client_id"`
	Address  string `yaml:"address"`
	Kind     string `yaml:"kind"`
	Role     string `yaml:"role"`
}

// truthKinds name each patient sensor's kind (by its topic) as the
// inventory does; the simulator's own names follow the dataset's tables.
var truthKinds = map[string]string{"ecg": "ECG monitor", "spo2": "pulse oximeter", "air": "airflow sensor",
	"bp": "blood pressure monitor", "pump": "infusion pump", "glu": "glucometer", "temp": "body temperature sensor",
	"emg": "EMG sensor", "gsr": "GSR sensor"}

// AttackTruth is one mounted attack.
type AttackTruth struct {
	Name    string
	Finding string
	About   string
	Start   time.Time
	End     time.Time
	Sources []string // the attackers' addresses
	// ClientIDs are devices of the ward the attack made its own (a
	// hijacked device: its address is its own, not an attacker's).
	ClientIDs []string
}

// FrameLabel returns the dataset's class and label for frame n (1-based):
// the device group and 0 for benign frames, "Attack" and 1 for attack frames.
func (g *GroundTruth) FrameLabel(n int) (class, label string) {
	if n < 1 || n > len(g.tags) {
		return "", ""
	}
	t := g.tags[n-1]
	if t.attack != "" {
		return "Attack", "1"
	}
	if t.class == "" {
		return "patientMonitoring", "0"
	}
	return t.class, "0"
}

// FrameAttack returns the attack frame n belongs to ("" for benign).
func (g *GroundTruth) FrameAttack(n int) string {
	if n < 1 || n > len(g.tags) {
		return ""
	}
	return g.tags[n-1].attack
}

// Must lists the finding IDs a correct analysis reports.
func (g *GroundTruth) Must() []string {
	if g.TLS {
		// The ward speaks TLS: what is left to see are the attacks.
		var must []string
		for _, a := range g.Attacks {
			must = append(must, a.Finding)
		}
		return must
	}
	must := []string{"posture.cleartext-mqtt"}
	if g.Anonymous {
		must = append(must, "posture.anonymous-access")
	} else {
		must = append(must, "posture.cleartext-credentials")
	}
	if g.RetainPHI {
		must = append(must, "posture.retained-sensitive", "posture.phi-in-payload")
	}
	for _, a := range g.Attacks {
		must = append(must, a.Finding)
	}
	return must
}

// MustNot lists the attack findings a correct analysis does not report.
func (g *GroundTruth) MustNot() []string {
	if len(g.Attacks) == 0 {
		if g.TLS {
			return []string{"attack.*", "posture.cleartext-mqtt", "posture.cleartext-credentials", "posture.anonymous-access",
				"posture.retained-sensitive", "posture.phi-in-payload"}
		}
		return []string{"attack.*"}
	}
	mounted := map[string]bool{}
	for _, a := range g.Attacks {
		mounted[a.Finding] = true
	}
	var out []string
	for _, a := range Attacks {
		// A device's behaviour changes with several attacks (a guessed
		// device's connections, a flooded topic): only attack findings are
		// excluded.
		if !mounted[a.Finding] && strings.HasPrefix(a.Finding, "attack.") {
			out = append(out, a.Finding)
		}
	}
	return out
}

// WriteYAML writes the ground truth in the form of ../shared/data/labels.yaml
// (captures -> must, must_not), plus the attacks and their frames, which
// iomtguard eval reads.
func (g *GroundTruth) WriteYAML(w io.Writer, captureName string) error {
	type attackYAML struct {
		Name      string   `yaml:"name"`
		Finding   string   `yaml:"finding"`
		About     string   `yaml:"about"`
		Start     string   `yaml:"start"`
		End       string   `yaml:"end"`
		Sources   []string `yaml:"sources"`
		ClientIDs []string `yaml:"client_ids,omitempty"`
		Frames    [][2]int `yaml:"frames,flow"`
	}
	type doc struct {
		Captures map[string]map[string][]string `yaml:"captures"`
		Attacks  []attackYAML                   `yaml:"attacks,omitempty"`
		Summary  map[string]any                 `yaml:"summary"`
		// Inventory is what each device is, per capture (eval scores the
		// inventory's kind and role guesses against it): last, as it is long.
		Inventory map[string][]DeviceTruth `yaml:"inventory,omitempty"`
	}
	d := doc{Captures: map[string]map[string][]string{captureName: {"must": g.Must(), "must_not": g.MustNot()}}}
	if len(g.Devices) > 0 {
		d.Inventory = map[string][]DeviceTruth{captureName: g.Devices}
	}
	attackFrames := 0
	for _, a := range g.Attacks {
		ay := attackYAML{Name: a.Name, Finding: a.Finding, About: a.About, Start: a.Start.Format(time.RFC3339Nano),
			End: a.End.Format(time.RFC3339Nano), Sources: a.Sources, ClientIDs: a.ClientIDs}
		lo := -1
		for i, t := range g.tags {
			if t.attack == a.Name {
				attackFrames++
				if lo < 0 {
					lo = i + 1
				}
				continue
			}
			if lo >= 0 {
				ay.Frames = append(ay.Frames, [2]int{lo, i})
				lo = -1
			}
		}
		if lo >= 0 {
			ay.Frames = append(ay.Frames, [2]int{lo, len(g.tags)})
		}
		d.Attacks = append(d.Attacks, ay)
	}
	d.Summary = map[string]any{"scenario": g.Scenario, "seed": g.Seed, "start": g.Start.Format(time.RFC3339),
		"duration": g.Duration.String(), "frames": g.Frames, "attack_frames": attackFrames,
		"anonymous": g.Anonymous, "retain_phi": g.RetainPHI, "tls": g.TLS}
	fmt.Fprintf(w, "# Ground truth of %s, written by iomtguard simulate (scenario %s, seed %d).\n", captureName, g.Scenario, g.Seed)
	fmt.Fprintf(w, "# captures: the findings a correct analysis reports (iomtguard eval reads this).\n")
	enc := yaml.NewEncoder(w)
	enc.SetIndent(2)
	if err := enc.Encode(d); err != nil {
		return err
	}
	return enc.Close()
}

// Describe is a one-line summary.
func (g *GroundTruth) Describe() string {
	var names []string
	for _, a := range g.Attacks {
		names = append(names, a.Name)
	}
	s := fmt.Sprintf("%s, %v, %d frames", g.Scenario, g.Duration, g.Frames)
	if len(names) > 0 {
		s += ", attacks: " + strings.Join(names, ", ")
	}
	return s
}
