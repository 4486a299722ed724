package forecast

import (
	"math"

	"gonum.org/v1/gonum/stat/distuv"
)

// KPSSResult is the outcome of a KPSS stationarity test.
type KPSSResult struct {
	Stat   float64 `json:"stat"`
	PValue float64 `json:"pvalue"` // interpolated in [0.01, 0.10], clipped at the ends
	Lags   int     `json:"lags"`
}

// KPSS tests the null hypothesis that y is level-stationary (Kwiatkowski,
// Phillips, Schmidt and Shin 1992), exactly as statsmodels' kpss(y,
// regression="c", nlags="auto"): the lag truncation by Hobijn, Franses and
// Ooms (2004), a Bartlett-kernel long-run variance, and the p-value
// interpolated in the KPSS table (0.347, 0.463, 0.574, 0.739 for 10, 5, 2.5
// and 1 %). It panics on fewer than two values.
func KPSS(y []float64) KPSSResult {
	n := len(y)
	if n < 2 {
		panic("forecast: KPSS needs at least two values")
	}
	var mean float64
	for _, v := range y {
		mean += v
	}
	mean /= float64(n)
	e := make([]float64, n)
	for i, v := range y {
		e[i] = v - mean
	}
	lags := kpssAutolag(e)
	lags = min(lags, n-1)
	var eta, cum float64
	for _, v := range e {
		cum += v
		eta += cum * cum
	}
	eta /= float64(n) * float64(n)
	s := 0.0
	for _, v := range e {
		s += v * v
	}
	for i := 1; i <= lags; i++ {
		s += 2 * dot(e[i:], e[:n-i]) * (1 - float64(i)/(float64(lags)+1))
	}
	s /= float64(n)
	stat := eta / s
	return KPSSResult{Stat: stat, PValue: kpssPValue(stat), Lags: lags}
}

func dot(a, b []float64) float64 {
	var s float64
	for i := range a {
		s += a[i] * b[i]
	}
	return s
}

func kpssAutolag(e []float64) int {
	n := len(e)
	covlags := int(math.Pow(float64(n), 2.0/9.0))
	s0 := dot(e, e) / float64(n)
	s1 := 0.0
	for i := 1; i <= covlags; i++ {
		p := dot(e[i:], e[:n-i]) / (float64(n) / 2)
		s0 += p
		s1 += float64(i) * p
	}
	sHat := s1 / s0
	gamma := 1.1447 * math.Pow(sHat*sHat, 1.0/3.0)
	return int(gamma * math.Pow(float64(n), 1.0/3.0))
}

func kpssPValue(stat float64) float64 {
	crit := []float64{0.347, 0.463, 0.574, 0.739}
	pv := []float64{0.10, 0.05, 0.025, 0.01}
	if stat <= crit[0] {
		return pv[0]
	}
	if stat >= crit[3] {
		return pv[3]
	}
	for i := 0; i < 3; i++ {
		if stat <= crit[i+1] {
			t := (stat - crit[i]) / (crit[i+1] - crit[i])
			return pv[i] + t*(pv[i+1]-pv[i])
		}
	}
	return pv[3]
}

// LjungBoxResult is a portmanteau test of residual autocorrelation.
type LjungBoxResult struct {
	Stat   float64 `json:"stat"`
	PValue float64 `json:"pvalue"`
	Lags   int     `json:"lags"`
	DF     int     `json:"df"`
}

// LjungBox computes Q = n(n+2) sum_{k=1..h} r_k^2/(n-k) on resid (Ljung and
// Box 1978) with a chi-squared p-value on h - modelDF degrees of freedom, as
// statsmodels' acorr_ljungbox(resid, lags=[h], model_df=modelDF).
func LjungBox(resid []float64, h, modelDF int) LjungBoxResult {
	n := len(resid)
	var mean float64
	for _, v := range resid {
		mean += v
	}
	mean /= float64(n)
	var c0 float64
	for _, v := range resid {
		c0 += (v - mean) * (v - mean)
	}
	var q float64
	for k := 1; k <= h && k < n; k++ {
		var ck float64
		for t := k; t < n; t++ {
			ck += (resid[t] - mean) * (resid[t-k] - mean)
		}
		r := ck / c0
		q += r * r / float64(n-k)
	}
	q *= float64(n) * float64(n+2)
	df := h - modelDF
	res := LjungBoxResult{Stat: q, Lags: h, DF: df, PValue: math.NaN()}
	if df > 0 {
		res.PValue = distuv.ChiSquared{K: float64(df)}.Survival(q)
	}
	return res
}
