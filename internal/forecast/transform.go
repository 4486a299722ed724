package forecast

import "math"

// Stationarity and invertibility are enforced by optimising over partial
// autocorrelations (Barndorff-Nielsen and Schou 1973; Jones 1980; Monahan
// 1984, as statsmodels does): each unconstrained u_k maps to
// r_k = u_k / sqrt(1 + u_k^2) in (-1, 1), and the Durbin-Levinson recursion
// turns r_1..r_p into the coefficients of a stationary AR polynomial. MA
// coefficients use the same map with the sign flipped, which makes
// 1 + theta_1 L + ... + theta_q L^q invertible.

// pacfToAR maps partial autocorrelations to AR coefficients (y_t = sum phi_i y_{t-i} + ...).
func pacfToAR(r []float64, out []float64) {
	p := len(r)
	var prev [MaxOrder + 1]float64
	for k := 0; k < p; k++ {
		out[k] = r[k]
		for i := 0; i < k; i++ {
			out[i] = prev[i] - r[k]*prev[k-1-i]
		}
		copy(prev[:k+1], out[:k+1])
	}
}

// arToPACF inverts pacfToAR; ok is false when phi is not stationary.
func arToPACF(phi []float64) (r []float64, ok bool) {
	p := len(phi)
	r = make([]float64, p)
	cur := append([]float64(nil), phi...)
	for k := p - 1; k >= 0; k-- {
		rk := cur[k]
		if math.Abs(rk) >= 1 {
			return nil, false
		}
		r[k] = rk
		next := make([]float64, k)
		den := 1 - rk*rk
		for i := 0; i < k; i++ {
			next[i] = (cur[i] + rk*cur[k-1-i]) / den
		}
		cur = next
	}
	return r, true
}

// constrain maps unconstrained parameters (p AR then q MA) to coefficients.
func constrain(u []float64, p, q int, ar, ma []float64) {
	var r [MaxOrder + 1]float64
	for i := 0; i < p; i++ {
		r[i] = u[i] / math.Sqrt(1+u[i]*u[i])
	}
	pacfToAR(r[:p], ar)
	for i := 0; i < q; i++ {
		r[i] = u[p+i] / math.Sqrt(1+u[p+i]*u[p+i])
	}
	pacfToAR(r[:q], ma)
	for i := 0; i < q; i++ {
		ma[i] = -ma[i]
	}
}

// unconstrain inverts constrain; ok is false when the coefficients are not
// stationary and invertible.
func unconstrain(ar, ma []float64) (u []float64, ok bool) {
	ra, ok1 := arToPACF(ar)
	neg := make([]float64, len(ma))
	for i, v := range ma {
		neg[i] = -v
	}
	rm, ok2 := arToPACF(neg)
	if !ok1 || !ok2 {
		return nil, false
	}
	for _, r := range append(ra, rm...) {
		u = append(u, r/math.Sqrt(1-r*r))
	}
	return u, true
}
