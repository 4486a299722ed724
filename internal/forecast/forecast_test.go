package forecast

import (
	"encoding/json"
	"errors"
	"math"
	"os"
	"testing"
)

// Fixtures from scripts/numeric_fixtures.py: statsmodels 0.13.5
// (ARIMA(y, order=o).fit(), get_forecast(10).conf_int(0.05), kpss(y,
// regression="c", nlags="auto"), acorr_ljungbox(resid, lags=[10], model_df=2)).
type arimaFixture struct {
	Series map[string][]float64
	Cases  []struct {
		Series    string
		Order     [3]int
		LLF       float64
		Params    map[string]float64
		AIC       float64
		AICc      float64 `json:"aicc"`
		BIC       float64
		Converged bool
		Forecast  struct{ Mean, Lower, Upper []float64 }
		Seconds   float64
	}
	Grids []struct {
		Series    string
		D         int
		BestAICc  float64 `json:"best_aicc"`
		BestOrder [3]int  `json:"best_order"`
		Seconds   float64
	}
	KPSS []struct {
		Series string
		Stat   float64
		PValue float64
		Lags   int
	}
	LjungBox []struct {
		Series  string
		Order   [3]int
		Lags    int
		ModelDF int `json:"model_df"`
		Stat    float64
		PValue  float64
	}
}

func loadArima(t *testing.T) *arimaFixture {
	t.Helper()
	b, err := os.ReadFile("../../testdata/numeric/arima.json")
	if err != nil {
		t.Fatal(err)
	}
	var f arimaFixture
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	return &f
}

func relClose(got, want, rel float64) bool {
	return math.Abs(got-want) <= rel*math.Max(1, math.Abs(want))
}

func TestARIMAAgainstStatsmodels(t *testing.T) {
	f := loadArima(t)
	for _, c := range f.Cases {
		y := f.Series[c.Series]
		o := Order{c.Order[0], c.Order[1], c.Order[2]}
		t.Run(c.Series+o.String(), func(t *testing.T) {
			m, err := Fit(y, o, FitOptions{})
			if err != nil {
				t.Fatal(err)
			}
			// Log-likelihood within 0.01 of statsmodels', or higher.
			if m.LogLike < c.LLF-0.01 {
				t.Errorf("llf %.6f, statsmodels %.6f", m.LogLike, c.LLF)
			}
			if m.LogLike > c.LLF+0.01 && c.Converged {
				t.Logf("llf %.6f above statsmodels' %.6f (it stopped short)", m.LogLike, c.LLF)
			}
			better := m.LogLike > c.LLF+1e-4
			for i, name := range m.Names {
				want, ok := c.Params[name]
				if !ok {
					t.Fatalf("parameter %s not in statsmodels' %v", name, c.Params)
				}
				if math.Abs(m.Params[i]-want) > 1e-3*math.Max(1, math.Abs(want)) && !better {
					t.Errorf("%s = %.6f, statsmodels %.6f", name, m.Params[i], want)
				}
			}
			if len(m.Names) != len(c.Params) {
				t.Errorf("parameters %v, statsmodels %v", m.Names, c.Params)
			}
			if !better && (!relClose(m.AIC, c.AIC, 1e-6) || !relClose(m.AICc, c.AICc, 1e-6) || !relClose(m.BIC, c.BIC, 1e-6)) {
				t.Errorf("aic %v aicc %v bic %v, statsmodels %v %v %v", m.AIC, m.AICc, m.BIC, c.AIC, c.AICc, c.BIC)
			}
			fc := m.Forecast(10, 0.95)
			for i := range fc.Mean {
				for _, pair := range [][2]float64{{fc.Mean[i], c.Forecast.Mean[i]}, {fc.Lower[i], c.Forecast.Lower[i]}, {fc.Upper[i], c.Forecast.Upper[i]}} {
					// Within 0.1 %, relative to the value or, near zero, to the interval's width.
					tol := 1e-3 * math.Max(math.Abs(pair[1]), c.Forecast.Upper[i]-c.Forecast.Lower[i])
					if math.Abs(pair[0]-pair[1]) > tol && !better {
						t.Errorf("forecast step %d: %v, statsmodels %v", i+1, pair[0], pair[1])
					}
				}
			}
		})
	}
}

func TestAutoAgainstGrid(t *testing.T) {
	f := loadArima(t)
	for _, g := range f.Grids {
		t.Run(g.Series, func(t *testing.T) {
			m, sel, err := Auto(f.Series[g.Series], AutoOptions{D: g.D, FixD: true})
			if err != nil {
				t.Fatal(err)
			}
			if m.AICc > g.BestAICc+1e-6 {
				t.Errorf("AICc %.4f (ARIMA%v), statsmodels' best %.4f (ARIMA%v)", m.AICc, m.Order, g.BestAICc, g.BestOrder)
			}
			if len(sel.Tried) != 36 {
				t.Errorf("%d orders tried", len(sel.Tried))
			}
			t.Logf("ARIMA%v AICc %.4f; statsmodels ARIMA%v %.4f; %s", m.Order, m.AICc, g.BestOrder, g.BestAICc, sel.Why)
		})
	}
}

func TestKPSS(t *testing.T) {
	f := loadArima(t)
	for _, k := range f.KPSS {
		name := k.Series
		y := f.Series[name]
		if len(name) > 6 && name[len(name)-6:] == "/diff1" {
			y = Diff(f.Series[name[:len(name)-6]], 1)
		}
		got := KPSS(y)
		if !relClose(got.Stat, k.Stat, 1e-10) || got.Lags != k.Lags || !relClose(got.PValue, k.PValue, 1e-10) {
			t.Errorf("%s: %+v, statsmodels %+v", name, got, k)
		}
	}
}

func TestLjungBox(t *testing.T) {
	f := loadArima(t)
	for _, lb := range f.LjungBox {
		m, err := Fit(f.Series[lb.Series], Order{lb.Order[0], lb.Order[1], lb.Order[2]}, FitOptions{})
		if err != nil {
			t.Fatal(err)
		}
		got := LjungBox(m.Residuals(), lb.Lags, lb.ModelDF)
		if !relClose(got.Stat, lb.Stat, 1e-3) || math.Abs(got.PValue-lb.PValue) > 1e-3 {
			t.Errorf("%+v, statsmodels %v %v", got, lb.Stat, lb.PValue)
		}
	}
}

func TestDegenerate(t *testing.T) {
	flat := make([]float64, 50)
	for i := range flat {
		flat[i] = 7
	}
	if _, err := Fit(flat, Order{1, 0, 1}, FitOptions{}); !errors.Is(err, ErrConstant) {
		t.Errorf("constant series: %v", err)
	}
	m, sel, err := Auto(flat, AutoOptions{})
	if err != nil || sel.Why == "" {
		t.Fatalf("Auto on a constant: %v", err)
	}
	fc := m.Forecast(5, 0.95)
	for i := range fc.Mean {
		if fc.Mean[i] != 7 || fc.Lower[i] != 7 || fc.Upper[i] != 7 {
			t.Errorf("constant forecast %v", fc)
		}
	}
	if a := m.Anomalies(AnomalyOptions{}); len(a) != 0 {
		t.Errorf("anomalies on a constant: %v", a)
	}
	if _, err := Fit([]float64{1, 2, 3}, Order{2, 0, 2}, FitOptions{}); !errors.Is(err, ErrTooShort) {
		t.Errorf("short series: %v", err)
	}
	if _, err := Fit([]float64{1, math.NaN(), 3, 4, 5}, Order{0, 0, 0}, FitOptions{}); !errors.Is(err, ErrNotFinite) {
		t.Errorf("NaN: %v", err)
	}
	line := make([]float64, 40)
	for i := range line {
		line[i] = 3 + 2*float64(i)
	}
	if m, _, err := Auto(line, AutoOptions{}); err != nil {
		t.Errorf("a straight line: %v", err)
	} else {
		for _, v := range append(m.Forecast(3, 0.95).Mean, m.Params...) {
			if math.IsNaN(v) {
				t.Errorf("NaN in the output for a straight line: %v", m.Params)
			}
		}
	}
}

func TestAnomalies(t *testing.T) {
	f := loadArima(t)
	y := f.Series["outliers"]
	m, err := Fit(y, Order{1, 0, 1}, FitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	found := map[int]bool{}
	for _, a := range m.Anomalies(AnomalyOptions{}) {
		found[a.Index] = true
		if a.Lower >= a.Upper || math.IsNaN(a.Score) {
			t.Errorf("bad anomaly %+v", a)
		}
	}
	for _, i := range []int{50, 200, 333} {
		if !found[i] {
			t.Errorf("spike at %d not flagged (found %v)", i, found)
		}
	}
	if len(found) > 12 {
		t.Errorf("%d anomalies in 400 points with 4 spikes", len(found))
	}
}
