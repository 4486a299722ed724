package capture

import (
	"errors"
	"io"
)

// windowSize is a reader's window: twice the 1 MiB buffer that
// pipeline.OpenInput reads files through, so that a refill (asking for at
// least that buffer's size) goes from the file straight into the window:
// one copy of each byte, not two (profiling analyze: the second copy was
// a tenth of reading the benchmark capture).
const windowSize = 2 << 20

// window reads a stream in large chunks and hands out slices of it without
// copying. A slice returned by take stays valid until the next call to take.
type window struct {
	r          io.Reader
	buf        []byte
	start, end int
	off        int64 // stream offset of buf[start]
	eof        bool
}

func newWindow(r io.Reader, size int) *window {
	return &window{r: r, buf: make([]byte, size)}
}

// errShort means the stream ended inside a record: fewer than the n bytes asked for remain.
var errShort = errors.New("unexpected end of file")

// take returns the next n bytes. At a clean end of stream (no bytes left at all)
// it returns io.EOF; with some but fewer than n bytes left it returns errShort.
func (w *window) take(n int) ([]byte, error) {
	if w.end-w.start < n {
		if err := w.fill(n); err != nil {
			return nil, err
		}
	}
	b := w.buf[w.start : w.start+n : w.start+n]
	w.start += n
	w.off += int64(n)
	return b, nil
}

func (w *window) fill(n int) error {
	have := w.end - w.start
	if n > len(w.buf) {
		nb := make([]byte, n+len(w.buf))
		copy(nb, w.buf[w.start:w.end])
		w.buf = nb
	} else if w.start > 0 {
		copy(w.buf, w.buf[w.start:w.end])
	}
	w.start, w.end = 0, have
	for w.end < n && !w.eof {
		m, err := w.r.Read(w.buf[w.end:])
		w.end += m
		if err != nil {
			if err == io.EOF {
				w.eof = true
				break
			}
			return err
		}
	}
	if w.end < n {
		if w.end == 0 {
			return io.EOF
		}
		return errShort
	}
	return nil
}
