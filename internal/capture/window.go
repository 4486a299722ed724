package capture

import (
	"errors"
	"io"
	"sync"
)

// windowSize is the size a reader's window grows to: twice the buffer
// that pipeline.OpenInput's readers ask the file for at most, so that a
// refill goes from the file straight into the window: one copy of each
// byte, not two (profiling analyze: the second copy was a tenth of reading
// the benchmark capture).
//
// A window starts at windowStart and doubles each time it has been read
// through, up to windowSize. Inputs given together are all open at once
// (merged in time order), and the files of a rotating capture are read one
// after another: each waiting file holds only its first window. At 2 MiB
// from the start, 200 such files held 400 MiB, more than analyze's memory
// limit, and the collector ran without pause: 4.8 s against 0.56 s for the
// same frames in one file.
const (
	windowSize  = 2 << 20
	windowStart = 16 << 10
)

// window reads a stream in large chunks and hands out slices of it without
// copying. A slice returned by take stays valid until the next call to take.
type window struct {
	r          io.Reader
	buf        []byte
	max        int // the size buf grows to
	start, end int
	off        int64 // stream offset of buf[start]
	eof        bool
}

// spare holds the windows of readers that reached their end, one pool per
// size (windowStart doubled up to windowSize), for the next reader to grow
// into: the files of a rotating capture are read one after another, and
// each growing windows of its own (fresh pages, and collections that the
// allocations set off) was most of what reading 200 files of 5,450 frames
// cost more than one of 1.09M.
var spare [windowSteps]sync.Pool

// windowSteps is the number of window sizes, windowStart to windowSize.
const windowSteps = 8

// step is the pool of a window of n bytes, or -1 for a size that is not
// one of them (a window grown to fit a record larger than itself).
func step(n int) int {
	for i, s := 0, windowStart; s <= windowSize; i, s = i+1, 2*s {
		if n == s {
			return i
		}
	}
	return -1
}

func newWindow(r io.Reader, size int) *window {
	return &window{r: r, buf: make([]byte, min(windowStart, size)), max: size}
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
	size := len(w.buf)
	if w.start > 0 && size < w.max && !w.eof {
		size = min(2*size, w.max) // read through: grow
	}
	if n > size {
		size = n + len(w.buf)
	}
	if size > len(w.buf) {
		var nb []byte
		if i := step(size); i >= 0 {
			if b, ok := spare[i].Get().(*[]byte); ok {
				nb = *b
			}
		}
		if nb == nil {
			nb = make([]byte, size)
		}
		copy(nb, w.buf[w.start:w.end])
		w.recycle()
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
		// The stream is done.
		w.release()
		if have == 0 {
			return io.EOF
		}
		return errShort
	}
	return nil
}

// recycle gives buf to the next window that grows to its size: called when
// the slices handed out of it are spent (take was called again), as it is
// replaced by a larger one or the stream is done.
func (w *window) recycle() {
	if i := step(len(w.buf)); i >= 0 {
		b := w.buf
		spare[i].Put(&b)
	}
}

// release gives the window up when the stream is done (or damaged: its
// reader reads no further); the next reader to grow takes it over.
func (w *window) release() {
	w.recycle()
	w.buf, w.start, w.end = nil, 0, 0
}
