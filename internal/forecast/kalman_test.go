package forecast

import (
	"gonum.org/v1/gonum/mat"
	"math"
	"math/rand/v2"
	"testing"
)

// TestChandrasekharMatchesKalman compares the fast recursions with the full
// Kalman filter on random stationary, invertible ARMA models.
func TestChandrasekharMatchesKalman(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	w := make([]float64, 500)
	for i := range w {
		w[i] = rng.NormFloat64() + 0.3
	}
	for trial := 0; trial < 200; trial++ {
		p, q := rng.IntN(6), rng.IntN(6)
		u := make([]float64, p+q)
		for i := range u {
			u[i] = rng.NormFloat64()
		}
		ar, ma := make([]float64, p), make([]float64, q)
		constrain(u, p, q, ar, ma)
		s := newARMA(ar, ma)
		for _, mean := range []bool{false, true} {
			var b1, b2 filterBuf
			full := s.filter(w, mean, false, &b1)
			fast := s.chandrasekhar(w, mean, &b2)
			l1, mu1, s1 := concentrated(full, &b1, mean)
			l2, mu2, s2 := concentrated(fast, &b2, mean)
			if math.Abs(l1-l2) > 1e-8*math.Abs(l1) || math.Abs(mu1-mu2) > 1e-8 || math.Abs(s1-s2) > 1e-8*s1 {
				t.Fatalf("ARMA(%d,%d) ar %v ma %v: llf %v vs %v, mu %v vs %v, sigma2 %v vs %v", p, q, ar, ma, l1, l2, mu1, mu2, s1, s2)
			}
		}
	}
}

// TestKalmanMatchesCovariance checks the filter's likelihood against the
// definition: the Gaussian density of w under the ARMA's autocovariance
// matrix (gamma(k) = Z T^k P Z'), by Cholesky, O(n^3).
func TestKalmanMatchesCovariance(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	w := make([]float64, 300)
	for i := range w {
		w[i] = rng.NormFloat64() + 0.3
	}
	for trial := 0; trial < 20; trial++ {
		p, q := rng.IntN(4), rng.IntN(4)
		u := make([]float64, p+q)
		for i := range u {
			u[i] = rng.NormFloat64()
		}
		ar, ma := make([]float64, p), make([]float64, q)
		constrain(u, p, q, ar, ma)
		s := newARMA(ar, ma)
		var b filterBuf
		got, _, _ := concentrated(s.filter(w, false, false, &b), &b, false)
		want := covarianceLLF(s, w)
		if math.Abs(got-want) > 1e-8*math.Abs(want) {
			t.Errorf("ARMA(%d,%d): Kalman %.10f, covariance %.10f", p, q, got, want)
		}
	}
}

func covarianceLLF(s arma, w []float64) float64 {
	n, m := len(w), s.m
	p, _ := s.stationaryCov()
	col, next := make([]float64, m), make([]float64, m)
	for i := 0; i < m; i++ {
		col[i] = p[i*m]
	}
	gam := make([]float64, n)
	for k := 0; k < n; k++ {
		gam[k] = col[0]
		s.tMul(next, col)
		copy(col, next)
	}
	g := mat.NewSymDense(n, nil)
	for i := 0; i < n; i++ {
		for j := i; j < n; j++ {
			g.SetSym(i, j, gam[j-i])
		}
	}
	var ch mat.Cholesky
	if !ch.Factorize(g) {
		return math.NaN()
	}
	x := mat.NewVecDense(n, append([]float64(nil), w...))
	var sol mat.VecDense
	ch.SolveVecTo(&sol, x)
	sigma2 := mat.Dot(x, &sol) / float64(n)
	return -0.5*float64(n)*(math.Log(2*math.Pi)+math.Log(sigma2)+1) - 0.5*ch.LogDet()
}
