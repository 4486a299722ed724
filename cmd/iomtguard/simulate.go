package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/iomtguard/iomtguard/internal/capture"
	"github.com/iomtguard/iomtguard/internal/export"
	"github.com/iomtguard/iomtguard/internal/pipeline"
	"github.com/iomtguard/iomtguard/internal/sim"
)

type simulateOptions struct {
	scenario       string
	duration       time.Duration
	seed           uint64
	out            string
	format         string
	link           string
	attacks        []string
	attackStart    time.Duration
	attackDuration time.Duration
	ward           string
	clones         []string
	guesses        int
	anonymous      bool
	retainPHI      bool
	labels         string
	reveal         bool
	frames         string
	beds           int
	start          string
	// live mode
	broker     string
	tls        bool
	pkiDir     string
	speed      float64
	username   string
	password   string
	durationOK bool
	set        func(flag string) bool // the flag was given on the command line
}

func simulateCmd(stdout, stderr io.Writer) *cobra.Command {
	var o simulateOptions
	cmd := &cobra.Command{
		Use:   "simulate [flags] -o FILE | --broker HOST:PORT",
		Short: "Write a labelled capture of a simulated ICU, with attacks if asked",
		Long: `simulate writes the traffic of a simulated ICU, following the IoT Healthcare Security Dataset
(Hussain et al., Sensors 2021): beds of nine patient sensors (ECG, pulse oximeter, airflow, blood
pressure, infusion pump, glucometer, body temperature, EMG, GSR) with a control unit, the
environment sensors, an MQTT broker and a nurse-station subscriber, over TCP as Linux hosts
speak it. The same seed gives the same bytes.

Scenarios: icu (everything), icu-patient (the dataset's patientMonitoring part),
icu-environment. Attacks (--attack, several with commas): ` + strings.Join(sim.AttackNames(), ", ") + `.
They run from --attack-start for --attack-duration. --labels writes the ground truth that
iomtguard eval reads.

--tls makes the ward's devices, control units and nurse station speak MQTT over TLS 1.2 on port
8883 with certificates of an in-memory CA (real handshakes and records; their keys and randoms come
from crypto/rand, so with --tls the same seed gives the same timing and sizes, not the same bytes);
attackers keep the cleartext port 1883.

--format pcapng (default) or pcap writes a capture (gzip-compressed when the name ends in .gz).
--format icu-csv writes the dataset's CSV directly, as the released files hold it: only the
frames that complete an MQTT packet (--frames all writes every frame, as 'iomtguard export'
does by default), payload columns filled (the readings are simulated), and class and label per
frame (Attack/1 for attack frames). Credentials are masked in tcp.payload as 'export' masks
them ('*' for each byte); --reveal-credentials writes them as sent.

Live mode: --broker HOST:PORT runs the same devices and nurse station as real MQTT 3.1.1
clients (Eclipse Paho) against a broker (Mosquitto, or the iomtguard gateway) for --duration
(default 1 minute here), and reports what was published and delivered, with the publish-to-
nurse-station latency. --tls connects with TLS (port 8883 usually); --pki DIR takes the CA from
DIR/ca.crt and each client's certificate from DIR/CLIENT-ID.crt (issued there when missing, so
a gateway that enforces certificate identity accepts them). --beds scales the load, --speed
divides every sensor's period. Attacks are simulated offline only.`,
		Example: `  iomtguard simulate -o icu.pcapng
  iomtguard simulate --scenario icu-patient --duration 10m --seed 1 -o patient.pcapng
  iomtguard simulate --attack bruteforce,wildcard-subscribe --labels truth.yaml -o attacked.pcapng
  iomtguard simulate --format icu-csv --duration 1h -o icu.csv
  iomtguard simulate --broker 127.0.0.1:1883 --duration 30s
  iomtguard simulate --broker broker.icu.local:8883 --tls --pki ca --beds 20 --speed 10 --duration 5m`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			o.durationOK = cmd.Flags().Changed("duration")
			o.set = cmd.Flags().Changed
			if err := o.check(); err != nil {
				return err
			}
			return runSimulate(cmd.Context(), o, stdout, stderr)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.scenario, "scenario", "icu", "icu, icu-patient or icu-environment")
	f.DurationVar(&o.duration, "duration", 10*time.Minute, "length of the capture")
	f.Uint64Var(&o.seed, "seed", 1, "random seed (the same seed gives the same bytes)")
	f.StringVarP(&o.out, "output", "o", "", "output file (- for stdout); required unless --broker")
	f.StringVar(&o.format, "format", "", "pcapng, pcap or icu-csv (default: from the file name, else pcapng)")
	f.StringVar(&o.link, "link", "sll", "link type: sll (as the dataset) or ethernet")
	f.StringSliceVar(&o.attacks, "attack", nil, "attacks to mount: "+strings.Join(sim.AttackNames(), ", "))
	f.DurationVar(&o.attackStart, "attack-start", 0, "when the attacks start (default: a third of the way in)")
	f.DurationVar(&o.attackDuration, "attack-duration", 0, "how long they last (default: a fifth of the duration)")
	f.BoolVar(&o.anonymous, "anonymous", false, "devices connect without credentials (the broker allows anonymous access)")
	f.StringVar(&o.ward, "ward", "", "prefix every device's client ID with WARD- (the wards of a simulated hospital group: distinct identities)")
	f.StringArrayVar(&o.clones, "clone", nil, "add a device using this client ID, copied from another ward (repeatable): what the hub's attack.cloned-identity finds")
	f.IntVar(&o.guesses, "bruteforce-guesses", 0, "stop the bruteforce attack after this many guesses (0: for the attack's whole duration)")
	f.BoolVar(&o.retainPHI, "retain-phi", false, "control units publish retained patient records (MRN, name, date of birth)")
	f.StringVar(&o.labels, "labels", "", "write the ground truth (YAML) to this file: the findings eval expects, the attacks with their frames, what each device is")
	f.BoolVar(&o.reveal, "reveal-credentials", false, "icu-csv: write the CONNECT passwords in tcp.payload as sent instead of masked")
	f.StringVar(&o.frames, "frames", "mqtt", "icu-csv: mqtt (only frames that complete an MQTT packet, as the released files) or all (a row per frame, as export)")
	f.IntVar(&o.beds, "beds", 2, "number of beds")
	f.StringVar(&o.start, "start", "2026-01-05T08:00:00Z", "timestamp of the first frame (RFC 3339)")
	f.StringVar(&o.broker, "broker", "", "live mode: run the scenario against this broker (host:port)")
	f.BoolVar(&o.tls, "tls", false, "devices, control units and nurse station speak MQTT over TLS 1.2 on port 8883 with certificates (live mode: connect with TLS)")
	f.StringVar(&o.pkiDir, "pki", "", "live mode: CA directory (iomtguard pki) for the broker's CA and the clients' certificates")
	f.Float64Var(&o.speed, "speed", 1, "live mode: divide every sensor's period by this")
	f.StringVar(&o.username, "username", "", "live mode: user name every client sends")
	f.StringVar(&o.password, "password", "", "live mode: password every client sends (or $IOMTGUARD_MQTT_PASSWORD)")
	return cmd
}

// maxSimulated bounds --duration: a month of a ward is minutes of work; a
// century would never end.
const maxSimulated = 31 * 24 * time.Hour

// check validates the numeric flags before anything runs.
func (o *simulateOptions) check() error {
	set := func(string) bool { return true }
	if o.set != nil {
		set = o.set
	}
	checks := []error{checkInt("beds", o.beds, 1, sim.MaxBeds), checkDuration("duration", o.duration, 10*time.Second, maxSimulated)}
	if set("attack-start") {
		checks = append(checks, checkDuration("attack-start", o.attackStart, 0, o.duration))
	}
	if set("attack-duration") {
		checks = append(checks, checkDuration("attack-duration", o.attackDuration, time.Second, o.duration))
	}
	if set("speed") {
		checks = append(checks, checkPositive("speed", o.speed, 1000))
	}
	for _, err := range checks {
		if err != nil {
			return err
		}
	}
	return nil
}

func runSimulate(ctx context.Context, o simulateOptions, stdout, stderr io.Writer) error {
	if o.broker != "" {
		return runLive(ctx, o, stdout, stderr)
	}
	if o.out == "" {
		return usageError{errors.New("-o FILE is required (or --broker HOST:PORT for live mode)")}
	}
	start, err := time.Parse(time.RFC3339, o.start)
	if err != nil {
		return usageError{fmt.Errorf("--start: %w", err)}
	}
	link := capture.LinkSLL
	switch o.link {
	case "sll":
	case "ethernet":
		link = capture.LinkEthernet
	default:
		return usageError{fmt.Errorf("--link: want sll or ethernet, not %q", o.link)}
	}
	format := o.format
	gz := strings.HasSuffix(strings.ToLower(o.out), ".gz")
	if format == "" {
		switch strings.ToLower(filepath.Ext(strings.TrimSuffix(strings.ToLower(o.out), ".gz"))) {
		case ".pcap":
			format = "pcap"
		case ".csv":
			format = "icu-csv"
		default:
			format = "pcapng"
		}
	}
	opts := sim.Options{Scenario: o.scenario, Duration: o.duration, Seed: o.seed, Start: start, Beds: o.beds,
		Attacks: o.attacks, AttackStart: o.attackStart, AttackDuration: o.attackDuration, Anonymous: o.anonymous,
		RetainPHI: o.retainPHI, TLS: o.tls, Link: link, Ward: o.ward, Clones: o.clones, Guesses: o.guesses}
	var buf bytes.Buffer
	var w capture.Writer
	switch format {
	case "pcapng", "icu-csv":
		w, err = capture.NewPcapngWriter(&buf, link, "icu0")
	case "pcap":
		w, err = capture.NewPcapWriter(&buf, link)
	default:
		return usageError{fmt.Errorf("--format: want pcapng, pcap or icu-csv, not %q", format)}
	}
	if o.frames != "mqtt" && o.frames != "all" {
		return usageError{fmt.Errorf("--frames: want mqtt or all, not %q", o.frames)}
	}
	if format != "icu-csv" && (o.reveal || o.set != nil && o.set("frames")) {
		return usageError{errors.New("--reveal-credentials and --frames apply to --format icu-csv (a capture holds the traffic as sent)")}
	}
	if err != nil {
		return err
	}
	truth, err := sim.Generate(opts, w)
	if err != nil {
		if errors.Is(err, sim.ErrOptions) {
			return usageError{err}
		}
		return err
	}
	out := buf.Bytes()
	if format == "icu-csv" {
		var csvBuf bytes.Buffer
		if err := simulatedCSV(ctx, out, truth, o.frames == "mqtt", o.reveal, &csvBuf); err != nil {
			return err
		}
		out = csvBuf.Bytes()
	}
	if gz {
		var zb bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&zb, gzip.BestCompression)
		zw.Write(out)
		if err := zw.Close(); err != nil {
			return err
		}
		out = zb.Bytes()
	}
	if o.out == "-" {
		if _, err := stdout.Write(out); err != nil {
			return err
		}
	} else if err := os.WriteFile(o.out, out, 0o644); err != nil {
		return err
	}
	if o.labels != "" {
		f, err := os.Create(o.labels)
		if err != nil {
			return err
		}
		if err := truth.WriteYAML(f, filepath.Base(o.out)); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
	}
	if o.out != "-" {
		fmt.Fprintf(stderr, "wrote %s (%s, %s)\n", o.out, format, truth.Describe())
	}
	return nil
}

// simulatedCSV runs the simulated capture through the pipeline into the
// dataset's CSV, as the released files hold it: the frames carrying MQTT,
// with per-frame class and label.
func simulatedCSV(ctx context.Context, pcapng []byte, truth *sim.GroundTruth, onlyMQTT, reveal bool, w io.Writer) error {
	in, err := pipeline.NewInput("simulated", bytes.NewReader(pcapng))
	if err != nil {
		return err
	}
	x := export.NewICUCSV(w, export.DialectReleased, "", "")
	x.Payloads, x.RevealCredentials = true, reveal
	x.OnlyMQTT = onlyMQTT
	x.Labeler = truth.FrameLabel
	if _, err := pipeline.New(pipeline.Options{}, x).Run(ctx, in); err != nil {
		return err
	}
	return x.Close()
}
