package forecast

import (
	"errors"
	"fmt"
	"math"
	"runtime"
	"sort"
	"sync"
)

// AutoOptions configure order selection. Zero values give the defaults.
type AutoOptions struct {
	MaxP, MaxQ int // largest p and q tried (default 5)
	MaxD       int // largest d (default 2)
	// D fixes d instead of choosing it by KPSS when FixD is set.
	D    int
	FixD bool
	// Alpha is the KPSS significance level for differencing (default 0.05).
	Alpha float64
	// Stepwise searches as Hyndman and Khandakar (2008) instead of fitting the
	// whole grid: fewer fits, the same criterion, possibly a local optimum.
	Stepwise bool
	Workers  int // parallel fits (default GOMAXPROCS)
	Fit      FitOptions
}

// Candidate is one order tried during selection.
type Candidate struct {
	Order     Order   `json:"order"`
	AICc      float64 `json:"aicc"`
	LogLike   float64 `json:"loglike"`
	Converged bool    `json:"converged"`
	Err       string  `json:"error,omitempty"`
}

// Selection records how Auto chose.
type Selection struct {
	D     int          `json:"d"`
	KPSS  []KPSSResult `json:"kpss"` // the test at d = 0, 1, ... as run
	Tried []Candidate  `json:"tried"`
	Why   string       `json:"why"`
}

// Auto chooses d by repeated KPSS tests (difference while the test rejects
// stationarity at Alpha, up to MaxD), then p, q <= MaxP, MaxQ by the lowest
// AICc, fitting the grid in parallel (or stepwise). A constant series gets
// ConstantModel and says so in Why.
func Auto(y []float64, opts AutoOptions) (*Model, *Selection, error) {
	if opts.MaxP == 0 && opts.MaxQ == 0 {
		opts.MaxP, opts.MaxQ = 5, 5
	}
	if opts.MaxD == 0 {
		opts.MaxD = 2
	}
	if opts.Alpha == 0 {
		opts.Alpha = 0.05
	}
	if opts.Workers <= 0 {
		opts.Workers = runtime.GOMAXPROCS(0)
	}
	for _, v := range y {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, nil, ErrNotFinite
		}
	}
	if len(y) < 3 {
		return nil, nil, fmt.Errorf("%w: %d observations", ErrTooShort, len(y))
	}
	sel := &Selection{}
	if constant(y) {
		sel.Why = "the series is constant: its forecast is that constant, with no uncertainty"
		return ConstantModel(y), sel, nil
	}
	if constant(Diff(y, 1)) {
		sel.Why = "the series is a straight line: its forecast continues the line, with no uncertainty"
		return lineModel(y), sel, nil
	}
	d := opts.D
	if !opts.FixD {
		d = 0
		for d < opts.MaxD {
			w := Diff(y, d)
			if len(w) < 10 || constant(w) {
				break
			}
			k := KPSS(w)
			sel.KPSS = append(sel.KPSS, k)
			if k.PValue >= opts.Alpha {
				break
			}
			d++
		}
	}
	if w := Diff(y, d); constant(w) {
		// Differencing removed everything (a polynomial trend): one less.
		d = max(d-1, 0)
	}
	sel.D = d
	var orders []Order
	if opts.Stepwise {
		return stepwise(y, d, opts, sel)
	}
	for p := 0; p <= opts.MaxP; p++ {
		for q := 0; q <= opts.MaxQ; q++ {
			orders = append(orders, Order{p, d, q})
		}
	}
	// Rank every order with a coarse fit; refine the winner, and any order
	// within 2 AICc of it, from where its coarse fit stopped.
	coarse := opts
	coarse.Fit.Coarse = true
	models := fitAll(y, orders, coarse)
	win := -1
	for i := range orders {
		if models[i].err == nil && (win < 0 || models[i].m.AICc < models[win].m.AICc) {
			win = i
		}
	}
	if win >= 0 {
		var close []int
		for i := range orders {
			if models[i].err == nil && models[i].m.AICc <= models[win].m.AICc+2 {
				close = append(close, i)
			}
		}
		sort.SliceStable(close, func(a, b int) bool { return models[close[a]].m.AICc < models[close[b]].m.AICc })
		if len(close) > 3 {
			close = close[:3]
		}
		var wg sync.WaitGroup
		for _, r := range close {
			wg.Add(1)
			go func() {
				defer wg.Done()
				fo := opts.Fit
				fo.start = models[r].m.u
				fo.refine = true
				if m, err := Fit(y, orders[r], fo); err == nil && m.LogLike >= models[r].m.LogLike {
					models[r] = fitted{m: m}
				}
			}()
		}
		wg.Wait()
	}
	best := -1
	for i, o := range orders {
		c := Candidate{Order: o, AICc: math.Inf(1)}
		if models[i].err != nil {
			c.Err = models[i].err.Error()
		} else {
			c.AICc, c.LogLike, c.Converged = models[i].m.AICc, models[i].m.LogLike, models[i].m.Converged
			if best < 0 || c.AICc < sel.Tried[best].AICc {
				best = i
			}
		}
		sel.Tried = append(sel.Tried, c)
	}
	if best < 0 {
		return nil, sel, errors.Join(fmt.Errorf("forecast: no ARIMA order could be fitted"), models[0].err)
	}
	m := models[best].m
	sel.Why = why(sel, m, len(orders))
	return m, sel, nil
}

func why(sel *Selection, m *Model, n int) string {
	s := ""
	if len(sel.KPSS) > 0 {
		last := sel.KPSS[len(sel.KPSS)-1]
		s = fmt.Sprintf("d = %d: KPSS p-value %.3f on the %s series; ", sel.D, last.PValue, map[bool]string{true: "differenced", false: "original"}[sel.D > 0 || len(sel.KPSS) > 1])
	}
	return s + fmt.Sprintf("ARIMA%v has the lowest AICc (%.2f) of %d orders fitted", m.Order, m.AICc, n)
}

type fitted struct {
	m   *Model
	err error
}

func fitAll(y []float64, orders []Order, opts AutoOptions) []fitted {
	out := make([]fitted, len(orders))
	jobs := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < opts.Workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				m, err := Fit(y, orders[i], opts.Fit)
				out[i] = fitted{m, err}
			}
		}()
	}
	// Largest models first: they take longest.
	idx := make([]int, len(orders))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool {
		return orders[idx[a]].P+orders[idx[a]].Q > orders[idx[b]].P+orders[idx[b]].Q
	})
	for _, i := range idx {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	return out
}

// stepwise is Hyndman and Khandakar's search: start from the best of
// (2,d,2), (0,d,0), (1,d,0), (0,d,1), then move p and q by one while AICc improves.
func stepwise(y []float64, d int, opts AutoOptions, sel *Selection) (*Model, *Selection, error) {
	seen := map[Order]bool{}
	var best *Model
	try := func(orders []Order) bool {
		var todo []Order
		for _, o := range orders {
			if o.P < 0 || o.Q < 0 || o.P > opts.MaxP || o.Q > opts.MaxQ || seen[o] {
				continue
			}
			seen[o] = true
			todo = append(todo, o)
		}
		improved := false
		for i, f := range fitAll(y, todo, opts) {
			c := Candidate{Order: todo[i], AICc: math.Inf(1)}
			if f.err != nil {
				c.Err = f.err.Error()
			} else {
				c.AICc, c.LogLike, c.Converged = f.m.AICc, f.m.LogLike, f.m.Converged
				if best == nil || f.m.AICc < best.AICc {
					best, improved = f.m, true
				}
			}
			sel.Tried = append(sel.Tried, c)
		}
		return improved
	}
	try([]Order{{2, d, 2}, {0, d, 0}, {1, d, 0}, {0, d, 1}})
	for best != nil {
		p, q := best.Order.P, best.Order.Q
		if !try([]Order{{p - 1, d, q}, {p + 1, d, q}, {p, d, q - 1}, {p, d, q + 1}, {p - 1, d, q - 1}, {p + 1, d, q + 1}, {p - 1, d, q + 1}, {p + 1, d, q - 1}}) {
			break
		}
	}
	if best == nil {
		return nil, sel, fmt.Errorf("forecast: no ARIMA order could be fitted")
	}
	sel.Why = why(sel, best, len(sel.Tried)) + " (stepwise search)"
	return best, sel, nil
}

// ConstantModel is the fallback for a constant series: ARIMA(0,0,0) with the
// constant as mean and zero variance. Its forecasts are the constant with an
// interval of zero width, and it flags no anomalies.
func ConstantModel(y []float64) *Model {
	v := 0.0
	if len(y) > 0 {
		v = y[0]
	}
	m := &Model{Order: Order{}, HasConst: true, Const: v, y: y, w: y, NObs: len(y), NEff: len(y), Converged: true,
		Names: []string{"const", "sigma2"}, Params: []float64{v, 0}}
	return m
}

// lineModel is the fallback for a straight line: ARIMA(0,1,0) with the slope
// as drift and zero variance; forecasts continue the line.
func lineModel(y []float64) *Model {
	slope := y[1] - y[0]
	return &Model{Order: Order{D: 1}, HasConst: true, Const: slope, y: y, w: Diff(y, 1), NObs: len(y), NEff: len(y) - 1,
		Converged: true, Names: []string{"drift", "sigma2"}, Params: []float64{slope, 0}, line: true}
}

// isConstant reports whether m is a zero-variance fallback (ConstantModel or lineModel).
func (m *Model) isConstant() bool { return m.Sigma2 == 0 && m.g == nil && m.flt.f == nil }
