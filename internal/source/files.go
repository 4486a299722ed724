package source

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/iomtguard/iomtguard/internal/capture"
)

// Stream reads a pcap or pcapng stream (stdin: tcpdump -w -), ending at
// its end. A stream that stops in the middle of a record ends damaged; the
// frames before are kept.
func Stream(name string, r io.Reader, opts Options) *Source {
	st := &Stats{}
	var closer func() error
	if c, ok := r.(io.Closer); ok && r != os.Stdin {
		closer = c.Close
	}
	return newSource(name, "stream", opts, st, false, closer, func(p *producer) error {
		return readCapture(p, r, name)
	})
}

// readCapture hands on every packet of one capture stream.
func readCapture(p *producer, r io.Reader, name string) error {
	cr, err := capture.NewReader(r)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	var pkt capture.Packet
	for {
		if err := cr.Next(&pkt); err != nil {
			var dmg *capture.DamageError
			if errors.As(err, &dmg) {
				p.s.stats.Damaged.Add(1)
			}
			return err
		}
		if !p.add(&pkt) {
			return nil
		}
	}
}

// Replay reads a capture file and gives its frames at speed times real
// time (speed 0: as fast as they can be read).
func Replay(path string, speed float64, opts Options) (*Source, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	s := newSource(path, "replay", opts, nil, false, f.Close, func(p *producer) error {
		cr, err := capture.NewReader(f)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		var pkt capture.Packet
		var first int64
		var start time.Time
		for {
			if err := cr.Next(&pkt); err != nil {
				var dmg *capture.DamageError
				if errors.As(err, &dmg) {
					p.s.stats.Damaged.Add(1)
				}
				return err
			}
			if speed > 0 {
				if first == 0 {
					first, start = pkt.Timestamp, now()
				}
				due := start.Add(time.Duration(float64(pkt.Timestamp-first) / speed))
				if wait := due.Sub(now()); wait > time.Millisecond {
					p.mu.Lock()
					p.flush()
					p.mu.Unlock()
					select {
					case <-time.After(wait):
					case <-p.s.stop:
						return nil
					}
				}
			}
			if !p.add(&pkt) {
				return nil
			}
		}
	})
	s.speed = speed
	return s, nil
}

// Dir follows the captures a rotating capture writes into dir (tcpdump -G
// or -C, dumpcap's ring buffer): the files present are read in name order
// (the order those tools name them in), then each new file as it appears;
// the newest grows while it is read. A file is done when a newer one exists
// and it has not grown for settle (default 1 s). Files whose names do not
// end in .pcap, .pcapng, .cap (or those with .gz, read once complete) are
// ignored.
func Dir(dir string, settle time.Duration, opts Options) (*Source, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return nil, err
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("%s: not a directory", dir)
	}
	if settle <= 0 {
		settle = time.Second
	}
	stats := &Stats{}
	// The reader goroutine may start before newSource returns: it reaches
	// its Source through p.s, never through a variable assigned here.
	s := newSource(dir, "directory", opts, stats, false, nil, func(p *producer) error {
		done := map[string]bool{}
		for {
			next, err := nextFile(dir, done)
			if err != nil {
				return err
			}
			if next == "" {
				select {
				case <-time.After(200 * time.Millisecond):
					continue
				case <-p.s.stop:
					return nil
				}
			}
			done[next] = true
			if len(done) > 100000 {
				// Forget the oldest names: they sort before every new one.
				clear(done)
				done[next] = true
			}
			path := filepath.Join(dir, next)
			f, err := os.Open(path)
			if err != nil {
				continue // rotated away before it could be read
			}
			stats.Files.Add(1)
			var r io.Reader = f
			if !strings.HasSuffix(next, ".gz") {
				r = &tail{f: f, dir: dir, name: next, settle: settle, stop: p.s.stop}
			}
			err = readCapture(p, r, path)
			f.Close()
			if p.closed() {
				return nil
			}
			if err != nil && !errors.Is(err, io.EOF) {
				var dmg *capture.DamageError
				if !errors.As(err, &dmg) && !errors.Is(err, capture.ErrNotCapture) {
					return err
				}
			}
		}
	})
	return s, nil
}

func captureName(n string) bool {
	n = strings.TrimSuffix(n, ".gz")
	for _, ext := range []string{".pcap", ".pcapng", ".cap"} {
		if strings.HasSuffix(n, ext) || strings.Contains(n, ext) {
			return true
		}
	}
	return false
}

// nextFile is the first capture file of dir, in name order, not yet read
// and after the last one read.
func nextFile(dir string, done map[string]bool) (string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return "", err
	}
	last := ""
	for n := range done {
		last = max(last, n)
	}
	var names []string
	for _, e := range ents {
		if n := e.Name(); !e.IsDir() && captureName(n) && !done[n] && n > last {
			names = append(names, n)
		}
	}
	if len(names) == 0 {
		return "", nil
	}
	slices.Sort(names)
	return names[0], nil
}

// tail reads a file that may still grow: at its end it waits, until a newer
// capture file exists and this one has not grown for settle.
type tail struct {
	f      *os.File
	dir    string
	name   string
	settle time.Duration
	stop   chan struct{}
	idle   time.Time
}

func (t *tail) Read(b []byte) (int, error) {
	for {
		n, err := t.f.Read(b)
		if n > 0 || (err != nil && err != io.EOF) {
			t.idle = time.Time{}
			return n, err
		}
		if t.idle.IsZero() {
			t.idle = time.Now()
		}
		if time.Since(t.idle) >= t.settle && t.newer() {
			return 0, io.EOF
		}
		select {
		case <-time.After(100 * time.Millisecond):
		case <-t.stop:
			return 0, io.EOF
		}
	}
}

func (t *tail) newer() bool {
	ents, err := os.ReadDir(t.dir)
	if err != nil {
		return true
	}
	for _, e := range ents {
		if n := e.Name(); captureName(n) && n > t.name {
			return true
		}
	}
	return false
}
