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
	"os/signal"
	"strings"
	"syscall"
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
		Short: "Run the secure MQTT gateway: certificate identity, topic policy, limits, bans, audit, hot reload",
		Long: `gateway is an MQTT 3.1.1 and 5.0 broker for medical devices, secure by default:

  - TLS only (1.2 minimum, --min-tls 1.3 to require 1.3), with a client certificate signed by
    DIR/ca.crt required; the device's identity is its certificate's name. It serves
    DIR/gateway.crt (iomtguard pki issue --dir DIR --name gateway --server --host HOST) and
    refuses certificates listed in DIR/ca.crl (iomtguard pki revoke).
  - The client ID must be the identity (--client-id prefix|any to relax), so no client can take
    over another's session.
  - The policy file (the same one analyze reads) gives each identity its topics; everything else
    is denied. '#' and '$SYS/#' are refused unless the policy names them; a shared subscription
    ($share/GROUP/FILTER) is judged by its FILTER; a will is judged at CONNECT as a PUBLISH:

      devices:
        bed1-ecg:      {publish: ["icu/bed1/ecg"]}
        nurse-station: {subscribe: ["icu/+/ecg"], roles: [clinician]}
        "bed*-spo2":   {roles: [spo2]}
      roles:
        spo2:      {publish: ["icu/{identity}/spo2"]}
        clinician: {subscribe: ["icu/+/patient"]}
      sealed_topics: ["icu/+/patient"]   # only iomtguard seal envelopes, sealed for that topic
      no_retain: ["icu/+/ecg"]
      limits:                            # some of the defaults (README.md lists them all)
        connects_per_minute_per_ip: 30
        connects_per_minute_per_identity: 15   # EMQX's flapping rule
        ban: 5m
        auth_failures_before_ban: 5
        connections_per_ip: 100
        max_connections: 10000
        publishes_per_second: 100
        bytes_per_second: 1048576
        max_packet_size: 262144
        max_topic_length: 512
        max_filters_per_subscribe: 32
        max_subscriptions_per_client: 128
        max_inflight: 256
        max_queued_messages: 1000
        max_retained: 10000
        max_keepalive: 1h                # MQTT 3.1.1 clients asking for more (or 0) are refused
        handshake_timeout: 10s           # TLS handshake, and then CONNECT, each within it
        handshakes_per_ip: 32            # fair shares of the 512 handshake slots
        handshakes_per_subnet: 128

  - Refused QoS 1/2 publishes from MQTT 5 clients get their reason code (0x87 not authorised,
    0x97 quota exceeded, 0x99 payload format invalid, 0x9A retain not supported), in a PUBACK or
    a PUBREC; MQTT 3.1.1 has no negative acknowledgement, so such a client is disconnected
    rather than left waiting (without a DISCONNECT packet, which 3.1.1 does not define).
  - Every decision is written to the audit log (JSON lines; never a password or payload; topics
    cut at 256 bytes). Repeats are summarised: per identity or address, action and rule, five
    lines then one line with the count every 10 s, so no client can fill the disk; the file
    rotates at --audit-max-size. Counted in Prometheus metrics on --metrics (/metrics,
    /healthz, /bans, /reload); the detectors of 'analyze' watch the gateway's traffic.
  - The policy, the password file and DIR/ca.crl are reloaded when they change (checked every
    second), on SIGHUP and on POST /reload: validated first (a bad file keeps the previous one
    and says why in the log and /healthz), then applied to open sessions: a revoked or removed
    identity is disconnected and its session dropped, a removed right removes the subscription.
  - Bans are kept in the state directory (--state; default $XDG_STATE_HOME/iomtguard/gateway)
    across restarts.
  - --upstream mqtts://broker:8883 relays to the hospital's existing broker (Mosquitto, EMQX, a
    NATS MQTT listener) with the gateway's credentials: devices keep mTLS to the gateway, which
    enforces everything above in front of a broker it does not replace.
  - --nats nats://host:4222 makes several gateways one: bans and revocations made at one apply
    at all within a second (a JetStream key-value bucket).

Settings can also come from --config FILE (YAML with the flags' names, dashes as underscores);
flags given on the command line win. Errors in the config or policy are reported with file and
line before anything listens. SIGINT or SIGTERM shut down within seconds whatever the clients do.`,
		Example: `  iomtguard pki init --dir ca && iomtguard pki issue --dir ca --name gateway --server --host localhost
  iomtguard gateway --pki ca --policy ward.yaml --listen 10.5.126.84:8883 --audit audit.jsonl   # the devices network only
  iomtguard gateway --pki ca --policy ward.yaml --upstream mqtt://127.0.0.1:1883 --upstream-user gw --upstream-password-file gw.pass
  iomtguard gateway --config gateway.yaml
  kill -HUP $(pidof iomtguard)                 # reload the policy, passwords and CRL now
  iomtguard gateway bans                       # list bans; --lift ip:10.5.127.10 lifts one
  iomtguard gateway bans --add identity:bed1-ecg --for 24h --reason "reported stolen"`,
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
					if set, ok := gatewayFlags(&cfg, &c)[f.Name]; ok {
						set()
					}
				})
			}
			checks := []error{checkInt("audit-keep", cfg.AuditKeep, 1, 1000), checkDuration("watch-interval", cfg.WatchInterval, 100*time.Millisecond, time.Hour)}
			if cfg.AuditMaxSize == 0 {
				checks = append(checks, usageError{errors.New("--audit-max-size: want a size in bytes, or a negative number for no rotation, not 0")})
			}
			for _, err := range checks {
				if err != nil {
					return err
				}
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
				g.Close()
				return err
			}
			log.Info("gateway listening", "mqtts", g.Addr(), "metrics", g.MetricsAddr(), "policy", cfg.Policy)
			hup := make(chan os.Signal, 1)
			signal.Notify(hup, syscall.SIGHUP)
			defer signal.Stop(hup)
			for {
				select {
				case <-hup:
					if err := g.Reload(); err != nil {
						log.Error("reload", "error", err)
					}
					continue
				case <-cmd.Context().Done():
				}
				break
			}
			log.Info("shutting down")
			return g.Close()
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfgFile, "config", "", "YAML file with all settings")
	f.StringVar(&c.Listen, "listen", ":8883", "TLS listener address (the default listens on every interface: devices must reach it)")
	f.StringVar(&c.PKI, "pki", "", "CA directory (ca.crt, gateway.crt, gateway.key, ca.crl)")
	f.StringVar(&c.Policy, "policy", "", "policy file (devices, roles, sealed topics, limits)")
	f.StringVar(&c.Metrics, "metrics", "127.0.0.1:9108", "Prometheus metrics, health, bans and reload API address (off to disable)")
	f.StringVar(&c.Audit, "audit", "-", "audit log file (JSON lines; - for stderr)")
	f.Int64Var(&c.AuditMaxSize, "audit-max-size", 100<<20, "rotate the audit file at this many bytes (negative: never)")
	f.IntVar(&c.AuditKeep, "audit-keep", 5, "rotated audit files kept")
	f.BoolVar(&c.AuditPublishes, "audit-publishes", false, "also log every allowed PUBLISH (denials are always logged)")
	f.StringVar(&c.Passwords, "passwords", "", "password file (gateway passwd): a password on top of the certificate")
	f.StringVar(&c.ClientID, "client-id", "identity", "client ID rule: identity, prefix or any")
	f.StringVar(&c.MinTLS, "min-tls", "1.2", "lowest TLS version: 1.2 or 1.3")
	f.StringVar(&c.State, "state", "", "directory that keeps bans across restarts (default "+gateway.DefaultStateDir()+"; none: memory only)")
	f.DurationVar(&c.WatchInterval, "watch-interval", time.Second, "how often the policy, passwords and CRL are checked for changes")
	f.StringVar(&c.Upstream, "upstream", "", "relay to this broker (mqtts://HOST:PORT or mqtt://HOST:PORT)")
	f.StringVar(&c.UpstreamCA, "upstream-ca", "", "CA file that verifies the upstream broker (default: the system roots)")
	f.StringVar(&c.UpstreamCert, "upstream-cert", "", "client certificate at the upstream broker (default: the gateway's)")
	f.StringVar(&c.UpstreamKey, "upstream-key", "", "its key")
	f.StringVar(&c.UpstreamUser, "upstream-user", "", "MQTT user name at the upstream broker")
	f.StringVar(&c.UpstreamPasswordFile, "upstream-password-file", "", "file holding the MQTT password at the upstream broker")
	f.StringVar(&c.UpstreamClientID, "upstream-client-id", "", "client ID at the upstream broker (default iomtguard-gateway-HOSTNAME)")
	f.StringVar(&c.NATS, "nats", "", "share bans and revocations with other gateways through this NATS server (nats:// or tls://)")
	f.StringVar(&c.NATSCA, "nats-ca", "", "CA file that verifies NATS (tls:// default: DIR/ca.crt)")
	f.StringVar(&c.NATSCert, "nats-cert", "", "client certificate at NATS (tls:// default: the gateway's)")
	f.StringVar(&c.NATSKey, "nats-key", "", "its key")
	cmd.AddCommand(gatewayBansCmd(stdout), gatewayPasswdCmd(stdin, stdout, stderr))
	return cmd
}

// gatewayFlags maps each flag to copying its value from the command line
// (flags) over what the config file set (cfg).
func gatewayFlags(cfg, flags *gateway.Config) map[string]func() {
	return map[string]func(){
		"listen": func() { cfg.Listen = flags.Listen }, "pki": func() { cfg.PKI = flags.PKI }, "policy": func() { cfg.Policy = flags.Policy },
		"metrics": func() { cfg.Metrics = flags.Metrics }, "audit": func() { cfg.Audit = flags.Audit },
		"audit-max-size": func() { cfg.AuditMaxSize = flags.AuditMaxSize }, "audit-keep": func() { cfg.AuditKeep = flags.AuditKeep },
		"audit-publishes": func() { cfg.AuditPublishes = flags.AuditPublishes }, "passwords": func() { cfg.Passwords = flags.Passwords },
		"client-id": func() { cfg.ClientID = flags.ClientID }, "min-tls": func() { cfg.MinTLS = flags.MinTLS }, "state": func() { cfg.State = flags.State },
		"watch-interval": func() { cfg.WatchInterval = flags.WatchInterval }, "upstream": func() { cfg.Upstream = flags.Upstream },
		"upstream-ca": func() { cfg.UpstreamCA = flags.UpstreamCA }, "upstream-cert": func() { cfg.UpstreamCert = flags.UpstreamCert },
		"upstream-key": func() { cfg.UpstreamKey = flags.UpstreamKey }, "upstream-user": func() { cfg.UpstreamUser = flags.UpstreamUser },
		"upstream-password-file": func() { cfg.UpstreamPasswordFile = flags.UpstreamPasswordFile },
		"upstream-client-id":     func() { cfg.UpstreamClientID = flags.UpstreamClientID },
		"nats":                   func() { cfg.NATS = flags.NATS }, "nats-ca": func() { cfg.NATSCA = flags.NATSCA },
		"nats-cert": func() { cfg.NATSCert = flags.NATSCert }, "nats-key": func() { cfg.NATSKey = flags.NATSKey },
	}
}

func gatewayBansCmd(stdout io.Writer) *cobra.Command {
	var admin, lift, add, reason string
	var dur time.Duration
	cmd := &cobra.Command{
		Use:   "bans [--admin HOST:PORT] [--lift KEY | --add KEY [--for DURATION] [--reason TEXT]]",
		Short: "List the running gateway's bans, impose one or lift one",
		Long: `bans talks to a running gateway's admin API (its --metrics address). KEY is ip:ADDRESS or
identity:NAME. A ban imposed on an identity disconnects its open session at once; with --nats it
applies at every gateway of the group within a second.`,
		Example: `  iomtguard gateway bans
  iomtguard gateway bans --lift ip:10.5.127.10
  iomtguard gateway bans --add identity:bed1-ecg --for 24h --reason "reported stolen"`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if lift != "" && add != "" {
				return usageError{errors.New("--lift and --add exclude each other")}
			}
			if cmd.Flags().Changed("for") {
				if err := checkDuration("for", dur, time.Second, 366*24*time.Hour); err != nil {
					return err
				}
			}
			hc := &http.Client{Timeout: 5 * time.Second}
			base := "http://" + admin + "/bans"
			do := func(method, q string) (*http.Response, error) {
				req, _ := http.NewRequestWithContext(cmd.Context(), method, base+q, nil)
				resp, err := hc.Do(req)
				if err != nil {
					return nil, fmt.Errorf("gateway admin API at %s: %w", admin, err)
				}
				return resp, nil
			}
			switch {
			case lift != "":
				resp, err := do(http.MethodDelete, "?key="+url.QueryEscape(lift))
				if err != nil {
					return err
				}
				defer resp.Body.Close()
				if resp.StatusCode == http.StatusNotFound {
					return usageError{fmt.Errorf("no ban on %s", lift)}
				}
				fmt.Fprintf(stdout, "lifted %s\n", lift)
				return nil
			case add != "":
				q := "?key=" + url.QueryEscape(add) + "&reason=" + url.QueryEscape(reason)
				if dur > 0 {
					q += "&for=" + url.QueryEscape(dur.String())
				}
				resp, err := do(http.MethodPost, q)
				if err != nil {
					return err
				}
				defer resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					var e map[string]string
					json.NewDecoder(resp.Body).Decode(&e)
					return usageError{fmt.Errorf("ban %s: %s", add, e["error"])}
				}
				var b gateway.Ban
				json.NewDecoder(resp.Body).Decode(&b)
				fmt.Fprintf(stdout, "banned %s until %s\n", b.Key, b.Until.UTC().Format(time.RFC3339))
				return nil
			}
			resp, err := do(http.MethodGet, "")
			if err != nil {
				return err
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
	cmd.Flags().StringVar(&add, "add", "", "ban KEY (ip:ADDRESS or identity:NAME)")
	cmd.Flags().DurationVar(&dur, "for", 0, "length of the ban imposed with --add (default: the policy's ban)")
	cmd.Flags().StringVar(&reason, "reason", "", "why, for the audit log")
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
