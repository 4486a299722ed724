package forecast

import "math"

// arma is the state-space form of a zero-mean ARMA(p, q) with unit innovation
// variance, as statsmodels' SARIMAX writes it (Harvey's form):
//
//	w_t     = Z a_t,                 Z = (1, 0, ..., 0)
//	a_{t+1} = T a_t + R e_{t+1},     T: first column (phi_1..phi_p), ones above the diagonal
//	                                 R = (1, theta_1, ..., theta_{m-1})
//
// with m = max(p, q+1) states and e_t ~ N(0, 1).
type arma struct {
	m   int
	phi []float64 // length m (zero-padded)
	r   []float64 // length m: 1, theta...
}

func newARMA(ar, ma []float64) arma {
	m := max(len(ar), len(ma)+1)
	s := arma{m: m, phi: make([]float64, m), r: make([]float64, m)}
	copy(s.phi, ar)
	s.r[0] = 1
	copy(s.r[1:], ma)
	return s
}

// tMul sets out = T x.
func (s *arma) tMul(out, x []float64) {
	m := s.m
	x0 := x[0]
	for i := 0; i < m-1; i++ {
		out[i] = s.phi[i]*x0 + x[i+1]
	}
	out[m-1] = s.phi[m-1] * x0
}

// tpt sets out = T P T' for symmetric m x m P (row-major).
func (s *arma) tpt(out, p, tmp []float64) {
	m := s.m
	// tmp = T P: row i = phi_i * P[0,:] + P[i+1,:]
	for i := 0; i < m; i++ {
		for j := 0; j < m; j++ {
			v := s.phi[i] * p[j]
			if i+1 < m {
				v += p[(i+1)*m+j]
			}
			tmp[i*m+j] = v
		}
	}
	// out = tmp T': column j of T' is row j of T.
	for i := 0; i < m; i++ {
		row := tmp[i*m : (i+1)*m]
		for j := 0; j < m; j++ {
			v := row[0] * s.phi[j]
			if j+1 < m {
				v += row[j+1]
			}
			out[i*m+j] = v
		}
	}
}

// stationaryCov solves P = T P T' + R R' by the doubling algorithm. It
// returns false when the recursion does not settle (T not stable).
func (s *arma) stationaryCov() ([]float64, bool) {
	m := s.m
	p := make([]float64, m*m)
	for i := 0; i < m; i++ {
		for j := 0; j < m; j++ {
			p[i*m+j] = s.r[i] * s.r[j]
		}
	}
	// A = T as a dense matrix.
	a := make([]float64, m*m)
	for i := 0; i < m; i++ {
		a[i*m] = s.phi[i]
		if i+1 < m {
			a[i*m+i+1] = 1
		}
	}
	tmp := make([]float64, m*m)
	apa := make([]float64, m*m)
	for it := 0; it < 100; it++ {
		// apa = A P A'
		matMul(tmp, a, p, m)
		matMulT(apa, tmp, a, m)
		var change, scale float64
		for i := range p {
			change = math.Max(change, math.Abs(apa[i]))
			scale = math.Max(scale, math.Abs(p[i]))
			p[i] += apa[i]
		}
		if change <= 1e-15*scale {
			return p, true
		}
		matMul(tmp, a, a, m)
		copy(a, tmp)
		if math.IsInf(scale, 0) || math.IsNaN(scale) {
			return nil, false
		}
	}
	return nil, false
}

func matMul(out, a, b []float64, m int) {
	for i := 0; i < m; i++ {
		for j := 0; j < m; j++ {
			var v float64
			for k := 0; k < m; k++ {
				v += a[i*m+k] * b[k*m+j]
			}
			out[i*m+j] = v
		}
	}
}

// matMulT sets out = a b'.
func matMulT(out, a, b []float64, m int) {
	for i := 0; i < m; i++ {
		for j := 0; j < m; j++ {
			var v float64
			for k := 0; k < m; k++ {
				v += a[i*m+k] * b[j*m+k]
			}
			out[i*m+j] = v
		}
	}
}

// filterResult holds a Kalman pass with unit innovation variance over w and,
// when withMean, over a column of ones (for the GLS mean).
type filterResult struct {
	n          int
	sumLogF    float64
	vw, v1     []float64 // innovations of w and of the ones column
	f          []float64 // innovation variances
	aw, a1     []float64 // predicted states after the last observation (a_{n+1})
	pEnd       []float64 // P_{n+1}
	steadyFrom int
	ok         bool
}

// filter runs the Kalman filter. keep retains per-step innovations (for
// residuals and in-sample predictions); without it only sums are kept.
func (s *arma) filter(w []float64, withMean, keep bool, buf *filterBuf) filterResult {
	m := s.m
	n := len(w)
	res := filterResult{n: n, steadyFrom: -1}
	p0, ok := s.stationaryCov()
	if !ok {
		return res
	}
	buf.reset(m, n, keep)
	p, tmp, tpt := buf.p, buf.tmp, buf.tpt
	copy(p, p0)
	aw, a1 := buf.aw, buf.a1
	clear(aw)
	clear(a1)
	k := buf.k
	nw, n1 := buf.nw, buf.n1
	steady := false
	var f float64
	var sumLogF, sww, sw1, s11 float64
	for t := 0; t < n; t++ {
		if !steady {
			f = p[0]
			if !(f > 0) || math.IsInf(f, 0) {
				return res
			}
			// K = T P[:,0] / F
			for i := 0; i < m; i++ {
				v := s.phi[i] * p[0]
				if i+1 < m {
					v += p[(i+1)*m]
				}
				k[i] = v / f
			}
		}
		vw := w[t] - aw[0]
		v1 := 1 - a1[0]
		sumLogF += math.Log(f)
		sww += vw * vw / f
		if withMean {
			sw1 += vw * v1 / f
			s11 += v1 * v1 / f
		}
		if keep {
			buf.vw[t], buf.f[t] = vw, f
			if withMean {
				buf.v1[t] = v1
			}
		}
		s.tMul(nw, aw)
		for i := 0; i < m; i++ {
			aw[i] = nw[i] + k[i]*vw
		}
		if withMean {
			s.tMul(n1, a1)
			for i := 0; i < m; i++ {
				a1[i] = n1[i] + k[i]*v1
			}
		}
		if !steady {
			s.tpt(tpt, p, tmp)
			// The gain and F depend on the first column of P only; the filter is
			// steady once that column stops moving (relative 1e-14).
			var change float64
			for i := 0; i < m; i++ {
				for j := 0; j < m; j++ {
					v := tpt[i*m+j] + s.r[i]*s.r[j] - k[i]*k[j]*f
					if j == 0 {
						if dv := v - p[i*m]; dv > change {
							change = dv
						} else if -dv > change {
							change = -dv
						}
					}
					p[i*m+j] = v
				}
			}
			// Freeze only when the column stopped moving altogether: with MA roots on
			// the unit circle P converges like 1/t, and an earlier freeze would
			// cost ~1e-7 in the likelihood. (The optimiser uses chandrasekhar.)
			if change == 0 {
				steady = true
				res.steadyFrom = t + 1
			}
		}
	}
	res.sumLogF = sumLogF
	buf.sww, buf.sw1, buf.s11 = sww, sw1, s11
	res.aw, res.a1, res.pEnd = aw, a1, p
	if keep {
		res.vw, res.v1, res.f = buf.vw, buf.v1, buf.f
	}
	res.ok = true
	return res
}

// filterBuf holds reusable scratch memory for filter.
type filterBuf struct {
	p, tmp, tpt, aw, a1, k, nw, n1 []float64
	vw, v1, f                      []float64
	sww, sw1, s11                  float64
}

func (b *filterBuf) reset(m, n int, keep bool) {
	grow := func(s []float64, l int) []float64 {
		if cap(s) < l {
			return make([]float64, l)
		}
		return s[:l]
	}
	b.p, b.tmp, b.tpt = grow(b.p, m*m), grow(b.tmp, m*m), grow(b.tpt, m*m)
	b.aw, b.a1, b.k, b.nw, b.n1 = grow(b.aw, m), grow(b.a1, m), grow(b.k, m), grow(b.nw, m), grow(b.n1, m)
	if keep {
		b.vw, b.v1, b.f = grow(b.vw, n), grow(b.v1, n), grow(b.f, n)
	}
}

// concentrated returns the log-likelihood with the innovation variance (and,
// withMean, the mean) at their maximum-likelihood values for these ARMA
// coefficients (profile likelihood), with the estimates:
//
//	mu     = sum(v1 vw / F) / sum(v1^2 / F)     (GLS)
//	sigma2 = sum((vw - mu v1)^2 / F) / n
//	llf    = -n/2 (log 2 pi + log sigma2 + 1) - 1/2 sum log F
func concentrated(res filterResult, buf *filterBuf, withMean bool) (llf, mu, sigma2 float64) {
	n := float64(res.n)
	ss := buf.sww
	if withMean && buf.s11 > 0 {
		mu = buf.sw1 / buf.s11
		ss = buf.sww - 2*mu*buf.sw1 + mu*mu*buf.s11
	}
	sigma2 = ss / n
	if !(sigma2 > 0) {
		return math.Inf(-1), mu, sigma2
	}
	llf = -0.5*n*(math.Log(2*math.Pi)+math.Log(sigma2)+1) - 0.5*res.sumLogF
	return llf, mu, sigma2
}

// chandrasekhar computes the same innovations and log-likelihood terms as
// filter, but propagates the gain with the Chandrasekhar recursions (Morf,
// Sidhu and Kailath 1974; Herbst 2015): starting from the stationary
// covariance, P_{t+1} - P_t = w_t m_t w_t' has rank one, so
//
//	F_{t+1} = F_t + m_t (Z w_t)^2
//	G_{t+1} = G_t + m_t (Z w_t) T w_t            (G = T P Z', K = G / F)
//	m_{t+1} = m_t F_t / F_{t+1}
//	w_{t+1} = T w_t - K_t (Z w_t)
//
// costs O(m) per step instead of O(m^2). It does not give P at the end, so it
// serves the optimiser; the final model runs filter.
func (s *arma) chandrasekhar(w []float64, withMean bool, buf *filterBuf) filterResult {
	m := s.m
	n := len(w)
	res := filterResult{n: n}
	p0, ok := s.stationaryCov()
	if !ok {
		return res
	}
	buf.reset(m, n, false)
	aw, a1, g, k, ww, tw := buf.aw, buf.a1, buf.k, buf.nw, buf.n1, buf.tmp[:m]
	clear(aw)
	clear(a1)
	// G_1 = T P_1 Z' (first column of P_1, through T); F_1 = P_1[0,0].
	col := buf.tpt[:m]
	for i := 0; i < m; i++ {
		col[i] = p0[i*m]
	}
	s.tMul(g, col)
	f := p0[0]
	if !(f > 0) {
		return res
	}
	// P_2 - P_1 = -G_1 G_1' / F_1: w_1 = G_1, m_1 = -1/F_1.
	copy(ww, g)
	mt := -1 / f
	var sumLogF, sww, sw1, s11 float64
	steady := false
	logF := math.Log(f)
	for t := 0; t < n; t++ {
		invF := 1 / f
		for i := 0; i < m; i++ {
			k[i] = g[i] * invF
		}
		vw := w[t] - aw[0]
		sumLogF += logF
		sww += vw * vw * invF
		if withMean {
			v1 := 1 - a1[0]
			sw1 += vw * v1 * invF
			s11 += v1 * v1 * invF
			s.tMul(tw, a1)
			for i := 0; i < m; i++ {
				a1[i] = tw[i] + k[i]*v1
			}
		}
		s.tMul(tw, aw)
		for i := 0; i < m; i++ {
			aw[i] = tw[i] + k[i]*vw
		}
		if steady {
			continue
		}
		zw := ww[0]
		step := mt * zw * zw
		fNext := f + step
		if !(fNext > 0) {
			return res
		}
		s.tMul(tw, ww)
		for i := 0; i < m; i++ {
			g[i] += mt * zw * tw[i]
			ww[i] = tw[i] - k[i]*zw
		}
		mt *= f / fNext
		// Steady when the whole update m w w' vanishes, not just its first
		// entry: Z w oscillates through zero while w decays.
		var norm2 float64
		for _, v := range ww {
			norm2 += v * v
		}
		if math.Abs(mt)*norm2 <= 1e-15*fNext {
			steady = true
		}
		f = fNext
		logF = math.Log(f)
	}
	res.sumLogF = sumLogF
	buf.sww, buf.sw1, buf.s11 = sww, sw1, s11
	res.ok = true
	return res
}
