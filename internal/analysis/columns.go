package analysis

import "github.com/iomtguard/iomtguard/internal/stats"

// The Figure 1 columns on a second core.
//
// Profiling analyze of the 1.09M-frame benchmark put the columns' Describer
// adds (about ten values a frame) at a fifth of the single pass, work that
// needs nothing but the values. With Options.Concurrent the pass only
// appends (column, value) pairs to a batch and a worker goroutine adds them,
// so this part of the pass runs beside decoding and reassembly instead of
// after them on the same core. (Moving whole consumers behind
// pipeline.Async cost more in copied events than it saved: these pairs are
// 16 bytes each and need no copy of anything the engine reuses.)
//
// Everything that reads the Describers (Result, State, Reset, merging)
// first calls syncColumns, which hands over the batch being filled and
// waits until the worker has added everything sent.

// colEntry is one value of column i; mqBit set: the frame carried MQTT
// (it also goes to that column's MQTT-only Describer).
type colEntry struct {
	v float64
	i uint8
}

const (
	mqBit     = 0x80
	colBatch  = 32 << 10 // entries a batch (512 kB)
	colQueued = 4        // batches in flight: bounds the memory the worker may lag by
)

type colWorker struct {
	cur  []colEntry
	full chan []colEntry // batches to add; nil asks for an acknowledgement
	free chan []colEntry
	ack  chan struct{}
}

func (a *Analyzer) startColumns() {
	w := &colWorker{full: make(chan []colEntry, colQueued), free: make(chan []colEntry, colQueued+1), ack: make(chan struct{})}
	for range colQueued + 1 {
		w.free <- make([]colEntry, 0, colBatch)
	}
	w.cur = <-w.free
	all, mq := &a.all, &a.mq
	go func() {
		for b := range w.full {
			if b == nil {
				w.ack <- struct{}{}
				continue
			}
			addEntries(all, mq, b)
			w.free <- b[:0]
		}
	}()
	a.cols = w
}

func addEntries(all, mq *[nFields]stats.Describer, b []colEntry) {
	for _, e := range b {
		i := e.i &^ mqBit
		all[i].Add(e.v)
		if e.i&mqBit != 0 {
			mq[i].Add(e.v)
		}
	}
}

// addConcurrent queues one value for the worker.
func (a *Analyzer) addConcurrent(i int, v float64) {
	w := a.cols
	e := colEntry{v: v, i: uint8(i)}
	if a.frameMQTT {
		e.i |= mqBit
	}
	w.cur = append(w.cur, e)
	if len(w.cur) == cap(w.cur) {
		w.full <- w.cur
		w.cur = <-w.free
	}
}

// syncColumns waits until every value added so far is in the Describers.
func (a *Analyzer) syncColumns() {
	w := a.cols
	if w == nil {
		return
	}
	if len(w.cur) > 0 {
		w.full <- w.cur
		w.cur = <-w.free
	}
	w.full <- nil
	<-w.ack
}

// stopColumns syncs and ends the worker; later adds are made in place.
func (a *Analyzer) stopColumns() {
	if a.cols == nil {
		return
	}
	a.syncColumns()
	close(a.cols.full)
	a.cols = nil
}

// Close ends the analyzer's column worker without a Result (a run that
// failed). Result and ReuseColumns end it themselves.
func (a *Analyzer) Close() { a.stopColumns() }
