package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/iomtguard/iomtguard/internal/baseline"
	"github.com/iomtguard/iomtguard/internal/detect"
	"github.com/iomtguard/iomtguard/internal/pipeline"
)

func baselineCmd(stdout, stderr io.Writer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "baseline",
		Short: "Learn how each MQTT device normally behaves, to find a device that starts to behave unlike itself",
		Long: `A baseline is each MQTT device's learned normal: per minute of traffic, its publishes, payload
sizes, topics, period, QoS and retain use, subscriptions, connections and peers, with an anomaly
model (an isolation forest) trained on the same minutes and a threshold set on minutes it did not
see. 'analyze --baseline FILE' and 'watch --baseline FILE' then report anomaly.device-behaviour
when a device behaves unlike its baseline, saying in words what changed; 'watch --learn 1h
--baseline FILE' learns live first. Rules stay the first line: the baseline adds what no rule
describes (a pump publishing to a new topic, an oximeter whose period changes, a clone).

Learn from traffic without attacks: what is learned is what is normal.`,
	}
	cmd.AddCommand(baselineLearnCmd(stdout, stderr), baselineShowCmd(stdout))
	return cmd
}

func baselineLearnCmd(stdout, stderr io.Writer) *cobra.Command {
	var out string
	var far float64
	var quiet bool
	var seed uint64
	cmd := &cobra.Command{
		Use:   "learn CAPTURE... -o FILE",
		Short: "Learn a baseline from captures of normal traffic",
		Long: `learn reads the captures once (merged in time order), cuts each MQTT device's traffic into
minutes, and learns each device's normal and the anomaly model; FILE is written (gzipped JSON).
At least 32 device-minutes are needed (a few minutes of a ward): that learns little; a day or
more learns the spread of a ward's day, and the thresholds then raise few false alarms. Attacks
the rules find in the learning traffic are warned about (they would be learned as normal); a
device that misbehaves in a way no rule describes is not: learn from traffic you trust.

--false-alarm-rate sets the threshold: the share of held-out learning minutes allowed above it
(default 0: the highest score of a held-out minute, so the learning period raises no alarm).`,
		Example: `  iomtguard baseline learn quiet-day.pcapng -o ward3.baseline
  iomtguard analyze --baseline ward3.baseline today.pcapng
  iomtguard watch --interface eth1 --baseline ward3.baseline`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "" {
				return usageError{errors.New("-o FILE: where to write the baseline")}
			}
			if !(far >= 0 && far < 0.5) {
				return usageError{fmt.Errorf("--false-alarm-rate: want a share from 0 to below 0.5, not %g", far)}
			}
			inputs, err := openInputs(args)
			if err != nil {
				return err
			}
			defer closeInputs(inputs)
			l := baseline.NewLearner()
			det, err := detect.New(nil)
			if err != nil {
				return err
			}
			prog := newProgress(stderr, quiet, "learn")
			sum, err := pipeline.New(pipeline.Options{Progress: prog.update}, l, det).Run(cmd.Context(), inputs...)
			prog.done()
			if err != nil {
				return err
			}
			printWarnings(stderr, sum.Warnings)
			// Attacks in the learning traffic would be learned as normal: say so.
			for _, f := range det.Findings(detect.Models{}) {
				if f.Category == "attack" {
					fmt.Fprintf(stderr, "warning: the learning traffic holds an attack, which the baseline learns as normal: %s (%s)\n", f.ID, f.Title)
				}
			}
			b, err := l.Build(baseline.BuildOptions{FalseAlarmRate: far, Seed: seed})
			if err != nil {
				return usageError{err}
			}
			if err := b.Save(out); err != nil {
				return err
			}
			if !quiet {
				fmt.Fprintf(stdout, "learned %d devices (%d shapes) from %s to %s: %d minutes trained on, %d held out; thresholds: forest score %.3f, deviation %.1f σ\nbaseline: %s\n",
					len(b.Devices), len(b.Groups), b.From.Format("2006-01-02 15:04"), b.To.Format("2006-01-02 15:04"), b.Trained, b.HeldOut, b.ForestThreshold, b.DeviationThreshold, out)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&out, "out", "o", "", "the baseline file to write (required)")
	f.Float64Var(&far, "false-alarm-rate", 0, "share of held-out learning minutes allowed above the threshold")
	f.Uint64Var(&seed, "seed", 0, "the anomaly model's seed (the same seed and captures give the same baseline)")
	f.BoolVarP(&quiet, "quiet", "q", false, "no progress bar and no summary")
	return cmd
}

func baselineShowCmd(stdout io.Writer) *cobra.Command {
	return &cobra.Command{
		Use:     "show FILE",
		Short:   "Print what a baseline learned: its period, threshold and each device's normal minute",
		Example: `  iomtguard baseline show ward3.baseline`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			b, err := baseline.Load(args[0])
			if err != nil {
				return usageError{err}
			}
			fmt.Fprintf(stdout, "learned from %s to %s; %d minutes trained on, %d held out; thresholds: forest score %.3f, deviation %.1f σ (false-alarm rate %g on held-out minutes)\n\n",
				b.From.Format("2006-01-02 15:04"), b.To.Format("2006-01-02 15:04"), b.Trained, b.HeldOut, b.ForestThreshold, b.DeviationThreshold, b.FalseAlarmRate)
			var keys []string
			for k := range b.Devices {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "DEVICE\tMINUTES\tPUBLISHES/MIN\tPERIOD S\tPAYLOAD B\tTOPICS\tPEERS")
			for _, k := range keys {
				p := b.Devices[k]
				var shown []string
				for _, t := range p.Topics[:min(3, len(p.Topics))] {
					shown = append(shown, baseline.Printable(t, 40))
				}
				topics := strings.Join(shown, " ")
				if len(p.Topics) > 3 {
					topics += fmt.Sprintf(" +%d", len(p.Topics)-3)
				}
				fmt.Fprintf(tw, "%s\t%d\t%.1f ± %.1f\t%.2f\t%.0f\t%s\t%d\n", baseline.Printable(k, 64), p.Windows, p.Mean[baseline.FPublishes], p.Std(baseline.FPublishes),
					p.Mean[baseline.FPeriod], p.Mean[baseline.FPayloadMean], topics, len(p.Peers))
			}
			return tw.Flush()
		},
	}
}

// loadBaseline reads --baseline (nil for "").
func loadBaseline(path string) (*baseline.Baseline, error) {
	if path == "" {
		return nil, nil
	}
	b, err := baseline.Load(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, baseline.ErrBaseline) {
			return nil, usageError{fmt.Errorf("--baseline %s: %w", path, err)}
		}
		return nil, err
	}
	return b, nil
}
