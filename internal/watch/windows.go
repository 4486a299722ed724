package watch

import (
	"sync"
	"time"

	"github.com/iomtguard/iomtguard/internal/analysis"
	"github.com/iomtguard/iomtguard/internal/detect"
)

// Window is the analysis of the last 5 minutes, hour or day: the Result
// of the merged minutes (without the Figure 1 columns, which the windows
// do not keep), with its ARIMA model and k-means.
type Window struct {
	Name   string           `json:"name"`
	From   time.Time        `json:"from"`
	To     time.Time        `json:"to"`
	Result *analysis.Result `json:"result"`
	Took   float64          `json:"took_seconds"`
}

// windowSpecs: how often each window is refitted, in capture time.
var windowSpecs = []struct {
	name  string
	every time.Duration
}{{"5m", 10 * time.Second}, {"1h", time.Minute}, {"24h", 10 * time.Minute}}

// startFits starts the next due window fit beside the pipeline: one at a
// time (a fit that takes longer than its period is not queued twice), and
// at most one a second of wall time (a replay at full speed would
// otherwise spend a core on fits of windows nobody looks at that fast).
func (w *Watch) startFits() {
	if w.fitting.Load() || len(w.minutes) == 0 || time.Since(w.lastFit) < time.Second {
		return
	}
	w.winMu.Lock()
	var due string
	for _, s := range windowSpecs {
		win := w.windows[s.name]
		if win == nil || w.clock-win.To.UnixNano() >= int64(s.every) {
			due = s.name
			break
		}
	}
	w.winMu.Unlock()
	if due == "" {
		return
	}
	// Merge on this goroutine (the states are the pipeline's), fit beside it.
	w.lastFit = time.Now()
	a := w.merged(due)
	to := time.Unix(0, w.clock).UTC()
	w.fitting.Store(true)
	go func() {
		defer w.fitting.Store(false)
		w.fitDone <- fit(due, a, to)
	}()
}

// merged is the analyzer of a window: its closed minutes merged.
func (w *Watch) merged(name string) *analysis.Analyzer {
	o := w.opts.Analysis
	o.Origin = w.origin
	o.Now = time.Now
	// Only the hour feeds the detectors (k-means outliers, series
	// anomalies) and has its series shown with the forecast; the others
	// show tables and the graph.
	o.NoKMeans = name != "1h"
	o.NoModel = name != "1h"
	a := analysis.New(o)
	var parts []*analysis.State
	switch name {
	case "5m":
		parts = w.minutes[max(0, len(w.minutes)-5):]
	case "1h":
		parts = w.minutes
	case "24h":
		// The closed hours, and the minutes of the hour under way.
		for _, b := range w.hours {
			st, err := analysis.Unpack(b)
			if err != nil {
				w.log.Warn("watch: the day window skips an hour", "error", err)
				continue
			}
			parts = append(parts, st)
		}
		for _, m := range minutesSince(w.minutes, w.hourOf) {
			parts = append(parts, withoutSeries(m))
		}
	}
	for _, st := range parts {
		a.Merge(st)
	}
	return a
}

// fit computes a window's Result (and, for the hour, the detectors' model
// inputs).
func fit(name string, a *analysis.Analyzer, to time.Time) fitResult {
	t := time.Now()
	r := a.Result(a.OwnSummary(), nil)
	res := fitResult{name: name, win: &Window{Name: name, From: r.Overview.First, To: to, Result: r, Took: time.Since(t).Seconds()}}
	if name == "1h" {
		res.mod = modelsOf(r)
	}
	return res
}

// fitAll computes every window now (the end of a run).
func (w *Watch) fitAll() {
	for w.fitting.Load() {
		time.Sleep(5 * time.Millisecond)
	}
	w.collectFits()
	if len(w.minutes) == 0 {
		return
	}
	// Side by side: the merges on this goroutine (the states are its),
	// the fits on one goroutine each.
	to := time.Unix(0, w.clock).UTC()
	res := make([]fitResult, len(windowSpecs))
	var wg sync.WaitGroup
	for i, s := range windowSpecs {
		a := w.merged(s.name)
		wg.Add(1)
		go func() {
			defer wg.Done()
			res[i] = fit(s.name, a, to)
		}()
	}
	wg.Wait()
	for _, r := range res {
		w.fitDone <- r
		w.collectFits()
	}
}

// minutesSince are the closed minutes of hour hr and later.
func minutesSince(ms []*analysis.State, hr int64) []*analysis.State {
	for i, st := range ms {
		if st.First/int64(time.Minute)/60 >= hr {
			return ms[i:]
		}
	}
	return nil
}

// collectFits takes the fits that finished.
func (w *Watch) collectFits() {
	for {
		select {
		case f := <-w.fitDone:
			w.winMu.Lock()
			w.windows[f.name] = f.win
			w.winMu.Unlock()
			if f.mod != nil {
				w.models.Outliers = f.mod.Outliers
				w.mergeAnomalies(f.mod.SeriesAnomalies, f.win.Result.Series.Start)
			}
		default:
			return
		}
	}
}

// mergeAnomalies takes the anomalies of the latest fit of the hour: it
// judged its whole window with the most data, so it replaces what earlier
// fits said about that window; older ones stay (the last 1000).
func (w *Watch) mergeAnomalies(as []detect.SeriesAnomaly, from time.Time) {
	kept := w.anoms[:0]
	for _, a := range w.anoms {
		if a.Time.Before(from) {
			kept = append(kept, a)
		}
	}
	w.anoms = append(kept, as...)
	if len(w.anoms) > 1000 {
		w.anoms = w.anoms[len(w.anoms)-1000:]
	}
}

// modelsOf turns a window's Result into the detectors' model inputs.
func modelsOf(r *analysis.Result) *detect.Models {
	m := &detect.Models{SeriesInterval: time.Second, SeriesMetric: "packets"}
	start := r.Series.Start
	for _, s := range r.Anomalies.Series {
		m.SeriesAnomalies = append(m.SeriesAnomalies, detect.SeriesAnomaly{Time: start.Add(time.Duration(s.Time * 1e9)),
			Observed: s.Observed, Expected: s.Expected, Lower: s.Lower, Upper: s.Upper, Score: s.Score, Reason: s.Reason})
	}
	if r.KMeans != nil {
		for _, o := range r.KMeans.Outliers {
			m.Outliers = append(m.Outliers, detect.Outlier{Features: r.KMeans.Features, X: o.X, Count: o.Count, Score: o.Score,
				Frame: o.FirstFrame, Time: r.Overview.First.Add(time.Duration(o.Time * 1e9))})
		}
	}
	return m
}
