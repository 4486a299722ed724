package forecast

import "math"

// approxDiffuse is the initial variance statsmodels gives the differencing
// states of an ARIMA with d >= 1 (SARIMAX's approximate diffuse
// initialisation, 1e6); their first d observations are then left out of the
// likelihood (loglikelihood_burn = d).
const approxDiffuse = 1e6

// integrated is the state-space form statsmodels uses for ARIMA(p, d, q)
// with d >= 1 (simple_differencing=False): the state holds the d differences
// Delta^i y_{t-1}, i < d, then the ARMA state a_t:
//
//	y_t           = sum_i Delta^i y_{t-1} + a_t[0]
//	Delta^i y_t   = sum_{j>=i} Delta^j y_{t-1} + a_t[0]
//	a_{t+1}       = T a_t + R e_t,  e_t ~ N(0, sigma2)
type integrated struct {
	d, m, k int
	arma    arma
	t       []float64 // k x k transition
	rr      []float64 // R R' (k x k), unit variance
	p0arma  []float64 // stationary covariance of the ARMA block, unit variance
}

func newIntegrated(d int, ar, ma []float64) (*integrated, bool) {
	s := newARMA(ar, ma)
	p0, ok := s.stationaryCov()
	if !ok {
		return nil, false
	}
	k := d + s.m
	g := &integrated{d: d, m: s.m, k: k, arma: s, t: make([]float64, k*k), rr: make([]float64, k*k), p0arma: p0}
	for i := 0; i < d; i++ {
		for j := i; j < d; j++ {
			g.t[i*k+j] = 1
		}
		g.t[i*k+d] = 1 // + a_t[0]
	}
	for i := 0; i < s.m; i++ {
		g.t[(d+i)*k+d] = s.phi[i]
		if i+1 < s.m {
			g.t[(d+i)*k+d+i+1] = 1
		}
	}
	for i := 0; i < s.m; i++ {
		for j := 0; j < s.m; j++ {
			g.rr[(d+i)*k+d+j] = s.r[i] * s.r[j]
		}
	}
	return g, true
}

// fullFilter holds the output of the integrated filter.
type fullFilter struct {
	llf  float64
	v, f []float64 // innovations and their variances (absolute), all t
	a, p []float64 // predicted state and covariance after the last observation
	ok   bool
}

// filter runs the Kalman filter with innovation variance sigma2 over y and
// returns statsmodels' log-likelihood (first d observations burned).
func (g *integrated) filter(y []float64, sigma2 float64, keep bool) fullFilter {
	k := g.k
	n := len(y)
	a := make([]float64, k)
	p := make([]float64, k*k)
	for i := 0; i < g.d; i++ {
		p[i*k+i] = approxDiffuse
	}
	for i := 0; i < g.m; i++ {
		for j := 0; j < g.m; j++ {
			p[(g.d+i)*k+g.d+j] = sigma2 * g.p0arma[i*g.m+j]
		}
	}
	out := fullFilter{}
	if keep {
		out.v, out.f = make([]float64, n), make([]float64, n)
	}
	z := func(x []float64) float64 { // Z x: sum of the first d entries and a_t[0]
		var s float64
		for i := 0; i <= g.d; i++ {
			s += x[i]
		}
		return s
	}
	pz := make([]float64, k)
	kg := make([]float64, k)
	na := make([]float64, k)
	tp := make([]float64, k*k)
	np := make([]float64, k*k)
	steady := false
	var fv float64
	llf := 0.0
	for t := 0; t < n; t++ {
		if !steady {
			// pz = P Z'
			for i := 0; i < k; i++ {
				var s float64
				for j := 0; j <= g.d; j++ {
					s += p[i*k+j]
				}
				pz[i] = s
			}
			fv = z(pz)
			if !(fv > 0) || math.IsInf(fv, 0) {
				return out
			}
			// K = T P Z' / F
			for i := 0; i < k; i++ {
				var s float64
				for j := 0; j < k; j++ {
					s += g.t[i*k+j] * pz[j]
				}
				kg[i] = s / fv
			}
		}
		v := y[t] - z(a)
		if keep {
			out.v[t], out.f[t] = v, fv
		}
		if t >= g.d {
			llf += -0.5 * (math.Log(2*math.Pi) + math.Log(fv) + v*v/fv)
		}
		for i := 0; i < k; i++ {
			var s float64
			for j := 0; j < k; j++ {
				s += g.t[i*k+j] * a[j]
			}
			na[i] = s + kg[i]*v
		}
		copy(a, na)
		if !steady {
			// P = T P T' + sigma2 R R' - K K' F
			for i := 0; i < k; i++ {
				for j := 0; j < k; j++ {
					var s float64
					for l := 0; l < k; l++ {
						s += g.t[i*k+l] * p[l*k+j]
					}
					tp[i*k+j] = s
				}
			}
			var change, scale float64
			for i := 0; i < k; i++ {
				for j := 0; j < k; j++ {
					var s float64
					for l := 0; l < k; l++ {
						s += tp[i*k+l] * g.t[j*k+l]
					}
					s += sigma2*g.rr[i*k+j] - kg[i]*kg[j]*fv
					np[i*k+j] = s
					change = math.Max(change, math.Abs(s-p[i*k+j]))
					scale = math.Max(scale, math.Abs(s))
				}
			}
			copy(p, np)
			if t > g.d+1 && change <= 1e-14*scale {
				steady = true
			}
		}
	}
	out.llf, out.a, out.p, out.ok = llf, a, p, true
	return out
}

// forecast projects the state h steps: means and variances of y_{n+1..n+h}.
func (g *integrated) forecast(ff fullFilter, sigma2 float64, h int) (mean, variance []float64) {
	k := g.k
	a := append([]float64(nil), ff.a...)
	p := append([]float64(nil), ff.p...)
	mean, variance = make([]float64, h), make([]float64, h)
	na := make([]float64, k)
	tp := make([]float64, k*k)
	for s := 0; s < h; s++ {
		var m, v float64
		for i := 0; i <= g.d; i++ {
			m += a[i]
			for j := 0; j <= g.d; j++ {
				v += p[i*k+j]
			}
		}
		mean[s], variance[s] = m, v
		for i := 0; i < k; i++ {
			var sum float64
			for j := 0; j < k; j++ {
				sum += g.t[i*k+j] * a[j]
			}
			na[i] = sum
		}
		copy(a, na)
		for i := 0; i < k; i++ {
			for j := 0; j < k; j++ {
				var sum float64
				for l := 0; l < k; l++ {
					sum += g.t[i*k+l] * p[l*k+j]
				}
				tp[i*k+j] = sum
			}
		}
		for i := 0; i < k; i++ {
			for j := 0; j < k; j++ {
				var sum float64
				for l := 0; l < k; l++ {
					sum += tp[i*k+l] * g.t[j*k+l]
				}
				p[i*k+j] = sum + sigma2*g.rr[i*k+j]
			}
		}
	}
	return mean, variance
}
