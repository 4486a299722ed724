package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/iomtguard/iomtguard/internal/export"
	"github.com/iomtguard/iomtguard/internal/pipeline"
)

type exportOptions struct {
	format   string
	out      string
	class    string
	label    string
	dialect  string
	payloads bool
	reveal   bool
	frames   string
	quiet    bool
}

func exportCmd(stdout, stderr io.Writer) *cobra.Command {
	var o exportOptions
	cmd := &cobra.Command{
		Use:   "export --format icu-csv|jsonl [flags] CAPTURE...",
		Short: "Write a capture as the ICU dataset CSV or as JSON lines of MQTT packets",
		Long: `export decodes captures (pcap, pcapng, gzip of either, or ICU dataset CSVs; several files
are merged in time order) and writes:

  --format icu-csv   the IoT Healthcare Security Dataset schema: tshark's field export of the
                     50 fields in the dataset (one row per frame, first value per frame, as
                     tshark -E occurrence=f) plus class and label. Every frame is a row
                     (--frames mqtt keeps only the frames that complete an MQTT packet, as
                     the released files and 'simulate --format icu-csv' do). The payload
                     columns (tcp.payload, mqtt.msg) hold patient data and stay empty unless
                     --payloads is given. The default dialect writes exactly what tshark 4.0
                     writes, its header included (tcp.connection.synack); --dialect released
                     writes what the released Kaggle files hold (empty cells as 0, 0x%08x
                     flags, colon hex, and the header's tcp.connection.sack).
  --format jsonl     one JSON object per MQTT control packet with ts, src, dst, sport, dport,
                     msgtype, type, version and the packet's fields. Passwords are never
                     written (password_present only); payloads only with --payloads.

Credentials are masked. With --payloads, the bytes of tcp.payload that hold a credential
(CONNECT passwords, MQTT 5 authentication data, the token, Authorization and Cookie of a
WebSocket upgrade) are written as '*' (hex 2a), one for each byte, so lengths stay true;
where iomtguard cannot place them exactly (bytes read out of order or after a capture gap,
MQTT inside WebSocket frames) it masks more, never less. --reveal-credentials writes them as
captured (what tshark writes). User names and client IDs are not credentials and are kept.

MQTT is recognised on any TCP port by its framing, not only on 1883.`,
		Example: `  iomtguard export --format icu-csv -o icu.csv capture.pcap
  iomtguard export --format icu-csv --class patientMonitoring --label 0 ward.pcapng > ward.csv
  iomtguard export --format jsonl capture.pcap.gz | jq 'select(.type=="CONNECT")'`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runExport(cmd, o, args, stdout, stderr)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.format, "format", "icu-csv", "output format: icu-csv or jsonl")
	f.StringVarP(&o.out, "output", "o", "-", "output file (- for stdout)")
	f.StringVar(&o.class, "class", "", "icu-csv: value of the class column (e.g. patientMonitoring)")
	f.StringVar(&o.label, "label", "", "icu-csv: value of the label column (0 benign, 1 attack)")
	f.StringVar(&o.dialect, "dialect", "tshark", "icu-csv: tshark (tshark 4.0's text) or released (the Kaggle files' text)")
	f.BoolVar(&o.payloads, "payloads", false, "include payloads (patient data!): icu-csv tcp.payload and mqtt.msg (up to 16 MiB each); jsonl PUBLISH and will payloads cut at 256 bytes")
	f.BoolVar(&o.reveal, "reveal-credentials", false, "icu-csv with --payloads: write passwords and authentication data in tcp.payload as captured instead of masked")
	f.StringVar(&o.frames, "frames", "all", "icu-csv: all (a row per frame, as tshark) or mqtt (only frames that complete an MQTT packet, as the released files)")
	f.BoolVarP(&o.quiet, "quiet", "q", false, "no progress bar on stderr (warnings about damaged input are always printed)")
	return cmd
}

func runExport(cmd *cobra.Command, o exportOptions, args []string, stdout, stderr io.Writer) error {
	var dialect export.Dialect
	switch o.dialect {
	case "tshark":
		dialect = export.DialectTshark
	case "released":
		dialect = export.DialectReleased
	default:
		return usageError{fmt.Errorf("--dialect: want tshark or released, not %q", o.dialect)}
	}
	if o.format != "icu-csv" && o.format != "jsonl" {
		return usageError{fmt.Errorf("--format: want icu-csv or jsonl, not %q", o.format)}
	}
	if o.frames != "all" && o.frames != "mqtt" {
		return usageError{fmt.Errorf("--frames: want all or mqtt, not %q", o.frames)}
	}
	if o.reveal && (o.format != "icu-csv" || !o.payloads) {
		return usageError{fmt.Errorf("--reveal-credentials applies to --format icu-csv with --payloads (the only output that writes raw bytes)")}
	}
	inputs, err := openInputs(args)
	if err != nil {
		return err
	}
	var w io.Writer = stdout
	var file *os.File
	if o.out != "-" {
		file, err = os.Create(o.out)
		if err != nil {
			closeInputs(inputs)
			return err
		}
		defer file.Close()
		w = file
	}
	bw := bufio.NewWriterSize(w, 1<<16)
	var consumer pipeline.Consumer
	var closeFn func() error
	switch o.format {
	case "icu-csv":
		x := export.NewICUCSV(bw, dialect, o.class, o.label)
		x.Payloads, x.RevealCredentials, x.OnlyMQTT = o.payloads, o.reveal, o.frames == "mqtt"
		consumer, closeFn = x, x.Close
	case "jsonl":
		x := export.NewJSONL(bw, export.JSONLOptions{Payloads: o.payloads})
		consumer, closeFn = x, x.Close
	}
	prog := newProgress(stderr, o.quiet, "export")
	opts := pipeline.Options{Progress: prog.update}
	if o.payloads {
		opts.MaxPacketBuffer = 16 << 20 // whole payloads, up to 16 MiB each
	}
	eng := pipeline.New(opts, consumer)
	sum, err := eng.Run(cmd.Context(), inputs...)
	prog.done()
	if cerr := closeFn(); cerr != nil && err == nil {
		err = cerr
	}
	if ferr := bw.Flush(); ferr != nil && err == nil {
		err = ferr
	}
	if file != nil {
		if cerr := file.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}
	if err != nil {
		return err
	}
	printWarnings(stderr, sum.Warnings) // quiet hides progress, never data loss
	return nil
}

func openInputs(paths []string) ([]pipeline.Input, error) {
	var ins []pipeline.Input
	for _, p := range paths {
		in, err := pipeline.OpenInput(p)
		if err != nil {
			closeInputs(ins)
			if errors.Is(err, syscall.EMFILE) {
				// Every input given is open until it ends (they are merged in
				// time order).
				err = fmt.Errorf("%w: %d files given at once, past this process's limit of open files (ulimit -n): raise it, or join the files first (mergecap -w)", err, len(paths))
			}
			return nil, usageError{err}
		}
		ins = append(ins, in)
	}
	return ins, nil
}

func closeInputs(ins []pipeline.Input) {
	for _, in := range ins {
		in.Close()
	}
}
