package watch

import (
	"fmt"
	"time"

	"github.com/iomtguard/iomtguard/internal/analysis"
	"github.com/iomtguard/iomtguard/internal/detect"
	"github.com/iomtguard/iomtguard/internal/history"
	"github.com/iomtguard/iomtguard/internal/pipeline"
)

// Report is the analysis of what the history holds from since on: the
// minute States merged (the Result analyze gives for the same frames) and
// the incidents of the period as findings. since is measured back from the
// newest stored minute (0: everything), so that the history of a replayed
// capture reads as it would have live. source selects one sensor ("": all).
func Report(h *history.DB, source string, since time.Duration, opts analysis.Options) (*analysis.Result, error) {
	var newest int64
	if err := h.Minutes(source, time.Time{}, func(run, minute int64, st *analysis.State) error {
		newest = max(newest, st.Last)
		return nil
	}); err != nil {
		return nil, err
	}
	if newest == 0 {
		if source != "" {
			return nil, fmt.Errorf("the history holds no traffic of %s", source)
		}
		return nil, fmt.Errorf("the history holds no traffic yet")
	}
	from := time.Time{}
	if since > 0 {
		from = time.Unix(0, newest).Add(-since)
	}
	a := analysis.New(opts)
	n := 0
	runs := map[int64]bool{}
	damaged := h.Damaged.Load()
	err := h.Minutes(source, from, func(run, minute int64, st *analysis.State) error {
		if st.Summary.Frames == 0 || (!from.IsZero() && st.Last < from.UnixNano()) {
			return nil
		}
		a.Merge(st)
		n++
		runs[run] = true
		return nil
	})
	if err != nil {
		return nil, err
	}
	if n == 0 {
		return nil, fmt.Errorf("the history holds no traffic after %s", from.UTC().Format(time.RFC3339))
	}
	sum := a.OwnSummary()
	sum.Inputs = []pipeline.InputSummary{{Name: h.Path(), Format: "iomtguard history", Frames: sum.Frames}}
	if d := h.Damaged.Load() - damaged; d > 0 {
		sum.Warnings = append(sum.Warnings, fmt.Sprintf("%d stored minutes could not be read and are left out (the last: %s)", d, h.DamageNote()))
	}
	// Runs of one sensor are restarts; a hub's sensors each have their own.
	perSource := map[string]int{}
	runSource := map[int64]string{}
	if ivs, err := h.Intervals(); err == nil {
		for _, iv := range ivs {
			runSource[iv.Run] = iv.Source
		}
	}
	for run := range runs {
		perSource[runSource[run]]++
	}
	restarts := 0
	for _, n := range perSource {
		restarts += n - 1
	}
	if restarts > 0 {
		sum.Warnings = append(sum.Warnings, fmt.Sprintf("the period spans %d restarts of watch: relative times count from the first run, and flows open at a restart are counted where they closed", restarts))
	}
	if len(perSource) > 1 {
		sum.Warnings = append(sum.Warnings, fmt.Sprintf("merged from %d sensors: relative times count from the first frame of any", len(perSource)))
	}
	ins, err := h.Incidents(source, from)
	if err != nil {
		return nil, err
	}
	findings := func(detect.Models) []detect.Finding {
		var fs []detect.Finding
		for _, in := range ins {
			if !from.IsZero() && in.LastSeen.Before(from) {
				continue
			}
			title := in.Title
			if in.Source != "" {
				title = in.Source + ": " + title // a hub's: which sensor (or the group) saw it
			}
			if in.Status != "closed" {
				title += " (ongoing)"
			}
			fs = append(fs, detect.Finding{ID: in.ID, Severity: in.Severity, Title: title, Category: in.Category, First: in.FirstSeen,
				Last: in.LastSeen, Evidence: in.Evidence, Controls: in.Controls, Defence: in.Defence, Detector: in.Detector,
				Explanation: fmt.Sprintf("Incident %d: %s from %s to %s; count %d.", in.Seq, in.Status, in.FirstSeen.Format(time.RFC3339), in.LastSeen.Format(time.RFC3339), in.Count)})
		}
		return fs
	}
	return a.Result(sum, findings), nil
}
