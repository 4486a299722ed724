package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"

	"github.com/iomtguard/iomtguard/internal/dashboard"
	"github.com/iomtguard/iomtguard/internal/history"
	"github.com/iomtguard/iomtguard/internal/hub"
)

// startSensor links watch to its hub when --hub is given; it returns the
// sensor and the name watch labels its alerts and rows with.
func startSensor(o watchOptions, replay bool, log *slog.Logger) (*hub.Sensor, string, error) {
	if o.hub == "" {
		if o.site != "" || o.sensor != "" {
			return nil, "", usageError{errors.New("--site and --sensor go with --hub")}
		}
		return nil, "", nil
	}
	if err := hub.CheckName("--site", o.site); err != nil {
		return nil, "", usageError{err}
	}
	if err := hub.CheckName("--sensor", o.sensor); err != nil {
		return nil, "", usageError{err}
	}
	so := hub.SensorOptions{URL: o.hub, Site: o.site, Sensor: o.sensor, Spool: o.spool, MaxSpool: int64(o.spoolMB) << 20,
		Patient: replay, Logger: log}
	if o.spoolMB <= 0 {
		return nil, "", usageError{errors.New("--spool-mb: want a positive number of megabytes")}
	}
	if so.Spool == "" {
		dir, err := os.UserCacheDir()
		if err != nil {
			dir = os.TempDir()
		}
		so.Spool = filepath.Join(dir, "iomtguard", "spool", o.site+"."+o.sensor)
	}
	if o.pki != "" {
		tc, err := hub.ClientTLS(o.pki, hub.SensorCertName(o.site, o.sensor))
		if err != nil {
			return nil, "", usageError{err}
		}
		so.TLS = tc
	}
	s, err := hub.NewSensor(so)
	if err != nil {
		return nil, "", err
	}
	return s, hub.Source(o.site, o.sensor), nil
}

func registerSensorMetrics(reg *prometheus.Registry, s *hub.Sensor) {
	gauge := func(name, help string, f func(hub.SensorStats) float64) {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "iomtguard_sensor_" + name, Help: help},
			func() float64 { return f(s.Stats()) }))
	}
	gauge("connected", "1 while the hub's NATS is connected.", func(st hub.SensorStats) float64 {
		if st.Connected {
			return 1
		}
		return 0
	})
	gauge("published_total", "Messages the hub's stream acknowledged.", func(st hub.SensorStats) float64 { return float64(st.Published) })
	gauge("dropped_total", "Messages lost: the spool or its intake was full.", func(st hub.SensorStats) float64 { return float64(st.Dropped) })
	gauge("spooled", "Messages waiting for the hub.", func(st hub.SensorStats) float64 { return float64(st.Spooled) })
	gauge("spool_bytes", "Bytes waiting for the hub.", func(st hub.SensorStats) float64 { return float64(st.SpoolBytes) })
}

type hubOptions struct {
	data, listen, nats, http, pki, name string
	token                               string
	printUsers                          bool
	replicas                            int
	maxAge, retain                      string
	quiet                               bool
}

func hubCmd(stdout, stderr io.Writer) *cobra.Command {
	var o hubOptions
	cmd := &cobra.Command{
		Use:   "hub --data DIR [--listen ADDR] [--nats URL] [--http ADDR] [--pki DIR]",
		Short: "Gather the sensors (watch --hub) of a hospital group: their minutes, incidents and devices, in one history",
		Long: `hub receives what every sensor (iomtguard watch --hub URL --site S --sensor N) sends: each minute's
analysis, incident events and device changes, through NATS JetStream. It keeps them in
DIR/history.db, from which 'iomtguard report --db DIR/history.db' writes the group's report (or one
sensor's, --sensor SITE/NAME), equal to analyze of the same traffic.

By default it starts an embedded NATS server with JetStream on disk (DIR/nats) on --listen (default
127.0.0.1:4222); an address that is not loopback requires --pki. --nats URL uses an existing NATS
server or cluster instead (--replicas 3 on a three-node cluster). Several hubs may consume the same
stream: each (--name) keeps a whole history, and a hub restarted with its name goes on where it
stopped; a message stored twice changes nothing.

--http ADDR (default 127.0.0.1:9110) serves watch's dashboard for the group and for each site (a
selector at the top): the last 5 minutes and hour of the sensors' minutes, the incidents of the
day (the cross-site ones in every view), the devices; with /status (per sensor run: minutes sent
and stored), /metrics and /healthz. Away from loopback it requires a token (--token, or one is
made and printed).

Cross-site detectors run on what every sensor reports about its sessions: attack.cloned-identity
(one client ID active on two wards at once) and attack.distributed-bruteforce (password guesses
spread over several brokers); 'iomtguard detectors' lists their rules.

--pki DIR (an 'iomtguard pki' directory): the embedded server takes TLS connections with a
certificate of that PKI only; sensor.SITE.SENSOR (issued with --role sensor) may publish under
its own subjects only, hub.NAME (--role hub) may do everything, any other certificate nothing.
The server's certificate is DIR/hub.crt (iomtguard pki issue --name hub --server --host HOST);
the hub connects as hub.NAME.`,
		Example: `  iomtguard hub --data /var/lib/iomtguard-hub
  iomtguard pki init --dir pki && iomtguard pki issue --dir pki --name hub --server --host hub.hospital
  iomtguard pki issue --dir pki --name hub.main --role hub
  iomtguard pki issue --dir pki --name sensor.icu.s1 --role sensor
  iomtguard hub --data /var/lib/iomtguard-hub --listen 0.0.0.0:4222 --pki pki --name main
  iomtguard report --db /var/lib/iomtguard-hub/history.db --since 24h --out group-report`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runHub(cmd.Context(), o, stdout, stderr)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.data, "data", "", "the hub's directory: history.db, and the embedded server's JetStream store")
	f.StringVar(&o.listen, "listen", "127.0.0.1:4222", "the embedded NATS server's address (not loopback: requires --pki)")
	f.StringVar(&o.nats, "nats", "", "use this NATS server or cluster (nats://HOST:PORT, comma-separated) instead of the embedded one")
	f.StringVar(&o.http, "http", "127.0.0.1:9110", "the dashboard (the group and each site), /status (JSON), /metrics and /healthz (off: none)")
	f.StringVar(&o.token, "token", "", "token the dashboard requires (default on a non-loopback address: a random one, printed)")
	f.StringVar(&o.pki, "pki", "", "PKI directory: TLS with certificates, permissions from their names (see above)")
	f.StringVar(&o.name, "name", "", "this hub's name: its durable consumer and its certificate hub.NAME (default: the host name)")
	f.IntVar(&o.replicas, "replicas", 1, "--nats: the stream's replicas (3 on a three-node cluster)")
	f.StringVar(&o.maxAge, "max-age", "7d", "how long the stream keeps messages: how long a hub may be down and catch up")
	f.StringVar(&o.retain, "retain", "90d", "how long the history keeps minutes, closed incidents and devices (back from the newest minute)")
	f.BoolVarP(&o.quiet, "quiet", "q", false, "no status lines on stderr")
	f.BoolVar(&o.printUsers, "print-nats-users", false, "print the users and permissions of --pki as a nats-server configuration block (for an external NATS cluster), and exit")
	return cmd
}

func runHub(ctx context.Context, o hubOptions, stdout, stderr io.Writer) error {
	if o.printUsers {
		if o.pki == "" {
			return usageError{errors.New("--print-nats-users needs --pki")}
		}
		block, err := (&hub.Security{Dir: o.pki}).NATSUsers()
		if err != nil {
			return err
		}
		_, err = io.WriteString(stdout, block)
		return err
	}
	if o.data == "" {
		return usageError{errors.New("--data is required")}
	}
	maxAge, err := parseRetain(o.maxAge)
	if err != nil {
		return usageError{errors.New("--max-age: want a duration such as 7d or 48h")}
	}
	retain, err := parseRetain(o.retain)
	if err != nil {
		return usageError{err}
	}
	if o.replicas < 1 || o.replicas > 5 {
		return usageError{errors.New("--replicas: 1 to 5")}
	}
	if o.name == "" {
		host, _ := os.Hostname()
		o.name = sanitizeName(host)
	}
	if err := hub.CheckName("--name", o.name); err != nil {
		return usageError{err}
	}
	ho := hub.Options{Data: o.data, Listen: o.listen, NATS: o.nats, Name: o.name, Replicas: o.replicas, MaxAge: maxAge, Retain: retain,
		Logger: slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	if o.nats == "" {
		host, _, err := net.SplitHostPort(o.listen)
		if err != nil {
			return usageError{fmt.Errorf("--listen %q: %v", o.listen, err)}
		}
		if ip := net.ParseIP(host); (ip == nil || !ip.IsLoopback()) && host != "localhost" && o.pki == "" {
			return usageError{fmt.Errorf("--listen %s is not loopback: give --pki, so that only the PKI's sensors and hubs connect, with TLS", o.listen)}
		}
		if o.pki != "" {
			ho.Security = &hub.Security{Dir: o.pki}
		}
	}
	if o.pki != "" {
		tc, err := hub.ClientTLS(o.pki, hub.HubCertName(o.name))
		if err != nil {
			return usageError{err}
		}
		ho.TLS = tc
	}
	h, err := hub.Start(ho)
	if err != nil {
		return err
	}
	defer h.Close()
	fmt.Fprintf(stderr, "hub %s: NATS %s, history %s\n", o.name, h.URL(), filepath.Join(o.data, "history.db"))
	if o.http != "" && o.http != "off" {
		srv, token, err := hubDashboard(o.http, o.token, h)
		if err != nil {
			return usageError{err}
		}
		defer srv.Close()
		url := srv.URL
		if token != "" {
			url += "?token=" + token
		}
		fmt.Fprintf(stderr, "dashboard: %s (status: %sstatus)\n", url, srv.URL)
	}
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if !o.quiet {
				st := h.Stats()
				fmt.Fprintf(stderr, "%s stored %d minutes, %d events; %d redelivered, %d refused\n", time.Now().Format("15:04:05"),
					st.Minutes, st.Events, st.Redelivered, st.Rejected)
			}
		}
	}
}

// sanitizeName makes a host name a NATS token.
func sanitizeName(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			b[i] = '-'
		}
	}
	if len(b) == 0 {
		return "hub"
	}
	if len(b) > 64 {
		b = b[:64]
	}
	return string(b)
}

// hubStatus is /status: the counters, and per sensor run what was sent and
// stored.
type hubStatus struct {
	Hub       hub.Stats             `json:"hub"`
	Pending   int64                 `json:"pending"`
	Intervals []hubIntervalsSummary `json:"intervals"`
}

type hubIntervalsSummary struct {
	history.RunIntervals
	Lost int64 `json:"lost"`
}

// hubDashboard serves the dashboard of the group and of each site, with
// /status, /metrics and /healthz.
func hubDashboard(addr, token string, h *hub.Hub) (*dashboard.Server, string, error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	gauge := func(name, help string, f func(hub.Stats) float64) {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "iomtguard_hub_" + name, Help: help}, func() float64 { return f(h.Stats()) }))
	}
	gauge("minutes_total", "Sensor minutes stored.", func(s hub.Stats) float64 { return float64(s.Minutes) })
	gauge("events_total", "Sensor events stored.", func(s hub.Stats) float64 { return float64(s.Events) })
	gauge("redelivered_total", "Messages delivered again (stored once).", func(s hub.Stats) float64 { return float64(s.Redelivered) })
	gauge("rejected_total", "Messages refused.", func(s hub.Stats) float64 { return float64(s.Rejected) })
	gauge("incidents_total", "Cross-site incidents opened.", func(s hub.Stats) float64 { return float64(s.Incidents) })
	status := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		defer cancel()
		st := hubStatus{Hub: h.Stats(), Pending: h.Pending(ctx)}
		runs, err := h.DB().Intervals()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		for _, r := range runs {
			st.Intervals = append(st.Intervals, hubIntervalsSummary{RunIntervals: r, Lost: r.Sent - r.Stored})
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(st)
	})
	return dashboard.Start(dashboard.Options{Addr: addr, Token: token, Registry: reg, Title: "iomtguard hub",
		Views: h.Views, SnapshotOf: func(v string) any { return h.View(v) },
		Handlers: map[string]http.Handler{"/status": status},
		Health: func() (string, any) {
			if err := h.DB().Err(); err != nil {
				return "history failing: " + err.Error(), nil
			}
			return "ok", h.Stats()
		}})
}
