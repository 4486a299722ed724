package analysis

import "github.com/iomtguard/iomtguard/internal/pipeline"

// A frame's numbers on a second core.
//
// Profiling analyze of the 1.09M-frame benchmark put the Figure 1 columns'
// Describer adds (about ten values a frame) at a fifth of the single pass,
// and the series and k-means points at a tenth more: work that needs only a
// frame's numbers. With Options.Concurrent the pass writes those numbers
// into one record a frame (72 bytes) and a worker goroutine does the rest,
// beside decoding and reassembly instead of after them on the same core.
// (Moving whole consumers behind pipeline.Async cost more in copied events
// than it saved: a record holds nothing the engine reuses.)
//
// The worker owns the columns (all, mq), the series (packets, mqttSeries)
// and the k-means points (kpts, kcache, kFrames) while it runs. Everything
// that reads or changes them (Result, State, Merge, ReuseColumns,
// SetOrigin) first calls syncColumns, which hands over the batch being
// filled and waits until the worker has applied everything sent. An ICU
// dataset row stops the worker: rows are summed in place.

// frameRec is one frame's numbers, or (recFrame unset) MQTT packets
// delivered without a frame of their own time.
type frameRec struct {
	ts, delta, rel, tcpDelta int64
	num                      int
	flen, plen, mqttLen      int32
	relAck                   uint32
	nMQTT                    int32 // MQTT packets at ts before the frame
	srcPort, dstPort, window uint16
	ttl, hdrLen, flags       uint8
}

const (
	recFrame = 1 << iota
	recTTL
	recTCP
	recMQTT // the frame carried MQTT: its values also go to the MQTT-only columns
)

const (
	// recBatch is the records a batch (576 kB). The worker is faster than
	// the pass, so it empties the queue and sleeps until the next batch:
	// at 1,024 records (72 kB, chosen to stay in the cache) that was a
	// wake-up every half millisecond, and four 1.09M-frame files made
	// 8,650 context switches, a second of system time and 4.7 s of CPU in
	// 3.1 s; at 8,192, 3,500, 0.66 s and 3.5 s in 2.4 s (perf stat).
	// Medians of 5 interleaved: one file 0.69 s to 0.65 s, four 2.67 to
	// 2.31 s (16,384 gained little more for twice the memory).
	recBatch  = 1 << 13
	recQueued = 4 // batches in flight: bounds how far the worker may lag
)

type colWorker struct {
	cur  []frameRec
	full chan []frameRec // batches to apply; nil asks for an acknowledgement
	free chan []frameRec
	ack  chan struct{}
	// MQTT packets seen since the last record, all at pendTS.
	pendN  int32
	pendTS int64
}

func (a *Analyzer) startColumns() {
	w := &colWorker{full: make(chan []frameRec, recQueued), free: make(chan []frameRec, recQueued+1), ack: make(chan struct{})}
	for range recQueued + 1 {
		w.free <- make([]frameRec, 0, recBatch)
	}
	w.cur = <-w.free
	go func() {
		for b := range w.full {
			if b == nil {
				w.ack <- struct{}{}
				continue
			}
			for i := range b {
				a.apply(&b[i])
			}
			w.free <- b[:0]
		}
	}()
	a.cols = w
}

// next returns the next record to fill.
func (w *colWorker) next() *frameRec {
	if len(w.cur) == cap(w.cur) {
		w.full <- w.cur
		w.cur = <-w.free
	}
	w.cur = w.cur[:len(w.cur)+1]
	r := &w.cur[len(w.cur)-1]
	*r = frameRec{}
	return r
}

// mqttAt counts an MQTT packet at ts for the worker.
func (w *colWorker) mqttAt(ts int64) {
	if w.pendN > 0 && w.pendTS != ts {
		w.flushMQTT()
	}
	w.pendTS = ts
	w.pendN++
}

// flushMQTT sends the pending MQTT count as a record of its own.
func (w *colWorker) flushMQTT() {
	if w.pendN == 0 {
		return
	}
	n, ts := w.pendN, w.pendTS
	w.pendN = 0
	r := w.next()
	r.ts, r.nMQTT = ts, n
}

// queueFrame records f's numbers (what addFrame adds to the columns, the
// series and the k-means points) for the worker.
func (a *Analyzer) queueFrame(f *pipeline.Frame) {
	w := a.cols
	if w.pendN > 0 && w.pendTS != f.TS {
		w.flushMQTT()
	}
	r := w.next()
	fillRec(r, f, a.frameMQTT, a.firstLen)
	r.nMQTT, w.pendN = w.pendN, 0
}

// fillRec sets r to f's numbers; frameMQTT and firstLen: the MQTT the frame
// carried (its first packet's length).
func fillRec(r *frameRec, f *pipeline.Frame, frameMQTT bool, firstLen int) {
	*r = frameRec{flags: recFrame, ts: f.TS, delta: f.Delta, rel: f.Rel, num: f.Num, flen: int32(f.Len)}
	l := f.L
	if l.IPVersion == 4 && l.Src.IsValid() {
		r.flags |= recTTL
		r.ttl = l.TTL
	}
	if f.TCP != nil && l.IsTCP() {
		r.flags |= recTCP
		r.srcPort, r.dstPort, r.tcpDelta, r.plen = l.SrcPort, l.DstPort, f.TCP.Delta, int32(l.PayloadLen)
		r.relAck, r.hdrLen, r.window = f.TCP.RelAck, l.TCP.HdrLen, l.TCP.Window
	}
	if frameMQTT {
		r.flags |= recMQTT
		r.mqttLen = int32(firstLen)
	}
}

// columns calls add with each Figure 1 value of the frame, in the order the
// columns are added (the MQTT-only columns take the same values when the
// frame carried MQTT: recMQTT).
func (r *frameRec) columns(add func(i int, v float64)) {
	add(fTimeDelta, float64(r.delta)/1e9)
	add(fTimeRel, float64(r.rel)/1e9)
	add(fFrameLen, float64(r.flen))
	if r.flags&recTTL != 0 {
		add(fTTL, float64(r.ttl))
	}
	if r.flags&recTCP != 0 {
		add(fSrcPort, float64(r.srcPort))
		add(fDstPort, float64(r.dstPort))
		add(fTCPDelta, float64(r.tcpDelta)/1e9)
		add(fTCPLen, float64(r.plen))
		add(fTCPAck, float64(r.relAck))
		add(fHdrLen, float64(r.hdrLen))
		add(fWindow, float64(r.window))
	}
	if r.flags&recMQTT != 0 {
		add(fMQTTLen, float64(r.mqttLen))
	}
}

// apply adds a frame's numbers to the series, the columns and the k-means
// points: on the worker, or in place when there is none (the same code
// either way; TestMergedMinutesEqualAnalyze runs both).
func (a *Analyzer) apply(r *frameRec) {
	for range r.nMQTT {
		a.mqttSeries.add(r.ts, 1)
	}
	if r.flags&recFrame == 0 {
		return
	}
	a.packets.onFrameAt(r.ts, int(r.flen))
	a.mqttSeries.onFrameAt(r.ts, int(r.flen))
	if !a.opts.NoColumns {
		mq := r.flags&recMQTT != 0
		r.columns(func(i int, v float64) {
			a.all[i].Add(v)
			if mq {
				a.mq[i].Add(v)
			}
		})
	}
	if r.flags&recTCP != 0 {
		a.kpointRow(int(r.flen), int(r.plen), r.num, r.ts)
	}
}

// syncColumns waits until every record sent so far is applied.
func (a *Analyzer) syncColumns() {
	w := a.cols
	if w == nil {
		return
	}
	w.flushMQTT()
	if len(w.cur) > 0 {
		w.full <- w.cur
		w.cur = <-w.free
	}
	w.full <- nil
	<-w.ack
}

// stopColumns syncs and ends the worker; what follows is done in place.
func (a *Analyzer) stopColumns() {
	if a.cols == nil {
		return
	}
	a.syncColumns()
	close(a.cols.full)
	a.cols = nil
}

// Close ends the analyzer's worker without a Result (a run that failed).
// Result and ReuseColumns end it themselves.
func (a *Analyzer) Close() { a.stopColumns() }
