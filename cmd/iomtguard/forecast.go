package main

import (
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/iomtguard/iomtguard/internal/analysis"
	"github.com/iomtguard/iomtguard/internal/forecast"
	"github.com/iomtguard/iomtguard/internal/pipeline"
)

type forecastOptions struct {
	series   string
	column   string
	order    string
	horizon  int
	level    float64
	interval time.Duration
	metric   string
	json     bool
	stepwise bool
	maxPQ    int
	anomLev  float64
	robustZ  float64
	quiet    bool
	save     string
}

func forecastCmd(stdout, stderr io.Writer) *cobra.Command {
	var o forecastOptions
	cmd := &cobra.Command{
		Use:   "forecast (--series FILE.csv | CAPTURE...) [flags]",
		Short: "Fit an ARIMA model to a traffic series, forecast it and flag anomalies",
		Long: `forecast fits an ARIMA(p,d,q) model to a series, with statsmodels' conventions and numbers
(a constant, the mean, when d = 0; parameters const, ar.L1..., ma.L1..., sigma2), forecasts
the next values with intervals, tests the residuals (Ljung-Box) and flags anomalies: points
outside the one-step-ahead prediction interval, or whose residual has a robust z-score
(median/MAD) above --robust-z.

The series is either a column of a CSV file with a header (--series; --column names it, by
default the column "value", else the file's only column that is not a time), or a capture's
traffic per interval (--interval, --metric packets|bytes|mqtt; --save-series writes it as a CSV
that --series reads back).

Without --order the order is chosen automatically: d by KPSS tests (difference while they reject
stationarity at 5 %), then p and q <= 5 by the lowest AICc over the whole grid (--stepwise for
Hyndman and Khandakar's search).`,
		Example: `  iomtguard forecast capture.pcapng --interval 1s --metric mqtt --horizon 60
  iomtguard forecast capture.pcapng --metric packets --save-series counts.csv
  iomtguard forecast --series counts.csv --order 1,0,1 --json
  iomtguard forecast --series readings.csv --column spo2 --horizon 30`,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runForecast(cmd, o, args, stdout, stderr)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.series, "series", "", "CSV file with a header holding the series")
	f.StringVar(&o.column, "column", "", `the CSV column to model (default "value", else the only column that is not a time)`)
	f.StringVar(&o.order, "order", "", "ARIMA order p,d,q (default: chosen automatically)")
	f.IntVar(&o.horizon, "horizon", 60, "values to forecast")
	f.Float64Var(&o.level, "level", 0.95, "coverage of the forecast interval")
	f.DurationVar(&o.interval, "interval", time.Second, "capture input: length of one interval")
	f.StringVar(&o.metric, "metric", "packets", "capture input: packets, bytes or mqtt per interval")
	f.BoolVar(&o.json, "json", false, "print the result as JSON")
	f.BoolVar(&o.stepwise, "stepwise", false, "stepwise order search instead of the whole grid")
	f.IntVar(&o.maxPQ, "max-pq", 5, "largest p and q tried by the automatic search")
	f.Float64Var(&o.anomLev, "anomaly-level", 0.999, "anomaly rule 1: coverage of the one-step-ahead prediction interval")
	f.Float64Var(&o.robustZ, "robust-z", 3.5, "anomaly rule 2: threshold on the residual's modified z-score")
	f.BoolVarP(&o.quiet, "quiet", "q", false, "no progress bar")
	f.StringVar(&o.save, "save-series", "", "also write the series modelled as CSV (t,value) to this file")
	return cmd
}

// forecastResult is what --json prints.
type forecastResult struct {
	Source     string                   `json:"source"`
	N          int                      `json:"n"`
	Order      [3]int                   `json:"order"`
	Why        string                   `json:"why"`
	LogLike    float64                  `json:"loglike"`
	AIC        float64                  `json:"aic"`
	AICc       float64                  `json:"aicc"`
	BIC        float64                  `json:"bic"`
	Params     map[string]float64       `json:"params"`
	ParamOrder []string                 `json:"param_names"`
	Converged  bool                     `json:"converged"`
	LjungBox   *forecast.LjungBoxResult `json:"ljung_box,omitempty"`
	Forecast   forecast.Forecast        `json:"forecast"`
	Anomalies  []forecast.Anomaly       `json:"anomalies"`
	Selection  *forecast.Selection      `json:"selection,omitempty"`
	Interval   string                   `json:"interval,omitempty"`
	Metric     string                   `json:"metric,omitempty"`
}

func runForecast(cmd *cobra.Command, o forecastOptions, args []string, stdout, stderr io.Writer) error {
	for _, err := range []error{checkInt("horizon", o.horizon, 1, 100000), checkOpen("level", o.level, 0, 1),
		checkDuration("interval", o.interval, time.Millisecond, 24*time.Hour), checkInt("max-pq", o.maxPQ, 0, 10),
		checkOpen("anomaly-level", o.anomLev, 0, 1), checkPositive("robust-z", o.robustZ, 1e6)} {
		if err != nil {
			return err
		}
	}
	var y []float64
	res := forecastResult{}
	switch {
	case o.series != "" && len(args) > 0:
		return usageError{errors.New("give either --series FILE.csv or captures, not both")}
	case o.series != "":
		v, column, err := readSeriesCSV(o.series, o.column)
		if err != nil {
			return usageError{err}
		}
		y, res.Source = v, o.series+":"+column
	case len(args) > 0:
		m, err := analysis.ParseMetric(o.metric)
		if err != nil {
			return usageError{err}
		}
		inputs, err := openInputs(args)
		if err != nil {
			return err
		}
		s := analysis.NewSeries(o.interval, m)
		prog := newProgress(stderr, o.quiet, "forecast")
		sum, err := pipeline.New(pipeline.Options{Progress: prog.update}, s).Run(cmd.Context(), inputs...)
		prog.done()
		if err != nil {
			return err
		}
		printWarnings(stderr, sum.Warnings)
		y, res.Source, res.Interval, res.Metric = s.Values, strings.Join(args, ","), o.interval.String(), m.String()
	default:
		return usageError{errors.New("give --series FILE.csv or a capture")}
	}
	res.N = len(y)
	if o.save != "" {
		if err := saveSeries(o.save, y); err != nil {
			return err
		}
	}
	var model *forecast.Model
	var err error
	if o.order != "" {
		ord, perr := parseOrder(o.order)
		if perr != nil {
			return usageError{perr}
		}
		model, err = forecast.Fit(y, ord, forecast.FitOptions{})
		res.Why = "order given with --order"
	} else {
		var sel *forecast.Selection
		model, sel, err = forecast.Auto(y, forecast.AutoOptions{MaxP: o.maxPQ, MaxQ: o.maxPQ, Stepwise: o.stepwise})
		if sel != nil {
			res.Selection, res.Why = sel, sel.Why
		}
	}
	if err != nil {
		return err
	}
	res.Order = [3]int{model.Order.P, model.Order.D, model.Order.Q}
	res.LogLike, res.AIC, res.AICc, res.BIC, res.Converged = model.LogLike, model.AIC, model.AICc, model.BIC, model.Converged
	res.Params = map[string]float64{}
	res.ParamOrder = model.Names
	for i, n := range model.Names {
		res.Params[n] = model.Params[i]
	}
	if r := model.Residuals(); len(r) > 12 && model.Sigma2 > 0 {
		lags := min(10, len(r)/5)
		lb := forecast.LjungBox(r, lags, model.Order.P+model.Order.Q)
		if !math.IsNaN(lb.PValue) {
			res.LjungBox = &lb
		}
	}
	res.Forecast = model.Forecast(o.horizon, o.level)
	res.Anomalies = model.Anomalies(forecast.AnomalyOptions{Level: o.anomLev, RobustZ: o.robustZ})
	if res.Anomalies == nil {
		res.Anomalies = []forecast.Anomaly{}
	}
	if o.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	printForecast(stdout, &res)
	return nil
}

func printForecast(w io.Writer, r *forecastResult) {
	fmt.Fprintf(w, "series: %s (%d values", r.Source, r.N)
	if r.Metric != "" {
		fmt.Fprintf(w, ", %s per %s", r.Metric, r.Interval)
	}
	fmt.Fprintf(w, ")\nmodel:  ARIMA(%d,%d,%d) — %s\n", r.Order[0], r.Order[1], r.Order[2], r.Why)
	fmt.Fprintf(w, "fit:    log-likelihood %.4f  AIC %.4f  AICc %.4f  BIC %.4f", r.LogLike, r.AIC, r.AICc, r.BIC)
	if !r.Converged {
		fmt.Fprint(w, "  (optimiser stopped before converging)")
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	for _, n := range r.ParamOrder {
		fmt.Fprintf(tw, "\t%s\t%.6g\t\n", n, r.Params[n])
	}
	tw.Flush()
	if r.LjungBox != nil {
		verdict := "residuals look like white noise"
		if r.LjungBox.PValue < 0.05 {
			verdict = "residuals keep some autocorrelation"
		}
		fmt.Fprintf(w, "Ljung-Box Q(%d) = %.3f, p = %.3f: %s\n", r.LjungBox.Lags, r.LjungBox.Stat, r.LjungBox.PValue, verdict)
	}
	fmt.Fprintf(w, "\nforecast (%d steps, %.0f %% interval):\n", len(r.Forecast.Mean), 100*r.Forecast.Level)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "\tstep\tmean\tlower\tupper\t")
	shown := 0
	for i := range r.Forecast.Mean {
		if i < 10 || i == len(r.Forecast.Mean)-1 {
			fmt.Fprintf(tw, "\t%d\t%.4g\t%.4g\t%.4g\t\n", i+1, r.Forecast.Mean[i], r.Forecast.Lower[i], r.Forecast.Upper[i])
			shown++
		} else if i == 10 {
			fmt.Fprintln(tw, "\t...\t\t\t\t")
		}
	}
	tw.Flush()
	fmt.Fprintf(w, "\nanomalies: %d\n", len(r.Anomalies))
	for i, a := range r.Anomalies {
		if i == 20 {
			fmt.Fprintf(w, "  ... %d more (see --json)\n", len(r.Anomalies)-20)
			break
		}
		fmt.Fprintf(w, "  t=%d observed %.4g expected %.4g [%.4g, %.4g] robust z %.2f (%s)\n", a.Index, a.Observed, a.Expected, a.Lower, a.Upper, a.Score, a.Reason)
	}
}

func parseOrder(s string) (forecast.Order, error) {
	parts := strings.Split(strings.Trim(s, "()[] "), ",")
	if len(parts) != 3 {
		return forecast.Order{}, fmt.Errorf("--order %q: want p,d,q", s)
	}
	var v [3]int
	for i, p := range parts {
		n, err := strconv.Atoi(strings.TrimSpace(p))
		if err != nil || n < 0 {
			return forecast.Order{}, fmt.Errorf("--order %q: %q is not a non-negative integer", s, p)
		}
		v[i] = n
	}
	return forecast.Order{P: v[0], D: v[1], Q: v[2]}, nil
}

// readSeriesCSV reads one numeric column of a CSV file with a header.
func readSeriesCSV(path, column string) ([]float64, string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, column, err
	}
	defer f.Close()
	r := csv.NewReader(f)
	r.FieldsPerRecord = -1
	head, err := r.Read()
	if err != nil {
		return nil, column, fmt.Errorf("%s: read header: %w", path, err)
	}
	col := -1
	for i := range head {
		head[i] = strings.TrimSpace(strings.TrimPrefix(head[i], "\ufeff"))
	}
	if column == "" {
		// "value" (what --save-series writes), else the one column that is
		// not a time or an index.
		var cand []int
		for i, h := range head {
			if h == "value" {
				cand = []int{i}
				break
			}
			switch strings.ToLower(h) {
			case "t", "time", "timestamp", "ts", "date", "datetime", "index", "":
			default:
				cand = append(cand, i)
			}
		}
		if len(cand) != 1 {
			return nil, column, fmt.Errorf("%s: which column? give --column (columns: %s)", path, strings.Join(head, ", "))
		}
		col, column = cand[0], head[cand[0]]
	} else {
		for i, h := range head {
			if h == column {
				col = i
			}
		}
	}
	if col < 0 {
		return nil, column, fmt.Errorf("%s: no column %q (columns: %s)", path, column, strings.Join(head, ", "))
	}
	var y []float64
	for line := 2; ; line++ {
		rec, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, column, fmt.Errorf("%s: %w", path, err)
		}
		if col >= len(rec) {
			return nil, column, fmt.Errorf("%s: line %d has no %s cell", path, line, column)
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(rec[col]), 64)
		if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, column, fmt.Errorf("%s: line %d: %s = %q is not a finite number", path, line, column, rec[col])
		}
		y = append(y, v)
	}
	if len(y) < 3 {
		return nil, column, fmt.Errorf("%s: %d values in %s, need at least 3", path, len(y), column)
	}
	return y, column, nil
}

func saveSeries(path string, y []float64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := csv.NewWriter(f)
	w.Write([]string{"t", "value"})
	for i, v := range y {
		w.Write([]string{strconv.Itoa(i), strconv.FormatFloat(v, 'g', -1, 64)})
	}
	w.Flush()
	if err := w.Error(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
