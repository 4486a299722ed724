package analysis

import (
	"math"
	"testing"

	"github.com/iomtguard/iomtguard/internal/forecast"
)

// TestKeepStrongest: past the caps the strongest intervals and episodes are
// kept (by |score|, below-expectation ones too), in time order, and the
// totals count them all; under the caps nothing changes.
func TestKeepStrongest(t *testing.T) {
	var an Anomalies
	n := MaxAnomalyIntervals + 1234
	for i := 0; i < n; i++ {
		score := float64(i % 977)
		if i%2 == 1 {
			score = -score
		}
		an.Series = append(an.Series, SeriesAnomaly{Anomaly: forecast.Anomaly{Index: i, Score: score}, Time: float64(i)})
	}
	for i := 0; i < MaxEpisodes+10; i++ {
		an.Episodes = append(an.Episodes, Episode{Start: float64(i), MaxScore: float64((i * 7919) % 1013)})
	}
	an.keepStrongest()
	if an.SeriesTotal != n || an.EpisodesTotal != MaxEpisodes+10 || len(an.Series) != MaxAnomalyIntervals || len(an.Episodes) != MaxEpisodes {
		t.Fatalf("totals %d %d, kept %d %d", an.SeriesTotal, an.EpisodesTotal, len(an.Series), len(an.Episodes))
	}
	weakestKept := math.Inf(1)
	kept := map[int]bool{}
	for i, s := range an.Series {
		if i > 0 && s.Index <= an.Series[i-1].Index {
			t.Fatalf("intervals not in time order at %d", i)
		}
		weakestKept = min(weakestKept, math.Abs(s.Score))
		kept[s.Index] = true
	}
	for i := 0; i < n; i++ {
		if !kept[i] && float64(i%977) > weakestKept {
			t.Fatalf("interval %d (|z| %d) dropped while |z| %v was kept", i, i%977, weakestKept)
		}
	}
	for i, e := range an.Episodes {
		if i > 0 && e.Start <= an.Episodes[i-1].Start {
			t.Fatalf("episodes not in time order at %d", i)
		}
	}
	small := Anomalies{Series: an.Series[:3], Episodes: an.Episodes[:2]}
	small.keepStrongest()
	if small.SeriesTotal != 3 || small.EpisodesTotal != 2 || len(small.Series) != 3 {
		t.Fatalf("under the caps: %+v", small)
	}
}
