package forecast

import (
	"math"

	"gonum.org/v1/gonum/mat"
)

// newton polishes a minimum of f from x with damped Newton steps
// (Levenberg-Marquardt on the Hessian): the gradient and Hessian come from
// central differences (2k^2 + 2k + 1 evaluations per step), and the damping
// grows until a step lowers f. Near the optimum it converges quadratically,
// where BFGS from a fresh start crawls along the flat, narrow valleys of
// over-parameterised ARMA likelihoods.
func newton(f func([]float64) float64, x []float64, maxIter int) (xs []float64, fx float64, converged bool, iters int) {
	k := len(x)
	x = append([]float64(nil), x...)
	fx = f(x)
	if k == 0 || math.IsInf(fx, 1) {
		return x, fx, true, 0
	}
	g := make([]float64, k)
	h := mat.NewSymDense(k, nil)
	y := make([]float64, k)
	lambda := 1e-6
	for iters = 0; iters < maxIter; iters++ {
		steps := make([]float64, k)
		for i := range steps {
			steps[i] = 1e-4 * math.Max(1, math.Abs(x[i]))
		}
		at := func(di, dj int, si, sj float64) float64 {
			copy(y, x)
			if di >= 0 {
				y[di] += si
			}
			if dj >= 0 {
				y[dj] += sj
			}
			return f(y)
		}
		plus := make([]float64, k)
		minus := make([]float64, k)
		for i := 0; i < k; i++ {
			plus[i] = at(i, -1, steps[i], 0)
			minus[i] = at(i, -1, -steps[i], 0)
			g[i] = (plus[i] - minus[i]) / (2 * steps[i])
			h.SetSym(i, i, (plus[i]-2*fx+minus[i])/(steps[i]*steps[i]))
		}
		for i := 0; i < k; i++ {
			for j := i + 1; j < k; j++ {
				si, sj := steps[i], steps[j]
				v := (at(i, j, si, sj) - at(i, j, si, -sj) - at(i, j, -si, sj) + at(i, j, -si, -sj)) / (4 * si * sj)
				h.SetSym(i, j, v)
			}
		}
		var gnorm float64
		for _, v := range g {
			gnorm = math.Max(gnorm, math.Abs(v))
		}
		if gnorm < 1e-10 {
			return x, fx, true, iters
		}
		improved := false
		for tries := 0; tries < 30; tries++ {
			damped := mat.NewSymDense(k, nil)
			damped.CopySym(h)
			var diag float64
			for i := 0; i < k; i++ {
				diag = math.Max(diag, math.Abs(h.At(i, i)))
			}
			for i := 0; i < k; i++ {
				damped.SetSym(i, i, h.At(i, i)+lambda*math.Max(diag, 1e-8))
			}
			var ch mat.Cholesky
			if !ch.Factorize(damped) {
				lambda *= 10
				continue
			}
			var p mat.VecDense
			if err := ch.SolveVecTo(&p, mat.NewVecDense(k, g)); err != nil {
				lambda *= 10
				continue
			}
			for i := 0; i < k; i++ {
				y[i] = x[i] - p.AtVec(i)
			}
			fy := f(y)
			if fy < fx {
				gain := fx - fy
				copy(x, y)
				fx = fy
				lambda = math.Max(lambda/10, 1e-12)
				improved = true
				if gain < 1e-13*math.Max(1, math.Abs(fx)) {
					return x, fx, true, iters + 1
				}
				break
			}
			lambda *= 10
		}
		if !improved {
			// No step lowers f: at the optimum up to what differences can resolve.
			return x, fx, gnorm < 1e-6, iters
		}
	}
	return x, fx, false, iters
}
