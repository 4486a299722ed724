package analysis

import (
	"math"
	"slices"
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

// TestFiniteRepairsAndNames: every non-finite float of a Result is written
// as 0 and named by its JSON path, in a float slice, a struct in a slice, a
// map of floats and a pointer; finite values are left alone.
func TestFiniteRepairsAndNames(t *testing.T) {
	nan, inf := math.NaN(), math.Inf(1)
	r := &Result{Series: SeriesResult{Values: []float64{1, nan, 3}, MQTT: []float64{inf}},
		Forecast:  &ForecastResult{Mean: []float64{2}, Params: map[string]float64{"ar.L1": nan, "sigma2": 1}},
		Anomalies: Anomalies{Series: []SeriesAnomaly{{Time: 1}, {Time: inf}}}}
	finite(r)
	want := []string{
		"analysis.json: .series.values[1] was not a finite number (written as 0)",
		"analysis.json: .series.mqtt_values[0] was not a finite number (written as 0)",
		"analysis.json: .forecast.params.ar.L1 was not a finite number (written as 0)",
		"analysis.json: .anomalies.series[1].time was not a finite number (written as 0)",
	}
	for _, w := range want {
		if !slices.Contains(r.Warnings, w) {
			t.Errorf("missing warning %q in %q", w, r.Warnings)
		}
	}
	if len(r.Warnings) != len(want) {
		t.Errorf("%d warnings, want %d: %q", len(r.Warnings), len(want), r.Warnings)
	}
	if r.Series.Values[1] != 0 || r.Series.MQTT[0] != 0 || r.Forecast.Params["ar.L1"] != 0 || r.Anomalies.Series[1].Time != 0 {
		t.Errorf("not repaired: %v %v %v %v", r.Series.Values, r.Series.MQTT, r.Forecast.Params, r.Anomalies.Series)
	}
	if r.Series.Values[0] != 1 || r.Series.Values[2] != 3 || r.Forecast.Params["sigma2"] != 1 || r.Forecast.Mean[0] != 2 {
		t.Errorf("finite values changed")
	}
}
