package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/iomtguard/iomtguard/internal/detect"
	"github.com/iomtguard/iomtguard/internal/inventory"
	"github.com/iomtguard/iomtguard/internal/pipeline"
	"github.com/iomtguard/iomtguard/internal/suggest"
)

func policyCmd(stdout, stderr io.Writer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "policy",
		Short: "Suggest a least-privilege policy from normal traffic, and check a policy file",
		Long: `The policy file says what a capture cannot: the site's inventory, its zones and the flows
allowed between them, each device's topics, the gateway's limits (see 'iomtguard detectors' for
every section). 'analyze --policy' audits traffic against it and 'gateway --policy' enforces it.

policy suggest writes one from a baseline of normal traffic; policy check validates one as
analyze and the gateway read it, and with captures lists what it would refuse in them.`,
	}
	cmd.AddCommand(policySuggestCmd(stdout, stderr), policyCheckCmd(stdout, stderr))
	return cmd
}

// policyBaseline reads captures once with the inventory, the learner and the
// detectors (a baseline with attacks in it is not normal traffic: the
// policy would allow the attacker).
// The attacks and the problems found (a damaged capture; what the tables
// could not keep, which a review then cannot judge) come back beside the
// devices: problems are printed, and fail a review.
func policyBaseline(ctx context.Context, args []string, quiet bool, stderr io.Writer) ([]inventory.Device, *suggest.Learner, []string, []string, []string, error) {
	inputs, err := openInputs(args)
	if err != nil {
		return nil, nil, nil, nil, nil, err
	}
	defer closeInputs(inputs)
	det, err := detect.New(nil)
	if err != nil {
		return nil, nil, nil, nil, nil, err
	}
	prog := newProgress(stderr, quiet, "baseline")
	b, err := suggest.Learn(ctx, pipeline.Options{Progress: prog.update}, inputs, det)
	prog.done()
	if err != nil {
		return nil, nil, nil, nil, nil, err
	}
	printWarnings(stderr, b.Summary.Warnings)
	if b.Summary.Frames == 0 || len(b.Devices) == 0 {
		return nil, nil, nil, nil, nil, usageError{fmt.Errorf("%s: no MQTT device in %d frames: nothing to learn a policy from", strings.Join(args, ", "), b.Summary.Frames)}
	}
	for _, p := range b.Problems {
		fmt.Fprintln(stderr, "warning:", p)
	}
	var names, attacks []string
	for _, a := range args {
		names = append(names, filepath.Base(a))
	}
	for _, f := range det.Findings(detect.Models{}) {
		if f.Category == "attack" {
			attacks = append(attacks, fmt.Sprintf("%s (%s): %s", f.ID, f.Severity, f.Title))
		}
	}
	return b.Devices, b.Learner, names, attacks, b.Problems, nil
}

func policySuggestCmd(stdout, stderr io.Writer) *cobra.Command {
	var out string
	var review, quiet bool
	var headroom float64
	cmd := &cobra.Command{
		Use:   "suggest CAPTURE... [-o site.yaml]",
		Short: "Write the least-privilege policy of a baseline of normal traffic",
		Long: `suggest reads captures of normal traffic (a baseline: a quiet day of the ward) and writes the
policy that allows what they show and nothing else, in the format analyze and the gateway read:

  inventory   every address seen (in as few prefixes as cover exactly them) and every client ID;
  zones       the hosts grouped by role (brokers, sensors, actuators, monitors, gateways, other
              hosts), and by /24 where a role spans several;
  flows       the TCP flows between zones, with their server ports;
  devices     each identity's publish and subscribe rights; where identities differ only in
              numbers that their topics repeat, one entry states the convention
              ("bed{bed}-pump": publish "{bed}/pump");
  limits      the gateway's rates from the highest seen, times --headroom;
  tls         required when every device used it.

Comments say what each rule was learned from (counts, example clients and connections), for a
person to review before enforcing it. --review prints what the policy would have refused in the
baseline itself (nothing, unless the baseline is not what the policy can express). Then run
'iomtguard analyze --policy site.yaml' on new traffic: deviations are findings
(posture.unknown-peer, posture.segmentation-violation, attack.wildcard-subscribe), and
'iomtguard gateway --policy site.yaml' enforces the same file.`,
		Example: `  iomtguard policy suggest monday.pcapng tuesday.pcapng -o site.yaml --review
  iomtguard analyze --policy site.yaml wednesday.pcapng`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !(headroom >= 1 && headroom <= 1000) { // NaN fails too
				return usageError{fmt.Errorf("--headroom %g: want 1 to 1000 (the limits are the highest rate seen times this)", headroom)}
			}
			devs, l, names, attacks, problems, err := policyBaseline(cmd.Context(), args, quiet, stderr)
			if err != nil {
				return err
			}
			for _, a := range attacks {
				fmt.Fprintf(stderr, "warning: the baseline holds an attack, which the policy would allow: %s\n", a)
			}
			s, err := suggest.Suggest(devs, l, suggest.Options{Headroom: headroom, Inputs: names, Generated: time.Now().UTC(), Warnings: append(attacks, problems...)})
			if err != nil {
				return err
			}
			if out == "-" {
				if _, err := stdout.Write(s.YAML); err != nil {
					return err
				}
			} else if err := os.WriteFile(out, s.YAML, 0o644); err != nil {
				return usageError{err}
			}
			msgs := stderr
			if out != "-" {
				msgs = stdout
			}
			if !quiet {
				where := out
				if out == "-" {
					where = "stdout"
				}
				fmt.Fprintf(msgs, "policy of %d devices: %d zones, %d flows, %d devices entries, %d client IDs, %d inventory prefixes; written to %s\n",
					s.Devices, s.Zones, s.Flows, s.Entries, len(s.Policy.Inventory.Clients), len(s.Policy.Inventory.Hosts), where)
				if len(s.Unlearned) > 0 {
					fmt.Fprintf(msgs, "TLS hid the topics of %d identities: they have no rights in the policy (see its comments)\n", len(s.Unlearned))
				}
			}
			if review {
				return printReview(msgs, "the baseline", suggest.Review(s.Policy, devs, l), problems)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&out, "output", "o", "-", "write the policy to this file (- for stdout)")
	f.BoolVar(&review, "review", false, "print what the policy would have refused in the baseline (exit 1 if anything)")
	f.Float64Var(&headroom, "headroom", 4, "the limits are the highest rate seen times this")
	f.BoolVarP(&quiet, "quiet", "q", false, "no progress bar and no summary")
	return cmd
}

func printReview(w io.Writer, what string, refusals []suggest.Refusal, problems []string) error {
	if len(problems) > 0 {
		fmt.Fprintf(w, "review: incomplete, %s could not be judged whole: %s\n", what, strings.Join(problems, "; "))
	}
	if len(refusals) == 0 && len(problems) == 0 {
		fmt.Fprintf(w, "review: the policy refuses nothing in %s\n", what)
		return nil
	}
	if len(refusals) == 0 {
		return silentError{1}
	}
	fmt.Fprintf(w, "review: the policy would refuse %d things in %s:\n", len(refusals), what)
	for i, r := range refusals {
		if i == 200 {
			fmt.Fprintf(w, "  ... and %d more\n", len(refusals)-i)
			break
		}
		fmt.Fprintf(w, "  %s\n", r)
	}
	return silentError{1}
}

func policyCheckCmd(stdout, stderr io.Writer) *cobra.Command {
	var quiet bool
	cmd := &cobra.Command{
		Use:   "check FILE [CAPTURE...]",
		Short: "Validate a policy file as analyze and the gateway read it; with captures, list what it would refuse in them",
		Long: `check reads a policy file as 'analyze --policy' and 'gateway --policy' do and reports the first
error with its line, or what the file holds. The gateway also needs a devices section (it
denies by default): check says whether it has one.

With captures, it lists what the policy would refuse in them: addresses and client IDs outside
the inventory, flows between zones that no rule allows, topics and filters outside an
identity's rights, rates over the limits. Exit status: 0 valid (and nothing refused), 1 when
something would be refused, 2 when the file is not valid.`,
		Example: `  iomtguard policy check site.yaml
  iomtguard policy check site.yaml wednesday.pcapng`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			pol, err := loadPolicy(args[0])
			if err != nil {
				return err
			}
			var roles int
			for range pol.Roles {
				roles++
			}
			fmt.Fprintf(stdout, "%s: valid: %d inventory hosts, %d client IDs, %d zones, %d flows, %d devices entries, %d roles\n",
				args[0], len(pol.Inventory.Hosts), len(pol.Inventory.Clients), len(pol.Zones), len(pol.Flows), len(pol.Devices), roles)
			if pol.HasDevices() {
				fmt.Fprintln(stdout, "gateway: ready (it allows each identity its devices entry and refuses the rest)")
			} else {
				fmt.Fprintln(stdout, "gateway: not usable: no devices section (the gateway denies by default: no device could connect)")
			}
			if len(args) == 1 {
				return nil
			}
			devs, l, names, _, problems, err := policyBaseline(cmd.Context(), args[1:], quiet, stderr)
			if err != nil {
				return err
			}
			return printReview(stdout, strings.Join(names, ", "), suggest.Review(pol, devs, l), problems)
		},
	}
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "no progress bar")
	return cmd
}
