package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"

	"github.com/iomtguard/iomtguard/internal/analysis"
	"github.com/iomtguard/iomtguard/internal/baseline"
	"github.com/iomtguard/iomtguard/internal/detect"
	"github.com/iomtguard/iomtguard/internal/pipeline"
	"github.com/iomtguard/iomtguard/internal/sim"
)

// labels is the form of ../shared/data/labels.yaml (and of the ground truth
// that iomtguard simulate writes).
type labels struct {
	Captures map[string]expect `yaml:"captures"`
	// Inventory is what each device of a capture is (simulate --labels
	// writes it): eval scores the inventory's guesses of kind and role.
	Inventory map[string][]sim.DeviceTruth `yaml:"inventory"`
	// Attacks are when and from where the attacks of the file's capture
	// ran (simulate --labels writes them; a file of several captures puts
	// them under each capture instead): eval --baseline labels the scored
	// device minutes with them.
	Attacks []attackLabel `yaml:"attacks"`
}

// attackLabel is one attack's time and sources: addresses, or client IDs
// (where addresses do not tell devices apart, as on one host's loopback).
type attackLabel struct {
	Name      string    `yaml:"name"`
	Start     time.Time `yaml:"start"`
	End       time.Time `yaml:"end"`
	Sources   []string  `yaml:"sources"`
	ClientIDs []string  `yaml:"client_ids"`
}

// inventoryScore is how well the inventory named a capture's devices.
type inventoryScore struct {
	Capture string `json:"capture"`
	Devices int    `json:"devices"` // in the truth
	Found   int    `json:"found"`   // listed by the inventory (by client ID)
	// Guessed have a kind other than unknown; Correct, the truth's kind.
	Guessed       int      `json:"kind_guessed"`
	Correct       int      `json:"kind_correct"`
	KindPrecision *float64 `json:"kind_precision"`
	KindRecall    *float64 `json:"kind_recall"`
	RoleCorrect   int      `json:"role_correct"`
	Wrong         []string `json:"wrong,omitempty"` // "id: guessed kind (role), truth kind (role)"
}

// scoreInventory compares the inventory of res with the truth.
func scoreInventory(name string, truth []sim.DeviceTruth, res *analysis.Result) inventoryScore {
	s := inventoryScore{Capture: name, Devices: len(truth)}
	byID := map[string]int{}
	for i, d := range res.Inventory {
		// Through TLS a device is known by its certificate's name.
		for _, id := range []string{d.ClientID, d.Identity} {
			if id != "" {
				byID[id] = i
			}
		}
	}
	for _, t := range truth {
		i, ok := byID[t.ClientID]
		if !ok {
			s.Wrong = append(s.Wrong, t.ClientID+": not listed")
			continue
		}
		d := res.Inventory[i]
		s.Found++
		if d.Kind != "unknown" {
			s.Guessed++
		}
		if d.Kind == t.Kind && d.Kind != "unknown" {
			s.Correct++ // of those guessed: "unknown" is no guess, right or not
		}
		if d.Role == t.Role {
			s.RoleCorrect++
		}
		if d.Kind != t.Kind || d.Role != t.Role {
			s.Wrong = append(s.Wrong, fmt.Sprintf("%s: %s (%s), truth %s (%s)", t.ClientID, d.Kind, d.Role, t.Kind, t.Role))
		}
	}
	if s.Guessed > 0 {
		p := float64(s.Correct) / float64(s.Guessed)
		s.KindPrecision = &p
	}
	if s.Devices > 0 {
		r := float64(s.Correct) / float64(s.Devices)
		s.KindRecall = &r
	}
	return s
}

type expect struct {
	Must    []string      `yaml:"must"`
	MustAny []string      `yaml:"must_any"`
	MustNot []string      `yaml:"must_not"`
	Attacks []attackLabel `yaml:"attacks"`
}

// matchID reports whether a finding ID matches a label entry (a trailing *
// matches a prefix).
func matchID(pattern, id string) bool {
	if p, ok := strings.CutSuffix(pattern, "*"); ok {
		return strings.HasPrefix(id, p)
	}
	return pattern == id
}

type evalOptions struct {
	labels   string
	policy   string
	json     bool
	baseline string
}

func evalCmd(stdout, stderr io.Writer) *cobra.Command {
	var o evalOptions
	cmd := &cobra.Command{
		Use:   "eval --labels LABELS.yaml [flags] [CAPTURE...]",
		Short: "Score the findings on labelled captures: a per-capture table, precision and recall per finding ID",
		Long: `eval analyses each capture named in a labels file and scores its findings against the labels:

  captures:
    bruteforce.pcapng:
      must: [attack.bruteforce]          # every ID listed is reported
      must_any: [attack.scan, attack.syn-flood]   # at least one of them
      must_not: ["attack.*"]             # none of them (a trailing * matches a prefix)

Captures are matched to labels by file name. Without CAPTURE arguments, eval looks for each
labelled capture beside the labels file and in its captures/ directory. A capture passes when its
must and must_any hold, none of its must_not IDs is reported, and every attack it must report is
at severity high or above. The ground truth that 'iomtguard simulate --labels' writes is such a file.

Per finding ID: a true positive is a required ID reported, a false negative a required ID missed,
a false positive a forbidden ID reported; IDs neither required nor forbidden are not scored.
The exit status is 1 when a capture fails.

A labels file may also say what each device is (simulate --labels writes it):

  inventory:
    ward.pcapng:
      - {client_id: bed1-pump, address: 10.5.126.114, kind: infusion pump, role: sensor}

eval then scores the device inventory: devices listed, precision of the kind guessed (the
share right of those guessed, unknown aside), its recall (right of all), and role accuracy.`,
		Example: `  iomtguard eval --labels ../shared/data/labels.yaml
  iomtguard simulate --attack scan,syn-flood --labels truth.yaml -o attacked.pcapng && iomtguard eval --labels truth.yaml attacked.pcapng`,
		RunE: func(cmd *cobra.Command, args []string) error { return runEval(cmd, o, args, stdout, stderr) },
	}
	f := cmd.Flags()
	f.StringVar(&o.labels, "labels", "", "labels file (YAML; required)")
	f.StringVar(&o.policy, "policy", "", "policy file for the analysis")
	f.BoolVar(&o.json, "json", false, "print the scores as JSON")
	f.StringVar(&o.baseline, "baseline", "", "score devices against this learned baseline too, and rank the scores against the labels' attacks (ROC AUC, precision, recall and delay per attack; false alarms per device-day)")
	cmd.MarkFlagRequired("labels")
	return cmd
}

type captureScore struct {
	Capture    string   `json:"capture"`
	Pass       bool     `json:"pass"`
	Missing    []string `json:"missing,omitempty"`
	MissingAny []string `json:"missing_any,omitempty"`
	Forbidden  []string `json:"forbidden,omitempty"`
	TooLow     []string `json:"severity_too_low,omitempty"`
	Findings   []string `json:"findings"`
	Error      string   `json:"error,omitempty"`
}

type idScore struct {
	ID        string   `json:"id"`
	TP        int      `json:"tp"`
	FP        int      `json:"fp"`
	FN        int      `json:"fn"`
	Precision *float64 `json:"precision"`
	Recall    *float64 `json:"recall"`
}

func runEval(cmd *cobra.Command, o evalOptions, args []string, stdout, stderr io.Writer) error {
	b, err := os.ReadFile(o.labels)
	if err != nil {
		return usageError{err}
	}
	var lab labels
	if err := yaml.Unmarshal(b, &lab); err != nil {
		return usageError{fmt.Errorf("%s: %w", o.labels, err)}
	}
	if len(lab.Captures) == 0 {
		return usageError{fmt.Errorf("%s: no captures: section", o.labels)}
	}
	// Resolve the captures to analyse.
	type job struct {
		path string
		exp  expect
	}
	var jobs []job
	if len(args) > 0 {
		for _, a := range args {
			e, ok := lab.Captures[filepath.Base(a)]
			if !ok {
				return usageError{fmt.Errorf("%s: no labels for %s in %s", a, filepath.Base(a), o.labels)}
			}
			jobs = append(jobs, job{a, e})
		}
	} else {
		dir := filepath.Dir(o.labels)
		var names []string
		for n := range lab.Captures {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			path := ""
			for _, cand := range []string{filepath.Join(dir, n), filepath.Join(dir, "captures", n)} {
				if _, err := os.Stat(cand); err == nil {
					path = cand
					break
				}
			}
			if path == "" {
				return usageError{fmt.Errorf("%s: labelled capture %s not found beside it or in captures/", o.labels, n)}
			}
			jobs = append(jobs, job{path, lab.Captures[n]})
		}
	}

	var scores []captureScore
	var invScores []inventoryScore
	ids := map[string]*idScore{}
	score := func(id string) *idScore {
		if ids[id] == nil {
			ids[id] = &idScore{ID: id}
		}
		return ids[id]
	}
	pol, err := loadPolicy(o.policy)
	if err != nil {
		return err
	}
	bl, err := loadBaseline(o.baseline)
	if err != nil {
		return err
	}
	var windows []baseline.Labelled
	failed := 0
	for _, j := range jobs {
		attacks := j.exp.Attacks
		if attacks == nil && len(lab.Captures) == 1 {
			attacks = lab.Attacks
		}
		var do detect.Options
		if bl != nil {
			do = detect.Options{Baseline: bl, Scored: func(s baseline.Scored) {
				windows = append(windows, baseline.Labelled{Capture: j.path, Key: s.Key, Window: s.Window, Score: s.Score, Anomalous: s.Anomalous,
					Attack: attackOf(attacks, s.Window, s.Key, s.Peers), Unscored: s.Unscored})
			}}
		}
		cs := captureScore{Capture: filepath.Base(j.path), Findings: []string{}}
		var res *analysis.Result
		in, err := pipeline.OpenInput(j.path)
		if err == nil {
			res, err = analyzeInputs(cmd.Context(), []pipeline.Input{in}, analysis.Options{}, pol, do, nil)
			in.Close()
		}
		if err != nil {
			cs.Error = err.Error()
			scores = append(scores, cs)
			failed++
			continue
		}
		if truth, ok := lab.Inventory[filepath.Base(j.path)]; ok {
			invScores = append(invScores, scoreInventory(filepath.Base(j.path), truth, res))
		}
		found := map[string]detect.Severity{}
		for _, f := range res.Findings {
			found[f.ID] = f.Severity
			cs.Findings = append(cs.Findings, f.ID+" ("+string(f.Severity)+")")
		}
		for _, m := range j.exp.Must {
			sev, ok := found[m]
			if !ok {
				cs.Missing = append(cs.Missing, m)
				score(m).FN++
				continue
			}
			score(m).TP++
			if strings.HasPrefix(m, "attack.") && sev.Rank() < detect.High.Rank() {
				cs.TooLow = append(cs.TooLow, m+" ("+string(sev)+")")
			}
		}
		if len(j.exp.MustAny) > 0 {
			any := false
			for _, m := range j.exp.MustAny {
				if _, ok := found[m]; ok {
					any = true
					score(m).TP++
				}
			}
			if !any {
				cs.MissingAny = j.exp.MustAny
				for _, m := range j.exp.MustAny {
					score(m).FN++
				}
			}
		}
		for id := range found {
			for _, n := range j.exp.MustNot {
				if matchID(n, id) {
					cs.Forbidden = append(cs.Forbidden, id)
					score(id).FP++
					break
				}
			}
		}
		sort.Strings(cs.Forbidden)
		cs.Pass = len(cs.Missing) == 0 && len(cs.MissingAny) == 0 && len(cs.Forbidden) == 0 && len(cs.TooLow) == 0
		if !cs.Pass {
			failed++
		}
		scores = append(scores, cs)
	}
	var idList []idScore
	for _, s := range ids {
		if s.TP+s.FP > 0 {
			p := float64(s.TP) / float64(s.TP+s.FP)
			s.Precision = &p
		}
		if s.TP+s.FN > 0 {
			r := float64(s.TP) / float64(s.TP+s.FN)
			s.Recall = &r
		}
		idList = append(idList, *s)
	}
	sort.Slice(idList, func(i, j int) bool { return idList[i].ID < idList[j].ID })

	if o.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", " ")
		doc := map[string]any{"captures": scores, "ids": idList, "passed": len(scores) - failed, "failed": failed}
		if bl != nil {
			doc["baseline"] = rankingDoc(bl, windows)
		}
		if len(invScores) > 0 {
			doc["inventory"] = invScores
		}
		if err := enc.Encode(doc); err != nil {
			return err
		}
	} else {
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "CAPTURE\tRESULT\tPROBLEMS\tFINDINGS")
		for _, s := range scores {
			res := "pass"
			if !s.Pass {
				res = "FAIL"
			}
			var probs []string
			if s.Error != "" {
				probs = append(probs, "error: "+s.Error)
			}
			if len(s.Missing) > 0 {
				probs = append(probs, "missing "+strings.Join(s.Missing, ", "))
			}
			if len(s.MissingAny) > 0 {
				probs = append(probs, "none of "+strings.Join(s.MissingAny, ", "))
			}
			if len(s.Forbidden) > 0 {
				probs = append(probs, "forbidden "+strings.Join(s.Forbidden, ", "))
			}
			if len(s.TooLow) > 0 {
				probs = append(probs, "severity below high: "+strings.Join(s.TooLow, ", "))
			}
			if len(probs) == 0 {
				probs = []string{"-"}
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", s.Capture, res, strings.Join(probs, "; "), strings.Join(s.Findings, ", "))
		}
		tw.Flush()
		fmt.Fprintln(stdout)
		tw = tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "FINDING ID\tTP\tFP\tFN\tPRECISION\tRECALL")
		for _, s := range idList {
			fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s\t%s\n", s.ID, s.TP, s.FP, s.FN, ratio(s.Precision), ratio(s.Recall))
		}
		tw.Flush()
		if len(invScores) > 0 {
			fmt.Fprintln(stdout)
			tw = tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "INVENTORY\tDEVICES\tLISTED\tKIND PRECISION\tKIND RECALL\tROLE ACCURACY\tWRONG")
			for _, s := range invScores {
				role := "-"
				if s.Found > 0 {
					role = fmt.Sprintf("%.2f", float64(s.RoleCorrect)/float64(s.Found))
				}
				wrong := "-"
				if len(s.Wrong) > 0 {
					wrong = strings.Join(s.Wrong[:min(3, len(s.Wrong))], "; ")
					if len(s.Wrong) > 3 {
						wrong += fmt.Sprintf("; and %d more", len(s.Wrong)-3)
					}
				}
				fmt.Fprintf(tw, "%s\t%d\t%d\t%s (%d of %d)\t%s\t%s\t%s\n", s.Capture, s.Devices, s.Found, ratio(s.KindPrecision), s.Correct, s.Guessed,
					ratio(s.KindRecall), role, wrong)
			}
			tw.Flush()
		}
		if bl != nil {
			printRanking(stdout, bl, windows)
		}
		fmt.Fprintf(stdout, "\n%d of %d captures pass\n", len(scores)-failed, len(scores))
	}
	if failed > 0 {
		return silentError{1}
	}
	return nil
}

func ratio(p *float64) string {
	if p == nil {
		return "-"
	}
	return fmt.Sprintf("%.2f", *p)
}

// attackOf names the attack a device minute belongs to ("" if none): a
// minute of a device the attack made its own (its client IDs) while it
// runs or in the minute after (the device's next period is measured from
// the attack's last message); a minute that involves one of the attackers'
// addresses from the attack's start on (an attacker's sessions can outlive
// the attack: its address is never benign).
func attackOf(attacks []attackLabel, window int64, key string, peers []string) string {
	w0 := time.Unix(0, window*int64(baseline.Window))
	w1 := w0.Add(baseline.Window)
	for _, a := range attacks {
		if !w1.After(a.Start) {
			continue
		}
		if slices.Contains(a.ClientIDs, key) && w0.Before(a.End.Add(baseline.Window)) {
			return a.Name
		}
		for _, p := range peers {
			if slices.Contains(a.Sources, p) {
				return a.Name
			}
		}
	}
	return ""
}

type rankingJSON struct {
	ForestThreshold    float64            `json:"forest_threshold"`
	DeviationThreshold float64            `json:"deviation_threshold"`
	Windows            int                `json:"device_minutes"`
	Rankings           []baseline.Ranking `json:"attacks"`
	FalseAlarms        int                `json:"false_alarms"`
	BenignDays         float64            `json:"benign_device_days"`
	FalseAlarmsPer     float64            `json:"false_alarms_per_100_device_days"`
}

func rankingDoc(bl *baseline.Baseline, ws []baseline.Labelled) rankingJSON {
	fa, days := baseline.FalseAlarms(ws)
	scored := 0
	for _, w := range ws {
		if !w.Unscored {
			scored++
		}
	}
	d := rankingJSON{ForestThreshold: bl.ForestThreshold, DeviationThreshold: bl.DeviationThreshold, Windows: scored, Rankings: baseline.Rank(ws), FalseAlarms: fa, BenignDays: days}
	if days > 0 {
		d.FalseAlarmsPer = 100 * float64(fa) / days
	}
	if d.Rankings == nil {
		d.Rankings = []baseline.Ranking{}
	}
	return d
}

func printRanking(w io.Writer, bl *baseline.Baseline, ws []baseline.Labelled) {
	d := rankingDoc(bl, ws)
	fmt.Fprintf(w, "\nBASELINE: %d device minutes scored; thresholds: forest score %.3f, deviation %.1f σ\n", d.Windows, d.ForestThreshold, d.DeviationThreshold)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ATTACK\tMINUTES\tUNSCORED\tROC AUC\tDETECTED\tRECALL\tPRECISION\tDELAY")
	for _, r := range d.Rankings {
		if r.Positives == 0 {
			fmt.Fprintf(tw, "%s\t0\t%d\t-\t-\t-\t-\t-\n", r.Attack, r.Unscored)
			continue
		}
		delay := "never"
		if r.DelaySeconds != nil {
			delay = fmt.Sprintf("%.0f s", *r.DelaySeconds)
		}
		auc := "-"
		if r.AUC != nil {
			auc = fmt.Sprintf("%.3f", *r.AUC)
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%d\t%.2f\t%.2f\t%s\n", r.Attack, r.Positives, r.Unscored, auc, r.Detected, r.Recall, r.Precision, delay)
	}
	tw.Flush()
	fmt.Fprintf(w, "benign: %.1f device-days, %d false alarms (%.2f per 100 device-days)\n", d.BenignDays, d.FalseAlarms, d.FalseAlarmsPer)
}
