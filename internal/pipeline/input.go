package pipeline

import (
	"bufio"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"math"
	"os"

	"github.com/iomtguard/iomtguard/internal/capture"
	"github.com/iomtguard/iomtguard/internal/dataset"
)

// ErrNotInput reports a file that is neither a capture nor an ICU dataset CSV.
var ErrNotInput = errors.New("not a pcap, pcapng or ICU dataset CSV file")

// Record is one item read from an input: a captured packet, or a dataset
// row, or (from a live source) a tick: no frame, only the capture clock's
// time, so that consumers can close windows on a quiet network.
type Record struct {
	TS   int64 // ns
	Pkt  capture.Packet
	Row  *dataset.Row // non-nil for CSV input
	Tick bool
	// Idle: the input may wait before its next record (a live source used
	// up the frames it had); consumers that hold events back (Idler) hand
	// them on after this one.
	Idle bool
}

// Input is a source of records in time order.
type Input interface {
	Name() string
	Format() string
	// Next fills rec. It returns io.EOF at the end; a *capture.DamageError
	// when the rest of the input cannot be read; a *dataset.RowError for a
	// skipped row (call Next again).
	Next(rec *Record) error
	// Progress returns bytes consumed and the total (0 if unknown).
	Progress() (done, total int64)
	Close() error
}

// OpenInput opens a capture (pcap, pcapng, either gzip-compressed) or an ICU
// dataset CSV (optionally gzip-compressed), detecting the format from content.
func OpenInput(path string) (Input, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if st.IsDir() {
		f.Close()
		return nil, fmt.Errorf("%s: is a directory", path)
	}
	// Small buffers: one to sniff the format, which also serves gzip's
	// byte reads, and one to sniff what gzip holds. The capture reader's
	// window reads past them, straight from the file (or the decompressor),
	// in chunks that grow with what it has read (see capture.windowSize):
	// every input given is open from the start, and one waiting for its
	// turn should hold little (about 20 KiB; 68 KiB with gzip's state).
	cr := &counter{r: f}
	br := bufio.NewReaderSize(cr, sniffLen)
	head, _ := br.Peek(sniffLen)
	var r io.Reader = br
	compressed := false
	if capture.Sniff(head) == capture.KindGzip {
		zr, err := gzip.NewReader(br)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("%s: gzip: %w", path, err)
		}
		zb := bufio.NewReaderSize(zr, sniffLen)
		head, _ = zb.Peek(sniffLen)
		r = zb
		compressed = true
	}
	base := fileInput{name: path, f: f, cr: cr, size: st.Size()}
	switch capture.Sniff(head) {
	case capture.KindPcap, capture.KindPcapng:
		pr, err := capture.NewReader(r)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		format := pr.Format()
		if compressed {
			format += "+gzip"
		}
		return &captureInput{fileInput: base, r: pr, format: format}, nil
	}
	if dataset.Looks(head) {
		dr, err := dataset.NewReader(r)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		format := "icu-csv"
		if compressed {
			format += "+gzip"
		}
		return &csvInput{fileInput: base, r: dr, format: format}, nil
	}
	f.Close()
	return nil, fmt.Errorf("%s: %w", path, ErrNotInput)
}

// sniffLen is the bytes read to tell the formats apart.
const sniffLen = 4096

type counter struct {
	r io.Reader
	n int64
}

func (c *counter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

type fileInput struct {
	name string
	f    *os.File
	cr   *counter
	size int64
}

func (fi *fileInput) Name() string                  { return fi.name }
func (fi *fileInput) Progress() (done, total int64) { return fi.cr.n, fi.size }
func (fi *fileInput) Close() error {
	if fi.f == nil {
		return nil
	}
	return fi.f.Close()
}

type captureInput struct {
	fileInput
	r      capture.Reader
	format string
	end    error // the error that ended it (io.EOF at the end)
}

func (ci *captureInput) Format() string { return ci.format }

func (ci *captureInput) Next(rec *Record) error {
	rec.Row = nil
	if ci.end != nil {
		return ci.end
	}
	if err := ci.r.Next(&rec.Pkt); err != nil {
		// Done: let go of the buffers and the file now, not when the last
		// of the inputs given with this one ends (rotating captures).
		ci.end, ci.r = err, nil
		if ci.f != nil {
			ci.f.Close()
		}
		return err
	}
	rec.TS = rec.Pkt.Timestamp
	return nil
}

type csvInput struct {
	fileInput
	r      *dataset.Reader
	format string
	row    dataset.Row
}

func (ci *csvInput) Format() string { return ci.format }

func (ci *csvInput) Next(rec *Record) error {
	if err := ci.r.Next(&ci.row); err != nil {
		return err
	}
	rec.Row = &ci.row
	rec.Pkt = capture.Packet{}
	rec.TS = int64(math.Round(ci.row.TimeRelative * 1e9))
	return nil
}

// NewInput reads a capture (pcap, pcapng, gzip of either) or an ICU dataset
// CSV from r, detecting the format from content; name labels it in messages.
func NewInput(name string, r io.Reader) (Input, error) {
	cr := &counter{r: r}
	br := bufio.NewReaderSize(cr, sniffLen)
	head, _ := br.Peek(sniffLen)
	base := fileInput{name: name, cr: cr}
	switch capture.Sniff(head) {
	case capture.KindPcap, capture.KindPcapng, capture.KindGzip:
		pr, err := capture.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		return &captureInput{fileInput: base, r: pr, format: pr.Format()}, nil
	}
	if dataset.Looks(head) {
		dr, err := dataset.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		return &csvInput{fileInput: base, r: dr, format: "icu-csv"}, nil
	}
	return nil, fmt.Errorf("%s: %w", name, ErrNotInput)
}
