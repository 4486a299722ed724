package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/iomtguard/iomtguard/internal/pki"
	"github.com/iomtguard/iomtguard/internal/sim"
)

// runLive is simulate --broker.
func runLive(ctx context.Context, o simulateOptions, stdout, stderr io.Writer) error {
	if len(o.attacks) > 0 {
		return usageError{errors.New("--attack is for captures; live mode runs the benign ward (use the offline simulator for attacks)")}
	}
	if o.out != "" {
		return usageError{errors.New("-o and --broker exclude each other: live mode writes no capture (record it with tcpdump, or analyze a live interface)")}
	}
	if o.pkiDir != "" && !o.tls {
		return usageError{errors.New("--pki needs --tls")}
	}
	lo := sim.LiveOptions{Broker: o.broker, Duration: o.duration, Beds: o.beds, Scenario: o.scenario, Seed: o.seed, Speed: o.speed,
		Username: o.username, Password: o.password}
	if lo.Password == "" {
		lo.Password = os.Getenv("IOMTGUARD_MQTT_PASSWORD")
	}
	if !o.durationOK {
		lo.Duration = time.Minute
	}
	if o.tls {
		cfg := &tls.Config{MinVersion: tls.VersionTLS12}
		if o.pkiDir != "" {
			b, err := os.ReadFile(filepath.Join(o.pkiDir, "ca.crt"))
			if err != nil {
				return usageError{err}
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(b) {
				return usageError{fmt.Errorf("%s: no certificate", filepath.Join(o.pkiDir, "ca.crt"))}
			}
			cfg.RootCAs = pool
			lo.ClientCert = func(id string) (*tls.Certificate, error) {
				crt, key := filepath.Join(o.pkiDir, id+".crt"), filepath.Join(o.pkiDir, id+".key")
				if _, err := os.Stat(crt); errors.Is(err, os.ErrNotExist) {
					if _, err := pki.Issue(o.pkiDir, id, pki.Options{}); err != nil && !errors.Is(err, pki.ErrExists) {
						return nil, err
					}
				}
				c, err := tls.LoadX509KeyPair(crt, key)
				if err != nil {
					return nil, err
				}
				return &c, nil
			}
		}
		lo.TLS = cfg
	}
	lo.Progress = func(s sim.LiveStats) {
		if f, ok := stderr.(*os.File); ok && isTerminal(f) {
			fmt.Fprintf(stderr, "\r%d/%d clients connected, %d published, %d delivered   ", s.Connected, s.Clients, s.Published, s.Received)
		}
	}
	st, err := sim.Live(ctx, lo)
	if f, ok := stderr.(*os.File); ok && isTerminal(f) {
		fmt.Fprintln(stderr)
	}
	if st != nil {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", " ")
		enc.Encode(st)
		fmt.Fprintf(stderr, "%s: %d of %d clients connected, %d published (%d errors), %d delivered to the nurse station; latency p50 %s, p99 %s\n",
			o.broker, st.Connected, st.Clients, st.Published, st.PublishErrors, st.Received, st.LatencyP50.Round(time.Microsecond), st.LatencyP99.Round(time.Microsecond))
	}
	if errors.Is(err, sim.ErrOptions) {
		return usageError{err}
	}
	return err
}
