package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"

	"github.com/iomtguard/iomtguard/internal/alert"
	"github.com/iomtguard/iomtguard/internal/analysis"
	"github.com/iomtguard/iomtguard/internal/baseline"
	"github.com/iomtguard/iomtguard/internal/dashboard"
	"github.com/iomtguard/iomtguard/internal/detect"
	"github.com/iomtguard/iomtguard/internal/history"
	"github.com/iomtguard/iomtguard/internal/incident"
	"github.com/iomtguard/iomtguard/internal/pipeline"
	"github.com/iomtguard/iomtguard/internal/report"
	"github.com/iomtguard/iomtguard/internal/source"
	"github.com/iomtguard/iomtguard/internal/watch"
)

type watchOptions struct {
	baseline                  string
	learn                     time.Duration
	iface, dir, replay, speed string
	filter                    string
	promisc                   bool
	snaplen, ringMB           int
	http, token               string
	alerts                    string
	syslog, webhook           []string
	db                        string
	retain                    string
	duration                  time.Duration
	policy                    string
	closeAfter, updateEvery   time.Duration
	quiet                     bool
	hub, site, sensor, pki    string
	spool                     string
	spoolMB                   int
}

func watchCmd(stdin io.Reader, stdout, stderr io.Writer) *cobra.Command {
	var o watchOptions
	cmd := &cobra.Command{
		Use:   "watch (--interface IF | - | --dir DIR | --replay FILE [--speed N|max]) [flags]",
		Short: "Monitor live traffic: incidents, inventory, a live dashboard, alerts (JSON lines, syslog, webhook) and a history",
		Long: `watch runs analyze's pipeline continuously, with the same detectors: on a live interface (the
ward's mirror port), on a pcap stream on stdin, on a directory a rotating capture writes, or on a
capture replayed at N times real time. It reports:

  incidents    a finding while it goes on: one alert when it opens, updates at most every
               --update-every (at once when its severity rises), one when it closes (after
               --close-after without anything new). Time is the capture's.
  inventory    every device, with its role, kind, transport and credentials; new devices (after
               the first 10 minutes) and devices gone silent are events too.
  windows      the traffic of the last 5 minutes, hour and day, with the ARIMA model refitted
               every minute on the last hour; its anomalies feed the anomaly.traffic detector.

Sources: --interface IF captures with AF_PACKET and a memory-mapped ring (pure Go, needs root or
CAP_NET_RAW); - reads a pcap or pcapng stream on stdin (tcpdump -i IF -w - | iomtguard watch -);
--dir DIR follows the files a rotating capture writes there (tcpdump -G/-C, dumpcap's ring
buffer), in name order, as they appear and grow; --replay FILE --speed N replays a capture at N
times real time (max: as fast as it can). --filter applies a capture filter in tcpdump's words
(host, net, port, portrange, tcp, udp, icmp, ip, ip6, vlan, src/dst, and/or/not) to every source.
Frames the kernel or iomtguard drop are counted and shown everywhere: the dashboard, /metrics,
the log.

Outputs: --http ADDR serves the live dashboard (default 127.0.0.1:9109; off to disable), with
/metrics (Prometheus) and /healthz; on an address that is not loopback it requires a token
(--token, or one is made and printed). --alerts FILE|- writes one JSON object per incident event
(id, severity, title, status open/update/closed, first_seen, last_seen, count, evidence, controls,
defence) and inventory event; --syslog udp://HOST:PORT or tcp://HOST:PORT sends RFC 5424;
--webhook URL POSTs each as JSON, retried with back-off. Alerts wait in bounded queues that never
block capture; what is lost is counted. --db FILE keeps the history (SQLite, WAL): incidents,
devices and every minute's analysis, for --retain (default 90d); a restart, even after kill -9,
goes on with them, and 'iomtguard report --db FILE' writes the report of any period.

Sensor of a hub: --hub nats://HOST:PORT --site S --sensor N sends the hub (iomtguard hub) each
minute's analysis, every incident event and device change, not packets; with --pki DIR it
connects with the certificate sensor.S.N of that PKI. What the hub has not acknowledged waits in
--spool DIR (bounded by --spool-mb) and is sent, in order, when the hub is reachable again.

A finite source (stdin, a replay) ends the run once it is read and everything is flushed;
--duration ends any run, as SIGINT and SIGTERM do.`,
		Example: `  iomtguard watch --interface eth1 --db ward.db --alerts alerts.jsonl
  tcpdump -i eth1 -U -w - | iomtguard watch - --filter "port 1883 or port 8883"
  iomtguard watch --dir /var/capture/ring --syslog udp://siem.hospital:514 --webhook https://soc.hospital/hook
  iomtguard watch --replay ward.pcapng --speed 10 --http 127.0.0.1:9109
  iomtguard watch --interface eth1 --hub nats://hub.hospital:4222 --site icu --sensor s1 --pki /etc/iomtguard/pki`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 1 || (len(args) == 1 && args[0] != "-") {
				return fmt.Errorf("watch takes - (stdin) or a source flag, not %q", strings.Join(args, " "))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return runWatch(cmd.Context(), o, len(args) == 1, stdin, stdout, stderr)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.iface, "interface", "", "capture live on this network interface (AF_PACKET; needs root or CAP_NET_RAW)")
	f.StringVar(&o.dir, "dir", "", "follow the capture files a rotating capture writes in this directory")
	f.StringVar(&o.replay, "replay", "", "replay this capture file")
	f.StringVar(&o.speed, "speed", "1", "replay speed: N times real time, or max")
	f.StringVar(&o.filter, "filter", "", `capture filter, tcpdump's words ("port 1883 or port 8883", "net 10.5.126.0/24 and not port 22")`)
	f.BoolVar(&o.promisc, "promiscuous", false, "--interface: put the interface in promiscuous mode (a mirror port usually needs it)")
	f.IntVar(&o.snaplen, "snaplen", 65535, "--interface: bytes kept of each frame")
	f.IntVar(&o.ringMB, "ring-mb", 64, "--interface: the kernel ring's size in MB (what absorbs bursts)")
	f.StringVar(&o.http, "http", "127.0.0.1:9109", "dashboard, /metrics and /healthz address (off: none)")
	f.StringVar(&o.token, "token", "", "token the dashboard requires (default on a non-loopback address: a random one, printed)")
	f.StringVar(&o.alerts, "alerts", "", "write alerts as JSON lines to this file (- for stdout)")
	f.StringArrayVar(&o.syslog, "syslog", nil, "send alerts by syslog (RFC 5424) to udp://HOST:PORT or tcp://HOST:PORT (repeatable)")
	f.StringArrayVar(&o.webhook, "webhook", nil, "POST alerts as JSON to this URL (repeatable)")
	f.StringVar(&o.db, "db", "", "history database (SQLite): incidents, devices, every minute's analysis")
	f.StringVar(&o.retain, "retain", "90d", "how long the history keeps data (capture time; units s, m, h, d)")
	f.DurationVar(&o.duration, "duration", 0, "stop after this long (wall time; default: until the source ends, or SIGINT)")
	f.StringVar(&o.policy, "policy", "", "policy file (as analyze and the gateway read it): inventory, zones, rights, thresholds")
	f.StringVar(&o.baseline, "baseline", "", "score each MQTT device against this learned baseline (iomtguard baseline learn): anomaly.device-behaviour; with --learn, where the baseline learned is written")
	f.DurationVar(&o.learn, "learn", 0, "learn a baseline over this much capture time first (at least 30m), write it to --baseline, then score against it")
	f.DurationVar(&o.closeAfter, "close-after", 5*time.Minute, "close an incident that showed nothing new for this long (capture time)")
	f.DurationVar(&o.updateEvery, "update-every", 5*time.Minute, "report an open incident again at most this often")
	f.BoolVarP(&o.quiet, "quiet", "q", false, "no status lines on stderr (errors and drops are still printed)")
	f.StringVar(&o.hub, "hub", "", "send minutes, incidents and devices to this hub's NATS (nats://HOST:PORT, several comma-separated)")
	f.StringVar(&o.site, "site", "", "--hub: this sensor's site (letters, digits, - and _)")
	f.StringVar(&o.sensor, "sensor", "", "--hub: this sensor's name within its site")
	f.StringVar(&o.pki, "pki", "", "--hub: connect with TLS and the certificate sensor.SITE.SENSOR of this PKI directory")
	f.StringVar(&o.spool, "spool", "", "--hub: directory for what the hub has not acknowledged (default: under the user's cache directory)")
	f.IntVar(&o.spoolMB, "spool-mb", 1024, "--hub: the spool's bound in MB; past it new messages are dropped and counted")
	return cmd
}

// parseRetain reads a duration that may be in days ("90d").
func parseRetain(s string) (time.Duration, error) {
	if d, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseFloat(d, 64)
		if err != nil || n <= 0 {
			return 0, fmt.Errorf("--retain: want a duration such as 90d or 48h, not %q", s)
		}
		return time.Duration(n * float64(24*time.Hour)), nil
	}
	v, err := time.ParseDuration(s)
	if err != nil || v <= 0 {
		return 0, fmt.Errorf("--retain: want a duration such as 90d or 48h, not %q", s)
	}
	return v, nil
}

func runWatch(ctx context.Context, o watchOptions, stdinSrc bool, stdin io.Reader, stdout, stderr io.Writer) error {
	n := 0
	for _, set := range []bool{o.iface != "", o.dir != "", o.replay != "", stdinSrc} {
		if set {
			n++
		}
	}
	if n != 1 {
		return usageError{errors.New("give one source: --interface IF, - (stdin), --dir DIR or --replay FILE")}
	}
	retain, err := parseRetain(o.retain)
	if err != nil {
		return usageError{err}
	}
	if o.closeAfter <= 0 || o.updateEvery <= 0 {
		return usageError{errors.New("--close-after and --update-every must be positive")}
	}
	filt, err := source.ParseFilter(o.filter)
	if err != nil {
		return usageError{err}
	}
	pol, err := loadPolicy(o.policy)
	if err != nil {
		return err
	}
	var dopts detect.Options
	switch {
	case o.learn != 0:
		if o.baseline == "" {
			return usageError{errors.New("--learn needs --baseline FILE: where to write what it learns")}
		}
		if o.learn < 30*time.Minute {
			return usageError{fmt.Errorf("--learn %s: at least 30m (a baseline needs enough minutes of each device)", o.learn)}
		}
		// What it writes replaces a baseline, never another file.
		if _, err := os.Stat(o.baseline); err == nil {
			if _, err := baseline.Load(o.baseline); err != nil {
				return usageError{fmt.Errorf("--baseline %s exists and is not a baseline (%v): not overwritten", o.baseline, err)}
			}
		}
	default:
		if dopts.Baseline, err = loadBaseline(o.baseline); err != nil {
			return err
		}
	}
	sopts := source.Options{Filter: filt}
	var src *source.Source
	kind := ""
	switch {
	case o.iface != "":
		if err := checkInt("snaplen", o.snaplen, 64, 262144); err != nil {
			return err
		}
		if err := checkInt("ring-mb", o.ringMB, 1, 4096); err != nil {
			return err
		}
		src, err = source.Interface(o.iface, source.InterfaceOptions{Promiscuous: o.promisc, SnapLen: o.snaplen, RingMB: o.ringMB}, sopts)
		kind = "interface"
	case o.dir != "":
		src, err = source.Dir(o.dir, 0, sopts)
		kind = "directory"
	case o.replay != "":
		speed := 0.0
		if o.speed != "max" {
			speed, err = strconv.ParseFloat(o.speed, 64)
			if err != nil || speed <= 0 || speed > 1e6 {
				return usageError{fmt.Errorf("--speed: want a number above 0 (times real time) or max, not %q", o.speed)}
			}
		}
		src, err = source.Replay(o.replay, speed, sopts)
		kind = "replay"
	default:
		src, kind = source.Stream("-", stdin, sopts), "stream"
	}
	if err != nil {
		return usageError{err}
	}
	defer src.Close()

	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	var sinks alert.Multi
	if o.alerts != "" {
		j, err := alert.NewJSONLines(o.alerts)
		if err != nil {
			return usageError{fmt.Errorf("--alerts: %w", err)}
		}
		sinks = append(sinks, j)
	}
	for _, s := range o.syslog {
		sl, err := alert.NewSyslog(s)
		if err != nil {
			return usageError{err}
		}
		sinks = append(sinks, sl)
	}
	for _, u := range o.webhook {
		wh, err := alert.NewWebhook(u)
		if err != nil {
			return usageError{err}
		}
		sinks = append(sinks, wh)
	}
	defer sinks.Close()
	var h *history.DB
	if o.db != "" {
		if h, err = history.Open(o.db); err != nil {
			return err
		}
		defer h.Close()
		// A replay has no live traffic to keep up with: its minutes wait
		// for the disk rather than be dropped.
		h.Patient = kind == "replay"
	}
	sensor, name, err := startSensor(o, kind == "replay", log)
	if err != nil {
		return err
	}
	learnedAt := false
	if o.learn != 0 {
		path := o.baseline
		dopts.LearnFor = o.learn
		dopts.Learned = func(b *baseline.Baseline, err error) {
			learnedAt = true
			if err == nil {
				err = b.Save(path)
			}
			if err != nil {
				log.Error("watch --learn: no baseline; anomaly.device-behaviour stays idle", "error", err)
				return
			}
			log.Info("watch --learn: baseline learned and written; scoring devices against it now", "file", path, "devices", len(b.Devices))
		}
	}
	wo := watch.Options{Input: src, Stats: src.Stats(), SourceKind: kind, Filter: o.filter, Policy: pol, Detect: dopts, History: h, Name: name,
		Retain: retain, Alerts: sinks, Incidents: incident.Options{CloseAfter: o.closeAfter, UpdateEvery: o.updateEvery}, Logger: log,
		Pipeline: pipeline.Options{Logger: log}}
	if sensor != nil {
		wo.Uplink = sensor
		defer func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := sensor.Close(ctx); err != nil {
				fmt.Fprintln(stderr, "iomtguard:", err)
			}
			st := sensor.Stats()
			fmt.Fprintf(stderr, "hub: %d minutes and %d events handed over, %d messages acknowledged by the hub, %d dropped, %d sketched\n", st.Minutes, st.Events, st.Published, st.Dropped, st.Sketched)
		}()
	}
	w, err := watch.New(wo)
	if err != nil {
		return err
	}
	if o.http != "" && o.http != "off" {
		reg := prometheus.NewRegistry()
		registerWatchMetrics(reg, w)
		if sensor != nil {
			registerSensorMetrics(reg, sensor)
		}
		// The process's own: resident memory, heap, goroutines (what a
		// sensor box's owner watches, as the gateway's /metrics has them).
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
		srv, token, err := dashboard.Start(dashboard.Options{Addr: o.http, Token: o.token, Registry: reg,
			Snapshot: func() any { return w.Snapshot() },
			Health: func() (string, any) {
				s := w.Snapshot()
				st := "ok"
				if s.History != nil && s.History.Error != "" {
					st = "history failing: " + s.History.Error
				}
				return st, map[string]any{"capture_time": s.Capture, "frames": s.Totals.Frames, "source": s.Source}
			}})
		if err != nil {
			return usageError{err}
		}
		defer srv.Close()
		url := srv.URL
		if token != "" {
			url += "?token=" + token
		}
		fmt.Fprintf(stderr, "dashboard: %s\n", url)
	}
	if o.duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.duration)
		defer cancel()
	}
	if !o.quiet {
		fmt.Fprintf(stderr, "watching %s %s%s\n", kind, src.Name(), map[bool]string{true: " (filter: " + o.filter + ")", false: ""}[o.filter != ""])
		go statusLines(ctx, w, stderr)
	}
	go dropWarnings(ctx, w, log)
	sum, err := w.Run(ctx)
	s := w.Snapshot()
	openN, total := 0, len(s.Incidents)
	for _, i := range s.Incidents {
		if i.Status != incident.Closed {
			openN++
		}
	}
	st := s.Source.Stats
	fmt.Fprintf(stderr, "watched %s frames (%s MQTT packets): %d incidents (%d still open), %d devices; dropped: %d by the kernel, %d by iomtguard\n",
		fmtInt(s.Totals.Frames), fmtInt(s.Totals.MQTT), total, openN, len(s.Devices), st.KernelDrops, st.QueueDrops)
	if sum != nil {
		printWarnings(stderr, sum.Warnings)
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	if o.learn != 0 && !learnedAt {
		got := "no traffic"
		if sum != nil && sum.Frames > 0 {
			got = time.Duration(sum.Last-sum.First).Round(time.Second).String() + " of capture time"
		}
		return fmt.Errorf("--learn %s: the source ended after %s: nothing learned, %s not written", o.learn, got, o.baseline)
	}
	return nil
}

func fmtInt(n int64) string {
	s := strconv.FormatInt(n, 10)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// statusLines prints one line a minute: what is going on.
func statusLines(ctx context.Context, w *watch.Watch, stderr io.Writer) {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s := w.Snapshot()
			open := 0
			for _, i := range s.Incidents {
				if i.Status != incident.Closed {
					open++
				}
			}
			fmt.Fprintf(stderr, "%s capture %s: %s frames, %s MQTT, %d open incidents, %d devices, %d dropped\n", time.Now().Format("15:04:05"),
				s.Capture.Format("2006-01-02 15:04:05"), fmtInt(s.Totals.Frames), fmtInt(s.Totals.MQTT), open, len(s.Devices),
				s.Source.Stats.KernelDrops+s.Source.Stats.QueueDrops)
		}
	}
}

// dropWarnings logs each increase of the drop counters (checked every 10 s).
func dropWarnings(ctx context.Context, w *watch.Watch, log *slog.Logger) {
	t := time.NewTicker(10 * time.Second)
	defer t.Stop()
	var k, q int64
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			st := w.Snapshot().Source.Stats
			if st.KernelDrops > k || st.QueueDrops > q {
				log.Warn("frames dropped: the analysis misses them", "kernel", st.KernelDrops, "queue", st.QueueDrops,
					"hint", "a bigger --ring-mb, a --filter, or a faster machine")
				k, q = st.KernelDrops, st.QueueDrops
			}
		}
	}
}

// registerWatchMetrics exports the snapshot's counters to Prometheus.
func registerWatchMetrics(reg *prometheus.Registry, w *watch.Watch) {
	counter := func(name, help string, f func(*watch.Snapshot) float64) {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "iomtguard_watch_" + name, Help: help},
			func() float64 { return f(w.Snapshot()) }))
	}
	gauge := func(name, help string, f func(*watch.Snapshot) float64) {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "iomtguard_watch_" + name, Help: help},
			func() float64 { return f(w.Snapshot()) }))
	}
	counter("frames_total", "Frames analysed.", func(s *watch.Snapshot) float64 { return float64(s.Totals.Frames) })
	counter("bytes_total", "Bytes analysed.", func(s *watch.Snapshot) float64 { return float64(s.Totals.Bytes) })
	counter("mqtt_packets_total", "MQTT control packets decoded.", func(s *watch.Snapshot) float64 { return float64(s.Totals.MQTT) })
	counter("publish_total", "MQTT PUBLISH packets decoded.", func(s *watch.Snapshot) float64 { return float64(s.Totals.ByType["PUBLISH"]) })
	counter("kernel_drops_total", "Frames the kernel dropped (its ring was full).", func(s *watch.Snapshot) float64 { return float64(s.Source.Stats.KernelDrops) })
	counter("queue_drops_total", "Frames iomtguard dropped (its queue was full).", func(s *watch.Snapshot) float64 { return float64(s.Source.Stats.QueueDrops) })
	counter("filtered_total", "Frames the capture filter left out.", func(s *watch.Snapshot) float64 { return float64(s.Source.Stats.Filtered) })
	gauge("incidents_open", "Incidents open.", func(s *watch.Snapshot) float64 {
		n := 0
		for _, i := range s.Incidents {
			if i.Status != incident.Closed {
				n++
			}
		}
		return float64(n)
	})
	gauge("devices", "Devices in the inventory.", func(s *watch.Snapshot) float64 { return float64(len(s.Devices)) })
	gauge("capture_time_seconds", "The capture clock (Unix seconds).", func(s *watch.Snapshot) float64 { return float64(s.Capture.UnixNano()) / 1e9 })
	counter("alerts_sent_total", "Alerts delivered, all outputs.", func(s *watch.Snapshot) float64 {
		n := int64(0)
		for _, a := range s.Alerts {
			n += a.Sent
		}
		return float64(n)
	})
	counter("alerts_lost_total", "Alerts dropped (queue full) or failed after retries, all outputs.", func(s *watch.Snapshot) float64 {
		n := int64(0)
		for _, a := range s.Alerts {
			n += a.Dropped + a.Failed
		}
		return float64(n)
	})
}

func reportCmd(stdout, stderr io.Writer) *cobra.Command {
	var db, since, out, json, sensor, site string
	cmd := &cobra.Command{
		Use:   "report --db FILE [--since DURATION] --out DIR",
		Short: "Write the report of a period from watch's history (report.html and analysis.json, as analyze writes them)",
		Long: `report merges the analyses that 'iomtguard watch --db' stored minute by minute, and the incidents
of the period, into the report analyze writes: report.html, analysis.json and the figures. The
Figure 1 statistics, counts, topics, hosts, k-means and forecast are those analyze gives for the
same frames. --since counts back from the newest stored minute (the capture's clock), so the
history of a replayed capture reads as it would have live; without it, everything stored.`,
		Example: `  iomtguard report --db ward.db --since 24h --out last-day
  iomtguard report --db ward.db --json - --out "" | jq .overview
  iomtguard report --db /var/lib/iomtguard-hub/history.db --site icu --since 7d --out icu-week`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if db == "" {
				return usageError{errors.New("--db is required")}
			}
			if _, err := os.Stat(db); err != nil {
				return usageError{fmt.Errorf("--db: %w", err)}
			}
			var d time.Duration
			if since != "" {
				var err error
				if d, err = parseRetain(since); err != nil {
					return usageError{errors.New(strings.Replace(err.Error(), "--retain", "--since", 1))}
				}
			}
			h, err := history.Open(db)
			if err != nil {
				return err
			}
			defer h.Close()
			if site != "" && sensor != "" {
				return usageError{errors.New("--site or --sensor, not both")}
			}
			src := sensor
			if site != "" {
				src = site + "/"
			}
			res, err := watch.Report(h, src, d, analysis.Options{})
			if err != nil {
				return err
			}
			if json != "" {
				if json == "-" {
					if err := report.JSON(stdout, res); err != nil {
						return err
					}
				} else if err := report.WriteFile(json, func(w io.Writer) error { return report.JSON(w, res) }); err != nil {
					return err
				}
			}
			if out != "" {
				if err := report.Write(out, res); err != nil {
					return err
				}
				w := stdout
				if json == "-" {
					w = stderr
				}
				report.Summary(w, res, filepath.Join(out, report.HTMLFile))
			}
			printWarnings(stderr, res.Warnings)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&db, "db", "", "the history database (watch --db)")
	f.StringVar(&since, "since", "", "the period: back from the newest stored minute (24h, 7d; default: everything)")
	f.StringVarP(&out, "out", "o", "iomtguard-report", "directory for report.html, analysis.json and figures/ (empty: none)")
	f.StringVar(&json, "json", "", "also write analysis.json to this file (- for stdout)")
	f.StringVar(&sensor, "sensor", "", "one sensor's part of a hub's history (SITE/SENSOR)")
	f.StringVar(&site, "site", "", "one site's part of a hub's history (all its sensors)")
	return cmd
}
