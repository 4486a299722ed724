// Package forecast fits ARIMA(p,d,q) models with statsmodels' conventions
// and numbers (statsmodels 0.13, tsa.arima.model.ARIMA): a constant, which is
// the process mean, when d = 0 and none when d >= 1; parameters named const,
// ar.L1..., ma.L1..., sigma2; the exact Gaussian likelihood from a Kalman
// filter on the state-space form with diffuse initial states for the
// differences (so the likelihood is that of the differenced series and the
// first d observations are not counted); AIC, AICc and BIC on the effective
// number of observations. It adds automatic order selection (d by KPSS, then
// p and q by AICc), forecasts with intervals, the Ljung-Box test, and series
// anomalies. It does no I/O and imports only the standard library and gonum.
package forecast

import (
	"errors"
	"fmt"
	"math"

	"gonum.org/v1/gonum/diff/fd"
	"gonum.org/v1/gonum/mat"
	"gonum.org/v1/gonum/optimize"
)

// Order is an ARIMA order.
type Order struct{ P, D, Q int }

func (o Order) String() string { return fmt.Sprintf("(%d,%d,%d)", o.P, o.D, o.Q) }

// MaxOrder bounds p and q.
const MaxOrder = 30

// Errors for series that cannot be fitted.
var (
	ErrTooShort  = errors.New("forecast: series too short for the order")
	ErrConstant  = errors.New("forecast: the series is constant (after differencing): nothing to model")
	ErrNotFinite = errors.New("forecast: the series holds NaN or infinite values")
)

// Model is a fitted ARIMA model.
type Model struct {
	Order    Order
	HasConst bool
	// Names and Params follow statsmodels: const, ar.L1..., ma.L1..., sigma2.
	Names  []string
	Params []float64
	Const  float64
	AR, MA []float64
	Sigma2 float64

	LogLike float64
	AIC     float64
	AICc    float64
	BIC     float64
	NObs    int // observations given
	NEff    int // observations in the likelihood (NObs - d)

	Converged  bool
	Iterations int // optimiser iterations

	u    []float64    // unconstrained ARMA parameters at the optimum
	y    []float64    // the series
	w    []float64    // d-th differences
	flt  filterResult // d = 0: the ARMA filter over w
	buf  filterBuf
	g    *integrated // d >= 1: statsmodels' state space with the differences
	ff   fullFilter
	line bool // lineModel's fallback: Const is the slope
}

// FitOptions tune estimation. The zero value is ready.
type FitOptions struct {
	// start, when set, is the only starting point (unconstrained parameters):
	// order search refines its coarse fits from where they stopped.
	start []float64
	// refine bounds the effort from start (order search: the ranking is done).
	refine bool
	// MaxEval bounds likelihood evaluations per start (default 4000).
	MaxEval int
	// Coarse stops at a looser tolerance with forward-difference gradients
	// (order search ranks models this way, then refits the best precisely).
	Coarse bool
}

// Diff returns the d-th differences of y.
func Diff(y []float64, d int) []float64 {
	w := append([]float64(nil), y...)
	for k := 0; k < d; k++ {
		for i := len(w) - 1; i > 0; i-- {
			w[i] -= w[i-1]
		}
		w = w[1:]
	}
	return w
}

// Fit estimates an ARIMA model of the given order by maximum likelihood.
func Fit(y []float64, order Order, opts FitOptions) (*Model, error) {
	if order.P < 0 || order.Q < 0 || order.D < 0 || order.P > MaxOrder || order.Q > MaxOrder || order.D > 3 {
		return nil, fmt.Errorf("forecast: order %v out of range (p, q <= %d, d <= 3)", order, MaxOrder)
	}
	for _, v := range y {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, ErrNotFinite
		}
	}
	withConst := order.D == 0
	w := Diff(y, order.D)
	k := order.P + order.Q
	need := k + 2
	if withConst {
		need++
	}
	if len(w) < need || len(w) < 3 {
		return nil, fmt.Errorf("%w: %d observations, ARIMA%v needs at least %d", ErrTooShort, len(y), order, need+order.D)
	}
	if constant(w) {
		return nil, ErrConstant
	}
	if opts.MaxEval <= 0 {
		opts.MaxEval = 4000
	}
	m := &Model{Order: order, HasConst: withConst, y: y, w: w, NObs: len(y), NEff: len(w)}
	ar := make([]float64, order.P)
	ma := make([]float64, order.Q)
	// The objective: minus the mean concentrated log-likelihood per
	// observation. A coarse fit (ranking orders) takes the sample mean instead
	// of the GLS mean, which halves the work; the final numbers are exact.
	ws, gls := w, withConst
	if opts.Coarse && withConst {
		ws, gls = demeaned(w), false
	}
	eval := func(u []float64) float64 {
		constrain(u, order.P, order.Q, ar, ma)
		s := newARMA(ar, ma)
		res := s.chandrasekhar(ws, gls, &m.buf)
		if !res.ok {
			return math.Inf(1)
		}
		llf, _, _ := concentrated(res, &m.buf, gls)
		if math.IsInf(llf, 0) || math.IsNaN(llf) {
			return math.Inf(1)
		}
		return -llf / float64(len(w))
	}
	best := math.Inf(1)
	var bestU []float64
	if k == 0 {
		bestU = nil
		best = eval(nil)
	} else {
		// The Hannan-Rissanen start first; the others only when it is not
		// usable or its optimum did not converge.
		ss := starts(w, order, withConst)
		if opts.start != nil {
			ss = [][]float64{opts.start}
		}
		for i, start := range ss {
			u, f, conv, iters := minimize(eval, start, opts.MaxEval, opts.Coarse, opts.refine)
			if f < best {
				best, bestU, m.Converged, m.Iterations = f, u, conv, iters
			}
			if i == 0 && conv && !math.IsInf(f, 1) && opts.start == nil {
				break
			}
		}
	}
	if math.IsInf(best, 1) {
		return nil, fmt.Errorf("forecast: ARIMA%v: the likelihood could not be evaluated", order)
	}
	if k == 0 {
		m.Converged = true
	}
	m.u = bestU
	m.set(bestU)
	if !m.flt.ok || math.IsNaN(m.LogLike) || math.IsInf(m.LogLike, 0) {
		return nil, fmt.Errorf("forecast: ARIMA%v: the likelihood could not be evaluated at the optimum", order)
	}
	if order.D > 0 {
		m.polish(bestU, opts.MaxEval, opts.Coarse)
		if !m.ff.ok {
			return nil, fmt.Errorf("forecast: ARIMA%v: the likelihood could not be evaluated at the optimum", order)
		}
	}
	return m, nil
}

// polish re-maximises, for d >= 1, statsmodels' own likelihood, whose
// approximate diffuse start (variance 1e6 for the differences) makes it
// differ slightly from the exact likelihood of the differences maximised
// first; sigma2 is then a free parameter (log scale).
func (m *Model) polish(u0 []float64, maxEval int, coarse bool) {
	o := m.Order
	ar := make([]float64, o.P)
	ma := make([]float64, o.Q)
	k := o.P + o.Q
	eval := func(x []float64) float64 {
		constrain(x[:k], o.P, o.Q, ar, ma)
		g, ok := newIntegrated(o.D, ar, ma)
		if !ok {
			return math.Inf(1)
		}
		ff := g.filter(m.y, math.Exp(x[k]), false)
		if !ff.ok || math.IsNaN(ff.llf) {
			return math.Inf(1)
		}
		return -ff.llf / float64(m.NEff)
	}
	x0 := append(append([]float64(nil), u0...), math.Log(m.Sigma2))
	x, f, conv, iters := minimize(eval, x0, maxEval, coarse, false)
	if f > eval(x0) {
		x = x0
	}
	m.Iterations += iters
	m.Converged = m.Converged && conv
	constrain(x[:k], o.P, o.Q, m.AR, m.MA)
	m.Sigma2 = math.Exp(x[k])
	m.g, _ = newIntegrated(o.D, m.AR, m.MA)
	m.ff = m.g.filter(m.y, m.Sigma2, true)
	m.LogLike = m.ff.llf
	m.fillStats()
}

func demeaned(w []float64) []float64 {
	var mean float64
	for _, v := range w {
		mean += v
	}
	mean /= float64(len(w))
	out := make([]float64, len(w))
	for i, v := range w {
		out[i] = v - mean
	}
	return out
}

func constant(w []float64) bool {
	for _, v := range w[1:] {
		if v != w[0] {
			return false
		}
	}
	return true
}

// set fixes the model at unconstrained parameters u and fills its statistics.
func (m *Model) set(u []float64) {
	o := m.Order
	m.AR = make([]float64, o.P)
	m.MA = make([]float64, o.Q)
	constrain(u, o.P, o.Q, m.AR, m.MA)
	s := newARMA(m.AR, m.MA)
	m.flt = s.filter(m.w, m.HasConst, true, &m.buf)
	m.LogLike, m.Const, m.Sigma2 = concentrated(m.flt, &m.buf, m.HasConst)
	m.fillStats()
}

// fillStats sets the parameter vector and the information criteria.
func (m *Model) fillStats() {
	mu := m.Const
	m.Names, m.Params = nil, nil
	if m.HasConst {
		m.Names = append(m.Names, "const")
		m.Params = append(m.Params, mu)
	}
	for i, v := range m.AR {
		m.Names = append(m.Names, fmt.Sprintf("ar.L%d", i+1))
		m.Params = append(m.Params, v)
	}
	for i, v := range m.MA {
		m.Names = append(m.Names, fmt.Sprintf("ma.L%d", i+1))
		m.Params = append(m.Params, v)
	}
	m.Names = append(m.Names, "sigma2")
	m.Params = append(m.Params, m.Sigma2)
	kp := float64(len(m.Params))
	n := float64(m.NEff)
	m.AIC = -2*m.LogLike + 2*kp
	m.BIC = -2*m.LogLike + kp*math.Log(n)
	m.AICc = m.AIC + 2*kp*(kp+1)/(n-kp-1)
	if n-kp-1 <= 0 {
		m.AICc = math.Inf(1)
	}
}

// minimize runs BFGS from x0 with forward-difference gradients to a loose
// tolerance, then (unless coarse) polishes with central differences to a
// tight one, restarting BFGS while it improves (on flat likelihoods, with
// roots near the unit circle, one run stops early); Nelder-Mead takes over
// when BFGS fails.
func minimize(f func([]float64) float64, x0 []float64, maxEval int, coarse, bounded bool) (x []float64, fx float64, converged bool, iters int) {
	run := func(x0 []float64, formula fd.Formula, step, gtol float64) (*optimize.Result, error) {
		grad := func(g, x []float64) {
			fd.Gradient(g, f, x, &fd.Settings{Formula: formula, Step: step})
		}
		settings := &optimize.Settings{
			GradientThreshold: gtol,
			FuncEvaluations:   maxEval,
			Converger:         &optimize.FunctionConverge{Absolute: gtol * 1e-3, Relative: gtol * 1e-3, Iterations: 20},
		}
		return optimize.Minimize(optimize.Problem{Func: f, Grad: grad}, x0, settings, &optimize.BFGS{})
	}
	ok := func(r *optimize.Result, err error) bool {
		return err == nil && (r.Status == optimize.GradientThreshold || r.Status == optimize.FunctionConvergence)
	}
	if bounded {
		maxEval = min(maxEval, 1500)
	}
	gtol := 1e-6
	if coarse {
		gtol = 1e-5
	}
	res, err := run(x0, fd.Forward, 1e-7, gtol)
	if res == nil || math.IsNaN(res.F) {
		return x0, f(x0), false, 0
	}
	x, fx, iters, converged = res.X, res.F, res.Stats.MajorIterations, ok(res, err)
	if coarse {
		return x, fx, converged, iters
	}
	// Newton steps with a finite-difference Hessian finish the job.
	maxNewton := 50
	if bounded {
		maxNewton = 6
	}
	if nx, nf, nconv, nit := newton(f, x, maxNewton); nf <= fx {
		x, fx, iters = nx, nf, iters+nit
		converged = nconv
	}
	if !converged {
		nm, err := optimize.Minimize(optimize.Problem{Func: f}, x, &optimize.Settings{FuncEvaluations: maxEval,
			Converger: &optimize.FunctionConverge{Absolute: 1e-13, Relative: 1e-13, Iterations: 200}}, &optimize.NelderMead{})
		if nm != nil && nm.F < fx {
			x, fx = nm.X, nm.F
			converged = err == nil
		}
	}
	return x, fx, converged, iters
}

// starts gives starting points: Hannan-Rissanen estimates (when stationary
// and invertible), small values, and zeros.
func starts(w []float64, o Order, withConst bool) [][]float64 {
	var out [][]float64
	if ar, ma, ok := hannanRissanen(w, o.P, o.Q, withConst); ok {
		if u, ok := unconstrain(ar, ma); ok {
			out = append(out, u)
		}
	}
	small := make([]float64, o.P+o.Q)
	for i := range small {
		small[i] = 0.1
	}
	out = append(out, small, make([]float64, o.P+o.Q))
	return out
}

// hannanRissanen estimates ARMA coefficients in two regressions (Hannan and
// Rissanen 1982): a long autoregression gives innovations, then w_t is
// regressed on its own lags and lagged innovations.
func hannanRissanen(w []float64, p, q int, demean bool) (ar, ma []float64, ok bool) {
	x := append([]float64(nil), w...)
	if demean {
		var mean float64
		for _, v := range x {
			mean += v
		}
		mean /= float64(len(x))
		for i := range x {
			x[i] -= mean
		}
	}
	n := len(x)
	e := make([]float64, n)
	start := 0
	if q > 0 {
		k := max(p+q, int(math.Ceil(10*math.Log10(float64(n)))))
		k = min(k, n/4)
		if k < 1 {
			return nil, nil, false
		}
		coef, ok := ols(x, k, nil, 0)
		if !ok {
			return nil, nil, false
		}
		for t := k; t < n; t++ {
			pred := 0.0
			for i := 0; i < k; i++ {
				pred += coef[i] * x[t-1-i]
			}
			e[t] = x[t] - pred
		}
		start = k
	}
	coef, ok := ols(x, p, e, q, start)
	if !ok {
		return nil, nil, false
	}
	return coef[:p], coef[p:], true
}

// ols regresses x_t on x_{t-1..t-p} and e_{t-1..t-q} for t >= start+max(p,q).
func ols(x []float64, p int, e []float64, q int, startOpt ...int) ([]float64, bool) {
	start := 0
	if len(startOpt) > 0 {
		start = startOpt[0]
	}
	t0 := start + max(p, q)
	rows := len(x) - t0
	cols := p + q
	if cols == 0 {
		return nil, true
	}
	if rows <= cols {
		return nil, false
	}
	a := mat.NewDense(rows, cols, nil)
	b := mat.NewVecDense(rows, nil)
	for r := 0; r < rows; r++ {
		t := t0 + r
		for i := 0; i < p; i++ {
			a.Set(r, i, x[t-1-i])
		}
		for j := 0; j < q; j++ {
			a.Set(r, p+j, e[t-1-j])
		}
		b.SetVec(r, x[t])
	}
	var sol mat.VecDense
	if err := sol.SolveVec(a, b); err != nil {
		return nil, false
	}
	out := make([]float64, cols)
	for i := range out {
		out[i] = sol.AtVec(i)
		if math.IsNaN(out[i]) {
			return nil, false
		}
	}
	return out, true
}
