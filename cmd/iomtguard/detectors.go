package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/iomtguard/iomtguard/internal/detect"
	"github.com/iomtguard/iomtguard/internal/policy"
)

func detectorsCmd(stdout, stderr io.Writer) *cobra.Command {
	var pol string
	cmd := &cobra.Command{
		Use:   "detectors [--policy FILE]",
		Short: "List the detectors: the findings each reports, its rule and its thresholds",
		Long: `detectors prints the detector registry in the order the detectors run: for each, the finding
IDs it reports, its rule in words, and its thresholds with their defaults. With --policy it checks
the policy file and shows the thresholds in force.

Thresholds are set in the policy file, per detector:

  thresholds:
    bruteforce:
      min_failures: 5
      window: 10m          # durations as 90s, 10m, 1h
    publish-flood:
      max_publishes: 2000  # a waveform device that legitimately streams fast`,
		Example: `  iomtguard detectors
  iomtguard detectors --policy site.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			p := &policy.Policy{}
			if pol != "" {
				var err error
				if p, err = policy.Load(pol); err != nil {
					return usageError{err}
				}
				if _, err := detect.New(p); err != nil {
					return usageError{err}
				}
				fmt.Fprintf(stdout, "%s: valid\n\n", pol)
			}
			for _, s := range detect.Registry {
				fmt.Fprintf(stdout, "%s  (%s)\n", s.Name, strings.Join(s.IDs, ", "))
				fmt.Fprintf(stdout, "%s\n", indentWrap(s.Rule, "    ", 96))
				for _, pr := range s.Params {
					v, set := pr.Default, ""
					if t, ok := p.Thresholds[s.Name][pr.Name]; ok {
						v, set = t.V, " (policy)"
					}
					fmt.Fprintf(stdout, "    %-16s %-8s%s  %s\n", pr.Name, fmtParam(v, pr.Unit), set, pr.Doc)
				}
				fmt.Fprintln(stdout)
			}
			fmt.Fprintln(stdout, "Cross-site detectors (iomtguard hub, over its sensors' session facts; default thresholds):")
			fmt.Fprintln(stdout)
			for _, s := range detect.GroupRegistry {
				fmt.Fprintf(stdout, "%s  (%s)\n", s.Name, strings.Join(s.IDs, ", "))
				fmt.Fprintf(stdout, "%s\n", indentWrap(s.Rule, "    ", 96))
				for _, pr := range s.Params {
					fmt.Fprintf(stdout, "    %-16s %-8s  %s\n", pr.Name, fmtParam(pr.Default, pr.Unit), pr.Doc)
				}
				fmt.Fprintln(stdout)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&pol, "policy", "", "policy file to check")
	return cmd
}

func fmtParam(v float64, unit string) string {
	if unit == "s" {
		return fmt.Sprintf("%gs", v)
	}
	return fmt.Sprintf("%g", v)
}

// indentWrap wraps text at width with a prefix on every line.
func indentWrap(text, prefix string, width int) string {
	var b strings.Builder
	line := prefix
	for _, w := range strings.Fields(text) {
		if len(line)+len(w)+1 > width && line != prefix {
			b.WriteString(line + "\n")
			line = prefix
		}
		if line != prefix {
			line += " "
		}
		line += w
	}
	b.WriteString(line)
	return b.String()
}
