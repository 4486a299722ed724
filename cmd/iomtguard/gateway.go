package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/term"

	"github.com/iomtguard/iomtguard/internal/gateway"
	"github.com/iomtguard/iomtguard/internal/policy"
)

func gatewayCmd(stdin io.Reader, stdout, stderr io.Writer) *cobra.Command {
	var cfgFile string
	var c gateway.Config
	cmd := &cobra.Command{
		Use:   "gateway --pki DIR --policy FILE [--listen HOST:PORT]",
		Short: "Run the secure MQTT gateway: certificate identity, topic policy, rate limits, bans, audit",
		Long: `gateway is an MQTT 3.1.1 and 5.0 broker for medical devices, secure by default:

  - TLS only (1.2 minimum, --min-tls 1.3 to require 1.3), with a client certificate signed by
    DIR/ca.crt required; the device's identity is its certificate's name. It serves
    DIR/gateway.crt (iomtguard pki issue --dir DIR --name gateway --server --host HOST) and
    refuses certificates listed in DIR/ca.crl (iomtguard pki revoke).
  - The client ID must be the identity (--client-id prefix|any to relax), so no client can take
    over another's session.
  - The policy file (the same one analyze reads) gives each identity its topics; everything else
    is denied, and '#' and '$SYS/#' are refused unless the policy names them:

      devices:
        bed1-ecg:      {publish: ["icu/bed1/ecg"]}
        nurse-station: {subscribe: ["icu/+/ecg"], roles: [clinician]}
        "bed*-spo2":   {roles: [spo2]}
      roles:
        spo2:      {publish: ["icu/{identity}/spo2"]}
        clinician: {subscribe: ["icu/+/patient"]}
      sealed_topics: ["icu/+/patient"]   # only iomtguard seal envelopes, sealed for that topic
      no_retain: ["icu/+/ecg"]
      limits:                            # defaults shown
        connects_per_minute_per_ip: 30
        connects_per_minute_per_identity: 15   # EMQX's flapping rule
        ban: 5m
        auth_failures_before_ban: 5
        connections_per_ip: 100
        publishes_per_second: 100
        bytes_per_second: 1048576
        max_packet_size: 262144
        handshake_timeout: 10s

  - Over-limit or refused QoS 1/2 publishes from MQTT 5 clients get their reason code (0x97 quota
    exceeded, 0x87 not authorised, 0x99 payload format invalid); MQTT 3.1.1 has no negative
    acknowledgement, so such a client is disconnected rather than left waiting.
  - Every decision is written to the audit log (JSON lines; never a password or payload), counted
    in Prometheus metrics on --metrics (/metrics, /healthz, /bans), and the detectors of 'analyze'
    watch the gateway's traffic and log their attack findings.

Settings can also come from --config FILE (YAML with the flags' names: listen, pki, policy,
metrics, audit, passwords, client_id, min_tls, state); flags given on the command line win.
Errors in the config or policy are reported with file and line before anything listens.
SIGINT or SIGTERM shut down gracefully.`,
		Example: `  iomtguard pki init --dir ca && iomtguard pki issue --dir ca --name gateway --server --host localhost
  iomtguard gateway --pki ca --policy ward.yaml --listen :8883 --audit audit.jsonl
  iomtguard gateway --config gateway.yaml
  iomtguard gateway bans                       # list bans; --lift ip:10.5.127.10 lifts one`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg := c
			if cfgFile != "" {
				fc, err := gateway.LoadConfig(cfgFile)
				if err != nil {
					return usageError{err}
				}
				cfg = *fc
				// Flags given on the command line win.
				cmd.Flags().Visit(func(f *pflag.Flag) {
					switch f.Name {
					case "listen":
						cfg.Listen = c.Listen
					case "pki":
						cfg.PKI = c.PKI
					case "policy":
						cfg.Policy = c.Policy
					case "metrics":
						cfg.Metrics = c.Metrics
					case "audit":
						cfg.Audit = c.Audit
					case "passwords":
						cfg.Passwords = c.Passwords
					case "client-id":
						cfg.ClientID = c.ClientID
					case "min-tls":
						cfg.MinTLS = c.MinTLS
					case "state":
						cfg.State = c.State
					case "audit-publishes":
						cfg.AuditPublishes = c.AuditPublishes
					}
				})
			}
			log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
			g, err := gateway.New(cfg, gateway.Options{Logger: log})
			if err != nil {
				if errors.Is(err, gateway.ErrConfig) || errors.Is(err, policy.ErrPolicy) {
					return usageError{err}
				}
				return err
			}
			if err := g.Start(); err != nil {
				return err
			}
			log.Info("gateway listening", "mqtts", g.Addr(), "metrics", g.MetricsAddr(), "policy", cfg.Policy)
			<-cmd.Context().Done()
			log.Info("shutting down")
			return g.Close()
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfgFile, "config", "", "YAML file with all settings")
	f.StringVar(&c.Listen, "listen", ":8883", "TLS listener address")
	f.StringVar(&c.PKI, "pki", "", "CA directory (ca.crt, gateway.crt, gateway.key, ca.crl)")
	f.StringVar(&c.Policy, "policy", "", "policy file (devices, roles, sealed topics, limits)")
	f.StringVar(&c.Metrics, "metrics", "127.0.0.1:9108", "Prometheus metrics, health and bans API address (off to disable)")
	f.StringVar(&c.Audit, "audit", "-", "audit log file (JSON lines; - for stderr)")
	f.BoolVar(&c.AuditPublishes, "audit-publishes", false, "also log every allowed PUBLISH (denials are always logged)")
	f.StringVar(&c.Passwords, "passwords", "", "password file (gateway passwd): a password on top of the certificate")
	f.StringVar(&c.ClientID, "client-id", "identity", "client ID rule: identity, prefix or any")
	f.StringVar(&c.MinTLS, "min-tls", "1.2", "lowest TLS version: 1.2 or 1.3")
	f.StringVar(&c.State, "state", "", "directory that keeps bans across restarts")
	cmd.AddCommand(gatewayBansCmd(stdout), gatewayPasswdCmd(stdin, stdout, stderr))
	return cmd
}

func gatewayBansCmd(stdout io.Writer) *cobra.Command {
	var admin, lift string
	cmd := &cobra.Command{
		Use:   "bans [--admin HOST:PORT] [--lift KEY]",
		Short: "List the running gateway's bans, or lift one",
		Example: `  iomtguard gateway bans
  iomtguard gateway bans --lift ip:10.5.127.10
  iomtguard gateway bans --lift identity:bed1-ecg`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			hc := &http.Client{Timeout: 5 * time.Second}
			base := "http://" + admin + "/bans"
			if lift != "" {
				req, _ := http.NewRequestWithContext(cmd.Context(), http.MethodDelete, base+"?key="+url.QueryEscape(lift), nil)
				resp, err := hc.Do(req)
				if err != nil {
					return fmt.Errorf("gateway admin API at %s: %w", admin, err)
				}
				defer resp.Body.Close()
				if resp.StatusCode == http.StatusNotFound {
					return usageError{fmt.Errorf("no ban on %s", lift)}
				}
				fmt.Fprintf(stdout, "lifted %s\n", lift)
				return nil
			}
			resp, err := hc.Get(base)
			if err != nil {
				return fmt.Errorf("gateway admin API at %s: %w", admin, err)
			}
			defer resp.Body.Close()
			var bans []gateway.Ban
			if err := json.NewDecoder(resp.Body).Decode(&bans); err != nil {
				return err
			}
			tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "KEY\tSINCE\tUNTIL\tREASON")
			for _, b := range bans {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", b.Key, b.Since.UTC().Format(time.RFC3339), b.Until.UTC().Format(time.RFC3339), b.Reason)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVar(&admin, "admin", "127.0.0.1:9108", "the gateway's --metrics address")
	cmd.Flags().StringVar(&lift, "lift", "", "lift the ban on KEY (ip:ADDRESS or identity:NAME)")
	return cmd
}

func gatewayPasswdCmd(stdin io.Reader, stdout, stderr io.Writer) *cobra.Command {
	var file, user string
	cmd := &cobra.Command{
		Use:   "passwd --file FILE --user IDENTITY",
		Short: "Set a password in the gateway's password file (PBKDF2-SHA256; read from the terminal or stdin)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if file == "" || user == "" {
				return usageError{errors.New("--file and --user are required")}
			}
			var pw string
			if f, ok := stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
				fmt.Fprintf(stderr, "password for %s: ", user)
				b, err := term.ReadPassword(int(f.Fd()))
				fmt.Fprintln(stderr)
				if err != nil {
					return err
				}
				pw = string(b)
			} else {
				line, err := bufio.NewReader(stdin).ReadString('\n')
				if err != nil && line == "" {
					return usageError{errors.New("no password on stdin")}
				}
				pw = strings.TrimRight(line, "\r\n")
			}
			if len(pw) < 8 {
				return usageError{errors.New("a password needs at least 8 characters")}
			}
			if err := gateway.SetPassword(file, user, pw); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "password for %s set in %s\n", user, file)
			return nil
		},
	}
	cmd.Flags().StringVar(&file, "file", "", "password file (created 0600)")
	cmd.Flags().StringVar(&user, "user", "", "identity (the certificate's name)")
	return cmd
}
