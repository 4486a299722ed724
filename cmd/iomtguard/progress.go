package main

import (
	"io"
	"os"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// progress shows a progress bar on stderr for long inputs, only when stderr is
// a terminal.
type progress struct {
	bar   *progressbar.ProgressBar
	w     io.Writer
	label string
	off   bool
}

func newProgress(w io.Writer, quiet bool, label string) *progress {
	p := &progress{w: w, label: label, off: quiet}
	if f, ok := w.(*os.File); !ok || !term.IsTerminal(int(f.Fd())) {
		p.off = true
	}
	return p
}

// update is the pipeline's Progress callback.
func (p *progress) update(done, total int64) {
	if p.off || total < 32<<20 {
		return
	}
	if p.bar == nil {
		p.bar = progressbar.NewOptions64(total, progressbar.OptionSetWriter(p.w), progressbar.OptionSetDescription(p.label),
			progressbar.OptionShowBytes(true), progressbar.OptionThrottle(200e6), progressbar.OptionClearOnFinish())
	}
	p.bar.Set64(done)
}

func (p *progress) done() {
	if p.bar != nil {
		p.bar.Finish()
	}
}

func isTerminal(f *os.File) bool { return term.IsTerminal(int(f.Fd())) }
