package main

import (
	"context"
	"errors"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/iomtguard/iomtguard/internal/pipeline"
)

// usageError marks bad input or arguments: exit code 2.
type usageError struct{ err error }

func (u usageError) Error() string { return u.err.Error() }
func (u usageError) Unwrap() error { return u.err }

// silentError carries an exit code whose message was already printed.
type silentError struct{ code int }

func (s silentError) Error() string { return "" }

func exitCode(err error) int {
	var s silentError
	if errors.As(err, &s) {
		return s.code
	}
	var u usageError
	if errors.As(err, &u) || errors.Is(err, pipeline.ErrNotInput) {
		return 2
	}
	return 1
}

// run builds the command tree and executes it with args.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return runIO(ctx, args, os.Stdin, stdout, stderr)
}

// runIO is run with an explicit stdin.
func runIO(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	root := &cobra.Command{
		Use:   "iomtguard",
		Short: "Watch and defend networks of connected medical devices (MQTT)",
		Long: `iomtguard analyses captured or live traffic of healthcare IoT devices that speak MQTT,
evaluates threats and weaknesses with evidence mapped to HIPAA, IEC 62443 and FDA controls,
and defends them with payload encryption, device certificates and a secure MQTT gateway.

Start with:  iomtguard analyze            (analyses the built-in demo ICU capture)
             iomtguard analyze CAPTURE    (pcap, pcapng, .gz, or an ICU dataset CSV)`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.AddCommand(gatewayCmd(stdin, stdout, stderr), pkiCmd(stdout, stderr), keygenCmd(stdout, stderr), sealCmd(stdin, stdout, stderr), openCmd(stdin, stdout, stderr), analyzeCmd(stdout, stderr), detectorsCmd(stdout, stderr), evalCmd(stdout, stderr), exportCmd(stdout, stderr), forecastCmd(stdout, stderr), simulateCmd(stdout, stderr), watchCmd(stdin, stdout, stderr), hubCmd(stdout, stderr), reportCmd(stdout, stderr), inventoryCmd(stdout, stderr), policyCmd(stdout, stderr), baselineCmd(stdout, stderr))
	err := root.ExecuteContext(ctx)
	var s silentError
	if errors.As(err, &s) {
		return err
	}
	if err != nil && isFlagError(err) {
		return usageError{err}
	}
	return err
}

func isFlagError(err error) bool {
	msg := err.Error()
	for _, p := range []string{"unknown flag", "unknown shorthand", "flag needs an argument", "invalid argument", "unknown command", "accepts ", "requires at least", "required flag"} {
		if strings.Contains(msg, p) {
			return true
		}
	}
	return false
}
