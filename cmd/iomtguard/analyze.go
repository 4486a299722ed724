package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/iomtguard/iomtguard/internal/analysis"
	"github.com/iomtguard/iomtguard/internal/demo"
	"github.com/iomtguard/iomtguard/internal/detect"
	"github.com/iomtguard/iomtguard/internal/inventory"
	"github.com/iomtguard/iomtguard/internal/pipeline"
	"github.com/iomtguard/iomtguard/internal/policy"
	"github.com/iomtguard/iomtguard/internal/report"
)

type analyzeOptions struct {
	out      string
	json     string
	interval time.Duration
	horizon  int
	seed     uint64
	level    float64
	policy   string
	robustZ  float64
	noHTML   bool
	quiet    bool
	invFile  string
	memoryMB int
	baseline string
	exact    bool
}

func analyzeCmd(stdout, stderr io.Writer) *cobra.Command {
	var o analyzeOptions
	cmd := &cobra.Command{
		Use:   "analyze [flags] [CAPTURE...]",
		Short: "Analyse captures into a report: statistics, MQTT, hosts, K-means, ARIMA forecast, anomalies, findings",
		Long: `analyze reads captures (pcap, pcapng, gzip of either) or ICU dataset CSVs in one pass
(several files are merged in time order: the files of a rotating capture, ring/*.pcap.gz, cost
about what their frames cost in one file) and writes a report a person can read:

  DIR/report.html     one self-contained page (no request to anywhere; prints well):
                      overview, descriptive statistics (the study's Figure 1, pandas-equal),
                      MQTT message types, lengths, topics and who publishes and subscribes,
                      ports, hosts, conversations and flows, K-means of the traffic with a
                      reading of each cluster, the IP communication graph, the packets-per-second
                      series with its ARIMA model and the next 60 s forecast, anomalies and
                      K-means outliers, and the findings with evidence and the defence.
  DIR/analysis.json   the same as data (describe, mqtt, topics, hosts, flows, graph, kmeans,
                      forecast, anomalies, findings).
  DIR/figures/*.svg   each figure on its own.

The report and analysis.json list every device (section 10, "inventory"): addresses and MACs,
client IDs, the certificate identity where TLS shows it, role (broker, sensor, actuator,
monitor, gateway), the kind guessed from topics and names with the evidence for the guess, MQTT
versions, TLS or cleartext, credential kind, topics, rates, first and last seen. --inventory
FILE.csv or FILE.json writes it on its own; 'iomtguard inventory diff OLD NEW' compares two.

With no CAPTURE it analyses the built-in demo: ten minutes of a simulated two-bed ICU with a
brute-force login, a wildcard subscription and a slow DoS (see 'iomtguard simulate').

A damaged input (a truncated capture, a CSV with bad rows) is analysed as far as it can be read
and the problem is stated at the top of the report. Passwords and payloads never reach the
report; topics and client IDs do.`,
		Example: `  iomtguard analyze                                  # the built-in demo, report in ./iomtguard-report/
  iomtguard analyze ward3.pcapng --out ward3-report
  iomtguard analyze day1.pcap.gz day2.pcap.gz        # merged in time order
  iomtguard analyze --json - patientMonitoring.csv | jq '.describe["frame.len"]'
  iomtguard analyze ward3.pcapng --inventory ward3-devices.csv
  iomtguard analyze --exact day.pcap                 # exact quartiles past 2 Mi values: reads day.pcap twice`,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runAnalyze(cmd, o, args, stdout, stderr)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.out, "out", "o", "iomtguard-report", "directory for report.html, analysis.json and figures/")
	f.StringVar(&o.json, "json", "", "also write analysis.json to this file (- for stdout: the summary then goes to stderr)")
	f.BoolVar(&o.noHTML, "no-report", false, "write no report directory (use with --json)")
	f.DurationVar(&o.interval, "interval", time.Second, "interval of the traffic series the ARIMA model and anomaly detection read")
	f.IntVar(&o.horizon, "horizon", 60, "forecast horizon in intervals (60 × 1 s: the next minute)")
	f.Float64Var(&o.level, "anomaly-level", 0.999, "an interval outside the model's one-step prediction interval of this coverage is anomalous")
	f.Float64Var(&o.robustZ, "robust-z", 3.5, "an interval whose residual's modified z-score (median/MAD) exceeds this is anomalous")
	f.StringVar(&o.policy, "policy", "", "policy file (YAML): inventory, zones and allowed flows, clinical topics, identifier patterns, ACL, thresholds (see 'iomtguard detectors')")
	f.Uint64Var(&o.seed, "seed", 0, "K-means seed (the same seed gives the same clusters)")
	f.BoolVarP(&o.quiet, "quiet", "q", false, "no progress bar and no summary (warnings about damaged input are still printed)")
	f.StringVar(&o.invFile, "inventory", "", "also write the device inventory to this file: .csv (one row per device) or .json")
	f.StringVar(&o.baseline, "baseline", "", "score each MQTT device against this learned baseline (iomtguard baseline learn): anomaly.device-behaviour")
	f.BoolVar(&o.exact, "exact", false, "exact quartiles for every column: a column past 2 Mi values has its quartiles from a sketch (flagged, rank error 0.005); "+
		"with --exact the capture files are read a second time to make them exact (in bounded memory: at most 4 Mi distinct values kept, about 160 MiB)")
	f.IntVar(&o.memoryMB, "memory-mb", defaultMemoryMB, "keep the process's memory near this many MiB by collecting garbage more often past it "+
		"(a soft limit: a larger working set still runs, slower; 0: none; GOMEMLIMIT in the environment is used when this flag is not given)")
	return cmd
}

// defaultMemoryMB is analyze's soft memory limit. Its working set is
// bounded (capped tables, columns that fall back to sketches), but with the
// collector's default pacing the heap grows to twice that set before a
// collection: 390 MiB resident for a 2 GB capture whose largest working
// set is 150 MiB, 250 MiB with this limit, at a few percent more time.
const defaultMemoryMB = 192

// analyzeGCPercent is analyze's collector pacing (GOGC) unless GOGC is set.
// Below the memory limit the heap still grew to twice the live set: the
// 1.09M-frame benchmark peaked at 155-160 MiB resident with 62 MiB live.
// At 50 it peaked at 140 MiB (148 at most in 5 runs), at 40 at 126 MiB
// (131 at most) in the same time within the machine's noise: the
// collector marks on the second core (21.8M frames: 15.9 s at 40, 17.6 s
// at 50, 250 MiB both).
const analyzeGCPercent = 40

// setMemoryLimit sets the Go runtime's soft memory limit from --memory-mb,
// unless the flag was left at its default and GOMEMLIMIT is set, and the
// collector's pacing unless GOGC is set.
func setMemoryLimit(cmd *cobra.Command, mb int) {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(analyzeGCPercent)
	}
	if !cmd.Flags().Changed("memory-mb") && os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	if mb <= 0 {
		debug.SetMemoryLimit(math.MaxInt64)
		return
	}
	debug.SetMemoryLimit(int64(mb) << 20)
}

func runAnalyze(cmd *cobra.Command, o analyzeOptions, args []string, stdout, stderr io.Writer) error {
	if o.noHTML && o.json == "" && o.invFile == "" {
		return usageError{fmt.Errorf("--no-report writes nothing without --json or --inventory")}
	}
	if o.invFile != "" && !strings.HasSuffix(o.invFile, ".csv") && !strings.HasSuffix(o.invFile, ".json") {
		return usageError{fmt.Errorf("--inventory %s: the name must end in .csv or .json (the format written)", o.invFile)}
	}
	for _, err := range []error{checkInt("memory-mb", o.memoryMB, 0, 1<<30), checkInt("horizon", o.horizon, 1, 100000), checkOpen("anomaly-level", o.level, 0, 1),
		checkPositive("robust-z", o.robustZ, 1e6), checkDuration("interval", o.interval, time.Millisecond, 24*time.Hour)} {
		if err != nil {
			return err
		}
	}
	setMemoryLimit(cmd, o.memoryMB)
	pol, err := loadPolicy(o.policy)
	if err != nil {
		return err
	}
	bl, err := loadBaseline(o.baseline)
	if err != nil {
		return err
	}
	// open opens the inputs: the captures given, or the built-in demo (and
	// again for --exact's second pass).
	open := func() ([]pipeline.Input, error) {
		if len(args) > 0 {
			return openInputs(args)
		}
		in, err := pipeline.NewInput(demo.Name, demo.Open())
		if err != nil {
			return nil, err
		}
		return []pipeline.Input{in}, nil
	}
	inputs, err := open()
	if err != nil {
		return err
	}
	if len(args) == 0 && !o.quiet {
		fmt.Fprintf(stderr, "no capture given: analysing the built-in demo (%s, a simulated ICU under attack)\n", demo.Name)
	}
	defer closeInputs(inputs)

	prog := newProgress(stderr, o.quiet, "analyze")
	var again *secondPass
	if o.exact {
		again = &secondPass{reopen: open, stderr: stderr, quiet: o.quiet}
	}
	res, err := analyzeRun(cmd.Context(), inputs, again, analysis.Options{Interval: o.interval, Horizon: o.horizon, Seed: o.seed,
		AnomalyLevel: o.level, RobustZ: o.robustZ}, pol, detect.Options{Baseline: bl}, prog.update)
	prog.done()
	if err != nil {
		return err
	}

	summaryTo := stdout
	if o.json == "-" {
		summaryTo = stderr
		if err := report.JSON(stdout, res); err != nil {
			return err
		}
	} else if o.json != "" {
		if err := report.WriteFile(o.json, func(w io.Writer) error { return report.JSON(w, res) }); err != nil {
			return err
		}
	}
	if o.invFile != "" {
		var names []string
		for _, in := range res.Inputs {
			names = append(names, in.Name)
		}
		err := report.WriteFile(o.invFile, func(w io.Writer) error {
			if strings.HasSuffix(o.invFile, ".csv") {
				return inventory.WriteCSV(w, res.Inventory)
			}
			return inventory.WriteJSON(w, names, res.Generated, res.Inventory)
		})
		if err != nil {
			return fmt.Errorf("writing the inventory: %w", err)
		}
	}
	where := ""
	if !o.noHTML {
		if err := report.Write(o.out, res); err != nil {
			return fmt.Errorf("writing the report: %w", err)
		}
		where = filepath.Join(o.out, report.HTMLFile)
	}
	if !o.quiet {
		report.Summary(summaryTo, res, where)
	} else {
		printWarnings(stderr, res.Warnings) // quiet hides progress, never data loss
	}
	return nil
}

// printWarnings writes the input problems of a run (a damaged capture, bad
// CSV rows, no frames) to stderr: every command prints them, quiet or not,
// so that a damaged input never looks like a clean run.
func printWarnings(stderr io.Writer, warnings []string) {
	for _, w := range warnings {
		fmt.Fprintln(stderr, "warning:", w)
	}
}

// loadPolicy reads the policy at path ("": the default policy) and checks
// it as the detectors will, before any input is read.
func loadPolicy(path string) (*policy.Policy, error) {
	pol := &policy.Policy{}
	if path != "" {
		var err error
		if pol, err = policy.Load(path); err != nil {
			return nil, usageError{err}
		}
	}
	if err := detect.Check(pol); err != nil {
		return nil, usageError{err}
	}
	return pol, nil
}

// analyzeInputs is the whole analysis of inputs in one pass: the
// aggregators, and the detectors built with pol, then the models and the
// findings. analyze and eval both run it.
func analyzeInputs(ctx context.Context, inputs []pipeline.Input, ao analysis.Options, pol *policy.Policy, do detect.Options, progress func(done, total int64)) (*analysis.Result, error) {
	return analyzeRun(ctx, inputs, nil, ao, pol, do, progress)
}

// secondPass is analyze --exact: the inputs opened again, for the second
// pass that makes the quartiles of the columns past their cap exact.
type secondPass struct {
	reopen func() ([]pipeline.Input, error)
	stderr io.Writer
	quiet  bool
}

// maxBracket is the most distinct values --exact keeps in its brackets, all
// columns together (a value and its count: about 40 bytes, so 160 MiB at
// most): a sketch's bracket holds about 2 % of a column's values, and the
// time columns of a capture repeat their values (the 21.8M-frame benchmark
// needed far less). A bracket past it keeps its column's flag, and a
// warning says which.
const maxBracket = 4 << 20

// refine runs the second pass and makes an's sketched quartiles exact; what
// it could not make exact is said in the Result's warnings.
func (p *secondPass) refine(ctx context.Context, an *analysis.Analyzer) (warnings []string, err error) {
	c := an.Refiner(maxBracket)
	if c == nil {
		return nil, nil // every column was exact
	}
	inputs, err := p.reopen()
	if err != nil {
		return nil, fmt.Errorf("--exact: opening the inputs again: %w", err)
	}
	prog := newProgress(p.stderr, p.quiet, "exact quartiles (second pass)")
	_, err = pipeline.New(pipeline.Options{Progress: prog.update}, c).Run(ctx, inputs...)
	prog.done()
	closeInputs(inputs)
	if err != nil {
		return nil, fmt.Errorf("--exact: the second pass: %w", err)
	}
	if _, missed := an.Refine(c); len(missed) > 0 {
		warnings = append(warnings, fmt.Sprintf("--exact: the quartiles of %s stay the sketch's (the second pass read other values, or the brackets needed more than %d distinct values)",
			strings.Join(missed, ", "), maxBracket))
	}
	return warnings, nil
}

// analyzeRun is analyzeInputs with, when again is set, the second pass of
// --exact before the summaries.
func analyzeRun(ctx context.Context, inputs []pipeline.Input, again *secondPass, ao analysis.Options, pol *policy.Policy, do detect.Options, progress func(done, total int64)) (*analysis.Result, error) {
	det, err := detect.NewWith(pol, do)
	if err != nil {
		return nil, usageError{err}
	}
	ao.Concurrent = true // the Figure 1 columns on the second core
	an := analysis.New(ao)
	inv := inventory.New(inventory.Options{})
	// Synchronous on purpose: behind pipeline.Async (as watch runs) the
	// benchmark capture took 1.51 s against 1.26 s (hyperfine, 9 runs) and
	// twice the CPU; analyze's consumers are too light for the copies to pay,
	// and its finish already summarises the columns side by side.
	sum, err := pipeline.New(pipeline.Options{Progress: progress}, an, det, inv).Run(ctx, inputs...)
	if err != nil {
		an.Close()
		return nil, err
	}
	if again != nil {
		w, err := again.refine(ctx, an)
		if err != nil {
			an.Close()
			return nil, err
		}
		sum.Warnings = append(sum.Warnings, w...)
	}
	r := an.Result(sum, det.Findings)
	r.Inventory = inv.Devices()
	return r, nil
}
