package detect

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"time"
)

// --- anomaly.traffic -----------------------------------------------------------

var trafficSpec = Spec{
	Name: "traffic",
	IDs:  []string{"anomaly.traffic"},
	Rule: "Reads the traffic model's anomalies (package forecast): intervals outside the one-step prediction " +
		"interval are grouped into episodes (at most two intervals apart). The first warmup intervals are " +
		"skipped (the model has no history there), and short episodes that recur at a fixed period, three times " +
		"or more (keep-alives, polling), are regular behaviour. Any other episode makes a finding; it is medium " +
		"when an episode lasts min_points intervals or reaches a robust z of strong_z, else low. Robust-z-only " +
		"departures stay in the report's anomaly section.",
	Params: []Param{
		{"min_points", 5, "", "intervals of an episode that make it medium"},
		{"strong_z", 10, "", "robust z that makes an episode medium"},
		{"warmup", 10, "", "first intervals of the series not judged"},
	},
	New: func(e *Env) Detector {
		return &traffic{minPoints: int(e.P("min_points")), strongZ: e.P("strong_z"), warmup: int(e.P("warmup"))}
	},
}

type traffic struct {
	nopDetector
	minPoints int
	strongZ   float64
	warmup    int
}

// episode refers to its anomalies by position in Models.SeriesAnomalies
// (a 2 GB capture made 100,000 episodes, and three copies of an anomaly
// each were 25 MB at analyze's peak).
type episode struct {
	first, last, peak int32
	points            int
	maxZ              float64
}

// periodic marks the short episodes (at most two intervals) whose starts
// lie on a chain of three or more at one period (of at most maxPeriod
// intervals), give or take an interval.
func periodic(eps []episode, as []SeriesAnomaly, interval time.Duration) []bool {
	const maxPeriod = 3600
	mark := make([]bool, len(eps))
	starts := make([]int64, len(eps))
	at := map[int64]int{} // start -> short episode
	for i, e := range eps {
		starts[i] = int64(as[e.first].Time.Sub(as[eps[0].first].Time) / interval)
		if e.points <= 2 {
			at[starts[i]] = i
		}
	}
	for i := range eps {
		if eps[i].points > 2 {
			continue
		}
		for j := i + 1; j < len(eps); j++ {
			d := starts[j] - starts[i]
			if d > maxPeriod {
				break
			}
			if d < 3 || eps[j].points > 2 {
				continue
			}
			for _, e := range []int64{0, -1, 1} {
				if k, ok := at[starts[j]+d+e]; ok {
					mark[i], mark[j], mark[k] = true, true, true
					break
				}
			}
		}
	}
	return mark
}

func (t *traffic) Findings(m Models) []Finding {
	if m.SeriesInterval <= 0 {
		return nil
	}
	gap := 3 * m.SeriesInterval
	var eps []episode
	as := m.SeriesAnomalies
	for i, a := range as {
		if !strings.HasPrefix(a.Reason, "interval") || a.Time.Sub(m.Start) < time.Duration(t.warmup)*m.SeriesInterval {
			continue
		}
		if n := len(eps); n == 0 || a.Time.Sub(as[eps[n-1].last].Time) > gap {
			eps = append(eps, episode{first: int32(i), peak: int32(i)})
		}
		e := &eps[len(eps)-1]
		e.last = int32(i)
		e.points++
		if p := &as[e.peak]; math.Abs(a.Observed-a.Expected) > math.Abs(p.Observed-p.Expected) {
			e.peak = int32(i)
		}
		e.maxZ = math.Max(e.maxZ, math.Abs(a.Score))
	}
	per := periodic(eps, as, m.SeriesInterval)
	regular := 0
	kept := eps[:0]
	for i, e := range eps {
		if per[i] {
			regular++
			continue
		}
		kept = append(kept, e)
	}
	eps = kept
	if len(eps) == 0 {
		return nil
	}
	ev := Evidence{Counts: map[string]int64{"episodes": int64(len(eps)), "periodic_episodes_ignored": int64(regular)}}
	sev := Low
	for i, e := range eps {
		if e.points >= t.minPoints || e.maxZ >= t.strongZ {
			sev = Medium
		}
		if i < 20 {
			peak := &as[e.peak]
			dir := "above"
			if peak.Observed < peak.Expected {
				dir = "below"
			}
			ev.Notes = append(ev.Notes, fmt.Sprintf("%s to %s: %d intervals; peak %g %s per %s (expected %.1f, %s), robust z up to %.1f",
				as[e.first].Time.Format("15:04:05"), as[e.last].Time.Add(m.SeriesInterval).Format("15:04:05"), e.points, peak.Observed,
				m.SeriesMetric, m.SeriesInterval, peak.Expected, dir, e.maxZ))
		}
	}
	f := newFinding("anomaly.traffic", as[eps[0].first].Time.UnixNano(), as[eps[len(eps)-1].last].Time.Add(m.SeriesInterval).UnixNano(), ev)
	f.Severity = sev
	f.Title = fmt.Sprintf("Unusual traffic volume: %d episodes outside the model's prediction", len(eps))
	return []Finding{f}
}

// --- anomaly.outlier -----------------------------------------------------------

var outlierSpec = Spec{
	Name: "outlier",
	IDs:  []string{"anomaly.outlier"},
	Rule: "Reads the K-means outliers (rare frame sizes far from every cluster; see the report's K-means section). " +
		"Outliers strong_distance standardised units or more from their centroid make a low finding; nearer ones " +
		"stay in the report's anomaly section (every capture has a few rare shapes, such as its CONNECTs).",
	Params: []Param{{"strong_distance", 4, "", "distance from its centroid that makes an outlier a finding"}},
	New:    func(e *Env) Detector { return &outlier{strong: e.P("strong_distance")} },
}

type outlier struct {
	nopDetector
	strong float64
}

func (d *outlier) Findings(m Models) []Finding {
	var far []Outlier
	for _, o := range m.Outliers {
		if o.Score >= d.strong {
			far = append(far, o)
		}
	}
	if len(far) == 0 {
		return nil
	}
	ev := Evidence{Counts: map[string]int64{"outlier_points": int64(len(far))}}
	var sp span
	var frames exemplars
	for i, o := range far {
		sp.add(o.Time.UnixNano())
		frames.add(o.Frame)
		if i < 20 {
			var parts []string
			for j, x := range o.X {
				parts = append(parts, fmt.Sprintf("%s %g", o.Features[j], x))
			}
			ev.Notes = append(ev.Notes, fmt.Sprintf("%s: %d frames, distance %.1f, first frame %d", strings.Join(parts, ", "), o.Count, o.Score, o.Frame))
		}
	}
	sort.Ints(frames)
	ev.Frames = frames
	f := newFinding("anomaly.outlier", sp.first, sp.last, ev)
	f.Severity = Low
	f.Title = fmt.Sprintf("%d rare packet shapes far from the normal traffic", len(far))
	return []Finding{f}
}
