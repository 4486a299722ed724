package baseline

import (
	"math"
	"sort"
	"time"
)

// Labelled is a scored window with its ground truth: Attack names the
// attack the window belongs to ("" for a benign window).
type Labelled struct {
	Capture   string // minutes of different captures are never one run
	Key       string
	Window    int64
	Score     float64
	Anomalous bool
	Attack    string
	Unscored  bool // the device had no profile: not ranked, counted
}

// Ranking measures how well the scores rank one attack's windows above the
// benign ones.
type Ranking struct {
	Attack    string `json:"attack"`
	Positives int    `json:"positive_windows"`
	Negatives int    `json:"benign_windows"`
	// Unscored are the attack's minutes of devices without a profile (an
	// attacker's own client ID: new to the baseline, the inventory and the
	// rules' business).
	Unscored int `json:"unscored_windows"`
	// AUC is the area under the ROC curve: the chance that a window of the
	// attack scores above a benign one (ties count half); 0.5 is chance.
	// Nil when the attack has no scored minute or there is no benign one.
	AUC *float64 `json:"roc_auc"`
	// Detected are the attack's windows above the threshold; Recall is
	// their share.
	Detected int     `json:"detected_windows"`
	Recall   float64 `json:"recall"`
	// Precision at the threshold: of the windows above it that are this
	// attack's or benign, the share that are the attack's.
	Precision float64 `json:"precision"`
	// DelaySeconds is from the attack's first window to the end of its
	// first window above the threshold, the longest over the captures it
	// was found in (nil: never detected).
	DelaySeconds *float64 `json:"delay_seconds"`
}

// AUC is the Mann-Whitney estimate of the area under the ROC curve.
func AUC(pos, neg []float64) float64 {
	if len(pos) == 0 || len(neg) == 0 {
		return math.NaN()
	}
	type sv struct {
		v   float64
		pos bool
	}
	all := make([]sv, 0, len(pos)+len(neg))
	for _, v := range pos {
		all = append(all, sv{v, true})
	}
	for _, v := range neg {
		all = append(all, sv{v, false})
	}
	sort.Slice(all, func(i, j int) bool { return all[i].v < all[j].v })
	// Sum of the positives' ranks, ties given their mean rank.
	var rankSum float64
	for i := 0; i < len(all); {
		j := i
		for j < len(all) && all[j].v == all[i].v {
			j++
		}
		mean := float64(i+j+1) / 2 // ranks i+1..j
		for k := i; k < j; k++ {
			if all[k].pos {
				rankSum += mean
			}
		}
		i = j
	}
	np, nn := float64(len(pos)), float64(len(neg))
	return (rankSum - np*(np+1)/2) / (np * nn)
}

// Rank measures each attack of ws against the benign windows.
func Rank(ws []Labelled) []Ranking {
	var neg []float64
	negAlarms := 0
	byAttack := map[string][]Labelled{}
	unscored := map[string]int{}
	for _, w := range ws {
		if w.Unscored {
			if w.Attack != "" {
				unscored[w.Attack]++
				if byAttack[w.Attack] == nil {
					byAttack[w.Attack] = []Labelled{}
				}
			}
			continue
		}
		if w.Attack == "" {
			neg = append(neg, w.Score)
			if w.Anomalous {
				negAlarms++
			}
			continue
		}
		byAttack[w.Attack] = append(byAttack[w.Attack], w)
	}
	var names []string
	for n := range byAttack {
		names = append(names, n)
	}
	sort.Strings(names)
	var out []Ranking
	for _, n := range names {
		as := byAttack[n]
		r := Ranking{Attack: n, Positives: len(as), Negatives: len(neg), Unscored: unscored[n]}
		if len(as) == 0 {
			out = append(out, r)
			continue
		}
		var pos []float64
		// The delay per capture (each ran the attack once); the longest.
		type run struct{ first, firstHit int64 }
		runs := map[string]*run{}
		for _, w := range as {
			pos = append(pos, w.Score)
			c := runs[w.Capture]
			if c == nil {
				c = &run{math.MaxInt64, math.MaxInt64}
				runs[w.Capture] = c
			}
			c.first = min(c.first, w.Window)
			if w.Anomalous {
				r.Detected++
				c.firstHit = min(c.firstHit, w.Window)
			}
		}
		if auc := AUC(pos, neg); !math.IsNaN(auc) {
			r.AUC = &auc
		}
		r.Recall = float64(r.Detected) / float64(len(as))
		if r.Detected+negAlarms > 0 {
			r.Precision = float64(r.Detected) / float64(r.Detected+negAlarms)
		}
		for _, c := range runs {
			if c.firstHit != math.MaxInt64 {
				d := float64(c.firstHit-c.first+1) * Window.Seconds()
				if r.DelaySeconds == nil || d > *r.DelaySeconds {
					r.DelaySeconds = &d
				}
			}
		}
		out = append(out, r)
	}
	return out
}

// FalseAlarms counts, over the benign windows of ws, the alarm episodes
// (runs of consecutive anomalous windows of one device: one alarm each, as
// an incident is) and the device-days watched (benign windows × Window).
func FalseAlarms(ws []Labelled) (alarms int, deviceDays float64) {
	byDev := map[[2]string][]int64{}
	var n int
	for _, w := range ws {
		if w.Attack != "" || w.Unscored {
			continue
		}
		n++
		if w.Anomalous {
			k := [2]string{w.Capture, w.Key}
			byDev[k] = append(byDev[k], w.Window)
		}
	}
	for _, wins := range byDev {
		sort.Slice(wins, func(i, j int) bool { return wins[i] < wins[j] })
		for i, w := range wins {
			if i == 0 || w != wins[i-1]+1 {
				alarms++
			}
		}
	}
	return alarms, float64(n) * Window.Seconds() / (24 * time.Hour).Seconds()
}
