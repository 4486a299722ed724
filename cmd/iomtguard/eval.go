package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"

	"github.com/iomtguard/iomtguard/internal/analysis"
	"github.com/iomtguard/iomtguard/internal/detect"
	"github.com/iomtguard/iomtguard/internal/pipeline"
)

// labels is the form of ../shared/data/labels.yaml (and of the ground truth
// that iomtguard simulate writes).
type labels struct {
	Captures map[string]expect `yaml:"captures"`
}

type expect struct {
	Must    []string `yaml:"must"`
	MustAny []string `yaml:"must_any"`
	MustNot []string `yaml:"must_not"`
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
	labels string
	policy string
	json   bool
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
The exit status is 1 when a capture fails.`,
		Example: `  iomtguard eval --labels ../shared/data/labels.yaml
  iomtguard simulate --attack scan,syn-flood --labels truth.yaml -o attacked.pcapng && iomtguard eval --labels truth.yaml attacked.pcapng`,
		RunE: func(cmd *cobra.Command, args []string) error { return runEval(cmd, o, args, stdout, stderr) },
	}
	f := cmd.Flags()
	f.StringVar(&o.labels, "labels", "", "labels file (YAML; required)")
	f.StringVar(&o.policy, "policy", "", "policy file for the analysis")
	f.BoolVar(&o.json, "json", false, "print the scores as JSON")
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
	failed := 0
	for _, j := range jobs {
		cs := captureScore{Capture: filepath.Base(j.path), Findings: []string{}}
		var res *analysis.Result
		in, err := pipeline.OpenInput(j.path)
		if err == nil {
			res, err = analyzeInputs(cmd.Context(), []pipeline.Input{in}, analysis.Options{}, pol, nil)
			in.Close()
		}
		if err != nil {
			cs.Error = err.Error()
			scores = append(scores, cs)
			failed++
			continue
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
		if err := enc.Encode(map[string]any{"captures": scores, "ids": idList, "passed": len(scores) - failed, "failed": failed}); err != nil {
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
