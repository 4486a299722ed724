package forecast

import (
	"math"
	"slices"
)

// AnomalyOptions set the thresholds of Anomalies. Zero values give the defaults.
type AnomalyOptions struct {
	// Level is the coverage of the one-step-ahead prediction interval outside
	// which a point is anomalous (default 0.999; 0.95 flags 5 % of normal
	// points by construction).
	Level float64
	// RobustZ is the threshold on the residual's modified z-score
	// 0.6745 (r - median) / MAD (Iglewicz and Hoaglin 1993; default 3.5).
	RobustZ float64
}

// Anomaly is one anomalous point of a series.
type Anomaly struct {
	Index    int     `json:"index"`
	Observed float64 `json:"observed"`
	Expected float64 `json:"expected"`
	Lower    float64 `json:"lower"`
	Upper    float64 `json:"upper"`
	// Score is the residual's modified z-score.
	Score float64 `json:"score"`
	// Reason is "interval", "robust-z" or "interval+robust-z".
	Reason string `json:"reason"`
}

// Anomalies flags points outside the one-step-ahead prediction interval and
// points whose residual has a modified z-score above the threshold. The
// first d points (no prediction) are never flagged. When the MAD is zero the
// mean absolute deviation times 1.2533 stands in for it (Iglewicz and
// Hoaglin); when that is zero too, only the interval rule applies.
func (m *Model) Anomalies(opts AnomalyOptions) []Anomaly {
	if opts.Level <= 0 || opts.Level >= 1 {
		opts.Level = 0.999
	}
	if opts.RobustZ <= 0 {
		opts.RobustZ = 3.5
	}
	if m.isConstant() {
		return nil
	}
	z := normQuantile(0.5 + opts.Level/2)
	pred, se := m.InSample()
	resid := m.Residuals()
	d := m.Order.D
	med, scale := robustScale(resid)
	judge := func(t int) (score, lo, hi float64, outside, robust bool) {
		if scale > 0 {
			score = 0.6745 * (resid[t-d] - med) / scale
		}
		lo, hi = pred[t]-z*se[t], pred[t]+z*se[t]
		outside = m.y[t] < lo || m.y[t] > hi
		robust = scale > 0 && math.Abs(score) > opts.RobustZ
		return
	}
	// Counted first, then filled: a long series can flag hundreds of
	// thousands of intervals, and growing the slice by appends cost a 2 GB
	// capture's analysis 200 MB of garbage at its peak.
	n := 0
	for t := d; t < len(m.y); t++ {
		if _, _, _, outside, robust := judge(t); outside || robust {
			n++
		}
	}
	out := make([]Anomaly, 0, n)
	for t := d; t < len(m.y); t++ {
		score, lo, hi, outside, robust := judge(t)
		if !outside && !robust {
			continue
		}
		reason := "interval"
		switch {
		case outside && robust:
			reason = "interval+robust-z"
		case robust:
			reason = "robust-z"
		}
		out = append(out, Anomaly{Index: t, Observed: m.y[t], Expected: pred[t], Lower: lo, Upper: hi, Score: score, Reason: reason})
	}
	return out
}

// robustScale returns the median of r and its MAD (or 1.2533 times the mean
// absolute deviation when the MAD is zero).
func robustScale(r []float64) (median, scale float64) {
	if len(r) == 0 {
		return 0, 0
	}
	s := slices.Clone(r)
	slices.Sort(s)
	median = quantileSorted(s, 0.5)
	dev := make([]float64, len(s))
	var mean float64
	for i, v := range s {
		dev[i] = math.Abs(v - median)
		mean += dev[i]
	}
	slices.Sort(dev)
	scale = quantileSorted(dev, 0.5)
	if scale == 0 {
		// (r - median) / (1.253314 * meanAD), written in the MAD form.
		scale = 0.6745 * 1.253314 * mean / float64(len(dev))
	}
	return median, scale
}

func quantileSorted(s []float64, p float64) float64 {
	h := float64(len(s)-1) * p
	lo := int(math.Floor(h))
	if lo+1 >= len(s) {
		return s[len(s)-1]
	}
	return s[lo] + (s[lo+1]-s[lo])*(h-float64(lo))
}
