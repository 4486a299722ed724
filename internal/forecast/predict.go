package forecast

import (
	"errors"
	"math"
)

// z975 is the standard normal 97.5 % quantile (scipy.stats.norm.ppf(0.975)).
const z975 = 1.959963984540054

// Forecast is an h-step forecast with a two-sided interval.
type Forecast struct {
	Mean  []float64 `json:"mean"`
	Lower []float64 `json:"lower"`
	Upper []float64 `json:"upper"`
	SE    []float64 `json:"se"`
	Level float64   `json:"level"` // interval coverage, e.g. 0.95
}

// Forecast predicts the next h values with intervals of the given coverage
// (0.95 when level is 0), as statsmodels' get_forecast(h).conf_int(alpha):
// the state is projected from its filtered distribution at the end of the
// sample.
func (m *Model) Forecast(h int, level float64) Forecast {
	if level <= 0 || level >= 1 {
		level = 0.95
	}
	z := z975
	if level != 0.95 {
		z = normQuantile(0.5 + level/2)
	}
	out := Forecast{Mean: make([]float64, h), Lower: make([]float64, h), Upper: make([]float64, h), SE: make([]float64, h), Level: level}
	var mean, variance []float64
	if m.isConstant() {
		for i := 0; i < h; i++ {
			v := m.Const
			if m.line {
				v = m.y[len(m.y)-1] + float64(i+1)*m.Const
			}
			out.Mean[i], out.Lower[i], out.Upper[i] = v, v, v
		}
		return out
	}
	if m.g != nil {
		mean, variance = m.g.forecast(m.ff, m.Sigma2, h)
	} else {
		mean, variance = m.armaForecast(h)
	}
	for i := 0; i < h; i++ {
		se := math.Sqrt(math.Max(variance[i], 0))
		out.Mean[i], out.SE[i] = mean[i], se
		out.Lower[i], out.Upper[i] = mean[i]-z*se, mean[i]+z*se
	}
	return out
}

// armaForecast projects the ARMA state (d = 0) and adds the mean.
func (m *Model) armaForecast(h int) (mean, variance []float64) {
	s := newARMA(m.AR, m.MA)
	mm := s.m
	a := make([]float64, mm)
	for i := range a {
		a[i] = m.flt.aw[i]
		if m.HasConst {
			a[i] -= m.Const * m.flt.a1[i]
		}
	}
	p := append([]float64(nil), m.flt.pEnd...)
	tmp := make([]float64, mm*mm)
	next := make([]float64, mm)
	tpt := make([]float64, mm*mm)
	mean, variance = make([]float64, h), make([]float64, h)
	for j := 0; j < h; j++ {
		mean[j] = a[0] + m.Const
		variance[j] = p[0] * m.Sigma2
		s.tMul(next, a)
		copy(a, next)
		s.tpt(tpt, p, tmp)
		for r := 0; r < mm; r++ {
			for c := 0; c < mm; c++ {
				p[r*mm+c] = tpt[r*mm+c] + s.r[r]*s.r[c]
			}
		}
	}
	return mean, variance
}

// InSample returns one-step-ahead predictions of the series and their
// standard errors, for t >= d (earlier points have none: NaN).
func (m *Model) InSample() (pred, se []float64) {
	n := len(m.y)
	d := m.Order.D
	pred = make([]float64, n)
	se = make([]float64, n)
	for t := 0; t < d; t++ {
		pred[t], se[t] = math.NaN(), math.NaN()
	}
	for t := d; t < n; t++ {
		v, f := m.innovation(t)
		pred[t] = m.y[t] - v
		se[t] = math.Sqrt(f)
	}
	return pred, se
}

// innovation returns the one-step error of y_t and its variance (t >= d).
func (m *Model) innovation(t int) (v, f float64) {
	if m.isConstant() {
		if m.line {
			return m.y[t] - m.y[t-1] - m.Const, 0
		}
		return m.y[t] - m.Const, 0
	}
	if m.g != nil {
		return m.ff.v[t], m.ff.f[t]
	}
	v = m.flt.vw[t]
	if m.HasConst {
		v -= m.Const * m.flt.v1[t]
	}
	return v, m.flt.f[t] * m.Sigma2
}

// Residuals returns the one-step-ahead forecast errors for t >= d (statsmodels'
// resid without its first d diffuse values).
func (m *Model) Residuals() []float64 {
	d := m.Order.D
	out := make([]float64, len(m.y)-d)
	for t := d; t < len(m.y); t++ {
		out[t-d], _ = m.innovation(t)
	}
	return out
}

// normQuantile is the standard normal quantile (Acklam's algorithm refined
// by one Newton step on erfc), accurate to ~1e-15.
func normQuantile(p float64) float64 {
	if p <= 0 || p >= 1 {
		return math.NaN()
	}
	x := -math.Sqrt2 * math.Erfcinv(2*p)
	return x
}

// Apply returns a copy of the model with its parameters fixed, filtered
// over y: one-step predictions, residuals and anomalies on another (usually
// longer) series than the one it was fitted to.
func (m *Model) Apply(y []float64) (*Model, error) {
	if m.isConstant() {
		c := *m
		c.y, c.w = y, Diff(y, m.Order.D)
		if m.line {
			c.NObs, c.NEff = len(y), len(y)-1
		}
		return &c, nil
	}
	if len(y) <= m.Order.D+1 {
		return nil, ErrTooShort
	}
	for _, v := range y {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, ErrNotFinite
		}
	}
	c := &Model{Order: m.Order, HasConst: m.HasConst, Names: m.Names, Params: m.Params, Const: m.Const, AR: m.AR, MA: m.MA,
		Sigma2: m.Sigma2, y: y, w: Diff(y, m.Order.D), NObs: len(y), NEff: len(y) - m.Order.D, Converged: m.Converged}
	if m.g != nil {
		c.g = m.g
		c.ff = m.g.filter(y, m.Sigma2, true)
		if !c.ff.ok {
			return nil, errors.New("forecast: the model cannot be applied to this series")
		}
		c.LogLike = c.ff.llf
	} else {
		s := newARMA(m.AR, m.MA)
		c.flt = s.filter(c.w, m.HasConst, true, &c.buf)
		if !c.flt.ok {
			return nil, errors.New("forecast: the model cannot be applied to this series")
		}
	}
	return c, nil
}
