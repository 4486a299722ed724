// Command iomtguard watches and defends networks of connected medical devices
// that speak MQTT: it analyses captures, evaluates threats, and runs a secure
// MQTT gateway. See README.md for every command with an example.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	stopProfiles := startProfiles()
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stopProfiles()
	stop()
	if err != nil {
		if msg := err.Error(); msg != "" { // a silentError's message was printed already
			fmt.Fprintln(os.Stderr, "iomtguard:", msg)
		}
		os.Exit(exitCode(err))
	}
}
